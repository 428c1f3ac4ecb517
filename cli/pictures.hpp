// Pictures for cnnc predict: PNG and PGM files, and the images of an IDX file, as grey bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cnnc::cli {

struct Picture {
  std::string name;  // the file, or "file[i]" for the i-th image of an IDX file
  int32_t rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [rows][cols], 0 black .. 255 white, as MNIST stores them
};

// The pictures in the file at path. An IDX images file (plain or gzip, known by its first bytes)
// gives its first `limit` images, all of them when limit is 0; anything else is decoded as one
// PNG or binary PGM picture, colour converted to grey. Throws std::runtime_error naming the file
// and what is wrong with it.
std::vector<Picture> read_pictures(const std::string& path, int32_t limit);

}  // namespace cnnc::cli
