// The generic engine's layer kernels: every layer's forward and backward, shapes read at run time.
//
// Letters, once for every kernel: N samples, H W C input (channels last), K filters or units,
// R S kernel window, P Q output. Shapes come from the layer's cnnc_layer row (runtime/cnnc_abi.h).
// A gradient is its tensor's name with d in front. Backward kernels take dy with respect to the
// layer's output before its fused activation: the engine applies activation_backward first.
// Nothing here allocates: scratch (col, pack) comes from the caller's workspace.
#pragma once

#include <cstdint>

#include "cnnc_abi.h"

namespace cnnc::rt {

// ---- conv.cpp: im2col + GEMM, any stride, asymmetric zero padding ----

// Floats of scratch a conv needs: one sample's im2col matrix, P*Q*R*S*C, or 0 for a 1x1 stride-1
// unpadded conv, whose input already is its im2col matrix; at least what the bf16 Winograd
// gradients need for a layer the rules name (winograd.cpp), which fp32 reserves too.
int64_t conv_col_floats(const cnnc_layer& l);

// bf16 (here and below): the products' operands rounded to bf16, sums in fp32 (GemmArgs::bf16).

// x [N][H][W][C], w [K][R][S][C], b [K] or null -> y [N][P][Q][K], bias and activation fused.
void conv_forward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* b,
                  float* y, float* col, float* pack, bool bf16 = false);

// The same with bf16 products for a layer that cnnc_winograd names (winograd.cpp): the rounded
// values are its Winograd transforms, as in the specialised code. col: conv_col_floats scratch.
void conv_forward_winograd_bf16(const cnnc_layer& l, int32_t n, const float* x, const float* w,
                                const float* b, float* y, float* col);
// And the input gradient of a layer that cnnc_winograd_dx names: dy [N][P][Q][K] -> dx
// [N][H][W][C], overwritten.
void conv_backward_data_winograd_bf16(const cnnc_layer& l, int32_t n, const float* w,
                                      const float* dy, float* dx, float* col);
// And the weight gradient of a layer that cnnc_winograd_dw names, by F(3x3, 2x2) with its
// transforms V and Z rounded: x [N][H][W][C], dy [N][P][Q][K] -> dw [K][3][3][C], overwritten.
void conv_backward_weights_winograd_bf16(const cnnc_layer& l, int32_t n, const float* x,
                                         const float* dy, float* dw, float* col);

// dy [N][P][Q][K] -> dw [K][R][S][C], db [K], dx [N][H][W][C], each overwritten and each
// skipped when null.
void conv_backward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* dy,
                   float* dx, float* dw, float* db, float* col, float* pack, bool bf16 = false);

// ---- dense.cpp: y = x w^T + b, C = in_h*in_w*in_c read in [H][W][C] order ----

// x [N][C], w [K][C], b [K] or null -> y [N][K], bias and activation fused.
void dense_forward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* b,
                   float* y, float* pack, bool bf16 = false);

// dy [N][K] -> dw [K][C], db [K], dx [N][C], each overwritten and each skipped when null.
void dense_backward(const cnnc_layer& l, int32_t n, const float* x, const float* w, const float* dy,
                    float* dx, float* dw, float* db, float* pack, bool bf16 = false);

// ---- pool.cpp: R x S windows, independent strides, no padding ----

// x [N][H][W][C] -> y [N][P][Q][C], the maximum of each window.
void maxpool_forward(const cnnc_layer& l, int32_t n, const float* x, float* y);

// dy [N][P][Q][C] -> dx [N][H][W][C] (overwritten): each window's gradient goes to its first
// maximum, found again in x rather than stored, so forward keeps nothing extra.
void maxpool_backward(const cnnc_layer& l, int32_t n, const float* x, const float* dy, float* dx);

// x [N][H][W][C] -> y [N][P][Q][C], the mean of each window.
void avgpool_forward(const cnnc_layer& l, int32_t n, const float* x, float* y);

// dy [N][P][Q][C] -> dx [N][H][W][C] (overwritten).
void avgpool_backward(const cnnc_layer& l, int32_t n, const float* dy, float* dx);

// ---- activation.cpp: y = f(y) in place over n samples of `size` values ----

// Softmax normalises over all `size` values of a sample; the others are elementwise.
void activation_forward(int32_t act, int32_t n, int64_t size, float* y);

// dx = f'(.) dy, from the activation's output y: dx may alias dy.
void activation_backward(int32_t act, int32_t n, int64_t size, const float* y, const float* dy,
                         float* dx);

// y[N][rows][K] += b[K]: the bias half of the fused epilogue of conv and dense.
void add_bias(int64_t rows, int32_t k, const float* b, float* y);

// db[K] = sum over rows of dy[rows][K].
void sum_bias(int64_t rows, int32_t k, const float* dy, float* db);

// ---- dropout.cpp: inverted dropout with the ABI's counter-based mask ----

// Which masks: sample i of the slice is sample sample_base + i of the epoch; layer is the index
// in the layer table.
struct DropoutKey {
  uint64_t seed;
  uint32_t epoch;
  uint32_t sample_base;
  uint32_t layer;
};

// x [N][H][W][C] -> y: kept elements scaled by 1 / (1 - rate), the others 0.
void dropout_forward(const cnnc_layer& l, int32_t n, const DropoutKey& key, const float* x,
                     float* y);

// dy -> dx through the same mask.
void dropout_backward(const cnnc_layer& l, int32_t n, const DropoutKey& key, const float* dy,
                      float* dx);

// ---- loss.cpp: the loss of n samples of o outputs; returns the sum of per-sample losses ----

// z [N][O] logits -> -log softmax(z)[label], via log-sum-exp so that it never takes log(0).
// dz [N][O] = softmax(z) - onehot(label); probs [N][O] = softmax(z) when non-null.
float softmax_xent(int32_t n, int32_t o, const float* z, const int32_t* labels, float* probs,
                   float* dz);

// y [N][O] -> mean over the O outputs of (y - onehot(label))^2; dy [N][O] its gradient.
float mse(int32_t n, int32_t o, const float* y, const int32_t* labels, float* dy);

// ---- optimizer.cpp: one step over `count` parameters, as torch.optim ----

// g' = g + wd p;  v = momentum v + g';  p -= lr v.
void sgd_step(const cnnc_optimizer& opt, int64_t count, float* p, const float* g, float* v);

// g' = g + wd p;  m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
void adam_step(const cnnc_optimizer& opt, int64_t count, float* p, const float* g, float* m,
               float* v);

}  // namespace cnnc::rt
