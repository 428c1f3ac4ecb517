// Turns generated C++ source into callable code at run time, by one of two backends: the Clang
// libraries in this process (an object file linked by ORC's JIT) or the host compiler in a
// subprocess (a shared library, dlopen), with one on-disk cache keyed by everything that decides
// the compiled bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnc_abi.h"

namespace cnnc::codegen {

// Who turns source into code. automatic: the in-process build when cnnc has it (built with
// CNNC_WITH_CLANG and Clang's headers present) and no compiler was named, else the subprocess;
// $CNNC_BUILD ("jit" or "subprocess") overrides automatic.
enum class Backend { automatic, jit, subprocess };

struct BuildOptions {
  Backend backend = Backend::automatic;
  // The subprocess backend's compiler. Empty: $CXX, then clang++-19, clang++, c++: the first found
  // on PATH. A name without '/' is looked up on PATH.
  std::string compiler;
  // No -march: generated code selects each function's target itself and picks one at run time.
  // -ffp-contract=off: the generated code says where it wants a fused multiply-add (vfma); GCC
  // would otherwise fuse every vmul whose result a vadd takes, even across statements, and round
  // differently from Clang.
  // The in-process backend compiles to an object file and leaves out -shared, a link flag.
  std::vector<std::string> flags = {"-O2", "-std=c++17", "-ffp-contract=off", "-fPIC", "-shared"};
  // Empty: $XDG_CACHE_HOME/cnnc, else $HOME/.cache/cnnc.
  std::filesystem::path cache_dir;
  // false: always compile, as on a miss; the fresh library still replaces the cache entry.
  bool use_cache = true;
};

// The flags of a compile to an object file: `flags` without -shared, which only a link reads.
// The in-process backend and `cnnc build` compile so.
std::vector<std::string> object_flags(const std::vector<std::string>& flags);

// Thrown when generated code cannot be turned into loaded code: it did not compile (a bug in
// cnnc; the message carries the compiler's diagnostics and where the source was saved), no
// compiler was found, the backend asked for is absent, loading or linking failed, or the entry
// points are missing.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The cache directory cannot take a file (read-only, XDG_CACHE_HOME naming a file, a full disk).
// build_generated never lets it escape: it warns once and builds in a private directory instead.
struct CacheWriteError : BuildError {
  using BuildError::BuildError;
};

// Destroys a model through the library that created it.
struct ModelDeleter {
  void (*destroy)(cnnc_model*) = nullptr;
  void operator()(cnnc_model* model) const {
    if (model) destroy(model);
  }
};
using ModelPtr = std::unique_ptr<cnnc_model, ModelDeleter>;

// Loaded generated code for one model: a dlopen handle or code linked by the in-process JIT.
// Every model it created must be destroyed before it is, and it must not outlive main() (no
// statics): the JIT's code is unmapped through LLVM, whose own statics die at exit. Movable, not
// copyable; a moved-from object may only be destroyed or assigned to.
class GeneratedModel {
 public:
  GeneratedModel(GeneratedModel&& other) noexcept;
  GeneratedModel& operator=(GeneratedModel&& other) noexcept;
  GeneratedModel(const GeneratedModel&) = delete;
  GeneratedModel& operator=(const GeneratedModel&) = delete;
  ~GeneratedModel();

  // cnnc_<name>_create: target is "auto", "avx512", "avx2" or "portable"; NULL when this CPU
  // cannot run that target.
  cnnc_model* create(int32_t max_batch, const std::string& target) const;
  // cnnc_<name>_destroy.
  void destroy(cnnc_model* model) const;
  // create() with ownership; empty when the CPU cannot run the target.
  ModelPtr make(int32_t max_batch, const std::string& target) const;

  // "jit" (compiled in-process now), "subprocess" (compiled by the compiler now) or "cache".
  const std::string& how() const { return how_; }
  // "jit" or "subprocess": which backend made (or would have made) the code, also on a hit.
  const std::string& backend() const { return backend_; }
  double build_seconds() const { return build_seconds_; }  // this call: compile or cache lookup
  // "clang 19.1.7" in-process; "clang++ 14.0.6", "g++ 12.2.0" in a subprocess.
  const std::string& compiler() const { return compiler_; }
  // The cached file loaded: model.o (in-process) or model.so (subprocess).
  const std::filesystem::path& library() const { return library_; }
  // For people: "compiled in 0.9 s (clang 19.1.7, in-process, -O2)" or "loaded from the cache
  // in 0.01 s (clang 19.1.7, in-process, -O2)".
  std::string summary() const;

 private:
  friend GeneratedModel build_generated(const std::string&, const std::string&,
                                        const BuildOptions&);
  GeneratedModel() = default;

  std::shared_ptr<void> code_;  // keeps the library or the JIT's code mapped
  cnnc_model* (*create_)(int32_t, const char*) = nullptr;
  void (*destroy_)(cnnc_model*) = nullptr;
  std::string how_, backend_, optimization_;
  double build_seconds_ = 0;
  std::string compiler_;
  std::filesystem::path library_;
};

// Compiles source (a translation unit that includes "cnnc_abi.h" and defines
// cnnc_<model_name>_create and cnnc_<model_name>_destroy) with the backend options choose, or
// loads what that backend made from the cache. model_name must be a C identifier
// (std::invalid_argument otherwise). Throws BuildError. Thread-safe.
GeneratedModel build_generated(const std::string& source, const std::string& model_name,
                               const BuildOptions& options);

// The compiler a subprocess build would run: options.compiler's rule applied to name (empty: the
// default list). nullopt when none is found on PATH.
std::optional<std::filesystem::path> find_compiler(const std::string& name);

// True when this cnnc can build in-process: built with CNNC_WITH_CLANG, Clang's headers present.
bool in_process_available();

// "auto", "jit" or "subprocess" to a Backend; std::invalid_argument otherwise.
Backend parse_backend(const std::string& name);

}  // namespace cnnc::codegen
