// cnnc bench FILE: the training and inference images/s of each engine on random MNIST-shaped
// data, timed interleaved, with medians, ratios, GFLOP/s and the share of the FP32 peak measured
// in the same run, on a CPU the run names itself.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dsl/graph.hpp"

namespace cnnc::bench {

struct ThroughputOptions {
  std::vector<std::string> engines;  // generic, specialized, onednn, pytorch; the first is the
                                     // reference of the ratios
  int threads = 2;
  std::optional<int64_t> batch;  // unset: the file's
  int reps = 5;
  double seconds = 1.0;               // per engine, phase and repetition
  std::optional<double> peak_gflops;  // unset: measured
  std::string python;                 // the interpreter of the pytorch engine
  bool json = false;
};

// Prints the report (and one JSON line with json). Throws std::runtime_error when no engine can
// be timed, or when an engine's first step is not finite or its forward pass disagrees with the
// first engine's.
void run_throughput(const dsl::Graph& g, const ThroughputOptions& options);

}  // namespace cnnc::bench
