// rt::SliceExchange over MPI_COMM_WORLD: the gradients summed in slice order by a pipelined
// chain through the ranks, then broadcast from the last rank; after the step, or layer by layer
// on a thread of its own while the step runs backward.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "train/slice_exchange.hpp"

namespace cnnc::rt {

// The chain: rank 0 starts every chunk of the parameter range at 0 and adds its slices, sends
// it to rank 1, which adds its own and passes it on; the last rank scales the sum and broadcasts
// it. Every element is thus added in slice order, as one process adds it, and each rank sends
// one gradient's bytes whatever its thread count (an exchange of every slice's gradient would
// send one per thread). Chunks pipeline the chain, so its time approaches that of a ring
// allreduce: about 2 x count x 4 bytes over the slowest link plus a latency per rank.
class MpiExchange final : public SliceExchange {
 public:
  MpiExchange();
  ~MpiExchange() override;
  MpiExchange(const MpiExchange&) = delete;
  MpiExchange& operator=(const MpiExchange&) = delete;

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  void sum_gradients(std::span<const float* const> local, int64_t count, float scale,
                     float* out) override;
  // When MPI runs threads (MPI_THREAD_MULTIPLE) and CNNC_MPI_OVERLAP says so (docs/scaling.md).
  bool overlaps(int64_t count) const override;
  void start_sum(std::span<const float* const> local, std::span<const GradientRange> ranges,
                 float scale, float* out, LayersDone& done) override;
  void finish_sum() override;
  void gather(std::span<const double> local, std::span<const int32_t> counts, double* all) override;

  // Collective: whether `mine` is true on any rank.
  bool any(bool mine);
  // Collective: returns once every rank has called it.
  void barrier();

  // Wall-clock seconds so far spent waiting for the other ranks to finish their slices (a
  // barrier before each sum, or after the slices when overlapped), and in the sums and gathers
  // after it: communication proper, or what of it the slices did not hide.
  double wait_seconds() const { return wait_seconds_; }
  double seconds() const { return seconds_; }

 private:
  struct Overlap;
  void serve();  // the overlap thread: one step's ranges at a time

  int rank_ = 0, ranks_ = 1;
  std::vector<float> partial_;  // the chain's running sums, before scaling
  double wait_seconds_ = 0, seconds_ = 0;
  std::unique_ptr<Overlap> overlap_;  // null when MPI does not run threads
};

}  // namespace cnnc::rt
