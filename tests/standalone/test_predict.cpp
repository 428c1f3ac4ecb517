// cnnc predict: one line per picture, the same answer for an image whether it comes as PNG, PGM
// or from an IDX file, and clear refusals.
#include <fstream>

#include "../run_command.hpp"
#include "../skip.hpp"
#include "data/idx.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

using namespace cnnc_test;

namespace {

// What follows the picture's name on its line: the class and the probabilities.
std::string answer(const std::string& out, const std::string& name) {
  size_t at = out.find(name + ": ");
  if (at == std::string::npos) return "(no line for " + name + ")";
  at += name.size();
  return out.substr(at, out.find('\n', at) - at);
}

}  // namespace

TEST_CASE("cnnc predict classifies PNG, PGM and IDX images alike") {
  if (!have_mnist()) {
    CNNC_SKIP("data", "data/mnist is absent (scripts/setup fetches it)");
  }
  TempDir dir("predict");
  Run t =
      run_cnnc("train tests/standalone/small.cnn --engine generic --max-steps 30 --limit 2048 " +
               std::string("--threads 2 --out ") + (dir / "run"));
  REQUIRE(t.status == 0);
  std::string ckpt = dir / "run/checkpoint.bin";

  std::string idx = "data/mnist/t10k-images-idx3-ubyte";
  cnnc::rt::IdxImages images = cnnc::rt::read_idx_images(CNNC_SOURCE_DIR "/" + idx);
  const uint8_t* first = images.pixels.data();
  {
    std::ofstream pgm(dir / "seven.pgm", std::ios::binary);
    pgm << "P5\n28 28\n255\n";
    pgm.write(reinterpret_cast<const char*>(first), 28 * 28);
  }
  REQUIRE(stbi_write_png((dir / "seven.png").c_str(), 28, 28, 1, first, 28) != 0);

  Run r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt + " " + idx +
                   " --limit 2 " + (dir / "seven.pgm") + " " + (dir / "seven.png"));
  INFO(r.out);
  REQUIRE(r.status == 0);
  std::string a = answer(r.out, idx + "[0]");
  CHECK(a.find(" | 0:0.") != std::string::npos);  // the probabilities of every class
  CHECK(a.find(" 9:") != std::string::npos);
  CHECK(answer(r.out, dir / "seven.pgm") == a);
  CHECK(answer(r.out, dir / "seven.png") == a);
  CHECK(r.out.find(idx + "[1]: ") != std::string::npos);
  CHECK(r.out.find(idx + "[2]: ") == std::string::npos);  // --limit 2

  Run inv = run_cnnc("predict tests/standalone/small.cnn --invert --checkpoint " + ckpt + " " +
                     (dir / "seven.pgm"));
  CHECK(inv.status == 0);
  CHECK(answer(inv.out, dir / "seven.pgm") != a);

  Run j = run_cnnc("predict tests/standalone/small.cnn --json --checkpoint " + ckpt + " " +
                   (dir / "seven.png"));
  CHECK(j.status == 0);
  CHECK(contains(j.out, "{\"image\":\"" + (dir / "seven.png") + "\",\"class\":"));
  CHECK(contains(j.out, ",\"probabilities\":[0."));
}

TEST_CASE("cnnc predict refuses what it cannot read, naming the file") {
  TempDir dir("predict_errors");
  {
    std::ofstream pgm(dir / "small.pgm", std::ios::binary);
    pgm << "P5\n10 12\n255\n" << std::string(120, '\x80');
  }
  std::string ckpt = dir / "none.bin";
  Run r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt + " " +
                   (dir / "small.pgm"));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "'" + (dir / "small.pgm") + "' is 10x12, but model small takes 28x28"));
  r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt +
               " tests/standalone/small.cnn");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "'tests/standalone/small.cnn' is not a PNG, PGM or IDX image file"));
  r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt + " " +
               "data/mnist/t10k-labels-idx1-ubyte");
  CHECK(r.status == 1);  // labels, not images: the IDX reader says why
  r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt + " no/such.png");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cannot read 'no/such.png': No such file or directory"));
  CHECK(run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt).status ==
        2);  // no image
  r = run_cnnc("predict tests/standalone/small.cnn --checkpoint " + ckpt + " /dev/null");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cannot read '/dev/null': it is a character device, not a regular file"));
}
