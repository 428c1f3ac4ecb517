// cnnc summary FILE: a Keras-like table of layers, shapes, parameters and FLOPs.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
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
  if (t.schedule.kind == dsl::ScheduleKind::onecycle)
    schedule += fmt::format(" warmup={}", t.schedule.warmup);
  std::string line =
      fmt::format("Training: loss {}, optimizer {}, schedule {}, batch {}, {} epochs, seed {}",
                  dsl::name_of(t.loss), opt, schedule, t.batch, t.epochs, t.seed);
  if (t.validation > 0) line += fmt::format(", validation {}", t.validation);
  if (t.augment.enabled())
    line += fmt::format(", augment shift={} rotate={} scale={}", t.augment.shift, t.augment.rotate,
                        t.augment.scale);
  return line;
}

// "5x5", or "5" for a square.
std::string extent(int64_t h, int64_t w) {
  return h == w ? std::to_string(h) : fmt::format("{}x{}", h, w);
}

void print_table(const dsl::Graph& g) {
  constexpr size_t columns = 7;
  using Row = std::array<std::string, columns>;
  std::vector<Row> rows = {
      {"Layer", "Statement", "Output shape", "Params", "MFLOP", "Receptive field", "Jump"},
      {"input", "", g.input.str(), "0", mflop(0), "1x1", "1"}};
  for (const dsl::Layer& l : g.layers)
    rows.push_back({l.name, l.statement, l.out.str(),
                    dsl::with_thousands(l.params()) + (l.frozen ? " (frozen)" : ""),
                    mflop(l.forward_flops), fmt::format("{}x{}", l.receptive_h, l.receptive_w),
                    extent(l.jump_h, l.jump_w)});
  std::array<size_t, columns> w{};
  for (const Row& r : rows)
    for (size_t i = 0; i < columns; ++i) w[i] = std::max(w[i], r[i].size());
  size_t total = 2 * (columns - 1);
  for (size_t x : w) total += x;
  std::string rule(total, '_'), double_rule(total, '=');
  fmt::print("Model: {} ({})\n{}\n", g.name, g.source_path, rule);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}  {:>{}}  {:>{}}\n", r[0], w[0], r[1], w[1],
               r[2], w[2], r[3], w[3], r[4], w[4], r[5], w[5], r[6], w[6]);
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
  fmt::print(
      "Receptive field: the input pixels one output depends on (padding included, so it may "
      "exceed the input); jump: input pixels between neighbouring outputs (the strides so far, "
      "multiplied)\n");
  fmt::print("{}\n", training_line(g.training));
}

void print_json(const dsl::Graph& g) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const dsl::Layer& l : g.layers)
    layers.push_back({{"name", l.name},
                      {"kind", dsl::name_of(l.kind)},
                      {"statement", l.statement},
                      {"line", l.line},
                      {"input", l.in.str()},
                      {"output", l.out.str()},
                      {"params", l.params()},
                      {"trainable", l.trainable()},
                      {"forward_flops", l.forward_flops},
                      {"backward_data_flops", l.needs_input_grad ? l.backward_data_flops : 0},
                      {"backward_weights_flops", l.trainable() ? l.backward_weights_flops : 0},
                      {"training_flops", l.training_flops},
                      {"receptive_field", {l.receptive_h, l.receptive_w}},
                      {"jump", {l.jump_h, l.jump_w}}});
  fmt::print("{}\n", dsl::json_line({{"model", g.name},
                                     {"source", g.source_path},
                                     {"input", g.input.str()},
                                     {"output", g.output().str()},
                                     {"params", g.param_count},
                                     {"trainable_params", g.trainable_params},
                                     {"forward_flops", g.forward_flops},
                                     {"training_flops", g.training_flops},
                                     {"activation_bytes", g.activation_bytes},
                                     {"layers", layers}}));
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
