// A rank's learner: ModelLearner with the MPI exchange, and the checkpoint rank 0 resumes from.
#include "mpi/distributed_learner.hpp"

#include <mpi.h>

#include <stdexcept>
#include <string>

namespace cnnc::rt {

DistributedLearner::DistributedLearner(const cnnc_model& model, std::vector<float>& params,
                                       ThreadPool& pool, int32_t batch, MpiExchange& exchange)
    : exchange_(exchange), inner_(model, params, pool, batch, &exchange) {}

StepResult DistributedLearner::step(const float* images, const int32_t* labels, int32_t n,
                                    const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                                    uint64_t seed) {
  return inner_.step(images, labels, n, opt, epoch, sample_base, seed);
}

StepResult DistributedLearner::step_then(const float* images, const int32_t* labels, int32_t n,
                                         const cnnc_optimizer& opt, uint32_t epoch,
                                         uint32_t sample_base, uint64_t seed,
                                         const SplitWork& then) {
  return inner_.step_then(images, labels, n, opt, epoch, sample_base, seed, then);
}

EvalResult DistributedLearner::evaluate(const LabeledImages& data) {
  return exchange_.rank() == 0 ? inner_.evaluate(data) : EvalResult{};
}

Checkpoint DistributedLearner::resume_from(const std::filesystem::path& checkpoint, uint64_t digest,
                                           const RunSettings& settings) {
  Checkpoint c;
  int ok = 1;
  std::string error;
  if (exchange_.rank() == 0) {
    try {
      c = load_to_resume(checkpoint, digest, inner_.model()->param_count, settings);
    } catch (const std::runtime_error& e) {
      ok = 0;
      error = e.what();
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!ok)
    throw std::runtime_error(exchange_.rank() == 0 ? error
                                                   : "rank 0 could not read the checkpoint");
  // Where the run stands, within an epoch too; the settings were checked on rank 0.
  uint64_t header[6] = {c.model_digest,
                        c.epochs_done,
                        c.batches_done,
                        static_cast<uint64_t>(c.step),
                        static_cast<uint64_t>(c.correct),
                        static_cast<uint64_t>(c.images)};
  MPI_Bcast(header, 6, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  c.model_digest = header[0];
  c.epochs_done = static_cast<uint32_t>(header[1]);
  c.batches_done = static_cast<uint32_t>(header[2]);
  c.step = static_cast<int64_t>(header[3]);
  c.correct = static_cast<int64_t>(header[4]);
  c.images = static_cast<int64_t>(header[5]);
  double sums[2] = {c.loss_sum, c.seconds};
  MPI_Bcast(sums, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  c.loss_sum = sums[0];
  c.seconds = sums[1];
  // The sizes are the model's, the same on every rank: load_checkpoint checked them on rank 0.
  c.params.resize(inner_.params()->size());
  c.optimizer.resize(inner_.optimizer_state()->size());
  MPI_Bcast(c.params.data(), static_cast<int>(c.params.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  MPI_Bcast(c.optimizer.data(), static_cast<int>(c.optimizer.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  return c;
}

}  // namespace cnnc::rt
