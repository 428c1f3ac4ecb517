// PNG through stb_image (only its PNG decoder compiled in) after checking the file's chunks,
// PGM and PPM parsed here, IDX through runtime/data.
#include "cli/pictures.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <array>
#include <memory>
#include <span>
#include <stdexcept>
#include <string_view>

#include "data/byte_source.hpp"
#include "data/idx.hpp"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG
#include <stb_image.h>

namespace cnnc::cli {

namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(fmt::format("'{}' {}", name, what));
}

// A few bytes of the file as text, with what is not printable ASCII escaped.
std::string printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    if (c >= 0x20 && c < 0x7f)
      out += c;
    else
      out += fmt::format("\\x{:02X}", static_cast<unsigned char>(c));
  }
  return out;
}

uint32_t big_endian(std::string_view bytes, size_t pos) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])); };
  return b(pos) << 24 | b(pos + 1) << 16 | b(pos + 2) << 8 | b(pos + 3);
}

void check_side(const std::string& name, uint64_t width, uint64_t height) {
  if (width == 0 || height == 0 || width > max_picture_side || height > max_picture_side)
    fail(name, fmt::format("is {}x{} pixels; predict reads pictures of 1x1 to {}x{}", width, height,
                           max_picture_side, max_picture_side));
}

constexpr std::string_view png_signature("\x89PNG\r\n\x1a\n", 8);

// What a PNG's IHDR says of its pixels, and how many bytes its image data must inflate to.
struct PngHeader {
  uint32_t width, height;
  uint8_t depth, colour, interlace;

  int channels() const {
    switch (colour) {
      case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16 ? 1 : 0;
      case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8 ? 1 : 0;
      case 2: return depth == 8 || depth == 16 ? 3 : 0;
      case 4: return depth == 8 || depth == 16 ? 2 : 0;
      case 6: return depth == 8 || depth == 16 ? 4 : 0;
      default: return 0;  // not a colour type and depth PNG defines
    }
  }

  std::string str() const {
    constexpr const char* kinds[] = {"grey", "", "RGB", "palette", "grey+alpha", "", "RGBA"};
    return fmt::format("{}x{} {}-bit {} picture", width, height, depth, kinds[colour]);
  }

  // Per row a filter byte and the row's samples; interlaced (Adam7), seven passes of such rows.
  uint64_t raw_bytes() const {
    const uint64_t bits = uint64_t{depth} * channels();
    auto rows = [bits](uint64_t cols, uint64_t count) {
      return cols == 0 ? 0 : count * (1 + (cols * bits + 7) / 8);
    };
    if (interlace == 0) return rows(width, height);
    constexpr uint32_t adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                      {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};  // x0 y0 dx dy
    uint64_t total = 0;
    for (const auto& [x0, y0, dx, dy] : adam7)
      total += rows((width + dx - 1 - x0) / dx, (height + dy - 1 - y0) / dy);
    return total;
  }
};

// A PNG file is its 8-byte signature, then chunks: a big-endian u32 length (below 2^31), a
// 4-byte type, the data, and the CRC-32 of type and data; IHDR (13 bytes) comes first, IEND
// last, and the IDAT chunks between hold one zlib stream of exactly header.raw_bytes(). Checked
// here so that a cut or damaged file is called that: stb_image, which decodes what passes, reads
// past the end as zeros, ignores CRCs and grows its buffer for as much as the stream inflates to
// (a 1 MB file to 1 GB). The stream is inflated here only to count, 16 KiB at a time.
void check_png_chunks(const std::string& name, std::string_view bytes) {
  auto bad = [&name](const std::string& what) { fail(name, "is not a valid PNG: " + what); };
  PngHeader header{};
  uint64_t expected = 0;  // header.raw_bytes()
  z_stream z{};
  if (inflateInit(&z) != Z_OK) bad("zlib cannot start inflating");
  std::unique_ptr<z_stream, int (*)(z_streamp)> end_inflate(&z, &inflateEnd);
  std::array<Bytef, 1 << 14> scratch;
  uint64_t inflated = 0;
  bool ended = false;
  for (size_t pos = png_signature.size();;) {
    if (bytes.size() - pos < 8) {
      bad(pos == bytes.size()
              ? fmt::format("truncated: the file ends at byte {} without an IEND chunk", pos)
              : fmt::format("truncated: the file ends inside the chunk header at byte {}", pos));
    }
    uint64_t length = big_endian(bytes, pos);
    std::string_view type = bytes.substr(pos + 4, 4);
    if (length > 0x7fffffff) {
      bad(fmt::format("chunk '{}' at byte {} announces {} bytes, more than PNG allows",
                      printable(type), pos, length));
    }
    if (bytes.size() - pos - 8 < length + 4) {
      bad(
          fmt::format("truncated: chunk '{}' at byte {} announces {} bytes and a CRC, the file "
                      "holds {} after its 8-byte header",
                      printable(type), pos, length, bytes.size() - pos - 8));
    }
    std::string_view checked = bytes.substr(pos + 4, 4 + length);
    auto crc = static_cast<uint32_t>(
        crc32_z(0, reinterpret_cast<const Bytef*>(checked.data()), checked.size()));
    if (crc != big_endian(bytes, pos + 8 + length)) {
      bad(fmt::format("chunk '{}' at byte {} is damaged (its CRC does not match its bytes)",
                      printable(type), pos));
    }
    std::string_view data = checked.substr(4);
    if (pos == png_signature.size()) {
      if (type != "IHDR" || length != 13) {
        bad(fmt::format("the first chunk is '{}' of {} bytes, expected 'IHDR' of 13",
                        printable(type), length));
      }
      header = {big_endian(data, 0), big_endian(data, 4), static_cast<uint8_t>(data[8]),
                static_cast<uint8_t>(data[9]), static_cast<uint8_t>(data[12])};
      check_side(name, header.width, header.height);
      if (header.channels() == 0) {
        bad(fmt::format("IHDR: bit depth {} with colour type {} is not a PNG format", header.depth,
                        header.colour));
      }
      if (header.interlace > 1)
        bad(fmt::format("IHDR: interlace method {}, expected 0 or 1", header.interlace));
      expected = header.raw_bytes();
    }
    if (type == "IDAT" && !ended) {
      z.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(data.data()));
      z.avail_in = static_cast<uInt>(data.size());
      while (z.avail_in > 0 && !ended) {
        z.next_out = scratch.data();
        z.avail_out = scratch.size();
        int r = inflate(&z, Z_NO_FLUSH);
        inflated += scratch.size() - z.avail_out;
        if (inflated > expected) {
          bad(fmt::format("its image data inflates to more than the {} bytes a {} holds", expected,
                          header.str()));
        }
        ended = r == Z_STREAM_END;
        if (r != Z_OK && !ended)
          bad(fmt::format("its image data is damaged ({})", z.msg ? z.msg : "zlib error"));
      }
    }
    pos += 12 + length;
    if (type == "IEND") {
      if (pos != bytes.size())
        bad(fmt::format("{} bytes after the IEND chunk", bytes.size() - pos));
      if (!ended || inflated < expected) {
        bad(fmt::format("its image data {} {} of the {} bytes a {} holds",
                        ended ? "holds" : "ends early, after", inflated, expected, header.str()));
      }
      return;
    }
  }
}

Picture decode_png(const std::string& name, std::string_view bytes) {
  check_png_chunks(name, bytes);
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                            static_cast<int>(bytes.size()), &w, &h, &channels, 1),
      &stbi_image_free);
  if (!data) fail(name, fmt::format("is not a valid PNG: {}", stbi_failure_reason()));
  return {name, h, w, {data.get(), data.get() + static_cast<size_t>(w) * h}};
}

// Binary PGM (P5, grey) and PPM (P6, colour), netpbm's formats: the magic, then width, height
// and maxval in decimal, each after whitespace or comments ('#' to the end of the line), one
// whitespace byte, and the samples row by row: a byte each up to maxval 255, two (big-endian)
// above. Samples are scaled to 0..255; colour becomes grey as stb_image makes it.
Picture decode_pnm(const std::string& name, std::string_view bytes) {
  const int channels = bytes[1] == '5' ? 1 : 3;
  const char* format = channels == 1 ? "PGM" : "PPM";
  auto bad = [&](const std::string& what) {
    fail(name, fmt::format("is not a valid {}: {}", format, what));
  };
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  size_t pos = 2;
  auto number = [&](const char* what) {
    while (pos < bytes.size() && (space(bytes[pos]) || bytes[pos] == '#')) {
      if (bytes[pos] == '#')
        while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
      else
        ++pos;
    }
    if (pos == bytes.size()) bad(fmt::format("the header ends before its {}", what));
    if (bytes[pos] < '0' || bytes[pos] > '9') {
      bad(fmt::format("expected the {} (a decimal number) at byte {}, found '{}'", what, pos,
                      printable(bytes.substr(pos, 1))));
    }
    uint64_t v = 0;
    for (; pos < bytes.size() && bytes[pos] >= '0' && bytes[pos] <= '9'; ++pos) {
      v = v * 10 + static_cast<uint64_t>(bytes[pos] - '0');
      if (v > 0xffffffff) bad(fmt::format("the {} at byte {} has too many digits", what, pos));
    }
    return v;
  };
  const uint64_t width = number("width"), height = number("height"), maxval = number("maxval");
  if (maxval == 0 || maxval > 65535)
    bad(fmt::format("maxval {}, expected 1 to 65535 (the value of white)", maxval));
  check_side(name, width, height);
  if (pos == bytes.size() || !space(bytes[pos]))
    bad(fmt::format("expected one whitespace byte after the maxval, at byte {}", pos));
  const size_t header = ++pos;
  const size_t sample_bytes = maxval > 255 ? 2 : 1;
  const size_t need = width * height * channels * sample_bytes, have = bytes.size() - header;
  const std::string announced = fmt::format("{}x{} pixels ({} bytes)", width, height, need);
  if (have < need) {
    bad(
        fmt::format("truncated: the header announces {}, the file holds {} after its {}-byte "
                    "header",
                    announced, have, header));
  }
  if (have > need)
    bad(fmt::format("{} bytes after the {} the header announces", have - need, announced));

  Picture p{name, static_cast<int32_t>(height), static_cast<int32_t>(width), {}};
  p.pixels.resize(width * height);
  for (size_t i = 0; i < p.pixels.size(); ++i) {
    uint32_t rgb[3];
    for (int c = 0; c < channels; ++c) {
      size_t at = header + (i * channels + c) * sample_bytes;
      uint32_t s = static_cast<unsigned char>(bytes[at]);
      if (sample_bytes == 2) s = s << 8 | static_cast<unsigned char>(bytes[at + 1]);
      if (s > maxval) {
        bad(fmt::format("sample {} of pixel ({}, {}) is above the maxval {}", s, i % width,
                        i / width, maxval));
      }
      rgb[c] = static_cast<uint32_t>((s * 255 + maxval / 2) / maxval);
    }
    p.pixels[i] = static_cast<uint8_t>(
        channels == 1 ? rgb[0] : (rgb[0] * 77 + rgb[1] * 150 + rgb[2] * 29) >> 8);
  }
  return p;
}

// The first `limit` images of an IDX file (all when 0), read no further than them.
std::vector<Picture> idx_pictures(rt::ByteSource& source, const std::string& name, int32_t limit) {
  rt::IdxImages idx = rt::read_idx_images(source, name, limit);
  size_t size = static_cast<size_t>(idx.rows) * idx.cols;
  std::vector<Picture> out;
  for (int32_t i = 0; i < idx.count; ++i) {
    const uint8_t* first = idx.pixels.data() + i * size;
    out.push_back({fmt::format("{}[{}]", name, i), idx.rows, idx.cols, {first, first + size}});
  }
  return out;
}

bool is_idx(std::string_view bytes) {
  // IDX files start with two zero bytes and the type; gzip with 1f 8b.
  return bytes.starts_with(std::string_view("\x1f\x8b", 2)) ||
         bytes.starts_with(std::string_view("\0\0\x08", 3));
}

}  // namespace

std::vector<Picture> decode_pictures(const std::string& name, std::string_view bytes,
                                     int32_t limit) {
  auto starts = [bytes](std::string_view head) { return bytes.starts_with(head); };
  if (is_idx(bytes)) {
    rt::MemorySource source(std::as_bytes(std::span(bytes)));
    return idx_pictures(source, name, limit);
  }
  if (starts(png_signature)) return {decode_png(name, bytes)};
  if (starts("P5") || starts("P6")) return {decode_pnm(name, bytes)};
  if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '7')
    fail(name,
         fmt::format("is a netpbm P{} file; predict reads binary PGM (P5) and PPM (P6)", bytes[1]));
  fail(name, "is not a PNG, PGM or IDX image file");
}

std::vector<Picture> read_pictures(const std::string& path, int32_t limit) {
  try {
    // An IDX file with --limit is read as far as its first `limit` images, whatever its size.
    if (limit > 0) {
      rt::InputFile file(path);
      std::string head(3, '\0');
      size_t got = file.read(std::as_writable_bytes(std::span(head)));
      if (is_idx(std::string_view(head).substr(0, got))) {
        rt::InputFile idx(path);
        return idx_pictures(idx, path, limit);
      }
    }
    return decode_pictures(path, rt::read_file(path, max_picture_file_bytes, "picture file"),
                           limit);
  } catch (const rt::FileError& e) {
    throw std::runtime_error(fmt::format("cannot read '{}': {}", path, e.what()));
  }
}

}  // namespace cnnc::cli
