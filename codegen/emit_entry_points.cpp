// The C entry points of a generated file: they pick an ISA variant at run time from the CPU (or
// the one the caller names) and fill a cnnc_model with it.
#include <fmt/format.h>

#include "codegen/abi_table.hpp"
#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// pick_isa's number for a variant, as CNNC_ONLY_VARIANT numbers them.
int variant_index(Isa isa) {
  switch (isa) {
    case Isa::avx512: return 0;
    case Isa::avx2: return 1;
    case Isa::portable: return 2;
    case Isa::avx512_bf16: return 3;
  }
  return -1;
}

}  // namespace

void emit_entry_points(Writer& w, const dsl::Graph& g, const rt::ModelSpec& abi,
                       const GenOptions& o) {
  w.comment(
      fmt::format("The ISA variant for a target (\"auto\": the best this CPU runs): 0 avx512, 1 "
                  "avx2, 2 portable{}, -1 none.",
                  g.training.precision == dsl::Precision::bf16 ? ", 3 avx512_bf16" : ""));
  w.function("static int pick_isa(const char* target)");
  w.line("const bool any = std::strcmp(target, \"auto\") == 0;");
  w.line("(void)any;");
  w.line("#if CNNC_HAS_AVX512 || CNNC_HAS_AVX2");
  w.line("__builtin_cpu_init();");
  w.line("#endif");
  bool bf16 = g.training.precision == dsl::Precision::bf16;
  if (bf16) {
    w.comment(
        "precision bf16: the bf16 variant where the CPU has AVX512_BF16, else the fp32 variants "
        "(cnnc says so).");
    w.line("#if CNNC_HAS_AVX512_BF16");
    w.comment(
        "AVX512_BF16 is CPUID leaf 7, subleaf 1, EAX bit 5: asked directly, since "
        "__builtin_cpu_supports(\"avx512bf16\")\nreads libgcc's __cpu_features2, which a JIT "
        "link cannot reach (codegen/compile/jit_clang.cpp).");
    w.line("unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;");
    w.line(
        "if ((any || std::strcmp(target, \"avx512_bf16\") == 0) && "
        "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512vl\") && "
        "__builtin_cpu_supports(\"avx512bw\") && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) "
        "&& (eax >> 5 & 1)) return 3;");
    w.line("#endif");
  }
  w.line("#if CNNC_HAS_AVX512");
  w.line(
      "if ((any || std::strcmp(target, \"avx512\") == 0) && __builtin_cpu_supports(\"avx512f\")) "
      "return 0;");
  w.line("#endif");
  w.line("#if CNNC_HAS_AVX2");
  w.line(
      "if ((any || std::strcmp(target, \"avx2\") == 0) && __builtin_cpu_supports(\"avx2\") && "
      "__builtin_cpu_supports(\"fma\")) return 1;");
  w.line("#endif");
  w.line("#if CNNC_HAS_PORTABLE");
  w.line("if (any || std::strcmp(target, \"portable\") == 0) return 2;");
  w.line("#endif");
  w.line("return -1;");
  w.close();
  w.blank();
  w.function("extern \"C\" cnnc_model* cnnc_{}_create(int32_t max_batch, const char* target)",
             g.name);
  w.line("using namespace cnnc_gen_{};", g.name);
  w.line("if (max_batch < 1 || max_batch > {} || !target) return nullptr;", o.max_batch);
  w.line("const int isa = pick_isa(target);");
  w.line("if (isa < 0) return nullptr;");
  w.line("cnnc_model* m = new (std::nothrow) cnnc_model();");
  w.line("if (!m) return nullptr;");
  w.line("m->abi_version = CNNC_ABI_VERSION;");
  w.line("m->name = \"{}\";", g.name);
  w.line("m->input_h = {};", abi.input_h);
  w.line("m->input_w = {};", abi.input_w);
  w.line("m->input_c = {};", abi.input_c);
  w.line("m->output_size = {};", g.output().size());
  w.line("m->max_batch = max_batch;");
  w.line("m->loss = {};", abi_loss_name(abi.loss));
  w.line("m->layer_count = {};", abi.layers.size());
  w.line("m->layers = layer_table;");
  w.line("m->param_count = {};", abi.param_count);
  for (Isa isa : isas_of(g)) {
    w.line("#if {}", variant_macro(isa));
    w.open("if (isa == {})", variant_index(isa));
    w.line("m->engine = \"specialized-{}\";", name_of(isa));
    w.line("m->workspace_bytes = {}::workspace_floats * 4;", name_of(isa));
    w.line("m->forward = {}::forward;", name_of(isa));
    w.line("m->train = {}::train;", name_of(isa));
    w.line("m->update = {}::update;", name_of(isa));
    w.line("m->update_range = {}::update_range;", name_of(isa));
    const Plan plan = plan_model(g, isa, o.max_batch);
    w.line("m->dense_weights = {};",
           has_dense_weights(plan) ? fmt::format("{}::dense_weights", name_of(isa)) : "nullptr");
    if (plan.prepared_floats > 0) {
      w.line("m->prepared_bytes = {}::prepared_floats * 4;", name_of(isa));
      w.line("m->prepare = {}::prepare;", name_of(isa));
    } else {
      w.line("m->prepared_bytes = 0;");
      w.line("m->prepare = nullptr;");
    }
    w.close();
    w.line("#endif");
  }
  w.line("return m;");
  w.close();
  w.blank();
  w.function("extern \"C\" void cnnc_{}_destroy(cnnc_model* model)", g.name);
  w.line("delete model;");
  w.close();
  w.blank();
  w.function(
      "extern \"C\" int32_t cnnc_{}_kernels(const char* target, const cnnc_kernel** kernels)",
      g.name);
  w.line("using namespace cnnc_gen_{};", g.name);
  w.line("const int isa = target ? pick_isa(target) : -1;");
  for (Isa isa : isas_of(g)) {
    w.line("#if {}", variant_macro(isa));
    w.line("if (isa == {}) return *kernels = {}::kernels, {}::kernel_count;", variant_index(isa),
           name_of(isa), name_of(isa));
    w.line("#endif");
  }
  w.line("(void)kernels;");
  w.line("return 0;");
  w.close();
}

}  // namespace cnnc::codegen
