// Dense (fully connected) layer, forward and backward, each one GEMM over the whole slice.
//
//   forward           y[N][K]  = x[N][C] * w^T[C][K]   (GEMM NT), then bias and activation
//   backward-weights  dw[K][C] = dy^T[K][N] * x[N][C]  (GEMM TN)
//   backward-data     dx[N][C] = dy[N][K] * w[K][C]    (GEMM NN)
#include "generic/gemm.hpp"
#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

int64_t inputs_of(const cnnc_layer& l) {
  return int64_t{l.in_h} * l.in_w * l.in_c;
}

}  // namespace

// x [N][C], w [K][C], b [K] -> y [N][K].
void dense_forward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* b,
                   float* y, float* pack, bool bf16) {
  const int64_t C = inputs_of(l), K = l.out_c;
  GemmArgs g;
  g.trans_b = true;
  g.m = n, g.n = K, g.k = C;
  g.a = x, g.lda = C;
  g.b = w, g.ldb = C;
  g.c = y, g.ldc = K;
  g.bf16 = bf16;
  sgemm(g, pack);
  if (b) add_bias(n, l.out_c, b, y);
  activation_forward(l.activation, n, K, y);
}

// dy [N][K] -> dw [K][C], db [K], dx [N][C].
void dense_backward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* dy,
                    float* dx, float* dw, float* db, float* pack, bool bf16) {
  const int64_t C = inputs_of(l), K = l.out_c;
  if (db) sum_bias(n, l.out_c, dy, db);
  if (dw) {
    GemmArgs g;
    g.trans_a = true;
    g.m = K, g.n = C, g.k = n;
    g.a = dy, g.lda = K;
    g.b = x, g.ldb = C;
    g.c = dw, g.ldc = C;
    g.bf16 = bf16;
    sgemm(g, pack);
  }
  if (dx) {
    GemmArgs g;
    g.m = n, g.n = C, g.k = K;
    g.a = dy, g.lda = K;
    g.b = w, g.ldb = C;
    g.c = dx, g.ldc = C;
    g.bf16 = bf16;
    sgemm(g, pack);
  }
}

}  // namespace cnnc::rt
