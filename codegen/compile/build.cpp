// build_generated: cache lookup, the compiler subprocess on a miss, dlopen, and what a failure
// tells the user.
#include "build.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "abi_header.hpp"
#include "cache.hpp"
#include "compiler.hpp"
#include "sha256.hpp"

namespace cnnc::codegen {

namespace fs = std::filesystem;

namespace {

// Enough of the compiler's output to show the first errors without burying the message.
constexpr size_t diagnostic_lines = 40;

bool is_identifier(const std::string& s) {
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (s.empty() || !alpha(s[0])) return false;
  for (char c : s) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw BuildError(
        fmt::format("cannot create the cache directory {}: {}", dir.string(), ec.message()));
  }
}

fs::path resolve_cache_dir(const BuildOptions& options) {
  if (!options.cache_dir.empty()) return fs::absolute(options.cache_dir);
  // XDG: a relative $XDG_CACHE_HOME is invalid and must be ignored.
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/') {
    return fs::path(xdg) / "cnnc";
  }
  if (const char* home = std::getenv("HOME"); home && home[0] != '\0') {
    return fs::path(home) / ".cache" / "cnnc";
  }
  throw BuildError(
      "cannot choose a cache directory for generated code: neither XDG_CACHE_HOME nor HOME is set");
}

// <cache>/include/<hash>/cnnc_abi.h: named by its content, so cnnc versions whose headers differ
// can share one cache without overwriting each other's header mid-compile.
fs::path install_abi_header(const fs::path& cache_dir) {
  std::string_view text = abi_header_text();
  fs::path dir = cache_dir / "include" / sha256_hex(text).substr(0, 16);
  std::error_code ec;
  if (fs::file_size(dir / "cnnc_abi.h", ec) != text.size() || ec) {
    make_dirs(dir);
    write_file_atomically(dir / "cnnc_abi.h", std::string(text));
  }
  return dir;
}

std::string first_lines(const std::string& text, size_t count) {
  size_t end = 0;
  for (size_t line = 0; line < count && end < text.size(); ++line) {
    size_t nl = text.find('\n', end);
    end = nl == std::string::npos ? text.size() : nl + 1;
  }
  std::string shown = text.substr(0, end);
  if (end < text.size()) {
    size_t more = static_cast<size_t>(
        std::count(text.begin() + static_cast<std::ptrdiff_t>(end), text.end(), '\n'));
    shown += fmt::format("[... {} more lines]\n", more);
  }
  return shown;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The compiler's command line: flags, the include directory of the ABI header, source, output.
std::vector<std::string> compile_command(const CompilerIdentity& compiler,
                                         const std::vector<std::string>& flags,
                                         const fs::path& include_dir, const fs::path& source,
                                         const fs::path& output) {
  std::vector<std::string> argv{compiler.path.string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"-I", include_dir.string(), source.string(), "-o", output.string()});
  return argv;
}

// Compiles source into entry's model.so and writes its meta.txt; on failure saves the source
// under <cache>/failed/ and throws the BuildError that calls it cnnc's bug.
void compile_entry(const CacheEntry& entry, const fs::path& cache_dir, const std::string& source,
                   const std::string& model_name, const CompilerIdentity& compiler,
                   const std::vector<std::string>& flags) {
  make_dirs(entry.dir);
  fs::path include_dir = install_abi_header(cache_dir);
  // Every process that builds this key writes the same text here, so replacing it under a
  // running compiler is harmless.
  write_file_atomically(entry.source(), source);
  TempFile compiled(unique_temp_name(entry.library()));

  auto start = std::chrono::steady_clock::now();
  ProcessResult result =
      run_process(compile_command(compiler, flags, include_dir, entry.source(), compiled.path()));
  double compile_seconds = seconds_since(start);
  if (result.status != 0 || result.signal != 0) {
    make_dirs(cache_dir / "failed");
    fs::path saved =
        cache_dir / "failed" /
        fmt::format("{}-{}.cpp", model_name, entry.dir.filename().string().substr(0, 16));
    write_file_atomically(saved, source);
    // The entry holds no library; drop its source so that no half entry stays behind. A
    // concurrent build of the same broken source then fails on a missing file: the same bug.
    std::error_code ignored;
    fs::remove(entry.source(), ignored);
    fs::remove(entry.dir, ignored);
    throw BuildError(fmt::format(
        "internal error: the generated code for model {} did not compile; this is a bug in "
        "cnnc, please report it\n"
        "  compiler: {} ({}), {}\n"
        "  source saved to: {}\n"
        "  to reproduce: {}\n"
        "the compiler said:\n{}",
        model_name, compiler.path.string(), compiler.short_name,
        result.signal ? fmt::format("killed by signal {}", result.signal)
                      : fmt::format("exit status {}", result.status),
        saved.string(),
        fmt::join(compile_command(compiler, flags, include_dir, saved, "/dev/null"), " "),
        first_lines(replace_all(result.output, entry.source().string(), saved.string()),
                    diagnostic_lines)));
  }
  std::string meta = meta_text(compiled.path(), model_name, compiler, flags, compile_seconds);
  std::error_code ec;
  fs::rename(compiled.path(), entry.library(), ec);
  if (ec) {
    throw BuildError(fmt::format("cannot move the compiled model into the cache at {}: {}",
                                 entry.library().string(), ec.message()));
  }
  compiled.release();
  write_file_atomically(entry.meta(), meta);
}

}  // namespace

GeneratedModel::GeneratedModel(GeneratedModel&& other) noexcept {
  *this = std::move(other);
}

GeneratedModel& GeneratedModel::operator=(GeneratedModel&& other) noexcept {
  if (this != &other) {
    if (handle_) ::dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    create_ = std::exchange(other.create_, nullptr);
    destroy_ = std::exchange(other.destroy_, nullptr);
    how_ = std::move(other.how_);
    build_seconds_ = other.build_seconds_;
    compiler_ = std::move(other.compiler_);
    library_ = std::move(other.library_);
  }
  return *this;
}

GeneratedModel::~GeneratedModel() {
  if (handle_) ::dlclose(handle_);
}

cnnc_model* GeneratedModel::create(int32_t max_batch, const std::string& target) const {
  return create_(max_batch, target.c_str());
}

void GeneratedModel::destroy(cnnc_model* model) const {
  destroy_(model);
}

ModelPtr GeneratedModel::make(int32_t max_batch, const std::string& target) const {
  return ModelPtr(create(max_batch, target), ModelDeleter{destroy_});
}

GeneratedModel build_generated(const std::string& source, const std::string& model_name,
                               const BuildOptions& options) {
  if (!is_identifier(model_name)) {
    throw std::invalid_argument(
        fmt::format("build_generated: model name '{}' is not a C identifier", model_name));
  }
  auto start = std::chrono::steady_clock::now();
  std::optional<fs::path> compiler_path = find_compiler(options.compiler);
  if (!compiler_path) {
    throw BuildError(
        options.compiler.empty()
            ? fmt::format("cannot build the generated code for model {}: no C++ compiler found on "
                          "PATH (tried $CXX, clang++-19, clang++, c++); install clang or g++, or "
                          "set CXX",
                          model_name)
            : fmt::format("cannot build the generated code for model {}: the C++ compiler '{}' "
                          "was not found{}",
                          model_name, options.compiler,
                          options.compiler.find('/') == std::string::npos ? " on PATH" : ""));
  }
  const CompilerIdentity& compiler = identify_compiler(*compiler_path);
  fs::path cache_dir = resolve_cache_dir(options);
  std::string key = cache_key(source, model_name, compiler, options.flags);
  CacheEntry entry{cache_dir / "v1" / key};

  GeneratedModel model;
  model.compiler_ = compiler.short_name;
  model.library_ = entry.library();
  if (options.use_cache && entry_is_valid(entry)) {
    model.how_ = "cache";
  } else {
    model.how_ = "subprocess";
    compile_entry(entry, cache_dir, source, model_name, compiler, options.flags);
  }

  // RTLD_LOCAL: two models may define the same internal names. The file loaded is complete
  // whatever other processes do meanwhile: they only ever rename whole files into place.
  model.handle_ = ::dlopen(entry.library().c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!model.handle_) {
    throw BuildError(fmt::format("internal error: cannot load the compiled model {}: {}",
                                 entry.library().string(), ::dlerror()));
  }
  std::string create_name = fmt::format("cnnc_{}_create", model_name);
  std::string destroy_name = fmt::format("cnnc_{}_destroy", model_name);
  model.create_ = reinterpret_cast<cnnc_model* (*)(int32_t, const char*)>(
      ::dlsym(model.handle_, create_name.c_str()));
  model.destroy_ =
      reinterpret_cast<void (*)(cnnc_model*)>(::dlsym(model.handle_, destroy_name.c_str()));
  if (!model.create_ || !model.destroy_) {
    throw BuildError(fmt::format(
        "internal error: the compiled code for model {} lacks {}; this is a bug in cnnc, please "
        "report it (library: {})",
        model_name, model.create_ ? destroy_name : create_name, entry.library().string()));
  }
  model.build_seconds_ = seconds_since(start);
  return model;
}

}  // namespace cnnc::codegen
