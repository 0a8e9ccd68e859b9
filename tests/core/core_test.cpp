#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "core/address.h"
#include "core/args.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/file.h"
#include "support/error_of.h"
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
  EXPECT_EQ(a.integer("reads", 0, 0, 100), 12);
  EXPECT_DOUBLE_EQ(a.real("time-limit", 0, 0, 60), 0.5);
  EXPECT_TRUE(a.has("json"));
}

TEST(Args, RejectsBadInputWithTheOptionsName) {
  auto message = [](std::vector<std::string> argv) {
    Args a = make_args();
    try {
      a.parse(argv);
      a.integer("reads", 0, 0, 100);
      a.real("time-limit", 0, 0, 60);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({"--bogus"}), "gng test: unknown option --bogus (see gng test --help)");
  EXPECT_EQ(message({"--reads"}), "gng test: option --reads needs a value");
  EXPECT_EQ(message({"--reads", "12x"}), "gng test: option --reads expects an integer, got '12x'");
  EXPECT_EQ(message({"--time-limit", "nan"}), "gng test: option --time-limit expects a number, got 'nan'");
  EXPECT_EQ(message({"--reads", "101"}), "gng test: option --reads must be in [0, 100], got 101");
  EXPECT_EQ(message({"--reads", "-1"}), "gng test: option --reads must be in [0, 100], got -1");
  EXPECT_EQ(message({"--time-limit", "1e300"}), "gng test: option --time-limit must be in [0, 60], got 1e300");
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

namespace gng {
namespace {

std::string temp_dir(const std::string& name) {
  const std::string dir = testing::TempDir() + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(File, AtomicWriteReplacesWholeAndKeepsSecretsPrivate) {
  const std::string dir = temp_dir("gng-atomic");
  write_file_atomic(dir + "/k.pem", "secret", true);
  EXPECT_EQ(read_file(dir + "/k.pem"), "secret");
  EXPECT_EQ(std::filesystem::status(dir + "/k.pem").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_FALSE(std::filesystem::exists(dir + "/k.pem.tmp"));
  write_file_atomic(dir + "/k.pem", "longer secret");
  EXPECT_EQ(read_file(dir + "/k.pem"), "longer secret");
  copy_file_atomic(dir + "/k.pem", dir + "/copy");
  EXPECT_EQ(read_file(dir + "/copy"), "longer secret");
  EXPECT_EQ(std::filesystem::status(dir + "/copy").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write | std::filesystem::perms::group_read |
                std::filesystem::perms::others_read);
  write_file_atomic(dir + "/s.pem", "secret", true);
  copy_file_atomic(dir + "/s.pem", dir + "/s-copy");
  EXPECT_EQ(std::filesystem::status(dir + "/s-copy").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);  // a secret stays one
  // A device is written to, not replaced.
  write_file_atomic("/dev/null", "discarded");
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
  EXPECT_FALSE(std::filesystem::exists("/dev/null.tmp"));
  std::filesystem::remove_all(dir);
}

TEST(File, FailuresNameThePathAndLeaveTheOldFile) {
  const std::string dir = temp_dir("gng-atomic-fail");
  EXPECT_NE(test::error_of([&] { read_file(dir + "/missing"); }).find("cannot read " + dir + "/missing"), std::string::npos);
  EXPECT_EQ(test::error_of([&] { read_file(dir); }), "cannot read " + dir + ": it is a directory");
  write_file_atomic(dir + "/big", std::string(100, 'x'));
  EXPECT_EQ(test::error_of([&] { read_file(dir + "/big", 99); }), dir + "/big: larger than 99 bytes, refused");
  EXPECT_EQ(read_file(dir + "/big", 100).size(), 100u);
  // The rename target is a non-empty directory: the write fails, names the path, and leaves no
  // temporary file behind.
  std::filesystem::create_directories(dir + "/taken/inside");
  const std::string e = test::error_of([&] { write_file_atomic(dir + "/taken", "new"); });
  EXPECT_EQ(e.rfind("cannot write " + dir + "/taken: rename", 0), 0u) << e;
  EXPECT_FALSE(std::filesystem::exists(dir + "/taken.tmp"));
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/taken/inside"));
  EXPECT_NE(test::error_of([&] { write_file_atomic(dir + "/no/such/dir/f", "x"); }).find("cannot write " + dir + "/no/such/dir/f"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

TEST(Bytes, WriterAndReaderRoundTripBigEndianFields) {
  std::string b;
  bytes::Writer<std::string>(b).raw("GNGX\x02", 5).uint(0x0102, 2).uint(0x0a0b0c0d0e0f1011, 8).field("hello", 2, 16, "name");
  EXPECT_EQ(b.substr(5, 2), std::string("\x01\x02", 2));
  EXPECT_EQ(b.substr(7, 8), std::string("\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11", 8));
  bytes::Reader r(b, "thing");
  r.magic("GNGX", 2, "thing");
  EXPECT_EQ(r.uint(2, "a"), 0x0102u);
  EXPECT_EQ(r.uint(8, "b"), 0x0a0b0c0d0e0f1011u);
  EXPECT_EQ(r.field(2, "name"), "hello");
  EXPECT_EQ(r.left(), 0u);
  r.done("thing");
  std::vector<uint8_t> v;
  bytes::Writer<std::vector<uint8_t>>(v).uint(7, 4);
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 0, 0, 7}));
}

TEST(Bytes, EveryReadIsCheckedAndNamesTheFormatAndField) {
  const std::string b("\x00\x09hi", 4);
  bytes::Reader r(b, "update");
  EXPECT_EQ(test::error_of([&] { r.field(2, "sender"); }), "truncated update: sender needs 9 bytes, 2 left");
  bytes::Reader r2(std::string_view("GNGY\x01"), "thing");
  EXPECT_EQ(test::error_of([&] { r2.magic("GNGX", 1, "thing"); }), "not a gng thing (bad magic)");
  bytes::Reader r3(std::string_view("GNGX\x03"), "thing");
  EXPECT_EQ(test::error_of([&] { r3.magic("GNGX", 1, "thing"); }), "unsupported thing version 3");
  bytes::Reader r4(std::string_view("abc"), "thing");
  r4.take(1, "first");
  EXPECT_EQ(test::error_of([&] { r4.done("thing"); }), "thing has 2 trailing bytes");
  EXPECT_EQ(test::error_of([&] { r4.uint(8, "count"); }), "truncated thing: count needs 8 bytes, 2 left");
  std::string out;
  EXPECT_EQ(test::error_of([&] { bytes::Writer<std::string>(out).field(std::string(300, 'x'), 1, 1000, "name"); }),
            "name longer than 255 bytes");
  EXPECT_EQ(test::error_of([&] { bytes::Writer<std::string>(out).field(std::string(30, 'x'), 2, 16, "name"); }),
            "name longer than 16 bytes");
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace gng
