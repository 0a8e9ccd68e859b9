#pragma once
// Helpers shared by the subcommands: reading a problem and printing samples; running until a stop signal.
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <initializer_list>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/args.h"
#include "qubo/io.h"

namespace gng::cli {

inline std::string bitstring(const Bits& x) {
  std::string s(x.size(), '0');
  for (std::size_t i = 0; i < x.size(); ++i) s[i] = x[i] ? '1' : '0';
  return s;
}

// Integers without a trailing ".0", everything else with full precision.
inline nlohmann::json json_number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 9e15) return static_cast<int64_t>(v);
  return v;
}

// A comma-separated option's items (empty ones dropped): --hosts a,b  --witness DIR,DIR  --eve A/B,C/D.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    if (comma > pos) out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

// Blocks SIGINT, SIGTERM and `more` in this thread and in the threads it starts afterwards (so call
// it before any), for a server that runs until wait_for_stop() takes one of them.
inline sigset_t block_stop_signals(std::initializer_list<int> more = {}) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  for (int sig : more) sigaddset(&s, sig);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  return s;
}

// Waits for one of the blocked signals; returns it.
inline int wait_for_stop(const sigset_t& s) {
  int sig = 0;
  sigwait(&s, &sig);
  return sig;
}

// Reads FILE (the one positional argument) with --format and --instance.
Problem load_problem(const Args& args);

}  // namespace gng::cli
