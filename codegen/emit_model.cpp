// The whole generated file, in order: the prelude, each ISA's namespace (plan, vector helpers,
// layer functions, drivers), the optimizer step and the C entry points.
#include "emit_model.hpp"

#include <fmt/format.h>

#include "emit.hpp"

namespace cnnc::codegen {

namespace {

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

// Text that generated code carries verbatim, line by line (so that the writer counts lines).
void emit_lines(Writer& w, std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    w.line("{}", text.substr(start, end - start));
    start = end + 1;
  }
}

// One ISA's complete engine in its own namespace, compiled only when the variant is on.
void emit_isa(Writer& w, const dsl::Graph& g, Isa isa, int max_batch) {
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
  }
  emit_drivers(c);
  w.close_namespace(name_of(isa));
  w.line("#endif");
  w.blank();
}

}  // namespace

Generated emit_model(const dsl::Graph& g, const GenOptions& o) {
  Writer w;
  emit_prelude(w, g, o);
  w.open_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_layer_table(w, g);
  for (Isa isa : all_isas) emit_isa(w, g, isa, o.max_batch);
  emit_update(w, g);
  w.close_namespace("cnnc_gen_" + g.name);
  w.blank();
  emit_entry_points(w, g, o);
  return {w.str(), "", w.lines(), w.functions()};
}

}  // namespace cnnc::codegen
