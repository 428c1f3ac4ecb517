// Specifications of the conv forward and input gradient by Winograd's F(2x2, 3x3), and of the
// weight gradient by F(3x3, 2x2) (codegen/emit_winograd.cpp): the layers cnnc_abi.h's rules name
// (the weight gradient's where it also runs by taps), and only those, run by it on AVX-512; in
// fp32 they agree with the generic engine's direct sums within fp32's tolerance, and in bf16 with
// the generic engine that rounds the same transforms (generic/winograd.cpp) and with fp32 within
// bf16's bound; with padding, without a pool and fused with one, with tanh, with filters, channels
// and tiles that the register tile does not divide, and under a direct forward.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "../dsl/check_text.hpp"
#include "../skip.hpp"
#include "codegen/abi_table.hpp"
#include "codegen/emit_model.hpp"
#include "codegen/plan.hpp"
#include "engine/verify.hpp"

using namespace cnnc;

namespace {

// A layer of c channels, k filters, a square kernel, stride and padding, and out x out outputs,
// for the rules.
cnnc_layer layer_of(int32_t c, int32_t k, int32_t kernel, int32_t stride, int32_t out,
                    int32_t pad = 0, int32_t kind = CNNC_CONV) {
  cnnc_layer l{};
  std::strcpy(l.name, "conv");
  l.kind = kind;
  l.in_c = c, l.out_c = k;
  l.kernel_h = l.kernel_w = kernel;
  l.stride_h = l.stride_w = stride;
  l.pad_top = l.pad_left = l.pad_bottom = l.pad_right = pad;
  l.out_h = l.out_w = out;
  l.in_h = l.in_w = (out - 1) * stride + kernel - 2 * pad;
  return l;
}

// Whether the forward's rule names such a layer, unpadded.
bool rule(int32_t c, int32_t k, int32_t kernel, int32_t stride, int32_t out,
          int32_t kind = CNNC_CONV) {
  const cnnc_layer l = layer_of(c, k, kernel, stride, out, 0, kind);
  return cnnc_winograd(&l) != 0;
}

// conv2's input gradient by Winograd under a direct forward: 17 channels, an odd count that the
// forward's rule refuses (bf16's forward pairs kernel columns instead).
const std::string kOddModel =
    "model winoodd\ninput 10x10x3\nconv 17 3x3 pad=1 relu\nconv 16 3x3 relu\nflatten\ndense 3 "
    "softmax\n";

enum class Pass { forward, dx, dw };

// Which layers of a model each variant runs by Winograd, in the forward, the input gradient (dx)
// or the weight gradient (dw), as "conv2 conv3".
std::string winograd_layers(const std::string& text, codegen::Isa isa, Pass pass = Pass::forward) {
  dsl::Graph g = test::graph_of(text);
  codegen::Plan plan = codegen::plan_model(g, isa, 16);
  std::string names;
  for (const codegen::LayerPlan& lp : plan.layers)
    if (pass == Pass::dx ? lp.winograd_dx : pass == Pass::dw ? lp.winograd_dw : lp.winograd)
      names += (names.empty() ? "" : " ") + lp.layer->name;
  return names;
}

// The tiles of a row that each group of layer `index`'s Winograd weight gradient takes.
int dw_group_tiles(const std::string& text, codegen::Isa isa, size_t index) {
  dsl::Graph g = test::graph_of(text);
  return codegen::plan_model(g, isa, 16).layers[index].winograd_dw_tiles;
}

// Every target against the generic engine; each must have run.
void check(const std::string& text, int32_t n, const std::vector<std::string>& targets) {
  dsl::Graph g = test::graph_of(text);
  engine::VerifyReport r = engine::verify_specialized(g, n, 11, targets);
  REQUIRE(r.targets.size() == targets.size());
  for (const engine::TargetCheck& t : r.targets) {
    REQUIRE(!t.engine.empty());
    for (const engine::TensorCheck& c : t.tensors) {
      INFO(g.name << " " << t.target << " " << c.tensor << ": max abs err " << c.max_abs
                  << ", largest value " << c.max_ref << ", tolerance " << c.rel_tolerance);
      CHECK(c.ok());
    }
    for (const engine::TensorCheck& c : t.against_fp32) {
      INFO(g.name << " " << t.target << " against fp32, " << c.tensor << ": max abs err "
                  << c.max_abs << ", largest value " << c.max_ref << ", tolerance "
                  << c.rel_tolerance);
      CHECK(c.ok());
    }
  }
}

// conv2: 16 channels, 18 filters (register tiles of 4, 4, 4, 4 and 2), padding, 10x10 outputs (5
// tiles a row: groups of 3 and 2), no pool, tanh; conv3: 18 channels (9 pairs, an odd count),
// 16 filters, fused with a 2x2 max pool, relu.
const std::string kModel =
    "model wino\ninput 10x10x3\nconv 16 3x3 pad=1 relu\nconv 18 3x3 pad=same tanh\nconv 16 3x3 "
    "pad=1 relu\nmaxpool 2x2\nflatten\ndense 5 softmax\noptimizer sgd lr=0.1 momentum=0.9\n";

// The input gradient too (cnnc_winograd_dx: unpadded): conv2, 16 channels and 18 filters, dx
// 12x12 (6 tiles a row: groups of 3), and conv3, 18 channels (5 tiles a row: 3 and 2; dx's
// channels in register tiles of 4, 4, 4, 4 and 2) fused with a pool; conv1 runs direct sums.
const std::string kGradientModel =
    "model winodx\ninput 12x12x3\nconv 16 3x3 pad=1 relu\nconv 18 3x3 relu\nconv 16 3x3 "
    "relu\nmaxpool 2x2\nflatten\ndense 5 softmax\noptimizer sgd lr=0.1 momentum=0.9\n";

// The weight gradient by F(3x3, 2x2): conv2's 80 channels are 5 vectors, in register
// tiles of 3 and 2, its 20 filters 7, 7 and 6, and its 11 tiles a row groups of 4, 4 and 3 (bf16,
// whose pairs halve a tile's bytes: 6 and 5).
const std::string kWeightsModel =
    "model winodw\ninput 24x24x3\nconv 80 3x3 pad=1 relu\nconv 20 3x3 relu\nflatten\ndense 5 "
    "softmax\noptimizer sgd lr=0.1 momentum=0.9\n";

}  // namespace

TEST_CASE("Winograd's rule: 3x3 convs of stride 1 with 16 or more channels and filters") {
  CHECK(rule(32, 64, 3, 1, 24));        // keras_mnist's conv2
  CHECK(rule(16, 16, 3, 1, 2));         // the smallest
  CHECK_FALSE(rule(14, 64, 3, 1, 24));  // too few channels
  CHECK_FALSE(rule(17, 64, 3, 1, 24));  // an odd count: bf16 pairs them
  CHECK_FALSE(rule(32, 8, 3, 1, 24));   // too few filters
  CHECK_FALSE(rule(32, 64, 5, 1, 24));  // 5x5
  CHECK_FALSE(rule(32, 64, 3, 2, 12));  // stride 2
  CHECK_FALSE(rule(32, 64, 3, 1, 25));  // outputs not whole 2x2 tiles
  CHECK_FALSE(rule(32, 32, 3, 1, 24, CNNC_MAXPOOL));
}

TEST_CASE("Winograd's rule for the input gradient: the same, unpadded, over dz's channels") {
  auto rule_dx = [](int32_t c, int32_t k, int32_t in, int32_t pad) {
    const cnnc_layer l = layer_of(c, k, 3, 1, in + 2 * pad - 2, pad);
    return cnnc_winograd_dx(&l) != 0;
  };
  CHECK(rule_dx(32, 64, 26, 0));        // keras_mnist's conv2: dx 26x26, dz's 64 channels
  CHECK_FALSE(rule_dx(32, 64, 26, 1));  // padded
  CHECK_FALSE(rule_dx(32, 63, 26, 0));  // an odd count of dz channels
  CHECK_FALSE(rule_dx(14, 64, 26, 0));  // too few dx channels
  CHECK_FALSE(rule_dx(32, 64, 25, 0));  // dx not whole tiles
}

TEST_CASE(
    "Winograd's rule for the weight gradient: channels in whole vectors of 16, padded or not") {
  auto rule_dw = [](int32_t c, int32_t k, int32_t kernel, int32_t stride, int32_t out,
                    int32_t pad) {
    const cnnc_layer l = layer_of(c, k, kernel, stride, out, pad);
    return cnnc_winograd_dw(&l) != 0;
  };
  CHECK(rule_dw(32, 64, 3, 1, 24, 0));        // keras_mnist's conv2
  CHECK(rule_dw(16, 16, 3, 1, 28, 1));        // padded
  CHECK_FALSE(rule_dw(24, 64, 3, 1, 24, 0));  // 24 channels: a vector and a half
  CHECK_FALSE(rule_dw(32, 8, 3, 1, 24, 0));   // too few filters
  CHECK_FALSE(rule_dw(32, 64, 5, 1, 24, 0));  // 5x5
  CHECK_FALSE(rule_dw(32, 64, 3, 2, 12, 0));  // stride 2
  CHECK_FALSE(rule_dw(32, 64, 3, 1, 25, 0));  // outputs not whole 2x2 tiles
}

TEST_CASE("Winograd's transform of a filter is G g G^T") {
  // g = [1 2 3; 4 5 6; 7 8 9]: G g is [1 2 3; 6 7.5 9; 2 2.5 3; 7 8 9], and (G g) G^T by hand.
  const float g[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const float want[16] = {1, 3, 1, 3, 6, 11.25f, 3.75f, 9, 2, 3.75f, 1.25f, 3, 7, 12, 4, 9};
  float u[16];
  cnnc_winograd_filter(u, g, 1);
  for (int i = 0; i < 16; ++i) {
    INFO("position " << i);
    CHECK(u[i] == want[i]);
  }
}

TEST_CASE("AVX-512 plans the layers the rule names by Winograd, the other variants none") {
  CHECK(winograd_layers(kModel, codegen::Isa::avx512) == "conv2 conv3");
  CHECK(winograd_layers(kModel + "precision bf16\n", codegen::Isa::avx512_bf16) == "conv2 conv3");
  CHECK(winograd_layers(kModel, codegen::Isa::avx2).empty());
  CHECK(winograd_layers(kModel, codegen::Isa::portable).empty());
  // A 3x3 pool after a Winograd conv stays a pool of its own: a tile is not its window.
  CHECK(winograd_layers("model w\ninput 8x8x16\nconv 16 3x3 pad=1 relu\nmaxpool 3x3\n",
                        codegen::Isa::avx512) == "conv1");
  CHECK(winograd_layers(kModel, codegen::Isa::avx512, Pass::dx).empty());  // padded
  CHECK(winograd_layers(kGradientModel, codegen::Isa::avx512) == "conv2 conv3");
  CHECK(winograd_layers(kGradientModel, codegen::Isa::avx512, Pass::dx) == "conv2 conv3");
  CHECK(winograd_layers(kGradientModel + "precision bf16\n", codegen::Isa::avx512_bf16, Pass::dx) ==
        "conv2 conv3");
  CHECK(winograd_layers(kGradientModel, codegen::Isa::avx2, Pass::dx).empty());
  CHECK(winograd_layers(kOddModel, codegen::Isa::avx512).empty());
  CHECK(winograd_layers(kOddModel, codegen::Isa::avx512, Pass::dx) == "conv2");
  // The weight gradient: channels in whole vectors (kOddModel's 17 are not), padded or not.
  CHECK(winograd_layers(kModel, codegen::Isa::avx512, Pass::dw) == "conv2");
  CHECK(winograd_layers(kGradientModel, codegen::Isa::avx512, Pass::dw) == "conv2");
  CHECK(winograd_layers(kWeightsModel, codegen::Isa::avx512, Pass::dw) == "conv2");
  CHECK(winograd_layers(kWeightsModel + "precision bf16\n", codegen::Isa::avx512_bf16, Pass::dw) ==
        "conv2");
  CHECK(winograd_layers(kOddModel, codegen::Isa::avx512, Pass::dw).empty());
  CHECK(winograd_layers(kWeightsModel, codegen::Isa::avx2, Pass::dw).empty());
  CHECK(dw_group_tiles(kWeightsModel, codegen::Isa::avx512, 1) == 4);
  CHECK(dw_group_tiles(kWeightsModel + "precision bf16\n", codegen::Isa::avx512_bf16, 1) == 6);
  dsl::Graph g = test::graph_of(kModel);
  codegen::Generated gen = codegen::emit_model(g, {g.source_path, g.source_text, 16});
  CHECK(gen.source.find("Winograd F(2x2, 3x3)") != std::string::npos);
  CHECK(gen.source.find("Winograd F(3x3, 2x2)") != std::string::npos);
}

TEST_CASE("Winograd's fp32 forward and gradients agree with the generic engine's direct sums") {
  if (!cnnc_test::cpu_has("avx512f")) CNNC_SKIP("isa:avx512", "this CPU lacks AVX-512");
  // 19 samples: a block of 16 and one of 3, whose idle lanes must not reach the gradients.
  check(kModel, 19, {"avx512"});
  check(kGradientModel, 19, {"avx512"});
  check(kOddModel, 19, {"avx512"});
  check(kWeightsModel, 19, {"avx512"});
}

TEST_CASE("Winograd's bf16 agrees with the generic engine that rounds its transforms") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  check(kModel + "precision bf16\n", 32, {"avx512_bf16", "avx512"});
  check(kGradientModel + "precision bf16\n", 32, {"avx512_bf16", "avx512"});
  check(kOddModel + "precision bf16\n", 32, {"avx512_bf16", "avx512"});
  check(kWeightsModel + "precision bf16\n", 32, {"avx512_bf16", "avx512"});
  check(kWeightsModel + "precision bf16\n", 19, {"avx512_bf16"});  // a pair with an idle sample
}

TEST_CASE("Winograd's bf16 weight gradient rounds the values the generic engine rounds") {
  if (!cnnc_test::cpu_has("avx512_bf16"))
    CNNC_SKIP("isa:avx512_bf16", "this CPU lacks AVX512_BF16");
  // A first layer reads the same x bits in both engines, so its weight gradient differs only by
  // the order of fp32 sums when both round V and Z (5e-7 of its largest value measured), and by
  // about 3e-3 when the generic engine rounds x and dz instead, as its direct sums do.
  dsl::Graph g = test::graph_of(
      "model winofirst\ninput 12x12x16\nconv 16 3x3 relu\nflatten\ndense 5 softmax\nprecision "
      "bf16\n");
  for (int32_t n : {19, 64}) {
    engine::VerifyReport r = engine::verify_specialized(g, n, 11, {"avx512_bf16"});
    REQUIRE(r.targets.size() == 1);
    bool seen = false;
    for (const engine::TensorCheck& c : r.targets[0].tensors)
      if (c.tensor == "conv1 weight grad") {
        seen = true;
        INFO(n << " samples: max abs err " << c.max_abs << ", largest value " << c.max_ref);
        CHECK(c.max_abs <= 1e-4 * c.max_ref);
      }
    CHECK(seen);
  }
}
