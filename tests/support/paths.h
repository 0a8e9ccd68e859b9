#pragma once
// Test helpers: where the shared data and the built binary are, and running the binary.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace gng::test {

// A file under ../shared (the workplace's data, laid beside the repository as in CI).
// Fails the calling test (never skips it) when the data is not there.
inline std::string shared(const std::string& rel) {
  const std::string p = std::string(GNG_SHARED_DIR) + "/" + rel;
  if (!std::filesystem::exists(p)) ADD_FAILURE() << "missing " << p << ": the tests read ../shared/data beside the repository";
  return p;
}

struct Run {
  int status;
  std::string out;  // stdout and stderr together
};

// Runs a shell command and captures its output and exit status.
inline Run run(const std::string& cmd) {
  Run r{0, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::array<char, 4096> buf{};
  while (std::size_t k = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), k);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace gng::test
