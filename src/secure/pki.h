#pragma once
// The project's PKI: one CA (ML-DSA-87 by default, SLH-DSA for a long-lived root) that issues
// ML-DSA-65 certificates naming a role (node | kme | orchestrator) and an id, and a signed deny
// list (an X.509 CRL signed by the CA). Everything is PEM on disk, readable by the openssl tool:
//
//   DIR/ca.pem  DIR/ca.key.pem  DIR/crl.pem  DIR/issued/<id>.pem  DIR/issued/<id>.key.pem
//
// Keys are written 0600 and atomically; nothing is overwritten without being asked.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "secure/crypto.h"

typedef struct x509_st X509;
typedef struct x509_store_st X509_STORE;

namespace gng::secure {

// An X.509 certificate (shared, immutable once loaded).
class Certificate {
 public:
  Certificate() = default;
  explicit Certificate(X509* owned);  // takes ownership
  static Certificate from_pem(std::string_view pem);
  static Certificate from_der(View der);
  std::string pem() const;
  Bytes der() const;
  std::string subject_id() const;    // CN
  std::string role() const;          // OU
  std::string serial() const;        // hex
  long long not_after() const;       // seconds since the epoch
  PublicKey public_key() const;
  X509* get() const { return cert_.get(); }
  explicit operator bool() const { return cert_ != nullptr; }

 private:
  std::shared_ptr<X509> cert_;
};

// What a party presents: its certificate and the matching private key.
struct Identity {
  Certificate cert;
  SigningKey key;
  std::string id() const { return cert.subject_id(); }
  std::string role() const { return cert.role(); }
};

// The CA certificate and the current deny list: what every party pins and checks peers against.
// The deny list is followed live: when DIR/crl.pem changes on disk (`gng pki deny` re-signs it),
// the next check reads it again, so a revocation takes effect for peers already connected. A new
// list counts only if the CA signed it and it is current; otherwise the one held stays (and
// deny_list_trouble() says why). Its serials are then checked directly.
// Certificates whose chain verified are remembered by the SHA-256 of their DER encoding, so a
// peer seen before costs a hash and a time and deny-list check, not an ML-DSA verification
// (copies of a TrustStore share that memory; it is thread-safe).
class TrustStore {
 public:
  static TrustStore load(const std::string& pki_dir);  // DIR/ca.pem + DIR/crl.pem
  // A certificate issued by this CA, within its validity and not denied; throws gng::Error saying
  // why not (e.g. "certificate 'n1' (serial 3f…) is on the deny list").
  void check(const Certificate& cert) const;
  // The same verdict as an X509_V_* code (X509_V_OK when trusted), for TLS verification callbacks.
  int verify(const Certificate& cert) const;
  // A fresh X509_STORE holding the CA (the caller owns it); deny-list checks are check()'s.
  X509_STORE* x509_store() const;
  const Certificate& ca() const { return ca_; }
  // Why the deny list on disk was last passed over ("" when the one held is the one on disk).
  std::string deny_list_trouble() const;

 private:
  struct Verified;
  struct DenyList;
  bool denied(const std::string& serial) const;
  Certificate ca_;
  std::shared_ptr<DenyList> deny_;
  std::shared_ptr<Verified> verified_;
};

struct IssueOptions {
  std::string role;                  // node | kme | orchestrator
  std::string id;                    // [A-Za-z0-9._-]+, unique in the PKI
  std::vector<std::string> hosts;    // subjectAltName DNS names / IP addresses (default: id, localhost, 127.0.0.1, ::1)
  int days = 365;
  long long valid_from = 0;          // notBefore, seconds since the epoch (0: now)
  std::string algorithm = "ML-DSA-65";
};

void pki_init(const std::string& dir, const std::string& algorithm = "ML-DSA-87", int days = 3650);
Identity pki_issue(const std::string& dir, const IssueOptions& options);
// Enrolment, the site's side: its key made in place (DIR/issued/ID.key.pem, 0600: it never leaves
// DIR) and a certificate request (PKCS#10 PEM, CN = id, subjectAltName = hosts, default the id)
// to send to the operator, written to DIR/ID.csr.pem; returns that path.
std::string pki_request(const std::string& dir, const std::string& id, const std::vector<std::string>& hosts = {},
                        const std::string& algorithm = "ML-DSA-65");
std::string request_path(const std::string& dir, const std::string& id);  // DIR/ID.csr.pem
// The operator's side: a request whose signature verifies with the (ML-DSA or SLH-DSA) key it
// names becomes a certificate of `role` in DIR/issued/ID.pem; the role and validity are the CA's,
// only the id and subjectAltName come from the request. gng::Error naming what is wrong.
Certificate pki_sign(const std::string& dir, const std::string& request_pem, const std::string& role, int days = 365,
                     const std::string& expected_id = "");
// One-time enrolment tokens, the operator's other way to admit a site: a token names the site's
// id and admits one certificate request for it, once, before it expires. DIR/tokens.db keeps only
// each token's SHA-256, when it expires, and who used it when.
std::string pki_token(const std::string& dir, const std::string& id, double seconds);
// Redeems `token` for a site's request (pki_sign, role node) in one transaction: an unknown, used
// or expired token, or one for another id, is a gng::Error saying which (a refused request leaves
// the token unused); `from` (the caller's address) is recorded with the use.
Certificate pki_enrol(const std::string& dir, const std::string& token, const std::string& request_pem, const std::string& from);
void pki_deny(const std::string& dir, const std::string& id);  // adds the id's certificate to the CRL
Identity load_identity(const std::string& pki_dir, const std::string& id);

}  // namespace gng::secure
