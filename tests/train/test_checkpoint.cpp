// The checkpoint reader against hostile files: each is refused with its path and the reason,
// nothing blocks, and nothing a header claims is allocated before the file's real size and the
// expected model confirm it.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "train/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

// A directory of this test's own, removed at the end.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("cnnc_test_ckpt_" + std::to_string(getpid()));
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

// The message load_checkpoint throws; fails the test when it throws nothing.
std::string error_of(const fs::path& path, uint64_t digest = 0x1234) {
  try {
    rt::load_checkpoint(path, digest);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("expected a std::runtime_error");
  return {};
}

// A checkpoint header (see checkpoint.hpp) announcing count parameters.
std::string header(uint64_t digest, int64_t count) {
  std::string h = "CNNCCKPT";
  auto put = [&h](const auto& v) { h.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(uint32_t{1});
  put(uint32_t{0});
  put(digest);
  put(uint32_t{0});
  put(uint32_t{0});
  put(int64_t{0});
  put(count);
  return h;
}

}  // namespace

TEST_CASE("a checkpoint that is not a regular file is refused with the reason, without blocking") {
  Scratch s;
  std::string missing = (s.dir / "missing.bin").string();
  CHECK(error_of(missing) ==
        "checkpoint '" + missing + "': cannot read: No such file or directory");
  CHECK(error_of(s.dir) ==
        "checkpoint '" + s.dir.string() + "': cannot read: it is a directory, not a regular file");
  CHECK(error_of("/dev/zero") ==
        "checkpoint '/dev/zero': cannot read: it is a character device, not a regular file");
  std::string fifo = (s.dir / "fifo").string();
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(error_of(fifo) ==
        "checkpoint '" + fifo + "': cannot read: it is a named pipe (FIFO), not a regular file");
}

TEST_CASE(
    "a checkpoint header is checked against the file's size and the model before allocating") {
  Scratch s;
  fs::path f = s.dir / "c.bin";
  std::string name = "checkpoint '" + f.string() + "': ";
  // 2^60 parameters announced in a 52-byte file.
  std::ofstream(f, std::ios::binary) << header(0x1234, int64_t{1} << 60) << "1234";
  CHECK(error_of(f) == name + "truncated or damaged (parameter count does not fit the file)");
  // One parameter, one byte too many.
  std::ofstream(f, std::ios::binary) << header(0x1234, 1) << std::string(12 + 4 + 1, '\0');
  CHECK(error_of(f) == name + "truncated or damaged: 65 bytes, expected 64");
  // 2^32 parameters in a sparse file of exactly their size (48 GiB that take no disk): another
  // model's, so refused before 48 GiB are allocated or read.
  int64_t count = int64_t{1} << 32;
  std::ofstream(f, std::ios::binary) << header(0x9999, count);
  fs::resize_file(f, 48 + 12 * static_cast<uint64_t>(count) + 4);
  CHECK(error_of(f) == name + "written for a different model (its layer table differs)");
}

TEST_CASE("a checkpoint reads from memory as from its file") {
  Scratch s;
  fs::path f = s.dir / "c.bin";
  rt::Checkpoint c{0x1234, 2, 7, {1.0f, 2.0f}, {3, 4, 5, 6}};
  rt::save_checkpoint(f, c);
  std::ifstream in(f, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  rt::MemorySource source(std::as_bytes(std::span(bytes)));
  rt::Checkpoint back = rt::read_checkpoint(source, "in memory", 0x1234);
  CHECK(back.params == c.params);
  CHECK(back.optimizer == c.optimizer);
  CHECK(back.step == 7);
  rt::MemorySource cut(std::as_bytes(std::span(bytes)).first(30));
  CHECK_THROWS_WITH(rt::read_checkpoint(cut, "in memory", 0x1234),
                    "checkpoint 'in memory': not a cnnc checkpoint");
}
