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
std::string error_of(const fs::path& path, uint64_t digest = 0x1234, int64_t count = 1) {
  try {
    rt::load_checkpoint(path, digest, count);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("expected a std::runtime_error");
  return {};
}

// A checkpoint header (see checkpoint.hpp) announcing count parameters and settings_bytes of
// settings.
std::string header(uint64_t digest, int64_t count, uint32_t settings_bytes = 0,
                   uint32_t version = 2) {
  std::string h = "CNNCCKPT";
  auto put = [&h](const auto& v) { h.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(version);
  put(settings_bytes);
  put(digest);
  put(uint32_t{0});
  put(uint32_t{0});
  put(int64_t{0});
  put(count);
  put(0.0);
  put(int64_t{0});
  put(int64_t{0});
  put(0.0);
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
  // 2^60 parameters announced in an 84-byte file.
  std::ofstream(f, std::ios::binary) << header(0x1234, int64_t{1} << 60) << "1234";
  CHECK(error_of(f) == name + "truncated or damaged (parameter count does not fit the file)");
  // 4 GiB of settings announced, and more than a run's settings can take.
  std::ofstream(f, std::ios::binary) << header(0x1234, 1, 0xffffffff) << std::string(16, '\0');
  CHECK(error_of(f) == name + "truncated or damaged (its settings do not fit the file)");
  std::ofstream(f, std::ios::binary) << header(0x1234, 0, 100000) << std::string(100004, '\0');
  CHECK(error_of(f) == name + "truncated or damaged (its settings do not fit the file)");
  // One parameter, one byte too many.
  std::ofstream(f, std::ios::binary) << header(0x1234, 1) << std::string(12 + 4 + 1, '\0');
  CHECK(error_of(f) == name + "truncated or damaged: 97 bytes, expected 96");
  // A header shorter than version 2's.
  std::ofstream(f, std::ios::binary) << header(0x1234, 1).substr(0, 40);
  CHECK(error_of(f) == name + "truncated or damaged (shorter than its header)");
  // 2^32 parameters in a sparse file of exactly their size (48 GiB that take no disk): another
  // model's, so refused before 48 GiB are allocated or read.
  int64_t count = int64_t{1} << 32;
  std::ofstream(f, std::ios::binary) << header(0x9999, count);
  fs::resize_file(f, 80 + 12 * static_cast<uint64_t>(count) + 4);
  CHECK(error_of(f) == name + "written for a different model (its layer table differs)");
  // The same forged with the expected model's digest: its count is not the model's, so refused
  // before the 48 GiB are read.
  std::ofstream(f, std::ios::binary) << header(0x1234, count);
  fs::resize_file(f, 80 + 12 * static_cast<uint64_t>(count) + 4);
  CHECK(error_of(f, 0x1234, 1000) ==
        name + "damaged: it holds 4294967296 parameters, its model has 1000");
}

TEST_CASE("a checkpoint of an older version is refused, saying why") {
  Scratch s;
  fs::path f = s.dir / "c.bin";
  std::ofstream(f, std::ios::binary) << header(0x1234, 1, 0, 1) << std::string(16, '\0');
  CHECK(error_of(f) == "checkpoint '" + f.string() +
                           "': version 1, written by an older cnnc that did not record the run's "
                           "settings; this cnnc reads version 2: train afresh");
  std::ofstream(f, std::ios::binary) << header(0x1234, 1, 0, 3) << std::string(16, '\0');
  CHECK(error_of(f) == "checkpoint '" + f.string() + "': version 3, this cnnc reads version 2");
}

TEST_CASE("a checkpoint's settings and place in an epoch round-trip, and differences are named") {
  Scratch s;
  fs::path f = s.dir / "c.bin";
  rt::Checkpoint c;
  c.model_digest = 0x1234;
  c.epochs_done = 1;
  c.batches_done = 5;
  c.step = 12;
  c.loss_sum = 3.75;
  c.correct = 17;
  c.images = 40;
  c.seconds = 0.5;
  c.settings = {{"seed", "7"}, {"engine", "specialized-avx2"}, {"lr", ""}};
  c.params = {1.0f};
  c.optimizer = {2.0f, 3.0f};
  rt::save_checkpoint(f, c);
  rt::Checkpoint back = rt::load_checkpoint(f, 0x1234, 1);
  CHECK(back.batches_done == 5);
  CHECK(back.loss_sum == 3.75);
  CHECK(back.correct == 17);
  CHECK(back.images == 40);
  CHECK(back.seconds == 0.5);
  CHECK(back.settings == c.settings);
  rt::RunSettings now = {{"seed", "8"}, {"lr", ""}, {"threads", "2"}};
  CHECK(rt::settings_differences(back.settings, now) ==
        std::vector<std::string>{"seed: the checkpoint's 7, this run's 8",
                                 "engine: the checkpoint's specialized-avx2, this run's none",
                                 "threads: the checkpoint's none, this run's 2"});
  CHECK(rt::settings_differences(back.settings, back.settings).empty());
  // A name with '=' or a value with a newline would not read back as written.
  c.settings = {{"a=b", "1"}};
  CHECK_THROWS_AS(rt::save_checkpoint(f, c), std::logic_error);
}

TEST_CASE("a checkpoint reads from memory as from its file") {
  Scratch s;
  fs::path f = s.dir / "c.bin";
  rt::Checkpoint c{0x1234, 2, 0, 7, 0, 0, 0, 0, {{"seed", "1"}}, {1.0f, 2.0f}, {3, 4, 5, 6}};
  rt::save_checkpoint(f, c);
  std::ifstream in(f, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  rt::MemorySource source(std::as_bytes(std::span(bytes)));
  rt::Checkpoint back = rt::read_checkpoint(source, "in memory", 0x1234, 2);
  CHECK(back.params == c.params);
  CHECK(back.optimizer == c.optimizer);
  CHECK(back.step == 7);
  rt::MemorySource cut(std::as_bytes(std::span(bytes)).first(30));
  CHECK_THROWS_WITH(rt::read_checkpoint(cut, "in memory", 0x1234, 2),
                    "checkpoint 'in memory': truncated or damaged (shorter than its header)");
  rt::MemorySource tiny(std::as_bytes(std::span(bytes)).first(10));
  CHECK_THROWS_WITH(rt::read_checkpoint(tiny, "in memory", 0x1234, 2),
                    "checkpoint 'in memory': not a cnnc checkpoint");
}
