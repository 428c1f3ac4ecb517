// Specifications of precision bf16: the avx512_bf16 variant agrees with the generic engine with
// bf16 products (engine::bf16_products_tolerance), at small batches too, and with the fp32 generic
// engine within the bound bf16 rounding allows (engine::bf16_tolerance, docs/codegen.md) at these;
// it is really bf16 (nearer the bf16 products than fp32, and further from fp32 than fp32 rounding
// goes); a CPU or target without AVX512_BF16 falls back to the fp32 variants, which agree within
// fp32's tolerance, and says so.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>

#include "../dsl/check_text.hpp"
#include "../skip.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "engine/verify.hpp"
#include "train/trainer.hpp"

using namespace cnnc;

namespace {

// The bf16 variant against the generic engine, with bf16 products and in fp32: every tensor
// within its tolerance, and the forward output nearer the bf16 products than fp32, and further
// from fp32 than fp32 rounding goes (else the products were not bf16). against_fp32 = false
// leaves out the fp32 bound, which a flipped relu decision can exceed at small batches.
void check_bf16(const std::string& text, int32_t n, bool against_fp32 = true) {
  dsl::Graph g = test::graph_of(text + "precision bf16\n");
  REQUIRE(g.training.precision == dsl::Precision::bf16);
  engine::VerifyReport r = engine::verify_specialized(g, n, 5, {"avx512_bf16", "avx512"});
  REQUIRE(r.targets.size() == 2);
  const engine::TargetCheck& bf16 = r.targets[0];
  const engine::TargetCheck& fp32 = r.targets[1];
  REQUIRE(bf16.engine == "specialized-avx512_bf16");
  REQUIRE(fp32.engine == "specialized-avx512");  // the fallback of a bf16 model
  REQUIRE(bf16.against_fp32.size() == bf16.tensors.size());
  CHECK(fp32.against_fp32.empty());
  auto check = [&](const engine::TargetCheck& t, const std::vector<engine::TensorCheck>& tensors,
                   auto tolerance) {
    for (const engine::TensorCheck& c : tensors) {
      INFO(g.name << " " << t.target << " " << c.tensor << ": max abs err " << c.max_abs
                  << ", largest value " << c.max_ref << ", tolerance " << c.rel_tolerance);
      CHECK(c.rel_tolerance == tolerance(c));
      CHECK(c.ok());
    }
  };
  check(bf16, bf16.tensors,
        [&](const engine::TensorCheck&) { return engine::bf16_products_tolerance(g); });
  if (against_fp32)
    check(bf16, bf16.against_fp32, [&](const engine::TensorCheck& c) {
      return engine::bf16_tolerance(
          g, c.tensor.find("output") == std::string::npos && c.tensor != "loss", n);
    });
  check(fp32, fp32.tensors, [](const engine::TensorCheck&) { return 1e-3; });
  CHECK(bf16.against_fp32.front().max_rel() > 1e-4);
  CHECK(bf16.tensors.front().max_rel() < bf16.against_fp32.front().max_rel() / 4);
  CHECK(fp32.tensors.front().max_rel() < 1e-5);
}

// prepare by parts writes what one call writes, and train and forward give the same bits on the
// prepared weights as on their own; with every prepared weight zero, every sample's output is the
// same (the first layer's products read only prepared weights): the calls read them, not params.
// A model of 3 classes.
void check_prepared(const dsl::Graph& g, cnnc_model& m, int32_t n) {
  std::vector<float> params = engine::initial_params(g, m, 3);
  std::vector<float> input(static_cast<size_t>(n * g.input.size()));
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>((i * 37) % 101) / 101;
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i % 3;
  auto bytes = static_cast<size_t>(m.prepared_bytes);
  rt::AlignedBuffer whole = rt::aligned_buffer(m.prepared_bytes);
  rt::AlignedBuffer by_parts = rt::aligned_buffer(m.prepared_bytes);
  // The same fill in both, for the bytes between layouts that no part writes: all ones, a NaN
  // as bf16 and as fp32, so that a layout's padding left unwritten (an odd count's zero half of
  // its last pair) turns the products that read it into NaN below.
  std::memset(whole.get(), 0xff, bytes);
  std::memset(by_parts.get(), 0xff, bytes);
  m.prepare(&m, params.data(), whole.get(), 0, 1);
  for (int part : {2, 0, 1}) m.prepare(&m, params.data(), by_parts.get(), part, 3);
  CHECK(std::memcmp(whole.get(), by_parts.get(), bytes) == 0);

  // train and forward on the prepared weights, and on their own.
  rt::AlignedBuffer workspace = rt::aligned_buffer(m.workspace_bytes);
  struct Result {
    std::vector<float> grads, train_output, output;
    float loss = 0;
  };
  auto run = [&](const void* prepared) {
    Result r{std::vector<float>(params.size()), std::vector<float>(static_cast<size_t>(n) * 3),
             std::vector<float>(static_cast<size_t>(n) * 3)};
    cnnc_pass pass{};
    pass.params = params.data();
    pass.input = input.data();
    pass.labels = labels.data();
    pass.grads = r.grads.data();
    pass.workspace = workspace.get();
    pass.n = n;
    pass.seed = 1;
    pass.prepared = prepared;
    pass.output = r.train_output.data();
    r.loss = m.train(&m, &pass);
    pass.output = r.output.data();
    m.forward(&m, &pass);
    return r;
  };
  Result own = run(nullptr), shared = run(by_parts.get());
  // Compared whole, not printed element by element: a dense layer's gradients are a million.
  CHECK(shared.loss == own.loss);
  CHECK((shared.grads == own.grads));
  CHECK((shared.train_output == own.train_output));
  CHECK((shared.output == own.output));
  // With every prepared weight zero the input no longer matters, so every sample's output is
  // the same: the calls read the prepared weights, not params.
  std::memset(by_parts.get(), 0, bytes);
  Result zero = run(by_parts.get());
  CHECK(zero.output != own.output);
  CHECK(std::equal(zero.output.begin(), zero.output.begin() + 3, zero.output.begin() + 3));
}

}  // namespace

TEST_CASE("bf16 agrees with the generic engine: lenet5's shapes") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  check_bf16(
      "model lenet_bf16\ninput 28x28x1\nconv 6 5x5 pad=same relu\nmaxpool 2x2\nconv 16 5x5 "
      "relu\nmaxpool 2x2\ndense 120 relu\ndense 84 relu\ndense 10 softmax\n",
      64);
}

TEST_CASE("bf16 agrees with the generic engine: keras_mnist's shapes, smaller, with dropout") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  check_bf16(
      "model keras_bf16\ninput 16x16x1\nconv 32 3x3 relu\nconv 64 3x3 relu\nmaxpool 2x2\ndropout "
      "0.25\nflatten\ndense 128 relu\ndropout 0.5\ndense 10 softmax\n",
      32);
}

TEST_CASE("bf16 agrees with the generic engine with bf16 products at batches of 1 and 3") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // Against fp32, small batches are where a relu or max-pool decision that bf16 rounding flips
  // moves a whole sample's share of a gradient past the rounding bound (seed 5, batch 1: conv2's
  // weight gradient 10% off fp32's, bound 6.2%); against the bf16 products they agree.
  for (int32_t n : {1, 3})
    check_bf16(
        "model small_bf16\ninput 16x16x1\nconv 32 3x3 relu\nconv 64 3x3 relu\nmaxpool 2x2\n"
        "flatten\ndense 128 relu\ndense 10 softmax\n",
        n, false);
}

TEST_CASE(
    "bf16 agrees with the generic engine: odd filters, odd columns, odd inputs, stride 2, a "
    "partial block") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // conv1: C = 2 (pairs of channels), K = 5 (conv2's input gradient pairs a filter with zero);
  // conv2: C = 5 (fp32 forward), Q = 5 (the last column pair is half zero); dense1: I = 210 and
  // dense2: I = 9, odd numbers of input pairs (105 and 5), whose last pair the forward adds alone.
  check_bf16(
      "model odd_bf16\ninput 9x11x2\nconv 5 3x3 stride=2 pad=same relu\nconv 7 3x3 pad=1 "
      "relu\ndense 9 tanh\ndense 3 softmax\noptimizer adam lr=0.01\n",
      21);
}

TEST_CASE("bf16 agrees with the generic engine: dense layers of one, two and three input pairs") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // The forward's two sums per unit over even and odd pairs: dense1 has 2 inputs (one pair, no
  // odd sum), dense2 3 (two pairs, one of each), dense3 5 (three pairs, the last added alone).
  check_bf16("model pairs_bf16\ninput 1x1x2\ndense 3 relu\ndense 5 relu\ndense 4 softmax\n", 17);
}

TEST_CASE(
    "bf16 agrees with the generic engine: weight gradients by taps, with an odd column pair, "
    "stride 2, padding and partial tiles") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // conv1: 16 taps a row (one vector), Q = 8; conv2: 112 taps (a partial tile of vectors), 6
  // filters (a partial tile of filters), stride 2 and padding, Q = 5 (the last pair of columns is
  // half zero); 504 input elements leave a tail after the square transpositions.
  check_bf16(
      "model taps_bf16\ninput 7x9x8\nconv 56 2x2 relu\nconv 6 2x2 stride=2 pad=1 relu\nflatten\n"
      "dense 3 softmax\n",
      37);
}

TEST_CASE(
    "weights prepared once, by parts (streamed past the caches for a large layer), are what every "
    "call prepares for itself; calls read them") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // Every pair layout: pairs of kernel columns (conv1, C = 1), of channels (conv2), of filters
  // with an odd K (conv2's input gradient), of units and inputs with odd counts (the dense ones).
  const int32_t n = 19;
  dsl::Graph g = test::graph_of(
      "model prepared_bf16\ninput 9x9x1\nconv 4 3x3 relu\nconv 5 3x3 pad=same relu\nmaxpool "
      "2x2\ndense 7 relu\ndense 3 softmax\nprecision bf16\n");
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, n});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  codegen::ModelPtr fp32 = lib.make(n, "avx512");
  REQUIRE(fp32);
  CHECK(fp32->prepared_bytes == 0);  // fp32 products read params as they are
  CHECK(fp32->prepare == nullptr);
  CHECK(engine::make_engine(g, "generic", n)->model().prepare == nullptr);
  codegen::ModelPtr m = lib.make(n, "avx512_bf16");
  REQUIRE(m);
  REQUIRE(m->abi_version >= 4);
  REQUIRE(m->prepared_bytes > 0);
  REQUIRE(m->prepare != nullptr);
  check_prepared(g, *m, n);

  // Past the caches: dense1's 701 x 1,568 weights, more than 1 MB of forward pairs, take both row
  // layouts (conv1 reads its input gradient), and by parts row_pairs streams them, two pairs of
  // rows at a time where a pair's tile words start a line. The 3 parts start at pairs 0, 117 and
  // 234, so both kinds of group occur, and the odd last row pairs with zeros.
  dsl::Graph big = test::graph_of(
      "model streamed_bf16\ninput 28x28x1\nconv 2 3x3 pad=same relu\ndense 701 relu\ndense 3 "
      "softmax\nprecision bf16\n");
  std::string source = codegen::emit_model(big, {big.source_path, big.source_text, 5}).source;
  REQUIRE(source.find("params + 48, 701, 1568, 24, true, part, parts)") != std::string::npos);
  codegen::GeneratedModel big_lib = codegen::build_generated(source, big.name, {});
  codegen::ModelPtr streamed = big_lib.make(5, "avx512_bf16");
  REQUIRE(streamed);
  check_prepared(big, *streamed, 5);
}

TEST_CASE("a bf16 model on fp32 code says so; an fp32 model never does") {
  dsl::Graph g = test::graph_of("model p\ninput 4x4x1\ndense 3 softmax\nprecision bf16\n");
  cnnc_model fp32{};
  fp32.engine = "specialized-avx512";
  cnnc_model bf16{};
  bf16.engine = "specialized-avx512_bf16";
  CHECK(engine::precision_note(g, fp32) ==
        "; precision bf16 asked for, but this CPU lacks AVX512_BF16 (or the target names an fp32 "
        "variant): fp32 products");
  CHECK(engine::precision_note(g, bf16).empty());
  g.training.precision = dsl::Precision::fp32;
  CHECK(engine::precision_note(g, fp32).empty());
}

TEST_CASE("Winograd's transformed filters are prepared by parts as a call prepares them") {
  // conv1, the first layer, by Winograd with its input padded; conv2's forward and input
  // gradient by Winograd, fused with the pool: fp32 prepares their transforms too, bf16 as pairs.
  const int32_t n = 19;
  dsl::Graph g = test::graph_of(
      "model prepared_winograd\ninput 8x8x16\nconv 16 3x3 pad=same relu\nconv 18 3x3 "
      "relu\nmaxpool 2x2\nflatten\ndense 3 softmax\nprecision bf16\n");
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, n});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  int ran = 0;
  for (const char* target : {"avx512", "avx512_bf16"})
    if (codegen::ModelPtr m = lib.make(n, target)) {
      INFO(m->engine);
      REQUIRE(m->prepared_bytes > 0);
      REQUIRE(m->prepare != nullptr);
      check_prepared(g, *m, n);
      ++ran;
    }
  if (ran == 0) CNNC_SKIP("isa:avx512", "this CPU lacks AVX-512");
}
