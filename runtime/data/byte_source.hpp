// byte_source.hpp: the bytes a reader parses, from a file a user named or from memory (tests,
// fuzzers), behind one interface, so that each format is parsed by one function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>

namespace cnnc::rt {

// Why a file cannot be read, in words and without its path ("No such file or directory", "it is
// a named pipe (FIFO), not a regular file"): each reader frames it with the path its own way.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bytes read front to back, whose total length is known before the first read: a parser checks
// what a header announces against size() before it allocates anything.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Fills dst from the current position; fewer bytes only at the end. Throws FileError.
  virtual size_t read(std::span<std::byte> dst) = 0;
};

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::span<const std::byte> bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  size_t read(std::span<std::byte> dst) override;

 private:
  std::span<const std::byte> bytes_;
  size_t pos_ = 0;
};

// A regular file, open for reading. Opening never blocks (a FIFO with no writer would block
// open() forever) and refuses what is not a regular file: a directory, a FIFO, a device such as
// /dev/zero, whose size fstat cannot tell. Throws FileError.
class InputFile : public ByteSource {
 public:
  explicit InputFile(const std::filesystem::path& path);
  ~InputFile() override;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const override { return size_; }  // fstat's, when opened
  size_t read(std::span<std::byte> dst) override;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole regular file at path, for formats read in one piece. Throws FileError, without
// reading, when the file holds more than max_bytes: "it is 10485760 bytes; a .cnn file is at
// most 1048576 bytes", with `what` as ".cnn file"; also when it shrinks while being read.
std::string read_file(const std::filesystem::path& path, uint64_t max_bytes,
                      const std::string& what);

}  // namespace cnnc::rt
