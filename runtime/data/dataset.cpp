// dataset.cpp: pairs IDX files into labelled images and checks them against the model.
#include "data/dataset.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <system_error>

namespace cnnc::rt {
namespace {

constexpr const char* kSetupHint =
    "run scripts/setup to fetch MNIST into data/mnist, or point --data at a directory in "
    "MNIST's layout";

// Copies samples [begin, begin + n) of src.
LabeledImages slice(const LabeledImages& src, int32_t begin, int32_t n) {
  LabeledImages out;
  out.images_path = src.images_path;
  out.labels_path = src.labels_path;
  out.count = n;
  out.rows = src.rows;
  out.cols = src.cols;
  const size_t pixels = static_cast<size_t>(src.rows) * src.cols;
  out.pixels.assign(src.pixels.begin() + static_cast<ptrdiff_t>(begin * pixels),
                    src.pixels.begin() + static_cast<ptrdiff_t>((begin + n) * pixels));
  out.labels.assign(src.labels.begin() + begin, src.labels.begin() + begin + n);
  return out;
}

}  // namespace

std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& stem,
                                    const std::string& kind) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw DataError(fmt::format("{}: data directory not found; {}", dir.string(), kSetupHint));
  }
  const std::string base[] = {stem + "-" + kind + "-ubyte", stem + "." + kind + "-ubyte"};
  std::vector<std::string> tried;
  for (const auto& name : base) {
    for (const auto& candidate : {name, name + ".gz"}) {
      auto path = dir / candidate;
      if (std::filesystem::exists(path, ec)) return path;
      tried.push_back(candidate);
    }
  }
  throw DataError(fmt::format("{}: no {} file (looked for {}); {}", dir.string(), stem,
                              fmt::join(tried, ", "), kSetupHint));
}

LabeledImages load_labeled_images(const std::filesystem::path& images_file,
                                  const std::filesystem::path& labels_file, const InputSpec& spec) {
  IdxImages images = read_idx_images(images_file);
  IdxLabels labels = read_idx_labels(labels_file);
  if (spec.channels != 1) {
    throw DataError(
        fmt::format("{}: images have 1 channel ({}x{}x1) but the model's input is "
                    "{}x{}x{}",
                    images.path, images.rows, images.cols, spec.rows, spec.cols, spec.channels));
  }
  if (images.rows != spec.rows || images.cols != spec.cols) {
    throw DataError(fmt::format("{}: images are {}x{}x1 but the model's input is {}x{}x{}",
                                images.path, images.rows, images.cols, spec.rows, spec.cols,
                                spec.channels));
  }
  if (images.count != labels.count) {
    throw DataError(
        fmt::format("{}: {} labels, but {} holds {} images; expected one label per "
                    "image",
                    labels.path, labels.count, images.path, images.count));
  }
  for (int32_t i = 0; i < labels.count; ++i) {
    if (labels.labels[i] >= spec.classes) {
      throw DataError(
          fmt::format("{}: label {} at index {} is out of range for a model with {} "
                      "classes (expected 0..{})",
                      labels.path, labels.labels[i], i, spec.classes, spec.classes - 1));
    }
  }
  LabeledImages out;
  out.images_path = std::move(images.path);
  out.labels_path = std::move(labels.path);
  out.count = images.count;
  out.rows = images.rows;
  out.cols = images.cols;
  out.pixels = std::move(images.pixels);
  out.labels = std::move(labels.labels);
  return out;
}

LabeledImages load_split(const std::filesystem::path& dir, Split split, const InputSpec& spec) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  auto images = find_idx_file(dir, prefix + "-images", "idx3");
  auto labels = find_idx_file(dir, prefix + "-labels", "idx1");
  return load_labeled_images(images, labels, spec);
}

int32_t validation_count(int32_t count, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0)) {
    throw DataError(fmt::format("validation {}: expected a fraction in [0, 1)", fraction));
  }
  const auto n = static_cast<int32_t>(std::llround(fraction * count));
  if (fraction > 0.0 && (n < 1 || n >= count)) {
    throw DataError(
        fmt::format("validation {} of {} training samples holds out {}; expected at "
                    "least one sample for validation and one for training",
                    fraction, count, n));
  }
  return n;
}

LabeledImages split_off_validation(LabeledImages& train, double fraction) {
  const int32_t n = validation_count(train.count, fraction);
  const int32_t keep = train.count - n;
  LabeledImages validation = slice(train, keep, n);
  train.pixels.resize(static_cast<size_t>(keep) * train.rows * train.cols);
  train.labels.resize(static_cast<size_t>(keep));
  train.count = keep;
  return validation;
}

Mnist load_mnist(const std::filesystem::path& dir, const InputSpec& spec,
                 double validation_fraction) {
  Mnist out;
  out.train = load_split(dir, Split::train, spec);
  out.validation = split_off_validation(out.train, validation_fraction);
  out.test = load_split(dir, Split::test, spec);
  return out;
}

}  // namespace cnnc::rt
