// How a test that cannot run on this machine says so: ctest marks a test whose output holds
// "CNNC-SKIPPED:" as skipped, never as passed (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
// `what` names what is missing in a word scripts/test knows (data, compiler, clang, onednn, mpi,
// chromium, or isa:<feature> as /proc/cpuinfo spells it), so that CI fails a machine that skipped
// what it has.
#pragma once

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#define CNNC_SKIP(what, message)                                      \
  do {                                                                \
    std::cout << "CNNC-SKIPPED: [" what "] " << message << std::endl; \
    return;                                                           \
  } while (false)

namespace cnnc_test {

// Whether /proc/cpuinfo lists the CPU feature (as it spells them: "avx512_bf16").
inline bool cpu_has(const std::string& feature) {
  std::ifstream in("/proc/cpuinfo");
  std::stringstream s;
  s << in.rdbuf();
  return s.str().find(" " + feature) != std::string::npos;
}

}  // namespace cnnc_test
