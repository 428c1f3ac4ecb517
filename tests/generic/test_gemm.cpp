// SGEMM against the naive triple loop: every ISA variant this CPU has, every transpose, odd sizes.
#include "generic/gemm.hpp"
#include "support.hpp"

using cnnc::rt::GemmArgs;
using cnnc::rt::GemmIsa;

namespace {

struct Case {
  int64_t m, n, k;
};

// op(A) is m x k and op(B) k x n; the leading dimensions are wider than needed, so a kernel that
// assumes packed rows reads the wrong elements.
void check_against_naive(GemmIsa isa, Case c, bool ta, bool tb, bool accumulate) {
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
  INFO(cnnc::rt::gemm_isa_name(isa) << " " << c.m << "x" << c.n << "x" << c.k << " ta=" << ta
                                    << " tb=" << tb << " accumulate=" << accumulate);
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
          for (bool accumulate : {false, true}) check_against_naive(isa, c, ta, tb, accumulate);
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
