// bench/audit — throughput of the Merkle audit log (src/audit) on this machine, wall-clock.
//
//   build/bench/audit [--dir DIR] [--entries 100000] [--batch 1000] [--single 1000] [--proofs 25]
//                     [--repeats 1000] [--json FILE]
//
// Measures: batched append (--entries in transactions of --batch), unbatched append (--single
// entries, one transaction and fsync each), signing a tree head, a full verify() of the batched log,
// inclusion and consistency proof generation from the log and verification (median over --proofs
// random proofs of the mean over --repeats verifications each). The SQLite files go under DIR
// (default: a fresh folder under /tmp), with the log's own settings (WAL, synchronous=FULL).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <unistd.h>

#include "audit/log.h"
#include "core/args.h"
#include "core/error.h"
#include "core/timer.h"

using namespace gng;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A detail of the size the engine writes for an exchange (~150 bytes of JSON).
std::string detail(uint64_t i) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                R"({"round":%llu,"from":"node-%llu","to":"orchestrator","model":"sha256:%064llx","bytes":%llu,"qkd":"key-%llu"})",
                static_cast<unsigned long long>(i / 8), static_cast<unsigned long long>(i % 8),
                static_cast<unsigned long long>(i * 0x9e3779b97f4a7c15ULL), static_cast<unsigned long long>(1000 + i),
                static_cast<unsigned long long>(i));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args("bench/audit");
    args.option("dir", "folder for the SQLite files (default: a fresh one under /tmp)")
        .option("entries", "entries appended in batches (default 100000)")
        .option("batch", "entries per transaction (default 1000)")
        .option("single", "entries appended one transaction each (default 1000)")
        .option("proofs", "random proofs of each kind (default 25)")
        .option("repeats", "verifications timed per proof (default 1000)")
        .option("json", "also write the results as JSON to this file")
        .flag("help", "show this help");
    args.parse(std::vector<std::string>(argv + 1, argv + argc));
    if (args.has("help")) {
      std::printf("usage: bench/audit [OPTIONS]\n\n%s", args.help().c_str());
      return 0;
    }
    const uint64_t entries = static_cast<uint64_t>(args.integer("entries", 100000, 0, 1'000'000'000));
    const uint64_t batch = static_cast<uint64_t>(args.integer("batch", 1000, 0, 1'000'000'000));
    const uint64_t single = static_cast<uint64_t>(args.integer("single", 1000, 0, 1'000'000'000));
    const int proofs = static_cast<int>(args.integer("proofs", 25, 0, 1'000'000'000));
    const int repeats = static_cast<int>(args.integer("repeats", 1000, 0, 1'000'000'000));
    if (entries < 2 || batch < 1 || proofs < 1 || repeats < 1) throw Error("bench/audit: sizes must be positive (--entries >= 2)");
    const std::string dir = args.str("dir", std::filesystem::temp_directory_path().string() + "/gng-bench-audit-" +
                                                std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    nlohmann::json out;

    // Batched append.
    audit::AuditLog log(dir + "/batched.db", true);
    {
      std::vector<audit::NewEntry> b;
      const Stopwatch w;
      for (uint64_t first = 0; first < entries; first += batch) {
        b.clear();
        for (uint64_t i = first; i < std::min(entries, first + batch); ++i) b.push_back({"exchange", "node-" + std::to_string(i % 8), detail(i)});
        log.append_batch(b);
      }
      const double s = w.seconds();
      out["batched_append"] = {{"entries", entries}, {"batch", batch}, {"seconds", s}, {"entries_per_s", entries / s}};
      std::printf("batched append    %8llu entries in batches of %llu: %8.3f s  %10.0f entries/s\n",
                  static_cast<unsigned long long>(entries), static_cast<unsigned long long>(batch), s, entries / s);
    }
    // Unbatched append: one transaction (one fsync) per entry.
    {
      audit::AuditLog one(dir + "/single.db", true);
      const Stopwatch w;
      for (uint64_t i = 0; i < single; ++i) one.append("exchange", "node-" + std::to_string(i % 8), nlohmann::json::parse(detail(i)));
      const double s = w.seconds();
      out["single_append"] = {{"entries", single}, {"seconds", s}, {"entries_per_s", single / s}};
      std::printf("unbatched append  %8llu entries, one transaction each: %8.3f s  %10.0f entries/s\n",
                  static_cast<unsigned long long>(single), s, single / s);
    }
    const auto key = secure::SigningKey::generate("ML-DSA-65");
    {
      const Stopwatch w;
      log.sign_head(key);
      out["sign_head_ms"] = w.seconds() * 1e3;
      std::printf("sign_head (ML-DSA-65) at size %llu: %.2f ms\n", static_cast<unsigned long long>(entries), w.seconds() * 1e3);
    }
    {
      const Stopwatch w;
      const auto r = log.verify(key.public_key());
      const double s = w.seconds();
      if (!r.ok) throw Error("bench/audit: verify failed: " + r.problem);
      out["verify"] = {{"entries", entries}, {"seconds", s}, {"entries_per_s", entries / s}};
      std::printf("full verify       %8llu entries: %8.3f s  %10.0f entries/s\n", static_cast<unsigned long long>(entries), s,
                  entries / s);
    }

    // Proofs: generated by the log, verified repeatedly.
    std::mt19937_64 rng(7);
    const audit::Hash root = log.root();
    std::vector<double> gen_incl, ver_incl, gen_cons, ver_cons;
    std::size_t incl_len = 0, cons_len = 0;
    for (int k = 0; k < proofs; ++k) {
      const uint64_t index = rng() % entries;
      Stopwatch g;
      const auto p = log.inclusion_proof(index, entries);
      gen_incl.push_back(g.seconds() * 1e3);
      incl_len = std::max(incl_len, p.path.size());
      bool ok = true;
      const Stopwatch w;
      for (int r = 0; r < repeats; ++r) ok &= audit::verify_inclusion(index, entries, p.leaf, p.path, root);
      ver_incl.push_back(w.seconds() * 1e6 / repeats);
      if (!ok) throw Error("bench/audit: an inclusion proof did not verify");

      const uint64_t m = 1 + rng() % (entries - 1);
      g = Stopwatch();
      const auto c = log.consistency_proof(m, entries);
      gen_cons.push_back(g.seconds() * 1e3);
      cons_len = std::max(cons_len, c.path.size());
      const Stopwatch w2;
      for (int r = 0; r < repeats; ++r) ok &= audit::verify_consistency(m, entries, c.root_m, c.root_n, c.path);
      ver_cons.push_back(w2.seconds() * 1e6 / repeats);
      if (!ok) throw Error("bench/audit: a consistency proof did not verify");
    }
    out["inclusion"] = {{"tree_size", entries}, {"max_path", incl_len}, {"verify_us_median", median(ver_incl)},
                        {"generate_ms_median", median(gen_incl)}};
    out["consistency"] = {{"tree_size", entries}, {"max_path", cons_len}, {"verify_us_median", median(ver_cons)},
                          {"generate_ms_median", median(gen_cons)}};
    std::printf("inclusion proof   size %llu, <= %zu hashes: verify %6.2f us (median), generate %7.2f ms (median)\n",
                static_cast<unsigned long long>(entries), incl_len, median(ver_incl), median(gen_incl));
    std::printf("consistency proof size %llu, <= %zu hashes: verify %6.2f us (median), generate %7.2f ms (median)\n",
                static_cast<unsigned long long>(entries), cons_len, median(ver_cons), median(gen_cons));

    if (args.has("json")) {
      std::ofstream f(args.str("json"));
      f << out.dump(2) << "\n";
    }
    if (!args.has("dir")) std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/audit: %s\n", e.what());
    return 1;
  }
}
