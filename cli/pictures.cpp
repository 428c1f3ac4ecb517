// PNG and PGM through stb_image (only those two decoders compiled in), IDX through runtime/data.
#include "pictures.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "data/idx.hpp"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_PNM
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG
#include <stb_image.h>

namespace cnnc::cli {

namespace {

// IDX files start with two zero bytes and the type and rank; gzip with 1f 8b.
bool looks_like_idx(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(fmt::format("cannot read '{}'", path));
  std::array<unsigned char, 4> head{};
  size_t n = std::fread(head.data(), 1, head.size(), f.get());
  if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) return true;
  return n == 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08;
}

}  // namespace

std::vector<Picture> read_pictures(const std::string& path, int32_t limit) {
  std::vector<Picture> out;
  if (looks_like_idx(path)) {
    rt::IdxImages idx = rt::read_idx_images(path);
    int32_t count = limit > 0 && limit < idx.count ? limit : idx.count;
    size_t size = static_cast<size_t>(idx.rows) * idx.cols;
    for (int32_t i = 0; i < count; ++i) {
      const uint8_t* first = idx.pixels.data() + i * size;
      out.push_back({fmt::format("{}[{}]", path, i), idx.rows, idx.cols, {first, first + size}});
    }
    return out;
  }
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load(path.c_str(), &w, &h, &channels, 1),
                                                 &stbi_image_free);
  if (!data)
    throw std::runtime_error(
        fmt::format("'{}' is not a PNG, PGM or IDX image file ({})", path, stbi_failure_reason()));
  out.push_back({path, h, w, {data.get(), data.get() + static_cast<size_t>(w) * h}});
  return out;
}

}  // namespace cnnc::cli
