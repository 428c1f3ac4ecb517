// SGEMM for the generic engine: cache-blocked, register-tiled, one binary for AVX-512/AVX2/SSE2.
#pragma once

#include <cstdint>

namespace cnnc::rt {

// Row-major throughout. op(X) is X or its transpose, as in BLAS:
//   C[M][N] (+)= op(A)[M][K] * op(B)[K][N]
// A is read as A[i*lda + k] (trans_a false) or A[k*lda + i] (trans_a true); B likewise.
// accumulate false overwrites C, true adds to it. pack is scratch of kGemmPackFloats floats,
// 64-byte aligned: the packed panels of A and B (owned by the caller, so the engine's whole
// memory is the ABI's workspace). bf16 rounds every element of op(A) and op(B) to bf16 first
// (round_to_bf16), as AVX512_BF16 code does before vdpbf16ps: each product is then exact in
// fp32, and the sums stay fp32.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
  bool bf16 = false;
};

// x rounded to the nearest bf16 (ties to even), denormals flushed to zero and NaNs quieted, as
// vcvtne2ps2bf16 does; returned widened back to fp32.
float round_to_bf16(float x);

// Blocking, BLIS style: an MR x NR register tile, an MC x KC block of A kept in L2, a KC x NC
// block of B kept in L3 (KC x NR of it in L1 per micro-kernel call).
inline constexpr int64_t kGemmMR = 6, kGemmNR = 16;
inline constexpr int64_t kGemmMC = 144, kGemmKC = 256, kGemmNC = 1024;
inline constexpr int64_t kGemmPackFloats = kGemmMC * kGemmKC + kGemmKC * kGemmNC;

// Runs the widest variant this CPU supports, chosen once.
void sgemm(const GemmArgs& g, float* pack);

// The variants, so that tests and benches can run each one the CPU has (and skip the others).
enum class GemmIsa { sse2, avx2, avx512 };
bool gemm_isa_supported(GemmIsa isa);
GemmIsa gemm_isa_best();
const char* gemm_isa_name(GemmIsa isa);
void sgemm_isa(GemmIsa isa, const GemmArgs& g, float* pack);

// The reference: a plain triple loop with a double accumulator, for tests and benches.
void sgemm_naive(const GemmArgs& g);

}  // namespace cnnc::rt
