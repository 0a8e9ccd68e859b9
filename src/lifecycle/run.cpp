#include "lifecycle/run.h"

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "audit/log.h"
#include "core/error.h"
#include "core/file.h"
#include "lifecycle/config.h"
#include "lifecycle/cycle.h"
#include "lifecycle/generate.h"
#include "lifecycle/registry.h"
#include "lifecycle/run_state.h"
#include "secure/crypto.h"
#include "secure/pki.h"

namespace gng {

namespace {

namespace fs = std::filesystem;

std::string sha256_hex(std::string_view bytes) { return secure::hex(secure::sha256(secure::view(bytes))); }

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// The identities a run needs in the operator's CA directory: the orchestrator's, the run KME's
// (when the policy wants QKD keys) and one per local node. Those missing are issued when the CA
// key is there; otherwise the run stops before it starts, naming what to issue.
void prepare_operator_pki(const RunConfig& c, const Policy& p) {
  secure::TrustStore::load(c.pki);  // the CA and a current deny list it signed, or a clear error
  std::vector<std::pair<std::string, std::string>> needed{{"orchestrator", "orchestrator"}};
  if (p.qkd != "off") needed.emplace_back("kme", "kme");
  for (int k = 1; k <= c.nodes; ++k) needed.emplace_back("node", "n" + std::to_string(k));
  const bool can_issue = fs::exists(fs::path(c.pki) / "ca.key.pem");
  for (const auto& [role, id] : needed) {
    const fs::path cert = fs::path(c.pki) / "issued" / (id + ".pem"), key = fs::path(c.pki) / "issued" / (id + ".key.pem");
    if (fs::exists(cert) && fs::exists(key)) {
      const secure::Identity have = secure::load_identity(c.pki, id);
      if (have.role() != role)
        throw Error(cert.string() + " is a " + have.role() + " certificate; the run needs '" + id + "' to be " + role);
      continue;
    }
    if (!can_issue)
      throw Error(c.pki + " holds no " + role + " identity '" + id + "' (issued/" + id + ".pem and its key) and no CA key to issue one: " +
                  "gng pki issue " + c.pki + " --role " + role + " --id " + id);
    secure::pki_issue(c.pki, {role, id});
  }
}

}  // namespace

std::string start_run(const std::string& config_path, const std::string& runs_dir, std::ostream& out) {
  RunConfig c = RunConfig::from_file(config_path);
  // Check the policy and the space before anything is created.
  const Policy p = Policy::from_yaml(c.policy_text, c.policy_source);
  load_space(c, p, InputShape{});
  if (!c.pki.empty()) prepare_operator_pki(c, p);
  std::string dir = (fs::path(runs_dir) / (c.name + "-" + utc_stamp())).string();
  for (int k = 2; fs::exists(dir); ++k) dir = (fs::path(runs_dir) / (c.name + "-" + utc_stamp() + "-" + std::to_string(k))).string();
  fs::create_directories(dir);
  {
    Registry reg((fs::path(dir) / "registry.db").string(), true);
    reg.begin();
    reg.set_meta("config", c.text);
    reg.set_meta("config_source", config_path);
    reg.set_meta("space", c.space_text);
    reg.set_meta("space_source", c.space_source);
    reg.set_meta("policy", c.policy_text);
    reg.set_meta("policy_source", c.policy_source);
    reg.set_meta("state", "running");
    if (!c.pki.empty()) reg.set_meta("pki", c.pki);  // absolute: a resume need not start where the run did
    reg.commit();
    const secure::SigningKey key = secure::SigningKey::generate("ML-DSA-65");
    write_file_atomic((fs::path(dir) / kAuditKey).string(), key.pem(), true);
    write_file_atomic((fs::path(dir) / audit::kKeyFile).string(), key.public_key().pem());
    audit::AuditLog log((fs::path(dir) / audit::kLogFile).string(), true);
    log.append("policy", "operator",
               {{"policy", c.policy_text}, {"policy_source", c.policy_source},
                {"policy_sha256", sha256_hex(c.policy_text)},
                {"config_sha256", sha256_hex(c.text)},
                {"space_sha256", sha256_hex(c.space_text)}});
    reg.set_meta("audit_head", audit::head_json(log.sign_head(key)));
  }
  if (c.sites() > 0 && c.pki.empty()) {  // the run's own PKI: an ML-DSA-87 CA, the orchestrator and one identity per local node
    const std::string pki = (fs::path(dir) / "pki").string();
    secure::pki_init(pki);
    secure::pki_issue(pki, {"orchestrator", "orchestrator"});
    for (int k = 1; k <= c.nodes; ++k) secure::pki_issue(pki, {"node", "n" + std::to_string(k)});
  }
  out << "run " << dir << "\n" << std::flush;
  run_cycles(dir, std::move(c), out);
  return dir;
}

void resume_run(const std::string& run_dir, std::ostream& out) {
  RunConfig c;
  {
    Registry reg((fs::path(run_dir) / "registry.db").string(), false);
    auto get = [&](const char* k) {
      auto v = reg.meta(k);
      if (!v) throw Error(run_dir + ": the registry lacks '" + k + "': not a complete gng run");
      return *v;
    };
    // A run that has ended stays as it ended: no KME, no nodes, no session added to its clock.
    const std::string state = reg.meta("state").value_or("");
    if (state == "finished" || state.starts_with("stopped: ")) {
      out << run_dir << " has ended (" << state << "): nothing to resume\n" << std::flush;
      return;
    }
    c = RunConfig::from_yaml(get("config"), get("config_source"), get("space"), get("policy"));
    c.space_source = get("space_source");
    c.policy_source = get("policy_source");
    if (const auto pki = reg.meta("pki")) c.pki = *pki;
    reg.set_meta("state", "running");
    audit::AuditLog((fs::path(run_dir) / audit::kLogFile).string(), true)
        .append("decision", "orchestrator", {{"cycle", -1}, {"kind", "resume"}, {"text", "resumed from " + run_dir}});
    reg.add_decision(reg.used_seconds(), -1, "resume", "resumed from " + run_dir);
  }
  out << "resuming " << run_dir << "\n" << std::flush;
  run_cycles(run_dir, std::move(c), out);
}

void approve_candidate(const std::string& run_dir, int candidate, const std::string& by) {
  Registry reg((fs::path(run_dir) / "registry.db").string(), false);
  const auto policy_text = reg.meta("policy");
  const Policy p = Policy::from_yaml(policy_text.value_or(""), "<stored policy>");
  bool exists = false;
  for (const auto& c : reg.candidates()) exists |= c.id == candidate;
  if (!exists) throw Error(run_dir + ": no candidate " + std::to_string(candidate));
  const RunConfig c = RunConfig::from_yaml(*reg.meta("config"), "<stored config>", "", "");
  const int top = static_cast<int>(c.rungs.size()) - 1;
  for (const auto& e : reg.evaluations())
    if (e.candidate == candidate && e.rung == top) {
      if (const auto why = p.safety_violation(e.metrics); !why.empty())
        throw Error("c" + std::to_string(candidate) + " breaks the policy's safety constraints (" + why + "): not approved");
      audit::AuditLog log((fs::path(run_dir) / audit::kLogFile).string(), true);
      log.append("approval", by, {{"candidate", candidate}, {"metrics", e.metrics}});
      sign_audit_head(log, run_dir, reg);
      reg.approve(candidate, by);
      reg.add_decision(reg.used_seconds(), -1, "approve", "c" + std::to_string(candidate) + " approved by " + by);
      return;
    }
  throw Error("c" + std::to_string(candidate) + " has not been evaluated at the highest fidelity: nothing to approve yet");
}

std::string witness_of(const std::string& run_id, const std::string& head_json) {
  return nlohmann::json{{"run", run_id}, {"head", nlohmann::json::parse(head_json)}}.dump();
}

std::vector<audit::TreeHead> witnessed_heads(const std::string& run_id, const std::vector<std::string>& site_dirs) {
  std::vector<audit::TreeHead> heads;
  for (const std::string& site : site_dirs) {
    const std::string path = (fs::path(site) / audit::kLogFile).string();
    const audit::AuditLog trail(path, false);
    const std::size_t before = heads.size();
    for (const audit::Entry& e : trail.entries(0, trail.size())) {
      if (e.kind != "witness") continue;
      const std::string where = path + " (witness entry " + std::to_string(e.seq) + ")";
      nlohmann::json detail;
      try {
        detail = nlohmann::json::parse(e.detail);
        if (detail.at("run").get<std::string>() != run_id) continue;
      } catch (const nlohmann::json::exception& x) {
        throw Error(where + ": not a witness of a run's head (" + x.what() + ")");
      }
      heads.push_back(audit::parse_head_json(detail.at("head").dump(), where));
    }
    if (heads.size() == before) throw Error(path + " holds no head of run '" + run_id + "'");
  }
  return heads;
}

audit::VerifyReport verify_trail(const std::string& dir, const secure::PublicKey& key, std::vector<audit::TreeHead> more) {
  const audit::AuditLog log((fs::path(dir) / audit::kLogFile).string(), false);
  const std::string head_file = (fs::path(dir) / audit::kHeadFile).string(), registry = (fs::path(dir) / "registry.db").string();
  if (fs::exists(head_file)) {
    more.push_back(audit::parse_head_json(read_file(head_file, 1 << 20), head_file));
  } else if (log.size() > 0) {
    audit::VerifyReport missing;
    missing.problem = head_file + " (the latest signed tree head, kept outside the log) is missing: entries cut off the log's end would not be noticed";
    return missing;
  }
  if (fs::exists(registry))
    if (const auto head = Registry(registry, false, true).meta("audit_head"))
      more.push_back(audit::parse_head_json(*head, registry + " (audit_head)"));
  return log.verify(key, more);
}

}  // namespace gng
