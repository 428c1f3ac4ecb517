// SHA-256 (FIPS 180-4): the cache key of generated code and the checksum of cached libraries.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace cnnc::codegen {

// Incremental: update() any number of times, then hex() once.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void block(const unsigned char* p);

  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// One-shot digest of bytes, 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace cnnc::codegen
