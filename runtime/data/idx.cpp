// idx.cpp: the IDX reader. One parser for plain and gzip data, from a file or from memory: a
// Reader in front of the bytes passes plain data through and inflates gzip.
#include "data/idx.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace cnnc::rt {
namespace {

const char* type_name(uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "not an IDX type";
  }
}

// What one kind of IDX file must look like, for checking and for messages.
struct Expect {
  int rank;
  const char* what;          // "images", "labels"
  const char* dims_meaning;  // "count, rows, cols"
};

// The bytes of an IDX file as the parser wants them: passed through when plain, inflated when
// gzip (known by its first two bytes, 1f 8b, not by a name). Several gzip members in a row read
// as one stream, as gunzip reads them.
class Reader {
 public:
  Reader(ByteSource& in, std::string name) : in_(in), name_(std::move(name)) {
    fill();
    compressed_ = len_ >= 2 && buf_[0] == std::byte{0x1f} && buf_[1] == std::byte{0x8b};
    if (compressed_ && inflateInit2(&z_, 15 + 16) != Z_OK) fail("zlib cannot start inflating");
  }
  ~Reader() {
    if (compressed_) inflateEnd(&z_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{}: {}", name_, what));
  }

  bool compressed() const { return compressed_; }
  uint64_t size() const { return in_.size(); }  // of the file itself, compressed or not

  // Reads up to n bytes; fewer only at the end of the data. Corrupt gzip data throws.
  size_t read(uint8_t* dst, size_t n) {
    return compressed_ ? inflate_into(dst, n) : copy_into(dst, n);
  }

 private:
  // Tops the buffer up behind what is left in it.
  void fill() {
    std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
    len_ -= pos_;
    pos_ = 0;
    size_t n = in_.read(std::span(buf_).subspan(len_));
    len_ += n;
    taken_ += n;
  }

  size_t copy_into(uint8_t* dst, size_t n) {
    size_t got = std::min(n, len_ - pos_);
    std::memcpy(dst, buf_.data() + pos_, got);
    pos_ += got;
    return got + in_.read({reinterpret_cast<std::byte*>(dst) + got, n - got});
  }

  size_t inflate_into(uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      if (pos_ == len_ || (ended_ && len_ - pos_ < 2)) fill();
      if (ended_) {
        if (pos_ == len_) break;  // the true end: nothing follows the last member
        if (len_ - pos_ < 2 || buf_[pos_] != std::byte{0x1f} || buf_[pos_ + 1] != std::byte{0x8b})
          fail(fmt::format("corrupt gzip data: {} bytes after the end of the compressed stream",
                           len_ - pos_ + (in_.size() - taken_)));
        inflateReset(&z_);  // another member follows
        ended_ = false;
      }
      if (pos_ == len_)
        fail("corrupt gzip data: the compressed stream ends early (unexpected end of file)");
      z_.next_in = reinterpret_cast<Bytef*>(buf_.data() + pos_);
      z_.avail_in = static_cast<uInt>(len_ - pos_);
      z_.next_out = dst + got;
      z_.avail_out = static_cast<uInt>(std::min<size_t>(n - got, 1u << 30));
      const uInt room = z_.avail_out;
      int r = inflate(&z_, Z_NO_FLUSH);
      pos_ = len_ - z_.avail_in;
      got += room - z_.avail_out;
      if (r == Z_STREAM_END) {
        ended_ = true;
      } else if (r == Z_MEM_ERROR) {
        fail("zlib ran out of memory");
      } else if (r != Z_OK) {  // Z_BUF_ERROR too: with input and room given, no progress is damage
        fail(
            fmt::format("corrupt gzip data: {}", z_.msg ? z_.msg : "the stream makes no progress"));
      }
    }
    return got;
  }

  ByteSource& in_;
  std::string name_;
  std::array<std::byte, 1 << 16> buf_{};
  size_t pos_ = 0, len_ = 0;  // buf_[pos_, len_) is read from in_ but not yet used
  uint64_t taken_ = 0;        // bytes read from in_ so far
  bool compressed_ = false, ended_ = false;
  z_stream z_{};
};

uint32_t big_endian(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

std::string shape_text(const std::vector<uint32_t>& dims) {
  return fmt::format("{}", fmt::join(dims, "x"));
}

// Reads the header and the payload of an unsigned-byte IDX file of the given rank; returns the
// dimensions and fills data.
// Reads the first `first` items (along the first dimension; all when 0 or more than there are)
// and leaves the rest unread: a plain file is still checked against its size.
std::vector<uint32_t> read_idx(Reader& in, const Expect& expect, std::vector<uint8_t>& data,
                               uint32_t first = 0) {
  const uint32_t want_magic = 0x0800u | static_cast<uint32_t>(expect.rank);
  std::array<uint8_t, 4> magic{};
  size_t got = in.read(magic.data(), 4);
  if (got < 4) {
    in.fail(
        fmt::format("{} bytes is too short for an IDX header (expected magic 0x{:08X}: {}, "
                    "unsigned byte, rank {})",
                    got, want_magic, expect.what, expect.rank));
  }
  const uint32_t found = big_endian(magic.data());
  if (magic[0] != 0 || magic[1] != 0) {
    in.fail(
        fmt::format("not an IDX file: magic 0x{:08X}, expected 0x{:08X} ({}: unsigned byte, "
                    "rank {})",
                    found, want_magic, expect.what, expect.rank));
  }
  if (magic[2] != 0x08) {
    in.fail(
        fmt::format("IDX type code 0x{:02X} ({}), expected 0x08 (unsigned byte) for {} "
                    "(magic 0x{:08X}, expected 0x{:08X})",
                    magic[2], type_name(magic[2]), expect.what, found, want_magic));
  }
  if (magic[3] != expect.rank) {
    in.fail(
        fmt::format("IDX rank {}, expected rank {} for {} ({}) (magic 0x{:08X}, expected "
                    "0x{:08X})",
                    magic[3], expect.rank, expect.what, expect.dims_meaning, found, want_magic));
  }

  std::vector<uint8_t> raw(4 * static_cast<size_t>(expect.rank));
  got = in.read(raw.data(), raw.size());
  if (got < raw.size()) {
    in.fail(
        fmt::format("truncated IDX header: {} dimensions need {} bytes after the magic, the "
                    "file has {}",
                    expect.rank, raw.size(), got));
  }
  std::vector<uint32_t> dims(expect.rank);
  uint64_t payload = 1;
  for (int i = 0; i < expect.rank; ++i) dims[i] = big_endian(&raw[4 * i]);
  for (int i = 0; i < expect.rank; ++i) {
    if (dims[i] == 0) {
      in.fail(fmt::format("dimension {} of {} is 0 (dimensions {}: {}); expected non-zero", i + 1,
                          expect.rank, shape_text(dims), expect.dims_meaning));
    }
  }
  for (int i = 0; i < expect.rank; ++i) {
    // Both factors are below 2^32 and payload stays <= kMaxIdxBytes, so this cannot overflow.
    payload *= dims[i];
    if (payload > kMaxIdxBytes || dims[i] > static_cast<uint32_t>(INT32_MAX)) {
      in.fail(
          fmt::format("dimensions {} ({}) announce more than {} bytes; not a data set cnnc "
                      "reads",
                      shape_text(dims), expect.dims_meaning, kMaxIdxBytes));
    }
  }
  const uint64_t header = 4 + raw.size();
  const std::string announced =
      fmt::format("{} bytes of {} ({})", payload, expect.what, shape_text(dims));

  if (!in.compressed()) {
    // Checked before allocating, so a hostile header cannot make us reserve what is not there.
    const uint64_t have = in.size() > header ? in.size() - header : 0;
    if (have < payload) {
      in.fail(
          fmt::format("truncated: the header announces {}, the file holds {} after its "
                      "{}-byte header",
                      announced, have, header));
    }
    if (have > payload) {
      in.fail(fmt::format("{} trailing bytes after the {} the header announces", have - payload,
                          announced));
    }
  }

  const bool part = first > 0 && first < dims[0];
  if (part) {
    payload = payload / dims[0] * first;
    dims[0] = first;
  }
  // A plain file holds the payload, checked above. A gzip file's size says nothing of what it
  // inflates to: grow with what actually arrives, doubling from 64 KiB, so a gzip file that lies
  // about its size costs no more memory than the data it really holds.
  data.clear();
  uint64_t done = 0;
  while (done < payload) {
    const uint64_t want =
        std::min(payload - done, in.compressed() ? std::max(done, uint64_t{1} << 16) : payload);
    data.resize(done + want);
    const size_t n = in.read(data.data() + done, want);
    done += n;
    if (n < want) break;
  }
  if (done < payload) {
    in.fail(
        fmt::format("truncated: the header announces {}, the file holds {} after its "
                    "{}-byte header",
                    announced, done, header));
  }
  if (part) return dims;
  // Gzip data after the payload is counted as it inflates, up to a bound: a few kilobytes of
  // deflate can stand for megabytes.
  constexpr uint64_t kMaxCounted = uint64_t{1} << 20;
  uint8_t extra[4096];
  uint64_t trailing = 0;
  while (size_t n = in.read(extra, sizeof extra)) {
    trailing += n;
    if (trailing > kMaxCounted) break;
  }
  if (trailing > kMaxCounted) {
    in.fail(fmt::format("more than {} trailing bytes after the {} the header announces",
                        kMaxCounted, announced));
  }
  if (trailing > 0) {
    in.fail(
        fmt::format("{} trailing bytes after the {} the header announces", trailing, announced));
  }
  return dims;
}

// Runs one of the readers below on the file at path, with the system's reasons framed by it.
template <class Read>
auto read_file_with(const std::filesystem::path& path, Read read) {
  try {
    InputFile file(path);
    return read(file, path.string());
  } catch (const FileError& e) {
    throw DataError(fmt::format("{}: cannot read: {}", path.string(), e.what()));
  }
}

}  // namespace

IdxImages read_idx_images(ByteSource& source, const std::string& name, int32_t first) {
  Reader in(source, name);
  IdxImages out;
  auto dims = read_idx(in, {3, "images", "count, rows, cols"}, out.pixels,
                       static_cast<uint32_t>(std::max(first, 0)));
  out.path = name;
  out.count = static_cast<int32_t>(dims[0]);
  out.rows = static_cast<int32_t>(dims[1]);
  out.cols = static_cast<int32_t>(dims[2]);
  return out;
}

IdxLabels read_idx_labels(ByteSource& source, const std::string& name) {
  Reader in(source, name);
  IdxLabels out;
  auto dims = read_idx(in, {1, "labels", "count"}, out.labels);
  out.path = name;
  out.count = static_cast<int32_t>(dims[0]);
  return out;
}

IdxImages read_idx_images(const std::filesystem::path& path) {
  return read_file_with(
      path, [](ByteSource& in, const std::string& name) { return read_idx_images(in, name); });
}

IdxLabels read_idx_labels(const std::filesystem::path& path) {
  return read_file_with(
      path, [](ByteSource& in, const std::string& name) { return read_idx_labels(in, name); });
}

}  // namespace cnnc::rt
