// MPI_Init_thread and MPI_Finalize around a run, MPI_Abort when a rank fails.
#include "mpi/mpi_session.hpp"

#include <mpi.h>

#include <cstdlib>
#include <stdexcept>

namespace cnnc::rt {

MpiSession::MpiSession() {
  int provided = 0;
  // MULTIPLE: the exchange's overlap thread sums gradients while the main thread waits at a
  // barrier. The thread pools only compute. An MPI that provides less gets no overlap thread.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    throw std::runtime_error("MPI could not be initialised");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
}

MpiSession::~MpiSession() {
  MPI_Finalize();
}

void MpiSession::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace cnnc::rt
