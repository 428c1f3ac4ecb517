// Turns generated C++ source into callable code at run time: the host compiler in a subprocess,
// dlopen, and an on-disk cache keyed by everything that decides the compiled bytes.
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

struct BuildOptions {
  // Empty: $CXX, then clang++-19, clang++, c++: the first found on PATH. A name without '/' is
  // looked up on PATH.
  std::string compiler;
  // No -march: generated code selects each function's target itself and picks one at run time.
  std::vector<std::string> flags = {"-O2", "-std=c++17", "-fPIC", "-shared"};
  // Empty: $XDG_CACHE_HOME/cnnc, else $HOME/.cache/cnnc.
  std::filesystem::path cache_dir;
  // false: always compile, as on a miss; the fresh library still replaces the cache entry.
  bool use_cache = true;
};

// Thrown when generated code cannot be turned into a loaded library: it did not compile (a bug
// in cnnc; the message carries the compiler's diagnostics and where the source was saved), no
// compiler was found, dlopen failed, or the entry points are missing.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Destroys a model through the library that created it.
struct ModelDeleter {
  void (*destroy)(cnnc_model*) = nullptr;
  void operator()(cnnc_model* model) const {
    if (model) destroy(model);
  }
};
using ModelPtr = std::unique_ptr<cnnc_model, ModelDeleter>;

// A loaded library of generated code for one model. Owns the dlopen handle: every model it
// created must be destroyed before it is. Movable, not copyable; a moved-from object may only
// be destroyed or assigned to.
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

  const std::string& how() const { return how_; }            // "subprocess" or "cache"
  double build_seconds() const { return build_seconds_; }    // this call: compile or cache lookup
  const std::string& compiler() const { return compiler_; }  // "clang++ 14.0.6", "g++ 12.2.0"
  const std::filesystem::path& library() const { return library_; }

 private:
  friend GeneratedModel build_generated(const std::string&, const std::string&,
                                        const BuildOptions&);
  GeneratedModel() = default;

  void* handle_ = nullptr;
  cnnc_model* (*create_)(int32_t, const char*) = nullptr;
  void (*destroy_)(cnnc_model*) = nullptr;
  std::string how_;
  double build_seconds_ = 0;
  std::string compiler_;
  std::filesystem::path library_;
};

// Compiles source (a translation unit that includes "cnnc_abi.h" and defines
// cnnc_<model_name>_create and cnnc_<model_name>_destroy), or loads it from the cache.
// model_name must be a C identifier (std::invalid_argument otherwise). Throws BuildError.
GeneratedModel build_generated(const std::string& source, const std::string& model_name,
                               const BuildOptions& options);

// The compiler a build would run: options.compiler's rule applied to name (empty: the default
// list). nullopt when none is found on PATH.
std::optional<std::filesystem::path> find_compiler(const std::string& name);

}  // namespace cnnc::codegen
