// The progress line: a bar, the batch, the epoch's loss and accuracy so far, speed and ETA.
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace cnnc::cli {

void draw_progress(const rt::StepRecord& at) {
  constexpr int width = 24;
  int done = width * at.batch / std::max(1, at.batches);
  double eta = at.epoch_elapsed / at.batch * (at.batches - at.batch);
  fmt::print(
      stderr, "\r  epoch {}/{} [{}{}] {}/{}  loss {:.4f}  acc {:.2f}%  {:.0f} img/s  ETA {:.0f}s ",
      at.epoch, at.epochs, std::string(static_cast<size_t>(done), '='),
      std::string(static_cast<size_t>(width - done), ' '), at.batch, at.batches, at.loss,
      100 * at.accuracy, static_cast<double>(at.images) / std::max(at.epoch_seconds, 1e-9), eta);
}

void erase_progress() {
  fmt::print(stderr, "\r{:100}\r", "");
}

}  // namespace cnnc::cli
