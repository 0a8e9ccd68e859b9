#pragma once
// A network address as gng's configs and flags write it: HOST:PORT, an IPv6 literal in brackets as
// in URLs ([::1]:8443). The port is 0…65535; 0 asks a server for any free one.
#include <string>

namespace gng {

struct Address {
  std::string host;  // without brackets
  int port = 0;
  std::string text() const;  // HOST:PORT again, the host bracketed when it is an IPv6 literal
};

// Throws gng::Error "<what>: expected HOST:PORT or [IPV6]:PORT, got '<text>'" on anything else
// (no port, a port that is not a number below 65536, an unbracketed IPv6 literal, empty brackets).
Address parse_address(const std::string& text, const std::string& what);

}  // namespace gng
