// The slice-ordered gradient sum over MPI: a pipelined chain through the ranks, then a broadcast.
#include "mpi/mpi_exchange.hpp"

#include <mpi.h>

#include <algorithm>

#include "train/stopwatch.hpp"

namespace cnnc::rt {

namespace {

// Floats per message of the chain: small enough that a model of a few chunks pipelines, large
// enough that the per-message latency stays small beside the bytes.
constexpr int64_t chunk_floats = 16384;

}  // namespace

MpiExchange::MpiExchange() {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
}

void MpiExchange::sum_gradients(std::span<const float* const> local, int64_t count, float scale,
                                float* out) {
  // The barrier costs one latency per step; it keeps the load imbalance out of the figure of
  // communication, which docs/scaling.md projects to other networks.
  Clock::time_point t0 = Clock::now();
  MPI_Barrier(MPI_COMM_WORLD);
  wait_seconds_ += seconds_since(t0);
  t0 = Clock::now();
  partial_.resize(static_cast<size_t>(count));
  const int last = ranks_ - 1;
  std::vector<MPI_Request> requests;
  for (int64_t lo = 0; lo < count; lo += chunk_floats) {
    int n = static_cast<int>(std::min(chunk_floats, count - lo));
    float* acc = partial_.data() + lo;
    if (rank_ == 0)
      std::fill(acc, acc + n, 0.0f);
    else
      MPI_Recv(acc, n, MPI_FLOAT, rank_ - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (const float* g : local)
      for (int i = 0; i < n; ++i) acc[i] += g[lo + i];
    if (rank_ < last) {
      requests.emplace_back();
      MPI_Isend(acc, n, MPI_FLOAT, rank_ + 1, 0, MPI_COMM_WORLD, &requests.back());
    } else {
      for (int i = 0; i < n; ++i) out[lo + i] = acc[i] * scale;
    }
    // Each chunk's broadcast starts as soon as this rank is done with the chunk, so the
    // broadcast of one chunk overlaps the chain of the next.
    requests.emplace_back();
    MPI_Ibcast(out + lo, n, MPI_FLOAT, last, MPI_COMM_WORLD, &requests.back());
  }
  MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
  seconds_ += seconds_since(t0);
}

void MpiExchange::gather(std::span<const double> local, std::span<const int32_t> counts,
                         double* all) {
  Clock::time_point t0 = Clock::now();
  std::vector<int> sizes(counts.begin(), counts.end()), offsets(counts.size(), 0);
  for (size_t r = 1; r < sizes.size(); ++r) offsets[r] = offsets[r - 1] + sizes[r - 1];
  MPI_Allgatherv(local.data(), static_cast<int>(local.size()), MPI_DOUBLE, all, sizes.data(),
                 offsets.data(), MPI_DOUBLE, MPI_COMM_WORLD);
  seconds_ += seconds_since(t0);
}

}  // namespace cnnc::rt
