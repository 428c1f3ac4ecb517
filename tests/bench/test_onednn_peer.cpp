// The oneDNN peer module, opened through its loader (OnednnPeer), against the generic engine:
// inference and one training step agree, every phase reports its implementation, and the
// loader's errors say what is wrong. Without the module (cnnc built without oneDNN) main exits
// 4, ctest's SKIP_RETURN_CODE for this test: skipped, not passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

#include "../generic/support.hpp"
#include "bench/onednn_peer_loader.hpp"

using cnnc::bench::OnednnPeer;
using cnnc::bench::OnednnUnsupported;
using cnnc::bench::Phase;
using cnnc::rt::GenericModel;
using cnnc::test::Harness;
using cnnc::test::Pads;
using cnnc::test::SpecBuilder;

namespace {

constexpr int32_t kBatch = 8;

// Every kind the peer maps, at shapes that make oneDNN reorder: 6 filters, fewer than the 16
// channels of its blocked formats; dropout, which runs channels-last; a dense layer on a 4D
// input.
cnnc::rt::ModelSpec small_net() {
  return SpecBuilder(12, 12, 1)
      .conv(6, 3, 3, 1, 1, Pads{1, 1, 1, 1}, CNNC_RELU)
      .pool(CNNC_MAXPOOL, 2, 2, 2, 2)
      .conv(16, 3, 3, 1, 1, {}, CNNC_RELU)
      .dropout(0.25f)
      .flatten()
      .dense(20, CNNC_RELU)
      .dense(10, CNNC_SOFTMAX)
      .build();
}

// The peer's and the generic engine's probabilities for h's batch, from their own parameters,
// agree to within tolerance.
void check_infer_alike(OnednnPeer& peer, Harness& h, float tolerance) {
  std::vector<float> outputs(h.output.size());
  peer.forward(h.input.data(), outputs.data());
  h.forward();
  float worst = 0;
  for (size_t i = 0; i < outputs.size(); ++i)
    worst = std::max(worst, std::fabs(outputs[i] - h.output[i]));
  INFO("largest difference " << worst);
  CHECK(worst <= tolerance);
}

}  // namespace

TEST_CASE("the oneDNN peer infers what the generic engine infers", "[bench]") {
  GenericModel model(small_net(), kBatch);
  Harness h(model.abi(), kBatch, 1);
  OnednnPeer peer(*model.abi(), kBatch, 1);
  peer.set_params(h.params.data());
  check_infer_alike(peer, h, 1e-5f);
}

TEST_CASE("one training step of the oneDNN peer is the generic engine's", "[bench]") {
  GenericModel model(small_net(), kBatch);
  const cnnc_model* m = model.abi();
  Harness h(m, kBatch, 2);
  OnednnPeer peer(*m, kBatch, 2);
  peer.set_params(h.params.data());
  cnnc_optimizer opt{};
  opt.kind = CNNC_SGD;
  opt.lr = 0.1f;
  opt.momentum = 0.9f;
  opt.weight_decay = 5e-4f;
  opt.step = 1;

  // The generic step: the summed loss and gradient of the batch (one slice), the update on the
  // batch mean. The dropout mask is keyed as the Harness's pass keys it.
  const float loss = h.train();
  for (float& g : h.grads) g /= kBatch;
  std::vector<float> state(2 * static_cast<size_t>(m->param_count), 0.0f);
  m->update(m, h.params.data(), h.grads.data(), state.data(), &opt);
  const float peer_loss = peer.train_step(h.input.data(), h.labels.data(), opt, h.pass.epoch,
                                          h.pass.sample_base, h.pass.seed);
  CHECK(peer_loss == Approx(loss).epsilon(1e-5));

  // After the step both infer alike: the parameters moved alike.
  check_infer_alike(peer, h, 1e-4f);
}

TEST_CASE("the oneDNN peer names the implementation of every phase of every layer", "[bench]") {
  GenericModel model(small_net(), kBatch);
  OnednnPeer peer(*model.abi(), kBatch, 1);
  std::vector<cnnc::bench::OnednnImplementation> rows = peer.implementation_rows();
  auto has = [&](const std::string& layer, Phase phase) {
    for (const auto& r : rows)
      if (r.layer == layer && r.phase == phase && !r.implementation.empty()) return true;
    return false;
  };
  // conv0 is the first trained layer: no gradient flows below it, so no backward_data.
  CHECK(has("conv0", Phase::forward));
  CHECK(has("conv0", Phase::backward_weights));
  CHECK(has("maxpool1", Phase::forward));
  CHECK(has("maxpool1", Phase::backward_data));
  for (const char* layer : {"conv2", "dense5", "dense6"})
    for (Phase phase : {Phase::forward, Phase::backward_data, Phase::backward_weights}) {
      INFO(layer << " " << cnnc::bench::phase_name(phase));
      CHECK(has(layer, phase));
    }
}

TEST_CASE("the oneDNN peer says why it cannot run a model or load a module", "[bench]") {
  SECTION("a loss it does not map") {
    GenericModel model(SpecBuilder(4, 4, 1, CNNC_MSE).flatten().dense(3).build(), kBatch);
    CHECK_THROWS_MATCHES(
        OnednnPeer(*model.abi(), kBatch, 1), OnednnUnsupported,
        Catch::Message("the MSE loss is not mapped to oneDNN (only softmax cross-entropy)"));
  }
  SECTION("a module that does not load") {
    GenericModel model(small_net(), kBatch);
    setenv("CNNC_ONEDNN_PEER", "/nonexistent/libcnnc_onednn_peer.so", 1);
    CHECK_THROWS_MATCHES(OnednnPeer(*model.abi(), kBatch, 1), OnednnUnsupported,
                         Catch::Message("cannot load the oneDNN peer: "
                                        "/nonexistent/libcnnc_onednn_peer.so: cannot open shared "
                                        "object file: No such file or directory"));
    unsetenv("CNNC_ONEDNN_PEER");
  }
}

// Under AddressSanitizer (the asan-ubsan preset), LeakSanitizer's exit check stops every thread
// to walk its stack and crashes on the OpenMP workers the oneDNN module leaves running (it is
// never unloaded): leaks are checked in every other test executable, not in this one.
extern "C" const char* __asan_default_options() {
  return "detect_leaks=0";
}

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (int status = session.applyCommandLine(argc, argv)) return status;
  // Listing the tests (ctest discovers them so at build time) needs no module.
  const Catch::ConfigData& c = session.configData();
  const bool listing = c.listTests || c.listTestNamesOnly || c.listTags || c.listReporters;
  if (!listing && !OnednnPeer::module_path()) {
    std::printf(
        "CNNC-SKIPPED: [onednn] no %s beside this test and no CNNC_ONEDNN_PEER: cnnc was built "
        "without oneDNN\n",
        OnednnPeer::kModuleName);
    return 4;
  }
  return session.run();
}
