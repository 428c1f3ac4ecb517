// The host C++ compiler as a subprocess: finding it, asking who it is, running it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cnnc::codegen {

// Who compiles: what goes into the cache key and what a user is told.
struct CompilerIdentity {
  std::filesystem::path path;  // absolute, as found on PATH
  std::string version_text;    // the whole `--version` output
  std::string short_name;      // "clang++ 14.0.6", "g++ 12.2.0"
};

// An executable file named name: a path when it holds '/', else the first match on PATH.
std::optional<std::filesystem::path> find_on_path(const std::string& name);

// The identity of the compiler at path, asked once per process and path: `--version` costs a
// process start, and a cache hit should cost less than that.
const CompilerIdentity& identify_compiler(const std::filesystem::path& path);

// What a finished subprocess left: its exit status, or the signal that killed it, and its
// stdout and stderr merged in the order written.
struct ProcessResult {
  int status = 0;
  int signal = 0;
  std::string output;
};

// Runs argv[0] (an absolute path) with argv, no shell, LC_ALL=C so the output is not translated.
// Throws BuildError when the process cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace cnnc::codegen
