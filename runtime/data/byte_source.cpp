// byte_source.cpp: files opened with open(2) and fstat(2), so that what a path names is known
// before anything is read from it.
#include "data/byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cnnc::rt {

namespace {

// What a path that is not a regular file is, for the message that refuses it.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

size_t MemorySource::read(std::span<std::byte> dst) {
  size_t n = std::min(dst.size(), bytes_.size() - pos_);
  std::copy_n(bytes_.begin() + static_cast<ptrdiff_t>(pos_), n, dst.begin());
  pos_ += n;
  return n;
}

InputFile::InputFile(const std::filesystem::path& path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw FileError(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw FileError(std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw FileError(fmt::format("it is {}, not a regular file", kind_of(st.st_mode)));
  }
  // Only the open had to be non-blocking; reads of a regular file block as usual.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  ::close(fd_);
}

size_t InputFile::read(std::span<std::byte> dst) {
  size_t got = 0;
  while (got < dst.size()) {
    ssize_t n = ::read(fd_, dst.data() + got, std::min<size_t>(dst.size() - got, 1 << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FileError(std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

std::string read_file(const std::filesystem::path& path, uint64_t max_bytes,
                      const std::string& what) {
  InputFile f(path);
  if (f.size() > max_bytes)
    throw FileError(
        fmt::format("it is {} bytes; a {} is at most {} bytes", f.size(), what, max_bytes));
  std::string bytes(f.size(), '\0');
  size_t got = f.read(std::as_writable_bytes(std::span(bytes)));
  if (got != bytes.size())
    throw FileError(
        fmt::format("it shrank while being read: {} of its {} bytes", got, bytes.size()));
  return bytes;
}

}  // namespace cnnc::rt
