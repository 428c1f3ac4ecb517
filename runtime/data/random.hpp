// random.hpp: the small, portable RNG of the data path (splitmix64), so that shuffles and
// augmentations are identical on every standard library and every thread count.
#pragma once

#include <cstdint>

namespace cnnc::rt {

// Stafford's "Mix13" finaliser, as in splitmix64: a bijection on 64 bits whose output bits each
// depend on every input bit. Used both as a stream step and as a counter-based hash.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// splitmix64 (Steele, Lea, Flood 2014): a Weyl sequence fed through mix64.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ull); }

 private:
  uint64_t state_;
};

// An integer in [0, n) for n <= 2^32, by Lemire's multiply-shift of the high 32 bits. Its bias
// (at most n / 2^32) is irrelevant for shuffling; unlike std::uniform_int_distribution, the
// result is the same everywhere.
inline uint32_t below(uint64_t bits, uint64_t n) {
  return static_cast<uint32_t>(((bits >> 32) * n) >> 32);
}

// A double in [0, 1) from the top 53 bits.
inline double unit_double(uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace cnnc::rt
