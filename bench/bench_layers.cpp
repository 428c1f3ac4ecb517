// bench_layers.cpp: every conv, pool and dense layer of lenet5 and keras_mnist, forward,
// backward-data and backward-weights at batch 64, on the generic engine's kernels, oneDNN's
// primitives and the specialised generated code (FP32, and bf16 from the models' bf16 copies);
// then whole training steps. Counters: GFLOP/s, the share of the measured FMA peak (a bf16
// layer's of the bf16 peak; a bf16 step's of both, as cnnc bench gives them), images/s, and the
// bytes each phase must move at least, which with the measured bandwidth places it on the
// roofline (bench/layers_table.py).
//
// Order of the suite (the registration order): the FMA peak and the triad bandwidth of memory
// and of L2 first (the peak sets the denominator of every peak_share), then per layer and phase
// generic | oneDNN | specialised side by side, then the training steps. Run with
// --benchmark_repetitions=5
// --benchmark_enable_random_interleaving=true for interleaved medians (bench/run_benchmarks).
//
// Threads: per-layer figures are one thread per call for every engine (the generic kernels and
// the specialised run() are single-threaded by the ABI; oneDNN's OpenMP is capped at 1), so
// peak_share divides by the 1-thread peak. Training steps run on 1 and 2 threads, split as
// cnnc train splits a batch (rt::TrainStep).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bandwidth.hpp"
#include "bench/onednn_types.hpp"
#include "bench/peak_fma.hpp"
#include "cnnc_abi.h"
#include "generic/gemm.hpp"
#include "generic/generic_engine.hpp"
#include "generic/layers.hpp"
#include "keras_mnist.gen.hpp"
#include "keras_mnist_bf16.gen.hpp"
#include "lenet5.gen.hpp"
#include "lenet5_bf16.gen.hpp"
#include "train/params.hpp"
#include "train/thread_pool.hpp"
#include "train/trainer.hpp"
#ifdef CNNC_BENCH_ONEDNN
#include "bench/onednn_net.hpp"
using cnnc::bench::OnednnLayout;
using cnnc::bench::OnednnNet;
#endif

// Weak: generated code without the per-layer kernel table (older generators) still links, and
// the specialised per-layer benches are then skipped with a message.
extern "C" int32_t cnnc_lenet5_kernels(const char* target, const cnnc_kernel** kernels)
    __attribute__((weak));
extern "C" int32_t cnnc_keras_mnist_kernels(const char* target, const cnnc_kernel** kernels)
    __attribute__((weak));
extern "C" int32_t cnnc_lenet5_bf16_kernels(const char* target, const cnnc_kernel** kernels)
    __attribute__((weak));
extern "C" int32_t cnnc_keras_mnist_bf16_kernels(const char* target, const cnnc_kernel** kernels)
    __attribute__((weak));

namespace {

using Clock = std::chrono::steady_clock;
constexpr int32_t kBatch = 64;

// ---- the measured peak ----

// GFLOP/s by thread count, FP32's best ISA or (bf16) vdpbf16ps's: measured once in main before
// any benchmark runs, so every peak_share of one run divides by one figure (the peak_fma
// benchmarks only report). bf16's is 0 without AVX512_BF16, when no bf16 code runs.
double peak(int threads, bool bf16 = false) {
  static std::map<std::pair<int, bool>, double> peaks;
  auto it = peaks.find({threads, bf16});
  if (it != peaks.end()) return it->second;
  // The best of several short windows: load on a shared machine only ever lowers the figure.
  double best = 0;
  for (int i = 0; i < 8; ++i)
    best = std::max(best, bf16 ? cnnc::bench::measure_bf16_peak_gflops(threads, 0.1)
                               : cnnc::bench::measure_peak_gflops(threads, 0.1));
  return peaks[{threads, bf16}] = best;
}

void BM_peak_fma(benchmark::State& state, cnnc::bench::PeakIsa isa) {
  const int threads = static_cast<int>(state.range(0));
  if (!cnnc::bench::peak_isa_supported(isa)) {
    state.SkipWithError("this CPU lacks the ISA");
    for (auto _ : state) {
    }
    return;
  }
  double gflops = 0;
  for (auto _ : state) gflops = cnnc::bench::measure_isa_gflops(isa, threads, 0.25);
  state.counters["GFLOP/s"] = gflops;
  // Reported, not used: the denominator was fixed before the first benchmark (main), so that
  // every share of one run divides by the same figure whatever order the runs interleave in.
  state.counters["peak_used"] = peak(threads, isa == cnnc::bench::PeakIsa::avx512_bf16);
}

// Arrays of 128 MiB per thread, far beyond the last-level cache, or of 384 KiB, within a core's
// L2: the roofline's two slopes.
void BM_bandwidth(benchmark::State& state, int64_t bytes) {
  const int threads = static_cast<int>(state.range(0));
  double gbs = 0;
  for (auto _ : state) {
    for (int i = 0; i < 4; ++i)
      gbs = std::max(gbs, cnnc::bench::measure_triad_gbs(threads, bytes, 0.1));
  }
  state.counters["GB/s"] = gbs;
}

// ---- the models ----

struct ModelApi {
  const char* name;  // of the rows: a bf16 copy's rows join those of the model it copies
  cnnc_model* (*create)(int32_t, const char*);
  void (*destroy)(cnnc_model*);
  int32_t (*kernels)(const char*, const cnnc_kernel**);  // null without the kernel table
  // The copy with `precision bf16`: only its avx512_bf16 kernels and training step are timed,
  // the rest being the FP32 model's.
  bool bf16 = false;
};

const ModelApi kModels[] = {
    {"lenet5", cnnc_lenet5_create, cnnc_lenet5_destroy, cnnc_lenet5_kernels},
    {"keras_mnist", cnnc_keras_mnist_create, cnnc_keras_mnist_destroy, cnnc_keras_mnist_kernels},
    {"lenet5", cnnc_lenet5_bf16_create, cnnc_lenet5_bf16_destroy, cnnc_lenet5_bf16_kernels, true},
    {"keras_mnist", cnnc_keras_mnist_bf16_create, cnnc_keras_mnist_bf16_destroy,
     cnnc_keras_mnist_bf16_kernels, true},
};

struct Free {
  void operator()(void* p) const { std::free(p); }
};

template <class T = float>
std::unique_ptr<T[], Free> aligned(int64_t count) {
  size_t bytes = static_cast<size_t>((count * int64_t{sizeof(T)} + 63) / 64 * 64 + 64);
  auto* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  std::memset(static_cast<void*>(p), 0, bytes);
  return std::unique_ptr<T[], Free>(p);
}

// MNIST-like pixels and labels from a fixed LCG: the same bits for every engine.
void fill_inputs(const cnnc_model& m, int32_t n, float* images, int32_t* labels) {
  uint64_t s = 42;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  };
  for (int64_t i = 0; i < int64_t{n} * m.input_h * m.input_w * m.input_c; ++i)
    images[i] = static_cast<float>(next() % 256) / 255.0f;
  for (int32_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(next() % m.output_size);
}

// What every engine's training step starts from: the parameters of seed 1, the batch of
// fill_inputs, and SGD with the models' momentum and weight decay.
struct StepInputs {
  explicit StepInputs(const cnnc_model& m)
      : params(cnnc::rt::initial_params(m, 1)),
        images(aligned(int64_t{kBatch} * m.input_h * m.input_w * m.input_c)),
        labels(kBatch) {
    fill_inputs(m, kBatch, images.get(), labels.data());
    opt.kind = CNNC_SGD;
    opt.momentum = 0.9f;
    opt.weight_decay = 5e-4f;
    // A small rate: random labels cannot walk the weights to overflow over thousands of steps,
    // and every step does the same arithmetic as at the models' lr 0.05.
    opt.lr = 1e-4f;
    opt.step = 1;
  }
  std::vector<float> params;
  std::unique_ptr<float[], Free> images;
  std::vector<int32_t> labels;
  cnnc_optimizer opt{};
};

// A specialised model for one target after one train() call on a batch, so that its workspace
// holds what the per-layer kernels read.
struct Specialized {
  Specialized(const ModelApi& api, const char* target) : api_(api) {
    model = api.create(kBatch, target);
    if (!model) return;
    params = cnnc::rt::initial_params(*model, 1);
    grads.assign(static_cast<size_t>(model->param_count), 0.0f);
    workspace = aligned<std::byte>(model->workspace_bytes);
    images = aligned(int64_t{kBatch} * model->input_h * model->input_w * model->input_c);
    labels.resize(kBatch);
    fill_inputs(*model, kBatch, images.get(), labels.data());
    cnnc_pass p{};
    p.params = params.data();
    p.input = images.get();
    p.labels = labels.data();
    p.grads = grads.data();
    p.workspace = workspace.get();
    p.n = kBatch;
    p.seed = 1;
    model->train(model, &p);
  }
  ~Specialized() {
    if (model) api_.destroy(model);
  }
  Specialized(const Specialized&) = delete;
  Specialized& operator=(const Specialized&) = delete;

  const ModelApi& api_;
  cnnc_model* model = nullptr;
  std::vector<float> params, grads;
  std::unique_ptr<std::byte[], Free> workspace;
  std::unique_ptr<float[], Free> images;
  std::vector<int32_t> labels;
};

// ---- per-layer work ----

using cnnc::bench::Phase;
using cnnc::bench::phase_name;

bool benched(const cnnc_layer& l) {
  return l.kind == CNNC_CONV || l.kind == CNNC_DENSE || l.kind == CNNC_MAXPOOL ||
         l.kind == CNNC_AVGPOOL;
}

bool has_phase(const cnnc_layer& l, Phase p) {
  return p != Phase::backward_weights || l.kind == CNNC_CONV || l.kind == CNNC_DENSE;
}

// FLOPs per image of one phase, counted alike for every engine: 2 per multiply-add for conv and
// dense (each phase is one such product), 1 per compared or added element for pooling.
double flops_per_image(const cnnc_layer& l, Phase) {
  if (l.kind == CNNC_CONV)
    return 2.0 * l.out_h * l.out_w * l.out_c * l.kernel_h * l.kernel_w * l.in_c;
  if (l.kind == CNNC_DENSE) return 2.0 * l.out_c * l.in_h * l.in_w * l.in_c;
  return 1.0 * l.out_h * l.out_w * l.out_c * l.kernel_h * l.kernel_w;
}

// Bytes a phase must move at least on a batch of n: every tensor it reads or writes once, in
// floats (forward x, w, b -> y; backward-data dy, w -> dx; backward-weights x, dy -> dw, db; max
// pooling's backward reads x to find the maxima again). The same for every engine: a property of
// the phase, whose FLOPs over it are its arithmetic intensity.
double bytes_per_call(const cnnc_layer& l, Phase p, int64_t n) {
  const double x = double(n) * l.in_h * l.in_w * l.in_c,
               y = double(n) * l.out_h * l.out_w * l.out_c, w = double(l.weight_count),
               b = double(l.bias_count);
  double floats = 0;
  if (l.kind == CNNC_CONV || l.kind == CNNC_DENSE)
    floats = p == Phase::forward         ? x + w + b + y
             : p == Phase::backward_data ? y + w + x
                                         : x + y + w + b;
  else
    floats = p == Phase::forward ? x + y : (l.kind == CNNC_MAXPOOL ? 2 * x + y : x + y);
  return 4 * floats;
}

// Times `body`, which processes `images` images per call; sets the counters every engine shares.
// peak_share divides by the 1-thread FMA peak, or the bf16 peak for bf16 code.
template <class Body>
void time_layer(benchmark::State& state, double flops_per_call, double bytes, int64_t images,
                Body&& body, bool bf16 = false) {
  body();  // warm: first-touch pages and caches outside the timing
  Clock::time_point t0 = Clock::now();
  for (auto _ : state) body();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  double calls = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] =
      benchmark::Counter(calls * flops_per_call / 1e9, benchmark::Counter::kIsRate);
  state.counters["img/s"] =
      benchmark::Counter(calls * static_cast<double>(images), benchmark::Counter::kIsRate);
  state.counters["peak_share"] = calls * flops_per_call / 1e9 / seconds / peak(1, bf16);
  state.counters["bytes"] = bytes;
  state.counters["flops"] = flops_per_call;
}

// The generic engine's kernels for one layer at batch 64, on random data. conv_backward and
// dense_backward compute dx and dw together unless given null for one, which is how the two
// backward phases are timed apart; the bias gradient goes with the weights.
struct GenericLayer {
  explicit GenericLayer(const cnnc_layer& layer) : l(layer) {
    const int64_t in = int64_t{l.in_h} * l.in_w * l.in_c,
                  out = int64_t{l.out_h} * l.out_w * l.out_c;
    x = aligned(kBatch * in);
    dx = aligned(kBatch * in);
    y = aligned(kBatch * out);
    dy = aligned(kBatch * out);
    w = aligned(std::max<int64_t>(1, l.weight_count));
    dw = aligned(std::max<int64_t>(1, l.weight_count));
    b = aligned(std::max<int32_t>(1, l.out_c));
    db = aligned(std::max<int32_t>(1, l.out_c));
    col = aligned(std::max<int64_t>(1, l.kind == CNNC_CONV ? cnnc::rt::conv_col_floats(l) : 0));
    pack = aligned(cnnc::rt::kGemmPackFloats);
    uint64_t s = 7;
    auto next = [&] {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<float>(s >> 40) / static_cast<float>(1 << 24);
    };
    for (int64_t i = 0; i < kBatch * in; ++i) x[i] = std::max(0.0f, next() - 0.2f);
    for (int64_t i = 0; i < kBatch * out; ++i) dy[i] = next() - 0.5f;
    for (int64_t i = 0; i < l.weight_count; ++i) w[i] = (next() - 0.5f) * 0.1f;
  }
  void run(Phase p) {
    using namespace cnnc::rt;
    switch (l.kind) {
      case CNNC_CONV:
        if (p == Phase::forward)
          conv_forward(l, kBatch, x.get(), w.get(), b.get(), y.get(), col.get(), pack.get());
        else if (p == Phase::backward_data)
          conv_backward(l, kBatch, x.get(), w.get(), dy.get(), dx.get(), nullptr, nullptr,
                        col.get(), pack.get());
        else
          conv_backward(l, kBatch, x.get(), w.get(), dy.get(), nullptr, dw.get(), db.get(),
                        col.get(), pack.get());
        break;
      case CNNC_DENSE:
        if (p == Phase::forward)
          dense_forward(l, kBatch, x.get(), w.get(), b.get(), y.get(), pack.get());
        else if (p == Phase::backward_data)
          dense_backward(l, kBatch, x.get(), w.get(), dy.get(), dx.get(), nullptr, nullptr,
                         pack.get());
        else
          dense_backward(l, kBatch, x.get(), w.get(), dy.get(), nullptr, dw.get(), db.get(),
                         pack.get());
        break;
      case CNNC_MAXPOOL:
        if (p == Phase::forward)
          maxpool_forward(l, kBatch, x.get(), y.get());
        else
          maxpool_backward(l, kBatch, x.get(), dy.get(), dx.get());
        break;
      case CNNC_AVGPOOL:
        if (p == Phase::forward)
          avgpool_forward(l, kBatch, x.get(), y.get());
        else
          avgpool_backward(l, kBatch, dy.get(), dx.get());
        break;
      default: break;
    }
    benchmark::ClobberMemory();
  }
  cnnc_layer l;
  std::unique_ptr<float[], Free> x, dx, y, dy, w, dw, b, db, col, pack;
};

// Every Specialized model built so far, kept for the whole run: the kernels point into them.
std::vector<std::unique_ptr<Specialized>>& specialized_models() {
  static std::vector<std::unique_ptr<Specialized>> v;
  return v;
}

void register_layers(const ModelApi& api, std::vector<std::string>& notes) {
  // The layer table comes from the specialised model itself: the same rows the generic engine
  // and oneDNN are then given.
  cnnc_model* probe = api.create(kBatch, "portable");
  if (!probe) throw std::runtime_error(fmt::format("{}: cannot create the model", api.name));
  std::vector<cnnc_layer> layers(probe->layers, probe->layers + probe->layer_count);
#ifdef CNNC_BENCH_ONEDNN
  // oneDNN's layers are those of its whole network, in the formats the network chose for them,
  // after one training step has filled its buffers. The network's input memory points at the
  // step's images from then on, so they live as long as the network's benchmarks.
  std::shared_ptr<OnednnNet> onednn;
  std::shared_ptr<StepInputs> inputs;
  // A bf16 copy's layers have their rows already, from the model it copies.
  if (!api.bf16) {
    try {
      onednn = std::make_shared<OnednnNet>(*probe, kBatch);
      inputs = std::make_shared<StepInputs>(*probe);
      onednn->set_params(inputs->params.data());
      onednn->train_step(inputs->images.get(), inputs->labels.data(), inputs->opt, 0, 0, 1);
    } catch (const std::exception& e) {
      notes.push_back(fmt::format("{}: oneDNN: {}", api.name, e.what()));
    }
  }
#endif
  api.destroy(probe);
  // The network's order, for tables: random interleaving scrambles the order of the results.
  std::string order;
  for (const cnnc_layer& l : layers) order += fmt::format("{}{}", order.empty() ? "" : ",", l.name);
  if (!api.bf16) benchmark::AddCustomContext(fmt::format("layers_{}", api.name), order);

  // The specialised kernels of every target the CPU runs, best first.
  struct Target {
    std::string name;
    Specialized* model;
    const cnnc_kernel* kernels;
    int32_t count;
  };
  std::vector<Target> targets;
  if (!api.kernels) {
    notes.push_back(fmt::format(
        "{}: the generated code has no kernel table (cnnc_{}_kernels); specialised per-layer "
        "benchmarks skipped",
        api.name, api.name));
  } else {
    const std::vector<const char*> isas = api.bf16 ? std::vector<const char*>{"avx512_bf16"}
                                                   : std::vector<const char*>{"avx512", "avx2"};
    for (const char* t : isas) {
      const cnnc_kernel* k = nullptr;
      int32_t count = api.kernels(t, &k);
      if (count <= 0) {
        if (api.bf16)
          notes.push_back(fmt::format("{}: this CPU lacks AVX512_BF16: no bf16 rows", api.name));
        continue;
      }
      specialized_models().push_back(std::make_unique<Specialized>(api, t));
      Specialized* s = specialized_models().back().get();
      if (!s->model) continue;
      targets.push_back({t, s, k, count});
    }
  }

  for (size_t index = 0; index < layers.size(); ++index) {
    const cnnc_layer& l = layers[index];
    if (!benched(l)) continue;
    auto generic = api.bf16 ? nullptr : std::make_shared<GenericLayer>(l);
    for (Phase p : {Phase::forward, Phase::backward_data, Phase::backward_weights}) {
      if (!has_phase(l, p)) continue;
      const std::string base = fmt::format("layer/{}/{}/{}", api.name, l.name, phase_name(p));
      const double flops = flops_per_image(l, p) * kBatch, bytes = bytes_per_call(l, p, kBatch);
      if (generic)
        benchmark::RegisterBenchmark((base + "/generic").c_str(), [generic, p, flops,
                                                                   bytes](auto& st) {
          time_layer(st, flops, bytes, kBatch, [&] { generic->run(p); });
        })->UseRealTime();
#ifdef CNNC_BENCH_ONEDNN
      if (onednn && onednn->has(index, p))
        benchmark::RegisterBenchmark((base + "/onednn").c_str(), [onednn, inputs, index, p, flops,
                                                                  bytes](auto& st) {
          st.SetLabel(onednn->implementation(index, p));
          time_layer(st, flops, bytes, kBatch, [&] { onednn->run(index, p); });
        })->UseRealTime();
#endif
      for (const Target& t : targets) {
        for (int32_t i = 0; i < t.count; ++i) {
          const cnnc_kernel& k = t.kernels[i];
          if (l.name != std::string(k.layer) || std::string(k.phase) != phase_name(p)) continue;
          // One benchmark iteration covers the batch of 64 in runs of k.samples images.
          int32_t runs = std::max(1, kBatch / std::max(1, k.samples));
          Specialized* s = t.model;
          const bool bf16 = api.bf16;
          benchmark::RegisterBenchmark((base + "/specialized-" + t.name).c_str(), [s, k, runs, l, p,
                                                                                   bytes,
                                                                                   bf16](auto& st) {
            time_layer(
                st, k.flops * runs, bytes, int64_t{k.samples} * runs,
                [&] {
                  for (int32_t r = 0; r < runs; ++r)
                    k.run(s->params.data(), s->grads.data(), s->workspace.get());
                  benchmark::ClobberMemory();
                },
                bf16);
            st.counters["flops_ratio"] = k.flops / std::max(1, k.samples) / flops_per_image(l, p);
          })->UseRealTime();
        }
      }
    }
  }
}

// ---- whole training steps ----

// One optimizer step on a batch of 64 through the ABI, split and reduced as cnnc train does
// (rt::TrainStep): the weights prepared (bf16), model->train per slice, the slices' sum, and
// model->update_range by ranges.
// Verifies before timing: a first step that is not finite ends the benchmark with an error.
bool first_step_finite(benchmark::State& state, bool finite) {
  if (finite) return true;
  state.SkipWithError("the first step is not finite");
  for (auto _ : state) {
  }
  return false;
}

// Times `body`, one step on the batch, on `threads` threads; sets the counters of whole steps.
// peak_share divides by the FP32 peak for every engine, so that steps compare; a bf16 step also
// gets bf16_peak_share.
template <class Body>
void time_step(benchmark::State& state, int threads, double flops_per_image, Body&& body,
               bool bf16 = false) {
  Clock::time_point t0 = Clock::now();
  for (auto _ : state) body();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  double images_done = static_cast<double>(state.iterations()) * kBatch;
  state.counters["img/s"] = benchmark::Counter(images_done, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(images_done * flops_per_image / 1e9, benchmark::Counter::kIsRate);
  const double gflops = images_done * flops_per_image / 1e9 / seconds;
  state.counters["peak_share"] = gflops / peak(threads);
  if (bf16) state.counters["bf16_peak_share"] = gflops / peak(threads, true);
}

void train_step(benchmark::State& state, const cnnc_model& m, int threads, double flops_per_image,
                bool bf16) {
  cnnc::rt::ThreadPool pool(threads);
  cnnc::rt::TrainStep step(m, pool, kBatch);
  StepInputs in(m);
  auto run = [&] {
    return step.run(in.params, in.images.get(), in.labels.data(), kBatch, in.opt, 0, 0, 1)
        .non_finite.empty();
  };
  if (!first_step_finite(state, run())) return;
  time_step(
      state, threads, flops_per_image,
      [&] {
        ++in.opt.step;
        run();
      },
      bf16);
  state.SetLabel(m.engine);
}

// A step's weight preparation alone (cnnc_model::prepare): every thread makes its part, as
// TrainStep::run does before its slices; the time per step, not per image.
void prepare_step(benchmark::State& state, const cnnc_model& m, int threads) {
  cnnc::rt::ThreadPool pool(threads);
  StepInputs in(m);
  cnnc::rt::AlignedBuffer prepared = cnnc::rt::aligned_buffer(m.prepared_bytes);
  for (auto _ : state)
    pool.run([&](int t) { m.prepare(&m, in.params.data(), prepared.get(), t, threads); });
  state.SetLabel(m.engine);
}

#ifdef CNNC_BENCH_ONEDNN
// oneDNN's whole network on `threads` threads, a training step or an inference of the batch, in
// one activation layout: the comparison behind OnednnNet's default (onednn_net.hpp).
void onednn_step(benchmark::State& state, const cnnc_model& m, OnednnLayout layout, int threads,
                 bool train, double flops_per_image) {
  cnnc::bench::onednn_set_threads(threads);  // before the primitives: see onednn_net.hpp
  {
    OnednnNet net(m, kBatch, layout);
    StepInputs in(m);
    net.set_params(in.params.data());
    std::vector<float> outputs(static_cast<size_t>(kBatch) * m.output_size);
    auto run = [&] {
      return std::isfinite(net.train_step(in.images.get(), in.labels.data(), in.opt, 0, 0, 1));
    };
    if (first_step_finite(state, run())) {
      time_step(state, threads, flops_per_image, [&] {
        if (!train) return net.forward(in.images.get(), outputs.data());
        ++in.opt.step;
        run();
      });
    }
  }
  cnnc::bench::onednn_set_threads(1);  // the per-layer benchmarks' count, for what runs next
}
#endif

cnnc::rt::ModelSpec spec_of(const cnnc_model& m) {
  cnnc::rt::ModelSpec s;
  s.name = m.name;
  s.input_h = m.input_h;
  s.input_w = m.input_w;
  s.input_c = m.input_c;
  s.loss = m.loss;
  s.layers.assign(m.layers, m.layers + m.layer_count);
  s.param_count = m.param_count;
  return s;
}

double flops_per_step_image(const cnnc_model& m, bool train) {
  // Forward, and in training the two backward products of conv and dense layers, every layer's
  // phase counted as in flops_per_image: the share of peak a step reaches.
  double f = 0;
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    if (!benched(l)) continue;
    f += flops_per_image(l, Phase::forward);
    if (!train) continue;
    f += flops_per_image(l, Phase::backward_data) * (i > 0 ? 1 : 0);
    if (has_phase(l, Phase::backward_weights)) f += flops_per_image(l, Phase::backward_weights);
  }
  return f;
}

struct StepModels {
  std::unique_ptr<cnnc::rt::GenericModel> generic;
  cnnc_model* specialized = nullptr;
};

void register_train_steps(const ModelApi& api) {
  static std::vector<StepModels> keep;  // the benchmarks point into these for the whole run
  StepModels sm;
  sm.specialized = api.create(kBatch, "auto");
  if (!sm.specialized) return;
  // A bf16 copy's step is its bf16 code's alone (the generic and oneDNN steps are the FP32
  // model's); a CPU without AVX512_BF16 would run FP32 under its name.
  if (api.bf16 && std::string(sm.specialized->engine) != "specialized-avx512_bf16") {
    api.destroy(sm.specialized);
    return;
  }
  if (!api.bf16)
    sm.generic = std::make_unique<cnnc::rt::GenericModel>(spec_of(*sm.specialized), kBatch);
  keep.push_back(std::move(sm));
  const StepModels& k = keep.back();
  const double flops = flops_per_step_image(*k.specialized, true);
  std::vector<const cnnc_model*> models{k.specialized};
  if (k.generic) models.insert(models.begin(), k.generic->abi());
  for (int threads : {1, 2}) {
    for (const cnnc_model* m : models) {
      const char* engine = std::string(m->engine) == "generic" ? "generic"
                           : api.bf16                          ? "specialized-bf16"
                                                               : "specialized";
      std::string name = fmt::format("train_step/{}/{}/threads:{}", api.name, engine, threads);
      const bool bf16 = api.bf16;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [m, threads, flops, bf16](benchmark::State& st) {
                                     train_step(st, *m, threads, flops, bf16);
                                   })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    const cnnc_model* s = k.specialized;
    if (s->abi_version >= 4 && s->prepare && s->prepared_bytes > 0)
      benchmark::RegisterBenchmark(
          fmt::format("prepare/{}/{}/threads:{}", api.name,
                      api.bf16 ? "specialized-bf16" : "specialized", threads)
              .c_str(),
          [s, threads](benchmark::State& st) { prepare_step(st, *s, threads); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
#ifdef CNNC_BENCH_ONEDNN
    if (api.bf16) continue;
    const cnnc_model* m = k.specialized;  // its layer table
    for (OnednnLayout layout : {OnednnLayout::any, OnednnLayout::nhwc}) {
      for (bool train : {true, false}) {
        std::string name = fmt::format("{}/{}/onednn-{}/threads:{}", train ? "train_step" : "infer",
                                       api.name, cnnc::bench::layout_name(layout), threads);
        const double f = flops_per_step_image(*m, train);
        benchmark::RegisterBenchmark(name.c_str(),
                                     [m, layout, threads, train, f](benchmark::State& st) {
                                       onednn_step(st, *m, layout, threads, train, f);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
#endif
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  for (int threads : {1, 2}) {
    using cnnc::bench::PeakIsa;
    for (PeakIsa isa : {PeakIsa::avx512, PeakIsa::avx2, PeakIsa::avx512_bf16})
      benchmark::RegisterBenchmark(
          fmt::format("peak_fma/{}", cnnc::bench::peak_isa_name(isa)).c_str(), BM_peak_fma, isa)
          ->Arg(threads)
          ->ArgName("threads")
          ->Iterations(1)
          ->UseRealTime();
  }
  for (auto [level, bytes] : {std::pair{"memory", int64_t{128} << 20}, {"l2", int64_t{384} << 10}})
    benchmark::RegisterBenchmark((std::string("bandwidth/") + level).c_str(), BM_bandwidth, bytes)
        ->Arg(1)
        ->Arg(2)
        ->ArgName("threads")
        ->Iterations(1)
        ->UseRealTime();
  std::vector<std::string> notes;
#ifdef CNNC_BENCH_ONEDNN
  cnnc::bench::onednn_set_threads(1);  // before any primitive exists: see onednn_net.hpp
#else
  notes.push_back("built without oneDNN (find_package(dnnl) failed): no oneDNN benchmarks");
#endif
  for (const ModelApi& api : kModels) register_layers(api, notes);
  for (const ModelApi& api : kModels) register_train_steps(api);
  for (const std::string& n : notes) fmt::print(stderr, "bench_layers: {}\n", n);
  for (int threads : {1, 2}) {
    benchmark::AddCustomContext(
        fmt::format("peak_gflops_{}_thread{}", threads, threads > 1 ? "s" : ""),
        fmt::format("{:.1f}", peak(threads)));
    benchmark::AddCustomContext(
        fmt::format("bf16_peak_gflops_{}_thread{}", threads, threads > 1 ? "s" : ""),
        fmt::format("{:.1f}", peak(threads, true)));
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
