// MPI for the lifetime of one object: initialised on construction, finalised on destruction,
// and the ways out for ranks that fail: together, each with its own status, or alone, ending
// every rank of the job.
#pragma once

namespace cnnc::rt {

class MpiSession {
 public:
  // MPI for the calling thread and rt::MpiExchange's overlap thread; the thread pools never
  // call it.
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }

  // Whether every rank of the job called this within `seconds` of this rank: the ranks that
  // failed together (rank 0 could not read the checkpoint and told the others) then end
  // normally, each having said why. MPI_Abort would end them at once, and mpirun may drop the
  // last words of a rank it kills, rank 0's reason among them.
  bool all_reach_within(double seconds);

  // Ends every rank of the job with exit status `code` (MPI_Abort): a rank that cannot go on
  // must not leave the others waiting forever in a collective.
  [[noreturn]] static void abort(int code);

 private:
  int rank_ = 0, ranks_ = 1;
};

}  // namespace cnnc::rt
