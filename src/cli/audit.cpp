// gng audit — verify, show and prove entries of the Merkle audit log in DIR/audit.db.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "audit/log.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/args.h"
#include "core/error.h"
#include "core/file.h"
#include "lifecycle/run.h"

namespace gng::cli {

namespace {

constexpr const char* kAuditUsage = R"(usage: gng audit verify DIR [--key PUBKEY.pem] [--witness SITE_DIR,...]
       gng audit show DIR [--tail N]
       gng audit proof DIR --index I [--size N]

verify  recomputes every leaf hash and root of DIR/audit.db and checks every signed tree head: the
        log's own, DIR/audit-head.json and a run's registry copy (the latest head, kept outside the
        log: a log shorter than one of them was cut short); prints one OK line (size, root, the key
        that verified the heads) and exits 0, or names the first bad entry and exits 1. A log with
        no signed head, or without DIR/audit-head.json, fails. The key: --key, else
        DIR/audit-key.pub.pem. --witness adds the run's heads that its sites kept in their own
        trails (each site keeps the latest it was sent): a log cut short, even with every copy
        in DIR rolled back, is then named.
show    lists the entries (as stored, unverified) and the signed tree heads.
proof   prints an RFC 9162 inclusion proof of entry I in the tree of the first N entries (default: all)
        as JSON.

)";

// A non-negative integer option.
uint64_t count(const Args& args, const std::string& name) {
  return static_cast<uint64_t>(args.integer(name, 0, 0, INT64_MAX));
}

int verify(const Args& args, const std::string& dir) {
  std::string key_path = args.str("key");
  if (key_path.empty()) {
    key_path = dir + "/" + audit::kKeyFile;
    if (!std::filesystem::exists(key_path))
      throw Error("no key to verify the signed tree heads: pass --key PUBKEY.pem or put the log's public key in " + key_path);
  }
  const auto key = secure::PublicKey::from_pem(read_file(key_path, 1 << 20));
  // The run's heads that its sites kept in their own trails (a run's id is its folder's name).
  const auto witnessed = witnessed_heads(std::filesystem::canonical(dir).filename().string(), split_list(args.str("witness")));
  const audit::VerifyReport report = verify_trail(dir, key, witnessed);
  std::printf("%s\n", report.line().c_str());
  return report.ok ? 0 : 1;
}

int show(const Args& args, const audit::AuditLog& log) {
  const uint64_t n = log.size();
  const uint64_t tail = args.has("tail") ? count(args, "tail") : n;
  const auto heads = log.heads();
  std::printf("%s: %llu entries, root %s (as stored: 'gng audit verify' checks it), %zu signed tree heads\n",
              log.path().c_str(), static_cast<unsigned long long>(n), audit::to_hex(log.root()).c_str(), heads.size());
  for (const auto& e : log.entries(n - std::min(tail, n), n))
    std::printf("%6llu  %s  %-10s  %-14s  %s\n", static_cast<unsigned long long>(e.seq), audit::format_time(e.time_us).c_str(),
                e.kind.c_str(), e.actor.c_str(), e.detail.c_str());
  for (const auto& h : heads)
    std::printf("head #%lld  size %llu  %s  root %s  key %s\n", static_cast<long long>(h.id),
                static_cast<unsigned long long>(h.size), audit::format_time(h.time_us).c_str(), audit::to_hex(h.root).c_str(),
                h.key_fingerprint.c_str());
  return 0;
}

int proof(const Args& args, const audit::AuditLog& log) {
  if (!args.has("index")) throw Error("gng audit proof: --index I is required");
  const uint64_t index = count(args, "index");
  const uint64_t size = args.has("size") ? count(args, "size") : log.size();
  const audit::InclusionProof p = log.inclusion_proof(index, size);
  const audit::Entry e = log.entries(index, index + 1).at(0);
  nlohmann::json path = nlohmann::json::array();
  for (const auto& h : p.path) path.push_back(audit::to_hex(h));
  const nlohmann::json out = {
      {"hash", "RFC 9162 SHA-256"},
      {"index", p.index},
      {"tree_size", p.size},
      {"leaf_hash", audit::to_hex(p.leaf)},
      {"root", audit::to_hex(p.root)},
      {"inclusion_proof", path},
      {"entry",
       {{"seq", e.seq}, {"time_us", e.time_us}, {"time", audit::format_time(e.time_us)}, {"kind", e.kind}, {"actor", e.actor},
        {"detail", e.detail}}},
  };
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int audit(const std::vector<std::string>& argv) {
  Args args("gng audit");
  args.option("key", "verify: public key (PEM) of the signed tree heads (default DIR/audit-key.pub.pem)")
      .option("witness", "verify: sites' folders (comma-separated) whose trails kept the run's heads")
      .option("tail", "show: only the last N entries")
      .option("index", "proof: the entry to prove")
      .option("size", "proof: the tree size the proof is for (default: the whole log)")
      .flag("help", "show this help");
  args.parse(argv);
  const auto& pos = args.positional();
  if (args.has("help") || pos.size() != 2) {
    std::printf("%s%s", kAuditUsage, args.help().c_str());
    return args.has("help") ? 0 : 2;
  }
  const std::string& sub = pos[0];
  const std::string& dir = pos[1];
  const std::map<std::string, std::vector<std::string>> allowed = {
      {"verify", {"key", "witness"}}, {"show", {"tail"}}, {"proof", {"index", "size"}}};
  const auto it = allowed.find(sub);
  if (it == allowed.end()) throw Error("gng audit: unknown subcommand '" + sub + "' (verify, show or proof)");
  for (const char* o : {"key", "witness", "tail", "index", "size"})
    if (args.has(o) && std::find(it->second.begin(), it->second.end(), o) == it->second.end())
      throw Error("gng audit " + sub + ": --" + o + " does not apply here (see gng audit --help)");
  if (!std::filesystem::is_directory(dir)) throw Error(dir + ": no such folder");
  const std::string path = dir + "/" + audit::kLogFile;
  if (!std::filesystem::exists(path)) throw Error(dir + ": no audit log here (" + audit::kLogFile + " is missing)");
  if (sub == "verify") return verify(args, dir);
  const audit::AuditLog log(path, false);
  if (sub == "show") return show(args, log);
  return proof(args, log);
}

}  // namespace gng::cli
