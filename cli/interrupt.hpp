// Ctrl-C during cnnc train: the first SIGINT asks the run to stop after the step under way (and
// checkpoint where it stands); a second one ends the process at once, as SIGINT does by default.
#pragma once

#include <csignal>

namespace cnnc::cli {

// Exit status of a run stopped by SIGINT, as a shell reports a process SIGINT ended.
inline constexpr int exit_interrupted = 128 + SIGINT;

// Catches SIGINT while it lives; the handler only sets the flag, and leaves the default action
// in place for the next SIGINT (SA_RESETHAND). The previous action is restored at the end.
class InterruptRequest {
 public:
  InterruptRequest();
  ~InterruptRequest();
  InterruptRequest(const InterruptRequest&) = delete;
  InterruptRequest& operator=(const InterruptRequest&) = delete;

  bool requested() const;

 private:
  struct sigaction previous_ {};
};

}  // namespace cnnc::cli
