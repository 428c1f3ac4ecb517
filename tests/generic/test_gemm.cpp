// SGEMM against the naive triple loop: every ISA variant this CPU has, every transpose, odd sizes;
// bf16 rounding against values worked out by hand.
#include "generic/gemm.hpp"

#include <bit>
#include <cfloat>
#include <cmath>

#include "support.hpp"

using cnnc::rt::GemmArgs;
using cnnc::rt::GemmIsa;

namespace {

struct Case {
  int64_t m, n, k;
};

// op(A) is m x k and op(B) k x n; the leading dimensions are wider than needed, so a kernel that
// assumes packed rows reads the wrong elements.
void check_against_naive(GemmIsa isa, Case c, bool ta, bool tb, bool accumulate, bool bf16) {
  cnnc::test::Rng rng(uint64_t(c.m * 1000003 + c.n * 1009 + c.k + ta * 2 + tb));
  const int64_t lda = (ta ? c.m : c.k) + 3, ldb = (tb ? c.k : c.n) + 5, ldc = c.n + 1;
  std::vector<float> a = rng.vec(size_t((ta ? c.k : c.m) * lda));
  std::vector<float> b = rng.vec(size_t((tb ? c.n : c.k) * ldb));
  std::vector<float> fast = rng.vec(size_t(c.m * ldc));
  std::vector<float> slow = fast;
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = c.m, g.n = c.n, g.k = c.k;
  g.a = a.data(), g.lda = lda, g.b = b.data(), g.ldb = ldb, g.ldc = ldc;
  g.accumulate = accumulate;
  g.bf16 = bf16;
  cnnc::test::AlignedBuffer pack(cnnc::rt::kGemmPackFloats);
  g.c = fast.data();
  cnnc::rt::sgemm_isa(isa, g, pack.get());
  g.c = slow.data();
  cnnc::rt::sgemm_naive(g);
  // Sums of k products of values in [-1, 1]: float rounding grows like sqrt(k).
  const double tol = 1e-5 * std::sqrt(double(c.k) + 1.0) * 4.0;
  double worst = 0.0;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t at = size_t(i * ldc + j);
      if (j >= c.n) {
        INFO("column " << j << " is outside C and must not be written");
        REQUIRE(fast[at] == slow[at]);
        continue;
      }
      worst = std::max(worst, double(std::fabs(fast[at] - slow[at])));
    }
  INFO(cnnc::rt::gemm_isa_name(isa)
       << " " << c.m << "x" << c.n << "x" << c.k << " ta=" << ta << " tb=" << tb
       << " accumulate=" << accumulate << " bf16=" << bf16);
  CHECK(worst <= tol);
}

}  // namespace

TEST_CASE("sgemm matches the naive triple loop on every ISA, transpose and odd size", "[gemm]") {
  const Case cases[] = {{1, 1, 1},    {17, 33, 65}, {128, 100, 300}, {6, 16, 1},
                        {7, 17, 257}, {145, 3, 9},  {5, 1030, 20},   {150, 40, 600}};
  for (GemmIsa isa : {GemmIsa::sse2, GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cnnc::rt::gemm_isa_supported(isa)) {
      WARN("skipping " << cnnc::rt::gemm_isa_name(isa) << ": this CPU lacks it");
      continue;
    }
    for (const Case& c : cases)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (bool accumulate : {false, true})
            for (bool bf16 : {false, true}) check_against_naive(isa, c, ta, tb, accumulate, bf16);
  }
}

TEST_CASE("sgemm with an empty inner dimension zeroes or keeps C", "[gemm]") {
  std::vector<float> c(6, 7.0f);
  GemmArgs g;
  g.m = 2, g.n = 3, g.k = 0, g.c = c.data(), g.ldc = 3;
  cnnc::test::AlignedBuffer pack(cnnc::rt::kGemmPackFloats);
  g.accumulate = true;
  cnnc::rt::sgemm(g, pack.get());
  CHECK(c == std::vector<float>(6, 7.0f));
  g.accumulate = false;
  cnnc::rt::sgemm(g, pack.get());
  CHECK(c == std::vector<float>(6, 0.0f));
}

TEST_CASE("round_to_bf16 keeps 8 bits of significand, ties to even, flushes denormals", "[gemm]") {
  using cnnc::rt::round_to_bf16;
  const float ulp = std::ldexp(1.0f, -7);  // of bf16 in [1, 2)
  CHECK(round_to_bf16(1.0f) == 1.0f);
  CHECK(round_to_bf16(-2.5f) == -2.5f);
  CHECK(round_to_bf16(1.0f + ulp / 2) == 1.0f);                                // a tie, to even
  CHECK(round_to_bf16(1.0f + 3 * ulp / 2) == 1.0f + 2 * ulp);                  // a tie, to even
  CHECK(round_to_bf16(1.0f + ulp / 2 + std::ldexp(1.0f, -20)) == 1.0f + ulp);  // past the tie
  CHECK(round_to_bf16(-(1.0f + ulp / 2 + std::ldexp(1.0f, -20))) == -(1.0f + ulp));
  CHECK(round_to_bf16(1.0f + ulp / 2 - std::ldexp(1.0f, -20)) == 1.0f);
  CHECK(round_to_bf16(2.0f - std::ldexp(1.0f, -9)) == 2.0f);  // a carry into the exponent
  CHECK(round_to_bf16(FLT_MAX) == INFINITY);                  // past the largest bf16
  CHECK(round_to_bf16(-FLT_MAX) == -INFINITY);
  CHECK(std::isinf(round_to_bf16(INFINITY)));
  CHECK(std::isnan(round_to_bf16(NAN)));
  // A signalling NaN comes out quiet, its payload cut to bf16's, as vcvtne2ps2bf16 makes it.
  CHECK(std::bit_cast<uint32_t>(round_to_bf16(std::bit_cast<float>(0x7f800001u))) == 0x7fc00000u);
  CHECK(std::bit_cast<uint32_t>(round_to_bf16(std::bit_cast<float>(0xff812345u))) == 0xffc10000u);
  CHECK(round_to_bf16(1e-40f) == 0.0f);
  CHECK(std::signbit(round_to_bf16(-1e-40f)));
}

TEST_CASE("sgemm with bf16 multiplies operands rounded to bf16 and sums in fp32", "[gemm]") {
  // op(A) = [1 + 2^-8, 3], op(B) = [1, 1 + 2^-9]^T: rounded, [1, 3] and [1, 1]; so 4 in bf16,
  // and 4 + 2.5 x 2^-8 in fp32.
  const float a[] = {1.0f + std::ldexp(1.0f, -8), 3.0f};
  const float b[] = {1.0f, 1.0f + std::ldexp(1.0f, -9)};
  cnnc::test::AlignedBuffer pack(cnnc::rt::kGemmPackFloats);
  for (GemmIsa isa : {GemmIsa::sse2, GemmIsa::avx2, GemmIsa::avx512}) {
    if (!cnnc::rt::gemm_isa_supported(isa)) continue;
    for (bool bf16 : {false, true}) {
      float c = -1.0f;
      GemmArgs g;
      g.m = 1, g.n = 1, g.k = 2;
      g.a = a, g.lda = 2, g.b = b, g.ldb = 1, g.c = &c, g.ldc = 1;
      g.bf16 = bf16;
      cnnc::rt::sgemm_isa(isa, g, pack.get());
      INFO(cnnc::rt::gemm_isa_name(isa) << " bf16=" << bf16);
      CHECK(c == (bf16 ? 4.0f : 4.0f + 2.5f * std::ldexp(1.0f, -8)));
      float naive = -1.0f;
      g.c = &naive;
      cnnc::rt::sgemm_naive(g);
      CHECK(naive == c);
    }
  }
}
