// cnnc summary FILE: a Keras-like table of layers, shapes, parameters and FLOPs.
#include <fmt/format.h>

#include <algorithm>

#include "commands.hpp"
#include "dsl/diagnostics.hpp"

namespace cnnc::cli {

namespace {

std::string mflop(int64_t flops) {
  return fmt::format("{:.3f}", static_cast<double>(flops) / 1e6);
}

std::string memory(int64_t bytes) {
  return bytes < (1 << 20) ? fmt::format("{:.1f} KiB", bytes / 1024.0)
                           : fmt::format("{:.1f} MiB", bytes / 1048576.0);
}

std::string training_line(const dsl::Training& t) {
  const dsl::Optimizer& o = t.optimizer;
  std::string opt =
      o.kind == dsl::OptimizerKind::sgd
          ? fmt::format("sgd lr={} momentum={}", o.lr, o.momentum)
          : fmt::format("adam lr={} beta1={} beta2={} eps={}", o.lr, o.beta1, o.beta2, o.eps);
  if (o.weight_decay > 0) opt += fmt::format(" weight_decay={}", o.weight_decay);
  std::string schedule = dsl::name_of(t.schedule.kind);
  if (t.schedule.kind == dsl::ScheduleKind::step)
    schedule += fmt::format(" every={} gamma={}", t.schedule.every, t.schedule.gamma);
  std::string line =
      fmt::format("Training: loss {}, optimizer {}, schedule {}, batch {}, {} epochs, seed {}",
                  dsl::name_of(t.loss), opt, schedule, t.batch, t.epochs, t.seed);
  if (t.validation > 0) line += fmt::format(", validation {}", t.validation);
  if (t.augment.enabled())
    line += fmt::format(", augment shift={} rotate={} scale={}", t.augment.shift, t.augment.rotate,
                        t.augment.scale);
  return line;
}

void print_table(const dsl::Graph& g) {
  struct Row {
    std::string name, statement, shape, params, flops;
  };
  std::vector<Row> rows = {{"Layer", "Statement", "Output shape", "Params", "MFLOP"},
                           {"input", "", g.input.str(), "0", mflop(0)}};
  for (const dsl::Layer& l : g.layers)
    rows.push_back({l.name, l.statement, l.out.str(),
                    dsl::with_thousands(l.params()) + (l.frozen ? " (frozen)" : ""),
                    mflop(l.forward_flops)});
  size_t w[5] = {};
  for (const Row& r : rows) {
    w[0] = std::max(w[0], r.name.size());
    w[1] = std::max(w[1], r.statement.size());
    w[2] = std::max(w[2], r.shape.size());
    w[3] = std::max(w[3], r.params.size());
    w[4] = std::max(w[4], r.flops.size());
  }
  size_t total = w[0] + w[1] + w[2] + w[3] + w[4] + 8;
  std::string rule(total, '_'), double_rule(total, '=');
  fmt::print("Model: {} ({})\n{}\n", g.name, g.source_path, rule);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}\n", r.name, w[0], r.statement, w[1], r.shape,
               w[2], r.params, w[3], r.flops, w[4]);
    if (i == 0) fmt::print("{}\n", double_rule);
  }
  fmt::print("{}\n", double_rule);
  fmt::print("Total params: {}\nTrainable params: {}\nFrozen params: {}\n",
             dsl::with_thousands(g.param_count), dsl::with_thousands(g.trainable_params),
             dsl::with_thousands(g.param_count - g.trainable_params));
  fmt::print("Forward: {} MFLOP per image; training step: {} MFLOP per image\n",
             mflop(g.forward_flops), mflop(g.training_flops));
  fmt::print("Activation memory: {} per image (float32, input included)\n",
             memory(g.activation_bytes));
  fmt::print("{}\n", training_line(g.training));
}

void print_json(const dsl::Graph& g) {
  std::string layers;
  for (const dsl::Layer& l : g.layers) {
    if (!layers.empty()) layers += ",";
    layers += fmt::format(
        R"({{"name":"{}","kind":"{}","statement":"{}","line":{},"input":"{}","output":"{}","params":{},"trainable":{},"forward_flops":{},"training_flops":{}}})",
        l.name, dsl::name_of(l.kind), dsl::json_escape(l.statement), l.line, l.in.str(),
        l.out.str(), l.params(), l.trainable(), l.forward_flops, l.training_flops);
  }
  fmt::print(
      R"({{"model":"{}","source":"{}","input":"{}","output":"{}","params":{},"trainable_params":{},"forward_flops":{},"training_flops":{},"activation_bytes":{},"layers":[{}]}})"
      "\n",
      g.name, dsl::json_escape(g.source_path), g.input.str(), g.output().str(), g.param_count,
      g.trainable_params, g.forward_flops, g.training_flops, g.activation_bytes, layers);
}

}  // namespace

void register_summary(CLI::App& app, int& status) {
  struct Options {
    std::string file;
    dsl::Limits limits;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("summary", "Print a model's layers, output shapes, parameters and FLOPs");
  cmd->add_option("file", opt->file, ".cnn file")->required();
  cmd->add_flag("--json", opt->json, "Print the summary as one JSON object");
  add_limit_flags(*cmd, opt->limits);
  cmd->callback([opt, &status] {
    std::optional<dsl::Graph> g = load_model(opt->file, opt->limits, opt->json);
    if (!g) {
      status = exit_user_error;
      return;
    }
    opt->json ? print_json(*g) : print_table(*g);
    status = exit_ok;
  });
}

}  // namespace cnnc::cli
