// The specialised engine of cnnc itself: code generated for the model now, then compiled, or
// found in the cache, and loaded. Reached only through set_compiled_engine(), so that what it
// pulls in (the code generator, the compiler backends, LLVM) stays out of executables that only
// run linked code.
#include <fmt/format.h>

#include <chrono>
#include <stdexcept>

#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "engine/engine.hpp"

namespace cnnc::engine {

namespace {

// The variant of the generated file this process will run for target, numbered as the file's
// CNNC_ONLY_VARIANT: 0 avx512, 1 avx2, 2 portable, 3 avx512_bf16 (models of precision bf16).
// Compiling only it takes about a third of the time of all three (lenet5's AVX-512 variant
// alone: 1.8 s of CPU with clang 19, all: 4.5 s). A target this CPU lacks still names its variant,
// and creating the model then says so.
int variant_for(const std::string& target, dsl::Precision precision) {
  const std::string named = resolve_target(target, precision);
  if (named == "avx512_bf16") return 3;
  if (named == "avx512") return 0;
  if (named == "avx2") return 1;
  return 2;
}

class SpecializedEngine final : public Engine {
 public:
  SpecializedEngine(const dsl::Graph& g, int32_t max_batch, const std::string& target) {
    auto start = std::chrono::steady_clock::now();
    codegen::GenOptions options{g.source_path, g.source_text, static_cast<int>(g.training.batch)};
    codegen::Generated gen = codegen::emit_model(g, options);
    double gen_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    codegen::BuildOptions build;
    build.flags.push_back(
        fmt::format("-DCNNC_ONLY_VARIANT={}", variant_for(target, g.training.precision)));
    library_ = std::make_unique<codegen::GeneratedModel>(
        codegen::build_generated(gen.source, g.name, build));
    model_ = library_->make(std::min<int32_t>(max_batch, static_cast<int32_t>(g.training.batch)),
                            target);
    if (!model_)
      throw std::runtime_error(
          fmt::format("this CPU cannot run the specialised code for target '{}'", target));
    description_ = fmt::format("{}: generated {} lines in {:.0f} ms; {}{}", model_->engine,
                               dsl::with_thousands(gen.lines), gen_ms, library_->summary(),
                               precision_note(g, *model_));
  }
  const cnnc_model& model() const override { return *model_; }
  std::string description() const override { return description_; }
  std::string build() const override { return library_->how(); }
  double build_seconds() const override { return library_->build_seconds(); }

 private:
  std::unique_ptr<codegen::GeneratedModel> library_;  // outlives model_: declared first
  codegen::ModelPtr model_;
  std::string description_;
};

}  // namespace

std::unique_ptr<Engine> make_compiled_engine(const dsl::Graph& graph, int32_t max_batch,
                                             const std::string& target) {
  return std::make_unique<SpecializedEngine>(graph, max_batch, target);
}

}  // namespace cnnc::engine
