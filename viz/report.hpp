// cnnc viz's lesson: what a network computes on one input, layer by layer, as PNG files and an
// index.html that shows them in order with captions. Self-contained: no network, no scripts
// from elsewhere.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "dsl/graph.hpp"

namespace cnnc::viz {

// One picture of the lesson: its file in the report's directory, a heading and what it shows.
struct Figure {
  std::string file, title, caption;
};

// What a trained run adds to the lesson; each part is left out when empty.
struct RunResults {
  std::filesystem::path history;            // cnnc train's history.csv: loss.png, accuracy.png
  const rt::LabeledImages* test = nullptr;  // the test set: confusion.png, mistakes.png
};

// Writes into dir (created when missing), for the input image ([H][W][C] floats in 0..1, as the
// model reads it; `image_name` says where it came from):
//   input.png                  the input as the model sees it;
//   filters_<conv>.png         every conv layer's kernels, diverging colours on one scale with
//                              its scale bar: the first layer a kernel per filter, deeper layers
//                              a row per output channel;
//   filters_<conv>_k<k>_c<c>.png  each kernel alone on that scale, R x S scaled up to about 96
//                              pixels;
//   maps_<layer>.png           every conv and pool layer's output channels, grey, each channel
//                              on its own range (image.hpp), captioned with the shape and the
//                              .cnn line that made it;
//   maps_<layer>_c<k>.png      each channel alone, out_h x out_w scaled up to about 112 pixels;
//   saliency.png               d score / d pixel of the predicted class for the input and, with
//                              run.test, the first seven test images;
//   augment.png                the model's augment settings applied to the input, 16 draws;
//   loss.png, accuracy.png     per epoch, training against validation and test (run.history);
//   confusion.png              true class against predicted class on run.test;
//   mistakes.png               the test images misclassified with the highest confidence;
//   index.html                 all of the above in the order of the lesson.
// params are the whole model's (a checkpoint's, or its initial ones). Returns the figures in the
// order index.html shows them. Throws std::runtime_error naming the file it could not write
// or read (history.csv's line and column).
std::vector<Figure> write_report(const dsl::Graph& graph, const std::vector<float>& params,
                                 std::span<const float> image, const std::string& image_name,
                                 const std::filesystem::path& dir, const RunResults& run = {});

}  // namespace cnnc::viz
