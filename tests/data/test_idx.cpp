// test_idx.cpp: specifications of the IDX reader, plain and gzip, and of every error it reports
// (each message quoted verbatim: it names the file, what was expected and what was found).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "data/idx.hpp"
#include "idx_files.hpp"

using cnnc::rt::DataError;
using cnnc::rt::read_idx_images;
using cnnc::rt::read_idx_labels;
using namespace cnnc::test;

namespace {

// The message of the DataError that f throws; fails the test when it throws nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("expected a DataError");
  return {};
}

}  // namespace

TEST_CASE("IDX images and labels read back, plain and gzip", "[idx]") {
  TempDir dir;
  const Bytes images = image_file(3, 4, 5);
  const Bytes labels = label_file({7, 0, 9});
  for (bool gz : {false, true}) {
    INFO("gzip " << gz);
    auto ip = gz ? dir.write_gz("img.gz", images) : dir.write("img", images);
    auto lp = gz ? dir.write_gz("lbl.gz", labels) : dir.write("lbl", labels);
    auto im = read_idx_images(ip);
    CHECK(im.path == ip.string());
    CHECK(im.count == 3);
    CHECK(im.rows == 4);
    CHECK(im.cols == 5);
    CHECK(im.pixels == Bytes(images.begin() + 16, images.end()));
    auto lb = read_idx_labels(lp);
    CHECK(lb.count == 3);
    CHECK(lb.labels == Bytes{7, 0, 9});
  }
}

TEST_CASE("gzip data is recognised by its bytes, not by the file name", "[idx]") {
  TempDir dir;
  auto p = dir.write_gz("no-extension", image_file(2, 3, 3));
  CHECK(read_idx_images(p).count == 2);
}

TEST_CASE("a gzip file larger than one read chunk reads whole", "[idx]") {
  TempDir dir;
  const Bytes images = image_file(300, 100, 100);  // 3 MB, several zlib buffers
  auto im = read_idx_images(dir.write_gz("big.gz", images));
  CHECK(im.pixels == Bytes(images.begin() + 16, images.end()));
}

TEST_CASE("what is not a regular file is refused with the reason, without blocking",
          "[idx][errors]") {
  TempDir dir;
  const std::string missing = (dir.path() / "nope").string();
  CHECK(error_of([&] { read_idx_images(missing); }) ==
        missing + ": cannot read: No such file or directory");
  CHECK(error_of([&] { read_idx_labels(dir.path()); }) ==
        dir.path().string() + ": cannot read: it is a directory, not a regular file");
  CHECK(error_of([&] { read_idx_images("/dev/zero"); }) ==
        "/dev/zero: cannot read: it is a character device, not a regular file");
  // A FIFO without a writer blocks a plain open() forever.
  const std::string fifo = (dir.path() / "fifo").string();
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(error_of([&] { read_idx_labels(fifo); }) ==
        fifo + ": cannot read: it is a named pipe (FIFO), not a regular file");
}

TEST_CASE("bytes in memory read as the same file does", "[idx]") {
  const Bytes images = image_file(3, 4, 5);
  cnnc::rt::MemorySource source(std::as_bytes(std::span(images)));
  auto im = read_idx_images(source, "in memory");
  CHECK(im.path == "in memory");
  CHECK(im.count == 3);
  CHECK(im.pixels == Bytes(images.begin() + 16, images.end()));
  const Bytes labels = label_file({1});
  cnnc::rt::MemorySource cut(std::as_bytes(std::span(labels)).first(labels.size() - 1));
  CHECK(error_of([&] { read_idx_labels(cut, "in memory"); }) ==
        "in memory: truncated: the header announces 1 bytes of labels (1), the file holds 0 "
        "after its 8-byte header");
}

TEST_CASE("wrong magic, type code and rank are reported with what was found", "[idx][errors]") {
  TempDir dir;
  SECTION("not an IDX file at all") {
    auto p = dir.write("text", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": not an IDX file: magic 0x68656C6C, expected 0x00000803 (images: unsigned byte, "
              "rank 3)");
  }
  SECTION("a float IDX file") {
    auto p = dir.write("floats", idx_bytes(0x0D, {1, 1, 1}, Bytes{0, 0, 0, 0}));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": IDX type code 0x0D (float), expected 0x08 (unsigned byte) for images (magic "
              "0x00000D03, expected 0x00000803)");
  }
  SECTION("an unknown type code") {
    auto p = dir.write("odd", idx_bytes(0x42, {1}, Bytes{0}));
    CHECK(error_of([&] { read_idx_labels(p); }) ==
          p.string() +
              ": IDX type code 0x42 (not an IDX type), expected 0x08 (unsigned byte) for labels "
              "(magic 0x00004201, expected 0x00000801)");
  }
  SECTION("labels where images are expected") {
    auto p = dir.write("labels", label_file({1, 2}));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": IDX rank 1, expected rank 3 for images (count, rows, cols) (magic 0x00000801, "
              "expected 0x00000803)");
  }
  SECTION("images where labels are expected") {
    auto p = dir.write("images", image_file(1, 2, 2));
    CHECK(error_of([&] { read_idx_labels(p); }) ==
          p.string() +
              ": IDX rank 3, expected rank 1 for labels (count) (magic 0x00000803, expected "
              "0x00000801)");
  }
}

TEST_CASE("headers that are short or announce nothing are rejected", "[idx][errors]") {
  TempDir dir;
  SECTION("empty file") {
    auto p = dir.write("empty", Bytes{});
    CHECK(error_of([&] { read_idx_labels(p); }) ==
          p.string() +
              ": 0 bytes is too short for an IDX header (expected magic 0x00000801: labels, "
              "unsigned byte, rank 1)");
  }
  SECTION("dimensions cut short") {
    auto p = dir.write("short", Bytes{0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": truncated IDX header: 3 dimensions need 12 bytes after the magic, the file "
              "has 6");
  }
  SECTION("a zero dimension") {
    auto p = dir.write("zero", idx_bytes(0x08, {2, 0, 28}, Bytes{}));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": dimension 2 of 3 is 0 (dimensions 2x0x28: count, rows, cols); expected "
              "non-zero");
  }
  SECTION("zero labels") {
    auto p = dir.write("nolabels", label_file({}));
    CHECK(error_of([&] { read_idx_labels(p); }) ==
          p.string() + ": dimension 1 of 1 is 0 (dimensions 0: count); expected non-zero");
  }
}

TEST_CASE("hostile dimensions fail without allocating what they claim", "[idx][errors]") {
  TempDir dir;
  SECTION("beyond the limit") {
    auto p = dir.write("huge", idx_bytes(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, Bytes{}));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": dimensions 4294967295x4294967295x4294967295 (count, rows, cols) announce more "
              "than 4294967296 bytes; not a data set cnnc reads");
  }
  SECTION("within the limit, plain: rejected by the file size before allocating") {
    auto p = dir.write("big", idx_bytes(0x08, {0x4000, 0x100, 0x100}, Bytes(10)));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": truncated: the header announces 1073741824 bytes of images (16384x256x256), "
              "the file holds 10 after its 16-byte header");
  }
  SECTION("within the limit, gzip: stops at the data that is there") {
    auto p = dir.write_gz("big.gz", idx_bytes(0x08, {0x4000, 0x100, 0x100}, Bytes(10)));
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": truncated: the header announces 1073741824 bytes of images (16384x256x256), "
              "the file holds 10 after its 16-byte header");
  }
}

TEST_CASE("truncated data and trailing bytes are errors, plain and gzip", "[idx][errors]") {
  TempDir dir;
  Bytes full = image_file(2, 3, 3);
  Bytes cut(full.begin(), full.end() - 1);
  Bytes longer = full;
  longer.insert(longer.end(), {1, 2, 3});
  const std::string truncated =
      ": truncated: the header announces 18 bytes of images (2x3x3), the file holds 17 after "
      "its 16-byte header";
  const std::string trailing =
      ": 3 trailing bytes after the 18 bytes of images (2x3x3) the "
      "header announces";
  auto p = dir.write("cut", cut);
  CHECK(error_of([&] { read_idx_images(p); }) == p.string() + truncated);
  p = dir.write_gz("cut.gz", cut);
  CHECK(error_of([&] { read_idx_images(p); }) == p.string() + truncated);
  p = dir.write("long", longer);
  CHECK(error_of([&] { read_idx_images(p); }) == p.string() + trailing);
  p = dir.write_gz("long.gz", longer);
  CHECK(error_of([&] { read_idx_images(p); }) == p.string() + trailing);

  Bytes labels = label_file({1, 2, 3});
  labels.pop_back();
  p = dir.write("labels", labels);
  CHECK(error_of([&] { read_idx_labels(p); }) ==
        p.string() +
            ": truncated: the header announces 3 bytes of labels (3), the file holds 2 after its "
            "8-byte header");
}

TEST_CASE("corrupt gzip data is an error naming the file", "[idx][errors]") {
  TempDir dir;
  const Bytes images = image_file(50, 28, 28);
  dir.write_gz("good.gz", images);
  const Bytes gz = dir.read("good.gz");
  REQUIRE(gz.size() > 40);

  SECTION("a flipped byte in the compressed stream") {
    Bytes bad = gz;
    bad[bad.size() / 2] ^= 0xFF;
    auto p = dir.write("flipped.gz", bad);
    auto msg = error_of([&] { read_idx_images(p); });
    CHECK_THAT(msg, Catch::StartsWith(p.string() + ": corrupt gzip data: "));
  }
  SECTION("a wrong checksum in the trailer") {
    Bytes bad = gz;
    bad[bad.size() - 8] ^= 0xFF;  // the CRC-32 of the gzip trailer
    auto p = dir.write("crc.gz", bad);
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() + ": corrupt gzip data: incorrect data check");
  }
  SECTION("the compressed stream cut short") {
    Bytes bad(gz.begin(), gz.begin() + static_cast<ptrdiff_t>(gz.size() / 2));
    auto p = dir.write("half.gz", bad);
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": corrupt gzip data: the compressed stream ends early (unexpected end of file)");
  }
  SECTION("the gzip trailer missing") {
    Bytes bad(gz.begin(), gz.end() - 8);
    auto p = dir.write("notrailer.gz", bad);
    CHECK(error_of([&] { read_idx_images(p); }) ==
          p.string() +
              ": corrupt gzip data: the compressed stream ends early (unexpected end of file)");
  }
}

TEST_CASE("gzip members in a row read as one stream, and anything else after it is an error",
          "[idx][errors]") {
  TempDir dir;
  const Bytes images = image_file(2, 3, 3);
  dir.write_gz("a.gz", Bytes(images.begin(), images.begin() + 20));
  dir.write_gz("b.gz", Bytes(images.begin() + 20, images.end()));
  Bytes both = dir.read("a.gz");
  const Bytes b = dir.read("b.gz");
  both.insert(both.end(), b.begin(), b.end());
  CHECK(read_idx_images(dir.write("both.gz", both)).pixels ==
        Bytes(images.begin() + 16, images.end()));

  dir.write_gz("whole.gz", images);
  Bytes garbage = dir.read("whole.gz");
  garbage.insert(garbage.end(), {'x', 'y', 'z'});
  auto p = dir.write("garbage.gz", garbage);
  CHECK(error_of([&] { read_idx_images(p); }) ==
        p.string() + ": corrupt gzip data: 3 bytes after the end of the compressed stream");
}

TEST_CASE("gzip data after the payload is counted up to a bound, not inflated to the end",
          "[idx][errors]") {
  TempDir dir;
  Bytes labels = label_file({1, 2});
  labels.resize(labels.size() + (size_t{8} << 20));  // 8 MiB of zeros: a few KiB compressed
  auto p = dir.write_gz("bomb.gz", labels);
  CHECK(error_of([&] { read_idx_labels(p); }) ==
        p.string() +
            ": more than 1048576 trailing bytes after the 2 bytes of labels (2) the header "
            "announces");
}
