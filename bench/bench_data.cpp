// bench_data.cpp: how fast the data path prepares batches (64 images of 28x28, plain and with
// shift+rotate+scale augmentation), so that it is known never to limit training.
// Uses data/mnist when present, synthetic images otherwise; checks a batch before timing.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <stdexcept>

#include "data/augment.hpp"
#include "data/batches.hpp"
#include "data/dataset.hpp"

namespace {

using namespace cnnc::rt;

constexpr int32_t kBatch = 64;

// MNIST's training set, or 60000 synthetic 28x28 images with a bright square in each.
const LabeledImages& images() {
  static const LabeledImages data = [] {
    const auto dir = std::filesystem::path(CNNC_SOURCE_DIR) / "data" / "mnist";
    if (std::filesystem::is_directory(dir)) return load_split(dir, Split::train, InputSpec{});
    LabeledImages d;
    d.count = 60000;
    d.rows = d.cols = 28;
    d.pixels.assign(static_cast<size_t>(d.count) * 784, 0);
    for (int32_t i = 0; i < d.count; ++i) {
      const int32_t top = 4 + i % 12, left = 4 + (i / 12) % 12;
      for (int32_t y = top; y < top + 10; ++y) {
        for (int32_t x = left; x < left + 10; ++x)
          d.pixels[static_cast<size_t>(i) * 784 + y * 28 + x] = 255;
      }
      d.labels.push_back(static_cast<uint8_t>(i % 10));
    }
    return d;
  }();
  return data;
}

// Runs one epoch's batches round and round, as the trainer does.
template <typename Prepare>
void run(benchmark::State& state, Prepare prepare) {
  const LabeledImages& data = images();
  const auto order = epoch_order(data.count, 1, 0);
  std::vector<float> x(static_cast<size_t>(kBatch) * 784);
  std::vector<int32_t> y(kBatch);

  // Verify before timing: the first batch holds the right labels and pixels in [0, 1].
  prepare(std::span(order).first(kBatch), x.data(), y.data());
  for (int32_t b = 0; b < kBatch; ++b) {
    if (y[b] != data.labels[order[b]]) throw std::logic_error("bench_data: wrong label");
  }
  for (float v : x) {
    if (!(v >= 0.0f && v <= 1.0f)) throw std::logic_error("bench_data: pixel outside [0, 1]");
  }

  size_t begin = 0;
  for (auto _ : state) {
    if (begin + kBatch > order.size()) begin = 0;
    prepare(std::span(order).subspan(begin, kBatch), x.data(), y.data());
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
    begin += kBatch;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["images_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBatch), benchmark::Counter::kIsRate);
}

void BM_prepare_batch(benchmark::State& state) {
  run(state, [](std::span<const int32_t> idx, float* x, int32_t* y) {
    prepare_batch(images(), idx, x, y);
  });
}
BENCHMARK(BM_prepare_batch);

void BM_prepare_batch_augmented(benchmark::State& state) {
  const AugmentSpec spec{2, 15, 0.1f};
  run(state, [&](std::span<const int32_t> idx, float* x, int32_t* y) {
    prepare_augmented_batch(images(), idx, spec, 1, 0, x, y);
  });
}
BENCHMARK(BM_prepare_batch_augmented);

void BM_epoch_order(benchmark::State& state) {
  uint32_t epoch = 0;
  for (auto _ : state) benchmark::DoNotOptimize(epoch_order(60000, 1, epoch++).data());
  state.SetItemsProcessed(state.iterations() * 60000);
}
BENCHMARK(BM_epoch_order)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
