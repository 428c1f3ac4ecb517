// The entry point of an executable built by `cnnc build`: its generated main.cpp hands over the
// embedded model and the code linked for it. Plain C++17 and cnnc_abi.h only, because cnnc build
// writes this header beside main.cpp and compiles it with the user's compiler.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cnnc_abi.h"

namespace cnnc::standalone {

// Everything main.cpp knows. Strings are bytes with a size: they hold user text.
struct Model {
  const char* name;  // the model's name (a C identifier)
  const unsigned char* path;
  size_t path_size;  // the .cnn file as named to cnnc build
  const unsigned char* text;
  size_t text_size;   // the .cnn text
  int32_t max_batch;  // the largest slice the linked code takes
  cnnc_model* (*create)(int32_t max_batch, const char* target);
  void (*destroy)(cnnc_model* model);
  const char* built_with;                                    // "g++ 12.2.0 -O2"
  int64_t max_params, max_activation_bytes, max_code_bytes;  // the limits it was checked under
};

// Runs the train, eval, predict or model subcommand on the embedded model; returns the exit
// status, as cnnc's.
int main(int argc, char** argv, const Model& model);

}  // namespace cnnc::standalone
