// cnnc bench --to-accuracy: how many seconds of training each engine needs to reach a test
// accuracy on real MNIST, per seed; evaluation is not counted as training time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsl/graph.hpp"

namespace cnnc::bench {

struct AccuracyOptions {
  double target = 0.99;
  std::vector<std::string> engines;  // generic, specialized, onednn, pytorch
  std::vector<uint64_t> seeds;       // empty: the file's seed
  std::string data;                  // the MNIST directory
  int eval_every = 100;              // steps between evaluations; 0: each epoch
  int64_t epochs = 10;               // give up after these; the schedule spans the file's
  int threads = 2;
  std::string python;  // the interpreter of the pytorch engine
  bool json = false;
};

// Runs every engine for every seed, interleaved by seed; prints a table (and JSON with --json).
// Returns the exit status.
int run_to_accuracy(const dsl::Graph& g, const AccuracyOptions& options);

}  // namespace cnnc::bench
