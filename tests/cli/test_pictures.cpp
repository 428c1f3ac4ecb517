// The pictures cnnc predict reads, mostly from their bytes: PGM and PPM decoded and scaled, PNG
// checked chunk by chunk before stb_image decodes it, IDX images by their magic; every refusal
// quoted verbatim with the file's name and what is wrong.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/pictures.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

using cnnc::cli::decode_pictures;
using cnnc::cli::Picture;
using Pixels = std::vector<uint8_t>;

namespace {

Picture one(const std::string& bytes, const std::string& name = "x.pgm") {
  std::vector<Picture> p = decode_pictures(name, bytes, 0);
  REQUIRE(p.size() == 1);
  return p[0];
}

// The message decode_pictures throws; fails the test when it throws nothing.
std::string error_of(const std::string& bytes, const std::string& name = "x.pgm") {
  try {
    decode_pictures(name, bytes, 0);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("expected a std::runtime_error");
  return {};
}

// A rows x cols grey PNG as stb_image_write makes it: signature, IHDR (bytes 8..32), IDAT from
// byte 33, IEND.
std::string png(int rows, int cols) {
  std::string pixels;
  for (int i = 0; i < rows * cols; ++i) pixels += static_cast<char>(i * 37 % 256);
  std::string out;
  auto append = [](void* to, void* data, int size) {
    static_cast<std::string*>(to)->append(static_cast<const char*>(data), size);
  };
  REQUIRE(stbi_write_png_to_func(append, &out, cols, rows, 1, pixels.data(), cols) != 0);
  return out;
}

// One PNG chunk: length, type, data, CRC.
std::string chunk(const std::string& type, const std::string& data) {
  std::string out;
  auto u32 = [&out](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(v >> shift);
  };
  u32(static_cast<uint32_t>(data.size()));
  std::string body = type + data;
  out += body;
  u32(static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
  return out;
}

const std::string signature("\x89PNG\r\n\x1a\n", 8);

std::string compressed(const std::string& bytes) {
  uLongf size = compressBound(static_cast<uLong>(bytes.size()));
  std::string out(size, '\0');
  REQUIRE(compress(reinterpret_cast<Bytef*>(out.data()), &size,
                   reinterpret_cast<const Bytef*>(bytes.data()),
                   static_cast<uLong>(bytes.size())) == Z_OK);
  out.resize(size);
  return out;
}

// A width x height grey PNG of the given bit depth whose pixel (x, y) is value(x, y), laid out
// as the PNG specification says: per row a filter byte (0) and the samples packed from the high
// bit; interlaced, the rows of the seven Adam7 passes one after another, empty passes left out.
std::string grey_png(int width, int height, int depth, bool interlaced,
                     const std::function<int(int, int)>& value) {
  struct Pass {
    int x0, y0, dx, dy;
  };
  std::vector<Pass> passes = {{0, 0, 1, 1}};
  if (interlaced)
    passes = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
              {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  std::string raw;
  for (const Pass& p : passes) {
    for (int y = p.y0; y < height && p.x0 < width; y += p.dy) {
      raw += '\0';
      int bits = 0, acc = 0;
      for (int x = p.x0; x < width; x += p.dx) {
        acc = acc << depth | value(x, y);
        bits += depth;
        if (bits == 8) {
          raw += static_cast<char>(acc);
          bits = acc = 0;
        }
      }
      if (bits > 0) raw += static_cast<char>(acc << (8 - bits));
    }
  }
  std::string ihdr;
  for (int v : {width, height})
    for (int shift = 24; shift >= 0; shift -= 8) ihdr += static_cast<char>(v >> shift);
  ihdr += {static_cast<char>(depth), 0, 0, 0, static_cast<char>(interlaced)};
  return signature + chunk("IHDR", ihdr) + chunk("IDAT", compressed(raw)) + chunk("IEND", "");
}

}  // namespace

TEST_CASE("PGM and PPM pictures decode to grey bytes scaled to 0..255") {
  Picture p = one(std::string("P5\n2 1\n255\n") + '\0' + '\xC8');
  CHECK(p.name == "x.pgm");
  CHECK(p.rows == 1);
  CHECK(p.cols == 2);
  CHECK(p.pixels == Pixels{0, 200});
  // Comments anywhere between the fields; maxval 15 scales up.
  CHECK(one("P5 # made by hand\n2 # wide\n1\n15\n\x0f\x08").pixels == Pixels{255, 136});
  // 16-bit samples, big-endian.
  CHECK(one(std::string("P5 3 1 65535\n\0\0\x80\0\xff\xff", 19)).pixels == Pixels{0, 128, 255});
  // Colour becomes grey as stb_image makes it for PNG: (77 r + 150 g + 29 b) >> 8.
  CHECK(one(std::string("P6 2 1 255\n\xff\0\0\xff\xff\xff", 17), "x.ppm").pixels ==
        Pixels{76, 255});
}

TEST_CASE("a broken PGM or PPM is refused with what is wrong") {
  const std::pair<std::string, std::string> cases[] = {
      {"P5\n28 28\n0\n", "maxval 0, expected 1 to 65535 (the value of white)"},
      {"P5 1 1 70000\n", "maxval 70000, expected 1 to 65535 (the value of white)"},
      {"P5\n2 2\n255\nabc",
       "truncated: the header announces 2x2 pixels (4 bytes), the file holds 3 after its 11-byte "
       "header"},
      {"P5 1 1 255\nab", "1 bytes after the 1x1 pixels (1 bytes) the header announces"},
      {"P5 2 1 10\n\x05\x0b", "sample 11 of pixel (1, 0) is above the maxval 10"},
      {"P5\n28 28", "the header ends before its maxval"},
      {"P5\n28 x", "expected the height (a decimal number) at byte 6, found 'x'"},
      {"P5 99999999999 1 255\n", "the width at byte 12 has too many digits"},
      {"P5 1 1 255", "expected one whitespace byte after the maxval, at byte 10"},
  };
  for (const auto& [bytes, what] : cases)
    CHECK(error_of(bytes) == "'x.pgm' is not a valid PGM: " + what);
  CHECK(error_of("P6 1 1 255\nab", "x.ppm") ==
        "'x.ppm' is not a valid PPM: truncated: the header announces 1x1 pixels (3 bytes), the "
        "file holds 2 after its 11-byte header");
  CHECK(error_of("P5 0 28 255\n") ==
        "'x.pgm' is 0x28 pixels; predict reads pictures of 1x1 to 4096x4096");
  CHECK(error_of("P5 5000 1 255\n") ==
        "'x.pgm' is 5000x1 pixels; predict reads pictures of 1x1 to 4096x4096");
  CHECK(error_of("P2\n1 1\n255\n0\n") ==
        "'x.pgm' is a netpbm P2 file; predict reads binary PGM (P5) and PPM (P6)");
}

TEST_CASE("a PNG decodes to its grey bytes") {
  Picture p = one(png(3, 5), "x.png");
  CHECK(p.rows == 3);
  CHECK(p.cols == 5);
  CHECK(p.pixels[7] == 7 * 37 % 256);
}

TEST_CASE("a truncated or damaged PNG is called that, with the chunk and its place") {
  const std::string good = png(28, 28);
  REQUIRE(good.substr(37, 4) == "IDAT");
  CHECK(error_of(good.substr(0, 60), "x.png") ==
        "'x.png' is not a valid PNG: truncated: chunk 'IDAT' at byte 33 announces " +
            std::to_string(good.size() - 33 - 12 - 12) +
            " bytes and a CRC, the file holds 19 after its 8-byte header");
  CHECK(error_of(good.substr(0, 35), "x.png") ==
        "'x.png' is not a valid PNG: truncated: the file ends inside the chunk header at byte 33");
  CHECK(error_of(good.substr(0, good.size() - 12), "x.png") ==
        "'x.png' is not a valid PNG: truncated: the file ends at byte " +
            std::to_string(good.size() - 12) + " without an IEND chunk");
  std::string flipped = good;
  flipped[50] ^= 1;
  CHECK(error_of(flipped, "x.png") ==
        "'x.png' is not a valid PNG: chunk 'IDAT' at byte 33 is damaged (its CRC does not match "
        "its bytes)");
  CHECK(error_of(good + "junk", "x.png") ==
        "'x.png' is not a valid PNG: 4 bytes after the IEND chunk");
  CHECK(error_of(signature + chunk("IEND", ""), "x.png") ==
        "'x.png' is not a valid PNG: the first chunk is 'IEND' of 0 bytes, expected 'IHDR' of 13");
  std::string ihdr("\0\0\x13\x88\0\0\0\x01\x08\0\0\0\0", 13);  // 5000x1, 8-bit grey
  CHECK(error_of(signature + chunk("IHDR", ihdr) + chunk("IEND", ""), "x.png") ==
        "'x.png' is 5000x1 pixels; predict reads pictures of 1x1 to 4096x4096");
}

TEST_CASE("a PNG's image data must inflate to exactly what its header announces") {
  std::string ihdr("\0\0\0\x1c\0\0\0\x1c\x08\0\0\0\0", 13);  // 28x28, 8-bit grey
  auto with_data = [&ihdr](const std::string& zlib_stream) {
    return signature + chunk("IHDR", ihdr) + chunk("IDAT", zlib_stream) + chunk("IEND", "");
  };
  const std::string picture = "bytes a 28x28 8-bit grey picture holds";
  // 28 rows of a filter byte and 28 samples: 812 bytes. A 1 MB file could otherwise inflate to
  // 1 GB in stb_image's buffer.
  CHECK(error_of(with_data(compressed(std::string(812 + 2000, '\0'))), "x.png") ==
        "'x.png' is not a valid PNG: its image data inflates to more than the 812 " + picture);
  CHECK(error_of(with_data(compressed(std::string(10, '\0'))), "x.png") ==
        "'x.png' is not a valid PNG: its image data holds 10 of the 812 " + picture);
  CHECK(error_of(signature + chunk("IHDR", ihdr) + chunk("IEND", ""), "x.png") ==
        "'x.png' is not a valid PNG: its image data ends early, after 0 of the 812 " + picture);
  CHECK(error_of(with_data("garbage"), "x.png") ==
        "'x.png' is not a valid PNG: its image data is damaged (incorrect header check)");
  ihdr[8] = 7;
  CHECK(error_of(with_data(compressed(std::string(812, '\0'))), "x.png") ==
        "'x.png' is not a valid PNG: IHDR: bit depth 7 with colour type 0 is not a PNG format");
}

TEST_CASE("interlaced PNGs and bit depths below 8 have the size their passes and rows give") {
  auto value8 = [](int x, int y) { return 10 * y + x + 1; };
  auto value1 = [](int x, int y) { return (x + y) % 3 == 0 ? 1 : 0; };
  for (bool interlaced : {false, true}) {
    INFO("interlaced " << interlaced);
    Picture p = one(grey_png(5, 3, 8, interlaced, value8), "x.png");
    REQUIRE(p.pixels.size() == 15);
    for (int i = 0; i < 15; ++i) CHECK(p.pixels[i] == value8(i % 5, i / 5));
    p = one(grey_png(10, 3, 1, interlaced, value1), "x.png");
    REQUIRE(p.pixels.size() == 30);
    for (int i = 0; i < 30; ++i) CHECK(p.pixels[i] == 255 * value1(i % 10, i / 10));
  }
}

TEST_CASE("IDX images are known by their magic, and anything else is not a picture") {
  std::string idx(
      "\0\0\x08\x03\0\0\0\x03\0\0\0\x01\0\0\0\x02"
      "abcdef",
      22);
  std::vector<Picture> p = decode_pictures("t.idx", idx, 2);
  REQUIRE(p.size() == 2);
  CHECK(p[1].name == "t.idx[1]");
  CHECK(p[1].pixels == Pixels{'c', 'd'});
  CHECK(error_of(idx.substr(0, 21), "t.idx") ==
        "t.idx: truncated: the header announces 6 bytes of images (3x1x2), the file holds 5 "
        "after its 16-byte header");
  CHECK(error_of("model x\n", "x.cnn") == "'x.cnn' is not a PNG, PGM or IDX image file");
  CHECK(error_of("", "empty") == "'empty' is not a PNG, PGM or IDX image file");
}

TEST_CASE("a picture file larger than 256 MiB is refused by its size, unread") {
  std::filesystem::path big =
      std::filesystem::temp_directory_path() / ("cnnc_test_big_" + std::to_string(getpid()));
  std::ofstream(big) << "P5";
  std::filesystem::resize_file(big, cnnc::cli::max_picture_file_bytes + 1);  // sparse
  CHECK_THROWS_WITH(cnnc::cli::read_pictures(big.string(), 0),
                    "cannot read '" + big.string() +
                        "': it is 268435457 bytes; a picture file is at most 268435456 bytes");
  std::filesystem::remove(big);
}

TEST_CASE("with --limit an IDX file is read no further than the images asked for") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("cnnc_test_idx_limit_" + std::to_string(getpid()));
  fs::create_directories(dir);
  // Plain: 300 Mi images of 1x1 (sparse), over the 256 MiB any other picture file may have.
  fs::path plain = dir / "big.idx";
  std::ofstream(plain, std::ios::binary)
      << std::string("\0\0\x08\x03\x12\xc0\0\0\0\0\0\x01\0\0\0\x01", 16) << "xy";
  fs::resize_file(plain, 16 + (uint64_t{300} << 20));
  std::vector<Picture> p = cnnc::cli::read_pictures(plain.string(), 2);
  REQUIRE(p.size() == 2);
  CHECK(p[1].pixels == Pixels{'y'});
  CHECK_THROWS_WITH(cnnc::cli::read_pictures(plain.string(), 0),
                    Catch::Contains("a picture file is at most"));
  // Gzip, cut in the middle: the first image inflates, the cut is never reached.
  std::string idx = std::string("\0\0\x08\x03\0\0\0\x04\0\0\0\x10\0\0\0\x10", 16);
  for (int i = 0; i < 4 * 256; ++i) idx += static_cast<char>(i * 7);
  z_stream z{};
  REQUIRE(deflateInit2(&z, 0, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string gz(deflateBound(&z, idx.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(idx.data());
  z.avail_in = static_cast<uInt>(idx.size());
  z.next_out = reinterpret_cast<Bytef*>(gz.data());
  z.avail_out = static_cast<uInt>(gz.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  gz.resize(z.total_out);
  deflateEnd(&z);
  fs::path cut = dir / "cut.idx.gz";
  std::ofstream(cut, std::ios::binary) << gz.substr(0, gz.size() / 2);
  p = cnnc::cli::read_pictures(cut.string(), 1);
  REQUIRE(p.size() == 1);
  CHECK(p[0].pixels == Pixels(idx.begin() + 16, idx.begin() + 16 + 256));
  CHECK_THROWS(cnnc::cli::read_pictures(cut.string(), 0));
  fs::remove_all(dir);
}
