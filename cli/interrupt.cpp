// The SIGINT flag of cnnc train.
#include "cli/interrupt.hpp"

namespace cnnc::cli {

namespace {

volatile std::sig_atomic_t interrupt_flag = 0;

extern "C" void on_sigint(int) {
  interrupt_flag = 1;
}

}  // namespace

InterruptRequest::InterruptRequest() {
  interrupt_flag = 0;
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  // Restarted system calls: a read or write under way is not cut short by the first Ctrl-C.
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, &previous_);
}

InterruptRequest::~InterruptRequest() {
  sigaction(SIGINT, &previous_, nullptr);
}

bool InterruptRequest::requested() const {
  return interrupt_flag != 0;
}

}  // namespace cnnc::cli
