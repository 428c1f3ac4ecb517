// Plain images of tensors: a 2-D map as grey or diverging colours, scaled up with nearest
// neighbour so a 28x28 map is visible, written as PNG through stb_image_write.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace cnnc::draw {

// Pixels as stb_image_write takes them: [height][width][3], 8-bit RGB.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// How values become colours. The scaling is part of the contract (tests read pixels back):
//   grey:      v -> round(255 * (v - lo) / (hi - lo)), clamped to 0..255, the same in R, G, B;
//              lo, hi are the map's minimum and maximum (all 0 when they are equal).
//   diverging: m = max |v|; t = v / m in [-1, 1] (0 when m is 0); t = 0 is white, t = 1 red
//              (255, 0, 0) and t = -1 blue (0, 0, 255), linear in between:
//              t >= 0: (255, round(255 (1 - t)), round(255 (1 - t))); t < 0: mirrored to blue.
enum class ColorMap { grey, diverging };

// The rows x cols map x (row-major) with every value a scale x scale block of pixels, lo and hi
// the map's own minimum and maximum (grey) or hi its largest magnitude (diverging).
Image tensor_image(std::span<const float> x, int rows, int cols, ColorMap map, int scale);

// The same on a range the caller chose, so that maps drawn side by side share one colour scale.
Image tensor_image(std::span<const float> x, int rows, int cols, ColorMap map, int scale, float lo,
                   float hi);

// The colour of v under map for the range lo..hi (grey) or the magnitude hi (diverging).
void color_of(float v, float lo, float hi, ColorMap map, uint8_t out[3]);

// The PNG file's bytes.
std::string png_bytes(const Image& image);

// Writes image as a PNG file atomically; throws std::runtime_error naming the file.
void write_png(const std::filesystem::path& path, const Image& image);

}  // namespace cnnc::draw
