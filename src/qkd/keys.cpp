#include "qkd/keys.h"

#include "core/error.h"

namespace gng::qkd {

KeyForSend Keys::key_for(const std::string& recipient, std::string* fallback) const {
  if (!for_sending) {
    if (required) throw Error("QKD is required but this party has no KME");
    return {};
  }
  try {
    return for_sending(recipient);
  } catch (const Error& e) {
    if (required) throw Error(std::string("no QKD key for '") + recipient + "' and QKD is required: " + e.what());
    if (fallback) *fallback = e.what();
    return {};
  }
}

secure::OpenOptions Keys::opening(const secure::TrustStore& trust, const std::string& me, secure::View exporter,
                                  secure::ReplayGuard& replay) const {
  secure::OpenOptions o;
  o.trust = &trust;
  o.me = me;
  o.tls_exporter = exporter;
  o.allow_pqc_only = !required;
  o.replay = &replay;
  o.qkd_key = for_opening;
  return o;
}

}  // namespace gng::qkd
