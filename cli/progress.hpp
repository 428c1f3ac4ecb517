// The progress line of cnnc train: one line on stderr, redrawn after every training step.
#pragma once

#include "train/trainer.hpp"

namespace cnnc::cli {

// Redraws the line for the step just taken.
void draw_progress(const rt::StepRecord& at);
// Clears it, before the epoch's summary is printed.
void erase_progress();

}  // namespace cnnc::cli
