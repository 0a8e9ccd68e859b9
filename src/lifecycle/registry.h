#pragma once
// The run's state: one SQLite file, runs/<id>/registry.db. Every candidate (bits, design, lineage),
// every evaluation (fidelity, metrics, score), every decision, approval and promotion. Each write
// is one transaction committed (WAL, synchronous=FULL) before the loop goes on, so a process killed
// at any moment loses at most the evaluation it was running. Other processes (`gng approve`,
// `gng status`) may open the same file while a run holds it.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

struct sqlite3;

namespace gng {

struct CandidateRow {
  int id = 0;
  int cycle = 0;
  std::string bits;    // "0110…"
  std::string design;  // JSON
  std::string origin;  // how it was generated
};

struct EvaluationRow {
  int candidate = 0;
  int rung = 0;
  std::map<std::string, double> metrics;
  double score = 0;
  std::string model;  // saved weights, or empty
};

struct DecisionRow {
  double time_s = 0;
  int cycle = 0;
  std::string kind, text;
};

struct PromotionRow {
  int candidate = 0;
  int cycle = 0;
  std::string approved_by;  // "policy (auto)", "operator", or who approved it
  std::string model;        // promoted.pt
  bool federated = false;   // the weights are the candidate's federated model (c<id>-fed<cycle>.pt)
  std::map<std::string, double> metrics;  // that federated model's metrics; empty when not federated
};

// One site of the roster: who dialled in, with what data, when, and how it stands now.
struct SiteRow {
  std::string id, fingerprint, address;
  std::string data;                 // JSON: input_shape, classes, train/validation samples, label counts, qkd
  double first_seen = 0, last_seen = 0;  // seconds since the epoch
  std::string state, why;           // up | lost | refused, and why
};

class Registry {
 public:
  // Schema versions, in meta "format" ("gng registry v2"): 1 (gng up to 72f8c39: facts kept as
  // strings — a "; federated" suffix in approved_by, JSON in meta for the refused challengers and the
  // federated model's metrics), 2 (they have columns and a table). Opening a version-1 registry
  // migrates it in one transaction (so it needs write access); builds that know only version 1 refuse
  // a version-2 file. Upgrade gng between runs, not while one runs.
  static constexpr int kSchemaVersion = 2;

  // Opens (creating when `create`) the registry; throws gng::Error naming the file when it is not a
  // gng registry, is of a newer schema than this build knows, or cannot be opened. `read_only`: for
  // readers (gng status, gng nodes), which must not write what they read; a file that still needs
  // its one-time upgrade (version 1, or no sites table yet) is opened for writing once to get it.
  Registry(const std::string& path, bool create, bool read_only = false);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Groups writes into one transaction (nested calls join the outer one).
  void begin();
  void commit();

  void set_meta(const std::string& key, const std::string& value);
  std::optional<std::string> meta(const std::string& key) const;

  // Inserts a candidate; returns its id. Bits are unique within a run.
  int add_candidate(int cycle, const std::string& bits, const std::string& design, const std::string& origin);
  std::vector<CandidateRow> candidates() const;
  void add_evaluation(const EvaluationRow& e, double seconds);
  std::vector<EvaluationRow> evaluations() const;
  void add_decision(double time_s, int cycle, const std::string& kind, const std::string& text);
  std::vector<DecisionRow> decisions() const;

  void approve(int candidate, const std::string& by);
  bool approved(int candidate) const;
  void promote(const PromotionRow& p);
  std::vector<PromotionRow> promotions() const;

  // Challengers that were federated and still lost to the promoted model: never considered again.
  void refuse(int candidate);
  std::set<int> refused() const;

  // The roster of sites (node/hub.h): one row per site id, the latest word on it (first_seen kept).
  void put_site(const SiteRow& r);
  std::vector<SiteRow> sites() const;

  // Seconds the run has used, over every session (each session adds its own).
  int begin_session();
  void set_session_seconds(int session, double seconds);
  double used_seconds() const;

 private:
  void exec(const std::string& sql) const;
  void migrate_from_v1();
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace gng
