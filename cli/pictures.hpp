// Pictures for cnnc predict: PNG and PGM files, and the images of an IDX file, as grey bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cnnc::cli {

struct Picture {
  std::string name;  // the file, or "file[i]" for the i-th image of an IDX file
  int32_t rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [rows][cols], 0 black .. 255 white, as MNIST stores them
};

// The largest file predict reads (MNIST's training images are 47 MB), and the largest picture
// it decodes, per side: both far above what a model takes, far below what exhausts memory.
inline constexpr uint64_t max_picture_file_bytes = uint64_t{256} << 20;
inline constexpr uint32_t max_picture_side = 4096;

// The pictures in the file at path. An IDX images file (plain or gzip, known by its first bytes)
// gives its first `limit` images, all of them when limit is 0; anything else is decoded as one
// PNG, or binary PGM (P5) or PPM (P6) picture, colour converted to grey. Throws
// std::runtime_error naming the file and what is wrong with it.
std::vector<Picture> read_pictures(const std::string& path, int32_t limit);

// The same from the file's bytes (the fuzzer's entry); name stands for the file in messages.
std::vector<Picture> decode_pictures(const std::string& name, std::string_view bytes,
                                     int32_t limit);

}  // namespace cnnc::cli
