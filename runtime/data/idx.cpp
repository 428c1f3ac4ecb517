// idx.cpp: the IDX reader. One path for plain and gzip files: zlib's gzread passes plain files
// through unchanged, and gzdirect() tells which one it is.
#include "data/idx.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <system_error>

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

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// What one kind of IDX file must look like, for checking and for messages.
struct Expect {
  int rank;
  const char* what;          // "images", "labels"
  const char* dims_meaning;  // "count, rows, cols"
};

class Reader {
 public:
  explicit Reader(const std::filesystem::path& path) : path_(path.string()) {
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) fail("file not found");
    if (!std::filesystem::is_regular_file(status)) fail("not a regular file");
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec) fail(fmt::format("cannot read its size: {}", ec.message()));
    gz_.reset(gzopen(path_.c_str(), "rb"));
    if (!gz_)
      fail(fmt::format("cannot open: {}",
                       std::error_code(errno, std::generic_category()).message()));
    gzbuffer(gz_.get(), 1 << 17);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{}: {}", path_, what));
  }

  const std::string& path() const { return path_; }
  bool compressed() { return gzdirect(gz_.get()) == 0; }
  uint64_t file_size() const { return file_size_; }
  uint64_t consumed() const { return consumed_; }

  // Reads up to n bytes; fewer only at the end of the data. Corrupt gzip data throws.
  size_t read(uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
      int r = gzread(gz_.get(), dst + got, want);
      if (r < 0) corrupt();
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    consumed_ += got;
    // zlib reports a stream cut short (Z_BUF_ERROR) as an end of file; tell it apart here.
    if (got < n) check_stream();
    return got;
  }

  // Throws when the stream ended because of an error rather than at its true end.
  void check_stream() {
    int err = Z_OK;
    gzerror(gz_.get(), &err);
    if (err == Z_BUF_ERROR && compressed()) {
      fail("corrupt gzip data: the compressed stream ends early (unexpected end of file)");
    }
    if (err != Z_OK) corrupt();
  }

 private:
  // zlib's gzerror message without the path it puts in front, since ours is there already.
  [[noreturn]] void corrupt() {
    int err = Z_OK;
    std::string msg = gzerror(gz_.get(), &err);
    if (err == Z_ERRNO) msg = std::strerror(errno);
    if (msg.starts_with(path_ + ": ")) msg.erase(0, path_.size() + 2);
    fail(fmt::format("{}: {}", compressed() ? "corrupt gzip data" : "read error", msg));
  }

  std::string path_;
  uint64_t file_size_ = 0;
  uint64_t consumed_ = 0;
  std::unique_ptr<gzFile_s, GzCloser> gz_;
};

uint32_t big_endian(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

std::string shape_text(const std::vector<uint32_t>& dims) {
  return fmt::format("{}", fmt::join(dims, "x"));
}

// Reads the header and the payload of an unsigned-byte IDX file of the given rank; returns the
// dimensions and fills data.
std::vector<uint32_t> read_idx(Reader& in, const Expect& expect, std::vector<uint8_t>& data) {
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
    const uint64_t have = in.file_size() - header;
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

  // Grow with what actually arrives, so a gzip file that lies about its size costs no more
  // memory than the data it really holds.
  constexpr uint64_t kChunk = uint64_t{1} << 24;
  data.clear();
  uint64_t done = 0;
  while (done < payload) {
    const uint64_t want = std::min(payload - done, kChunk);
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
  uint8_t extra[4096];
  uint64_t trailing = 0;
  while (size_t n = in.read(extra, sizeof extra)) trailing += n;
  if (trailing > 0) {
    in.fail(
        fmt::format("{} trailing bytes after the {} the header announces", trailing, announced));
  }
  return dims;
}

}  // namespace

IdxImages read_idx_images(const std::filesystem::path& path) {
  Reader in(path);
  IdxImages out;
  auto dims = read_idx(in, {3, "images", "count, rows, cols"}, out.pixels);
  out.path = in.path();
  out.count = static_cast<int32_t>(dims[0]);
  out.rows = static_cast<int32_t>(dims[1]);
  out.cols = static_cast<int32_t>(dims[2]);
  return out;
}

IdxLabels read_idx_labels(const std::filesystem::path& path) {
  Reader in(path);
  IdxLabels out;
  auto dims = read_idx(in, {1, "labels", "count"}, out.labels);
  out.path = in.path();
  out.count = static_cast<int32_t>(dims[0]);
  return out;
}

}  // namespace cnnc::rt
