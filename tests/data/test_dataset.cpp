// test_dataset.cpp: specifications of MNIST-layout directories: file names, the checks against
// the model (counts, labels, image size), the validation split, and the real MNIST when present.
#include <catch2/catch.hpp>

#include "../skip.hpp"
#include "data/dataset.hpp"
#include "idx_files.hpp"

using namespace cnnc::rt;
using namespace cnnc::test;

namespace {

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

Bytes labels_mod(uint32_t count, uint32_t classes) {
  Bytes out(count);
  for (uint32_t i = 0; i < count; ++i) out[i] = static_cast<uint8_t>(i % classes);
  return out;
}

// A small MNIST-layout directory: train 20 images, test 6, of 4x4, labels < 10.
void write_mnist(const TempDir& dir, bool gz = false) {
  auto put = [&](const std::string& name, const Bytes& b) {
    gz ? dir.write_gz(name + ".gz", b) : dir.write(name, b);
  };
  put("train-images-idx3-ubyte", image_file(20, 4, 4));
  put("train-labels-idx1-ubyte", label_file(labels_mod(20, 10)));
  put("t10k-images-idx3-ubyte", image_file(6, 4, 4));
  put("t10k-labels-idx1-ubyte", label_file(labels_mod(6, 10)));
}

const InputSpec k4x4{4, 4, 1, 10};

}  // namespace

TEST_CASE("an MNIST-layout directory loads, plain or gzip", "[dataset]") {
  for (bool gz : {false, true}) {
    INFO("gzip " << gz);
    TempDir dir;
    write_mnist(dir, gz);
    Mnist m = load_mnist(dir.path(), k4x4);
    CHECK(m.train.count == 20);
    CHECK(m.train.rows == 4);
    CHECK(m.train.cols == 4);
    CHECK(m.train.pixels.size() == 20 * 16);
    CHECK(m.train.labels == labels_mod(20, 10));
    CHECK(m.validation.count == 0);
    CHECK(m.test.count == 6);
    CHECK(m.test.image(5)[3] == (5 * 7 + 3) % 256);
    CHECK(m.train.images_path ==
          (dir.path() / (gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte")).string());
  }
}

TEST_CASE("the dotted spelling train-images.idx3-ubyte is found too", "[dataset]") {
  TempDir dir;
  dir.write("train-images.idx3-ubyte", image_file(3, 4, 4));
  dir.write_gz("train-labels.idx1-ubyte.gz", label_file({1, 2, 3}));
  auto train = load_split(dir.path(), Split::train, k4x4);
  CHECK(train.count == 3);
  CHECK(train.labels_path == (dir.path() / "train-labels.idx1-ubyte.gz").string());
}

TEST_CASE("a missing directory or file says to run scripts/setup", "[dataset][errors]") {
  TempDir dir;
  const std::string hint =
      "; run scripts/setup to fetch MNIST into data/mnist, or point --data at a directory in "
      "MNIST's layout";
  auto missing = dir.path() / "absent";
  CHECK(error_of([&] { load_mnist(missing, k4x4); }) ==
        missing.string() + ": data directory not found" + hint);
  dir.write("train-images-idx3-ubyte", image_file(3, 4, 4));
  CHECK(error_of([&] { load_mnist(dir.path(), k4x4); }) ==
        dir.path().string() +
            ": no train-labels file (looked for train-labels-idx1-ubyte, "
            "train-labels-idx1-ubyte.gz, train-labels.idx1-ubyte, train-labels.idx1-ubyte.gz)" +
            hint);
}

TEST_CASE("images and labels must agree in count", "[dataset][errors]") {
  TempDir dir;
  auto images = dir.write("i", image_file(5, 4, 4));
  auto labels = dir.write("l", label_file(labels_mod(4, 10)));
  CHECK(error_of([&] { load_labeled_images(images, labels, k4x4); }) ==
        labels.string() + ": 4 labels, but " + images.string() +
            " holds 5 images; expected one label per image");
}

TEST_CASE("a label beyond the model's classes names the file and the index", "[dataset][errors]") {
  TempDir dir;
  auto images = dir.write("i", image_file(4, 4, 4));
  auto labels = dir.write("l", label_file({0, 9, 10, 3}));
  CHECK(error_of([&] { load_labeled_images(images, labels, k4x4); }) ==
        labels.string() +
            ": label 10 at index 2 is out of range for a model with 10 classes (expected 0..9)");
  CHECK(load_labeled_images(images, labels, InputSpec{4, 4, 1, 11}).count == 4);
}

TEST_CASE("images must have the model's input size and one channel", "[dataset][errors]") {
  TempDir dir;
  auto images = dir.write("i", image_file(2, 4, 5));
  auto labels = dir.write("l", label_file({0, 1}));
  CHECK(error_of([&] {
          load_labeled_images(images, labels, InputSpec{28, 28, 1, 10});
        }) == images.string() + ": images are 4x5x1 but the model's input is 28x28x1");
  CHECK(error_of([&] {
          load_labeled_images(images, labels, InputSpec{4, 5, 3, 10});
        }) == images.string() + ": images have 1 channel (4x5x1) but the model's input is 4x5x3");
}

TEST_CASE("validation holds out the last fraction of the training set", "[dataset][validation]") {
  TempDir dir;
  write_mnist(dir);
  Mnist m = load_mnist(dir.path(), k4x4, 0.25);
  CHECK(m.train.count == 15);
  CHECK(m.validation.count == 5);
  CHECK(m.train.pixels.size() == 15 * 16);
  CHECK(m.validation.pixels.size() == 5 * 16);
  // The validation set is the tail, in file order: its sample 0 is the file's sample 15.
  CHECK(m.validation.image(0)[0] == 15 * 7 % 256);
  CHECK(m.validation.labels == Bytes{5, 6, 7, 8, 9});
  CHECK(m.test.count == 6);

  CHECK(validation_count(60000, 0.1) == 6000);
  CHECK(validation_count(60000, 1.0 / 12) == 5000);
  CHECK(validation_count(60000, 0.0) == 0);
  CHECK(validation_count(10, 0.26) == 3);
  CHECK(error_of([] { validation_count(10, 1.0); }) ==
        "validation 1: expected a fraction in [0, 1)");
  CHECK(error_of([] { validation_count(10, -0.5); }) ==
        "validation -0.5: expected a fraction in [0, 1)");
  CHECK(error_of([] { validation_count(10, 0.01); }) ==
        "validation 0.01 of 10 training samples holds out 0; expected at least one sample for "
        "validation and one for training");
}

TEST_CASE("the real MNIST loads: 60000 and 10000 images of 28x28, labels < 10",
          "[dataset][mnist]") {
  if (!std::filesystem::is_directory(mnist_dir())) {
    CNNC_SKIP("data", "data/mnist is absent (scripts/setup fetches it)");
  }
  Mnist m = load_mnist(mnist_dir(), InputSpec{28, 28, 1, 10});
  CHECK(m.train.count == 60000);
  CHECK(m.test.count == 10000);
  CHECK(m.train.rows == 28);
  CHECK(m.train.cols == 28);
  CHECK(m.test.rows == 28);
  int counts[10] = {};
  for (uint8_t label : m.train.labels) ++counts[label];
  for (int c : counts) CHECK(c > 5000);  // every digit is there, about 6000 times
}
