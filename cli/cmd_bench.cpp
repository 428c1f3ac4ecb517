// cnnc bench FILE: the command line of the benchmark harness in bench/ (throughput of each
// engine, interleaved; or with --to-accuracy, the training seconds to a test accuracy).
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "bench/pytorch_peer.hpp"
#include "bench/throughput.hpp"
#include "bench/to_accuracy.hpp"
#include "cli/commands.hpp"
#include "engine/training.hpp"

namespace cnnc::cli {

namespace {

struct BenchArgs {
  std::string file;
  std::optional<std::string> engines;  // unset: the default list, which may shrink
  std::string precision;               // empty: the file's
  int threads = engine::default_threads();
  std::optional<int64_t> batch;
  int reps = 5;
  double seconds = 1.0;
  std::optional<double> peak_gflops;  // unset: measured
  bool json = false;
  std::string python = bench::default_python();
  // --to-accuracy
  std::optional<double> to_accuracy;
  std::string seeds, data = engine::default_data_dir();
  int eval_every = 100;
  std::optional<int64_t> epochs;
  dsl::Limits limits;
};

// "a,b,c" -> its items, blanks trimmed; throws std::runtime_error naming the flag on an empty
// item. By hand rather than with getline, which drops a trailing empty item ("generic,").
std::vector<std::string> split_list(const std::string& flag, const std::string& list) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string item = list.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty())
      throw std::runtime_error(fmt::format("{} '{}' has an empty item", flag, list));
    out.push_back(item);
    if (comma == list.size()) return out;
    start = comma + 1;
  }
}

std::vector<std::string> engines_of(const std::string& list) {
  std::vector<std::string> out = split_list("--engines", list);
  for (const std::string& e : out)
    if (e != "generic" && e != "specialized" && e != "specialized-bf16" &&
        e != "specialized-fp32" && e != "onednn" && e != "pytorch" && e != "pytorch-bf16" &&
        e != "pytorch-fp32")
      throw std::runtime_error(
          fmt::format("unknown engine '{}'; expected generic, specialized, specialized-bf16, "
                      "specialized-fp32, onednn, pytorch, pytorch-bf16 or pytorch-fp32",
                      e));
  return out;
}

std::vector<uint64_t> seeds_of(const std::string& list) {
  std::vector<uint64_t> out;
  if (list.empty()) return out;
  for (const std::string& item : split_list("--seeds", list)) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (*end != '\0' || item[0] == '-' || errno == ERANGE)
      throw std::runtime_error(
          fmt::format("--seeds '{}': '{}' is not a seed (0 to 18446744073709551615)", list, item));
    out.push_back(v);
  }
  return out;
}

int run_bench(const BenchArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.file, a.limits);
  if (!graph) return exit_user_error;
  apply_precision(*graph, a.precision);
  const dsl::Graph& g = *graph;
  if (a.to_accuracy) {
    bench::AccuracyOptions o;
    o.target = *a.to_accuracy;
    o.engines = engines_of(a.engines.value_or("specialized"));
    o.seeds = seeds_of(a.seeds);
    o.data = a.data;
    o.eval_every = a.eval_every;
    o.epochs = a.epochs.value_or(g.training.epochs);
    o.threads = a.threads;
    o.python = a.python;
    o.json = a.json;
    return bench::run_to_accuracy(g, o);
  }
  bench::ThroughputOptions o;
  o.engines = engines_of(a.engines.value_or("specialized,generic"));
  o.threads = a.threads;
  o.batch = a.batch;
  o.reps = a.reps;
  o.seconds = a.seconds;
  o.peak_gflops = a.peak_gflops;
  o.python = a.python;
  o.json = a.json;
  bench::run_throughput(g, o);
  return exit_ok;
}

}  // namespace

void register_bench(CLI::App& app, int& status) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Training and inference images/s of each engine on random MNIST-shaped data, interleaved; "
      "or the training seconds to a test accuracy (--to-accuracy)");
  cmd->add_option("file", a->file, ".cnn file")->required();
  add_precision_flag(*cmd, a->precision);
  cmd->add_option("--engines", a->engines,
                  "Comma-separated engines: generic, specialized, onednn, pytorch (at the "
                  "file's precision; specialized-bf16, specialized-fp32, pytorch-bf16, "
                  "pytorch-fp32 at that one); the first is "
                  "the reference of the ratios (default specialized,generic; with --to-accuracy "
                  "specialized)");
  cmd->add_option("--threads", a->threads, "Threads that split each batch")
      ->capture_default_str()
      ->check(within(1, 256));
  cmd->add_option("--batch", a->batch, "Batch size (default the file's)")
      ->check(within(int64_t{1}, int64_t{65536}));
  cmd->add_option("--reps", a->reps, "Repetitions; each times every engine in turn")
      ->capture_default_str()
      ->check(within(1, 1000));
  cmd->add_option("--seconds", a->seconds, "Seconds per engine, phase and repetition")
      ->capture_default_str()
      ->check(within(0.001, 3600.0));
  cmd->add_option("--peak-gflops", a->peak_gflops,
                  "FP32 peak of 2 cores in GFLOP/s, scaled by threads/2 (default: measured with "
                  "FMA chains on the bench's threads)")
      ->check(within(1e-3, 1e9));
  cmd->add_option("--python", a->python,
                  "Interpreter for the pytorch engine (default $CNNC_PYTHON or /usr/bin/python3)")
      ->capture_default_str();
  cmd->add_option("--to-accuracy", a->to_accuracy,
                  "Train on MNIST until the test accuracy reaches this fraction; report the "
                  "training seconds per engine and seed")
      ->check(within(0.0, 1.0));
  cmd->add_option("--seeds", a->seeds,
                  "With --to-accuracy: comma-separated seeds (default the file's)");
  cmd->add_option("--data", a->data,
                  "With --to-accuracy: directory with the four MNIST IDX files (default "
                  "$CNNC_DATA or data/mnist)");
  cmd->add_option("--eval-every", a->eval_every,
                  "With --to-accuracy: steps between test evaluations, 0 for once per epoch "
                  "(evaluation time is not training time)")
      ->capture_default_str()
      ->check(within(0, 1000000));
  cmd->add_option("--epochs", a->epochs,
                  "With --to-accuracy: give up after this many epochs (default the file's; the "
                  "schedule always spans the file's)")
      ->check(within(int64_t{1}, int64_t{1000}));
  cmd->add_flag("--json", a->json, "End with one JSON object of the results");
  add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    // Unknown or unavailable engines are the user's to fix, as in cnnc train.
    try {
      status = run_bench(*a);
    } catch (const std::runtime_error& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    }
  });
}

}  // namespace cnnc::cli
