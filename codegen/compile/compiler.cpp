// Finding, identifying and running the host compiler, with posix_spawn and a pipe.
#include "codegen/compile/compiler.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "codegen/compile/build.hpp"

extern char** environ;

namespace cnnc::codegen {

namespace {

bool is_executable_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// "Debian clang version 14.0.6" -> "clang++ 14.0.6"; "g++ (Debian 12.2.0-14) 12.2.0" and
// "c++ (...) 12.2.0" -> "g++ 12.2.0". Anything else keeps its first line.
std::string short_name_of(const std::filesystem::path& path, const std::string& version_text) {
  std::string first = version_text.substr(0, version_text.find('\n'));
  if (size_t at = first.find("clang version "); at != std::string::npos) {
    std::string rest = first.substr(at + 14);
    return "clang++ " + rest.substr(0, rest.find(' '));
  }
  if (version_text.find("Free Software Foundation") != std::string::npos) {
    return "g++ " + first.substr(first.rfind(' ') + 1);
  }
  return first.empty() ? path.filename().string() : first;
}

}  // namespace

std::optional<std::filesystem::path> find_on_path(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    std::filesystem::path p = std::filesystem::absolute(name);
    return is_executable_file(p) ? std::optional(p) : std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  std::string dirs = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  for (size_t begin = 0; begin <= dirs.size();) {
    size_t end = std::min(dirs.find(':', begin), dirs.size());
    // An empty PATH element means the current directory, as for execvp.
    std::filesystem::path dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    if (std::filesystem::path p = std::filesystem::absolute(dir / name); is_executable_file(p)) {
      return p;
    }
    begin = end + 1;
  }
  return std::nullopt;
}

std::optional<std::filesystem::path> find_compiler(const std::string& name) {
  if (!name.empty()) return find_on_path(name);
  const char* cxx = std::getenv("CXX");
  for (const char* candidate : {cxx ? cxx : "", "clang++-19", "clang++", "c++"}) {
    if (auto found = find_on_path(candidate)) return found;
  }
  return std::nullopt;
}

const CompilerIdentity& identify_compiler(const std::filesystem::path& path) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, CompilerIdentity> known;
  std::lock_guard lock(mutex);
  if (auto it = known.find(path); it != known.end()) return it->second;
  ProcessResult r = run_process({path.string(), "--version"});
  if (r.status != 0 || r.signal != 0) {
    throw BuildError(fmt::format("the C++ compiler '{}' failed to report its version: {}",
                                 path.string(), r.output));
  }
  return known.emplace(path, CompilerIdentity{path, r.output, short_name_of(path, r.output)})
      .first->second;
}

ProcessResult run_process(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  std::vector<std::string> env_text{"LC_ALL=C"};
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "LC_ALL=", 7) != 0) env_text.emplace_back(*e);
  }
  std::vector<char*> env;
  for (std::string& e : env_text) env.push_back(e.data());
  env.push_back(nullptr);

  // O_CLOEXEC: a compiler that another thread starts at the same moment must not inherit our
  // write end, or our read would wait for that other compiler to finish too.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw BuildError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  pid_t pid = 0;
  int err = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    throw BuildError(fmt::format("cannot run {}: {}", argv[0], std::strerror(err)));
  }

  ProcessResult result;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      result.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(wstatus)) {
    result.signal = WTERMSIG(wstatus);
  } else {
    result.status = WEXITSTATUS(wstatus);
  }
  return result;
}

}  // namespace cnnc::codegen
