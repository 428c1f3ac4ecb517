// dataset.hpp: a directory in MNIST's layout (MNIST, Fashion-MNIST) loaded as labelled images
// checked against a model's input and classes, and the validation split of dsl.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/idx.hpp"

namespace cnnc::rt {

// What the model expects of every sample: the shape of its input and its number of classes.
struct InputSpec {
  int32_t rows = 28, cols = 28, channels = 1;
  int32_t classes = 10;
};

// Labelled single-channel images, held as the file stores them (uint8); batches convert.
struct LabeledImages {
  std::string images_path, labels_path;  // where they came from, for messages
  int32_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count][rows][cols]
  std::vector<uint8_t> labels;  // [count], each < the classes they were checked against

  const uint8_t* image(int32_t i) const {
    return pixels.data() + static_cast<size_t>(i) * rows * cols;
  }
};

enum class Split { train, test };

// Finds "<stem>-idx3-ubyte" for stem "train-images" in dir, also as "<stem>.idx3-ubyte" and
// either with ".gz"; kind is "idx3" or "idx1". Throws DataError naming every name tried and
// pointing at scripts/setup.
std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& stem,
                                    const std::string& kind);

// Reads one images file and one labels file and checks them against each other and the spec:
// equal counts, images of spec.rows x spec.cols, one channel, labels < spec.classes.
LabeledImages load_labeled_images(const std::filesystem::path& images,
                                  const std::filesystem::path& labels, const InputSpec& spec);

// The training (60000 in MNIST) or test (10000) split of a directory in MNIST's layout.
LabeledImages load_split(const std::filesystem::path& dir, Split split, const InputSpec& spec);

// The number of samples `validation F` holds out of count: round(F * count). F must lie in
// [0, 1) and, when positive, leave at least one sample on each side.
int32_t validation_count(int32_t count, double fraction);

// Moves the LAST validation_count(train.count, fraction) samples of train into the result
// and shrinks train to the rest; the order is that of the file, so the split never varies.
LabeledImages split_off_validation(LabeledImages& train, double fraction);

// Everything a training run reads: train minus the held-out tail, validation (empty when the
// fraction is 0), and test.
struct Mnist {
  LabeledImages train, validation, test;
};
Mnist load_mnist(const std::filesystem::path& dir, const InputSpec& spec,
                 double validation_fraction = 0.0);

}  // namespace cnnc::rt
