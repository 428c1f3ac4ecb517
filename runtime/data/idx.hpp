// idx.hpp: reads IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed,
// and rejects anything that is not exactly what its header announces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/byte_source.hpp"

namespace cnnc::rt {

// Every failure of the data path. what() starts with the file's path and says what was
// expected and what was found, so the trainer can print it as is.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Images from an IDX file with magic 0x00000803 (unsigned byte, rank 3).
struct IdxImages {
  std::string path;
  int32_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count][rows][cols], row-major as stored
};

// Labels from an IDX file with magic 0x00000801 (unsigned byte, rank 1).
struct IdxLabels {
  std::string path;
  int32_t count = 0;
  std::vector<uint8_t> labels;  // [count]
};

// The largest payload accepted: far above any IDX data set, far below what would exhaust memory.
inline constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 32;

// Both read the whole file; a name ending in anything may hold gzip data (detected by its
// magic bytes, not its name). Memory grows with the bytes actually read, never with what a
// hostile header claims. Throw DataError; a file that cannot be opened, or is not a regular
// file, is one too ("PATH: cannot read: No such file or directory").
IdxImages read_idx_images(const std::filesystem::path& path);
IdxLabels read_idx_labels(const std::filesystem::path& path);

// The same from bytes already at hand (cnnc predict's files, the fuzzers); name stands for the
// file in messages and in the result's path.
// first > 0 reads only the first `first` images (all when there are fewer) and leaves the rest
// unread: neither inflated nor checked, but for a plain file's size.
IdxImages read_idx_images(ByteSource& in, const std::string& name, int32_t first = 0);
IdxLabels read_idx_labels(ByteSource& in, const std::string& name);

}  // namespace cnnc::rt
