#pragma once
// gng reports every failure a user can cause (bad file, bad option, impossible request) as a
// gng::Error whose message says what is wrong and where; the CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace gng {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gng
