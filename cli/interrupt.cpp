// The SIGINT and SIGTERM flag of cnnc train.
#include "cli/interrupt.hpp"

namespace cnnc::cli {

namespace {

volatile std::sig_atomic_t caught = 0;  // the first signal caught, or 0

extern "C" void on_signal(int signal) {
  if (caught == 0) caught = signal;
}

}  // namespace

InterruptRequest::InterruptRequest() {
  caught = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // Restarted system calls: a read or write under way is not cut short by the first signal.
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

InterruptRequest::~InterruptRequest() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

bool InterruptRequest::requested() const {
  return caught != 0;
}

int InterruptRequest::exit_status() const {
  return caught != 0 ? 128 + caught : exit_interrupted;
}

}  // namespace cnnc::cli
