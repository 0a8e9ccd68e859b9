#include <gtest/gtest.h>

#include <set>

#include "core/address.h"
#include "core/args.h"
#include "core/error.h"
#include "core/rng.h"

namespace gng {
namespace {

Args make_args() {
  Args a("gng test");
  a.option("reads", "r").option("time-limit", "t").flag("json", "j");
  return a;
}

TEST(Address, HostPortAndBracketedIpv6) {
  const Address a = parse_address("node-1.example:8443", "--listen");
  EXPECT_EQ(a.host, "node-1.example");
  EXPECT_EQ(a.port, 8443);
  EXPECT_EQ(a.text(), "node-1.example:8443");
  const Address b = parse_address("[::1]:0", "--listen");
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 0);
  EXPECT_EQ(b.text(), "[::1]:0");
  EXPECT_EQ(parse_address("[fe80::1%eth0]:65535", "x").host, "fe80::1%eth0");
  EXPECT_EQ(parse_address("10.0.0.7:1", "x").text(), "10.0.0.7:1");
  for (const char* bad : {"nowhere", "host:", ":80", "host:http", "host:65536", "host:123456", "host:-1", "::1:80", "[]:80",
                          "[::1]", "[::1]80", "[host]:80", "[::1:80", "h[x]:80", "host:80 ", "my host:80",
                          " 10.0.0.7:80", "a/b:80"}) {
    try {
      parse_address(bad, "kme");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), std::string("kme: expected HOST:PORT or [IPV6]:PORT, got '") + bad + "'");
    }
  }
}

TEST(Args, ParsesOptionsFlagsAndPositionals) {
  Args a = make_args();
  a.parse({"file.txt", "--reads", "12", "--time-limit=0.5", "--json"});
  EXPECT_EQ(a.positional(), std::vector<std::string>{"file.txt"});
  EXPECT_EQ(a.integer("reads", 0), 12);
  EXPECT_DOUBLE_EQ(a.real("time-limit", 0), 0.5);
  EXPECT_TRUE(a.has("json"));
}

TEST(Args, RejectsBadInputWithTheOptionsName) {
  auto message = [](std::vector<std::string> argv) {
    Args a = make_args();
    try {
      a.parse(argv);
      a.integer("reads", 0);
      a.real("time-limit", 0);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({"--bogus"}), "gng test: unknown option --bogus (see gng test --help)");
  EXPECT_EQ(message({"--reads"}), "gng test: option --reads needs a value");
  EXPECT_EQ(message({"--reads", "12x"}), "gng test: option --reads expects an integer, got '12x'");
  EXPECT_EQ(message({"--time-limit", "nan"}), "gng test: option --time-limit expects a number, got 'nan'");
  EXPECT_EQ(message({"--json=1"}), "gng test: option --json takes no value");
  EXPECT_EQ(message({"--reads", "1", "--reads", "2"}), "gng test: option --reads given twice");
  EXPECT_EQ(message({"-r"}), "gng test: options are spelled --name, got '-r'");
}

TEST(Rng, SameSeedSameStreamRepeats) {
  Rng a(42, 3), b(42, 3), c(42, 4), d(43, 3);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
    EXPECT_NE(x, d.next());
  }
}

TEST(Rng, UniformAndBelowStayInRangeAndCoverIt) {
  Rng r(7);
  std::set<uint64_t> seen;
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    const uint64_t k = r.below(10);
    ASSERT_LT(k, 10u);
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_NEAR(sum / 100000, 0.5, 0.01);
}

}  // namespace
}  // namespace gng
