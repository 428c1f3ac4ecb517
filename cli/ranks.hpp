// cnnc train as one rank of an mpirun job: whether it is one, MPI around the run, the learner
// each rank trains, and the way a failing rank ends them all.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "train/trainer.hpp"

namespace cnnc::cli {

// The processes that train one model: a process alone, or the ranks of an mpirun job.
class Ranks {
 public:
  virtual ~Ranks() = default;
  int rank = 0, ranks = 1;
  bool leader() const { return rank == 0; }
  // What this process trains: the model on all of each batch, or its rank's share.
  virtual std::unique_ptr<rt::Learner> learner(const cnnc_model& model, std::vector<float>& params,
                                               rt::ThreadPool& pool, int32_t batch);
  // Seconds so far spent waiting for the other ranks, and exchanging gradients after that.
  virtual double wait_seconds() const { return 0; }
  virtual double communication_seconds() const { return 0; }
  // Collective, after every step: whether any rank was asked to stop. A signal reaches the
  // ranks at different steps (mpirun sends each SIGTERM when it is interrupted, one rank's
  // Ctrl-C reaches that rank alone), and every rank must stop after the same one.
  virtual bool any_rank(bool mine) { return mine; }
  // Collective: the ranks of a run stopped together end when all are here, that is after rank 0
  // has written the checkpoint of their place, and end with their own status, not as a failure.
  void end_together() {
    wait_for_all();
    ended_together = true;
  }
  bool ended_together = false;

 protected:
  virtual void wait_for_all() {}
};

// Runs `run` as this process's part of an mpirun job (detected from the launcher's environment),
// or alone. Under mpirun, MPI is initialised around it and only rank 0 writes to stdout. Ranks
// whose runs end with a nonzero status all together (or ended together, Ranks::end_together)
// end normally with it; a rank that fails alone says so on stderr and ends every rank
// (MPI_Abort), so that none waits forever for it. A cnnc built without MPI refuses a job of
// several ranks.
int run_as_ranks(const std::function<int(Ranks&)>& run);

}  // namespace cnnc::cli
