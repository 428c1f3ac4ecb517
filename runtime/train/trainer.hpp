// Training and evaluation of any model behind the C ABI: batches split across a thread pool,
// gradients reduced in a fixed order, so that one seed and one thread count give one result.
#pragma once

#include <atomic>
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
#include "train/checkpoint.hpp"
#include "train/shared_work.hpp"
#include "train/slice_exchange.hpp"
#include "train/thread_pool.hpp"

namespace cnnc::rt {

struct LrSchedule {
  enum class Kind { constant, step, cosine, onecycle } kind = Kind::constant;
  int32_t every = 0;  // step: epochs between decays
  float gamma = 0.1f;
  double warmup = 0;  // onecycle: the share of the run's steps the rate rises over
};

// The learning rate of the 0-based step `step` of `steps`, in the 0-based epoch `epoch` of
// `epochs`: base, base * gamma^(epoch / every), or the cosine from base down to 0 over the run,
// all set per epoch; or, per step, onecycle's straight rise from 0 to base over the warmup's
// share of the steps and straight fall to 0 at the end (0 after it).
float learning_rate(const LrSchedule& s, float base, int32_t epoch, int32_t epochs, int64_t step,
                    int64_t steps);

struct TrainOptions {
  int32_t epochs = 10;
  int32_t schedule_epochs = 0;  // the run the learning-rate schedule spans; 0: epochs
  int32_t batch = 64;
  uint64_t seed = 1;
  cnnc_optimizer optimizer{};  // lr is the base rate; step is managed by the trainer
  LrSchedule schedule;
  AugmentSpec augment;
  std::filesystem::path out_dir;  // history.csv and checkpoint.bin; empty: write nothing
  bool resume = false;            // continue from out_dir/checkpoint.bin
  bool evaluate_epochs = true;    // evaluate validation and test after every epoch
  int64_t max_steps = 0;          // end the run after this many optimizer steps (0: no limit)
  // Recorded in checkpoints with the settings above, since the bits depend on it too (0: a
  // learner without a thread pool).
  int32_t threads = 0;
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

// Where the run stands after one optimizer step: what the per-step hook sees.
struct StepRecord {
  int32_t epoch = 0, epochs = 0;   // 1-based epoch, and the run's
  int32_t batch = 0, batches = 0;  // 1-based batch, and this epoch's
  int64_t step = 0;                // optimizer steps taken in the run, this one included
  float lr = 0;
  double loss = 0, accuracy = 0;  // this epoch's so far, per sample
  int64_t images = 0;             // trained on in this epoch so far
  double epoch_seconds = 0;       // in this epoch's training steps so far
  double epoch_elapsed = 0;       // wall-clock since this epoch began, evaluation excluded
  double run_seconds = 0;         // in the run's training steps so far
};

struct TrainResult {
  std::vector<EpochRecord> history;
  double train_seconds = 0;  // in training steps only, evaluation excluded
  int64_t images = 0;        // trained on in this run
  int64_t steps = 0;         // optimizer steps taken, resumed ones included
  bool stopped = false;      // a hook ended the run (within an epoch; checkpointed if out_dir)
  bool diverged = false;
  std::string divergence;  // the layer and batch where a non-finite value appeared
};

// What callers watch the run with. after_step returning false ends the run after that step: the
// epoch under way is not evaluated, and when out_dir is set a checkpoint of where the run stands
// within it is written, which --resume continues to an uninterrupted run's bits.
struct TrainHooks {
  std::function<bool(const StepRecord&)> after_step;
  std::function<void(const EpochRecord&)> after_epoch;
};

// Memory 64-byte aligned, as the ABI wants workspaces and prepared weights.
using AlignedBuffer = std::unique_ptr<std::byte, decltype(&std::free)>;
AlignedBuffer aligned_buffer(int64_t bytes);

// 64-byte aligned scratch of model.workspace_bytes for each thread of a pool, as the ABI's
// workspace requires; its contents between calls mean nothing.
class Workspaces {
 public:
  Workspaces(const cnnc_model& model, int threads);
  void* operator[](int thread) const { return buffers_[static_cast<size_t>(thread)].get(); }

 private:
  std::vector<AlignedBuffer> buffers_;
};

// Inference on a prepared batch: images [n][input_h][input_w][input_c] -> outputs
// [n][output_size], split across the pool in slices of at most model.max_batch as training
// splits a batch. Any n >= 0; workspaces must hold one per thread of the pool.
void forward_batch(const cnnc_model& model, const std::vector<float>& params, const float* images,
                   int32_t n, float* outputs, ThreadPool& pool, const Workspaces& workspaces);

// What one optimizer step reports.
struct StepResult {
  float loss_sum = 0;      // the n per-sample losses summed
  int64_t correct = 0;     // samples whose largest output is their label
  std::string non_finite;  // the first layer with a non-finite gradient, "the loss", or ""
};

// Work cut in `parts` independent parts: f(part, parts) is called once for each part.
using SplitWork = std::function<void(int part, int parts)>;

// A dense layer's weights in the parameter vector: layer index, units, the first weight's
// offset and the weights of one unit.
struct DenseWeights {
  int32_t layer, units;
  int64_t offset, row;
};

// Units [first, last) of the dense layer dense_weights_[dense]: the part of the step's weight
// gradient that one call of cnnc_model::dense_weights writes.
struct DenseChunk {
  size_t dense;
  int32_t first, last;
};

// The chunks of every thread's share, thread 0's first; starts[t] is thread t's first chunk and
// starts.back() the number of chunks (SharedWork).
struct DenseChunks {
  std::vector<DenseChunk> chunks;
  std::vector<size_t> starts;
};

// One optimizer step on a prepared batch, exactly as train() takes it: the batch cut into one
// slice per thread, each slice's gradient into its own buffer, the buffers summed in slice
// order, the sums checked for NaN and infinity, and only then the update. When every slice has
// a thread of its own and the model can (cnnc_model::dense_weights), the dense layers' weight
// gradients skip the buffers: the model sums them from the slices' workspaces, with the same
// bits, each thread its share of the units as soon as it is back from its slices, and then what
// a slower thread has not begun. Owns everything a step touches, sized once for batches of up
// to `batch` samples, so that `cnnc train` and `cnnc bench` run (and time) the same code. With
// an exchange, the batch is cut as one process with the threads of every process would cut it,
// this process trains its share of the slices (slice_exchange.hpp), and the exchange sums the
// gradients of all in slice order.
class TrainStep {
 public:
  TrainStep(const cnnc_model& model, ThreadPool& pool, int32_t batch,
            SliceExchange* exchange = nullptr);

  // Trains params in place on images [n][input_h][input_w][input_c] and labels [n], 1 <= n <=
  // batch. opt carries this step's lr and step (1 for the first); epoch, sample_base (the
  // batch's first index in the epoch) and seed key the dropout masks. When the loss or a
  // gradient is not finite, params and the optimizer state are left as they were.
  // then(t, threads), when given, runs on every thread t of the pool at the end of the step's
  // job, once the step reads images and labels no more: work that would otherwise need a job of
  // its own, such as preparing the next batch.
  StepResult run(std::vector<float>& params, const float* images, const int32_t* labels, int32_t n,
                 const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base, uint64_t seed,
                 const SplitWork& then = {});

  // 2 * param_count floats (cnnc_model::update); zero before the first step, replaced on resume.
  std::vector<float>& optimizer_state() { return state_; }
  // The last run's outputs, [n][output_size]; with an exchange, only this process's slices'.
  const std::vector<float>& outputs() const { return outputs_; }
  const Workspaces& workspaces() const { return workspaces_; }

 private:
  const cnnc_model& m_;
  ThreadPool& pool_;
  int32_t batch_;
  SliceExchange* exchange_;
  Workspaces workspaces_;
  std::vector<std::vector<float>> slice_grads_;  // one per slice of this process's share
  std::vector<double> slice_scores_;             // [slice][loss, correct]
  std::vector<float> grads_, state_, outputs_;
  std::vector<char> finite_;                   // per thread: its range of grads_ is finite
  std::vector<GradientRange> backward_order_;  // the trainable layers, last first
  // The trainable dense layers whose weight gradients the model can sum itself
  // (cnnc_model::dense_weights), by offset; empty when it cannot.
  std::vector<DenseWeights> dense_weights_;
  DenseChunks dense_chunks_;
  SharedWork shared_chunks_;               // of dense_chunks_, claimed anew in every step
  std::atomic<int> threads_returned_ = 0;  // from their slices, in the step under way
  std::vector<cnnc_pass> passes_;          // the last step's, per slice, for dense_weights
  LayersDone layers_done_;
  // The weights as the model's products read them (cnnc_model::prepare), made once per step by
  // all threads for every slice; null when the model reads params as they are.
  AlignedBuffer prepared_;
};

// The evaluation loop of any engine: data in chunks of at most `chunk` samples, each prepared
// and passed to forward(images [n][H][W][C], n, outputs [n][output_size]), the outputs scored
// with the loss `model` defines (cnnc_abi.h). Peers that are not behind the ABI use it with the
// ABI's layer table as `model`.
using ForwardChunk = std::function<void(const float* images, int32_t n, float* outputs)>;
EvalResult evaluate(const cnnc_model& model, const LabeledImages& data, int32_t chunk,
                    const ForwardChunk& forward);

// Forward passes over data in slices of at most model.max_batch per thread.
EvalResult evaluate(const cnnc_model& model, const std::vector<float>& params,
                    const LabeledImages& data, ThreadPool& pool);

// What the epoch loop trains: an engine behind the C ABI (ModelLearner), or a peer that
// benchmarks train through the same loop.
class Learner {
 public:
  virtual ~Learner() = default;
  // One optimizer step on images [n][H][W][C] and labels [n], as TrainStep::run.
  virtual StepResult step(const float* images, const int32_t* labels, int32_t n,
                          const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                          uint64_t seed) = 0;
  // step(), and then every part of `then` once the step reads images and labels no more: how
  // the loop prepares the next batch. A learner with threads runs the parts on them, within the
  // step's own job, so that no thread waits while one converts images.
  virtual StepResult step_then(const float* images, const int32_t* labels, int32_t n,
                               const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                               uint64_t seed, const SplitWork& then) {
    StepResult r = step(images, labels, n, opt, epoch, sample_base, seed);
    if (then) then(0, 1);
    return r;
  }
  virtual EvalResult evaluate(const LabeledImages& data) = 0;
  // Nonzero for a learner that takes batches of exactly this size only: the loop then drops
  // an epoch's short last batch.
  virtual int32_t full_batches_only() const { return 0; }
  // What a checkpoint holds: the model behind the C ABI (its digest), its parameters and the
  // optimizer state; null for a learner that has none (it cannot write or resume checkpoints).
  virtual const cnnc_model* model() const { return nullptr; }
  virtual std::vector<float>* params() { return nullptr; }
  virtual std::vector<float>* optimizer_state() { return nullptr; }
  // The checkpoint a resumed run starts from, refused when its settings are not `settings`
  // (load_to_resume); the processes of a distributed run take rank 0's.
  virtual Checkpoint resume_from(const std::filesystem::path& checkpoint, uint64_t digest,
                                 const RunSettings& settings) {
    return load_to_resume(checkpoint, digest, model()->param_count, settings);
  }
};

// A model behind the C ABI, trained in place on params with a TrainStep sized for batch.
class ModelLearner final : public Learner {
 public:
  ModelLearner(const cnnc_model& model, std::vector<float>& params, ThreadPool& pool, int32_t batch,
               SliceExchange* exchange = nullptr);
  StepResult step(const float* images, const int32_t* labels, int32_t n, const cnnc_optimizer& opt,
                  uint32_t epoch, uint32_t sample_base, uint64_t seed) override;
  StepResult step_then(const float* images, const int32_t* labels, int32_t n,
                       const cnnc_optimizer& opt, uint32_t epoch, uint32_t sample_base,
                       uint64_t seed, const SplitWork& then) override;
  EvalResult evaluate(const LabeledImages& data) override;
  const cnnc_model* model() const override { return &m_; }
  std::vector<float>* params() override { return &params_; }
  std::vector<float>* optimizer_state() override { return &step_.optimizer_state(); }

 private:
  const cnnc_model& m_;
  std::vector<float>& params_;
  ThreadPool& pool_;
  TrainStep step_;
};

// The epoch loop, the one every feature trains with: each epoch's sample order from the seed,
// the learning rate from the schedule, batches prepared (augmented when asked), one step each;
// then validation and test evaluated, history.csv appended and checkpoint.bin written (when
// out_dir is set; the learner must then hold params). A non-finite loss or gradient stops
// training with the result's divergence set and the last checkpoint kept. The checkpoint records
// run_settings(); resuming with other settings throws std::runtime_error naming each difference.
TrainResult train(Learner& learner, const Mnist& data, const TrainOptions& options,
                  const TrainHooks& hooks = {});

// What a checkpoint of this run records, that a resumed run must match: the options' seed,
// batch, optimizer, schedule (with the epochs a cosine spans), augmentation and threads, the engine
// (its ISA) of the learner's model, and the training and validation sets' sizes and checksum.
RunSettings run_settings(const Learner& learner, const Mnist& data, const TrainOptions& options);

// The same for a model behind the C ABI: params trained in place.
TrainResult train(const cnnc_model& model, std::vector<float>& params, const Mnist& data,
                  const TrainOptions& options, ThreadPool& pool, const TrainHooks& hooks = {});

}  // namespace cnnc::rt
