// Training and evaluation of any model behind the C ABI: batches split across a thread pool,
// gradients reduced in a fixed order, so that one seed and one thread count give one result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
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

// 64-byte aligned scratch of model.workspace_bytes for each thread of a pool, as the ABI's
// workspace requires; its contents between calls mean nothing.
class Workspaces {
 public:
  Workspaces(const cnnc_model& model, int threads);
  void* operator[](int thread) const { return buffers_[static_cast<size_t>(thread)].get(); }

 private:
  std::vector<std::unique_ptr<std::byte, decltype(&std::free)>> buffers_;
};

// Inference on a prepared batch: images [n][input_h][input_w][input_c] -> outputs
// [n][output_size], split across the pool in slices of at most model.max_batch as training
// splits a batch. Any n >= 0; workspaces must hold one per thread of the pool.
void forward_batch(const cnnc_model& model, const std::vector<float>& params, const float* images,
                   int32_t n, float* outputs, ThreadPool& pool, const Workspaces& workspaces);

// One optimizer step on a prepared batch, exactly as train() takes it: the batch cut into one
// slice per thread, each slice's gradient into its own buffer, the buffers summed in slice
// order, the sums checked for NaN and infinity, and only then the update. Owns everything a
// step touches, sized once for batches of up to `batch` samples, so that `cnnc train` and
// `cnnc bench` run (and time) the same code.
class TrainStep {
 public:
  TrainStep(const cnnc_model& model, ThreadPool& pool, int32_t batch);

  struct Result {
    float loss_sum = 0;      // the n per-sample losses summed
    int64_t correct = 0;     // samples whose largest output is their label
    std::string non_finite;  // the first layer with a non-finite gradient, "the loss", or ""
  };

  // Trains params in place on images [n][input_h][input_w][input_c] and labels [n], 1 <= n <=
  // batch. opt carries this step's lr and step (1 for the first); epoch, sample_base (the
  // batch's first index in the epoch) and seed key the dropout masks. When the loss or a
  // gradient is not finite, params and the optimizer state are left as they were.
  Result run(std::vector<float>& params, const float* images, const int32_t* labels, int32_t n,
             const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base, uint64_t seed);

  // 2 * param_count floats (cnnc_model::update); zero before the first step, replaced on resume.
  std::vector<float>& optimizer_state() { return state_; }
  // The last run's outputs, [n][output_size].
  const std::vector<float>& outputs() const { return outputs_; }
  const Workspaces& workspaces() const { return workspaces_; }

 private:
  const cnnc_model& m_;
  ThreadPool& pool_;
  int32_t batch_;
  Workspaces workspaces_;
  std::vector<std::vector<float>> slice_grads_;  // one per slice of a full batch
  std::vector<float> slice_loss_, grads_, state_, outputs_;
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
