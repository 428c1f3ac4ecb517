// The generated file around the layer functions: the banner and layer table, each ISA's vector
// helpers, the per-slice drivers (load a block, run the layers, the loss, the gradients), the
// optimizer step, and the C entry points that pick an ISA at run time.
#include "emit_model.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "cnnc/version.hpp"
#include "emit.hpp"
#include "sha256.hpp"

namespace cnnc::codegen {

std::string EmitContext::target() const {
  switch (plan.isa) {
    case Isa::avx512: return "CNNC_AVX512";
    case Isa::avx2: return "CNNC_AVX2";
    case Isa::portable: return "CNNC_PORTABLE";
  }
  return "";
}

std::string ws(const Slot& s) {
  return fmt::format("ws + {}", s.offset);
}

std::string EmitContext::output_of(int i) const {
  return ws(plan.layers[static_cast<size_t>(i)].out);
}
std::string EmitContext::input_of(int i) const {
  return i == 0 ? ws(plan.input) : output_of(i - 1);
}
std::string EmitContext::grad_of(int i) const {
  int from_last = static_cast<int>(plan.layers.size()) - 1 - i;
  return ws(from_last % 2 == 0 ? plan.grad_a : plan.grad_b);
}

bool runs_backward(const LayerPlan& lp) {
  return lp.needs_dx || lp.layer->trainable();
}

void function_comment(EmitContext& c, const LayerPlan& lp, const std::string& pass,
                      const std::string& detail) {
  const dsl::Layer& l = *lp.layer;
  c.w.comment(fmt::format("{} {}: line {}: {}\n{} -> {}; {}", l.name, pass, l.line, l.statement,
                          l.in.str(), l.out.str(), detail));
}

void emit_blocks(EmitContext& c, const std::string& var, int64_t total, int64_t size,
                 const std::function<void(int64_t count)>& body) {
  int64_t full = total / size, tail = total % size;
  if (full > 1) {
    c.w.open("for (int {} = 0; {} < {}; {} += {})", var, var, full * size, var, size);
    body(size);
    c.w.close();
  } else if (full == 1) {
    c.w.open("");
    c.w.line("const int {} = 0;", var);
    body(size);
    c.w.close();
  }
  if (tail) {
    c.w.open("");
    c.w.line("const int {} = {};", var, full * size);
    body(tail);
    c.w.close();
  }
}

namespace {

// The preprocessor switch around one ISA's variant (see the generated file's preamble).
std::string variant_macro(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "CNNC_HAS_AVX512";
    case Isa::avx2: return "CNNC_HAS_AVX2";
    case Isa::portable: return "CNNC_HAS_PORTABLE";
  }
  return "0";
}

constexpr const char* vector_helpers_avx512 = R"(typedef __m512 V;
static CNNC_AVX512 inline V vload(const float* p) { return _mm512_load_ps(p); }
static CNNC_AVX512 inline V vloadu(const float* p) { return _mm512_loadu_ps(p); }
static CNNC_AVX512 inline void vstore(float* p, V v) { _mm512_store_ps(p, v); }
static CNNC_AVX512 inline void vstoreu(float* p, V v) { _mm512_storeu_ps(p, v); }
static CNNC_AVX512 inline void vstore_first(float* p, V v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
static CNNC_AVX512 inline V vbcast(const float* p) { return _mm512_set1_ps(*p); }
static CNNC_AVX512 inline V vset(float x) { return _mm512_set1_ps(x); }
static CNNC_AVX512 inline V vzero() { return _mm512_setzero_ps(); }
static CNNC_AVX512 inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static CNNC_AVX512 inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static CNNC_AVX512 inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static CNNC_AVX512 inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
static CNNC_AVX512 inline V vbits(__m512i x) { return _mm512_castsi512_ps(x); }
static CNNC_AVX512 inline __m512i vint(V x) { return _mm512_castps_si512(x); }
static CNNC_AVX512 inline V vand(V a, V b) { return vbits(_mm512_and_si512(vint(a), vint(b))); }
static CNNC_AVX512 inline V vandnot(V a, V b) { return vbits(_mm512_andnot_si512(vint(a), vint(b))); }
static CNNC_AVX512 inline V vor(V a, V b) { return vbits(_mm512_or_si512(vint(a), vint(b))); }
static CNNC_AVX512 inline V veq(V a, V b) { return vbits(_mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), -1)); }
static CNNC_AVX512 inline V vgt(V a, V b) { return vbits(_mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), -1)); }
static CNNC_AVX512 inline __m512i vhash(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x846ca68bu));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}
static CNNC_AVX512 inline V vkeep(const uint32_t* keys, uint32_t element, uint32_t threshold) {
  __m512i bits = vhash(_mm512_xor_si512(_mm512_load_si512(keys), _mm512_set1_epi32((int)(element * 0x9e3779b9u))));
  return vbits(_mm512_maskz_set1_epi32(_mm512_cmpge_epu32_mask(bits, _mm512_set1_epi32((int)threshold)), -1));
}
)";

constexpr const char* vector_helpers_avx2 = R"(typedef __m256 V;
static CNNC_AVX2 inline V vload(const float* p) { return _mm256_load_ps(p); }
static CNNC_AVX2 inline V vloadu(const float* p) { return _mm256_loadu_ps(p); }
static CNNC_AVX2 inline void vstore(float* p, V v) { _mm256_store_ps(p, v); }
static CNNC_AVX2 inline void vstoreu(float* p, V v) { _mm256_storeu_ps(p, v); }
static CNNC_AVX2 inline void vstore_first(float* p, V v, int n) { alignas(32) float t[8]; _mm256_store_ps(t, v); std::memcpy(p, t, n * sizeof(float)); }
static CNNC_AVX2 inline V vbcast(const float* p) { return _mm256_broadcast_ss(p); }
static CNNC_AVX2 inline V vset(float x) { return _mm256_set1_ps(x); }
static CNNC_AVX2 inline V vzero() { return _mm256_setzero_ps(); }
static CNNC_AVX2 inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static CNNC_AVX2 inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static CNNC_AVX2 inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static CNNC_AVX2 inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
static CNNC_AVX2 inline V vand(V a, V b) { return _mm256_and_ps(a, b); }
static CNNC_AVX2 inline V vandnot(V a, V b) { return _mm256_andnot_ps(a, b); }
static CNNC_AVX2 inline V vor(V a, V b) { return _mm256_or_ps(a, b); }
static CNNC_AVX2 inline V veq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static CNNC_AVX2 inline V vgt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static CNNC_AVX2 inline __m256i vhash(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}
static CNNC_AVX2 inline V vkeep(const uint32_t* keys, uint32_t element, uint32_t threshold) {
  __m256i bits = vhash(_mm256_xor_si256(_mm256_load_si256((const __m256i*)keys), _mm256_set1_epi32((int)(element * 0x9e3779b9u))));
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(bits, _mm256_set1_epi32((int)threshold)), bits));
}
)";

// One lane: plain floats, with masks as all-ones or all-zero bit patterns like the vector ISAs.
constexpr const char* vector_helpers_portable = R"(typedef float V;
static CNNC_PORTABLE inline uint32_t vbits_of(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }
static CNNC_PORTABLE inline float vfrom_bits(uint32_t u) { float x; std::memcpy(&x, &u, 4); return x; }
static CNNC_PORTABLE inline V vload(const float* p) { return *p; }
static CNNC_PORTABLE inline V vloadu(const float* p) { return *p; }
static CNNC_PORTABLE inline void vstore(float* p, V v) { *p = v; }
static CNNC_PORTABLE inline void vstoreu(float* p, V v) { *p = v; }
static CNNC_PORTABLE inline void vstore_first(float* p, V v, int n) { if (n > 0) *p = v; }
static CNNC_PORTABLE inline V vbcast(const float* p) { return *p; }
static CNNC_PORTABLE inline V vset(float x) { return x; }
static CNNC_PORTABLE inline V vzero() { return 0.0f; }
static CNNC_PORTABLE inline V vadd(V a, V b) { return a + b; }
static CNNC_PORTABLE inline V vmul(V a, V b) { return a * b; }
static CNNC_PORTABLE inline V vfma(V a, V b, V c) { return a * b + c; }
static CNNC_PORTABLE inline V vmax(V a, V b) { return a > b ? a : b; }
static CNNC_PORTABLE inline V vand(V a, V b) { return vfrom_bits(vbits_of(a) & vbits_of(b)); }
static CNNC_PORTABLE inline V vandnot(V a, V b) { return vfrom_bits(~vbits_of(a) & vbits_of(b)); }
static CNNC_PORTABLE inline V vor(V a, V b) { return vfrom_bits(vbits_of(a) | vbits_of(b)); }
static CNNC_PORTABLE inline V veq(V a, V b) { return vfrom_bits(a == b ? ~0u : 0u); }
static CNNC_PORTABLE inline V vgt(V a, V b) { return vfrom_bits(a > b ? ~0u : 0u); }
static CNNC_PORTABLE inline V vkeep(const uint32_t* keys, uint32_t element, uint32_t threshold) { return vfrom_bits(cnnc_dropout_bits(keys[0], element) >= threshold ? ~0u : 0u); }
)";

void emit_lines(Writer& w, std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    w.line("{}", text.substr(start, end - start));
    start = end + 1;
  }
}

std::string mflop(int64_t flops) {
  return fmt::format("{:.3f}", static_cast<double>(flops) / 1e6);
}

void emit_banner(Writer& w, const dsl::Graph& g, const GenOptions& o) {
  w.comment(fmt::format("Generated by cnnc {} from {} (sha256 {}). Do not edit.", version,
                        o.source_path, sha256_hex(o.source_text)));
  w.comment(fmt::format("Regenerate with: cnnc gen {} -o DIR", o.source_path));
  w.comment("");
  w.comment(
      fmt::format("Model {}: input {}, slices of up to {} samples, {} parameters, {} MFLOP per "
                  "sample forward, {} per training step.",
                  g.name, g.input.str(), o.max_batch, dsl::with_thousands(g.param_count),
                  mflop(g.forward_flops), mflop(g.training_flops)));
  w.comment(
      "ISA variants, chosen at run time from the CPU: avx512 (16 samples per vector), avx2 (8), "
      "portable (1).");
  w.comment(
      "Samples ride in the vector lanes: every activation is stored [H][W][C][L] for a block of L "
      "samples.");
  w.comment("");
  std::vector<std::array<std::string, 6>> rows = {
      {"layer", "statement", "output", "params", "offset", "MFLOP"}};
  for (const dsl::Layer& l : g.layers)
    rows.push_back({l.name, l.statement, l.out.str(), dsl::with_thousands(l.params()),
                    l.params() ? std::to_string(l.weight_offset) : "-", mflop(l.forward_flops)});
  std::array<size_t, 6> width{};
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      line += i >= 3 ? fmt::format("{:>{}}  ", r[i], width[i])
                     : fmt::format("{:<{}}  ", r[i], width[i]);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    w.comment(line);
  }
}

void emit_layer_table(Writer& w, const dsl::Graph& g) {
  w.line("static const cnnc_layer layer_table[{}] = {{", g.layers.size());
  for (const dsl::Layer& l : g.layers) {
    int kind = 0;
    switch (l.kind) {
      case dsl::LayerKind::conv: kind = 1; break;
      case dsl::LayerKind::maxpool: kind = 2; break;
      case dsl::LayerKind::avgpool: kind = 3; break;
      case dsl::LayerKind::flatten: kind = 4; break;
      case dsl::LayerKind::dense: kind = 5; break;
      case dsl::LayerKind::dropout: kind = 6; break;
      case dsl::LayerKind::activation: kind = 7; break;
    }
    bool windowed = l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::maxpool ||
                    l.kind == dsl::LayerKind::avgpool;
    w.line(
        "    {{\"{}\", {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, "
        "{}, {}, {}}},",
        l.name, kind, static_cast<int>(l.activation), l.in.h, l.in.w, l.in.c, l.out.h, l.out.w,
        l.out.c, windowed ? l.kernel_h : 0, windowed ? l.kernel_w : 0, windowed ? l.stride_h : 0,
        windowed ? l.stride_w : 0, l.pad_top, l.pad_left, l.pad_bottom, l.pad_right,
        float_literal(static_cast<float>(l.rate)), l.weight_offset, l.weight_count, l.bias_offset,
        l.bias_count, l.trainable() ? 1 : 0);
  }
  w.line("}};");
  w.blank();
}

// The slice's start and end: clearing per-lane partials, and reducing them (and the dense
// layers' row products) into the caller's gradient vector, lanes summed in order.
void emit_slice_edges(EmitContext& c) {
  int64_t L = c.L();
  c.w.comment("Zeroes the borders of padded inputs: only their interiors are written per block.");
  c.w.open("static {} void clear_padding(float* __restrict ws)", c.target());
  c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers)
    if (lp.padded.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));  // {}", ws(lp.padded), lp.padded.floats,
               lp.layer->name);
  c.w.close();
  c.w.blank();

  c.w.comment("Clears what accumulates over a slice: per-lane gradient partials.");
  c.w.open("static {} void begin_slice(float* __restrict ws)", c.target());
  c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers) {
    if (!lp.layer->trainable()) continue;
    if (lp.lane_dw.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(lp.lane_dw), lp.lane_dw.floats);
    if (lp.lane_db.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(lp.lane_db), lp.lane_db.floats);
  }
  c.w.close();
  c.w.blank();

  c.w.comment(
      "Writes the slice's parameter gradients: lanes summed in order, dense weights as one product "
      "over the slice's rows.");
  c.w.open("static {} void finish_slice(float* __restrict grads, float* __restrict ws, int rows)",
           c.target());
  c.w.line("(void)grads, (void)ws, (void)rows;");
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    if (!l.trainable()) continue;
    c.w.open("");
    c.w.line("// {}", l.name);
    if (l.kind == dsl::LayerKind::conv) {
      c.w.line("const float* dw = {};", ws(lp.lane_dw));
      c.w.open("for (int j = 0; j < {}; ++j)", l.weight_count);
      c.w.line("float sum = 0.0f;");
      c.w.line("for (int lane = 0; lane < {}; ++lane) sum += dw[j * {} + lane];", L, L);
      c.w.line("grads[{} + j] = sum;", l.weight_offset);
      c.w.close();
    } else {
      c.w.line("{}_backward_weights(grads, ws, rows);", l.name);
    }
    c.w.line("const float* db = {};", ws(lp.lane_db));
    c.w.open("for (int k = 0; k < {}; ++k)", l.units);
    c.w.line("float sum = 0.0f;");
    c.w.line("for (int lane = 0; lane < {}; ++lane) sum += db[k * {} + lane];", L, L);
    c.w.line("grads[{} + k] = sum;", l.bias_offset);
    c.w.close();
    c.w.close();
  }
  c.w.close();
  c.w.blank();
}

// The block's input, transposed from the caller's [n][H][W][C] into [H][W][C][L]; lanes past
// the slice's end are zero.
void emit_load_block(EmitContext& c) {
  int64_t L = c.L(), size = c.graph.input.size();
  c.w.comment(fmt::format("input [n][{}] -> block [{}][L], samples first .. first + count - 1.",
                          size, size));
  c.w.open(
      "static {} void load_block(const float* __restrict input, int first, int count, float* "
      "__restrict ws)",
      c.target());
  c.w.line("float* x = {};", ws(c.plan.input));
  c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
  c.w.line("const float* src = input + (int64_t)(first + lane) * {};", size);
  c.w.line("if (lane < count) for (int e = 0; e < {}; ++e) x[e * {} + lane] = src[e];", size, L);
  c.w.line("else for (int e = 0; e < {}; ++e) x[e * {} + lane] = 0.0f;", size, L);
  c.w.close();
  c.w.close();
  c.w.blank();
}

// The output stage, one lane (sample) at a time: softmax where the model ends in one, the loss
// and its gradient in training, and the caller's output rows.
void emit_output_block(EmitContext& c) {
  const dsl::Graph& g = c.graph;
  const LayerPlan& last = c.plan.layers.back();
  int64_t L = c.L(), O = g.output().size();
  bool softmax = last.layer->activation == dsl::Activation::softmax;
  bool xent = g.training.loss == dsl::Loss::cross_entropy;
  c.w.comment(
      fmt::format("The last layer's {} values per lane -> {}the loss ({}) and the gradient that "
                  "starts backward.",
                  O, softmax ? "softmax, " : "", dsl::name_of(g.training.loss)));
  c.w.open(
      "static {} double output_block(const cnnc_pass* pass, int first, int count, float* "
      "__restrict ws, bool training)",
      c.target());
  c.w.line("const float* z = {};", c.output_of(last.index));
  c.w.line("float* dz = {};", c.grad_of(last.index));
  c.w.line("double loss = 0.0;");
  c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
  c.w.line("float v[{}], p[{}];", O, O);
  c.w.line("for (int j = 0; j < {}; ++j) v[j] = z[j * {} + lane];", O, L);
  c.w.line("float top = v[0];");
  c.w.line("for (int j = 1; j < {}; ++j) top = v[j] > top ? v[j] : top;", O);
  c.w.line("double sum = 0.0;");
  c.w.open("for (int j = 0; j < {}; ++j)", O);
  c.w.line("p[j] = std::exp(v[j] - top);");
  c.w.line("sum += p[j];");
  c.w.close();
  c.w.line("const float inv = (float)(1.0 / sum);");
  c.w.line("for (int j = 0; j < {}; ++j) p[j] *= inv;", O);
  c.w.line("const float* y = {};", softmax ? "p" : "v");
  c.w.open("if (lane >= count)");
  c.w.line("if (training) for (int j = 0; j < {}; ++j) dz[j * {} + lane] = 0.0f;", O, L);
  c.w.line("continue;");
  c.w.close();
  c.w.line(
      "if (pass->output) for (int j = 0; j < {}; ++j) pass->output[(int64_t)(first + lane) * {} + "
      "j] = y[j];",
      O, O);
  c.w.line("if (!training) continue;");
  c.w.line("const int32_t label = pass->labels[first + lane];");
  c.w.open("if (label < 0 || label >= {})", O);
  c.w.comment("The runtime checks labels when it loads them; a bad one here adds nothing.");
  c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = 0.0f;", O, L);
  c.w.line("continue;");
  c.w.close();
  if (xent) {
    c.w.comment(
        "-log softmax(z)[label] = log sum exp(z - top) - (z[label] - top); its gradient is p - "
        "onehot.");
    c.w.line("loss += std::log(sum) - (double)(v[label] - top);");
    c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = p[j] - (j == label ? 1.0f : 0.0f);",
             O, L);
  } else {
    c.w.line("float d[{}];", O);
    c.w.line("double squares = 0.0;");
    c.w.open("for (int j = 0; j < {}; ++j)", O);
    c.w.line("const float diff = y[j] - (j == label ? 1.0f : 0.0f);");
    c.w.line("squares += (double)diff * diff;");
    c.w.line("d[j] = 2.0f * diff / {}.0f;", O);
    c.w.close();
    c.w.line("loss += squares / {};", O);
    if (softmax) {
      c.w.comment("Through the softmax: dz = p * (d - sum_j d_j p_j).");
      c.w.line("float dot = 0.0f;");
      c.w.line("for (int j = 0; j < {}; ++j) dot += d[j] * p[j];", O);
      c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = p[j] * (d[j] - dot);", O, L);
    } else {
      c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = d[j];", O, L);
    }
  }
  c.w.close();
  c.w.line("return loss;");
  c.w.close();
  c.w.blank();
}

void emit_layer_calls(EmitContext& c, bool training) {
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    if (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense)
      c.w.line("{}_forward(params, ws);", l.name);
    else if (l.kind == dsl::LayerKind::dropout)
      c.w.line("{}_forward(ws, pass, first, {});", l.name, training ? "true" : "false");
    else
      c.w.line("{}_forward(ws);", l.name);
  }
}

// cnnc_model::train and cnnc_model::forward: one block of L samples at a time through every
// layer; train() also runs the loss and the backward pass, and writes the slice's gradients.
void emit_driver(EmitContext& c, bool training) {
  int64_t L = c.L();
  if (training) {
    c.w.comment(
        "cnnc_model::train for this ISA: forward, loss and backward block by block, then the "
        "slice's gradients.");
    c.w.open("static {} float train(const cnnc_model* model, const cnnc_pass* pass)", c.target());
  } else {
    c.w.comment("cnnc_model::forward for this ISA: inference, dropout off.");
    c.w.open("static {} void forward(const cnnc_model* model, const cnnc_pass* pass)", c.target());
  }
  c.w.line("(void)model;");
  c.w.line("float* ws = (float*)pass->workspace;");
  c.w.line("const float* params = pass->params;");
  c.w.line("(void)params;");
  c.w.line("clear_padding(ws);");
  if (training) {
    c.w.line("begin_slice(ws);");
    c.w.line("double loss = 0.0;");
  }
  c.w.line("const int blocks = (pass->n + {}) / {};", L - 1, L);
  c.w.open("for (int block = 0; block < blocks; ++block)");
  c.w.line("const int first = block * {};", L);
  c.w.line("const int count = pass->n - first < {} ? pass->n - first : {};", L, L);
  c.w.line("load_block(pass->input, first, count, ws);");
  emit_layer_calls(c, training);
  c.w.line("{}output_block(pass, first, count, ws, {});", training ? "loss += " : "",
           training ? "true" : "false");
  for (auto it = c.plan.layers.rbegin(); training && it != c.plan.layers.rend(); ++it) {
    const dsl::Layer& l = *it->layer;
    if (!runs_backward(*it)) continue;
    if (l.kind == dsl::LayerKind::conv)
      c.w.line("{}_backward(params, ws);", l.name);
    else if (l.kind == dsl::LayerKind::dense)
      c.w.line("{}_backward(params, ws, block);", l.name);
    else if (l.kind == dsl::LayerKind::dropout)
      c.w.line("{}_backward(ws, pass, first);", l.name);
    else
      c.w.line("{}_backward(ws);", l.name);
  }
  c.w.close();
  if (training) {
    c.w.line("finish_slice(pass->grads, ws, blocks * {});", L);
    c.w.line("return (float)loss;");
  }
  c.w.close();
  c.w.blank();
}

// The per-layer kernels of this ISA behind one signature, for cnnc_<name>_kernels: what a
// benchmark times layer by layer on a workspace that train() filled.
void emit_kernel_table(EmitContext& c) {
  struct Entry {
    std::string layer, phase, call;
    int64_t samples;
    double flops;
  };
  int64_t L = c.L(), rows = (c.plan.max_batch + L - 1) / L * L;
  std::vector<Entry> entries;
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    bool conv = l.kind == dsl::LayerKind::conv, dense = l.kind == dsl::LayerKind::dense;
    bool pool = l.kind == dsl::LayerKind::maxpool || l.kind == dsl::LayerKind::avgpool;
    if (!conv && !dense && !pool) continue;
    // 2 FLOPs per multiply-add of the layer's matrix product, per sample and phase.
    double macs2 = 2.0 * static_cast<double>(l.weight_count) *
                   static_cast<double>(conv ? l.out.h * l.out.w : 1);
    std::string args = pool ? "ws" : "params, ws";
    entries.push_back({l.name, "forward", fmt::format("{}_forward({})", l.name, args), L,
                       static_cast<double>(l.forward_flops * L)});
    if (lp.needs_dx)
      entries.push_back({l.name, "backward_data",
                         fmt::format("{}_backward{}({})", l.name, pool ? "" : "_data", args), L,
                         pool ? static_cast<double>(l.forward_flops * L) : macs2 * L});
    if (l.trainable())
      entries.push_back({l.name, "backward_weights",
                         conv ? fmt::format("{}_backward_weights(params, ws)", l.name)
                              : fmt::format("{}_backward_weights(grads, ws, {})", l.name, rows),
                         conv ? L : rows, macs2 * static_cast<double>(conv ? L : rows)});
  }
  for (const Entry& e : entries) {
    c.w.open("static {} void kernel_{}_{}(const float* params, float* grads, void* workspace)",
             c.target(), e.layer, e.phase);
    c.w.line("float* ws = (float*)workspace;");
    c.w.line("(void)params, (void)grads;");
    c.w.line("{};", e.call);
    c.w.close();
  }
  c.w.line("static const cnnc_kernel kernels[{}] = {{", std::max<size_t>(entries.size(), 1));
  for (const Entry& e : entries)
    c.w.line("    {{\"{}\", \"{}\", kernel_{}_{}, {}, {}}},", e.layer, e.phase, e.layer, e.phase,
             e.samples, fmt::format("{:.1f}", e.flops));
  if (entries.empty()) c.w.line("    {{\"\", \"\", nullptr, 0, 0.0}},");
  c.w.line("}};");
  c.w.line("static const int32_t kernel_count = {};", entries.size());
  c.w.blank();
}

void emit_isa(Writer& w, const dsl::Graph& g, Isa isa, int max_batch, int& functions) {
  Plan plan = plan_model(g, isa, max_batch);
  EmitContext c{g, plan, w};
  w.line("#if {}", variant_macro(isa));
  w.open_namespace(name_of(isa));
  w.comment(
      fmt::format("{} samples per vector; workspace {} floats for slices of up to {} samples.",
                  plan.lanes, plan.workspace_floats, max_batch));
  w.line("static const int64_t workspace_floats = {};", plan.workspace_floats);
  emit_lines(w, isa == Isa::avx512 ? vector_helpers_avx512
                : isa == Isa::avx2 ? vector_helpers_avx2
                                   : vector_helpers_portable);
  w.blank();
  for (const LayerPlan& lp : plan.layers) {
    switch (lp.layer->kind) {
      case dsl::LayerKind::conv: emit_conv(c, lp); break;
      case dsl::LayerKind::dense: emit_dense(c, lp); break;
      case dsl::LayerKind::maxpool:
      case dsl::LayerKind::avgpool: emit_pool(c, lp); break;
      default: emit_elementwise(c, lp); break;
    }
    functions += runs_backward(lp) ? 2 : 1;
  }
  emit_load_block(c);
  emit_slice_edges(c);
  emit_output_block(c);
  emit_driver(c, true);
  emit_driver(c, false);
  emit_kernel_table(c);
  functions += 7;
  w.close_namespace(name_of(isa));
  w.line("#endif");
  w.blank();
}

// The optimizer step over the trainable layers' ranges, written as the generic engine's
// (torch.optim's) SGD and Adam so that both engines agree.
void emit_update(Writer& w, const dsl::Graph& g) {
  w.comment(
      "cnnc_model::update: SGD with momentum or Adam (as torch.optim), trainable ranges only; "
      "weight decay is L2.");
  w.open(
      "static void update(const cnnc_model* model, float* params, const float* grads, float* "
      "state, const cnnc_optimizer* opt)");
  w.line("(void)model;");
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const dsl::Layer& l : g.layers)
    if (l.trainable()) {
      if (l.weight_count) ranges.push_back({l.weight_offset, l.weight_count});
      if (l.bias_count) ranges.push_back({l.bias_offset, l.bias_count});
    }
  if (ranges.empty()) {
    w.line("(void)params, (void)grads, (void)state, (void)opt;");
    w.close();
    w.blank();
    return;
  }
  w.line("static const int64_t ranges[{}][2] = {{", ranges.size());
  for (auto [at, n] : ranges) w.line("    {{{}, {}}},", at, n);
  w.line("}};");
  w.line("float* m = state;");
  w.line("float* v = state + {};", g.param_floats);
  w.open("if (opt->kind == CNNC_SGD)");
  w.open("for (const auto& range : ranges)");
  w.open("for (int64_t j = range[0]; j < range[0] + range[1]; ++j)");
  w.line("const float grad = grads[j] + opt->weight_decay * params[j];");
  w.line("m[j] = opt->momentum * m[j] + grad;");
  w.line("params[j] -= opt->lr * m[j];");
  w.close();
  w.close();
  w.line("return;");
  w.close();
  w.line("const double t = (double)opt->step;");
  w.line(
      "const float step_size = (float)((double)opt->lr / (1.0 - std::pow((double)opt->beta1, "
      "t)));");
  w.line("const float sqrt_correction2 = (float)std::sqrt(1.0 - std::pow((double)opt->beta2, t));");
  w.open("for (const auto& range : ranges)");
  w.open("for (int64_t j = range[0]; j < range[0] + range[1]; ++j)");
  w.line("const float grad = grads[j] + opt->weight_decay * params[j];");
  w.line("m[j] = opt->beta1 * m[j] + (1.0f - opt->beta1) * grad;");
  w.line("v[j] = opt->beta2 * v[j] + (1.0f - opt->beta2) * grad * grad;");
  w.line("const float denom = std::sqrt(v[j]) / sqrt_correction2 + opt->eps;");
  w.line("params[j] -= step_size * m[j] / denom;");
  w.close();
  w.close();
  w.close();
  w.blank();
}

void emit_entry_points(Writer& w, const dsl::Graph& g, const GenOptions& o) {
  int64_t O = g.output().size();
  w.comment(
      "The ISA variant for a target (\"auto\": the best this CPU runs): 0 avx512, 1 avx2, 2 "
      "portable, -1 none.");
  w.open("static int pick_isa(const char* target)");
  w.line("const bool any = std::strcmp(target, \"auto\") == 0;");
  w.line("(void)any;");
  w.line("#if CNNC_HAS_AVX512 || CNNC_HAS_AVX2");
  w.line("__builtin_cpu_init();");
  w.line("#endif");
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
  w.open("extern \"C\" cnnc_model* cnnc_{}_create(int32_t max_batch, const char* target)", g.name);
  w.line("using namespace cnnc_gen_{};", g.name);
  w.line("if (max_batch < 1 || max_batch > {} || !target) return nullptr;", o.max_batch);
  w.line("const int isa = pick_isa(target);");
  w.line("if (isa < 0) return nullptr;");
  w.line("cnnc_model* m = new (std::nothrow) cnnc_model();");
  w.line("if (!m) return nullptr;");
  w.line("m->abi_version = CNNC_ABI_VERSION;");
  w.line("m->name = \"{}\";", g.name);
  w.line("m->input_h = {};", g.input.h);
  w.line("m->input_w = {};", g.input.w);
  w.line("m->input_c = {};", g.input.c);
  w.line("m->output_size = {};", O);
  w.line("m->max_batch = max_batch;");
  w.line("m->loss = {};", g.training.loss == dsl::Loss::mse ? "CNNC_MSE" : "CNNC_CROSS_ENTROPY");
  w.line("m->layer_count = {};", g.layers.size());
  w.line("m->layers = layer_table;");
  w.line("m->param_count = {};", g.param_floats);
  w.line("m->update = update;");
  auto variant = [&](Isa isa, int index) {
    w.line("#if {}", variant_macro(isa));
    w.open("if (isa == {})", index);
    w.line("m->engine = \"specialized-{}\";", name_of(isa));
    w.line("m->workspace_bytes = {}::workspace_floats * 4;", name_of(isa));
    w.line("m->forward = {}::forward;", name_of(isa));
    w.line("m->train = {}::train;", name_of(isa));
    w.close();
    w.line("#endif");
  };
  variant(Isa::avx512, 0);
  variant(Isa::avx2, 1);
  variant(Isa::portable, 2);
  w.line("return m;");
  w.close();
  w.blank();
  w.line("extern \"C\" void cnnc_{}_destroy(cnnc_model* model) {{ delete model; }}", g.name);
  w.blank();
  w.open("extern \"C\" int32_t cnnc_{}_kernels(const char* target, const cnnc_kernel** kernels)",
         g.name);
  w.line("using namespace cnnc_gen_{};", g.name);
  w.line("const int isa = target ? pick_isa(target) : -1;");
  int index = 0;
  for (Isa isa : all_isas) {
    w.line("#if {}", variant_macro(isa));
    w.line("if (isa == {}) return *kernels = {}::kernels, {}::kernel_count;", index++, name_of(isa),
           name_of(isa));
    w.line("#endif");
  }
  w.line("(void)kernels;");
  w.line("return 0;");
  w.close();
}

}  // namespace

Generated emit_model(const dsl::Graph& g, const GenOptions& o) {
  Writer w;
  Generated out;
  emit_banner(w, g, o);
  w.blank();
  w.line("#include <cmath>");
  w.line("#include <cstdint>");
  w.line("#include <cstring>");
  w.line("#include <new>");
  w.blank();
  w.line("#include \"cnnc_abi.h\"");
  w.blank();
  w.line("#if defined(__GNUC__) && !defined(__clang__)");
  w.comment(
      "GCC 12 warns inside its own avx512fintrin.h (_mm512_undefined_ps; GCC bug 105593), which "
      "would fail builds with -Werror.");
  w.line("#pragma GCC diagnostic ignored \"-Wuninitialized\"");
  w.line("#pragma GCC diagnostic ignored \"-Wmaybe-uninitialized\"");
  w.line("#endif");
  w.line("#if defined(__x86_64__) || defined(__i386__)");
  w.line("#include <immintrin.h>");
  w.line("#define CNNC_X86 1");
  w.line("#else");
  w.line("#define CNNC_X86 0");
  w.line("#endif");
  w.comment(
      "The variants this translation unit compiles: all, unless CNNC_ONLY_VARIANT names one (0 "
      "avx512, 1 avx2, 2 portable), as cnnc's run-time build does for the one the CPU runs.");
  w.line("#ifdef CNNC_ONLY_VARIANT");
  w.line("#define CNNC_HAS_AVX512 (CNNC_X86 && CNNC_ONLY_VARIANT == 0)");
  w.line("#define CNNC_HAS_AVX2 (CNNC_X86 && CNNC_ONLY_VARIANT == 1)");
  w.line("#define CNNC_HAS_PORTABLE (CNNC_ONLY_VARIANT == 2)");
  w.line("#else");
  w.line("#define CNNC_HAS_AVX512 CNNC_X86");
  w.line("#define CNNC_HAS_AVX2 CNNC_X86");
  w.line("#define CNNC_HAS_PORTABLE 1");
  w.line("#endif");
  w.line("#define CNNC_AVX512 __attribute__((target(\"avx512f,avx2,fma\"), unused))");
  w.line("#define CNNC_AVX2 __attribute__((target(\"avx2,fma\"), unused))");
  w.line("#define CNNC_PORTABLE __attribute__((unused))");
  w.line("#define CNNC_NOINLINE __attribute__((noinline))");
  w.line("#define CNNC_OPAQUE(pointer) __asm__(\"\" : \"+r\"(pointer))");
  w.blank();
  w.open_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_layer_table(w, g);
  for (Isa isa : all_isas) emit_isa(w, g, isa, o.max_batch, out.functions);
  emit_update(w, g);
  w.close_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_entry_points(w, g, o);
  out.functions += 5;
  out.source = w.str();
  out.lines = w.lines();
  return out;
}

}  // namespace cnnc::codegen
