// A PNG file read back as 8-bit RGB through stb_image, for the tests that check pixels. It
// compiles stb_image's decoder (static), so include it from one source file per test executable.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <vector>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb_image.h>

namespace cnnc_test {

struct Png {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height][width][3]
  const uint8_t* at(int x, int y) const { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
};

inline Png read_png(const std::filesystem::path& path) {
  Png p;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &p.width, &p.height, &channels, 3);
  INFO(path);
  REQUIRE(data);
  p.rgb.assign(data, data + static_cast<size_t>(p.width) * p.height * 3);
  stbi_image_free(data);
  return p;
}

}  // namespace cnnc_test
