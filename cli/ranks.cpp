// Detecting mpirun, and the MPI side of cnnc train when cnnc was built with MPI (CNNC_HAVE_MPI).
#include "cli/ranks.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "cli/commands.hpp"

#ifdef CNNC_HAVE_MPI
#include "mpi/distributed_learner.hpp"
#include "mpi/mpi_session.hpp"
#endif

namespace cnnc::cli {

namespace {

// The job's size as the launcher tells its processes: Open MPI's mpirun, or a PMI launcher
// (MPICH's Hydra, Slurm). Absent when this process was started alone.
std::optional<int> launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  return std::nullopt;
}

#ifdef CNNC_HAVE_MPI
class MpiRanks final : public Ranks {
 public:
  std::unique_ptr<rt::Learner> learner(const cnnc_model& model, std::vector<float>& params,
                                       rt::ThreadPool& pool, int32_t batch) override {
    return std::make_unique<rt::DistributedLearner>(model, params, pool, batch, exchange_);
  }
  double wait_seconds() const override { return exchange_.wait_seconds(); }
  double communication_seconds() const override { return exchange_.seconds(); }
  bool any_rank(bool mine) override { return exchange_.any(mine); }

 protected:
  void wait_for_all() override { exchange_.barrier(); }

 private:
  rt::MpiExchange exchange_;
};
#endif

}  // namespace

std::unique_ptr<rt::Learner> Ranks::learner(const cnnc_model& model, std::vector<float>& params,
                                            rt::ThreadPool& pool, int32_t batch) {
  return std::make_unique<rt::ModelLearner>(model, params, pool, batch);
}

int run_as_ranks(const std::function<int(Ranks&)>& run) {
  std::optional<int> size = launcher_size();
  if (!size || *size <= 1) {
    Ranks alone;
    return run(alone);
  }
#ifdef CNNC_HAVE_MPI
  rt::MpiSession mpi;
  MpiRanks ranks;
  ranks.rank = mpi.rank();
  ranks.ranks = mpi.ranks();
  // Progress, epochs and results are rank 0's to print; errors go to stderr from any rank.
  if (!ranks.leader() && !std::freopen("/dev/null", "w", stdout))
    fmt::print(stderr, "cnnc: warning: rank {} keeps its standard output\n", ranks.rank);
  int status = run(ranks);
  // What the run printed last (rank 0's result and JSON line) is still in stdio's buffer, stdout
  // being a pipe to mpirun: written after MPI_Finalize, mpirun may have stopped forwarding it.
  std::fflush(stdout);
  std::fflush(stderr);
  // Ranks that fail together reach here within moments of each other (they failed at the same
  // step, or on word from rank 0); 5 s covers ranks sharing oversubscribed cores under the
  // sanitizers, and is what a rank failing alone waits before it ends the others.
  if (status != exit_ok && !ranks.ended_together && !mpi.all_reach_within(5.0)) {
    fmt::print(stderr, "cnnc: error: rank {} of {} failed; ending every rank\n", ranks.rank,
               ranks.ranks);
    std::fflush(stderr);
    rt::MpiSession::abort(status);
  }
  return status;
#else
  fmt::print(stderr,
             "cnnc: error: this cnnc was built without MPI, so it cannot train as one of {} "
             "ranks under mpirun; rebuild it with an MPI installed (scripts/setup installs "
             "Open MPI), or run it without mpirun\n",
             *size);
  return exit_user_error;
#endif
}

}  // namespace cnnc::cli
