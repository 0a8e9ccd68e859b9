#pragma once
// The run report: one self-contained HTML page (inline SVG, no scripts or network needed) and the
// same summary as terminal text for `gng status`.
#include <map>
#include <string>
#include <vector>

namespace gng {

struct ReportCandidate {
  int id = 0;
  int cycle = 0;
  std::string bits;                       // "0110…"
  std::string design;                     // short text, e.g. "width=32 depth=2 activation=gelu"
  int rung = 0;                           // highest fidelity rung reached
  double epochs = 0;                      // training epochs at that rung
  double score = 0;                       // multi-objective score at that rung (higher is better)
  std::map<std::string, double> metrics;  // accuracy, latency_ms, params, flops, energy_mj, robustness, …
  bool pareto = false;                    // on the Pareto front of the full-fidelity candidates
  bool promoted = false;
  std::string status;                     // e.g. "evaluated", "stopped at rung 0", "unsafe: …"
};

struct ReportDecision {
  double time_s = 0;  // since the run started
  std::string kind;   // generate | evaluate | select | promote | approve | resume | …
  std::string text;
};

struct ReportData {
  std::string run_id;
  std::string config;                 // path of the run's config
  std::string state;                  // running | awaiting approval | finished | stopped: …
  std::string sampler;                // e.g. "tabu"
  std::map<std::string, std::string> sampler_stats;  // name → value, shown as a table
  std::string notes;                  // plain text shown at the top (e.g. what is simulated)
  double elapsed_s = 0, budget_s = 0;
  int cycles_done = 0, cycles = 0;
  std::vector<std::string> objectives;               // metric names in the score, with weights in text
  std::vector<ReportCandidate> candidates;           // in evaluation order
  std::vector<std::pair<double, double>> convergence;  // (evaluations so far, best score so far)
  std::vector<std::string> bit_names;                // surrogate's coordinates
  std::vector<std::vector<double>> couplings;        // symmetric bit_names × bit_names b_ij (diag: a_i)
  std::vector<ReportDecision> decisions;
  std::map<std::string, double> promoted_metrics;    // the promoted model's, incl. test accuracy
  std::string promoted_path;                         // exported model file, if any
  std::string audit_head;  // the trail's latest signed tree head (audit::head_json), kept here too
};

// A complete HTML5 document (UTF-8): header summary, convergence plot, Pareto-front scatter
// (accuracy vs latency, front highlighted), heat map of the couplings with bit names, sampler and
// its statistics, candidates table, decisions log, the audit trail's latest signed head. All text is
// HTML-escaped.
std::string render_html(const ReportData& r);
// The terminal summary: state, progress, best so far, time used/left, promoted model, top candidates.
std::string render_text(const ReportData& r);
// Writes render_html(r) to `path` atomically (temporary file + rename). Throws gng::Error on failure.
void write_report(const std::string& path, const ReportData& r);

}  // namespace gng
