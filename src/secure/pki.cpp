#include "secure/pki.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <sqlite3.h>
#include <functional>
#include <mutex>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/file.h"
#include "core/sqlite.h"
#include "secure/openssl_error.h"

namespace fs = std::filesystem;

namespace gng::secure {

namespace {

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using Crl = std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)>;

using detail::internal;
using detail::ssl_error;

std::string name_entry(X509_NAME* name, int nid) {
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext || X509_add_ext(cert, ext, -1) != 1) internal("X509 extension " + value);
  X509_EXTENSION_free(ext);
}

// A random positive 127-bit serial: unique without keeping a counter.
void set_random_serial(X509* cert) {
  Bytes r = random_bytes(16);
  r[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr);
  if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert))) internal("serial");
  BN_free(bn);
}

X509* new_cert(const PublicKey& key, const std::string& role, const std::string& id, long long from, int days) {
  X509* cert = X509_new();
  if (!cert || X509_set_version(cert, 2) != 1) internal("X509_new");
  set_random_serial(cert);
  time_t start = from ? static_cast<time_t>(from) : std::time(nullptr);
  if (!X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &start) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, &start))
    internal("validity");
  X509_NAME* name = X509_get_subject_name(cert);
  auto add = [&](const char* field, const std::string& v) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(v.c_str()), -1,
                                   -1, 0) != 1)
      internal("subject");
  };
  add("O", "gng");
  add("OU", role);
  add("CN", id);
  if (X509_set_pubkey(cert, key.get()) != 1) internal("X509_set_pubkey");
  return cert;
}

void sign_cert(X509* cert, const SigningKey& key) {
  // ML-DSA and SLH-DSA sign the message itself: no separate digest.
  if (X509_sign(cert, key.get(), nullptr) <= 0) internal("X509_sign");
}

void check_name(const std::string& what, const std::string& v) {
  static const std::regex ok("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  if (!std::regex_match(v, ok))
    throw Error("invalid " + what + " '" + v + "': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
}

bool is_ip(const std::string& h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

Crl read_crl(const std::string& pem, const std::string& where) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  X509_CRL* c = PEM_read_bio_X509_CRL(b.get(), nullptr, nullptr, nullptr);
  if (!c) throw Error(where + ": not a PEM CRL (" + ssl_error() + ")");
  return Crl(c, X509_CRL_free);
}

// (Re)writes DIR/crl.pem: the CA's signed list of denied serials, valid for a year.
void write_crl(const std::string& dir, const Certificate& ca, const SigningKey& ca_key,
               const std::vector<ASN1_INTEGER*>& serials) {
  Crl crl(X509_CRL_new(), X509_CRL_free);
  time_t now = std::time(nullptr);
  ASN1_TIME* last = X509_time_adj_ex(nullptr, 0, 0, &now);
  ASN1_TIME* next = X509_time_adj_ex(nullptr, 365, 0, &now);
  if (!crl || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last) != 1 || X509_CRL_set1_nextUpdate(crl.get(), next) != 1)
    internal("CRL");
  for (ASN1_INTEGER* s : serials) {
    X509_REVOKED* r = X509_REVOKED_new();
    if (!r || X509_REVOKED_set_serialNumber(r, s) != 1 || X509_REVOKED_set_revocationDate(r, last) != 1 ||
        X509_CRL_add0_revoked(crl.get(), r) != 1)
      internal("CRL entry");
  }
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key.get(), nullptr) <= 0) internal("X509_CRL_sign");
  Bio b(BIO_new(BIO_s_mem()), BIO_free);
  if (PEM_write_bio_X509_CRL(b.get(), crl.get()) != 1) internal("PEM_write_bio_X509_CRL");
  char* p = nullptr;
  const long n = BIO_get_mem_data(b.get(), &p);
  write_file_atomic(dir + "/crl.pem", std::string_view(p, static_cast<std::size_t>(n)));
}

void require_pki(const std::string& dir) {
  if (!fs::exists(dir + "/ca.pem") || !fs::exists(dir + "/ca.key.pem"))
    throw Error(dir + " is not a gng PKI (no ca.pem / ca.key.pem): run 'gng pki init " + dir + "' first");
}

}  // namespace

// --- Certificate ---------------------------------------------------------------------------------------

Certificate::Certificate(X509* owned) : cert_(owned, X509_free) {}

Certificate Certificate::from_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  X509* c = b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!c) throw Error("not a PEM certificate (" + ssl_error() + ")");
  return Certificate(c);
}

Certificate Certificate::from_der(View der) {
  const unsigned char* p = der.data();
  X509* c = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!c || p != der.data() + der.size()) {
    X509_free(c);
    throw Error("not a DER certificate (" + ssl_error() + ")");
  }
  return Certificate(c);
}

Bytes Certificate::der() const {
  unsigned char* p = nullptr;
  const int n = cert_ ? i2d_X509(cert_.get(), &p) : -1;
  if (n <= 0) internal("i2d_X509");
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

std::string Certificate::pem() const {
  Bio b(BIO_new(BIO_s_mem()), BIO_free);
  if (!cert_ || PEM_write_bio_X509(b.get(), cert_.get()) != 1) internal("PEM_write_bio_X509");
  char* p = nullptr;
  const long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

std::string Certificate::subject_id() const { return name_entry(X509_get_subject_name(cert_.get()), NID_commonName); }
std::string Certificate::role() const {
  return name_entry(X509_get_subject_name(cert_.get()), NID_organizationalUnitName);
}

std::string Certificate::serial() const {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert_.get()), nullptr);
  char* h = BN_bn2hex(bn);
  std::string s(h);
  OPENSSL_free(h);
  BN_free(bn);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

long long Certificate::not_after() const {
  struct tm t {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert_.get()), &t) != 1) internal("notAfter");
  return static_cast<long long>(timegm(&t));
}

PublicKey Certificate::public_key() const {
  EVP_PKEY* k = X509_get_pubkey(cert_.get());
  if (!k) internal("X509_get_pubkey");
  return PublicKey(k);
}

// --- TrustStore ----------------------------------------------------------------------------------------

struct TrustStore::Verified {
  std::mutex mu;
  std::set<Bytes> der_hashes;
};

namespace {

// What identifies one version of a file: written atomically (a rename), a new version is a new inode.
struct FileStamp {
  ino_t inode = 0;
  long long size = -1, mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, static_cast<long long>(st.st_size), st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
}

// The revoked serials (hex) of a CRL that the CA signed and that is current; gng::Error otherwise.
std::set<std::string> revoked_serials(const Certificate& ca, const std::string& crl) {
  const std::string ca_file = (fs::path(crl).parent_path() / "ca.pem").string();
  Crl c = read_crl(read_file(crl), crl);
  if (X509_CRL_verify(c.get(), ca.public_key().get()) != 1) {
    ERR_clear_error();
    throw Error(crl + ": the deny list is not signed by the CA in " + ca_file);
  }
  if (X509_cmp_current_time(X509_CRL_get0_nextUpdate(c.get())) < 0)
    throw Error(crl + ": the deny list is out of date (renew it: gng pki deny re-signs it)");
  std::set<std::string> out;
  const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(c.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    X509* probe = X509_new();  // serial → hex through a throwaway certificate, as Certificate::serial does
    X509_set_serialNumber(probe, const_cast<ASN1_INTEGER*>(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i))));
    out.insert(Certificate(probe).serial());
  }
  return out;
}

}  // namespace

struct TrustStore::DenyList {
  std::mutex mu;
  std::string path;
  FileStamp stamp;             // of the version last read (held or passed over)
  std::set<std::string> serials;
  std::string trouble;
};

TrustStore TrustStore::load(const std::string& pki_dir) {
  TrustStore t;
  const std::string ca = pki_dir + "/ca.pem", crl = pki_dir + "/crl.pem";
  try {
    t.ca_ = Certificate::from_pem(read_file(ca));
  } catch (const Error& e) {
    throw Error("trust store " + ca + ": " + e.what());
  }
  t.deny_ = std::make_shared<DenyList>();
  t.deny_->path = crl;
  t.deny_->stamp = stamp_of(crl);
  // The deny list counts only when the pinned CA signed it, and only while it is current.
  t.deny_->serials = revoked_serials(t.ca_, crl);
  t.verified_ = std::make_shared<Verified>();
  return t;
}

bool TrustStore::denied(const std::string& serial) const {
  if (!deny_) return false;
  std::lock_guard lock(deny_->mu);
  const FileStamp now = stamp_of(deny_->path);  // a stat per check: far below a TLS record's cost
  if (!(now == deny_->stamp)) {
    deny_->stamp = now;
    try {
      deny_->serials = revoked_serials(ca_, deny_->path);
      deny_->trouble.clear();
    } catch (const Error& e) {  // a torn, foreign or stale list never lifts a revocation
      deny_->trouble = e.what();
    }
  }
  return deny_->serials.count(serial) > 0;
}

std::string TrustStore::deny_list_trouble() const {
  if (!deny_) return "";
  std::lock_guard lock(deny_->mu);
  return deny_->trouble;
}

X509_STORE* TrustStore::x509_store() const {
  X509_STORE* s = X509_STORE_new();
  if (!s || X509_STORE_add_cert(s, ca_.get()) != 1) internal("X509_STORE");
  return s;
}

int TrustStore::verify(const Certificate& cert) const {
  if (denied(cert.serial())) return X509_V_ERR_CERT_REVOKED;
  const Bytes id = sha256(cert.der());
  bool known = false;
  {
    std::lock_guard lock(verified_->mu);
    known = verified_->der_hashes.count(id) > 0;
  }
  if (known) {  // its signature verified before: only time can have changed its verdict
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) return X509_V_ERR_CERT_HAS_EXPIRED;
    if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) return X509_V_ERR_CERT_NOT_YET_VALID;
    return X509_V_OK;
  }
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(x509_store(), X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) internal("X509_STORE_CTX");
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return err == X509_V_OK ? X509_V_ERR_UNSPECIFIED : err;
  }
  std::lock_guard lock(verified_->mu);
  verified_->der_hashes.insert(id);
  return X509_V_OK;
}

void TrustStore::check(const Certificate& cert) const {
  const int err = verify(cert);
  if (err == X509_V_OK) return;
  const std::string who = "certificate '" + cert.subject_id() + "' (serial " + cert.serial() + ")";
  if (err == X509_V_ERR_CERT_REVOKED) throw Error(who + " is on the deny list");
  if (err == X509_V_ERR_CERT_HAS_EXPIRED) throw Error(who + " has expired");
  if (err == X509_V_ERR_CERT_NOT_YET_VALID) throw Error(who + " is not yet valid");
  throw Error(who + " is not trusted: " + X509_verify_cert_error_string(err));
}

// --- PKI operations ------------------------------------------------------------------------------------

void pki_init(const std::string& dir, const std::string& algorithm, int days) {
  if (fs::exists(dir + "/ca.pem") || fs::exists(dir + "/ca.key.pem"))
    throw Error(dir + " already holds a CA (ca.pem): refusing to overwrite it");
  if (algorithm.rfind("ML-DSA-", 0) != 0 && algorithm.rfind("SLH-DSA-", 0) != 0)
    throw Error("CA algorithm '" + algorithm + "' is not post-quantum: use ML-DSA-87 (default) or SLH-DSA-*");
  fs::create_directories(dir + "/issued");
  const SigningKey key = SigningKey::generate(algorithm);
  X509* raw = new_cert(key.public_key(), "ca", "gng-ca", 0, days);
  Certificate ca(raw);
  X509_set_issuer_name(raw, X509_get_subject_name(raw));
  add_ext(raw, raw, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(raw, raw, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(raw, raw, NID_subject_key_identifier, "hash");
  sign_cert(raw, key);
  write_file_atomic(dir + "/ca.key.pem", key.pem(), true);
  write_file_atomic(dir + "/ca.pem", ca.pem());
  write_crl(dir, ca, key, {});
}

namespace {

void check_role(const std::string& role) {
  if (role != "node" && role != "kme" && role != "orchestrator") throw Error("unknown role '" + role + "': node, kme or orchestrator");
}

std::string san_text(const std::vector<std::string>& hosts) {
  std::string san;
  for (const auto& h : hosts) {
    if (!san.empty()) san += ',';
    san += is_ip(h) ? "IP:" : "DNS:";
    san += h;
  }
  return san;
}

// A certificate of the CA in `dir` for `key`: CN = id, OU = role, subjectAltName `san` (an
// extension, or none), written to DIR/issued/ID.pem.
Certificate issue_cert(const std::string& dir, const PublicKey& key, const std::string& role, const std::string& id,
                       const std::function<void(X509* cert, X509* ca)>& san, long long from, int days) {
  require_pki(dir);
  check_role(role);
  check_name("id", id);
  if (days < 1) throw Error("--days must be at least 1");
  const std::string cert_path = dir + "/issued/" + id + ".pem";
  if (fs::exists(cert_path)) throw Error("'" + id + "' already has a certificate (" + cert_path + ")");
  const Certificate ca = Certificate::from_pem(read_file(dir + "/ca.pem"));
  const SigningKey ca_key = SigningKey::from_pem(read_file(dir + "/ca.key.pem"));
  X509* raw = new_cert(key, role, id, from, days);
  Certificate cert(raw);
  X509_set_issuer_name(raw, X509_get_subject_name(ca.get()));
  add_ext(raw, ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(raw, ca.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(raw, ca.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  san(raw, ca.get());
  add_ext(raw, ca.get(), NID_authority_key_identifier, "keyid:always");
  sign_cert(raw, ca_key);
  write_file_atomic(cert_path, cert.pem());
  return cert;
}

}  // namespace

Identity pki_issue(const std::string& dir, const IssueOptions& o) {
  require_pki(dir);
  check_role(o.role);
  check_name("id", o.id);
  if (fs::exists(dir + "/issued/" + o.id + ".pem")) throw Error("'" + o.id + "' already has a certificate (" + dir + "/issued/" + o.id + ".pem)");
  const SigningKey key = SigningKey::generate(o.algorithm);
  std::vector<std::string> hosts = o.hosts;
  if (hosts.empty()) hosts = {o.id, "localhost", "127.0.0.1", "::1"};
  const Certificate cert = issue_cert(dir, key.public_key(), o.role, o.id,
                                      [&](X509* c, X509* ca) { add_ext(c, ca, NID_subject_alt_name, san_text(hosts)); },
                                      o.valid_from, o.days);
  write_file_atomic(dir + "/issued/" + o.id + ".key.pem", key.pem(), true);
  return {cert, key};
}

std::string pki_request(const std::string& dir, const std::string& id, const std::vector<std::string>& hosts,
                        const std::string& algorithm) {
  check_name("id", id);
  const std::string key_path = dir + "/issued/" + id + ".key.pem", csr_path = request_path(dir, id);
  if (fs::exists(key_path)) throw Error("'" + id + "' already has a key here (" + key_path + "): one enrolment per key");
  fs::create_directories(dir + "/issued");
  const SigningKey key = SigningKey::generate(algorithm);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) internal("X509_REQ_new");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(id.c_str()), -1, -1, 0) != 1)
    internal("subject");
  if (X509_REQ_set_pubkey(req.get(), key.public_key().get()) != 1) internal("X509_REQ_set_pubkey");
  const std::vector<std::string> sans = hosts.empty() ? std::vector<std::string>{id} : hosts;
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san_text(sans).c_str());
  if (!ext) throw Error("invalid hosts for '" + id + "': " + ssl_error());
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  sk_X509_EXTENSION_push(exts, ext);
  const int added = X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (added != 1) internal("X509_REQ_add_extensions");
  if (X509_REQ_sign(req.get(), key.get(), nullptr) <= 0) internal("X509_REQ_sign");
  Bio out(BIO_new(BIO_s_mem()), BIO_free);
  if (!out || PEM_write_bio_X509_REQ(out.get(), req.get()) != 1) internal("PEM_write_bio_X509_REQ");
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  write_file_atomic(key_path, key.pem(), true);
  write_file_atomic(csr_path, std::string(data, static_cast<std::size_t>(n)));
  return csr_path;
}

std::string request_path(const std::string& dir, const std::string& id) { return dir + "/" + id + ".csr.pem"; }

Certificate pki_sign(const std::string& dir, const std::string& request_pem, const std::string& role, int days,
                     const std::string& expected_id) {
  Bio in(BIO_new_mem_buf(request_pem.data(), static_cast<int>(request_pem.size())), BIO_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr),
                                                          X509_REQ_free);
  if (!req) throw Error("not a PEM certificate request (PKCS#10): " + ssl_error());
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (!pub) throw Error("the certificate request holds no public key");
  if (X509_REQ_verify(req.get(), pub) != 1)
    throw Error("the certificate request's signature does not verify with the key it names (tampered, or not made by that key)");
  const std::string id = name_entry(X509_REQ_get_subject_name(req.get()), NID_commonName);
  if (id.empty()) throw Error("the certificate request names no CN (the site's id)");
  if (!expected_id.empty() && id != expected_id)
    throw Error("the certificate request names '" + id + "'; the token admits '" + expected_id + "'");
  EVP_PKEY_up_ref(pub);
  const PublicKey key(pub);
  const std::string alg = key.algorithm();
  if (!alg.starts_with("ML-DSA") && !alg.starts_with("SLH-DSA"))
    throw Error("the certificate request's key is " + alg + ": gng certifies ML-DSA or SLH-DSA keys only");
  std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> exts(
      X509_REQ_get_extensions(req.get()), [](STACK_OF(X509_EXTENSION)* s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); });
  X509_EXTENSION* san = nullptr;  // the request's subjectAltName is the one thing taken from it
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i)
    if (OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts.get(), i))) == NID_subject_alt_name)
      san = sk_X509_EXTENSION_value(exts.get(), i);
  return issue_cert(dir, key, role, id,
                    [&](X509* c, X509* ca) {
                      if (san ? X509_add_ext(c, san, -1) != 1 : false) internal("X509_add_ext");
                      if (!san) add_ext(c, ca, NID_subject_alt_name, san_text({id}));
                    },
                    0, days);
}

namespace {

constexpr const char* kTokenPrefix = "gng-enrol-";

sqlite3* open_tokens(const std::string& dir) {
  const std::string path = dir + "/tokens.db";
  sqlite3* db = sql::open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "token store");
  sql::exec(db,
            "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, id TEXT NOT NULL, created REAL NOT NULL, "
            "expires REAL NOT NULL, used REAL, used_from TEXT)",
            path);
  return db;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string utc(double t) {
  char buf[32];
  const time_t tt = static_cast<time_t>(t);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&tt));
  return buf;
}

}  // namespace

std::string pki_token(const std::string& dir, const std::string& id, double seconds) {
  require_pki(dir);
  check_name("id", id);
  if (!(seconds > 0)) throw Error("an enrolment token must expire some time from now");
  const std::string token = kTokenPrefix + hex(random_bytes(32));
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(open_tokens(dir), sqlite3_close);
  const double now = unix_now();
  sql::Stmt(db.get(), "INSERT INTO tokens (hash, id, created, expires) VALUES (?, ?, ?, ?)", dir + "/tokens.db")
      .bind(1, hex(sha256(view(token))))
      .bind(2, id)
      .bind(3, now)
      .bind(4, now + seconds)
      .step();
  return token;
}

Certificate pki_enrol(const std::string& dir, const std::string& token, const std::string& request_pem, const std::string& from) {
  require_pki(dir);
  const std::string path = dir + "/tokens.db";
  if (!token.starts_with(kTokenPrefix)) throw Error("that is not an enrolment token (gng pki token makes them)");
  const std::string hash = hex(sha256(view(token)));
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(open_tokens(dir), sqlite3_close);
  sql::exec(db.get(), "BEGIN IMMEDIATE", path);  // one redeemer at a time
  try {
    std::string id, used_from;
    double expires = 0, used = 0;
    {
      sql::Stmt find(db.get(), "SELECT id, expires, used, used_from FROM tokens WHERE hash = ?", path);
      find.bind(1, hash);
      if (!find.step()) throw Error("unknown enrolment token");
      id = find.text(0), expires = find.real(1), used = find.null(2) ? 0 : find.real(2), used_from = find.text(3);
    }
    if (used > 0) throw Error("the enrolment token for '" + id + "' was used already (" + utc(used) + ", from " + used_from + ")");
    if (expires <= unix_now()) throw Error("the enrolment token for '" + id + "' expired at " + utc(expires));
    Certificate cert = pki_sign(dir, request_pem, "node", 365, id);
    sql::Stmt(db.get(), "UPDATE tokens SET used = ?, used_from = ? WHERE hash = ?", path)
        .bind(1, unix_now())
        .bind(2, from)
        .bind(3, hash)
        .step();
    sql::exec(db.get(), "COMMIT", path);
    return cert;
  } catch (...) {
    sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void pki_deny(const std::string& dir, const std::string& id) {
  require_pki(dir);
  check_name("id", id);
  const std::string path = dir + "/issued/" + id + ".pem";
  if (!fs::exists(path)) throw Error("no certificate for '" + id + "' in " + dir + "/issued");
  const Certificate ca = Certificate::from_pem(read_file(dir + "/ca.pem"));
  const SigningKey ca_key = SigningKey::from_pem(read_file(dir + "/ca.key.pem"));
  const Certificate cert = Certificate::from_pem(read_file(path));
  Crl old = read_crl(read_file(dir + "/crl.pem"), dir + "/crl.pem");
  if (X509_CRL_verify(old.get(), ca.public_key().get()) != 1)
    throw Error(dir + "/crl.pem is not signed by this CA: refusing to extend it");
  std::vector<ASN1_INTEGER*> serials;
  const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(old.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i)
    serials.push_back(const_cast<ASN1_INTEGER*>(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i))));
  for (ASN1_INTEGER* s : serials)
    if (ASN1_INTEGER_cmp(s, X509_get0_serialNumber(cert.get())) == 0) return;  // already denied
  serials.push_back(const_cast<ASN1_INTEGER*>(X509_get0_serialNumber(cert.get())));
  write_crl(dir, ca, ca_key, serials);
}

Identity load_identity(const std::string& pki_dir, const std::string& id) {
  check_name("id", id);
  const std::string base = pki_dir + "/issued/" + id;
  if (!fs::exists(base + ".pem")) throw Error("no certificate for '" + id + "' in " + pki_dir + "/issued");
  Identity me{Certificate::from_pem(read_file(base + ".pem")), SigningKey::from_pem(read_file(base + ".key.pem"))};
  if (me.cert.public_key().fingerprint() != me.key.public_key().fingerprint())
    throw Error(base + ".key.pem does not match the public key in " + base + ".pem");
  return me;
}

}  // namespace gng::secure
