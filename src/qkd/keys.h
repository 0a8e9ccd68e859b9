#pragma once
// A party's keys from its KME (ETSI GS QKD 014), for the envelopes it seals and opens
// (secure/envelope.h). With no functions set the party has no KME: it seals pqc-only, and opens
// pqc-only envelopes only when QKD is not required. qkd/kme.h's kme_access fills one in.
#include <functional>
#include <string>

#include "secure/envelope.h"

namespace gng::qkd {

struct KeyForSend {
  std::string key_id;
  secure::Bytes key;
};

struct Keys {
  // A fresh key shared with `recipient` (enc_keys: this party is the master SAE); throws when the
  // KME has none (e.g. its link aborts on a high QBER).
  std::function<KeyForSend(const std::string& recipient)> for_sending;
  // The key `key_id` that `sender` (the master SAE) obtained (dec_keys); throws when unknown.
  std::function<secure::Bytes(const std::string& sender, const std::string& key_id)> for_opening;
  // The policy: refuse envelopes without a QKD key, and never send without one. When false, a
  // sender whose KME cannot deliver falls back to pqc-only, and says so in the header.
  bool required = false;

  // The key to seal with for `recipient`: none (pqc-only) when there is no KME, or when the KME
  // fails and QKD is optional, in which case `fallback` (if given) learns why. Throws when QKD is
  // required and no key can be had.
  KeyForSend key_for(const std::string& recipient, std::string* fallback = nullptr) const;
  // Options to open an envelope addressed to `me` over a session with `exporter`.
  secure::OpenOptions opening(const secure::TrustStore& trust, const std::string& me, secure::View exporter,
                              secure::ReplayGuard& replay) const;
};

}  // namespace gng::qkd
