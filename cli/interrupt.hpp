// Ctrl-C during cnnc train, or SIGTERM (what `kill` sends, and what mpirun sends every rank when
// it is interrupted): the first one asks the run to stop after the step under way (and
// checkpoint where it stands); a second one of the same kind ends the process at once, as that
// signal does by default.
#pragma once

#include <csignal>

namespace cnnc::cli {

// Exit status of a run stopped by SIGINT, as a shell reports a process SIGINT ended.
inline constexpr int exit_interrupted = 128 + SIGINT;

// Catches SIGINT and SIGTERM while it lives; the handler only records the signal, and leaves
// the default action in place for the next one (SA_RESETHAND). The previous actions are
// restored at the end.
class InterruptRequest {
 public:
  InterruptRequest();
  ~InterruptRequest();
  InterruptRequest(const InterruptRequest&) = delete;
  InterruptRequest& operator=(const InterruptRequest&) = delete;

  bool requested() const;
  // 128 + the first signal caught (exit_interrupted for SIGINT), as a shell reports a process
  // that signal ended; exit_interrupted when none was (another rank's signal stopped the run).
  int exit_status() const;

 private:
  struct sigaction previous_int_ {
  }, previous_term_{};
};

}  // namespace cnnc::cli
