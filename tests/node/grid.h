#pragma once
// The orchestrator's hub in the test's own process, and what its tests need around it: the address
// nodes dial in to, a wait for a site to join, and clients of the sites that joined.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "net/fixture.h"
#include "node/node.h"

namespace gng::test {

struct Grid {
  node::Hub hub;
  int port;
  explicit Grid(const secure::Identity& me = pki().orch) : hub(me, pki().trust(), options()), port(hub.start()) {}
  static node::Hub::Options options() {
    node::Hub::Options o;
    o.hold = std::chrono::milliseconds(2000);
    o.lost_after = std::chrono::milliseconds(5000);
    return o;
  }
  Address address() const { return {"127.0.0.1", port}; }
  // True once site `id` is up (within `within`).
  bool wait(const std::string& id, std::chrono::milliseconds within = std::chrono::seconds(60)) const {
    const auto end = std::chrono::steady_clock::now() + within;
    while (!hub.up(id)) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  node::NodeClient client(const std::string& id, qkd::Keys keys = {}, audit::AuditLog* log = nullptr) {
    return node::NodeClient(hub, id, pki().orch, pki().trust(), std::move(keys), log);
  }
};

}  // namespace gng::test
