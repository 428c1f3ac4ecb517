// The generic engine through the C ABI: gradients of whole networks, frozen layers, slices,
// determinism, and the validation that guards the layer table.
#include <cmath>
#include <cstring>
#include <limits>

#include "support.hpp"

using cnnc::rt::GenericModel;
using cnnc::test::Harness;
using cnnc::test::Pads;
using cnnc::test::SpecBuilder;

namespace {

// d(sum of the slice's losses) / d(params) from train, against central differences of the loss
// train returns. The loss comes back as a float, so the step is large enough that its rounding
// stays small, and small enough that no max-pool window changes its winner.
void check_network_gradient(const cnnc::rt::ModelSpec& spec, int32_t n, uint64_t seed) {
  GenericModel model(spec, n);
  Harness h(model.abi(), n, seed);
  h.train();
  const std::vector<float> analytic = h.grads;
  cnnc::test::check_gradient(
      "d loss / d params", h.params, analytic, [&] { return double(h.train()); }, 1e-3f, 3e-4, 1e-2,
      400);
}

}  // namespace

TEST_CASE("a whole network's parameter gradient matches finite differences", "[engine]") {
  SECTION("conv tanh, max pool, strided conv sigmoid, avg pool, dense tanh, dropout, softmax") {
    check_network_gradient(SpecBuilder(9, 9, 2)
                               .conv(4, 3, 3, 1, 1, {1, 1, 1, 1}, CNNC_TANH)
                               .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
                               .conv(5, 2, 3, 1, 2, {0, 1, 1, 0}, CNNC_SIGMOID)
                               .pool(CNNC_AVGPOOL, 2, 2, 1, 1)
                               .flatten()
                               .dense(8, CNNC_TANH)
                               .dropout(0.25f)
                               .dense(4, CNNC_SOFTMAX)
                               .build(),
                           3, 1);
  }
  SECTION("dense relu, then softmax as a layer of its own, with cross-entropy") {
    check_network_gradient(
        SpecBuilder(2, 3, 2).dense(9, CNNC_RELU).dense(5).activation(CNNC_SOFTMAX).build(), 4, 2);
  }
  SECTION("cross-entropy on logits: no softmax at the end") {
    check_network_gradient(SpecBuilder(3, 3, 1).dense(6, CNNC_SIGMOID).dense(4).build(), 3, 3);
  }
  SECTION("mse after a softmax, which then needs the softmax's own backward") {
    check_network_gradient(
        SpecBuilder(3, 3, 1, CNNC_MSE).dense(6, CNNC_TANH).dense(4, CNNC_SOFTMAX).build(), 3, 4);
  }
  SECTION("mse after a tanh activation layer and a 1x1 conv") {
    check_network_gradient(SpecBuilder(4, 4, 3, CNNC_MSE)
                               .conv(5, 1, 1)
                               .activation(CNNC_TANH)
                               .flatten()
                               .dense(3, CNNC_SIGMOID)
                               .build(),
                           2, 5);
  }
  SECTION("a conv as the last layer, its softmax over all of the sample's 2x2x3 values") {
    check_network_gradient(SpecBuilder(5, 5, 2).conv(3, 3, 3, 2, 2, {}, CNNC_SOFTMAX).build(), 3,
                           6);
  }
}

TEST_CASE("train's probabilities equal forward's, and forward ignores dropout", "[engine]") {
  const auto with_dropout = SpecBuilder(6, 6, 1)
                                .conv(3, 3, 3, 1, 1, {}, CNNC_RELU)
                                .flatten()
                                .dropout(0.5f)
                                .dense(10, CNNC_SOFTMAX)
                                .build();
  auto without = with_dropout;
  without.layers.erase(without.layers.begin() + 2);
  GenericModel a(with_dropout, 4), b(without, 4);
  Harness ha(a.abi(), 4, 8), hb(b.abi(), 4, 8);
  ha.forward();
  hb.forward();
  CHECK(ha.output == hb.output);
  for (int32_t i = 0; i < 4; ++i) {
    double sum = 0.0;
    for (int32_t j = 0; j < 10; ++j) sum += ha.output[size_t(i * 10 + j)];
    CHECK(sum == Approx(1.0));
  }
  const std::vector<float> inferred = hb.output;
  hb.train();
  CHECK(hb.output == inferred);
}

TEST_CASE("frozen layers: gradients untouched, parameters unchanged, backprop through them",
          "[engine]") {
  const auto spec = SpecBuilder(5, 5, 1)
                        .conv(2, 3, 3, 1, 1, {1, 1, 1, 1}, CNNC_RELU)
                        .frozen()
                        .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
                        .dense(6, CNNC_TANH)
                        .dense(3, CNNC_SOFTMAX)
                        .frozen()
                        .build();
  GenericModel model(spec, 2);
  Harness h(model.abi(), 2, 11);
  const float sentinel = 12345.0f;
  std::fill(h.grads.begin(), h.grads.end(), sentinel);
  h.train();
  const cnnc_layer& conv = spec.layers[0];
  const cnnc_layer& hidden = spec.layers[2];
  const cnnc_layer& out = spec.layers[3];
  auto range_is = [&](const std::vector<float>& v, const cnnc_layer& l, float value) {
    for (int64_t j = 0; j < l.weight_count + l.bias_count; ++j)
      if (v[size_t(l.weight_offset + j)] != value) return false;
    return true;
  };
  CHECK(range_is(h.grads, conv, sentinel));
  CHECK(range_is(h.grads, out, sentinel));
  CHECK_FALSE(range_is(h.grads, hidden, sentinel));

  SECTION("the trainable layer between them still gets the right gradient") {
    const std::vector<float> analytic = h.grads;
    std::vector<float> hidden_params(h.params.begin() + hidden.weight_offset,
                                     h.params.begin() + out.weight_offset);
    std::vector<float> hidden_grads(analytic.begin() + hidden.weight_offset,
                                    analytic.begin() + out.weight_offset);
    cnnc::test::check_gradient(
        "hidden", hidden_params, hidden_grads,
        [&] {
          std::copy(hidden_params.begin(), hidden_params.end(),
                    h.params.begin() + hidden.weight_offset);
          return double(h.train());
        },
        3e-3f, 3e-4, 1e-2);
  }
  SECTION("an optimizer step moves only the trainable layer") {
    std::vector<float> params = h.params;
    std::vector<float> state(2 * size_t(spec.param_count), 0.0f);
    std::vector<float> grads(h.grads.size(), 0.5f);
    for (int32_t kind : {CNNC_SGD, CNNC_ADAM}) {
      cnnc_optimizer opt{};
      opt.kind = kind, opt.lr = 0.1f, opt.momentum = 0.9f, opt.beta1 = 0.9f, opt.beta2 = 0.999f,
      opt.eps = 1e-8f, opt.weight_decay = 0.01f, opt.step = 1;
      model.abi()->update(model.abi(), params.data(), grads.data(), state.data(), &opt);
    }
    for (const cnnc_layer* l : {&conv, &out})
      for (int64_t j = 0; j < l->weight_count + l->bias_count; ++j) {
        const size_t at = size_t(l->weight_offset + j);
        REQUIRE(params[at] == h.params[at]);
        REQUIRE(state[at] == 0.0f);
        REQUIRE(state[size_t(spec.param_count) + at] == 0.0f);
      }
    CHECK(params[size_t(hidden.weight_offset)] != h.params[size_t(hidden.weight_offset)]);
    CHECK(params[size_t(hidden.bias_offset)] != h.params[size_t(hidden.bias_offset)]);
  }
}

namespace {

// input_gradient against central differences of the class scores: the sum over the samples of
// each one's score (its logit, the output before a final softmax) for a chosen class. `logits`
// is the same network without the final softmax, whose forward pass gives those scores.
void check_input_gradient(const cnnc::rt::ModelSpec& spec, const cnnc::rt::ModelSpec& logits,
                          int32_t n, uint64_t seed) {
  GenericModel model(spec, n), scores(logits, n);
  Harness h(model.abi(), n, seed), s(scores.abi(), n, seed);
  const int32_t o = model.abi()->output_size;
  std::vector<int32_t> classes;
  for (int32_t i = 0; i < n; ++i) classes.push_back((i * 3 + 1) % o);
  std::vector<float> grad(h.input.size(), -1.0f);
  model.input_gradient(*h.bind(), classes.data(), grad.data());
  REQUIRE(s.params == h.params);
  cnnc::test::check_gradient(
      "d score / d input", s.input, grad,
      [&] {
        s.forward();
        double sum = 0;
        for (int32_t i = 0; i < n; ++i) sum += s.output[size_t(i * o + classes[size_t(i)])];
        return sum;
      },
      1e-3f, 3e-4, 1e-2, 400);
}

}  // namespace

TEST_CASE("input_gradient is the gradient of the class score that finite differences give",
          "[engine][saliency]") {
  SECTION("conv tanh, max pool, dense, dropout (the identity here), dense softmax") {
    auto net = [](int32_t last) {
      return SpecBuilder(8, 8, 1)
          .conv(3, 3, 3, 1, 1, {1, 1, 1, 1}, CNNC_TANH)
          .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
          .flatten()
          .dense(7, CNNC_SIGMOID)
          .dropout(0.5f)
          .dense(4, last)
          .build();
    };
    check_input_gradient(net(CNNC_SOFTMAX), net(CNNC_LINEAR), 2, 21);
  }
  SECTION("a dense network whose input is wider than every layer, softmax as its own layer") {
    const auto logits = SpecBuilder(6, 6, 2).dense(5, CNNC_TANH).dense(3).build();
    const auto spec = SpecBuilder(6, 6, 2).dense(5, CNNC_TANH).dense(3).activation(CNNC_SOFTMAX);
    check_input_gradient(spec.build(), logits, 3, 22);
  }
  SECTION("strided conv and avg pool, no softmax: the score is the output itself") {
    const auto spec = SpecBuilder(7, 7, 2)
                          .conv(3, 3, 3, 2, 2, {0, 1, 1, 0}, CNNC_SIGMOID)
                          .pool(CNNC_AVGPOOL, 2, 2, 1, 1)
                          .flatten()
                          .dense(3)
                          .build();
    check_input_gradient(spec, spec, 2, 23);
  }
  SECTION("a class outside the outputs is refused") {
    const auto spec = SpecBuilder(2, 2, 1).dense(3).build();
    GenericModel model(spec, 1);
    Harness h(model.abi(), 1, 24);
    std::vector<float> grad(4);
    const int32_t bad = 3;
    CHECK_THROWS_AS(model.input_gradient(*h.bind(), &bad, grad.data()), std::invalid_argument);
  }
}

TEST_CASE("training is deterministic and does not depend on stale workspace", "[engine]") {
  const auto spec = SpecBuilder(8, 8, 3)
                        .conv(5, 3, 3, 1, 1, {1, 1, 1, 1}, CNNC_RELU)
                        .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
                        .dropout(0.3f)
                        .dense(7, CNNC_SOFTMAX)
                        .build();
  GenericModel model(spec, 5);
  Harness h(model.abi(), 5, 13);
  const float first = h.train();
  const std::vector<float> grads = h.grads, output = h.output;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::fill(h.grads.begin(), h.grads.end(), nan);
  std::fill(h.workspace.get(), h.workspace.get() + model.abi()->workspace_bytes / 4, nan);
  const float second = h.train();
  CHECK(std::memcmp(&first, &second, sizeof first) == 0);
  CHECK(std::memcmp(grads.data(), h.grads.data(), grads.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(output.data(), h.output.data(), output.size() * sizeof(float)) == 0);
}

TEST_CASE("two slices with their sample_base add up to one slice of the whole batch", "[engine]") {
  const auto spec = SpecBuilder(6, 6, 2)
                        .conv(4, 3, 3, 1, 1, {}, CNNC_TANH)
                        .flatten()
                        .dropout(0.5f)
                        .dense(5, CNNC_SOFTMAX)
                        .build();
  GenericModel model(spec, 4);
  Harness whole(model.abi(), 4, 21);
  whole.pass.sample_base = 10;
  const float loss = whole.train();

  Harness half(model.abi(), 2, 21);
  half.params = whole.params;
  float halves = 0.0f;
  std::vector<float> summed(whole.grads.size(), 0.0f);
  for (uint32_t s = 0; s < 2; ++s) {
    const size_t per = whole.input.size() / 4;
    half.input.assign(whole.input.begin() + std::ptrdiff_t(2 * s * per),
                      whole.input.begin() + std::ptrdiff_t(2 * (s + 1) * per));
    half.labels.assign(whole.labels.begin() + 2 * s, whole.labels.begin() + 2 * (s + 1));
    half.pass.sample_base = 10 + 2 * s;
    halves += half.train();
    for (size_t j = 0; j < summed.size(); ++j) summed[j] += half.grads[j];
  }
  CHECK(halves == Approx(loss).epsilon(1e-5));
  for (size_t j = 0; j < summed.size(); ++j) {
    INFO("parameter " << j);
    REQUIRE(summed[j] == Approx(whole.grads[j]).margin(1e-5).epsilon(1e-4));
  }
}

TEST_CASE("the cnnc_model describes the network and survives a move", "[engine]") {
  auto spec = SpecBuilder(28, 28, 1)
                  .conv(6, 5, 5, 1, 1, {2, 2, 2, 2}, CNNC_RELU)
                  .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
                  .dense(10, CNNC_SOFTMAX)
                  .build();
  spec.name = "lenet_ish";
  GenericModel model(spec, 64);
  const cnnc_model* m = model.abi();
  CHECK(m->abi_version == CNNC_ABI_VERSION);
  CHECK(std::string(m->name) == "lenet_ish");
  CHECK(std::string(m->engine) == "generic");
  CHECK(m->output_size == 10);
  CHECK(m->max_batch == 64);
  CHECK(m->layer_count == 3);
  CHECK(m->param_count == 6 * 25 + 6 + 10 * 14 * 14 * 6 + 10);
  CHECK(m->workspace_bytes % 64 == 0);
  // At least every layer's output for 64 samples.
  CHECK(m->workspace_bytes >= 64 * (28 * 28 * 6 + 14 * 14 * 6 + 10) * 4);
  GenericModel moved(std::move(model));
  CHECK(moved.abi() == m);
  CHECK(m->impl != nullptr);
}

TEST_CASE("calls outside the contract are refused", "[engine]") {
  GenericModel model(SpecBuilder(2, 2, 1).dense(3).build(), 2);
  SECTION("more samples than max_batch") {
    Harness h(model.abi(), 3, 1);
    CHECK_THROWS_WITH(h.train(), "pass of 3 samples; this model takes 1 to 2");
  }
}

TEST_CASE("validate names the layer and the broken rule", "[engine][validate]") {
  auto spec = SpecBuilder(8, 8, 1)
                  .conv(4, 3, 3, 1, 1, {}, CNNC_RELU)
                  .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
                  .dense(5, CNNC_SOFTMAX)
                  .build();
  CHECK_NOTHROW(cnnc::rt::validate(spec));
  SECTION("an output size that does not follow from kernel and stride") {
    spec.layers[0].out_h = 7;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "layer 0 'conv0' (conv): height output is 7, but input 8, padding 0, "
                      "kernel 3 and stride 1 give 6");
  }
  SECTION("shapes that do not chain") {
    spec.layers[1].in_c = 3;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "layer 1 'maxpool1' (maxpool): input 6x6x3 does not match the previous "
                      "output 6x6x4");
  }
  SECTION("a weight count that does not match the shapes") {
    spec.layers[2].weight_count -= 1;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "layer 2 'dense2' (dense): weight_count is 179, the shapes need 180");
  }
  SECTION("parameters outside the vector") {
    spec.param_count -= 1;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "layer 2 'dense2' (dense): bias [220, 225) are outside the 224 parameters");
  }
  SECTION("overlapping parameter ranges") {
    spec.layers[2].bias_offset = 0;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "model 'test': parameter ranges [0, 5) and [0, 36) overlap");
  }
  SECTION("softmax before the last layer") {
    spec.layers[0].activation = CNNC_SOFTMAX;
    CHECK_THROWS_WITH(cnnc::rt::validate(spec),
                      "layer 0 'conv0' (conv): softmax is allowed on the last layer only");
  }
  SECTION("the engine refuses what validate refuses") {
    spec.layers[1].stride_w = 3;
    CHECK_THROWS_AS(GenericModel(spec, 4), std::invalid_argument);
  }
}
