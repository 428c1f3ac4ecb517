// The training loop. A batch of B samples is cut into one slice per thread (sizes differ by at
// most one); each thread runs the model's train entry point on its slice into its own gradient
// buffer, and the buffers are summed in thread order, so the bits depend on the seed and the
// thread count only.
#include "trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numbers>
#include <stdexcept>

#include "checkpoint.hpp"
#include "data/batches.hpp"
#include "params.hpp"

namespace cnnc::rt {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Zeroed, 64-byte aligned scratch as the ABI's workspace requires.
struct Aligned {
  explicit Aligned(size_t bytes)
      : p(static_cast<std::byte*>(
              std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64))),
          &std::free) {
    if (!p) throw std::bad_alloc();
  }
  std::unique_ptr<std::byte, decltype(&std::free)> p;
};

struct Slice {
  int32_t offset, n;
};

// n samples over t threads, no slice above max: [ceil, ..., floor], empty slices dropped.
std::vector<Slice> slices(int32_t n, int32_t threads, int32_t max) {
  std::vector<Slice> out;
  int32_t parts = std::max(threads, (n + max - 1) / max);
  for (int32_t i = 0, offset = 0; i < parts; ++i) {
    int32_t size = n / parts + (i < n % parts ? 1 : 0);
    if (size > 0) out.push_back({offset, size});
    offset += size;
  }
  return out;
}

bool ends_in_softmax(const cnnc_model& m) {
  return m.layers[m.layer_count - 1].activation == CNNC_SOFTMAX;
}

int32_t argmax(const float* y, int32_t n) {
  return static_cast<int32_t>(std::max_element(y, y + n) - y);
}

// The loss of one sample from its output, as the engines define it (cnnc_abi.h).
double sample_loss(const cnnc_model& m, const float* y, int32_t label) {
  int32_t k = m.output_size;
  if (m.loss == CNNC_MSE) {
    double s = 0;
    for (int32_t i = 0; i < k; ++i) s += (y[i] - (i == label)) * (y[i] - (i == label));
    return s / k;
  }
  if (ends_in_softmax(m)) return -std::log(std::max(static_cast<double>(y[label]), 1e-30));
  double top = *std::max_element(y, y + k), sum = 0;
  for (int32_t i = 0; i < k; ++i) sum += std::exp(y[i] - top);
  return top + std::log(sum) - y[label];
}

// A workspace per thread and a gradient buffer per slice of a batch of `batch` samples.
struct Workers {
  Workers(const cnnc_model& m, int threads, int32_t batch) {
    for (int t = 0; t < threads; ++t)
      workspace.emplace_back(static_cast<size_t>(m.workspace_bytes));
    size_t buffers = slices(batch, threads, m.max_batch).size();
    for (size_t s = 0; s < buffers; ++s)
      grads.emplace_back(static_cast<size_t>(m.param_count), 0.0f);
  }
  std::vector<Aligned> workspace;
  std::vector<std::vector<float>> grads;
};

// Runs f(slice, thread) for every slice; thread t takes slices t, t + threads, ...
template <class F>
void for_each_slice(ThreadPool& pool, const std::vector<Slice>& parts, F&& f) {
  pool.run([&](int t) {
    for (size_t s = static_cast<size_t>(t); s < parts.size(); s += static_cast<size_t>(pool.size()))
      f(s, t);
  });
}

// The fields of a pass that forward and train share: a slice of the prepared batch.
cnnc_pass slice_pass(const cnnc_model& m, const std::vector<float>& params,
                     const std::vector<float>& images, std::vector<float>& outputs, Slice slice,
                     const Aligned& workspace) {
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input =
      images.data() + static_cast<int64_t>(slice.offset) * m.input_h * m.input_w * m.input_c;
  pass.output = outputs.data() + static_cast<int64_t>(slice.offset) * m.output_size;
  pass.workspace = workspace.p.get();
  pass.n = slice.n;
  return pass;
}

void write_history_header(const std::filesystem::path& path) {
  std::ofstream(path, std::ios::trunc) << "epoch,lr,train_loss,train_accuracy,validation_loss,"
                                          "validation_accuracy,test_loss,test_accuracy,seconds,"
                                          "images_per_second\n";
}

void append_history(const std::filesystem::path& path, const EpochRecord& r) {
  std::ofstream f(path, std::ios::app);
  auto opt = [](const EvalResult& e, double v) {
    return e.count ? fmt::format("{:.6f}", v) : std::string();
  };
  f << fmt::format("{},{:.6g},{:.6f},{:.6f},{},{},{},{},{:.3f},{:.1f}\n", r.epoch, r.lr,
                   r.train_loss, r.train_accuracy, opt(r.validation, r.validation.loss),
                   opt(r.validation, r.validation.accuracy), opt(r.test, r.test.loss),
                   opt(r.test, r.test.accuracy), r.seconds, r.images_per_second);
}

// The first layer whose gradient holds a NaN or an infinity, or "" when all are finite.
std::string non_finite_layer(const cnnc_model& m, const std::vector<float>& g) {
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    auto bad = [&](int64_t off, int64_t n) {
      return std::any_of(g.begin() + off, g.begin() + off + n,
                         [](float x) { return !std::isfinite(x); });
    };
    if (bad(l.weight_offset, l.weight_count) || bad(l.bias_offset, l.bias_count)) return l.name;
  }
  return {};
}

}  // namespace

float learning_rate(const LrSchedule& s, float base, int32_t epoch, int32_t epochs) {
  switch (s.kind) {
    case LrSchedule::Kind::constant: return base;
    case LrSchedule::Kind::step:
      return base * std::pow(s.gamma, static_cast<float>(epoch / std::max(1, s.every)));
    case LrSchedule::Kind::cosine:
      return static_cast<float>(0.5 * base *
                                (1 + std::cos(std::numbers::pi * epoch / std::max(1, epochs))));
  }
  return base;
}

EvalResult evaluate(const cnnc_model& m, const std::vector<float>& params,
                    const LabeledImages& data, ThreadPool& pool) {
  EvalResult r;
  r.count = data.count;
  r.confusion.assign(static_cast<size_t>(m.output_size) * m.output_size, 0);
  if (data.count == 0) return r;
  int32_t chunk = m.max_batch * pool.size();
  int64_t sample_size = static_cast<int64_t>(m.input_h) * m.input_w * m.input_c;
  std::vector<float> images(static_cast<size_t>(chunk * sample_size)),
      outputs(static_cast<size_t>(chunk) * m.output_size);
  std::vector<int32_t> labels(static_cast<size_t>(chunk)), indices(static_cast<size_t>(chunk));
  Workers w(m, pool.size(), 0);
  double loss = 0;
  int64_t correct = 0;
  for (int32_t start = 0; start < data.count; start += chunk) {
    int32_t n = std::min(chunk, data.count - start);
    for (int32_t i = 0; i < n; ++i) indices[i] = start + i;
    prepare_batch(data, std::span(indices.data(), static_cast<size_t>(n)), images.data(),
                  labels.data());
    std::vector<Slice> parts = slices(n, pool.size(), m.max_batch);
    for_each_slice(pool, parts, [&](size_t s, int t) {
      cnnc_pass pass = slice_pass(m, params, images, outputs, parts[s], w.workspace[t]);
      m.forward(&m, &pass);
    });
    for (int32_t i = 0; i < n; ++i) {
      const float* y = outputs.data() + static_cast<int64_t>(i) * m.output_size;
      int32_t predicted = argmax(y, m.output_size);
      loss += sample_loss(m, y, labels[i]);
      correct += predicted == labels[i];
      ++r.confusion[static_cast<size_t>(labels[i]) * m.output_size + predicted];
    }
  }
  r.loss = loss / data.count;
  r.accuracy = static_cast<double>(correct) / data.count;
  return r;
}

TrainResult train(const cnnc_model& m, std::vector<float>& params, const Mnist& data,
                  const TrainOptions& o, ThreadPool& pool,
                  const std::function<void(const EpochRecord&)>& report) {
  TrainResult result;
  const LabeledImages& train_set = data.train;
  int64_t sample_size = static_cast<int64_t>(m.input_h) * m.input_w * m.input_c;
  std::vector<float> state(static_cast<size_t>(m.param_count) * 2, 0.0f),
      grads(static_cast<size_t>(m.param_count), 0.0f);
  std::vector<float> images(static_cast<size_t>(o.batch * sample_size)),
      outputs(static_cast<size_t>(o.batch) * m.output_size);
  std::vector<int32_t> labels(static_cast<size_t>(o.batch));
  Workers w(m, pool.size(), o.batch);
  uint64_t digest = model_digest(m);
  std::filesystem::path history = o.out_dir / "history.csv",
                        checkpoint = o.out_dir / "checkpoint.bin";

  int32_t first_epoch = 0;
  int64_t step = 0;
  if (o.resume) {
    Checkpoint c = load_checkpoint(checkpoint, digest);
    params = std::move(c.params);
    state = std::move(c.optimizer);
    first_epoch = static_cast<int32_t>(c.epochs_done);
    step = c.step;
  } else if (!o.out_dir.empty()) {
    write_history_header(history);
  }

  for (int32_t epoch = first_epoch; epoch < o.epochs; ++epoch) {
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = learning_rate(o.schedule, o.optimizer.lr, epoch, o.epochs);
    std::vector<int32_t> order = epoch_order(train_set.count, o.seed, static_cast<uint32_t>(epoch));
    int32_t batches = (train_set.count + o.batch - 1) / o.batch;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    double train_seconds = 0;
    Clock::time_point epoch_start = Clock::now();
    for (int32_t b = 0; b < batches; ++b) {
      if (o.max_steps > 0 && step >= o.max_steps) break;
      Clock::time_point t0 = Clock::now();
      int32_t n = std::min(o.batch, train_set.count - b * o.batch);
      std::span<const int32_t> idx(order.data() + static_cast<size_t>(b) * o.batch,
                                   static_cast<size_t>(n));
      if (o.augment.enabled())
        prepare_augmented_batch(train_set, idx, o.augment, o.seed, static_cast<uint32_t>(epoch),
                                images.data(), labels.data());
      else
        prepare_batch(train_set, idx, images.data(), labels.data());

      std::vector<Slice> parts = slices(n, pool.size(), m.max_batch);
      std::vector<float> slice_loss(parts.size(), 0.0f);
      for_each_slice(pool, parts, [&](size_t s, int t) {
        cnnc_pass pass = slice_pass(m, params, images, outputs, parts[s], w.workspace[t]);
        pass.labels = labels.data() + parts[s].offset;
        pass.grads = w.grads[s].data();
        pass.epoch = static_cast<uint32_t>(epoch);
        pass.sample_base = static_cast<uint32_t>(b * o.batch + parts[s].offset);
        pass.seed = o.seed;
        slice_loss[s] = m.train(&m, &pass);
      });
      // The reduction: every index sums the slices in slice order, split by index over threads.
      int64_t count = m.param_count, per = (count + pool.size() - 1) / pool.size();
      float scale = 1.0f / static_cast<float>(n);
      pool.run([&](int t) {
        for (int64_t i = t * per; i < std::min(count, (t + 1) * per); ++i) {
          float g = 0;
          for (size_t s = 0; s < parts.size(); ++s) g += w.grads[s][i];
          grads[i] = g * scale;
        }
      });
      float batch_loss = 0;
      for (float l : slice_loss) batch_loss += l;
      std::string bad =
          std::isfinite(batch_loss) ? non_finite_layer(m, grads) : std::string("the loss");
      if (!bad.empty()) {
        result.diverged = true;
        result.divergence = fmt::format(
            "training diverged at epoch {}, batch {}: {} became NaN or infinite{}", epoch + 1,
            b + 1, bad == "the loss" ? bad : "the gradient of layer '" + bad + "'",
            o.out_dir.empty() ? "" : "; the last good checkpoint is kept");
        return result;
      }
      cnnc_optimizer opt = o.optimizer;
      opt.lr = rec.lr;
      opt.step = ++step;
      m.update(&m, params.data(), grads.data(), state.data(), &opt);
      train_seconds += seconds_since(t0);

      loss_sum += batch_loss;
      seen += n;
      for (int32_t i = 0; i < n; ++i)
        correct += argmax(outputs.data() + static_cast<int64_t>(i) * m.output_size,
                          m.output_size) == labels[i];
      if (o.progress_bar) {
        double elapsed = seconds_since(epoch_start);
        int width = 24, done = static_cast<int>(width * (b + 1) / batches);
        std::fprintf(stderr,
                     "\r  epoch %d/%d [%s%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %.0fs ",
                     epoch + 1, o.epochs, std::string(static_cast<size_t>(done), '=').c_str(),
                     std::string(static_cast<size_t>(width - done), ' ').c_str(), b + 1, batches,
                     loss_sum / seen, 100.0 * correct / seen, seen / std::max(train_seconds, 1e-9),
                     elapsed / (b + 1) * (batches - b - 1));
      }
    }
    if (o.progress_bar) std::fprintf(stderr, "\r%*s\r", 100, "");
    rec.train_loss = seen ? loss_sum / seen : 0;
    rec.train_accuracy = seen ? static_cast<double>(correct) / seen : 0;
    rec.seconds = train_seconds;
    rec.images_per_second = seen / std::max(train_seconds, 1e-9);
    result.train_seconds += train_seconds;
    result.images += seen;
    rec.validation = evaluate(m, params, data.validation, pool);
    rec.test = evaluate(m, params, data.test, pool);
    result.history.push_back(rec);
    if (!o.out_dir.empty()) {
      append_history(history, rec);
      save_checkpoint(checkpoint, {digest, static_cast<uint32_t>(epoch + 1), step, params, state});
    }
    report(rec);
    if (o.max_steps > 0 && step >= o.max_steps) break;
  }
  return result;
}

}  // namespace cnnc::rt
