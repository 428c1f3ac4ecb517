// Variants of a model for cnnc sweep: a setting written into the .cnn text, so that a variant is
// lexed, parsed and checked exactly as a file is, and fails with the same diagnostics.
#pragma once

#include <span>
#include <string>

namespace cnnc::dsl {

// NAME=VALUE: a layer's argument by the layer's name as cnnc summary prints it (conv1.filters,
// conv1.kernel, conv1.stride, conv1.pad, conv1.activation, maxpool1.window, maxpool1.stride,
// dense1.units, dense1.activation, dropout1.rate), or a training statement (batch, epochs,
// validation, loss, optimizer, schedule), one of its options (augment.shift, augment.rotate,
// augment.scale, optimizer.lr, schedule.every, ...), or the optimizer's options by their own
// names (lr, momentum, weight_decay, beta1, beta2, eps).
struct Setting {
  std::string name, value;
};

// A .cnn text with settings written in, or why not.
struct Edited {
  std::string text;   // the new text when error is empty
  std::string error;  // a message naming what exists, or the diagnostics of the edited text
};

// Writes each setting into `text` (a file whose statements check: the caller reports its errors
// first). A layer setting replaces that argument of the layer's statement, or adds it; a training
// setting replaces the statement's value or option, or adds the statement at the end. `optimizer`
// and `schedule` choose the kind with its defaults (weight_decay is kept) and are applied before
// the other settings, so `optimizer=adam lr=0.01` means adam at 0.01. After every setting the
// statements are checked again (not the shapes: a variant that does not fit is the caller's to
// report from the full check), and their diagnostics, rendered with `path`, are the error.
Edited apply_settings(const std::string& path, const std::string& text,
                      std::span<const Setting> settings);

}  // namespace cnnc::dsl
