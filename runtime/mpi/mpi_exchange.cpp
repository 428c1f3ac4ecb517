// The slice-ordered gradient sum over MPI: a pipelined chain through the ranks, then a broadcast;
// after the step, or layer by layer on a thread while the step runs backward.
#include "mpi/mpi_exchange.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "train/stopwatch.hpp"

namespace cnnc::rt {

namespace {

// Floats per message of the chain: small enough that a model of a few chunks pipelines, large
// enough that the per-message latency stays small beside the bytes.
constexpr int64_t chunk_floats = 16384;

// How often the overlap thread looks at its messages while the slices compute. Open MPI moves a
// message on only while some call of the process is inside MPI, and a thread that stayed inside
// (MPI_Wait spins) would take a CPU from the slices.
constexpr std::chrono::microseconds poll_every{100};

// Tests `requests` until all are complete: spinning in MPI_Waitall, or politely.
void complete(std::vector<MPI_Request>& requests, bool polite) {
  if (!polite) {
    MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
  } else {
    for (int done = 0;;) {
      MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (done) break;
      std::this_thread::sleep_for(poll_every);
    }
  }
  requests.clear();
}

// Where a chain runs: this rank of `ranks` on `comm`, its running sums in `partial`, and
// whether its waits leave the CPU to the slices.
struct Chain {
  int rank, ranks;
  MPI_Comm comm;
  std::vector<float>& partial;
  bool polite;
};

// Adds this rank's slices to each chunk of out[first, first + count) on its way down the chain
// and posts the chunk's broadcast from the last rank. A receive from the previous rank is the
// only wait; sends and broadcasts are left in `requests`.
void chain(const Chain& c, std::span<const float* const> local, int64_t first, int64_t count,
           float scale, float* out, std::vector<MPI_Request>& requests) {
  const int last = c.ranks - 1;
  for (int64_t lo = first; lo < first + count; lo += chunk_floats) {
    int n = static_cast<int>(std::min(chunk_floats, first + count - lo));
    float* acc = c.partial.data() + lo;
    if (c.rank == 0) {
      std::fill(acc, acc + n, 0.0f);
    } else {
      std::vector<MPI_Request> receive(1);
      MPI_Irecv(acc, n, MPI_FLOAT, c.rank - 1, 0, c.comm, receive.data());
      complete(receive, c.polite);
    }
    for (const float* g : local)
      for (int i = 0; i < n; ++i) acc[i] += g[lo + i];
    if (c.rank < last) {
      requests.emplace_back();
      MPI_Isend(acc, n, MPI_FLOAT, c.rank + 1, 0, c.comm, &requests.back());
    } else {
      for (int i = 0; i < n; ++i) out[lo + i] = acc[i] * scale;
    }
    // Each chunk's broadcast starts as soon as this rank is done with the chunk, so the
    // broadcast of one chunk overlaps the chain of the next.
    requests.emplace_back();
    MPI_Ibcast(out + lo, n, MPI_FLOAT, last, c.comm, &requests.back());
  }
}

}  // namespace

struct MpiExchange::Overlap {
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<MPI_Request> requests;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable changed;
  bool busy = false, stop = false;
  // The step under way (start_sum's arguments).
  std::span<const float* const> local;
  std::span<const GradientRange> ranges;
  float scale = 1;
  float* out = nullptr;
  LayersDone* done = nullptr;
};

MpiExchange::MpiExchange() {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE) return;
  overlap_ = std::make_unique<Overlap>();
  MPI_Comm_dup(MPI_COMM_WORLD, &overlap_->comm);
  overlap_->thread = std::thread([this] { serve(); });
}

MpiExchange::~MpiExchange() {
  if (!overlap_) return;
  {
    std::lock_guard lock(overlap_->mutex);
    overlap_->stop = true;
  }
  overlap_->changed.notify_all();
  overlap_->thread.join();
  MPI_Comm_free(&overlap_->comm);
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
  std::vector<MPI_Request> requests;
  chain({rank_, ranks_, MPI_COMM_WORLD, partial_, false}, local, 0, count, scale, out, requests);
  complete(requests, false);
  seconds_ += seconds_since(t0);
}

bool MpiExchange::overlaps(int64_t count) const {
  if (!overlap_) return false;
  const char* choice = std::getenv("CNNC_MPI_OVERLAP");
  // Off unless asked for: on loopback with as many ranks as cores, the exchange's thread takes
  // CPU from the slices and the step gets slower (docs/scaling.md); it pays where a network,
  // not a core, carries the bytes.
  return choice && std::strcmp(choice, "1") == 0 && count > 0;
}

void MpiExchange::start_sum(std::span<const float* const> local,
                            std::span<const GradientRange> ranges, float scale, float* out,
                            LayersDone& done) {
  int64_t end = 0;
  for (const GradientRange& r : ranges) end = std::max(end, r.first + r.count);
  partial_.resize(static_cast<size_t>(end));
  {
    std::lock_guard lock(overlap_->mutex);
    overlap_->local = local;
    overlap_->ranges = ranges;
    overlap_->scale = scale;
    overlap_->out = out;
    overlap_->done = &done;
    overlap_->busy = true;
  }
  overlap_->changed.notify_all();
}

void MpiExchange::finish_sum() {
  // As in sum_gradients, the barrier is the wait for the other ranks' slices; what follows it is
  // the communication the slices did not hide.
  Clock::time_point t0 = Clock::now();
  MPI_Barrier(MPI_COMM_WORLD);
  wait_seconds_ += seconds_since(t0);
  t0 = Clock::now();
  std::unique_lock lock(overlap_->mutex);
  overlap_->changed.wait(lock, [&] { return !overlap_->busy; });
  seconds_ += seconds_since(t0);
}

void MpiExchange::serve() {
  Overlap& o = *overlap_;
  std::unique_lock lock(o.mutex);
  for (;;) {
    o.changed.wait(lock, [&] { return o.busy || o.stop; });
    if (o.stop) return;
    lock.unlock();
    for (const GradientRange& r : o.ranges) {
      // Messages already posted move on only while this thread is inside MPI.
      while (!o.done->wait_for(r.layer, poll_every)) {
        int ignored = 0;
        MPI_Testall(static_cast<int>(o.requests.size()), o.requests.data(), &ignored,
                    MPI_STATUSES_IGNORE);
      }
      chain({rank_, ranks_, o.comm, partial_, true}, o.local, r.first, r.count, o.scale, o.out,
            o.requests);
    }
    complete(o.requests, true);
    lock.lock();
    o.busy = false;
    o.changed.notify_all();
  }
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

bool MpiExchange::any(bool mine) {
  int local = mine ? 1 : 0, anywhere = 0;
  MPI_Allreduce(&local, &anywhere, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
  return anywhere != 0;
}

void MpiExchange::barrier() {
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace cnnc::rt
