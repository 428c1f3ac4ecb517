// The generated header: the two entry points and, as NN-512's do, the parameter table a caller
// needs to fill the parameter vector.
#include <fmt/format.h>

#include "codegen/emit_model.hpp"
#include "codegen/writer.hpp"

namespace cnnc::codegen {

std::string emit_header(const dsl::Graph& g, const GenOptions& o) {
  Writer w;
  w.comment(
      fmt::format("{}.gen.hpp: the C entry points of the code cnnc generated from {}. Do not edit.",
                  g.name, o.source_path));
  w.comment("");
  w.comment(
      fmt::format("Parameters: one vector of {} (cnnc_model::param_count); each tensor starts "
                  "on a 64-byte boundary.",
                  counted(g.param_floats, "float")));
  w.comment("  layer     tensor  offset  shape");
  for (const dsl::Layer& l : g.layers) {
    if (!l.params()) continue;
    std::string shape =
        l.kind == dsl::LayerKind::conv
            ? fmt::format("[{}][{}][{}][{}]", l.units, l.kernel_h, l.kernel_w, l.in.c)
            : fmt::format("[{}][{}]", l.units, l.in.size());
    w.comment(fmt::format("  {:<8}  weights {:>7}  {}{}", l.name, l.weight_offset, shape,
                          l.frozen ? " (frozen)" : ""));
    w.comment(fmt::format("  {:<8}  bias    {:>7}  [{}]", l.name, l.bias_offset, l.units));
  }
  w.comment("");
  w.comment("Use:");
  w.comment(
      fmt::format("  cnnc_model* m = cnnc_{}_create(/*max_batch=*/{}, \"auto\");  // or "
                  "\"avx512\", \"avx2\", \"portable\"",
                  g.name, o.max_batch));
  w.comment("  ... m->train(m, &pass), m->update(...), m->forward(m, &pass): see cnnc_abi.h ...");
  w.comment(fmt::format("  cnnc_{}_destroy(m);", g.name));
  w.line("#pragma once");
  w.blank();
  w.line("#include \"cnnc_abi.h\"");
  w.blank();
  w.line("#ifdef __cplusplus");
  w.line("extern \"C\" {{");
  w.line("#endif");
  w.blank();
  w.comment("NULL when max_batch is outside 1.." + std::to_string(o.max_batch) +
            " or the CPU cannot run the target.");
  w.line("cnnc_model* cnnc_{}_create(int32_t max_batch, const char* target);", g.name);
  w.line("void cnnc_{}_destroy(cnnc_model* model);", g.name);
  w.comment("Per-layer kernels of a target's variant, for benchmarks (cnnc_kernel in cnnc_abi.h).");
  w.line("int32_t cnnc_{}_kernels(const char* target, const cnnc_kernel** kernels);", g.name);
  w.blank();
  w.line("#ifdef __cplusplus");
  w.line("}}");
  w.line("#endif");
  return w.str();
}

}  // namespace cnnc::codegen
