// The training loop. A batch of B samples is cut into one slice per thread (sizes differ by at
// most one); each thread runs the model's train entry point on its slice into its own gradient
// buffer, and the buffers are summed in thread order, so the bits depend on the seed and the
// thread count only.
#include "train/trainer.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numbers>
#include <optional>
#include <stdexcept>

#include "data/batches.hpp"
#include "train/atomic_file.hpp"
#include "train/checkpoint.hpp"
#include "train/params.hpp"
#include "train/stopwatch.hpp"

namespace cnnc::rt {

namespace {

struct Slice {
  int32_t offset, n;
};

struct ParamRange {
  int64_t begin, end;
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

// Runs f(slice, t) for thread t's slices of `parts`: t, t + threads, ...
template <class F>
void slices_of_thread(const ThreadPool& pool, const std::vector<Slice>& parts, int t, F&& f) {
  for (size_t s = static_cast<size_t>(t); s < parts.size(); s += static_cast<size_t>(pool.size()))
    f(s, t);
}

// Runs f(slice, thread) for every slice, as one job of the pool.
template <class F>
void for_each_slice(ThreadPool& pool, const std::vector<Slice>& parts, F&& f) {
  pool.run([&](int t) { slices_of_thread(pool, parts, t, f); });
}

// The fields of a pass that forward and train share: a slice of the prepared batch.
cnnc_pass slice_pass(const cnnc_model& m, const std::vector<float>& params, const float* images,
                     float* outputs, Slice slice, void* workspace) {
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = images + static_cast<int64_t>(slice.offset) * m.input_h * m.input_w * m.input_c;
  pass.output = outputs + static_cast<int64_t>(slice.offset) * m.output_size;
  pass.workspace = workspace;
  pass.n = slice.n;
  return pass;
}

constexpr const char* history_header =
    "epoch,lr,train_loss,train_accuracy,validation_loss,validation_accuracy,test_loss,"
    "test_accuracy,seconds,images_per_second\n";

std::string history_row(const EpochRecord& r) {
  auto opt = [](const EvalResult& e, double v) {
    return e.count ? fmt::format("{:.6f}", v) : std::string();
  };
  return fmt::format("{},{:.6g},{:.6f},{:.6f},{},{},{},{},{:.3f},{:.1f}\n", r.epoch, r.lr,
                     r.train_loss, r.train_accuracy, opt(r.validation, r.validation.loss),
                     opt(r.validation, r.validation.accuracy), opt(r.test, r.test.loss),
                     opt(r.test, r.test.accuracy), r.seconds, r.images_per_second);
}

// history.csv as a checkpoint after `epochs` epochs accounts for it: the header and the first
// `epochs` rows. history.csv is written before the checkpoint, so a run killed between the two
// leaves a row the resumed run writes again.
std::string history_upto(const std::filesystem::path& path, uint32_t epochs) {
  std::ifstream in(path);
  std::string text = history_header, line;
  std::getline(in, line);  // the header
  for (uint32_t e = 0; e < epochs && std::getline(in, line); ++e) text += line + "\n";
  return text;
}

// What a killed run may have left of atomic writes into out_dir: temporary files no other run
// will finish (a run owns its directory).
void remove_temporaries(const std::filesystem::path& out_dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("checkpoint.bin.tmp") || name.starts_with("history.csv.tmp"))
      std::filesystem::remove(entry.path(), ec);
  }
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

// Thread t's share of [0, count) when `threads` split it: whole cache lines, so that no two
// threads write one.
ParamRange thread_range(int64_t count, int t, int threads) {
  constexpr int64_t line = 64 / sizeof(float);
  int64_t per = ((count + threads - 1) / threads + line - 1) / line * line;
  return {std::min(count, t * per), std::min(count, (t + 1) * per)};
}

// Whether every g[i], i in range, is neither a NaN nor an infinity.
bool range_finite(const float* g, ParamRange range) {
  return all_finite(std::span(g + range.begin, static_cast<size_t>(range.end - range.begin)));
}

// out[i] = scale * (0 + g_0[i] + g_1[i] + ...) over the first n slices, i in range: the slices
// added in order, as an exchange adds them (slice_exchange.hpp). In chunks that stay in L1, so
// that every loop vectorises. Returns whether every out[i] is finite.
bool sum_slices(const std::vector<std::vector<float>>& slices, size_t n, ParamRange range,
                float scale, float* out) {
  constexpr int64_t chunk = 256;
  float sum[chunk];
  bool finite = true;
  for (int64_t at = range.begin; at < range.end; at += chunk) {
    const int64_t size = std::min(chunk, range.end - at);
    std::fill_n(sum, size, 0.0f);
    for (size_t s = 0; s < n; ++s) {
      const float* g = slices[s].data() + at;
      for (int64_t i = 0; i < size; ++i) sum[i] += g[i];
    }
    for (int64_t i = 0; i < size; ++i) out[at + i] = sum[i] * scale;
    finite = range_finite(out, {at, at + size}) && finite;
  }
  return finite;
}

// The loss and the correct answers of slices' [loss, correct] pairs, in slice order.
StepResult tally(std::span<const double> scores) {
  StepResult r;
  for (size_t s = 0; 2 * s < scores.size(); ++s) {
    r.loss_sum += static_cast<float>(scores[2 * s]);
    r.correct += static_cast<int64_t>(scores[2 * s + 1]);
  }
  return r;
}

std::string float_text(float x) {
  return fmt::format("{}", x);  // the shortest text that reads back as x
}

}  // namespace

RunSettings run_settings(const Learner& learner, const Mnist& data, const TrainOptions& o) {
  const cnnc_optimizer& opt = o.optimizer;
  static constexpr const char* schedules[] = {"constant", "step", "cosine", "onecycle"};
  auto set_crc = [](const LabeledImages& d) {
    uLong crc = crc32_z(0, d.pixels.data(), d.pixels.size());
    return fmt::format("{:08x}", crc32_z(crc, d.labels.data(), d.labels.size()));
  };
  RunSettings s = {
      {"seed", std::to_string(o.seed)},
      {"threads", std::to_string(o.threads)},
      {"engine", learner.model() ? learner.model()->engine : "none"},
      {"batch", std::to_string(o.batch)},
      {"optimizer", opt.kind == CNNC_ADAM ? "adam" : "sgd"},
      {"lr", float_text(opt.lr)},
      {"weight decay", float_text(opt.weight_decay)},
  };
  if (opt.kind == CNNC_ADAM)
    s.insert(s.end(), {{"beta1", float_text(opt.beta1)},
                       {"beta2", float_text(opt.beta2)},
                       {"eps", float_text(opt.eps)}});
  else
    s.push_back({"momentum", float_text(opt.momentum)});
  s.push_back({"schedule", schedules[static_cast<int>(o.schedule.kind)]});
  // The run's length changes no step's bits but through a cosine schedule's span: a run may be
  // extended by more epochs, and ends as one that had that many from the start.
  if (o.schedule.kind == LrSchedule::Kind::cosine || o.schedule.kind == LrSchedule::Kind::onecycle)
    s.push_back(
        {"schedule epochs", std::to_string(o.schedule_epochs > 0 ? o.schedule_epochs : o.epochs)});
  if (o.schedule.kind == LrSchedule::Kind::step)
    s.insert(s.end(), {{"schedule every", std::to_string(o.schedule.every)},
                       {"schedule gamma", float_text(o.schedule.gamma)}});
  if (o.schedule.kind == LrSchedule::Kind::onecycle)
    s.push_back({"schedule warmup", fmt::format("{}", o.schedule.warmup)});
  s.insert(s.end(), {{"augment shift", std::to_string(o.augment.shift)},
                     {"augment rotate", float_text(o.augment.rotate)},
                     {"augment scale", float_text(o.augment.scale)},
                     {"training images", std::to_string(data.train.count)},
                     {"training data checksum", set_crc(data.train)},
                     {"validation images", std::to_string(data.validation.count)}});
  return s;
}

AlignedBuffer aligned_buffer(int64_t bytes) {
  // aligned_alloc wants a multiple of the alignment, and a model may need no scratch at all.
  size_t size = std::max<size_t>(64, (static_cast<size_t>(bytes) + 63) / 64 * 64);
  AlignedBuffer buffer(static_cast<std::byte*>(std::aligned_alloc(64, size)), &std::free);
  if (!buffer) throw std::bad_alloc();
  return buffer;
}

Workspaces::Workspaces(const cnnc_model& m, int threads) {
  for (int t = 0; t < threads; ++t) buffers_.push_back(aligned_buffer(m.workspace_bytes));
}

void forward_batch(const cnnc_model& m, const std::vector<float>& params, const float* images,
                   int32_t n, float* outputs, ThreadPool& pool, const Workspaces& workspaces) {
  std::vector<Slice> parts = slices(n, pool.size(), m.max_batch);
  for_each_slice(pool, parts, [&](size_t s, int t) {
    cnnc_pass pass = slice_pass(m, params, images, outputs, parts[s], workspaces[t]);
    m.forward(&m, &pass);
  });
}

namespace {

int ranks_of(const SliceExchange* exchange) {
  return exchange ? exchange->ranks() : 1;
}

// The most slices any process trains in a step of up to `batch` samples: a smaller last batch
// cuts into no more slices than a full one, and shares differ by at most one slice.
size_t most_slices(const cnnc_model& m, int threads, int32_t batch, int ranks) {
  int32_t parts = static_cast<int32_t>(slices(batch, threads * ranks, m.max_batch).size());
  return static_cast<size_t>((parts + ranks - 1) / ranks);
}

// The trainable layers' parameter ranges in the order train reports them final.
std::vector<GradientRange> backward_order(const cnnc_model& m) {
  std::vector<GradientRange> out;
  for (int32_t i = m.layer_count; i-- > 0;) {
    const cnnc_layer& l = m.layers[i];
    if (!l.trainable) continue;
    int64_t first = l.weight_count ? l.weight_offset : l.bias_offset;
    int64_t end = l.bias_count ? l.bias_offset + l.bias_count : l.weight_offset + l.weight_count;
    out.push_back({i, first, end - first});
  }
  return out;
}

// The trainable dense layers of a model that sums their weight gradients itself, by offset.
std::vector<DenseWeights> dense_weights(const cnnc_model& m) {
  std::vector<DenseWeights> out;
  if (m.abi_version < 5 || !m.dense_weights) return out;
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    if (l.kind == CNNC_DENSE && l.trainable && l.weight_count > 0)
      out.push_back({i, l.out_c, l.weight_offset, l.weight_count / l.out_c});
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  return out;
}

// The trainable dense layers' units cut into chunks: thread 0's share of every layer, then
// thread 1's, and so on, each layer's units cut evenly between the threads at multiples of 12;
// with `starts`, each share's first chunk, for SharedWork. With one thread a layer is one chunk,
// because each call of dense_weights reads every slice's input rows once; with more, chunks of
// 12 units let a thread take part of a slowed thread's share (the machine's other work slows
// one thread of a step by up to a sixth). 12 units is a whole number of the code generator's
// tiles of 6, 3 or 4 units; a share's last chunk takes what is left of it (under 24 units) and
// may end in a tile that overlaps the one before it, or be narrower than a tile.
DenseChunks dense_chunks(const std::vector<DenseWeights>& dense, int threads) {
  constexpr int32_t units_per_chunk = 12;
  DenseChunks out;
  for (int t = 0; t < threads; ++t) {
    out.starts.push_back(out.chunks.size());
    for (size_t i = 0; i < dense.size(); ++i) {
      const int32_t units = dense[i].units;
      auto share_begin = [&](int u) {
        return u == threads ? units
                            : std::min(units, (units * u / threads + units_per_chunk / 2) /
                                                  units_per_chunk * units_per_chunk);
      };
      const int32_t end = share_begin(t + 1);
      for (int32_t first = share_begin(t); first < end;) {
        int32_t last =
            threads == 1 || end - first < 2 * units_per_chunk ? end : first + units_per_chunk;
        out.chunks.push_back({i, first, last});
        first = last;
      }
    }
  }
  out.starts.push_back(out.chunks.size());
  return out;
}

extern "C" void report_gradients_ready(const cnnc_pass* pass, int32_t layer) {
  static_cast<LayersDone*>(pass->context)->report(layer);
}

}  // namespace

TrainStep::TrainStep(const cnnc_model& m, ThreadPool& pool, int32_t batch, SliceExchange* exchange)
    : m_(m),
      pool_(pool),
      batch_(batch),
      exchange_(exchange),
      workspaces_(m, pool.size()),
      slice_grads_(most_slices(m, pool.size(), batch, ranks_of(exchange)),
                   std::vector<float>(static_cast<size_t>(m.param_count), 0.0f)),
      slice_scores_(2 * slice_grads_.size(), 0.0),
      grads_(static_cast<size_t>(m.param_count), 0.0f),
      state_(static_cast<size_t>(m.param_count) * 2, 0.0f),
      outputs_(static_cast<size_t>(batch) * m.output_size, 0.0f),
      finite_(static_cast<size_t>(pool.size()), 1),
      backward_order_(backward_order(m)),
      dense_weights_(dense_weights(m)),
      dense_chunks_(dense_chunks(dense_weights_, pool.size())),
      shared_chunks_(dense_chunks_.starts),
      passes_(slice_grads_.size()),
      prepared_(m.abi_version >= 4 && m.prepare && m.prepared_bytes > 0
                    ? aligned_buffer(m.prepared_bytes)
                    : AlignedBuffer(nullptr, &std::free)) {}

StepResult TrainStep::run(std::vector<float>& params, const float* images, const int32_t* labels,
                          int32_t n, const cnnc_optimizer& opt, uint32_t epoch,
                          uint32_t sample_base, uint64_t seed, const SplitWork& then) {
  if (n < 1 || n > batch_)
    throw std::logic_error(fmt::format("TrainStep::run: {} samples, expected 1..{}", n, batch_));
  const int ranks = ranks_of(exchange_), rank = exchange_ ? exchange_->rank() : 0;
  std::vector<Slice> all = slices(n, pool_.size() * ranks, m_.max_batch);
  SliceShare mine = slice_share(static_cast<int32_t>(all.size()), rank, ranks);
  std::vector<Slice> parts(all.begin() + mine.first, all.begin() + mine.first + mine.count);
  int64_t count = m_.param_count;
  float scale = 1.0f / static_cast<float>(n);
  std::vector<const float*> local;  // what this process gives the exchange; none without one
  if (exchange_)
    for (size_t s = 0; s < parts.size(); ++s) local.push_back(slice_grads_[s].data());
  // Overlapped, each layer's gradients start on their way as soon as every slice has finished
  // that layer, while the slices run backward through the layers below it.
  const bool overlap = exchange_ && exchange_->overlaps(count);
  // The dense weights summed from the slices' workspaces: each slice on a thread of its own, so
  // that no slice's workspace is reused within the step, and no exchange, which reads buffers.
  const bool defer =
      !exchange_ && !dense_weights_.empty() && parts.size() <= static_cast<size_t>(pool_.size());
  if (overlap || defer) layers_done_.begin(m_.layer_count, parts.size());
  if (overlap) exchange_->start_sum(local, backward_order_, scale, grads_.data(), layers_done_);
  if (defer) {
    shared_chunks_.reset();
    threads_returned_ = 0;
  }
  auto train_slice = [&](size_t s, int t) {
    cnnc_pass pass = slice_pass(m_, params, images, outputs_.data(), parts[s], workspaces_[t]);
    pass.labels = labels + parts[s].offset;
    pass.grads = slice_grads_[s].data();
    pass.epoch = epoch;
    pass.sample_base = sample_base + static_cast<uint32_t>(parts[s].offset);
    pass.seed = seed;
    pass.prepared = prepared_.get();
    pass.defer_dense_weights = defer;
    passes_[s] = pass;
    // Deferred, a dense layer's report says that what dense_weights reads of it is final (C ABI
    // 6; an older model's chunks wait for every thread to be back from its slices).
    if (overlap || (defer && m_.abi_version >= 6)) {
      pass.gradients_ready = report_gradients_ready;
      pass.context = &layers_done_;
    }
    slice_scores_[2 * s] = m_.train(&m_, &pass);
    int64_t correct = 0;
    for (int32_t i = parts[s].offset; i < parts[s].offset + parts[s].n; ++i)
      correct += argmax(outputs_.data() + static_cast<int64_t>(i) * m_.output_size,
                        m_.output_size) == labels[i];
    slice_scores_[2 * s + 1] = static_cast<double>(correct);
  };
  // Thread t's slices, after its part of the step's prepared weights: every slice reads all of
  // them, so the threads meet in between, also when a part fails (the pool's barriers must
  // match).
  auto thread_slices = [&](int t) {
    if (prepared_) {
      std::exception_ptr error;
      try {
        m_.prepare(&m_, params.data(), prepared_.get(), t, pool_.size());
      } catch (...) {
        error = std::current_exception();
      }
      pool_.barrier();
      if (error) std::rethrow_exception(error);
    }
    slices_of_thread(pool_, parts, t, train_slice);
  };
  // Every slice's [loss, correct]: this process's, replaced by every process's with an exchange.
  std::span<const double> scores(slice_scores_.data(), 2 * parts.size());
  std::vector<double> gathered;
  const bool by_ranges = m_.abi_version >= 3;  // else a model from before update_range
  // Thread t's range of grads_ when the dense weights are deferred: the slices' buffers summed
  // outside the dense layers' weights, which dense_chunks_of writes; whether all it wrote is
  // finite.
  auto sum_deferred = [&](ParamRange range) {
    bool finite = true;
    int64_t at = range.begin;
    for (const DenseWeights& d : dense_weights_) {
      ParamRange before{at, std::min(range.end, d.offset)};
      if (before.begin < before.end)
        finite = sum_slices(slice_grads_, parts.size(), before, scale, grads_.data()) && finite;
      at = std::max(at, d.offset + d.units * d.row);
    }
    if (at < range.end)
      finite =
          sum_slices(slice_grads_, parts.size(), {at, range.end}, scale, grads_.data()) && finite;
    return finite;
  };
  // Thread t's chunks of the dense layers' weight gradients, from the end of its slices to the
  // threads' meeting: its own share, then what the others have not begun of theirs; each once
  // every slice has reported the chunk's layer, which all have long before they return unless
  // their thread started far behind (or every thread is back). Whether all it wrote is finite;
  // it stops when a slice failed.
  auto dense_chunks_of = [&](int t, const std::atomic<bool>& failed) {
    bool finite = true;
    while (std::optional<size_t> c = shared_chunks_.claim(t)) {
      const DenseChunk& chunk = dense_chunks_.chunks[*c];
      const DenseWeights& d = dense_weights_[chunk.dense];
      while (!layers_done_.wait_for(d.layer, std::chrono::milliseconds(100))) {
      }
      if (failed) break;
      m_.dense_weights(&m_, d.layer, passes_.data(), static_cast<int32_t>(parts.size()), scale,
                       chunk.first, chunk.last, grads_.data());
      finite = range_finite(grads_.data(),
                            {d.offset + chunk.first * d.row, d.offset + chunk.last * d.row}) &&
               finite;
    }
    return finite;
  };
  // The end of the step on thread t, the last phase of a job: its range of grads_ summed from
  // the slices (or, summed by an exchange, read) and checked; then, once every range is, updated
  // unless the loss or some range is not finite, so that a diverged step leaves the last good
  // weights behind. The range stays in one core's cache from the sum to the update.
  auto finish_range = [&](int t, bool sum, bool dense_finite) {
    ParamRange range = thread_range(count, t, pool_.size());
    finite_[static_cast<size_t>(t)] =
        !sum    ? range_finite(grads_.data(), range)
        : defer ? sum_deferred(range) && dense_finite
                : sum_slices(slice_grads_, parts.size(), range, scale, grads_.data());
    pool_.barrier();
    if (by_ranges && std::isfinite(tally(scores).loss_sum) &&
        std::all_of(finite_.begin(), finite_.end(), [](char f) { return f != 0; }))
      m_.update_range(&m_, params.data(), grads_.data(), state_.data(), &opt, range.begin,
                      range.end);
  };
  if (!exchange_) {
    // The whole step is one job: the prepared weights, the slices, then finish_range, the
    // threads meeting in between.
    std::atomic<bool> failed = false;
    pool_.run([&](int t) {
      std::exception_ptr error;
      try {
        thread_slices(t);
      } catch (...) {
        error = std::current_exception();
        failed = true;
      }
      bool dense_finite = true;
      if (defer) {
        // Once every thread is back from its slices every layer is final, reported or not.
        if (++threads_returned_ == pool_.size()) layers_done_.finish_all();
        dense_finite = dense_chunks_of(t, failed);
      }
      pool_.barrier();
      if (error) std::rethrow_exception(error);
      if (!failed) finish_range(t, true, dense_finite);
      if (then) then(t, pool_.size());
    });
  } else {
    if (!overlap) {
      pool_.run(thread_slices);
    } else {
      // The exchange's thread reads the slices' gradients and LayersDone until finish_sum, even
      // when a slice fails.
      struct Finish {
        LayersDone& done;
        SliceExchange& exchange;
        ~Finish() {
          done.finish_all();
          exchange.finish_sum();
        }
      } finish{layers_done_, *exchange_};
      pool_.run(thread_slices);
    }
    if (!overlap) exchange_->sum_gradients(local, count, scale, grads_.data());
    std::vector<int32_t> counts;
    for (int r = 0; r < ranks; ++r)
      counts.push_back(2 * slice_share(static_cast<int32_t>(all.size()), r, ranks).count);
    gathered.resize(2 * all.size());
    exchange_->gather(scores, counts, gathered.data());
    scores = gathered;
    pool_.run([&](int t) {
      finish_range(t, false, true);
      if (then) then(t, pool_.size());
    });
  }
  StepResult r = tally(scores);
  if (!std::isfinite(r.loss_sum))
    r.non_finite = "the loss";
  else if (std::find(finite_.begin(), finite_.end(), 0) != finite_.end())
    r.non_finite = non_finite_layer(m_, grads_);
  if (r.non_finite.empty() && !by_ranges)
    m_.update(&m_, params.data(), grads_.data(), state_.data(), &opt);
  return r;
}

float learning_rate(const LrSchedule& s, float base, int32_t epoch, int32_t epochs, int64_t step,
                    int64_t steps) {
  switch (s.kind) {
    case LrSchedule::Kind::constant: return base;
    case LrSchedule::Kind::step:
      return base * std::pow(s.gamma, static_cast<float>(epoch / std::max(1, s.every)));
    case LrSchedule::Kind::cosine:
      return static_cast<float>(0.5 * base *
                                (1 + std::cos(std::numbers::pi * epoch / std::max(1, epochs))));
    case LrSchedule::Kind::onecycle: {
      double rise = s.warmup * static_cast<double>(steps);
      double at = static_cast<double>(step) + 1;
      double share = at <= rise ? at / rise
                                : std::max(0.0, static_cast<double>(steps - step) /
                                                    (static_cast<double>(steps) - rise));
      return static_cast<float>(base * share);
    }
  }
  return base;
}

EvalResult evaluate(const cnnc_model& m, const LabeledImages& data, int32_t chunk,
                    const ForwardChunk& forward) {
  EvalResult r;
  r.count = data.count;
  r.confusion.assign(static_cast<size_t>(m.output_size) * m.output_size, 0);
  if (data.count == 0) return r;
  int64_t sample_size = static_cast<int64_t>(m.input_h) * m.input_w * m.input_c;
  std::vector<float> images(static_cast<size_t>(chunk * sample_size)),
      outputs(static_cast<size_t>(chunk) * m.output_size);
  std::vector<int32_t> labels(static_cast<size_t>(chunk)), indices(static_cast<size_t>(chunk));
  double loss = 0;
  int64_t correct = 0;
  for (int32_t start = 0; start < data.count; start += chunk) {
    int32_t n = std::min(chunk, data.count - start);
    for (int32_t i = 0; i < n; ++i) indices[i] = start + i;
    prepare_batch(data, std::span(indices.data(), static_cast<size_t>(n)), images.data(),
                  labels.data());
    forward(images.data(), n, outputs.data());
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

EvalResult evaluate(const cnnc_model& m, const std::vector<float>& params,
                    const LabeledImages& data, ThreadPool& pool) {
  Workspaces workspaces(m, pool.size());
  return evaluate(m, data, m.max_batch * pool.size(),
                  [&](const float* images, int32_t n, float* outputs) {
                    forward_batch(m, params, images, n, outputs, pool, workspaces);
                  });
}

ModelLearner::ModelLearner(const cnnc_model& m, std::vector<float>& params, ThreadPool& pool,
                           int32_t batch, SliceExchange* exchange)
    : m_(m), params_(params), pool_(pool), step_(m, pool, batch, exchange) {}

StepResult ModelLearner::step(const float* images, const int32_t* labels, int32_t n,
                              const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                              uint64_t seed) {
  return step_.run(params_, images, labels, n, opt, epoch, sample_base, seed);
}

StepResult ModelLearner::step_then(const float* images, const int32_t* labels, int32_t n,
                                   const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                                   uint64_t seed, const SplitWork& then) {
  return step_.run(params_, images, labels, n, opt, epoch, sample_base, seed, then);
}

EvalResult ModelLearner::evaluate(const LabeledImages& data) {
  return rt::evaluate(m_, params_, data, pool_);
}

TrainResult train(Learner& learner, const Mnist& data, const TrainOptions& o,
                  const TrainHooks& hooks) {
  TrainResult result;
  const LabeledImages& train_set = data.train;
  int64_t sample_size = static_cast<int64_t>(train_set.rows) * train_set.cols;
  // Two batches: the one a step trains on, and the next, which that step prepares.
  std::vector<float> images[2] = {std::vector<float>(static_cast<size_t>(o.batch * sample_size)),
                                  std::vector<float>(static_cast<size_t>(o.batch * sample_size))};
  std::vector<int32_t> labels[2] = {std::vector<int32_t>(static_cast<size_t>(o.batch)),
                                    std::vector<int32_t>(static_cast<size_t>(o.batch))};
  std::vector<float>* params = learner.params();
  std::vector<float>* state = learner.optimizer_state();
  const bool writes = !o.out_dir.empty();
  if ((writes || o.resume) && (!learner.model() || !params || !state))
    throw std::logic_error("train: this learner cannot write or resume checkpoints");
  const uint64_t digest = writes || o.resume ? model_digest(*learner.model()) : 0;
  const RunSettings settings = writes || o.resume ? run_settings(learner, data, o) : RunSettings{};
  std::filesystem::path history = o.out_dir / "history.csv",
                        checkpoint = o.out_dir / "checkpoint.bin";
  const int32_t schedule_epochs = o.schedule_epochs > 0 ? o.schedule_epochs : o.epochs;

  // Where the run starts: the checkpoint's epoch, and within it (a run stopped mid-epoch) its
  // batch and the epoch's sums so far.
  Checkpoint start;
  std::string history_text = history_header;
  if (o.resume) {
    start = learner.resume_from(checkpoint, digest, settings);
    *params = std::move(start.params);
    *state = std::move(start.optimizer);
    if (writes) history_text = history_upto(history, start.epochs_done);
  }
  const int32_t first_epoch = static_cast<int32_t>(start.epochs_done);
  int64_t step = start.step;
  auto save = [&](uint32_t epochs_done, uint32_t batches_done, double loss_sum, int64_t correct,
                  int64_t trained, double seconds) {
    save_checkpoint(checkpoint, {digest, epochs_done, batches_done, step, loss_sum, correct,
                                 trained, seconds, settings, *params, *state});
  };
  if (writes) {
    // Both files before the first step, so that a directory that cannot take them is found
    // before an epoch's work, not after it; and a fresh run can be resumed from its start.
    remove_temporaries(o.out_dir);
    write_file_atomically(history, history_text);
    if (!o.resume) save(0, 0, 0, 0, 0, 0);
  }

  for (int32_t epoch = first_epoch; epoch < o.epochs; ++epoch) {
    EpochRecord rec;
    rec.epoch = epoch + 1;
    std::vector<int32_t> order = epoch_order(train_set.count, o.seed, static_cast<uint32_t>(epoch));
    // A learner that takes only full batches drops the epoch's short last one.
    int32_t batches = learner.full_batches_only() ? train_set.count / o.batch
                                                  : (train_set.count + o.batch - 1) / o.batch;
    // Batch b of the epoch is the run's step epoch * batches + b, also in a resumed run.
    auto lr_at = [&](int32_t b) {
      return learning_rate(o.schedule, o.optimizer.lr, epoch, schedule_epochs,
                           int64_t{epoch} * batches + b, int64_t{schedule_epochs} * batches);
    };
    rec.lr = lr_at(0);
    StepRecord at;
    at.epoch = epoch + 1;
    at.epochs = o.epochs;
    at.batches = batches;
    double loss_sum = 0;
    int64_t correct = 0;
    int32_t first_batch = 0;
    if (epoch == first_epoch && start.batches_done > 0) {
      if (start.batches_done > static_cast<uint32_t>(batches))
        throw std::runtime_error(
            fmt::format("checkpoint '{}': damaged: {} batches done in an epoch of {}",
                        checkpoint.string(), start.batches_done, batches));
      first_batch = static_cast<int32_t>(start.batches_done);
      loss_sum = start.loss_sum;
      correct = start.correct;
      at.images = start.images;
      at.epoch_seconds = start.seconds;
    }
    auto samples_in = [&](int32_t b) { return std::min(o.batch, train_set.count - b * o.batch); };
    // Part `part` of `parts` of batch b into buffer b % 2. An image depends on its sample alone
    // (augmentation draws from a hash of it), so any split, on any thread, gives the same bits.
    auto prepare = [&](int32_t b, int part, int parts) {
      const int32_t n = samples_in(b), first = n * part / parts, end = n * (part + 1) / parts;
      std::span<const int32_t> idx(order.data() + static_cast<size_t>(b) * o.batch + first,
                                   static_cast<size_t>(end - first));
      float* x = images[b % 2].data() + first * sample_size;
      int32_t* y = labels[b % 2].data() + first;
      if (o.augment.enabled())
        prepare_augmented_batch(train_set, idx, o.augment, o.seed, static_cast<uint32_t>(epoch), x,
                                y);
      else
        prepare_batch(train_set, idx, x, y);
    };
    Clock::time_point epoch_start = Clock::now();
    for (int32_t b = first_batch; b < batches; ++b) {
      if (o.max_steps > 0 && step >= o.max_steps) break;
      Clock::time_point t0 = Clock::now();
      const int32_t n = samples_in(b);
      if (b == first_batch) prepare(b, 0, 1);  // later batches are prepared by the step before
      SplitWork next;
      if (b + 1 < batches) next = [&](int part, int parts) { prepare(b + 1, part, parts); };

      cnnc_optimizer opt = o.optimizer;
      opt.lr = lr_at(b);
      at.lr = opt.lr;
      opt.step = step + 1;
      StepResult r = learner.step_then(images[b % 2].data(), labels[b % 2].data(), n, opt,
                                       static_cast<uint32_t>(epoch),
                                       static_cast<uint32_t>(b * o.batch), o.seed, next);
      if (!r.non_finite.empty()) {
        result.diverged = true;
        result.steps = step;
        result.divergence =
            fmt::format("training diverged at epoch {}, batch {}: {} became NaN or infinite{}",
                        epoch + 1, b + 1,
                        r.non_finite == "the loss" ? r.non_finite
                                                   : "the gradient of layer '" + r.non_finite + "'",
                        writes ? "; the last good checkpoint is kept" : "");
        return result;
      }
      ++step;
      double seconds = seconds_since(t0);
      at.epoch_seconds += seconds;
      result.train_seconds += seconds;
      loss_sum += r.loss_sum;
      correct += r.correct;
      at.images += n;
      result.images += n;
      if (hooks.after_step) {
        at.batch = b + 1;
        at.step = step;
        at.loss = loss_sum / static_cast<double>(at.images);
        at.accuracy = static_cast<double>(correct) / static_cast<double>(at.images);
        at.epoch_elapsed = seconds_since(epoch_start);
        at.run_seconds = result.train_seconds;
        if (!hooks.after_step(at)) {
          result.stopped = true;
          result.steps = step;
          if (writes)
            save(static_cast<uint32_t>(epoch), static_cast<uint32_t>(b + 1), loss_sum, correct,
                 at.images, at.epoch_seconds);
          return result;
        }
      }
    }
    rec.train_loss = at.images ? loss_sum / static_cast<double>(at.images) : 0;
    rec.train_accuracy = at.images ? static_cast<double>(correct) / at.images : 0;
    rec.seconds = at.epoch_seconds;
    rec.images_per_second = at.images / std::max(at.epoch_seconds, 1e-9);
    if (o.evaluate_epochs) {
      rec.validation = learner.evaluate(data.validation);
      rec.test = learner.evaluate(data.test);
    }
    result.history.push_back(rec);
    if (writes) {
      history_text += history_row(rec);
      write_file_atomically(history, history_text);
      save(static_cast<uint32_t>(epoch + 1), 0, 0, 0, 0, 0);
    }
    if (hooks.after_epoch) hooks.after_epoch(rec);
    if (o.max_steps > 0 && step >= o.max_steps) break;
  }
  result.steps = step;
  return result;
}

TrainResult train(const cnnc_model& m, std::vector<float>& params, const Mnist& data,
                  const TrainOptions& o, ThreadPool& pool, const TrainHooks& hooks) {
  ModelLearner learner(m, params, pool, o.batch);
  return train(learner, data, o, hooks);
}

}  // namespace cnnc::rt
