// Specifications of the code generator: the specialised code agrees with the generic engine on
// a family of models that covers every layer kind and the awkward sizes, on every ISA this CPU
// runs; its text matches approved golden files and regenerates byte for byte.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include <unistd.h>

#include "../dsl/check_text.hpp"
#include "codegen/abi_table.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "codegen/plan.hpp"
#include "engine/engine.hpp"
#include "engine/training.hpp"
#include "engine/verify.hpp"
#include "train/trainer.hpp"

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

const std::vector<std::string> all_targets = {"avx512", "avx2", "portable"};

// Fails with the table of errors when any tensor of any target disagrees; returns how many
// targets ran.
int verify(const std::string& text, int32_t n) {
  dsl::Graph g = test::graph_of(text);
  engine::VerifyReport r = engine::verify_specialized(g, n, 7, all_targets);
  int ran = 0;
  for (const engine::TargetCheck& t : r.targets) {
    if (t.engine.empty()) {
      WARN(g.name << ": " << t.target << " skipped: this CPU cannot run it");
      continue;
    }
    ++ran;
    for (const engine::TensorCheck& c : t.tensors) {
      INFO(g.name << " " << t.target << " " << c.tensor << ": max abs err " << c.max_abs
                  << ", largest value " << c.max_ref);
      CHECK(c.ok());
    }
  }
  CHECK(ran >= 1);
  return ran;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// Each model is compiled once; together they cover conv kernels 1x1 to 7x7 and rectangular,
// strides 1 to 3, valid, same and explicit padding, channel counts that are and are not
// multiples of 8 and 16, non-square inputs, 1 and 3 input channels, both pools, every
// activation fused and alone, dropout, both losses with and without a final softmax, SGD and
// Adam, frozen layers, and batches that do not fill the last vector.
TEST_CASE("codegen agrees with the generic engine: odd sizes, 3 channels, 1x1, tanh, sigmoid") {
  verify(
      "model odd\ninput 9x11x3\nconv 5 3x3 stride=2 pad=same relu\nconv 17 1x1 tanh\nmaxpool "
      "2x2\ndense 7 sigmoid\ndense 4 softmax\n"
      "optimizer sgd lr=0.1 momentum=0.9 weight_decay=0.01\n",
      11);
}

TEST_CASE(
    "codegen agrees with the generic engine: 7x7 with explicit padding, avgpool, rectangular "
    "strides, dropout, logits") {
  verify(
      "model wide\ninput 13x12x1\nconv 8 7x7 pad=3 relu\navgpool 3x2 stride=2\nconv 16 2x3 "
      "stride=1x2 relu\nflatten\ndropout 0.3\ndense 10\n",
      19);
}

TEST_CASE(
    "codegen agrees with the generic engine: stride 3, overlapping pools, activation layers, mse "
    "after softmax") {
  verify(
      "model layers\ninput 16x16x1\nconv 4 5x5 stride=3\nrelu\nmaxpool 3x3 "
      "stride=2\nsigmoid\ndense 3\nsoftmax\nloss mse\n",
      8);
}

TEST_CASE(
    "codegen agrees with the generic engine: 24 and 9 filters, 4x4 stride 2, adam, mse on linear "
    "outputs") {
  verify(
      "model deep\ninput 8x8x2\nconv 24 3x3 pad=same\nconv 9 4x4 stride=2 pad=1 relu\ndense 5 "
      "relu\ntanh\ndense 2\nloss mse\n"
      "optimizer adam lr=0.01 weight_decay=0.001\n",
      5);
}

TEST_CASE(
    "codegen agrees with the generic engine: frozen filters in the middle, 32 channels, a batch of "
    "one") {
  verify(
      "model frozen\ninput 10x10x1\nconv 2 3x3 pad=same weights=sobel frozen\nconv 32 3x3 "
      "relu\nmaxpool 2x2\ndropout 0.5\ndense 10 softmax\n",
      1);
}

TEST_CASE(
    "codegen agrees with the generic engine: weight gradients by taps, with tails of taps, "
    "filters and the transposition") {
  // Kernel rows of 16 and 112 taps take the by-taps weight gradient on AVX2 and AVX-512; 504
  // input elements leave a tail after the square transpositions, 112 taps a partial tile of
  // vectors and 6 filters a partial tile of filters.
  verify(
      "model taps\ninput 7x9x8\nconv 56 2x2 relu\nconv 6 2x2 stride=2 pad=1 relu\nflatten\n"
      "dense 3 softmax\n",
      19);
}

TEST_CASE(
    "codegen agrees with the generic engine: flatten as a view, first, twice, after a dense layer "
    "and a conv, and last") {
  // A view shares the regions of the layer before it, so the layer after it writes its input
  // gradient into that layer's output gradient: two views in a row, and one after a dense layer,
  // must not shift the turns of the gradient buffers.
  verify(
      "model views\ninput 6x6x2\nflatten\nflatten\ndense 12 relu\nflatten\ndropout 0.5\ndense "
      "10 softmax\n",
      17);
  verify(
      "model conv_view\ninput 8x8x2\nconv 3 3x3 relu\nflatten\ndense 12 relu\nflatten\nflatten\n"
      "dense 10 softmax\n",
      20);
  // A view that ends the network after layers that need no output gradient (all frozen) has
  // none to share; the loss still writes one, into a buffer of the view's own.
  verify("model last_view\ninput 6x6x2\nconv 3 3x3 relu frozen\nconv 10 4x4 frozen\nflatten\n", 19);
}

TEST_CASE(
    "codegen agrees with the generic engine: a dense layer over more inputs than its forward's "
    "chunk, the last chunk partial") {
  // FP32's dense forward passes every group of units over a chunk of x at a time, the sums
  // kept in y between chunks and relu applied after the last: 41 x 41 = 1681 inputs are one
  // full chunk of 1024 and 657 more.
  const std::string text = "model chunks\ninput 41x41x1\ndense 9 relu\ndense 4 softmax\n";
  codegen::Plan p = codegen::plan_model(test::graph_of(text), codegen::Isa::avx512, 16);
  CHECK(p.layers[0].ichunk == 1024);
  CHECK(p.layers[1].ichunk == 0);
  verify(text, 17);
}

TEST_CASE("flatten is a view: the regions of the layer before it, and no function of its own") {
  std::string text =
      "model views\ninput 8x8x2\nconv 3 3x3 relu\nflatten\ndropout 0.5\nflatten\ndense 10 "
      "softmax\n";
  dsl::Graph g = test::graph_of(text);
  for (codegen::Isa isa : {codegen::Isa::avx512, codegen::Isa::avx2, codegen::Isa::portable}) {
    codegen::Plan p = codegen::plan_model(g, isa, 16);
    for (int i : {1, 3}) {
      const codegen::LayerPlan &view = p.layers[i], &before = p.layers[i - 1];
      CHECK(view.view);
      CHECK(view.out.offset == before.out.offset);
      CHECK(view.dy.offset == before.dy.offset);
    }
    // conv -> dropout and dropout -> dense alternate the two gradient buffers all the same.
    CHECK(p.layers[0].dy.offset != p.layers[2].dy.offset);
    CHECK(p.layers[2].dy.offset != p.layers[4].dy.offset);
    CHECK(std::none_of(p.regions.begin(), p.regions.end(), [](const codegen::Slot& s) {
      return s.name.find("flatten") != std::string::npos;
    }));
  }
  codegen::Generated gen = codegen::generate(g, {"views.cnn", text, 16});
  CHECK(gen.source.find("flatten1_") == std::string::npos);
  CHECK(gen.source.find("flatten2_") == std::string::npos);
}

TEST_CASE(
    "codegen agrees with the generic engine: relu's derivative and the bias gradient in the max "
    "pool's backward") {
  // A relu conv's max pool applies relu's derivative as it routes dy back: through windows that
  // overlap (3x3 stride 2, where an element can be kept by two windows), through windows that
  // leave a row and a column uncovered, and for a frozen conv, which needs its dz for the layer
  // before but has no bias gradient.
  verify(
      "model pooled\ninput 12x11x2\nconv 5 3x3 relu\nmaxpool 3x3 stride=2\nconv 8 2x2 relu "
      "frozen\nmaxpool 2x2\ndense 3 softmax\n",
      21);
}

TEST_CASE("codegen agrees with the generic engine where every max pool window ties") {
  // Zero weights make conv1's outputs its biases everywhere, and conv2's outputs are then the
  // same at every position: every window ties, and the pools' backward passes must route each
  // gradient to the first element in window order, as the generic engine does (on AVX-512, by
  // the index the fused conv and pool forward stored). Where they routed elsewhere, conv1's
  // weight gradient would read other pixels. Relu with a positive bias (every element kept)
  // and a negative one (none kept), and a linear conv before overlapping windows (5x5 outputs,
  // 3x3 windows of stride 1: an element kept by several windows gets each one's gradient).
  verify(
      "model ties\ninput 12x13x1\nconv 2 3x3 pad=same relu "
      "weights=[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0] "
      "bias=[0.5,-0.5]\nmaxpool 2x2\nconv 3 2x2 "
      "weights=[0.5,-0.25,0.125,0.75,0.5,-0.25,0.125,0.75,0.5,-0.25,0.125,0.75,0.5,-0.25,0.125,0."
      "75,"
      "0.5,-0.25,0.125,0.75,0.5,-0.25,0.125,0.75] bias=[0.25,0.25,0.25]\n"
      "maxpool 3x3 stride=1\ndense 4 softmax\n",
      19);
}

TEST_CASE("codegen agrees with the generic engine: a max pool window of 256 elements") {
  // Training keeps a window's element in one byte, R*S for none; a 16x16 window does not fit,
  // so its conv and pool run apart. The second filter (zero weights, bias -1) leaves none of
  // its window to relu: a byte would have wrapped 256 to 0 and passed it a gradient.
  verify(
      "model wide\ninput 16x17x1\nconv 2 3x3 pad=same relu weights=[0.5,-0.25,0.125,0.75,-0.5,"
      "0.25,-0.125,0.375,0.625,0,0,0,0,0,0,0,0,0] bias=[0.1,-1]\nmaxpool 16x16\ndense 3 "
      "softmax\n",
      5);
}

TEST_CASE("codegen agrees with the generic engine: input rows that no output row reaches") {
  // Input rows that no output row reaches get no gradient and must read zero, not what the
  // buffer held: the last row of 10 under 3x3 filters at stride 2, and the rows and columns
  // between 1x1 filters at stride 3.
  verify(
      "model sparse\ninput 12x10x3\nconv 8 3x3 relu\nconv 6 3x3 stride=2 relu\nconv 5 1x1 "
      "stride=3 relu\nflatten\ndense 4 softmax\n",
      7);
}

TEST_CASE("codegen agrees with the generic engine on the shipped models") {
  for (const char* name : {"lenet5", "mlp", "edges", "keras_mnist"}) {
    std::string text = read(fs::path(CNNC_SOURCE_DIR) / "models" / (std::string(name) + ".cnn"));
    DYNAMIC_SECTION(name) {
      verify(text, 13);
    }
  }
}

namespace {

// What train reported through cnnc_pass::gradients_ready: the layers in order, and each layer's
// gradient entries as they stood when it was reported.
struct Reports {
  const cnnc_model* model = nullptr;
  std::vector<int32_t> layers;
  std::vector<std::vector<float>> grads;
};

extern "C" void record_report(const cnnc_pass* pass, int32_t layer) {
  auto* r = static_cast<Reports*>(pass->context);
  const cnnc_layer& l = r->model->layers[layer];
  r->layers.push_back(layer);
  r->grads.emplace_back(pass->grads + l.weight_offset, pass->grads + l.bias_offset + l.bias_count);
}

// Trains one slice of n random samples and checks that every trainable layer was reported once,
// the last first, with the gradients train returns.
void check_reports(const dsl::Graph& g, const cnnc_model& m, int32_t n) {
  INFO(m.engine << ", a slice of " << n);
  std::vector<float> params = engine::initial_params(g, m, 3);
  std::vector<float> input(static_cast<size_t>(n) * m.input_h * m.input_w * m.input_c);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 17) / 17.0f;
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) labels[i] = i % m.output_size;
  std::vector<float> grads(static_cast<size_t>(m.param_count), 0.0f);
  rt::Workspaces ws(m, 1);
  Reports reports{&m, {}, {}};
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = input.data();
  pass.labels = labels.data();
  pass.grads = grads.data();
  pass.workspace = ws[0];
  pass.n = n;
  pass.seed = 5;
  pass.gradients_ready = record_report;
  pass.context = &reports;
  m.train(&m, &pass);
  std::vector<int32_t> backward_order;
  for (int32_t i = m.layer_count; i-- > 0;)
    if (m.layers[i].trainable) backward_order.push_back(i);
  CHECK(reports.layers == backward_order);
  for (size_t k = 0; k < reports.layers.size(); ++k) {
    const cnnc_layer& l = m.layers[reports.layers[k]];
    INFO("layer " << l.name);
    CHECK(reports.grads[k] == std::vector<float>(grads.begin() + l.weight_offset,
                                                 grads.begin() + l.bias_offset + l.bias_count));
  }
}

}  // namespace

TEST_CASE(
    "train reports each trainable layer's gradients once they are final, last layer first, frozen "
    "layers never") {
  // A slice of 19 spans two blocks of 16 lanes (three of 8): a layer is final only in the last.
  dsl::Graph g = test::graph_of(
      "model frozen\ninput 10x10x1\nconv 2 3x3 pad=same weights=sobel frozen\nconv 8 3x3 "
      "relu\nmaxpool 2x2\ndropout 0.5\ndense 6 relu\ndense 10 softmax\n");
  const int32_t n = 19;
  g.training.batch = n;
  check_reports(g, engine::make_engine(g, "generic", n)->model(), n);
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, n});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  int ran = 0;
  for (const std::string& target : all_targets)
    if (codegen::ModelPtr m = lib.make(n, target)) {
      check_reports(g, *m, n);
      ++ran;
    }
  CHECK(ran >= 1);
}

namespace {

// Inference's forward output and training's, on n inputs (no dropout: the same function).
std::pair<std::vector<float>, std::vector<float>> both_outputs(const dsl::Graph& g,
                                                               const cnnc_model& m, int32_t n) {
  std::vector<float> params = engine::initial_params(g, m, 3);
  std::vector<float> input(static_cast<size_t>(n) * m.input_h * m.input_w * m.input_c);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 29) / 29.0f - 0.3f;
  std::vector<int32_t> labels(static_cast<size_t>(n), 0);
  std::vector<float> inferred(static_cast<size_t>(n) * m.output_size), trained = inferred;
  std::vector<float> grads(static_cast<size_t>(m.param_count), 0.0f);
  rt::Workspaces ws(m, 1);
  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = input.data();
  pass.labels = labels.data();
  pass.workspace = ws[0];
  pass.n = n;
  pass.output = inferred.data();
  m.forward(&m, &pass);
  pass.output = trained.data();
  pass.grads = grads.data();
  m.train(&m, &pass);
  return {inferred, trained};
}

}  // namespace

TEST_CASE("inference gives training's bits, each conv fused with the max pool after it or not") {
  // On AVX-512 both run each conv fused with the max pool after it, in the same tiles; training
  // also keeps each window's element (vmax_keep), inference takes the maximum alone. Elsewhere
  // both run conv and pool apart. Either way the outputs are equal to the bit. A padded first conv
  // (the block loaded into its padding), relu and linear convs, a pool that leaves a column,
  // pools whose windows overlap (in a tile of two windows, the last), partial tiles, and a slice
  // of 37: full blocks and a partial one. The second model's convs run by Winograd on AVX-512
  // (emit_winograd.cpp), fused with a pool and not: its sums are not AVX2's.
  const std::string models[] = {
      "model fused\ninput 17x19x1\nconv 6 5x5 pad=same relu\nmaxpool 2x2\nconv 10 3x3\nmaxpool "
      "3x3 stride=1\nconv 1 1x1 relu\nmaxpool 2x2 stride=1\ndense 10 softmax\n",
      "model wfused\ninput 8x8x16\nconv 16 3x3 pad=1 relu\nmaxpool 2x2\nconv 18 3x3 pad=1 "
      "tanh\nconv 16 3x3 pad=1\nmaxpool 2x2\ndense 10 softmax\n"};
  for (const std::string& model : models)
    for (const char* precision : {"", "precision bf16\n"}) {
      dsl::Graph g = test::graph_of(model + precision);
      const int32_t n = 37;
      codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, n});
      codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
      std::map<std::string, std::vector<float>> outputs;
      for (const char* target : {"avx512_bf16", "avx512", "avx2", "portable"})
        if (codegen::ModelPtr m = lib.make(n, target)) {
          INFO(m->engine);
          auto [inferred, trained] = both_outputs(g, *m, n);
          CHECK(inferred == trained);
          outputs[target] = inferred;
        }
      // And the fused functions give the bits of conv and pool run apart, as AVX2 runs them.
      if (outputs.count("avx512") && outputs.count("avx2") && g.name == "fused")
        CHECK(outputs["avx512"] == outputs["avx2"]);
    }
}

namespace {

// update_range over pieces that split layers, with empty ones among them, gives update's bits,
// and touches nothing outside its range; for SGD and Adam, over two steps.
void check_update_by_ranges(const dsl::Graph& g, const cnnc_model& m) {
  INFO(m.engine);
  const int64_t count = m.param_count;
  std::vector<float> grads(static_cast<size_t>(count));
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 13) / 13.0f - 0.4f;
  const std::vector<int64_t> cuts = {0, 0, 7, count / 3, count / 3, count - 5, count};
  for (int32_t kind : {CNNC_SGD, CNNC_ADAM}) {
    INFO("optimizer kind " << kind);
    std::vector<float> whole = engine::initial_params(g, m, 3), pieces = whole;
    std::vector<float> whole_state(2 * static_cast<size_t>(count), 0.0f),
        pieces_state = whole_state;
    for (int64_t k = 1; k <= 2; ++k) {
      cnnc_optimizer opt{kind, 0.05f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.001f, k};
      m.update(&m, whole.data(), grads.data(), whole_state.data(), &opt);
      for (size_t c = 0; c + 1 < cuts.size(); ++c) {
        std::vector<float> params = pieces, state = pieces_state;
        m.update_range(&m, pieces.data(), grads.data(), pieces_state.data(), &opt, cuts[c],
                       cuts[c + 1]);
        for (int64_t j = 0; j < count; ++j) {
          if (j >= cuts[c] && j < cuts[c + 1]) continue;
          INFO("entry " << j << " outside [" << cuts[c] << ", " << cuts[c + 1] << ")");
          REQUIRE(pieces[j] == params[j]);
          REQUIRE(pieces_state[j] == state[j]);
          REQUIRE(pieces_state[count + j] == state[count + j]);
        }
      }
    }
    CHECK(pieces == whole);
    CHECK(pieces_state == whole_state);
  }
}

}  // namespace

TEST_CASE("update_range by pieces is update, in generated code and the generic engine") {
  dsl::Graph g = test::graph_of(
      "model frozen\ninput 10x10x1\nconv 2 3x3 pad=same weights=sobel frozen\nconv 8 3x3 "
      "relu\nmaxpool 2x2\ndense 6 relu\ndense 10 softmax\n");
  check_update_by_ranges(g, engine::make_engine(g, "generic", 4)->model());
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, 4});
  codegen::GeneratedModel lib = codegen::build_generated(gen.source, g.name, {});
  codegen::ModelPtr m = lib.make(4, "auto");
  REQUIRE(m);
  check_update_by_ranges(g, *m);
}

TEST_CASE("a checked graph lowers to the ABI's layer table, one row per layer") {
  dsl::Graph g = test::graph_of(
      "model rows\ninput 6x6x1\nconv 2 3x3 pad=same relu\nmaxpool 2x2\nflatten\ndropout "
      "0.25\ndense 3 softmax\nloss mse\n");
  rt::ModelSpec m = codegen::lower_to_abi(g);
  CHECK(m.name == "rows");
  CHECK((m.input_h == 6 && m.input_w == 6 && m.input_c == 1));
  CHECK(m.loss == CNNC_MSE);
  CHECK(m.param_count == g.param_floats);
  REQUIRE(m.layers.size() == 5);
  const cnnc_layer &conv = m.layers[0], &pool = m.layers[1], &flatten = m.layers[2],
                   &dropout = m.layers[3], &dense = m.layers[4];
  CHECK(std::string(conv.name) == "conv1");
  CHECK((conv.kind == CNNC_CONV && conv.activation == CNNC_RELU));
  CHECK((conv.in_h == 6 && conv.in_w == 6 && conv.in_c == 1));
  CHECK((conv.out_h == 6 && conv.out_w == 6 && conv.out_c == 2));
  CHECK((conv.kernel_h == 3 && conv.kernel_w == 3 && conv.stride_h == 1 && conv.stride_w == 1));
  CHECK((conv.pad_top == 1 && conv.pad_left == 1 && conv.pad_bottom == 1 && conv.pad_right == 1));
  CHECK((conv.weight_count == 18 && conv.bias_count == 2 && conv.trainable == 1));
  CHECK((pool.kind == CNNC_MAXPOOL && pool.kernel_h == 2 && pool.stride_w == 2));
  CHECK((pool.weight_count == 0 && pool.trainable == 0));
  // Window fields belong to conv and pooling only.
  CHECK((flatten.kind == CNNC_FLATTEN && flatten.kernel_h == 0 && flatten.stride_h == 0));
  CHECK((flatten.out_h == 1 && flatten.out_w == 1 && flatten.out_c == 18));
  CHECK((dropout.kind == CNNC_DROPOUT && dropout.dropout_rate == 0.25f));
  CHECK((dense.kind == CNNC_DENSE && dense.activation == CNNC_SOFTMAX));
  CHECK((dense.weight_offset == g.layers[4].weight_offset && dense.weight_count == 54));
  CHECK((dense.bias_offset == g.layers[4].bias_offset && dense.bias_count == 3));
  // Generated code spells the enumerators by name.
  CHECK(std::string(codegen::abi_kind_name(dense.kind)) == "CNNC_DENSE");
  CHECK(std::string(codegen::abi_activation_name(conv.activation)) == "CNNC_RELU");
  CHECK(std::string(codegen::abi_loss_name(m.loss)) == "CNNC_MSE");
}

TEST_CASE("generated code matches the approved golden files") {
  // A mismatch writes NAME.gen.cpp.unapproved beside the golden file; review it and rename it,
  // or run with CNNC_APPROVE=1, to approve a deliberate change.
  fs::path dir = fs::path(CNNC_SOURCE_DIR) / "tests/codegen/golden";
  for (const char* name : {"tiny_conv", "tiny_dense"}) {
    DYNAMIC_SECTION(name) {
      std::string path = std::string("tests/codegen/golden/") + name + ".cnn";
      std::string text = read(fs::path(CNNC_SOURCE_DIR) / path);
      dsl::Graph g = test::check_text(text, {}, path).graph.value();
      codegen::Generated gen =
          codegen::generate(g, {path, text, static_cast<int>(g.training.batch)});
      for (auto [ext, got] :
           {std::pair{".gen.cpp", &gen.source}, std::pair{".gen.hpp", &gen.header}}) {
        fs::path golden = dir / (std::string(name) + ext);
        fs::path unapproved = golden;
        unapproved += ".unapproved";
        if (std::getenv("CNNC_APPROVE")) std::ofstream(golden, std::ios::binary) << *got;
        std::string want = fs::exists(golden) ? read(golden) : std::string("(no golden file)");
        if (*got != want)
          std::ofstream(unapproved, std::ios::binary) << *got;
        else
          fs::remove(unapproved);
        CHECK(*got == want);
      }
    }
  }
}

TEST_CASE("the same model generates the same bytes, and nothing of the machine") {
  std::string text = read(fs::path(CNNC_SOURCE_DIR) / "models/keras_mnist.cnn");
  dsl::Graph g = test::graph_of(text);
  codegen::Generated a = codegen::generate(g, {"models/keras_mnist.cnn", text, 64});
  codegen::Generated b = codegen::generate(g, {"models/keras_mnist.cnn", text, 64});
  CHECK(a.source == b.source);
  CHECK(a.header == b.header);
  CHECK(a.source.find(CNNC_SOURCE_DIR) == std::string::npos);  // no absolute paths
  CHECK(a.source.find("sha256 ") != std::string::npos);
}

TEST_CASE("user text reaches generated code only inside comments, escaped") {
  std::string text = "model m\ninput 4x4x1\ndense 2\n";
  dsl::Graph g = test::graph_of(text);
  codegen::Generated gen = codegen::generate(g, {"evil\n#error injected\\", text, 4});
  std::istringstream lines(gen.source);
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    bool injected = line.find("#error") != std::string::npos && line.rfind("//", 0) != 0;
    CHECK_FALSE(injected);
    CHECK((line.empty() || line.back() != '\\'));
  }
}

TEST_CASE("generated code compiles without a warning under -Wall -Wextra -Wpedantic -Werror") {
  // Users build it inside their own projects (cnn_add_model), often with warnings as errors;
  // GCC is checked at -O2 because some of its warnings need the optimiser.
  fs::path dir = fs::temp_directory_path() / ("cnnc-warnings-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  int compilers = 0;
  for (const char* compiler : {"g++", "clang++-19", "clang++"}) {
    if (std::system((std::string("command -v ") + compiler + " >/dev/null 2>&1").c_str()) != 0)
      continue;
    ++compilers;
    // Run-time builds compile one variant (-DCNNC_ONLY_VARIANT), cnn_add_model all of them;
    // mnist99 is precision bf16, so its files carry the avx512_bf16 variant too. Its layers have
    // even pair counts; odd_pairs has the odd ones, whose last pair the bf16 code adds alone
    // (conv channels and filters, dense inputs of 1, 2, 3, 105 and 5 pairs).
    const std::string odd_pairs =
        "model odd_pairs\ninput 9x11x2\nconv 5 3x3 stride=2 pad=same relu\nconv 7 3x3 pad=1 "
        "relu\ndense 9 tanh\ndense 3 softmax\nprecision bf16\n";
    // Winograd's forward (emit_winograd.cpp), fp32 and bf16, fused with a pool and not.
    const std::string winograd =
        "model winograd\ninput 8x8x16\nconv 16 3x3 pad=1 relu\nmaxpool 2x2\nconv 18 3x3 "
        "tanh\nflatten\ndense 3 softmax\nprecision bf16\n";
    const std::string few_pairs =
        "model few_pairs\ninput 1x1x2\ndense 3 relu\ndense 5 relu\ndense 4 softmax\nprecision "
        "bf16\n";
    auto model = [](const char* name) {
      return read(fs::path(CNNC_SOURCE_DIR) / "models" / (std::string(name) + ".cnn"));
    };
    for (auto [name, text, only] :
         {std::tuple{"edges", model("edges"), ""},
          std::tuple{"edges", model("edges"), "-DCNNC_ONLY_VARIANT=0"},
          std::tuple{"edges", model("edges"), "-DCNNC_ONLY_VARIANT=1"},
          std::tuple{"edges", model("edges"), "-DCNNC_ONLY_VARIANT=2"},
          std::tuple{"mlp", model("mlp"), ""}, std::tuple{"lenet5", model("lenet5"), ""},
          std::tuple{"mnist99", model("mnist99"), ""}, std::tuple{"odd_pairs", odd_pairs, ""},
          std::tuple{"few_pairs", few_pairs, ""}, std::tuple{"winograd", winograd, ""}}) {
      DYNAMIC_SECTION(compiler << " " << name << " " << only) {
        std::string path = std::string(name) + ".cnn";  // the banner names it
        dsl::Graph g = test::graph_of(text);
        fs::path source = dir / (std::string(name) + ".gen.cpp");
        std::ofstream(source, std::ios::binary) << codegen::generate(g, {path, text, 64}).source;
        std::string command = std::string(compiler) +
                              " -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror " + only + " -I" +
                              CNNC_SOURCE_DIR + "/runtime -c " + source.string() +
                              " -o /dev/null 2>" + (dir / "diagnostics.txt").string();
        int status = std::system(command.c_str());
        INFO(command << "\n" << read(dir / "diagnostics.txt"));
        CHECK(status == 0);
      }
    }
  }
  fs::remove_all(dir);
  if (compilers == 0) WARN("no C++ compiler on PATH: nothing checked");
}
