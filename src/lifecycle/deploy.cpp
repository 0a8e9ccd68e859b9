#include "lifecycle/deploy.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "secure/crypto.h"

namespace gng {

namespace {

struct Snapshot {
  double drift_psi = -1, latency_p99_ms = -1, feedback_accuracy = -1;
  long requests = 0;
  std::string drift = "?";
};

Snapshot parse_snapshot(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : -1.0; };
  return {num("drift_psi"), num("latency_p99_ms"), num("feedback_accuracy"), j.value("requests", 0L),
          j.value("drift", std::string("?"))};
}

void merge(Policy::Telemetry& worst, const Snapshot& s) {
  worst.drift_psi = std::max(worst.drift_psi, s.drift_psi);
  worst.latency_p99_ms = std::max(worst.latency_p99_ms, s.latency_p99_ms);
  if (s.feedback_accuracy >= 0)
    worst.feedback_accuracy = worst.feedback_accuracy < 0 ? s.feedback_accuracy : std::min(worst.feedback_accuracy, s.feedback_accuracy);
}

}  // namespace

Policy::Telemetry worst_telemetry(const std::vector<std::string>& snapshots) {
  Policy::Telemetry worst;
  for (const auto& text : snapshots) {
    try {
      merge(worst, parse_snapshot(text));
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("telemetry is not JSON: ") + e.what());
    }
  }
  return worst;
}

void deploy(RunState& run, NodePool& nodes, int cycle, std::string& deployed) {
  if (!nodes.enabled()) return;
  const auto promotions = run.reg.promotions();
  if (promotions.empty()) return;
  const std::string model = promotions.back().model;
  const std::string digest = secure::hex(secure::sha256(secure::view(read_file(model))));
  if (digest == deployed) return;
  int accepted = 0;
  nodes.refresh();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes.up(i)) continue;
    try {
      const int port = nodes.client(i).deploy(run.id(), model);
      ++accepted;
      run.note(cycle, "deploy", nodes.id(i) + " serves model " + digest.substr(0, 12) + " on its port " + std::to_string(port) +
                                    " (/v1/predict)");
    } catch (const std::exception& e) {
      run.note(cycle, "deploy", nodes.id(i) + ": not deployed: " + e.what());
    }
  }
  if (accepted > 0) deployed = digest;
}

void observe(RunState& run, NodePool& nodes, int cycle, const std::string& deployed) {
  if (!nodes.enabled() || deployed.empty()) return;
  std::vector<std::string> snapshots;  // the nodes' that parsed
  std::string seen;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes.up(i)) continue;
    try {
      const std::string text = nodes.client(i).telemetry();
      if (text.empty()) continue;
      const Snapshot s = parse_snapshot(text);
      snapshots.push_back(text);
      seen += (seen.empty() ? "" : "; ") + nodes.id(i) + ": " + std::to_string(s.requests) + " requests, drift " + s.drift;
    } catch (const std::exception& e) {
      seen += (seen.empty() ? "" : "; ") + nodes.id(i) + ": no telemetry (" + e.what() + ")";
    }
  }
  if (seen.empty()) return;
  run.note(cycle, "telemetry", seen);
  const std::string change = run.policy.react(worst_telemetry(snapshots), run.base);
  if (change.empty()) return;
  nlohmann::json weights(run.policy.objectives);
  {
    std::lock_guard lock(run.mutex);
    run.audit.append("policy", "orchestrator", {{"cycle", cycle}, {"objectives", weights}, {"reason", change}});
    run.reg.set_meta("objectives", weights.dump());
  }
  run.note(cycle, "objective", change);
}

}  // namespace gng
