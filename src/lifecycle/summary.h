#pragma once
// A run's summary for `gng status`, `gng run` and the HTML report (report/report.h renders it):
// read from its registry alone, so it works while the run goes on, after it ended, or crashed.
#include <string>

#include "report/report.h"

namespace gng {

// The candidates (each at its highest rung, with the Pareto front over accuracy, robustness,
// latency and parameters), convergence, the surrogate's learned couplings, decisions and the
// promoted model's metrics (the federated model's when federation replaced its weights, and its
// test accuracy). gng::Error naming the registry when it cannot be read.
ReportData summarize_run(const std::string& dir);

}  // namespace gng
