// augment.cpp: drawing augmentation parameters and the bilinear affine warp.
#include "data/augment.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define CNNC_DATA_AVX2 1
#endif

#include "data/batches.hpp"
#include "data/random.hpp"

namespace cnnc::rt {
namespace {

// The warp reads from a float copy of the image with a one-pixel zero border: every sample
// position within [-1, size) of the source then has its four taps inside the copy, so a sample
// needs one range test instead of four. A position outside is moved to the copy's corner, whose
// taps are border zeros, so it reads exactly 0 without a branch.
struct Padded {
  std::vector<float> pixels;  // [rows + 2][cols + 2]
  int32_t stride = 0;
  float x_end = 0, y_end = 0;  // sample positions must lie in [0, x_end) x [0, y_end)
};

// One bilinear sample at (sx, sy) of the padded copy: the reference for the SIMD version, which
// performs the same float operations in the same order and so gives the same bits.
inline float sample(const Padded& p, float sx, float sy) {
  const bool inside = sx >= 0.0f && sx < p.x_end && sy >= 0.0f && sy < p.y_end;
  if (!inside) sx = sy = 0.0f;  // also catches NaN
  const auto x0 = static_cast<int32_t>(sx), y0 = static_cast<int32_t>(sy);
  const float fx = sx - static_cast<float>(x0), fy = sy - static_cast<float>(y0);
  const float* tap = p.pixels.data() + static_cast<size_t>(y0) * p.stride + x0;
  const float top = tap[0] + fx * (tap[1] - tap[0]);
  const float bottom = tap[p.stride] + fx * (tap[p.stride + 1] - tap[p.stride]);
  return top + fy * (bottom - top);
}

#if CNNC_DATA_AVX2
// (row[i], row[i+1], row[j], row[j+1] | row[k], row[k+1], row[l], row[l+1]).
__attribute__((target("avx2"))) inline __m256 tap_pairs(const float* row, int32_t i, int32_t j,
                                                        int32_t k, int32_t l) {
  auto pair = [row](int32_t at) {
    double bits;
    std::memcpy(&bits, row + at, sizeof bits);
    return bits;
  };
  const __m128 low = _mm_castpd_ps(_mm_setr_pd(pair(i), pair(j)));
  const __m128 high = _mm_castpd_ps(_mm_setr_pd(pair(k), pair(l)));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(low), high, 1);
}

// The vector path of one output row of cols >= 8 pixels, source position
// (row_x + dx_dox * ox, row_y + dy_dox * ox). A row that is no multiple of 8 ends with a block
// that overlaps the one before, recomputing a few pixels instead of a scalar tail. AVX2 for 8
// lanes and integer multiplies; `sample`'s operations in the same order, so the same bits.
__attribute__((target("avx2"))) void warp_row_avx2(const Padded& p, float row_x, float row_y,
                                                   float dx_dox, float dy_dox, int32_t cols,
                                                   float* out) {
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 x_end = _mm256_set1_ps(p.x_end), y_end = _mm256_set1_ps(p.y_end);
  const __m256i stride = _mm256_set1_epi32(p.stride);
  const float* top_row = p.pixels.data();
  const float* bottom_row = top_row + p.stride;
  for (int32_t block = 0; block < cols; block += 8) {
    const int32_t ox = std::min(block, cols - 8);
    const __m256 o = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(ox)), lane);
    __m256 sx = _mm256_add_ps(_mm256_set1_ps(row_x), _mm256_mul_ps(_mm256_set1_ps(dx_dox), o));
    __m256 sy = _mm256_add_ps(_mm256_set1_ps(row_y), _mm256_mul_ps(_mm256_set1_ps(dy_dox), o));
    const __m256 inside = _mm256_and_ps(
        _mm256_and_ps(_mm256_cmp_ps(sx, zero, _CMP_GE_OQ), _mm256_cmp_ps(sx, x_end, _CMP_LT_OQ)),
        _mm256_and_ps(_mm256_cmp_ps(sy, zero, _CMP_GE_OQ), _mm256_cmp_ps(sy, y_end, _CMP_LT_OQ)));
    sx = _mm256_and_ps(sx, inside);
    sy = _mm256_and_ps(sy, inside);
    const __m256i x0 = _mm256_cvttps_epi32(sx), y0 = _mm256_cvttps_epi32(sy);
    const __m256 fx = _mm256_sub_ps(sx, _mm256_cvtepi32_ps(x0));
    const __m256 fy = _mm256_sub_ps(sy, _mm256_cvtepi32_ps(y0));
    // Each pixel's left and right taps are adjacent floats: loading them as one 64-bit pair
    // takes half the loads of four gathers, which are slow on Zen 4. Pairs 0,1,4,5 go to X and
    // 2,3,6,7 to Y, so that shuffling X with Y lines the lanes up in order.
    alignas(32) int32_t at[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(at),
                       _mm256_add_epi32(_mm256_mullo_epi32(y0, stride), x0));
    const __m256 top_x = tap_pairs(top_row, at[0], at[1], at[4], at[5]);
    const __m256 top_y = tap_pairs(top_row, at[2], at[3], at[6], at[7]);
    const __m256 bottom_x = tap_pairs(bottom_row, at[0], at[1], at[4], at[5]);
    const __m256 bottom_y = tap_pairs(bottom_row, at[2], at[3], at[6], at[7]);
    const __m256 a = _mm256_shuffle_ps(top_x, top_y, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 b = _mm256_shuffle_ps(top_x, top_y, _MM_SHUFFLE(3, 1, 3, 1));
    const __m256 c = _mm256_shuffle_ps(bottom_x, bottom_y, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 d = _mm256_shuffle_ps(bottom_x, bottom_y, _MM_SHUFFLE(3, 1, 3, 1));
    const __m256 top = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
    const __m256 bottom = _mm256_add_ps(c, _mm256_mul_ps(fx, _mm256_sub_ps(d, c)));
    _mm256_storeu_ps(out + ox, _mm256_add_ps(top, _mm256_mul_ps(fy, _mm256_sub_ps(bottom, top))));
  }
}

bool use_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}
#endif

void warp_padded(const uint8_t* src, int32_t rows, int32_t cols, const AugmentParams& p, float* dst,
                 Padded& padded) {
  // The border is zeroed once per image size: later images only overwrite the interior.
  if (padded.stride != cols + 2 || padded.y_end != static_cast<float>(rows + 1)) {
    padded.stride = cols + 2;
    padded.x_end = static_cast<float>(cols + 1);
    padded.y_end = static_cast<float>(rows + 1);
    padded.pixels.assign(static_cast<size_t>(rows + 2) * padded.stride, 0.0f);
  }
  for (int32_t y = 0; y < rows; ++y) {
    pixels_to_floats(src + static_cast<size_t>(y) * cols, static_cast<size_t>(cols),
                     padded.pixels.data() + static_cast<size_t>(y + 1) * padded.stride + 1);
  }

  // Inverse map, output (oy, ox) -> source (sy, sx), about the centre (cy, cx):
  //   u = ox - cx - dx, v = oy - cy - dy
  //   sx = (u cos - v sin) / zoom + cx,  sy = (u sin + v cos) / zoom + cy
  // the transpose of the counter-clockwise turn on screen (rows grow downwards).
  const double rad = p.angle * std::numbers::pi / 180.0;
  const double c = std::cos(rad) / p.zoom, s = std::sin(rad) / p.zoom;
  const double cx = (cols - 1) / 2.0, cy = (rows - 1) / 2.0;
  const double u0 = -cx - p.dx, v0 = -cy - p.dy;
  const auto sx_x = static_cast<float>(c), sx_y = static_cast<float>(-s);
  const auto sy_x = static_cast<float>(s), sy_y = static_cast<float>(c);
  // +1: coordinates in the padded copy. Exact for integer shifts, so those copy pixels.
  const auto sx_0 = static_cast<float>(u0 * c - v0 * s + cx + 1.0);
  const auto sy_0 = static_cast<float>(u0 * s + v0 * c + cy + 1.0);

#if CNNC_DATA_AVX2
  // The vector path indexes with int32: images beyond 2^31 pixels (none in practice) stay scalar.
  const bool vector = use_avx2() && cols >= 8 && padded.pixels.size() < size_t{INT32_MAX};
#endif
  for (int32_t oy = 0; oy < rows; ++oy) {
    const float row_x = sx_0 + sx_y * static_cast<float>(oy);
    const float row_y = sy_0 + sy_y * static_cast<float>(oy);
    float* out = dst + static_cast<size_t>(oy) * cols;
#if CNNC_DATA_AVX2
    if (vector) {
      warp_row_avx2(padded, row_x, row_y, sx_x, sy_x, cols, out);
      continue;
    }
#endif
    for (int32_t ox = 0; ox < cols; ++ox) {
      const auto o = static_cast<float>(ox);
      out[ox] = sample(padded, row_x + sx_x * o, row_y + sy_x * o);
    }
  }
}

}  // namespace

AugmentParams draw_augment(const AugmentSpec& spec, uint64_t seed, uint32_t epoch,
                           uint32_t sample) {
  // Counter-based: the key is a hash of (seed, epoch, sample) and field i is hash(key + i), so
  // any sample's draw is computed without touching any other's.
  uint64_t key = mix64(seed ^ 0x4155474d454e54ull);
  key = mix64(key + epoch);
  key = mix64(key ^ (uint64_t{sample} * 0x9e3779b97f4a7c15ull));
  auto field = [key](uint64_t i) { return mix64(key + (i + 1) * 0xd1b54a32d192ed03ull); };

  AugmentParams p;
  if (spec.shift > 0) {
    const uint64_t span = 2 * static_cast<uint64_t>(spec.shift) + 1;
    p.dx = static_cast<int32_t>(below(field(0), span)) - spec.shift;
    p.dy = static_cast<int32_t>(below(field(1), span)) - spec.shift;
  }
  if (spec.rotate != 0) {
    p.angle = static_cast<float>((2.0 * unit_double(field(2)) - 1.0) * spec.rotate);
  }
  if (spec.scale != 0) {
    p.zoom = static_cast<float>(1.0 + (2.0 * unit_double(field(3)) - 1.0) * spec.scale);
  }
  return p;
}

void warp_image(const uint8_t* src, int32_t rows, int32_t cols, const AugmentParams& params,
                float* dst) {
  Padded padded;
  warp_padded(src, rows, cols, params, dst, padded);
}

void prepare_augmented_batch(const LabeledImages& data, std::span<const int32_t> indices,
                             const AugmentSpec& spec, uint64_t seed, uint32_t epoch, float* images,
                             int32_t* labels) {
  const size_t pixels = static_cast<size_t>(data.rows) * data.cols;
  Padded padded;
  for (size_t b = 0; b < indices.size(); ++b) {
    const int32_t i = indices[b];
    const AugmentParams p = draw_augment(spec, seed, epoch, static_cast<uint32_t>(i));
    warp_padded(data.image(i), data.rows, data.cols, p, images + b * pixels, padded);
    labels[b] = data.labels[i];
  }
}

}  // namespace cnnc::rt
