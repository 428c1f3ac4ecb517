// SGEMM: BLIS-style loops around a 6x16 micro-kernel that GCC vectorises once per ISA.
//
// Loop nest (BLIS): jc over NC columns of B -> pc over KC of the inner dimension (pack B) ->
// ic over MC rows of A (pack A) -> jr over NR -> ir over MR -> the micro-kernel, which keeps a
// 6x16 tile of C in registers for KC rank-1 updates. Packing absorbs the transposes, so one
// micro-kernel serves NN, NT and TN, and zero-pads ragged edges so it never branches inside.
#include "generic/gemm.hpp"

#include <cmath>
#include <cstring>

namespace cnnc::rt {

float round_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0) {
    bits &= 0x80000000u;  // zero or denormal: zero of its sign (bits, not compares: DAZ-proof)
  } else if (std::isnan(x)) {
    bits = (bits | 0x00400000u) & 0xffff0000u;  // quiet, payload truncated
  } else {
    // Add half of the dropped 16 bits' range, less one unless the kept part is odd (ties to
    // even); a carry rounds up into the exponent, to infinity past the largest bf16.
    bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
  }
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

namespace {

// A packed panel's values rounded to bf16 in place (GemmArgs::bf16); the zero padding stays zero.
void round_panel(float* panel, int64_t count) {
  for (int64_t i = 0; i < count; ++i) panel[i] = round_to_bf16(panel[i]);
}

constexpr int64_t MR = kGemmMR, NR = kGemmNR;

// Element access through the transposes, for the reference loop.
inline float a_at(const GemmArgs& g, int64_t i, int64_t k) {
  float a = g.trans_a ? g.a[k * g.lda + i] : g.a[i * g.lda + k];
  return g.bf16 ? round_to_bf16(a) : a;
}

inline float b_at(const GemmArgs& g, int64_t k, int64_t j) {
  float b = g.trans_b ? g.b[j * g.ldb + k] : g.b[k * g.ldb + j];
  return g.bf16 ? round_to_bf16(b) : b;
}

// dst[panel][kc][MR]: rows i0.. i0+mc of op(A), columns p0.. p0+kc. Rows beyond m are zero: the
// tile rows they feed are discarded, but stale (perhaps denormal) data there would slow FMAs.
void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = mc - ir < MR ? mc - ir : MR;
    // Walk the source contiguously: along k for a row-major A, along the rows for A^T.
    if (g.trans_a) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + ir;
        for (int64_t r = 0; r < rows; ++r) dst[p * MR + r] = src[r];
      }
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = g.a + (i0 + ir + r) * g.lda + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + r] = src[p];
      }
    }
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t r = rows; r < MR; ++r) dst[p * MR + r] = 0.0f;
    if (g.bf16) round_panel(dst, MR * kc);
    dst += MR * kc;
  }
}

// dst[panel][kc][NR]: rows p0.. p0+kc of op(B), columns j0.. j0+nc, zero beyond column n.
void pack_b(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = nc - jr < NR ? nc - jr : NR;
    // Walk the source contiguously: along the columns for a row-major B, along k for B^T.
    if (g.trans_b) {
      for (int64_t c = 0; c < cols; ++c) {
        const float* src = g.b + (j0 + jr + c) * g.ldb + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + c] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.b + (p0 + p) * g.ldb + j0 + jr;
        for (int64_t c = 0; c < cols; ++c) dst[p * NR + c] = src[c];
      }
    }
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t c = cols; c < NR; ++c) dst[p * NR + c] = 0.0f;
    if (g.bf16) round_panel(dst, NR * kc);
    dst += NR * kc;
  }
}

// The register tile is MR rows of NR floats, each row L vectors of type V. Written with GCC/Clang
// vector extensions rather than intrinsics so one source serves every ISA: V is 16 floats (zmm)
// under AVX-512, 8 (ymm) under AVX2, 4 (xmm) otherwise. Vectors wider than the target are not
// used: GCC would spill them to memory.
typedef float vf16 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));

// C[mr][nr] (+)= a[kc][MR] * b[kc][NR]; mr <= MR, nr <= NR are the valid part of the tile.
template <class V>
[[gnu::always_inline]] inline void micro_kernel(int64_t kc, const float* a, const float* b,
                                                float* c, int64_t ldc, int64_t mr, int64_t nr,
                                                bool accumulate) {
  constexpr int64_t W = sizeof(V) / sizeof(float), L = NR / W;
  V acc[MR][L] = {};
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    V bv[L];
#pragma GCC unroll 4
    for (int64_t l = 0; l < L; ++l) std::memcpy(&bv[l], b + p * NR + l * W, sizeof(V));
#pragma GCC unroll 8
    for (int64_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int64_t l = 0; l < L; ++l) acc[i][l] += a[i] * bv[l];
    a += MR;
  }
  // Full tiles go straight to C; ragged ones through a local tile. acc is only ever read by
  // value so that it stays in registers.
  const bool full = mr == MR && nr == NR;
  float tile[MR][NR];
#pragma GCC unroll 8
  for (int64_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int64_t l = 0; l < L; ++l) {
      V v = acc[i][l];
      float* dst = full ? c + i * ldc + l * W : &tile[i][l * W];
      if (full && accumulate) {
        V old;
        std::memcpy(&old, dst, sizeof old);
        v += old;
      }
      std::memcpy(dst, &v, sizeof v);
    }
  if (full) return;
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i][j] : tile[i][j];
}

// The packed mc x kc block of A times the packed kc x nc block of B into C: where the time goes.
template <class V>
[[gnu::always_inline]] inline void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* pa,
                                                const float* pb, float* c, int64_t ldc,
                                                bool accumulate) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = nc - jr < NR ? nc - jr : NR;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int64_t mr = mc - ir < MR ? mc - ir : MR;
      micro_kernel<V>(kc, pa + ir * kc, pb + jr * kc, c + ir * ldc + jr, ldc, mr, nr, accumulate);
    }
  }
}

// One instance per ISA. GCC's target_clones cannot vary the vector width per clone, and the
// width is what makes each one fast, so the three are spelled out and picked at run time.
[[gnu::target("avx512f")]] void macro_kernel_avx512(int64_t mc, int64_t nc, int64_t kc,
                                                    const float* pa, const float* pb, float* c,
                                                    int64_t ldc, bool accumulate) {
  macro_kernel<vf16>(mc, nc, kc, pa, pb, c, ldc, accumulate);
}

[[gnu::target("avx2,fma")]] void macro_kernel_avx2(int64_t mc, int64_t nc, int64_t kc,
                                                   const float* pa, const float* pb, float* c,
                                                   int64_t ldc, bool accumulate) {
  macro_kernel<vf8>(mc, nc, kc, pa, pb, c, ldc, accumulate);
}

void macro_kernel_sse2(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb,
                       float* c, int64_t ldc, bool accumulate) {
  macro_kernel<vf4>(mc, nc, kc, pa, pb, c, ldc, accumulate);
}

}  // namespace

bool gemm_isa_supported(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::avx512: return __builtin_cpu_supports("avx512f");
    case GemmIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmIsa::sse2: return true;
  }
  return false;
}

GemmIsa gemm_isa_best() {
  static const GemmIsa best = gemm_isa_supported(GemmIsa::avx512) ? GemmIsa::avx512
                              : gemm_isa_supported(GemmIsa::avx2) ? GemmIsa::avx2
                                                                  : GemmIsa::sse2;
  return best;
}

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::avx512: return "avx512";
    case GemmIsa::avx2: return "avx2";
    case GemmIsa::sse2: return "sse2";
  }
  return "?";
}

void sgemm(const GemmArgs& g, float* pack) {
  sgemm_isa(gemm_isa_best(), g, pack);
}

void sgemm_isa(GemmIsa isa, const GemmArgs& g, float* pack) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    if (!g.accumulate)
      for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + i * g.ldc, 0, g.n * sizeof(float));
    return;
  }
  const auto macro = isa == GemmIsa::avx512 ? macro_kernel_avx512
                     : isa == GemmIsa::avx2 ? macro_kernel_avx2
                                            : macro_kernel_sse2;
  float* pa = pack;
  float* pb = pack + kGemmMC * kGemmKC;
  for (int64_t jc = 0; jc < g.n; jc += kGemmNC) {
    const int64_t nc = g.n - jc < kGemmNC ? g.n - jc : kGemmNC;
    for (int64_t pc = 0; pc < g.k; pc += kGemmKC) {
      const int64_t kc = g.k - pc < kGemmKC ? g.k - pc : kGemmKC;
      pack_b(g, pc, kc, jc, nc, pb);
      for (int64_t ic = 0; ic < g.m; ic += kGemmMC) {
        const int64_t mc = g.m - ic < kGemmMC ? g.m - ic : kGemmMC;
        pack_a(g, ic, mc, pc, kc, pa);
        // Later KC slices add to what the first one wrote.
        macro(mc, nc, kc, pa, pb, g.c + ic * g.ldc + jc, g.ldc, g.accumulate || pc > 0);
      }
    }
  }
}

void sgemm_naive(const GemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double s = g.accumulate ? g.c[i * g.ldc + j] : 0.0;
      for (int64_t p = 0; p < g.k; ++p) s += double(a_at(g, i, p)) * double(b_at(g, p, j));
      g.c[i * g.ldc + j] = float(s);
    }
}

}  // namespace cnnc::rt
