// MPI_Init_thread and MPI_Finalize around a run; the ranks that fail together end normally,
// MPI_Abort ends the job when one fails alone.
#include "mpi/mpi_session.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace cnnc::rt {

namespace {
// all_reach_within's own communicator, so that its barrier cannot pair with a collective that a
// rank still training has under way. One per process, as MPI_Init is.
MPI_Comm failure_comm = MPI_COMM_NULL;
}  // namespace

MpiSession::MpiSession() {
  int provided = 0;
  // MULTIPLE: the exchange's overlap thread sums gradients while the main thread waits at a
  // barrier. The thread pools only compute. An MPI that provides less gets no overlap thread.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    throw std::runtime_error("MPI could not be initialised");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  MPI_Comm_dup(MPI_COMM_WORLD, &failure_comm);
}

MpiSession::~MpiSession() {
  MPI_Comm_free(&failure_comm);
  MPI_Finalize();
}

bool MpiSession::all_reach_within(double seconds) {
  MPI_Request all_here;
  MPI_Ibarrier(failure_comm, &all_here);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int done = 0;
    MPI_Test(&all_here, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    // A rank still training never comes; the caller then ends the job, this request with it.
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void MpiSession::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace cnnc::rt
