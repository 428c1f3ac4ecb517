// build_generated: the choice of backend, cache lookup, the compile on a miss (in-process or
// in a subprocess), loading (JIT or dlopen), and what a failure tells the user.
#include "codegen/compile/build.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <utility>

#include "codegen/compile/abi_header.hpp"
#include "codegen/compile/cache.hpp"
#include "codegen/compile/compiler.hpp"
#include "codegen/compile/jit_clang.hpp"
#include "codegen/sha256.hpp"

namespace cnnc::codegen {

namespace fs = std::filesystem;

std::vector<std::string> object_flags(const std::vector<std::string>& flags) {
  std::vector<std::string> kept;
  std::copy_if(flags.begin(), flags.end(), std::back_inserter(kept),
               [](const std::string& f) { return f != "-shared"; });
  return kept;
}

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
    throw CacheWriteError(
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

// Saves source that did not compile under <cache>/failed/, drops the entry it was meant for, and
// returns the BuildError that calls it cnnc's bug: who compiled, where the source is, how to
// reproduce, and the first diagnostics with file:line pointing into the saved file.
BuildError compile_failure(const CacheEntry& entry, const fs::path& cache_dir,
                           const std::string& source, const std::string& model_name,
                           const std::string& compiler_said, const std::string& outcome,
                           const std::vector<std::string>& reproduce, const std::string& output) {
  make_dirs(cache_dir / "failed");
  fs::path saved =
      cache_dir / "failed" /
      fmt::format("{}-{}.cpp", model_name, entry.dir.filename().string().substr(0, 16));
  write_file_atomically(saved, source);
  // The entry holds no compiled code; drop its source so that no half entry stays behind. A
  // concurrent build of the same broken source then fails on a missing file: the same bug.
  std::error_code ignored;
  fs::remove(entry.source(), ignored);
  fs::remove(entry.dir, ignored);
  std::vector<std::string> command = reproduce;
  std::replace(command.begin(), command.end(), entry.source().string(), saved.string());
  return BuildError(fmt::format(
      "internal error: the generated code for model {} did not compile; this is a bug in "
      "cnnc, please report it\n"
      "  compiler: {}, {}\n"
      "  source saved to: {}\n"
      "  to reproduce: {}\n"
      "the compiler said:\n{}",
      model_name, compiler_said, outcome, saved.string(), fmt::join(command, " "),
      first_lines(replace_all(output, entry.source().string(), saved.string()), diagnostic_lines)));
}

// Compiles source into entry's model.so with the compiler subprocess and writes its meta.txt;
// on failure saves the source under <cache>/failed/ and throws.
void compile_subprocess(const CacheEntry& entry, const fs::path& cache_dir,
                        const std::string& source, const std::string& model_name,
                        const CompilerIdentity& compiler, const std::vector<std::string>& flags) {
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
    throw compile_failure(
        entry, cache_dir, source, model_name,
        fmt::format("{} ({})", compiler.path.string(), compiler.short_name),
        result.signal ? fmt::format("killed by signal {}", result.signal)
                      : fmt::format("exit status {}", result.status),
        compile_command(compiler, flags, include_dir, entry.source(), "/dev/null"), result.output);
  }
  std::optional<std::string> library = read_file(compiled.path());
  if (!library) {
    throw BuildError(fmt::format("cannot read the compiled model {}", compiled.path().string()));
  }
  std::string meta = meta_text(*library, model_name, compiler, flags, compile_seconds);
  std::error_code ec;
  fs::rename(compiled.path(), entry.library(), ec);
  if (ec) {
    throw CacheWriteError(fmt::format("cannot move the compiled model into the cache at {}: {}",
                                      entry.library().string(), ec.message()));
  }
  compiled.release();
  write_file_atomically(entry.meta(), meta);
}

// Compiles source in-process into entry's model.o and meta.txt and returns the object's bytes;
// on failure saves the source under <cache>/failed/ and throws.
std::string compile_in_process(const CacheEntry& entry, const fs::path& cache_dir,
                               const std::string& source, const std::string& model_name,
                               const std::vector<std::string>& flags) {
  make_dirs(entry.dir);
  // The header goes where the subprocess's does, so that the reproducing command works.
  fs::path include_dir = install_abi_header(cache_dir);
  // Kept for debuggers and for the reproducing command; the compile itself reads the text from
  // memory under this name, so the diagnostics name this file.
  write_file_atomically(entry.source(), source);
  std::vector<std::string> args = flags;
  args.insert(args.end(), {"-I", include_dir.string()});

  auto start = std::chrono::steady_clock::now();
  jit::ObjectResult result = jit::compile_object(source, entry.source(), args);
  double compile_seconds = seconds_since(start);
  if (!result.ok) {
    std::vector<std::string> reproduce = jit::driver_command(args);
    reproduce.insert(reproduce.end(), {"-c", entry.source().string(), "-o", "/dev/null"});
    throw compile_failure(entry, cache_dir, source, model_name,
                          fmt::format("{} in-process (libclang-cpp)", jit::identity().short_name),
                          "errors reported", reproduce, result.diagnostics);
  }
  std::string meta = meta_text(result.object, model_name, jit::identity(), flags, compile_seconds);
  // The object first, then its meta.txt: a reader between the two sees a mismatch, a miss.
  write_file_atomically(entry.library(), result.object);
  write_file_atomically(entry.meta(), meta);
  return std::move(result.object);
}

// The "-O" flag among flags, for people: "-O2".
std::string optimization_of(const std::vector<std::string>& flags) {
  std::string found;
  for (const std::string& f : flags) {
    if (f.starts_with("-O")) found = f;  // the last one wins, as for the compiler
  }
  return found;
}

Backend choose_backend(const BuildOptions& options, const std::string& model_name) {
  Backend backend = options.backend;
  if (backend == Backend::automatic) {
    if (const char* env = std::getenv("CNNC_BUILD"); env && env[0] != '\0') {
      try {
        backend = parse_backend(env);
      } catch (const std::invalid_argument&) {
        throw BuildError(
            fmt::format("CNNC_BUILD is '{}'; expected auto, jit (in-process) or subprocess", env));
      }
    }
  }
  if (backend == Backend::automatic) {
    // A compiler named by the caller is a request for the subprocess.
    return options.compiler.empty() && jit::available() ? Backend::jit : Backend::subprocess;
  }
  if (backend == Backend::jit && !jit::available()) {
    throw BuildError(fmt::format(
        "cannot build the generated code for model {} in-process: this cnnc was built without "
        "the Clang libraries (CNNC_WITH_CLANG=OFF), or Clang's own headers are missing; build "
        "with the subprocess instead",
        model_name));
  }
  return backend;
}

// What a backend hands build_generated, which alone may fill a GeneratedModel.
struct Built {
  std::shared_ptr<void> code;
  void* create = nullptr;
  void* destroy = nullptr;
  std::string how, backend, compiler, optimization;
  fs::path library;
};

Built build_jit(const std::string& source, const std::string& model_name,
                const BuildOptions& options, fs::path cache_dir) {
  const CompilerIdentity& compiler = jit::identity();
  std::vector<std::string> flags = object_flags(options.flags);
  CacheEntry entry{cache_dir / "v1" / cache_key(source, model_name, compiler, flags), "model.o"};

  Built model;
  std::optional<std::string> object;
  if (options.use_cache) object = read_valid_entry(entry);
  model.how = object ? "cache" : "jit";
  if (!object) object = compile_in_process(entry, cache_dir, source, model_name, flags);
  model.backend = "jit";
  model.compiler = compiler.short_name;
  model.optimization = optimization_of(flags);
  model.library = entry.library();
  std::string create_name = fmt::format("cnnc_{}_create", model_name);
  std::string destroy_name = fmt::format("cnnc_{}_destroy", model_name);
  // Linked from the bytes just validated or compiled: what other processes do to the entry
  // meanwhile cannot change them.
  auto load = [&] {
    return jit::load_object(*object, fmt::format("cnnc_{}", model_name),
                            {create_name, destroy_name});
  };
  jit::LoadedObject loaded = load();
  if (model.how == "cache" && (!loaded.symbols[0] || !loaded.symbols[1])) {
    // A whole entry of another model's code (its checksum matches what it holds): rebuilt.
    model.how = "jit";
    object = compile_in_process(entry, cache_dir, source, model_name, flags);
    loaded = load();
  }
  model.code = std::move(loaded.owner);
  model.create = loaded.symbols[0];
  model.destroy = loaded.symbols[1];
  return model;
}

Built build_subprocess(const std::string& source, const std::string& model_name,
                       const BuildOptions& options, fs::path cache_dir) {
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
  CacheEntry entry{cache_dir / "v1" / cache_key(source, model_name, compiler, options.flags)};

  Built model;
  model.backend = "subprocess";
  model.compiler = compiler.short_name;
  model.optimization = optimization_of(options.flags);
  model.library = entry.library();
  bool cached = options.use_cache && entry_is_valid(entry);
  if (!cached) compile_subprocess(entry, cache_dir, source, model_name, compiler, options.flags);
  model.how = cached ? "cache" : "subprocess";

  // RTLD_LOCAL: two models may define the same internal names. The file loaded is complete
  // whatever other processes do meanwhile: they only ever rename whole files into place.
  auto load = [&] {
    void* handle = ::dlopen(entry.library().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      throw BuildError(fmt::format("internal error: cannot load the compiled model {}: {}",
                                   entry.library().string(), ::dlerror()));
    }
    model.code = std::shared_ptr<void>(handle, [](void* h) { ::dlclose(h); });
    model.create = ::dlsym(handle, fmt::format("cnnc_{}_create", model_name).c_str());
    model.destroy = ::dlsym(handle, fmt::format("cnnc_{}_destroy", model_name).c_str());
  };
  load();
  if (cached && (!model.create || !model.destroy)) {
    // A whole entry of another model's code (its checksum matches what it holds): rebuilt.
    model.code.reset();
    compile_subprocess(entry, cache_dir, source, model_name, compiler, options.flags);
    model.how = "subprocess";
    load();
  }
  return model;
}

// A private directory under $TMPDIR (or /tmp), removed with everything in it at the end.
class PrivateDir {
 public:
  PrivateDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = fmt::format("{}/cnnc-build-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!::mkdtemp(pattern.data()))
      throw BuildError(
          fmt::format("cannot create a temporary directory {}: {}", pattern, std::strerror(errno)));
    path_ = pattern;
  }
  ~PrivateDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

GeneratedModel::GeneratedModel(GeneratedModel&& other) noexcept = default;
GeneratedModel& GeneratedModel::operator=(GeneratedModel&& other) noexcept = default;
GeneratedModel::~GeneratedModel() = default;

cnnc_model* GeneratedModel::create(int32_t max_batch, const std::string& target) const {
  return create_(max_batch, target.c_str());
}

void GeneratedModel::destroy(cnnc_model* model) const {
  destroy_(model);
}

ModelPtr GeneratedModel::make(int32_t max_batch, const std::string& target) const {
  return ModelPtr(create(max_batch, target), ModelDeleter{destroy_});
}

std::string GeneratedModel::summary() const {
  std::string how =
      fmt::format("{}, {}", compiler_, backend_ == "jit" ? "in-process" : "subprocess");
  if (!optimization_.empty()) how += ", " + optimization_;
  return how_ == "cache"
             ? fmt::format("loaded from the cache in {:.2f} s ({})", build_seconds_, how)
             : fmt::format("compiled in {:.1f} s ({})", build_seconds_, how);
}

GeneratedModel build_generated(const std::string& source, const std::string& model_name,
                               const BuildOptions& options) {
  if (!is_identifier(model_name)) {
    throw std::invalid_argument(
        fmt::format("build_generated: model name '{}' is not a C identifier", model_name));
  }
  auto start = std::chrono::steady_clock::now();
  Backend backend = choose_backend(options, model_name);
  auto build = [&](const fs::path& cache_dir, const BuildOptions& o) {
    return backend == Backend::jit ? build_jit(source, model_name, o, cache_dir)
                                   : build_subprocess(source, model_name, o, cache_dir);
  };
  Built built;
  try {
    built = build(resolve_cache_dir(options), options);
  } catch (const CacheWriteError& e) {
    // The cache is an optimisation: without it the build goes on in a directory of this
    // process's own, removed once the code is loaded (loaded code needs no file).
    static std::once_flag warned;
    std::call_once(warned, [&] {
      fmt::print(stderr,
                 "cnnc: warning: the compile cache cannot be used ({}); building without it\n",
                 e.what());
    });
    PrivateDir dir;
    BuildOptions uncached = options;
    uncached.use_cache = false;
    built = build(dir.path(), uncached);
  }
  GeneratedModel model;
  model.code_ = std::move(built.code);
  model.create_ = reinterpret_cast<cnnc_model* (*)(int32_t, const char*)>(built.create);
  model.destroy_ = reinterpret_cast<void (*)(cnnc_model*)>(built.destroy);
  model.how_ = std::move(built.how);
  model.backend_ = std::move(built.backend);
  model.compiler_ = std::move(built.compiler);
  model.optimization_ = std::move(built.optimization);
  model.library_ = std::move(built.library);
  if (!model.create_ || !model.destroy_) {
    throw BuildError(fmt::format(
        "internal error: the compiled code for model {} lacks cnnc_{}_{}; this is a bug in cnnc, "
        "please report it (library: {})",
        model_name, model_name, model.create_ ? "destroy" : "create", model.library_.string()));
  }
  model.build_seconds_ = seconds_since(start);
  return model;
}

bool in_process_available() {
  return jit::available();
}

Backend parse_backend(const std::string& name) {
  if (name == "auto") return Backend::automatic;
  if (name == "jit") return Backend::jit;
  if (name == "subprocess") return Backend::subprocess;
  throw std::invalid_argument(
      fmt::format("unknown build backend '{}'; expected auto, jit or subprocess", name));
}

}  // namespace cnnc::codegen
