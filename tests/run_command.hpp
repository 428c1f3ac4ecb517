// Running a program as a user does, from the source directory: its exit status and its output.
// Shared by the tests that drive cnnc and the executables it builds.
#pragma once

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace cnnc_test {

struct Run {
  int status;
  std::string out;  // stdout and stderr, in that order
};

// What a command printed, stdout and stderr apart (a script reads stdout alone).
struct Output {
  int status;
  std::string out, err;
};

// Runs a shell command line (quoted by the caller) from the source directory.
inline Output run_apart(const std::string& command) {
  // stderr goes to a file of this process's own, so tests may run in parallel.
  std::string err = "/tmp/cnnc_test_" + std::to_string(getpid()) + ".stderr";
  std::string cmd = "cd '" CNNC_SOURCE_DIR "' && " + command + " 2>" + err;
  std::FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  Output o{-1, {}, {}};
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) o.out.append(buf.data(), n);
  int raw = pclose(p);
  if (std::FILE* e = std::fopen(err.c_str(), "r")) {
    while (size_t n = std::fread(buf.data(), 1, buf.size(), e)) o.err.append(buf.data(), n);
    std::fclose(e);
  }
  std::remove(err.c_str());
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return o;
}

// The same, with stderr after stdout, as a user reads a terminal.
inline Run run(const std::string& command) {
  Output o = run_apart(command);
  return {o.status, o.out + o.err};
}

inline Run run_cnnc(const std::string& args) {
  return run("'" CNNC_EXE "' " + args);
}

// Runs cnnc with args and checks that it refuses them: exit 1 and exactly `message` printed.
// Under `timeout`, so that a command that hangs fails instead of stalling the suite.
inline void check_refusal(const std::string& args, const std::string& message) {
  INFO("cnnc " << args);
  Run r = run("timeout 60 '" CNNC_EXE "' " + args);
  CHECK(r.status == 1);
  CHECK(r.out == message);
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

inline bool have_mnist() {
  return std::filesystem::exists(CNNC_SOURCE_DIR "/data/mnist/t10k-labels-idx1-ubyte");
}

// A directory of this process's own under /tmp, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path("/tmp/cnnc_test_" + name + "_" + std::to_string(getpid())) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace cnnc_test
