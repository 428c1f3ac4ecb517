// Counting the slices that have finished each layer of a step, for an overlapped gradient sum.
#include <algorithm>

#include "train/layers_done.hpp"

namespace cnnc::rt {

void LayersDone::begin(int32_t layers, size_t slices) {
  std::lock_guard lock(mutex_);
  pending_.assign(static_cast<size_t>(layers), slices);
}

void LayersDone::report(int32_t layer) {
  {
    std::lock_guard lock(mutex_);
    if (--pending_[static_cast<size_t>(layer)] > 0) return;
  }
  changed_.notify_all();
}

void LayersDone::finish_all() {
  {
    std::lock_guard lock(mutex_);
    std::fill(pending_.begin(), pending_.end(), 0);
  }
  changed_.notify_all();
}

bool LayersDone::wait_for(int32_t layer, std::chrono::microseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout,
                           [&] { return pending_[static_cast<size_t>(layer)] == 0; });
}

}  // namespace cnnc::rt
