// The training block of a .cnn file as runtime options, initial parameters and data.
#include "engine/training.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "train/params.hpp"

namespace cnnc::engine {

namespace {

rt::LrSchedule schedule_of(const dsl::Training& t) {
  rt::LrSchedule s;
  s.kind = t.schedule.kind == dsl::ScheduleKind::step       ? rt::LrSchedule::Kind::step
           : t.schedule.kind == dsl::ScheduleKind::cosine   ? rt::LrSchedule::Kind::cosine
           : t.schedule.kind == dsl::ScheduleKind::onecycle ? rt::LrSchedule::Kind::onecycle
                                                            : rt::LrSchedule::Kind::constant;
  s.warmup = t.schedule.warmup;
  s.every = static_cast<int32_t>(t.schedule.every);
  s.gamma = static_cast<float>(t.schedule.gamma);
  return s;
}

// Keeps the first n samples: quick runs and tests on a slice of the data.
void keep_first(rt::LabeledImages& d, int32_t n) {
  if (n <= 0 || n >= d.count) return;
  d.count = n;
  d.pixels.resize(static_cast<size_t>(n) * d.rows * d.cols);
  d.labels.resize(static_cast<size_t>(n));
}

}  // namespace

cnnc_optimizer optimizer_of(const dsl::Training& t) {
  cnnc_optimizer o{};
  o.kind = t.optimizer.kind == dsl::OptimizerKind::adam ? CNNC_ADAM : CNNC_SGD;
  o.lr = static_cast<float>(t.optimizer.lr);
  o.momentum = static_cast<float>(t.optimizer.momentum);
  o.beta1 = static_cast<float>(t.optimizer.beta1);
  o.beta2 = static_cast<float>(t.optimizer.beta2);
  o.eps = static_cast<float>(t.optimizer.eps);
  o.weight_decay = static_cast<float>(t.optimizer.weight_decay);
  return o;
}

rt::TrainOptions train_options(const dsl::Training& t) {
  rt::TrainOptions o;
  o.epochs = static_cast<int32_t>(t.epochs);
  o.batch = static_cast<int32_t>(t.batch);
  o.seed = t.seed;
  o.optimizer = optimizer_of(t);
  o.schedule = schedule_of(t);
  o.augment = {static_cast<int32_t>(t.augment.shift), static_cast<float>(t.augment.rotate),
               static_cast<float>(t.augment.scale)};
  return o;
}

std::vector<float> initial_params(const dsl::Graph& graph, const cnnc_model& model, uint64_t seed) {
  std::vector<float> p = rt::initial_params(model, seed);
  for (const dsl::Layer& l : graph.layers) {
    std::copy(l.initial_weights.begin(), l.initial_weights.end(), p.begin() + l.weight_offset);
    std::copy(l.initial_bias.begin(), l.initial_bias.end(), p.begin() + l.bias_offset);
  }
  return p;
}

int default_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int32_t slice_size(int64_t batch, int threads) {
  return static_cast<int32_t>(std::max<int64_t>(1, (batch + threads - 1) / threads));
}

std::string default_data_dir() {
  const char* env = std::getenv("CNNC_DATA");
  return env && *env ? env : "data/mnist";
}

rt::Mnist load_data(const dsl::Graph& g, const std::string& dir, double validation, int32_t limit) {
  if (g.input.c != 1)
    throw std::runtime_error(fmt::format(
        "MNIST-format images have 1 channel, but the model's input is {}", g.input.str()));
  rt::InputSpec spec{static_cast<int32_t>(g.input.h), static_cast<int32_t>(g.input.w), 1,
                     static_cast<int32_t>(g.output().size())};
  rt::Mnist data = rt::load_mnist(dir, spec, 0.0);
  keep_first(data.train, limit);
  keep_first(data.test, limit);
  if (validation > 0) data.validation = rt::split_off_validation(data.train, validation);
  return data;
}

}  // namespace cnnc::engine
