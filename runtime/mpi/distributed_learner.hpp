// What every rank of `mpirun -np N cnnc train` trains: the model behind the C ABI, its share of
// each step's slices, rank 0's checkpoint on resume, and evaluation on rank 0 alone.
#pragma once

#include <cstdint>
#include <vector>

#include "mpi/mpi_exchange.hpp"
#include "train/trainer.hpp"

namespace cnnc::rt {

class DistributedLearner final : public Learner {
 public:
  // params must start equal on every rank (the same seed makes them so).
  DistributedLearner(const cnnc_model& model, std::vector<float>& params, ThreadPool& pool,
                     int32_t batch, MpiExchange& exchange);
  StepResult step(const float* images, const int32_t* labels, int32_t n, const cnnc_optimizer& opt,
                  uint32_t epoch, uint32_t sample_base, uint64_t seed) override;
  StepResult step_then(const float* images, const int32_t* labels, int32_t n,
                       const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                       uint64_t seed, const SplitWork& then) override;
  // On rank 0; the other ranks return an empty result at once, as only rank 0 reports.
  EvalResult evaluate(const LabeledImages& data) override;
  const cnnc_model* model() const override { return inner_.model(); }
  std::vector<float>* params() override { return inner_.params(); }
  std::vector<float>* optimizer_state() override { return inner_.optimizer_state(); }
  // Collective: rank 0 reads the checkpoint and broadcasts it; when it cannot, every rank throws
  // std::runtime_error (rank 0 with the reason), so that no rank waits for the others.
  Checkpoint resume_from(const std::filesystem::path& checkpoint, uint64_t digest,
                         const RunSettings& settings) override;

 private:
  MpiExchange& exchange_;
  ModelLearner inner_;
};

}  // namespace cnnc::rt
