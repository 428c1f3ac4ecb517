// Training and evaluation of any model behind the C ABI: batches split across a thread pool,
// gradients reduced in a fixed order, so that one seed and one thread count give one result.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "data/augment.hpp"
#include "data/dataset.hpp"
#include "thread_pool.hpp"

namespace cnnc::rt {

struct LrSchedule {
  enum class Kind { constant, step, cosine } kind = Kind::constant;
  int32_t every = 0;  // step: epochs between decays
  float gamma = 0.1f;
};

// The learning rate of a 0-based epoch: base, base * gamma^(epoch / every), or the cosine
// from base down to 0 over the run.
float learning_rate(const LrSchedule& s, float base, int32_t epoch, int32_t epochs);

struct TrainOptions {
  int32_t epochs = 10;
  int32_t batch = 64;
  uint64_t seed = 1;
  cnnc_optimizer optimizer{};  // lr is the base rate; step is managed by the trainer
  LrSchedule schedule;
  AugmentSpec augment;
  std::filesystem::path out_dir;  // history.csv and checkpoint.bin; empty: write nothing
  bool resume = false;            // continue from out_dir/checkpoint.bin
  bool progress_bar = false;      // redraw one line on stderr while an epoch runs
  int64_t max_steps = 0;          // stop after this many optimizer steps (0: no limit)
};

struct EvalResult {
  int64_t count = 0;
  double loss = 0;                 // mean per sample
  double accuracy = 0;             // 0..1
  std::vector<int64_t> confusion;  // [true class][predicted class], output_size^2
};

struct EpochRecord {
  int32_t epoch = 0;  // 1-based
  float lr = 0;
  double train_loss = 0, train_accuracy = 0;
  EvalResult validation, test;
  double seconds = 0, images_per_second = 0;
};

struct TrainResult {
  std::vector<EpochRecord> history;
  double train_seconds = 0;  // in training steps only, evaluation excluded
  int64_t images = 0;        // trained on in this run
  bool diverged = false;
  std::string divergence;  // the layer and batch where a non-finite value appeared
};

// Forward passes over data in slices of at most model.max_batch per thread.
EvalResult evaluate(const cnnc_model& model, const std::vector<float>& params,
                    const LabeledImages& data, ThreadPool& pool);

// Trains params in place on data.train; evaluates data.validation (if any) and data.test after
// each epoch, appends to out_dir/history.csv and writes out_dir/checkpoint.bin. A non-finite loss
// or gradient stops training with the result's divergence set and the last good checkpoint
// kept. `report` receives each epoch's record as it completes.
TrainResult train(const cnnc_model& model, std::vector<float>& params, const Mnist& data,
                  const TrainOptions& options, ThreadPool& pool,
                  const std::function<void(const EpochRecord&)>& report);

}  // namespace cnnc::rt
