// MPI for the lifetime of one object: initialised on construction, finalised on destruction,
// and the way out for a rank that fails (every rank of the job ends with it).
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

  // Ends every rank of the job with exit status `code` (MPI_Abort): a rank that cannot go on
  // must not leave the others waiting forever in a collective.
  [[noreturn]] static void abort(int code);

 private:
  int rank_ = 0, ranks_ = 1;
};

}  // namespace cnnc::rt
