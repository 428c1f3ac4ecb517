// Tensors as images: the documented colour maps of image.hpp and PNG encoding in memory, so the
// file is written atomically in one piece.
#include "draw/image.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "train/atomic_file.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb_image_write.h>

namespace cnnc::draw {

namespace {
uint8_t byte(double x) {
  return static_cast<uint8_t>(std::clamp(std::lround(x), 0L, 255L));
}
}  // namespace

void color_of(float v, float lo, float hi, ColorMap map, uint8_t out[3]) {
  if (map == ColorMap::grey) {
    out[0] = out[1] = out[2] = hi > lo ? byte(255.0 * (v - lo) / (hi - lo)) : 0;
    return;
  }
  const double t = hi > 0 ? std::clamp(v / static_cast<double>(hi), -1.0, 1.0) : 0.0;
  const uint8_t fade = byte(255.0 * (1 - std::abs(t)));
  out[0] = t >= 0 ? 255 : fade;
  out[1] = fade;
  out[2] = t >= 0 ? fade : 255;
}

Image tensor_image(std::span<const float> x, int rows, int cols, ColorMap map, int scale) {
  if (x.empty()) return tensor_image(x, rows, cols, map, scale, 0, 0);  // reports the size
  auto [min, max] = std::minmax_element(x.begin(), x.end());
  return tensor_image(x, rows, cols, map, scale, *min,
                      map == ColorMap::diverging ? std::max(std::abs(*min), std::abs(*max)) : *max);
}

Image tensor_image(std::span<const float> x, int rows, int cols, ColorMap map, int scale, float lo,
                   float hi) {
  if (rows <= 0 || cols <= 0 || scale <= 0 || x.size() != static_cast<size_t>(rows) * cols)
    throw std::invalid_argument("tensor_image: a map of " + std::to_string(x.size()) +
                                " values is not " + std::to_string(rows) + "x" +
                                std::to_string(cols));
  Image image{cols * scale, rows * scale, {}};
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
  for (int y = 0; y < image.height; ++y)
    for (int x0 = 0; x0 < image.width; ++x0)
      color_of(x[static_cast<size_t>(y / scale) * cols + x0 / scale], lo, hi, map,
               &image.rgb[(static_cast<size_t>(y) * image.width + x0) * 3]);
  return image;
}

std::string png_bytes(const Image& image) {
  std::string bytes;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  if (!stbi_write_png_to_func(append, &bytes, image.width, image.height, 3, image.rgb.data(),
                              image.width * 3))
    throw std::runtime_error("cannot encode a PNG of " + std::to_string(image.width) + "x" +
                             std::to_string(image.height));
  return bytes;
}

void write_png(const std::filesystem::path& path, const Image& image) {
  rt::write_file_atomically(path, png_bytes(image));
}

}  // namespace cnnc::draw
