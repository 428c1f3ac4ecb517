// The seam between one training step and the processes of a data-parallel run (runtime/mpi
// implements it over MPI): the runtime itself stays free of any transport.
#pragma once

#include <cstdint>
#include <span>

#include "train/layers_done.hpp"

namespace cnnc::rt {

// A step's slices are numbered as one process with every process's threads would cut the batch;
// each process computes a contiguous share of them, so that rank order is slice order and the
// gradients can be summed in slice order: N processes of T threads then give the bits of one
// process of N x T threads.
class SliceExchange {
 public:
  virtual ~SliceExchange() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;

  // Collective. local: the gradients of this process's share of the slices, in slice order,
  // count floats each (the share may be empty). out [count], on every process: scale * (0 + g_0 +
  // g_1 + ...) over every slice of the step, added in slice order as one process adds them.
  virtual void sum_gradients(std::span<const float* const> local, int64_t count, float scale,
                             float* out) = 0;

  // Whether sum_gradients over `count` floats is better done by start_sum / finish_sum.
  virtual bool overlaps(int64_t count) const = 0;

  // Collective, the overlapped form of sum_gradients over the entries of `ranges` only: each
  // range is summed as soon as `done` has every local slice's report of its layer, on a thread
  // of the exchange's own, so that a layer's gradients travel while the layers below it still
  // run backward. Returns at once; every range of every process is taken in the order given,
  // which must be the same on every process. finish_sum waits until out holds every range.
  // local, out and done must live until finish_sum returns.
  virtual void start_sum(std::span<const float* const> local, std::span<const GradientRange> ranges,
                         float scale, float* out, LayersDone& done) = 0;
  virtual void finish_sum() = 0;

  // Collective. all [sum of counts]: every process's `local` (counts[rank] values) in rank order.
  virtual void gather(std::span<const double> local, std::span<const int32_t> counts,
                      double* all) = 0;
};

struct SliceShare {
  int32_t first = 0, count = 0;
};

// The slices of `parts` that process `rank` of `ranks` computes: contiguous, sizes differing by
// at most one.
inline SliceShare slice_share(int32_t parts, int rank, int ranks) {
  int32_t first = static_cast<int32_t>(int64_t{parts} * rank / ranks);
  int32_t last = static_cast<int32_t>(int64_t{parts} * (rank + 1) / ranks);
  return {first, last - first};
}

}  // namespace cnnc::rt
