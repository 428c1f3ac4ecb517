// The pipeline step behind cnnc compare and cnnc sweep: train every variant with every seed on
// the same data, several runs at once when asked, results.csv after each run, and --resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "experiment/results.hpp"
#include "experiment/variants.hpp"

namespace cnnc::experiment {

struct Options {
  std::vector<uint64_t> seeds;    // empty: each file's own seed
  std::optional<int64_t> epochs;  // else each file's
  int32_t limit = 0;              // the first N training and test images; 0: all
  std::string data, engine = "specialized";
  int threads = 1;  // in all; each of the jobs runs gets max(1, threads / jobs)
  int jobs = 1;     // runs at once
  std::filesystem::path out;
  bool resume = false;  // keep the finished runs of results.csv in out, run the rest
  bool viz = false;     // write cnnc viz's pictures of each trained run into its viz/
};

// What the experiment did: every run of the plan in plan order (kept ones included), how many
// of them it trained now, and the variants it skipped because they do not check.
struct Outcome {
  std::vector<Run> runs;
  int trained = 0;
  std::vector<const Variant*> skipped;
};

// Threads each run uses.
int threads_per_run(const Options& options);

// Runs the plan: variants (those without a graph are skipped and reported) times seeds. out
// must not hold a results.csv unless resume is set, and then only runs of this plan. Each run
// writes history.csv and checkpoint.bin in out/<variant dir>/seed-<S>/; results.csv is
// rewritten after each. `say` gets each line of progress (engines, runs as they finish). Throws
// std::runtime_error for the user's errors (data, a results.csv that is not this plan's).
Outcome run(const std::vector<Variant>& variants, const Options& options,
            const std::function<void(const std::string&)>& say);

}  // namespace cnnc::experiment
