// LD_PRELOAD library of the interrupted-run tests (test_interrupted_runs.cpp): it times what they
// do to cnnc from inside the process, so that cnnc itself carries no hook for tests.
//   CNNC_TEST_PAUSE_BEFORE_RENAME_MS=N  sleeps N ms before every rename(), which ends each atomic
//     write (runtime/train/atomic_file.cpp): a kill -9 can then be aimed at the moment a whole
//     temporary checkpoint waits for its rename, and a SIGINT sent from outside lands mid-run.
//   CNNC_TEST_SIGINT_AT_STEP=N  raises SIGINT while cnnc train draws the progress line of the Nth
//     step of this process (cli/progress.cpp, from the after_step hook, before the hook asks
//     whether a SIGINT came): Ctrl-C after an exact step, which no signal sent from outside can
//     hit. The line is drawn only on a terminal, so isatty(2) says yes.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

template <class F>
F* next(const char* name) {
  return reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

const char* sigint_at_step() {
  static const char* at = std::getenv("CNNC_TEST_SIGINT_AT_STEP");
  return at;
}

}  // namespace

extern "C" int rename(const char* from, const char* to) {
  static auto* real = next<int(const char*, const char*)>("rename");
  if (const char* pause = std::getenv("CNNC_TEST_PAUSE_BEFORE_RENAME_MS")) {
    long ms = std::atol(pause);
    timespec left{ms / 1000, ms % 1000 * 1000000};
    // A signal cuts nanosleep short; the pause is whole, as the rename it delays.
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
  }
  return real(from, to);
}

extern "C" int isatty(int fd) {
  static auto* real = next<int(int)>("isatty");
  if (fd == STDERR_FILENO && sigint_at_step()) return 1;
  return real(fd);
}

extern "C" size_t fwrite(const void* data, size_t size, size_t count, FILE* stream) {
  static auto* real = next<size_t(const void*, size_t, size_t, FILE*)>("fwrite");
  size_t written = real(data, size, count, stream);
  static long steps = 0;
  static const char progress[] = "\r  epoch ";  // how each step's line begins
  if (sigint_at_step() && stream == stderr && size * count >= sizeof progress - 1 &&
      std::memcmp(data, progress, sizeof progress - 1) == 0 &&
      ++steps == std::atol(sigint_at_step()))
    std::raise(SIGINT);
  return written;
}
