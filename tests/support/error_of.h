#pragma once
// The message of the gng::Error that f throws, or "no error": tests compare messages exactly.
#include <functional>
#include <string>

#include "core/error.h"

namespace gng::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace gng::test
