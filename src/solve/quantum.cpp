// The qaoa and vqe samplers: src/quantum's simulated circuits behind the Sampler interface.
#include "core/error.h"
#include "solve/run.h"
#include "solve/sampler.h"

namespace gng {
namespace {

class QuantumSampler final : public Sampler {
 public:
  explicit QuantumSampler(bool vqe) : vqe_(vqe) {}
  std::string_view name() const override { return vqe_ ? "vqe" : "qaoa"; }

  SampleSet sample(const Qubo& q, const SampleOptions& o) const override {
    if (o.reads < 0) throw Error("reads must be >= 0");
    quantum::RunSettings s = o.quantum;
    s.seed = o.seed;
    s.shots = o.reads > 0 ? static_cast<std::size_t>(o.reads) : 1024;
    s.keep = o.keep;
    s.circuit.threads = detail::thread_count(o);
    SampleSet out = vqe_ ? quantum::run_vqe(q, s).samples : quantum::run_qaoa(q, s).samples;
    if (!out.empty() && reaches_target(o, out.best().energy)) out.stats.time_to_target_s = out.stats.time_s;
    return out;
  }

 private:
  bool vqe_;
};

}  // namespace

std::unique_ptr<Sampler> make_quantum_sampler(bool vqe) { return std::make_unique<QuantumSampler>(vqe); }

}  // namespace gng
