// main.cpp: one training step of the generated "tiny" model through the C ABI; prints "consumer
// ok".
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tiny.gen.hpp"

static int fail(const char* what) {
  std::fprintf(stderr, "consumer: %s\n", what);
  return 1;
}

int main() {
  cnnc_model* m = cnnc_tiny_create(8, "auto");
  if (!m) return fail("cnnc_tiny_create returned NULL");
  if (m->abi_version != CNNC_ABI_VERSION) return fail("ABI version mismatch");
  const int n = m->max_batch;
  const size_t in_size = size_t(m->input_h) * m->input_w * m->input_c;

  // Deterministic data: parameters in [-0.25, 0.25) from a small LCG, inputs a ramp.
  std::vector<float> params(m->param_count), grads(m->param_count), state(2 * m->param_count);
  uint32_t s = 12345;
  for (float& p : params) {
    s = s * 1664525u + 1013904223u;
    p = float(s >> 8) / float(1u << 24) * 0.5f - 0.25f;
  }
  const std::vector<float> before = params;
  std::vector<float> input(n * in_size);
  for (size_t i = 0; i < input.size(); ++i) input[i] = float(i % 17) / 17.0f;
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i % m->output_size;

  // The workspace: 64-byte aligned; aligned_alloc wants a size that is a multiple of 64.
  const size_t ws_bytes = size_t(m->workspace_bytes) / 64 * 64 + 64;
  void* workspace = std::aligned_alloc(64, ws_bytes);
  if (!workspace) return fail("cannot allocate the workspace");

  cnnc_pass pass{};
  pass.params = params.data();
  pass.input = input.data();
  pass.labels = labels.data();
  pass.grads = grads.data();
  pass.workspace = workspace;
  pass.n = n;
  pass.seed = 1;
  const float loss = m->train(m, &pass);

  // The per-layer kernel table: every phase a training step runs for conv, pool and dense (the
  // first layer has no input gradient), and forward kernels that recompute, bit for bit, the
  // activations train() left in the workspace. On AVX-512 the conv runs fused with its max
  // pool, so the conv's forward is the pair's and the pool has none.
  const cnnc_kernel* kernels = nullptr;
  const int32_t count = cnnc_tiny_kernels("auto", &kernels);
  const bool fused = std::string(m->engine).find("avx512") != std::string::npos;
  std::vector<std::pair<std::string, std::string>> expected = {
      {"conv1", "forward"},          {"conv1", "backward_weights"}, {"maxpool1", "forward"},
      {"maxpool1", "backward_data"}, {"dense1", "forward"},         {"dense1", "backward_data"},
      {"dense1", "backward_weights"}};
  if (fused) expected.erase(expected.begin() + 2);
  if (count != int32_t(expected.size()))
    return fail("cnnc_tiny_kernels does not list the phases of tiny that training runs");
  for (int32_t i = 0; i < count; ++i) {
    if (kernels[i].layer != expected[i].first || kernels[i].phase != expected[i].second)
      return fail("the kernel table lists another layer or phase");
    if (kernels[i].samples < 1 || !(kernels[i].flops > 0)) return fail("a kernel has no work");
  }
  std::vector<unsigned char> after_train(ws_bytes);
  std::memcpy(after_train.data(), workspace, ws_bytes);
  for (int32_t i = 0; i < count; ++i)
    if (std::string(kernels[i].phase) == "forward")
      kernels[i].run(params.data(), grads.data(), workspace);
  if (std::memcmp(after_train.data(), workspace, ws_bytes) != 0)
    return fail("a forward kernel does not reproduce what train() computed");

  // update() takes the batch-mean gradient; train() returned the sum over the n samples.
  for (float& g : grads) g /= float(n);
  cnnc_optimizer opt{};
  opt.kind = CNNC_SGD;
  opt.lr = 0.1f;
  opt.momentum = 0.9f;
  opt.step = 1;
  m->update(m, params.data(), grads.data(), state.data(), &opt);

  std::free(workspace);
  cnnc_tiny_destroy(m);
  if (!std::isfinite(loss) || loss <= 0.0f) return fail("the loss is not finite and positive");
  if (params == before) return fail("update() left every parameter unchanged");
  std::printf("loss %.4f over %d samples\nconsumer ok\n", loss, n);
  return 0;
}
