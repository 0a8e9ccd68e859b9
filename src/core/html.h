#pragma once
// Text made safe to place in HTML (element content or a quoted attribute).
#include <string>
#include <string_view>

namespace gng {

inline std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 8);
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  return o;
}

}  // namespace gng
