// idx_files.hpp: writes IDX files, well-formed or deliberately broken, into a temporary
// directory that the tests of the data path read back.
#pragma once

#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace cnnc::test {

using Bytes = std::vector<uint8_t>;

inline void put_u32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// An IDX file: magic 0x0000 <type> <rank>, then the dimensions, then the payload as given.
inline Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes out{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) put_u32(out, d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// count images of rows x cols whose pixel j of image i is (i * 7 + j) mod 256.
inline Bytes image_file(uint32_t count, uint32_t rows, uint32_t cols) {
  Bytes pixels(static_cast<size_t>(count) * rows * cols);
  for (size_t k = 0; k < pixels.size(); ++k) {
    const size_t i = k / (rows * cols), j = k % (rows * cols);
    pixels[k] = static_cast<uint8_t>((i * 7 + j) % 256);
  }
  return idx_bytes(0x08, {count, rows, cols}, pixels);
}

inline Bytes label_file(const Bytes& labels) {
  return idx_bytes(0x08, {static_cast<uint32_t>(labels.size())}, labels);
}

// A fresh directory under the system's temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("cnnc-test-data-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::filesystem::path write(const std::string& name, const Bytes& bytes) const {
    auto p = path_ / name;
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + p.string());
    return p;
  }

  // The gzip file of bytes, compressed by zlib.
  std::filesystem::path write_gz(const std::string& name, const Bytes& bytes) const {
    auto p = path_ / name;
    gzFile gz = gzopen(p.string().c_str(), "wb");
    if (!gz) throw std::runtime_error("cannot write " + p.string());
    const int n =
        bytes.empty() ? 0 : gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(gz);
    if (n != static_cast<int>(bytes.size())) throw std::runtime_error("gzwrite " + p.string());
    return p;
  }

  Bytes read(const std::string& name) const {
    std::ifstream in(path_ / name, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::filesystem::path path_;
};

// The real MNIST, when scripts/setup fetched it; tests that need it skip otherwise.
inline std::filesystem::path mnist_dir() {
  return std::filesystem::path(CNNC_SOURCE_DIR) / "data" / "mnist";
}

}  // namespace cnnc::test
