// Which layers of a training step have final gradients on this process: what an exchange waits
// for before it sums a layer's gradients while the layers below it still run backward.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace cnnc::rt {

// One trainable layer's parameters in the gradient vector: [first, first + count), its weights,
// the alignment gap and its bias.
struct GradientRange {
  int32_t layer = 0;
  int64_t first = 0, count = 0;
};

// Which layers every slice of this process has finished in the step under way: the slices'
// threads report them (cnnc_pass::gradients_ready), an exchange waits for them.
class LayersDone {
 public:
  // A step begins: `slices` slices over a model of `layers` layers.
  void begin(int32_t layers, size_t slices);
  // One slice's gradients of `layer` are final. Any thread.
  void report(int32_t layer);
  // Every slice has returned, so every layer is final, reported or not.
  void finish_all();
  // Blocks until every slice has reported `layer` (or finish_all), at most for `timeout`;
  // whether it was.
  bool wait_for(int32_t layer, std::chrono::microseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<size_t> pending_;  // per layer, the slices yet to report it
};

}  // namespace cnnc::rt
