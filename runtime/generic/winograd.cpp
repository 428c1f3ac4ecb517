// The bf16 products of a conv whose specialised forward or input gradient runs by Winograd's
// F(2x2, 3x3), or whose weight gradient runs by F(3x3, 2x2) (cnnc_winograd, cnnc_winograd_dx and
// cnnc_winograd_dw, cnnc_abi.h; codegen/emit_winograd.cpp), for the generic engine with bf16
// products: the specialised code rounds the transforms to bf16, not x, w and dz (the tiles' V =
// B^T x_t B, the filters' U = G w G^T, dz's tiles' Z = G' dz_t G'^T), so this rounds those. Each is
// made in fp32 in the specialised code's order, so that the same values round; the products are
// summed in fp32, and the output transforms (y = A^T M A + b, dw = A'^T M A') run in the
// specialised code's order. A relu or max-pool decision then goes the same way in both but where
// the sums' order decides it, as with the direct sums that bf16_products rounds x and w for.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
//   G' = [1 0; 1 1; 1 -1; 0 1],  A'^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 -1]
#include <algorithm>

#include "generic/gemm.hpp"
#include "generic/layers.hpp"

namespace cnnc::rt {
namespace {

// V = B^T d B of one channel's 4x4 tile, in the generated code's order (rows, then columns),
// rounded to bf16, into v[pos * stride].
void input_transform(const float (&d)[4][4], float* v, int64_t stride) {
  float e[4][4];
  for (int s = 0; s < 4; ++s) {
    e[0][s] = d[0][s] - d[2][s];
    e[1][s] = d[1][s] + d[2][s];
    e[2][s] = d[2][s] - d[1][s];
    e[3][s] = d[1][s] - d[3][s];
  }
  for (int r = 0; r < 4; ++r) {
    v[(4 * r) * stride] = round_to_bf16(e[r][0] - e[r][2]);
    v[(4 * r + 1) * stride] = round_to_bf16(e[r][1] + e[r][2]);
    v[(4 * r + 2) * stride] = round_to_bf16(e[r][2] - e[r][1]);
    v[(4 * r + 3) * stride] = round_to_bf16(e[r][1] - e[r][3]);
  }
}

// Z = G d G^T of one filter's 2x2 tile of dz, G = [1 0; 1 1; 1 -1; 0 1], in the generated code's
// order (rows, then columns), rounded to bf16, into z[pos * stride].
void gradient_transform(const float (&d)[2][2], float* z, int64_t stride) {
  float e[4][2];
  for (int b = 0; b < 2; ++b) {
    e[0][b] = d[0][b];
    e[1][b] = d[0][b] + d[1][b];
    e[2][b] = d[0][b] - d[1][b];
    e[3][b] = d[1][b];
  }
  for (int a = 0; a < 4; ++a) {
    z[(4 * a) * stride] = round_to_bf16(e[a][0]);
    z[(4 * a + 1) * stride] = round_to_bf16(e[a][0] + e[a][1]);
    z[(4 * a + 2) * stride] = round_to_bf16(e[a][0] - e[a][1]);
    z[(4 * a + 3) * stride] = round_to_bf16(e[a][1]);
  }
}

// A^T M A plus bias, in the generated code's order, into y[0], y[step], y[row], y[row + step].
void output_transform(const float (&m)[16], float bias, float* y, int64_t step, int64_t row) {
  float r0[4], r1[4];
  for (int q = 0; q < 4; ++q) {
    r0[q] = (m[q] + m[4 + q]) + m[8 + q];
    r1[q] = (m[4 + q] - m[8 + q]) - m[12 + q];
  }
  y[0] = ((r0[0] + r0[1]) + r0[2]) + bias;
  y[step] = ((r0[1] - r0[2]) - r0[3]) + bias;
  y[row] = ((r1[0] + r1[1]) + r1[2]) + bias;
  y[row + step] = ((r1[1] - r1[2]) - r1[3]) + bias;
}

}  // namespace

void conv_forward_winograd_bf16(const cnnc_layer& l, int32_t n, const float* x, const float* w,
                                const float* b, float* y, float* col) {
  const int64_t H = l.in_h, W = l.in_w, C = l.in_c, K = l.out_c, Q = l.out_w;
  const int64_t rows = l.out_h / 2, tiles = l.out_w / 2;
  float* v = col;                          // [rows * tiles][16][C]
  float* u = col + rows * tiles * 16 * C;  // one filter's [16][C]
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + i * H * W * C;
    float* yi = y + i * l.out_h * Q * K;
    for (int64_t t = 0; t < rows * tiles; ++t)
      for (int64_t c = 0; c < C; ++c) {
        float d[4][4];
        for (int r = 0; r < 4; ++r)
          for (int s = 0; s < 4; ++s) {
            const int64_t h = 2 * (t / tiles) - l.pad_top + r,
                          wc = 2 * (t % tiles) - l.pad_left + s;
            d[r][s] = h >= 0 && h < H && wc >= 0 && wc < W ? xi[(h * W + wc) * C + c] : 0.0f;
          }
        input_transform(d, v + t * 16 * C + c, C);
      }
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t c = 0; c < C; ++c) {
        float f[16];
        cnnc_winograd_filter(f, w + k * 9 * C + c, C);
        for (int pos = 0; pos < 16; ++pos) u[pos * C + c] = round_to_bf16(f[pos]);
      }
      for (int64_t t = 0; t < rows * tiles; ++t) {
        float m[16];
        for (int pos = 0; pos < 16; ++pos) {
          float sum = 0.0f;
          for (int64_t c = 0; c < C; ++c) sum += u[pos * C + c] * v[(t * 16 + pos) * C + c];
          m[pos] = sum;
        }
        output_transform(m, b ? b[k] : 0.0f, yi + (2 * (t / tiles) * Q + 2 * (t % tiles)) * K + k,
                         K, Q * K);
      }
    }
    activation_forward(l.activation, 1, l.out_h * Q * K, yi);
  }
}

void conv_backward_data_winograd_bf16(const cnnc_layer& l, int32_t n, const float* w,
                                      const float* dy, float* dx, float* col) {
  const int64_t H = l.in_h, W = l.in_w, C = l.in_c, K = l.out_c, P = l.out_h, Q = l.out_w;
  float* u = col;             // [16][C][K]: the filters turned by 180 degrees, transposed
  float* v = u + 16 * C * K;  // one tile's [16][K]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      float f[16];
      cnnc_winograd_filter(f, w + k * 9 * C + 8 * C + c, -C);
      for (int pos = 0; pos < 16; ++pos) u[(pos * C + c) * K + k] = round_to_bf16(f[pos]);
    }
  for (int32_t i = 0; i < n; ++i) {
    const float* dyi = dy + i * P * Q * K;
    float* dxi = dx + i * H * W * C;
    for (int64_t t = 0; t < (H / 2) * (W / 2); ++t) {
      const int64_t h0 = 2 * (t / (W / 2)), w0 = 2 * (t % (W / 2));
      for (int64_t k = 0; k < K; ++k) {
        float d[4][4];  // dz padded by 2: rows h0 - 2 .. h0 + 1
        for (int r = 0; r < 4; ++r)
          for (int s = 0; s < 4; ++s) {
            const int64_t p = h0 - 2 + r, q = w0 - 2 + s;
            d[r][s] = p >= 0 && p < P && q >= 0 && q < Q ? dyi[(p * Q + q) * K + k] : 0.0f;
          }
        input_transform(d, v + k, K);
      }
      for (int64_t c = 0; c < C; ++c) {
        float m[16];
        for (int pos = 0; pos < 16; ++pos) {
          float sum = 0.0f;
          for (int64_t k = 0; k < K; ++k) sum += u[(pos * C + c) * K + k] * v[pos * K + k];
          m[pos] = sum;
        }
        output_transform(m, 0.0f, dxi + (h0 * W + w0) * C + c, C, W * C);
      }
    }
  }
}

void conv_backward_weights_winograd_bf16(const cnnc_layer& l, int32_t n, const float* x,
                                         const float* dy, float* dw, float* col) {
  const int64_t H = l.in_h, W = l.in_w, C = l.in_c, K = l.out_c, P = l.out_h, Q = l.out_w;
  float* m = col;             // [16][K][C]: the sums of Z (.) V over tiles and samples
  float* v = m + 16 * K * C;  // one tile's [16][C]
  float* z = v + 16 * C;      // and its [16][K]
  std::fill(m, m + 16 * K * C, 0.0f);
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + i * H * W * C;
    const float* dyi = dy + i * P * Q * K;
    for (int64_t t = 0; t < (P / 2) * (Q / 2); ++t) {
      const int64_t p0 = 2 * (t / (Q / 2)), q0 = 2 * (t % (Q / 2));
      for (int64_t c = 0; c < C; ++c) {
        float d[4][4];
        for (int r = 0; r < 4; ++r)
          for (int s = 0; s < 4; ++s) {
            const int64_t h = p0 - l.pad_top + r, wc = q0 - l.pad_left + s;
            d[r][s] = h >= 0 && h < H && wc >= 0 && wc < W ? xi[(h * W + wc) * C + c] : 0.0f;
          }
        input_transform(d, v + c, C);
      }
      for (int64_t k = 0; k < K; ++k) {
        const float d[2][2] = {
            {dyi[(p0 * Q + q0) * K + k], dyi[(p0 * Q + q0 + 1) * K + k]},
            {dyi[((p0 + 1) * Q + q0) * K + k], dyi[((p0 + 1) * Q + q0 + 1) * K + k]}};
        gradient_transform(d, z + k, K);
      }
      for (int pos = 0; pos < 16; ++pos)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t c = 0; c < C; ++c)
            m[(pos * K + k) * C + c] += z[pos * K + k] * v[pos * C + c];
    }
  }
  // dw = A^T M A, A^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 -1], in the generated code's order.
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      float r[3][4];
      for (int b = 0; b < 4; ++b) {
        const float m0 = m[(b * K + k) * C + c], m1 = m[((4 + b) * K + k) * C + c],
                    m2 = m[((8 + b) * K + k) * C + c], m3 = m[((12 + b) * K + k) * C + c];
        const float half_sum = 0.5f * (m1 + m2);
        r[0][b] = m0 + half_sum;
        r[1][b] = 0.5f * (m1 - m2);
        r[2][b] = half_sum - m3;
      }
      for (int a = 0; a < 3; ++a) {
        const float half_sum = 0.5f * (r[a][1] + r[a][2]);
        float* to = dw + (k * 9 + a * 3) * C + c;
        to[0] = r[a][0] + half_sum;
        to[C] = 0.5f * (r[a][1] - r[a][2]);
        to[2 * C] = half_sum - r[a][3];
      }
    }
}

}  // namespace cnnc::rt
