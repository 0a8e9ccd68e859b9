#pragma once
// For src/secure's own sources: OpenSSL's error queue as text, and the failures no user input can
// cause (allocation, a broken library), which are not gng::Errors.
#include <string>

namespace gng::secure::detail {

std::string ssl_error();  // the oldest queued OpenSSL error as text; the queue is cleared
[[noreturn]] void internal(const std::string& what);

}  // namespace gng::secure::detail
