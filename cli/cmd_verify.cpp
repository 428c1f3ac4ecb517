// cnnc verify FILE: the specialised code beside the generic engine on random data, every
// tensor compared; exit 0 when all agree within tolerance, 1 otherwise.
#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.hpp"
#include "engine/verify.hpp"

namespace cnnc::cli {

void register_verify(CLI::App& app, int& status) {
  struct Options {
    std::string file, target = "all", precision;
    std::optional<int64_t> batch;
    uint64_t seed = 1;
    dsl::Limits limits;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Check the specialised code against the generic engine on random data");
  cmd->add_option("file", opt->file, ".cnn file")->required();
  cmd->add_option("--target", opt->target,
                  "all (every ISA this CPU runs), auto, avx512_bf16, avx512, avx2 or portable")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "auto", "avx512_bf16", "avx512", "avx2", "portable"}));
  add_precision_flag(*cmd, opt->precision);
  cmd->add_option("--batch", opt->batch, "Samples per call (default: the file's batch)")
      ->check(within(int64_t{1}, int64_t{4096}));
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs and parameters")
      ->capture_default_str();
  add_limit_flags(*cmd, opt->limits);
  cmd->callback([opt, &status] {
    std::optional<dsl::Graph> g = load_model(opt->file, opt->limits);
    if (!g) {
      status = exit_user_error;
      return;
    }
    apply_precision(*g, opt->precision);
    int32_t n = static_cast<int32_t>(opt->batch.value_or(g->training.batch));
    std::vector<std::string> targets = opt->target == "all"
                                           ? std::vector<std::string>{"avx512", "avx2", "portable"}
                                           : std::vector<std::string>{opt->target};
    // bf16 is checked against the generic engine with bf16 products, and its error against fp32
    // shown beside the bound bf16 rounding allows (docs/codegen.md); its fp32 fallbacks as fp32.
    if (opt->target == "all" && g->training.precision == dsl::Precision::bf16)
      targets.insert(targets.begin(), "avx512_bf16");
    engine::VerifyReport r = engine::verify_specialized(*g, n, opt->seed, targets);
    fmt::print("{}: {} lines generated, {}; batch {}, seed {}\n", g->name,
               dsl::with_thousands(r.lines), r.build, n, opt->seed);
    for (const engine::TargetCheck& t : r.targets) {
      if (t.engine.empty()) {
        fmt::print("{:<9} skipped: {}\n", t.target,
                   t.target == "avx512_bf16" && g->training.precision != dsl::Precision::bf16
                       ? "an fp32 model has no such variant (`precision bf16` adds it)"
                       : "this CPU cannot run it");
        continue;
      }
      const bool bf16 = !t.against_fp32.empty();
      fmt::print("{} ({}){}\n", t.target, t.engine,
                 bf16 ? ": against the generic engine with bf16 products, then against fp32" : "");
      fmt::print("  {:<22} {:>12} {:>12}", "tensor", "max abs err", "max rel err");
      if (bf16) fmt::print("  {:>12} {:>10}", "fp32 rel err", "bf16 bound");
      fmt::print("\n");
      if (bf16)
        fmt::print("  tolerance: 1e-5 + {:.4f} x the largest value, against the bf16 products\n",
                   t.tensors.front().rel_tolerance);
      for (size_t i = 0; i < t.tensors.size(); ++i) {
        const engine::TensorCheck& c = t.tensors[i];
        fmt::print("  {:<22} {:>12.3e} {:>12.3e}", c.tensor, c.max_abs, c.max_rel());
        if (bf16) {
          const engine::TensorCheck& f = t.against_fp32[i];
          fmt::print("  {:>12.3e} {:>10.4f}{}", f.max_rel(), f.rel_tolerance,
                     f.ok() ? "" : " beyond");
        }
        fmt::print("{}\n", c.ok() ? "" : "  MISMATCH");
      }
      if (bf16 && t.ok() &&
          std::any_of(t.against_fp32.begin(), t.against_fp32.end(),
                      [](const engine::TensorCheck& f) { return !f.ok(); }))
        fmt::print(
            "  beyond: past the bound bf16 rounding allows, as where rounding flips a relu or\n"
            "  max-pool decision; the code agrees with bf16 arithmetic (docs/codegen.md)\n");
    }
    fmt::print("{}\n", r.ok()    ? "verify: the specialised code agrees with the generic engine"
                       : r.ran() ? "verify: MISMATCH"
                                 : "verify: no target ran, nothing was checked");
    status = r.ok() ? exit_ok : exit_user_error;
  });
}

}  // namespace cnnc::cli
