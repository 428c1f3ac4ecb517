// Specifications of training through the C ABI: it learns, it is reproducible, it resumes to
// the same bits, its checkpoints refuse damage, the step bench times is the step it takes, and
// every shipped model takes a step.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "../dsl/check_text.hpp"
#include "../skip.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "data/augment.hpp"
#include "data/batches.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "train/checkpoint.hpp"
#include "train/params.hpp"
#include "train/trainer.hpp"

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

// Two classes a small conv net must tell apart: a bright blob on the left or on the right half
// of an 8x8 image, at a random place, over noise.
rt::LabeledImages blobs(int32_t count, uint64_t seed) {
  rt::LabeledImages d;
  d.count = count;
  d.rows = d.cols = 8;
  d.pixels.resize(static_cast<size_t>(count) * 64);
  d.labels.resize(static_cast<size_t>(count));
  uint64_t s = seed;
  auto next = [&] { return (s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int32_t i = 0; i < count; ++i) {
    uint8_t* img = d.pixels.data() + static_cast<size_t>(i) * 64;
    for (int p = 0; p < 64; ++p) img[p] = static_cast<uint8_t>(next() % 40);
    int label = static_cast<int>(next() % 2);
    int r = 1 + static_cast<int>(next() % 5), c = (label ? 4 : 0) + static_cast<int>(next() % 3);
    for (int y = r; y < r + 2; ++y)
      for (int x = c; x < c + 2; ++x) img[y * 8 + x] = 255;
    d.labels[static_cast<size_t>(i)] = static_cast<uint8_t>(label);
  }
  return d;
}

// MNIST-shaped noise with labels 0..9, for models that only need to take a step.
rt::LabeledImages noise(int32_t count, int32_t size) {
  rt::LabeledImages d;
  d.count = count;
  d.rows = d.cols = size;
  d.pixels.resize(static_cast<size_t>(count) * size * size);
  for (size_t i = 0; i < d.pixels.size(); ++i)
    d.pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  for (int32_t i = 0; i < count; ++i) d.labels.push_back(static_cast<uint8_t>(i % 10));
  return d;
}

const char* const blob_model =
    "model blobs\ninput 8x8x1\nconv 4 3x3 relu\nmaxpool 2x2\ndropout 0.1\ndense 2 softmax\n";

struct Run {
  rt::TrainResult result;
  std::vector<float> params;
  std::vector<float> lrs;  // each step's learning rate
};

// max_steps ends the run at the end of the epoch it falls in; stop_after ends it after that
// step, within its epoch, as Ctrl-C does.
Run train_blobs(int epochs, int threads, const fs::path& out = {}, bool resume = false,
                int64_t max_steps = 0, int64_t stop_after = 0, rt::LrSchedule schedule = {}) {
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", (32 + threads - 1) / threads);
  const cnnc_model& m = engine->model();
  rt::Mnist data{blobs(512, 1), {}, blobs(256, 2)};
  rt::TrainOptions o;
  o.epochs = epochs;
  o.batch = 32;
  o.seed = 7;
  o.optimizer = {CNNC_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
  o.out_dir = out;
  o.resume = resume;
  o.max_steps = max_steps;
  o.threads = threads;
  o.schedule = schedule;
  Run r;
  rt::TrainHooks hooks;
  hooks.after_step = [&](const rt::StepRecord& at) {
    r.lrs.push_back(at.lr);
    return at.step != stop_after;
  };
  rt::ThreadPool pool(threads);
  r.params = engine::initial_params(g, m, o.seed);
  r.result = rt::train(m, r.params, data, o, pool, hooks);
  return r;
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("cnnc_test_train_" + name + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST_CASE("training learns a synthetic task the network can solve") {
  Run r = train_blobs(3, 2);
  REQUIRE(r.result.history.size() == 3);
  CHECK(r.result.history.back().test.accuracy >= 0.95);
  CHECK(r.result.history.back().train_loss < r.result.history.front().train_loss);
}

TEST_CASE("the same seed and thread count give the same bits") {
  CHECK(rt::weights_digest(train_blobs(1, 2).params) ==
        rt::weights_digest(train_blobs(1, 2).params));
  CHECK(rt::weights_digest(train_blobs(1, 1).params) ==
        rt::weights_digest(train_blobs(1, 1).params));
}

TEST_CASE("resuming ends with exactly the weights of an uninterrupted run") {
  fs::path a = temp_dir("a"), b = temp_dir("b");
  Run whole = train_blobs(2, 2, a);
  train_blobs(2, 2, b, false, 16);  // ended after one epoch (16 steps)
  Run resumed = train_blobs(2, 2, b, true);
  CHECK(resumed.result.history.size() == 1);
  CHECK(rt::weights_digest(resumed.params) == rt::weights_digest(whole.params));
  std::ifstream history(b / "history.csv");
  std::string header, line1, line2;
  std::getline(history, header);
  std::getline(history, line1);
  std::getline(history, line2);
  CHECK(header.rfind("epoch,lr,train_loss", 0) == 0);
  CHECK(line1.rfind("1,", 0) == 0);
  CHECK(line2.rfind("2,", 0) == 0);
  fs::remove_all(a);
  fs::remove_all(b);
}

// The epoch column of history.csv, row by row.
std::vector<int> history_epochs(const fs::path& dir) {
  std::ifstream in(dir / "history.csv");
  std::string line;
  std::getline(in, line);
  std::vector<int> epochs;
  while (std::getline(in, line)) epochs.push_back(std::stoi(line));
  return epochs;
}

TEST_CASE("a run killed between history.csv and its checkpoint resumes with each row once") {
  fs::path a = temp_dir("killed_a"), b = temp_dir("killed_b");
  Run whole = train_blobs(3, 2, a);
  train_blobs(3, 2, b, false, 16);
  // What kill -9 leaves after writing epoch 2's row and before its checkpoint (the checkpoint
  // still says 1 epoch), with a temporary checkpoint of the killed process beside it.
  std::ofstream(b / "history.csv", std::ios::app) << "2,0.1,0.5,0.5,,,0.5,0.5,0.1,100.0\n";
  std::ofstream(b / "checkpoint.bin.tmp99999") << "torn";
  Run resumed = train_blobs(3, 2, b, true);
  CHECK(rt::weights_digest(resumed.params) == rt::weights_digest(whole.params));
  CHECK(history_epochs(b) == std::vector<int>{1, 2, 3});
  CHECK_FALSE(fs::exists(b / "checkpoint.bin.tmp99999"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("a directory that cannot take the run's files fails before the first step") {
  fs::path dir = temp_dir("unwritable");
  std::ofstream(dir / "file") << "a file, not a directory";
  CHECK_THROWS_WITH(train_blobs(1, 2, dir / "file" / "run"), Catch::Contains("cannot write"));
  // A fresh run leaves a checkpoint of its starting point before any step: resumable at once.
  fs::path fresh = temp_dir("fresh");
  Run r = train_blobs(1, 2, fresh);
  CHECK(fs::exists(fresh / "checkpoint.bin"));
  CHECK(history_epochs(fresh) == std::vector<int>{1});
  fs::remove_all(dir);
  fs::remove_all(fresh);
}

TEST_CASE("checkpoints round-trip and refuse damage, truncation and other models") {
  fs::path dir = temp_dir("ckpt");
  fs::path f = dir / "c.bin";
  rt::Checkpoint c{0x1234, 3, 0, 99, 0, 0, 0, 0, {}, {1.5f, -2.0f, 3.25f}, {0, 1, 2, 3, 4, 5}};
  rt::save_checkpoint(f, c);
  rt::Checkpoint back = rt::load_checkpoint(f, 0x1234, 3);
  CHECK(back.params == c.params);
  CHECK(back.optimizer == c.optimizer);
  CHECK(back.epochs_done == 3);
  CHECK(back.step == 99);
  CHECK_THROWS_WITH(rt::load_checkpoint(f, 0x9999, 3), Catch::Contains("different model"));
  std::string bytes;
  {
    std::ifstream in(f, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string flipped = bytes;
  flipped[50] ^= 1;
  std::ofstream(f, std::ios::binary | std::ios::trunc) << flipped;
  CHECK_THROWS_WITH(rt::load_checkpoint(f, 0x1234, 3), Catch::Contains("checksum mismatch"));
  std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 5);
  CHECK_THROWS_WITH(rt::load_checkpoint(f, 0x1234, 3), Catch::Contains("truncated"));
  std::ofstream(f, std::ios::binary | std::ios::trunc) << "hello";
  CHECK_THROWS_WITH(rt::load_checkpoint(f, 0x1234, 3), Catch::Contains("not a cnnc checkpoint"));
  CHECK_THROWS_WITH(rt::load_checkpoint(dir / "missing.bin", 0x1234, 3),
                    Catch::Contains("cannot read: No such file or directory"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) ==
        1);  // no temporary left
  fs::remove_all(dir);
}

TEST_CASE("a non-finite loss stops training with the place named") {
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 16);
  const cnnc_model& m = engine->model();
  rt::Mnist data{blobs(64, 1), {}, blobs(32, 2)};
  rt::TrainOptions o;
  o.epochs = 1;
  o.batch = 32;
  o.optimizer = {CNNC_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
  std::vector<float> params = engine::initial_params(g, m, 1);
  params[static_cast<size_t>(m.layers[m.layer_count - 1].bias_offset)] = NAN;  // reaches the loss
  rt::ThreadPool pool(2);
  rt::TrainResult r = rt::train(m, params, data, o, pool);
  CHECK(r.diverged);
  CHECK_THAT(r.divergence, Catch::Contains("epoch 1, batch 1"));
}

TEST_CASE("a TrainStep on the first batch is the first step train() takes, bit for bit") {
  // cnnc bench times a TrainStep and calls that what cnnc train runs; this holds it to that.
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 16);
  const cnnc_model& m = engine->model();
  rt::Mnist data{blobs(64, 1), {}, {}};
  rt::TrainOptions o;
  o.epochs = 1;
  o.batch = 32;
  o.seed = 7;
  o.max_steps = 1;
  o.optimizer = {CNNC_ADAM, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, 0};
  rt::ThreadPool pool(2);
  std::vector<float> trained = engine::initial_params(g, m, o.seed), stepped = trained;
  rt::TrainResult r = rt::train(m, trained, data, o, pool);
  REQUIRE(r.images == 32);

  std::vector<int32_t> order = rt::epoch_order(data.train.count, o.seed, 0);
  std::vector<float> images(32 * 8 * 8);
  std::vector<int32_t> labels(32);
  rt::prepare_batch(data.train, std::span(order.data(), 32), images.data(), labels.data());
  rt::TrainStep step(m, pool, o.batch);
  cnnc_optimizer opt = o.optimizer;
  opt.step = 1;
  rt::StepResult s = step.run(stepped, images.data(), labels.data(), 32, opt, 0, 0, o.seed);
  CHECK(s.non_finite.empty());
  CHECK(rt::weights_digest(stepped) == rt::weights_digest(trained));
  CHECK(s.loss_sum / 32 == Approx(r.history[0].train_loss));
  CHECK(static_cast<double>(s.correct) / 32 == Approx(r.history[0].train_accuracy));
  CHECK(std::any_of(step.optimizer_state().begin(), step.optimizer_state().end(),
                    [](float x) { return x != 0; }));
}

TEST_CASE("train() steps on batches prepared as prepare_batch prepares them, augmented or not") {
  // From its second batch on, the loop has each step prepare the next one on the pool's threads;
  // this holds those batches to the ones prepared in one piece, before each step.
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 11);
  const cnnc_model& m = engine->model();
  rt::Mnist data{blobs(160, 1), {}, {}};
  for (int32_t shift : {0, 1}) {
    rt::TrainOptions o;
    o.epochs = 1;
    o.batch = 32;
    o.seed = 7;
    o.evaluate_epochs = false;
    o.augment.shift = shift;
    o.optimizer = {CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    rt::ThreadPool pool(3);  // parts of 10, 11 and 11 samples
    std::vector<float> trained = engine::initial_params(g, m, o.seed), stepped = trained;
    rt::TrainResult r = rt::train(m, trained, data, o, pool);
    REQUIRE(r.steps == 5);

    std::vector<int32_t> order = rt::epoch_order(data.train.count, o.seed, 0);
    std::vector<float> images(32 * 8 * 8);
    std::vector<int32_t> labels(32);
    rt::TrainStep step(m, pool, o.batch);
    for (int32_t b = 0; b < 5; ++b) {
      std::span<const int32_t> idx(order.data() + b * 32, 32);
      if (shift)
        rt::prepare_augmented_batch(data.train, idx, o.augment, o.seed, 0, images.data(),
                                    labels.data());
      else
        rt::prepare_batch(data.train, idx, images.data(), labels.data());
      cnnc_optimizer opt = o.optimizer;
      opt.step = b + 1;
      CHECK(step.run(stepped, images.data(), labels.data(), 32, opt, 0,
                     static_cast<uint32_t>(b * 32), o.seed)
                .non_finite.empty());
    }
    CHECK(rt::weights_digest(stepped) == rt::weights_digest(trained));
  }
}

TEST_CASE("a TrainStep that meets a non-finite loss names it and changes nothing") {
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 8);
  const cnnc_model& m = engine->model();
  rt::Mnist data{blobs(16, 1), {}, {}};
  std::vector<int32_t> order = rt::epoch_order(16, 1, 0);
  std::vector<float> images(16 * 8 * 8);
  std::vector<int32_t> labels(16);
  rt::prepare_batch(data.train, order, images.data(), labels.data());
  std::vector<float> params = engine::initial_params(g, m, 1);
  params[static_cast<size_t>(m.layers[m.layer_count - 1].bias_offset)] = NAN;  // reaches the loss
  std::vector<float> before = params;
  rt::ThreadPool pool(2);
  rt::TrainStep step(m, pool, 16);
  cnnc_optimizer opt{CNNC_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
  rt::StepResult s = step.run(params, images.data(), labels.data(), 16, opt, 0, 0, 1);
  CHECK(s.non_finite == "the loss");
  // Compared as bits, since NaN != NaN.
  CHECK(std::memcmp(params.data(), before.data(), params.size() * sizeof(float)) == 0);
  CHECK(std::all_of(step.optimizer_state().begin(), step.optimizer_state().end(),
                    [](float x) { return x == 0; }));
}

namespace {

// 30 blob samples as one prepared batch, in epoch 0's order.
struct BlobBatch {
  std::vector<float> images = std::vector<float>(30 * 8 * 8);
  std::vector<int32_t> labels = std::vector<int32_t>(30);
  BlobBatch() {
    rt::LabeledImages d = blobs(30, 1);
    rt::prepare_batch(d, rt::epoch_order(30, 1, 0), images.data(), labels.data());
  }
};

// A step as the ABI defines one, written out: each slice's train, the slices' gradients summed
// in slice order and divided by n, then update over every parameter at once.
void step_by_hand(const cnnc_model& m, std::vector<float>& params, std::vector<float>& state,
                  const BlobBatch& b, const std::vector<int32_t>& slice_sizes,
                  const cnnc_optimizer& opt) {
  rt::Workspaces ws(m, 1);
  std::vector<std::vector<float>> slice_grads;
  int32_t offset = 0;
  for (int32_t size : slice_sizes) {
    slice_grads.emplace_back(static_cast<size_t>(m.param_count), 0.0f);
    cnnc_pass pass{};
    pass.params = params.data();
    pass.input = b.images.data() + offset * 64;
    pass.labels = b.labels.data() + offset;
    pass.grads = slice_grads.back().data();
    pass.workspace = ws[0];
    pass.n = size;
    pass.sample_base = static_cast<uint32_t>(offset);
    pass.seed = 7;
    m.train(&m, &pass);
    offset += size;
  }
  std::vector<float> grads(static_cast<size_t>(m.param_count));
  for (size_t i = 0; i < grads.size(); ++i) {
    float g = 0;
    for (const std::vector<float>& slice : slice_grads) g += slice[i];
    grads[i] = g * (1.0f / static_cast<float>(offset));
  }
  m.update(&m, params.data(), grads.data(), state.data(), &opt);
}

}  // namespace

TEST_CASE(
    "a TrainStep is the slices' train, their sum in slice order and one update, bit for bit") {
  // Three threads cut the parameter vector inside a layer; both optimizers, two steps, so that
  // the state the threads wrote by ranges is read back.
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 16);
  const cnnc_model& m = engine->model();
  BlobBatch b;
  for (int32_t kind : {CNNC_SGD, CNNC_ADAM}) {
    INFO("optimizer kind " << kind);
    rt::ThreadPool pool(3);
    rt::TrainStep step(m, pool, 30);
    std::vector<float> params = engine::initial_params(g, m, 3), expected = params;
    std::vector<float> state(2 * static_cast<size_t>(m.param_count), 0.0f);
    for (int64_t k = 1; k <= 2; ++k) {
      cnnc_optimizer opt{kind, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, k};
      rt::StepResult r = step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7);
      REQUIRE(r.non_finite.empty());
      step_by_hand(m, expected, state, b, {10, 10, 10}, opt);
    }
    CHECK(rt::weights_digest(params) == rt::weights_digest(expected));
    CHECK(rt::weights_digest(step.optimizer_state()) == rt::weights_digest(state));
  }
}

TEST_CASE(
    "a bf16 TrainStep prepares the weights once for all its slices, to the bits of slices that "
    "prepare their own; a part that fails fails the step") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  dsl::Graph g = test::graph_of(std::string(blob_model) + "precision bf16\n");
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, 16});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  codegen::ModelPtr m = lib.make(16, "avx512_bf16");
  REQUIRE(m);
  REQUIRE(m->prepare != nullptr);
  // A model of ABI 3 has no prepare member (what lies there is not its): it is stepped without
  // one, each slice preparing its own.
  static bool junk_called = false;
  cnnc_model before_prepare = *m;
  before_prepare.abi_version = 3;
  before_prepare.prepare = [](const cnnc_model*, const float*, void*, int32_t, int32_t) {
    junk_called = true;
  };
  before_prepare.dense_weights = [](const cnnc_model*, int32_t, const cnnc_pass*, int32_t, float,
                                    int32_t, int32_t, float*) { junk_called = true; };
  BlobBatch b;
  rt::ThreadPool pool(3);
  rt::TrainStep step(*m, pool, 30), step_3(before_prepare, pool, 30);
  std::vector<float> params = engine::initial_params(g, *m, 3), expected = params,
                     params_3 = params;
  std::vector<float> state(2 * static_cast<size_t>(m->param_count), 0.0f);
  for (int64_t k = 1; k <= 2; ++k) {  // the second step's weights come from the first's update
    cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, k};
    REQUIRE(step_3.run(params_3, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7)
                .non_finite.empty());
    REQUIRE(
        step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7).non_finite.empty());
    step_by_hand(*m, expected, state, b, {10, 10, 10}, opt);
  }
  CHECK(rt::weights_digest(params) == rt::weights_digest(expected));
  CHECK(rt::weights_digest(params_3) == rt::weights_digest(expected));
  CHECK_FALSE(junk_called);

  // A part of the prepared weights that fails fails the step with its exception: the threads
  // still meet (the others wait there for it), the step changes nothing, and the pool works on.
  static void (*real_prepare)(const cnnc_model*, const float*, void*, int32_t, int32_t) = nullptr;
  real_prepare = m->prepare;
  cnnc_model failing = *m;
  failing.prepare = [](const cnnc_model* model, const float* p, void* out, int32_t part,
                       int32_t parts) {
    if (part == 1) throw std::runtime_error("prepare failed");
    real_prepare(model, p, out, part, parts);
  };
  rt::TrainStep step_failing(failing, pool, 30);
  std::vector<float> before = params;
  cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, 3};
  CHECK_THROWS_WITH(step_failing.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7),
                    "prepare failed");
  CHECK(params == before);
  CHECK(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7).non_finite.empty());
  CHECK(params != before);
}

namespace {

// A model's dense_weights behind a counter, so that a test knows the step took that path, and
// which of its calls ran on the test's own thread (the pool's thread 0).
void (*model_dense_weights)(const cnnc_model*, int32_t, const cnnc_pass*, int32_t, float, int32_t,
                            int32_t, float*) = nullptr;
std::atomic<int> dense_weights_calls = 0, dense_weights_calls_here = 0;
std::thread::id test_thread;

void counted_dense_weights(const cnnc_model* m, int32_t layer, const cnnc_pass* passes,
                           int32_t count, float scale, int32_t first, int32_t last, float* grads) {
  ++dense_weights_calls;
  if (std::this_thread::get_id() == test_thread) ++dense_weights_calls_here;
  model_dense_weights(m, layer, passes, count, scale, first, last, grads);
}

// 3 threads cut the hidden layer's 58 units into shares of 24, 12 and 22 units: 24 in two chunks
// of 12, and 22, which register tiles of 6, 3 or 4 units (by variant) do not divide, so that a
// chunk ends in a tile overlapping the one before it. The last layer's 14 units go 0, 12 and 2,
// the 2 a chunk narrower than a tile. 36 inputs end in a partial vector. (2 threads: shares of
// 24 and 34, and of 12 and 2.)
const char* const two_dense_model =
    "model blobs\ninput 8x8x1\nconv 4 3x3 relu\nmaxpool 2x2\ndense 58 relu\ndropout 0.1\n"
    "dense 14 softmax\n";

}  // namespace

TEST_CASE(
    "the model sums a step's dense weight gradients from the slices' workspaces, to the bits of "
    "the slices' gradients summed") {
  // Both precisions on every variant this CPU runs, the chunks of two_dense_model.
  BlobBatch b;
  for (const char* precision : {"fp32", "bf16"}) {
    dsl::Graph g = test::graph_of(std::string(two_dense_model) + "precision " + precision + "\n");
    codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, 16});
    codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
    for (const char* target : {"avx512_bf16", "avx512", "avx2", "portable"}) {
      codegen::ModelPtr made = lib.make(16, target);
      if (!made) continue;  // not in this precision's file, or not on this CPU
      INFO(precision << " " << made->engine);
      cnnc_model m = *made;
      REQUIRE(m.dense_weights != nullptr);
      model_dense_weights = m.dense_weights;
      m.dense_weights = counted_dense_weights;
      dense_weights_calls = 0;
      std::vector<float> params = engine::initial_params(g, m, 3), expected = params;

      // A deferring train writes every gradient but the dense layers' weights.
      rt::Workspaces ws(m, 1);
      std::vector<float> grads(static_cast<size_t>(m.param_count), NAN);
      cnnc_pass pass{};
      pass.params = params.data();
      pass.input = b.images.data();
      pass.labels = b.labels.data();
      pass.grads = grads.data();
      pass.workspace = ws[0];
      pass.n = 10;
      pass.seed = 7;
      pass.defer_dense_weights = 1;
      m.train(&m, &pass);
      for (int32_t i = 0; i < m.layer_count; ++i) {
        const cnnc_layer& l = m.layers[i];
        auto untouched = [&](int64_t first, int64_t count) {
          return std::all_of(grads.begin() + first, grads.begin() + first + count,
                             [](float x) { return std::isnan(x); });
        };
        if (!l.trainable) continue;
        INFO("layer " << l.name);
        CHECK(untouched(l.weight_offset, l.weight_count) == (l.kind == CNNC_DENSE));
        CHECK_FALSE(untouched(l.bias_offset, l.bias_count));
      }

      // SGD without momentum moves each weight by lr times its gradient, so that a gradient off
      // by one ulp shows in the weights; Adam's first step would hide it (g / |g|).
      std::vector<float> state(2 * static_cast<size_t>(m.param_count), 0.0f);
      rt::ThreadPool pool(3);
      rt::TrainStep step(m, pool, 30);
      for (int64_t k = 1; k <= 2; ++k) {
        cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, k};
        REQUIRE(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7)
                    .non_finite.empty());
        step_by_hand(*made, expected, state, b, {10, 10, 10}, opt);
      }
      CHECK(rt::weights_digest(params) == rt::weights_digest(expected));
      CHECK(dense_weights_calls == 2 * (4 + 2));  // 2 steps of 4 + 2 chunks
    }
  }
}

namespace {

// The model's train, as if the machine slowed one thread: the slice that starts at `delay_at`
// starts 50 ms late; the one at `hold_at` returns only once dense_weights has run `hold_until`
// times (at most 10 s); the one at `fail_at` throws after 50 ms. Whether a deferring pass of a
// model before C ABI 6 came with a gradients_ready, which that model does not expect.
float (*unheld_train)(const cnnc_model*, const cnnc_pass*) = nullptr;
uint32_t delay_at = UINT32_MAX, hold_at = UINT32_MAX, fail_at = UINT32_MAX;
int hold_until = 0;
std::atomic<bool> reports_asked_of_abi_5 = false;

float held_train(const cnnc_model* m, const cnnc_pass* pass) {
  if (pass->defer_dense_weights && m->abi_version < 6 && pass->gradients_ready)
    reports_asked_of_abi_5 = true;
  if (pass->sample_base == delay_at || pass->sample_base == fail_at)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (pass->sample_base == fail_at) throw std::runtime_error("slice failed");
  float loss = unheld_train(m, pass);
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pass->sample_base == hold_at && dense_weights_calls < hold_until &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  return loss;
}

}  // namespace

TEST_CASE(
    "a thread back from its slice sums the dense weights a slower one has not begun, each layer "
    "once every slice has it, to the same bits; a slice that fails fails the step") {
  dsl::Graph g = test::graph_of(two_dense_model);
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, 16});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  codegen::ModelPtr made;
  for (const char* target : {"avx512", "avx2", "portable"})
    if (!made) made = lib.make(16, target);
  REQUIRE(made);
  cnnc_model m = *made;
  REQUIRE(m.abi_version >= 6);
  model_dense_weights = m.dense_weights;
  m.dense_weights = counted_dense_weights;
  unheld_train = m.train;
  m.train = held_train;
  cnnc_model abi_5 = m;  // reports nothing while it defers: its chunks wait for every thread
  abi_5.abi_version = 5;
  test_thread = std::this_thread::get_id();
  BlobBatch b;
  rt::ThreadPool pool(2);  // slices of 15 samples; 3 chunks a thread (two_dense_model)
  rt::TrainStep step(m, pool, 30), step_5(abi_5, pool, 30);
  std::vector<float> params = engine::initial_params(g, m, 3), expected = params;
  std::vector<float> state(2 * static_cast<size_t>(m.param_count), 0.0f);
  int64_t steps = 0;
  // One step, checked against the ABI's step written out; SGD without momentum moves each
  // weight by lr times its gradient, so a gradient off by one ulp shows.
  auto take_step = [&](rt::TrainStep& on, const char* what) {
    INFO(what);
    cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, ++steps};
    dense_weights_calls = dense_weights_calls_here = 0;
    REQUIRE(on.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7).non_finite.empty());
    step_by_hand(*made, expected, state, b, {15, 15}, opt);
    CHECK(rt::weights_digest(params) == rt::weights_digest(expected));
    CHECK(dense_weights_calls == 6);
  };

  // Thread 0 (the test's) is held in its slice until thread 1 has written all 6 chunks.
  hold_at = 0;
  hold_until = 6;
  take_step(step, "thread 0 held after its slice");
  CHECK(dense_weights_calls_here == 0);
  hold_at = UINT32_MAX;
  // Thread 0's slice starts late: thread 1, back first, waits for that slice's dense layers,
  // whose rows in its workspace are the last step's until then.
  delay_at = 0;
  take_step(step, "thread 0's slice late");
  take_step(step_5, "thread 0's slice late, a model of ABI 5");
  delay_at = UINT32_MAX;
  CHECK_FALSE(reports_asked_of_abi_5);

  // Thread 1's slice fails while thread 0 waits for its dense layers: the step fails with its
  // exception, changes nothing, and the next step runs.
  std::vector<float> before = params;
  fail_at = 15;
  cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, steps + 1};
  CHECK_THROWS_WITH(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7),
                    "slice failed");
  fail_at = UINT32_MAX;
  CHECK(params == before);
  take_step(step, "after a failed step");
}

TEST_CASE("a model from before update_range (ABI 2) steps through update, to the same bits") {
  dsl::Graph g = test::graph_of(blob_model);
  auto engine = engine::make_engine(g, "generic", 16);
  cnnc_model old = engine->model();
  old.abi_version = 2;
  old.update_range = nullptr;
  BlobBatch b;
  rt::ThreadPool pool(2);
  std::vector<float> params = engine::initial_params(g, old, 3), expected = params;
  std::vector<float> state(2 * static_cast<size_t>(old.param_count), 0.0f);
  cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, 1};
  rt::TrainStep step(old, pool, 30);
  REQUIRE(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7).non_finite.empty());
  step_by_hand(engine->model(), expected, state, b, {15, 15}, opt);
  CHECK(rt::weights_digest(params) == rt::weights_digest(expected));
}

namespace {

// The generic model's train, then one gradient entry set to `poison`: a gradient that may
// overflow or be infinite while the loss stays finite. A slice that starts at `throw_at` throws.
float (*clean_train)(const cnnc_model*, const cnnc_pass*) = nullptr;
int64_t poisoned_entry = 0;
float poison = 0;
uint32_t throw_at = UINT32_MAX;

float poisoned_train(const cnnc_model* m, const cnnc_pass* pass) {
  if (pass->sample_base == throw_at) throw std::runtime_error("slice failed");
  float loss = clean_train(m, pass);
  pass->grads[poisoned_entry] = poison;
  return loss;
}

struct Poisoned {
  std::unique_ptr<engine::Engine> engine;
  cnnc_model m;
  explicit Poisoned(const dsl::Graph& g, float value, int64_t entry)
      : engine(engine::make_engine(g, "generic", 16)), m(engine->model()) {
    clean_train = m.train;
    m.train = poisoned_train;
    poison = value;
    poisoned_entry = entry;
    throw_at = UINT32_MAX;
  }
};

}  // namespace

TEST_CASE("all_finite finds a NaN or an infinity wherever it lies, and passes every finite value") {
  // Against std::isfinite over the same values, at every place of every length up to 3 vectors
  // of 16 and from unaligned starts: where the CPU has AVX-512, that part covers whole vectors
  // and the scalar loop the rest. The non-finite values: both infinities, and NaNs of both
  // signs from the smallest payload (just above the infinity's bits) to the largest, quiet and
  // signalling.
  INFO("AVX-512 path: " << (__builtin_cpu_supports("avx512f") ? "yes" : "no"));
  std::vector<float> values(64);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = i % 4 == 0   ? FLT_MAX
                : i % 4 == 1 ? -FLT_MAX
                : i % 4 == 2 ? -0.0f
                             : std::ldexp(1.0f, -140);  // subnormal
  std::vector<float> bad = {INFINITY, -INFINITY};
  for (uint32_t bits : {0x7f800001u, 0x7fbfffffu, 0x7fc00000u, 0x7fffffffu})
    for (uint32_t sign : {0u, 0x80000000u}) bad.push_back(std::bit_cast<float>(bits | sign));
  auto truth = [](std::span<const float> v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  for (size_t start : {0, 1, 3})
    for (size_t n = 0; n <= 48; ++n) {
      std::span<float> span(values.data() + start, n);
      REQUIRE(truth(span));
      CHECK(rt::all_finite(span));
      for (size_t at = 0; at < n; ++at)
        for (float b : bad) {
          const float kept = span[at];
          span[at] = b;
          INFO("start " << start << ", " << n << " values, bits 0x" << std::hex
                        << std::bit_cast<uint32_t>(b) << std::dec << " at " << at);
          REQUIRE(!truth(span));
          CHECK(!rt::all_finite(span));
          span[at] = kept;
        }
    }
}

TEST_CASE("a TrainStep that meets a non-finite gradient names its layer and changes nothing") {
  dsl::Graph g = test::graph_of(blob_model);
  BlobBatch b;
  auto engine = engine::make_engine(g, "generic", 16);
  const cnnc_model& clean = engine->model();
  const cnnc_layer &first = clean.layers[0], &last = clean.layers[clean.layer_count - 1];
  // Infinite in the first thread's range of the gradient and in the last's; and finite in both
  // slices (of 15 samples each) but 3 * 2^127 summed, past the largest float.
  struct Case {
    float value;
    int64_t entry;
    std::string layer;
  };
  for (const Case& c : {Case{INFINITY, first.weight_offset, first.name},
                        Case{INFINITY, last.bias_offset + last.bias_count - 1, last.name},
                        Case{std::ldexp(1.5f, 127), last.weight_offset, last.name}}) {
    INFO("entry " << c.entry << " = " << c.value);
    Poisoned p(g, c.value, c.entry);
    rt::ThreadPool pool(2);
    rt::TrainStep step(p.m, pool, 30);
    std::vector<float> params = engine::initial_params(g, p.m, 3), before = params;
    cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
    rt::StepResult r = step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7);
    CHECK(std::isfinite(r.loss_sum));
    CHECK(r.non_finite == c.layer);
    CHECK(params == before);
    CHECK(std::all_of(step.optimizer_state().begin(), step.optimizer_state().end(),
                      [](float x) { return x == 0; }));
  }
}

TEST_CASE("a slice that throws fails the step with its exception, and the pool works on") {
  dsl::Graph g = test::graph_of(blob_model);
  BlobBatch b;
  Poisoned p(g, 0.0f, 0);
  throw_at = 15;  // the second slice: the pool's worker thread
  rt::ThreadPool pool(2);
  rt::TrainStep step(p.m, pool, 30);
  std::vector<float> params = engine::initial_params(g, p.m, 3), before = params;
  cnnc_optimizer opt{CNNC_SGD, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
  CHECK_THROWS_WITH(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7),
                    "slice failed");
  CHECK(params == before);
  throw_at = UINT32_MAX;
  CHECK(step.run(params, b.images.data(), b.labels.data(), 30, opt, 0, 0, 7).non_finite.empty());
  CHECK(params != before);
}

TEST_CASE("every model in models/ takes a training step and frozen layers stay as written") {
  for (const auto& e : fs::directory_iterator(fs::path(CNNC_SOURCE_DIR) / "models")) {
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    dsl::Graph g = test::graph_of(text);
    DYNAMIC_SECTION(g.name) {
      auto engine = engine::make_engine(g, "generic", 8);
      const cnnc_model& m = engine->model();
      rt::Mnist data{noise(16, 28), {}, noise(16, 28)};
      rt::TrainOptions o;
      o.epochs = 1;
      o.batch = 16;
      o.max_steps = 1;
      o.optimizer = {CNNC_SGD, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
      std::vector<float> before = engine::initial_params(g, m, 1), params = before;
      rt::ThreadPool pool(2);
      rt::TrainResult r = rt::train(m, params, data, o, pool);
      REQUIRE_FALSE(r.diverged);
      REQUIRE(r.history.size() == 1);
      CHECK(std::isfinite(r.history[0].train_loss));
      for (const dsl::Layer& l : g.layers) {
        bool changed = !std::equal(before.begin() + l.weight_offset,
                                   before.begin() + l.weight_offset + l.weight_count,
                                   params.begin() + l.weight_offset);
        INFO(l.name);
        if (l.frozen)
          CHECK_FALSE(changed);
        else if (l.weight_count > 0)
          CHECK(changed);
      }
    }
  }
}

TEST_CASE("onecycle sets each step's rate, and a run resumed mid-epoch keeps to it") {
  rt::LrSchedule one{rt::LrSchedule::Kind::onecycle, 0, 0, 0.25};
  Run whole = train_blobs(2, 2, {}, false, 0, 0, one);
  REQUIRE(whole.lrs.size() == 32);  // 2 epochs of 512 / 32 batches
  for (size_t s = 0; s < whole.lrs.size(); ++s)
    CHECK(whole.lrs[s] == rt::learning_rate(one, 0.1f, static_cast<int32_t>(s / 16), 2,
                                            static_cast<int64_t>(s), 32));
  CHECK(whole.lrs[7] == Approx(0.1));  // the top, after a rise over 8 steps
  CHECK(whole.lrs[31] == Approx(0.1 / 24));

  fs::path dir = temp_dir("onecycle");
  train_blobs(2, 2, dir, false, 0, 20, one);  // stopped in the second epoch
  Run resumed = train_blobs(2, 2, dir, true, 0, 0, one);
  CHECK(std::equal(resumed.lrs.begin(), resumed.lrs.end(), whole.lrs.begin() + 20));
  CHECK(rt::weights_digest(resumed.params) == rt::weights_digest(whole.params));
  fs::remove_all(dir);
}

TEST_CASE("learning-rate schedules") {
  rt::LrSchedule step{rt::LrSchedule::Kind::step, 2, 0.5f};
  CHECK(rt::learning_rate(step, 0.1f, 0, 10, 0, 100) == 0.1f);
  CHECK(rt::learning_rate(step, 0.1f, 1, 10, 10, 100) == 0.1f);
  CHECK(rt::learning_rate(step, 0.1f, 2, 10, 20, 100) == Approx(0.05f));
  CHECK(rt::learning_rate(step, 0.1f, 5, 10, 50, 100) == Approx(0.025f));
  rt::LrSchedule cosine{rt::LrSchedule::Kind::cosine, 0, 0};
  CHECK(rt::learning_rate(cosine, 0.1f, 0, 4, 0, 40) == Approx(0.1f));
  CHECK(rt::learning_rate(cosine, 0.1f, 2, 4, 20, 40) == Approx(0.05f));
  CHECK(rt::learning_rate(cosine, 0.1f, 2, 4, 29, 40) == Approx(0.05f));  // set per epoch

  SECTION("onecycle: per step, up over the warmup's share of 10 steps, then down to 0") {
    rt::LrSchedule one{rt::LrSchedule::Kind::onecycle, 0, 0, 0.2};
    auto lr = [&](int64_t s) { return rt::learning_rate(one, 1.0f, 0, 2, s, 10); };
    CHECK(lr(0) == Approx(0.5));  // steps 1 and 2 of a rise over 2
    CHECK(lr(1) == Approx(1.0));
    CHECK(lr(2) == Approx(1.0));  // 8 of 8 left
    CHECK(lr(6) == Approx(0.5));
    CHECK(lr(9) == Approx(0.125));
    CHECK(lr(10) == 0.0f);  // a run extended past the schedule's span
    CHECK(lr(15) == 0.0f);
    one.warmup = 0;
    CHECK(rt::learning_rate(one, 1.0f, 0, 2, 0, 10) == Approx(1.0));
    CHECK(rt::learning_rate(one, 1.0f, 0, 2, 5, 10) == Approx(0.5));
  }
}
