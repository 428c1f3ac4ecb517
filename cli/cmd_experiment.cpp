// cnnc compare A.cnn B.cnn ... and cnnc sweep FILE --set NAME=V1,V2 ...: models or variants
// trained side by side (experiment/), then the table, results.csv, chart.png and report.html.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "codegen/compile/build.hpp"
#include "dsl/diagnostics.hpp"
#include "engine/training.hpp"
#include "experiment/experiment.hpp"
#include "experiment/report.hpp"

namespace cnnc::cli {

namespace {

struct ExperimentArgs {
  std::vector<std::string> files, sets;
  bool grid = false, json = false;
  std::vector<int64_t> seeds;
  std::optional<int64_t> epochs;
  experiment::Options options;
  dsl::Limits limits;
};

// The command as the user would type it again, for report.html.
std::string command_line(const std::string& verb, const ExperimentArgs& a) {
  std::string c = "cnnc " + verb;
  for (const std::string& f : a.files) c += " " + f;
  for (const std::string& s : a.sets) c += " --set " + s;
  if (a.grid) c += " --grid";
  if (a.epochs) c += fmt::format(" --epochs {}", *a.epochs);
  if (!a.seeds.empty()) c += fmt::format(" --seeds {}", fmt::join(a.seeds, ","));
  if (a.options.limit) c += fmt::format(" --limit {}", a.options.limit);
  c += fmt::format(" --jobs {} --threads {} --engine {} --data {} --out {}", a.options.jobs,
                   a.options.threads, a.options.engine, a.options.data, a.options.out.string());
  if (a.options.viz) c += " --viz";
  return c;
}

int run_experiment(const std::string& verb, ExperimentArgs& a) {
  std::vector<experiment::Variant> variants;
  std::string out = "runs/compare";
  if (verb == "compare") {
    for (const std::string& f : a.files) {
      std::optional<dsl::Graph> g = load_model(f, a.limits, a.json);
      if (!g) return exit_user_error;
      variants.push_back({f, "", f, g->source_text, std::move(*g), ""});
    }
  } else {
    std::optional<dsl::Graph> base = load_model(a.files.at(0), a.limits, a.json);
    if (!base) return exit_user_error;
    out = "runs/sweep-" + base->name;
    std::vector<experiment::SetFlag> flags;
    for (const std::string& s : a.sets) flags.push_back(experiment::parse_set(s));
    for (const experiment::SetFlag& f : flags)
      if (f.name == "epochs" && a.epochs)
        throw std::runtime_error("--epochs would override --set epochs=...: give one of them");
    variants = experiment::make_variants(*base, flags, a.grid, a.limits);
  }
  experiment::Options& o = a.options;
  for (int64_t s : a.seeds) {
    if (std::find(o.seeds.begin(), o.seeds.end(), static_cast<uint64_t>(s)) != o.seeds.end())
      throw std::runtime_error(fmt::format("--seeds: {} is given twice", s));
    o.seeds.push_back(static_cast<uint64_t>(s));
  }
  o.epochs = a.epochs;
  if (o.out.empty()) o.out = out;
  for (const experiment::Variant& v : variants)
    if (!v.graph)
      fmt::print(stderr, "cnnc: {} does not check and is skipped:\n{}", v.name, v.diagnostic);
  auto say = [](const std::string& line) {
    fmt::print("{}\n", line);
    std::fflush(stdout);
  };
  experiment::Outcome outcome = experiment::run(variants, o, say);
  std::vector<experiment::Row> rows = experiment::summarize(outcome.runs);
  if (!rows.empty()) {
    experiment::write_chart(o.out / "chart.png", rows);
    experiment::write_html(o.out, command_line(verb, a), outcome, rows);
  }
  fmt::print("\n{}", experiment::table(rows));
  for (const experiment::Variant* v : outcome.skipped)
    fmt::print("skipped {}: it does not check (the diagnostic is above)\n", v->name);
  fmt::print("{} run{} ({} trained now, {} thread{} each); results in {}, {}, {}\n",
             outcome.runs.size(), outcome.runs.size() == 1 ? "" : "s", outcome.trained,
             experiment::threads_per_run(o), experiment::threads_per_run(o) == 1 ? "" : "s",
             (o.out / "results.csv").string(), (o.out / "chart.png").string(),
             (o.out / "report.html").string());
  if (!a.json) return exit_ok;
  nlohmann::ordered_json runs = nlohmann::ordered_json::array(),
                         skipped = nlohmann::ordered_json::array();
  for (const experiment::Run& r : outcome.runs) runs.push_back(experiment::run_json(r));
  for (const experiment::Variant* v : outcome.skipped)
    skipped.push_back({{"variant", v->name}, {"diagnostic", v->diagnostic}});
  fmt::print("{}\n", dsl::json_line({{"runs", runs}, {"skipped", skipped}}));
  return exit_ok;
}

// The options compare and sweep share.
void add_common(CLI::App* cmd, ExperimentArgs& a) {
  experiment::Options& o = a.options;
  o.data = engine::default_data_dir();
  o.threads = engine::default_threads();
  cmd->add_option("--epochs", a.epochs, "Override every model's epochs")
      ->check(within(int64_t{1}, int64_t{100000}));
  cmd->add_option("--seeds", a.seeds,
                  "Seeds to train each model with, e.g. 1,2,3 (default: the file's)")
      ->delimiter(',')
      ->check(within(int64_t{0}, INT64_MAX));
  cmd->add_option("--limit", o.limit, "Use only the first N training and test images")
      ->check(within(int64_t{1}, int64_t{INT32_MAX}));
  cmd->add_option("--data", o.data, "Directory with the four IDX files")->capture_default_str();
  cmd->add_option("--engine", o.engine, "specialized (generated for each model) or generic")
      ->capture_default_str()
      ->check(CLI::IsMember({"specialized", "generic"}));
  cmd->add_option("--threads", o.threads, "Threads in all, split among the runs at once")
      ->capture_default_str()
      ->check(within(1, 256));
  cmd->add_option("--jobs", o.jobs, "Runs at once, each on threads/jobs threads")
      ->capture_default_str()
      ->check(within(1, 256));
  cmd->add_option("--out", o.out, "Where results.csv, chart.png, report.html and the runs go");
  cmd->add_flag("--resume", o.resume,
                "Keep the finished runs of --out's results.csv and run the rest");
  cmd->add_flag("--viz", o.viz, "Write cnnc viz's pictures of each run into its viz/");
  cmd->add_flag("--json", a.json, "End with one JSON line of every run");
  add_limit_flags(*cmd, a.limits);
}

// The user's errors (data, results.csv, --set) exit 1; generated code that does not build is
// cnnc's bug, as the message says.
}  // namespace

void register_compare(CLI::App& app, int& status) {
  auto a = std::make_shared<ExperimentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "Train several models with the same seeds and data, and compare them");
  cmd->add_option("files", a->files, ".cnn files")->required();
  add_common(cmd, *a);
  cmd->callback(
      [a, &status] { status = user_errors([&] { return run_experiment("compare", *a); }); });
}

void register_sweep(CLI::App& app, int& status) {
  auto a = std::make_shared<ExperimentArgs>();
  a->files.resize(1);
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Train variants of one model, one setting changed at a time (or every combination)");
  cmd->add_option("file", a->files[0], ".cnn file")->required();
  cmd->add_option("--set", a->sets,
                  "NAME=V1,V2,...: a layer setting by the name cnnc summary prints "
                  "(conv1.filters=8,16) or a training setting (lr=0.01,0.1, augment.shift=0,2)")
      ->required()
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_flag("--grid", a->grid, "Every combination of the --set values");
  add_common(cmd, *a);
  cmd->callback(
      [a, &status] { status = user_errors([&] { return run_experiment("sweep", *a); }); });
}

}  // namespace cnnc::cli
