// Running an experiment: the plan of runs, results.csv kept or refused, data loaded once per
// input shape, one engine per variant (compiled once: every seed runs on it), then the runs,
// `jobs` at a time, each on its own thread pool.
#include "experiment/experiment.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "codegen/sha256.hpp"
#include "data/batches.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/atomic_file.hpp"
#include "train/params.hpp"
#include "train/trainer.hpp"
#include "viz/report.hpp"

namespace cnnc::experiment {

namespace fs = std::filesystem;

namespace {

// A directory name for a variant: its name with what a shell would trip over replaced.
std::string dir_name(const Variant& v) {
  std::string s = v.name.empty() ? v.graph->name : v.name;
  for (char& c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '=' || c == '-' || c == '_'))
      c = '_';
  return s;
}

// A run of the plan: its row, the variant it trains, whether results.csv already had it.
struct Planned {
  Run row;
  const Variant* variant = nullptr;
  bool done = false;
};

std::string percent(double x) {
  return fmt::format("{:.2f}%", 100 * x);
}

// The data a graph trains on, loaded once for every graph with the same input, classes and
// validation split.
using DataKey = std::tuple<int64_t, int64_t, int64_t, double>;
DataKey data_key(const dsl::Graph& g) {
  return {g.input.h, g.input.w, g.output().size(), g.training.validation};
}

}  // namespace

int threads_per_run(const Options& o) {
  return std::max(1, o.threads / std::max(1, o.jobs));
}

Outcome run(const std::vector<Variant>& variants, const Options& o,
            const std::function<void(const std::string&)>& say) {
  const int threads = threads_per_run(o);
  Outcome outcome;
  std::vector<Planned> plan;
  std::map<std::string, int> dirs_taken;
  for (const Variant& v : variants) {
    if (!v.graph) {
      outcome.skipped.push_back(&v);
      continue;
    }
    const dsl::Graph& g = *v.graph;
    std::string dir = dir_name(v);
    if (int n = ++dirs_taken[dir]; n > 1) dir += fmt::format("-{}", n);
    std::vector<uint64_t> seeds =
        o.seeds.empty() ? std::vector<uint64_t>{g.training.seed} : o.seeds;
    for (uint64_t seed : seeds) {
      Run r;
      r.model = g.name, r.variant = v.name, r.seed = seed, r.file = v.file;
      r.digest = codegen::sha256_hex(v.text).substr(0, 16);
      r.epochs = o.epochs.value_or(g.training.epochs), r.limit = o.limit;
      r.data = o.data, r.engine = o.engine, r.threads = threads;
      r.params = g.param_count, r.training_flops = g.training_flops;
      r.dir = fmt::format("{}/seed-{}", dir, seed);
      plan.push_back({std::move(r), &v, false});
    }
  }

  const fs::path csv = o.out / "results.csv";
  if (fs::exists(csv)) {
    if (!o.resume)
      throw std::runtime_error(fmt::format(
          "{} exists: --resume continues that experiment, or choose another --out (or delete "
          "it) to start afresh",
          csv.string()));
    for (const Run& kept : read_results(csv)) {
      auto it = std::find_if(plan.begin(), plan.end(),
                             [&](const Planned& p) { return p.row.same_run(kept); });
      if (it == plan.end())
        throw std::runtime_error(fmt::format(
            "{} holds a run this command would not make ({} seed {}, {} epochs, limit {}, "
            "{} engine, {} threads, .cnn digest {}): --resume continues the same experiment "
            "only; choose another --out for a new one",
            csv.string(), kept.label(), kept.seed, kept.epochs, kept.limit, kept.engine,
            kept.threads, kept.digest));
      it->row = kept;
      it->done = true;
    }
  }

  // Data first: a missing data set is reported before anything is written or compiled.
  std::map<DataKey, rt::Mnist> data;
  for (const Planned& p : plan) {
    const dsl::Graph& g = *p.variant->graph;
    if (!p.done && !data.count(data_key(g)))
      data.emplace(data_key(g), engine::load_data(g, o.data, g.training.validation, o.limit));
  }
  fs::create_directories(o.out);
  std::map<const Variant*, std::unique_ptr<engine::Engine>> engines;
  for (const Planned& p : plan) {
    if (p.done || engines.count(p.variant)) continue;
    const dsl::Graph& g = *p.variant->graph;
    if (!p.variant->name.empty()) {
      fs::create_directories(o.out / fs::path(p.row.dir).parent_path());
      rt::write_file_atomically(o.out / fs::path(p.row.dir).parent_path() / "model.cnn",
                                p.variant->text);
    }
    engines[p.variant] =
        engine::make_engine(g, o.engine, engine::slice_size(g.training.batch, threads));
    say(fmt::format("{}: {}", p.row.label(), engines[p.variant]->description()));
  }

  std::mutex mutex;  // guards plan's rows, results.csv and say
  auto finished_rows = [&] {
    std::vector<Run> rows;
    for (const Planned& p : plan)
      if (p.done) rows.push_back(p.row);
    return rows;
  };
  std::vector<Planned*> todo;
  for (Planned& p : plan)
    if (!p.done) todo.push_back(&p);
  if (todo.size() < plan.size())
    say(fmt::format("{} of {} runs are in {} already; training the other {}",
                    plan.size() - todo.size(), plan.size(), csv.string(), todo.size()));

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  auto worker = [&] {
    try {
      for (size_t i; !failed && (i = next++) < todo.size();) {
        Planned& p = *todo[i];
        dsl::Graph g = *p.variant->graph;
        g.training.seed = p.row.seed;
        g.training.epochs = p.row.epochs;
        const rt::Mnist& d = data.at(data_key(g));
        const cnnc_model& m = engines.at(p.variant)->model();
        rt::TrainOptions to = engine::train_options(g.training);
        to.out_dir = o.out / p.row.dir;
        fs::create_directories(to.out_dir);
        std::vector<float> params = engine::initial_params(g, m, p.row.seed);
        rt::ThreadPool pool(threads);
        rt::TrainResult r = rt::train(m, params, d, to, pool);
        rt::EvalResult last =
            r.history.empty() ? rt::evaluate(m, params, d.test, pool) : r.history.back().test;
        Run& row = p.row;
        row.status = r.diverged ? "diverged" : "finished";
        row.test_accuracy = last.accuracy, row.test_loss = last.loss;
        row.train_seconds = r.train_seconds;
        row.train_images_per_second = r.images / std::max(r.train_seconds, 1e-9);
        row.weights_digest = rt::weights_digest(params);
        if (o.viz) {
          std::vector<float> image(static_cast<size_t>(g.input.h * g.input.w));
          rt::pixels_to_floats(d.test.image(0), image.size(), image.data());
          viz::write_report(g, params, image,
                            fmt::format("test image 0 (label {})", d.test.labels[0]),
                            to.out_dir / "viz", {to.out_dir / "history.csv", &d.test});
        }
        std::lock_guard lock(mutex);
        p.done = true;
        write_results(csv, finished_rows());
        ++outcome.trained;
        say(fmt::format(
            "[{}/{}] {} seed {}: test accuracy {}, loss {:.4f}; {:.1f} s, {:.0f} "
            "images/s{}",
            outcome.trained, todo.size(), row.label(), row.seed, percent(row.test_accuracy),
            row.test_loss, row.train_seconds, row.train_images_per_second,
            r.diverged ? fmt::format(" (diverged: {})", r.divergence) : ""));
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!failed.exchange(true)) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  for (int j = 1; j < std::min<int>(o.jobs, static_cast<int>(todo.size())); ++j)
    workers.emplace_back(worker);
  worker();
  for (std::thread& t : workers) t.join();
  if (error) std::rethrow_exception(error);
  for (const Planned& p : plan) outcome.runs.push_back(p.row);
  return outcome;
}

}  // namespace cnnc::experiment
