#include "core/address.h"

#include "core/error.h"

namespace gng {

std::string Address::text() const {
  return (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" + std::to_string(port);
}

Address parse_address(const std::string& text, const std::string& what) {
  const auto bad = [&] { return Error(what + ": expected HOST:PORT or [IPV6]:PORT, got '" + text + "'"); };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) throw bad();
  Address a;
  a.host = text.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
    // An IPv6 literal, perhaps with a zone (fe80::1%eth0).
    if (a.host.find(':') == std::string::npos || a.host.find_first_of("[]/ \t") != std::string::npos) throw bad();
  } else if (a.host.empty() || a.host.find_first_of(":[]/ \t") != std::string::npos) {
    throw bad();  // an IPv6 literal needs its brackets: "::1:8080" would be ambiguous
  }
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
    throw bad();
  a.port = std::stoi(port);
  return a;
}

}  // namespace gng
