#pragma once
// Enrolment over the network, the operator's second way to admit a site (the first: the site sends
// its request, the operator runs gng pki sign). The operator makes a one-time token for the site's
// id (gng pki token) and gives it, with the CA certificate, to the site; the site makes its key
// where it lives (secure::pki_request), sends the request with the token over TLS 1.3
// (X25519MLKEM768) to the enrolment service (gng pki serve), and gets its certificate, the CA
// certificate and the deny list back. The site has no certificate yet, so the service asks for
// none; the site knows the service by the CA certificate it was given. The key never moves.
#include <functional>
#include <string>

#include "core/address.h"
#include "net/rpc.h"

namespace gng::net {

// POST /v1/enrol on `server` (made with Limits::anonymous_clients) for the CA in `ca_dir`: a JSON
// {"token", "request"} in, {"certificate", "ca", "crl"} out, or 403 saying why (secure::pki_enrol).
// `told` hears each outcome as a line ("site-a enrolled from ADDR" or "… refused: why").
void serve_enrolment(Server& server, const std::string& ca_dir, std::function<void(const std::string&)> told);

// The site's side: DIR holds its key and request for `id` (gng node init); `ca_file` is the CA
// certificate the operator gave with the token. On success DIR/issued/ID.pem, DIR/ca.pem and
// DIR/crl.pem are written, after checking that the certificate is for this key and id and that
// the CA issued it. gng::Error naming the cause.
void enrol(const std::string& dir, const std::string& id, const Address& service, const std::string& token,
           const std::string& ca_file);

}  // namespace gng::net
