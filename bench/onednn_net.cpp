// onednn_net.cpp: oneDNN primitives for the layers of a cnnc layer table, one layer at a time
// (OnednnLayer) and chained into a training network (OnednnNet). See onednn_net.hpp.
//
// Letters as in runtime/generic/layers.hpp: n samples, H W C input, K filters or units, R S
// window, P Q output. oneDNN names dimensions in its own order ({n, C, H, W}, weights
// {K, C, R, S}) whatever the memory order; the format tag (nhwc, ohwi) says the memory order.
#include "onednn_net.hpp"

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <fmt/format.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "layers.hpp"  // the generic engine's dropout, softmax-xent and optimizer loops

namespace cnnc::bench {

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using Tag = memory::format_tag;
using Args = std::unordered_map<int, memory>;
constexpr memory::data_type f32 = memory::data_type::f32;

dnnl::engine& cpu() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(cpu());
  return s;
}

// Scratchpads are the caller's (scratchpad_mode::user), one per primitive, allocated once: in
// oneDNN's default mode the Debian build allocates and page-faults a fresh scratchpad on every
// execution, which made a 6-MFLOP inner product take milliseconds.
dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr = {}) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

template <class Pd>
void add_scratchpad(Args& args, const Pd& pd) {
  args[DNNL_ARG_SCRATCHPAD] = memory(pd.scratchpad_desc(), cpu());
}

void run(const dnnl::primitive& p, const Args& args) {
  p.execute(stream(), args);
  stream().wait();
}

// 64-byte aligned floats, zeroed: oneDNN's jit kernels like aligned rows, and the ABI's
// workspace rule is the same.
struct Floats {
  explicit Floats(int64_t count)
      : data(static_cast<float*>(
            std::aligned_alloc(64, static_cast<size_t>((count + 15) / 16 * 64)))),
        size(count) {
    if (!data) throw std::bad_alloc();
    std::memset(data, 0, static_cast<size_t>((count + 15) / 16 * 64));
  }
  ~Floats() { std::free(data); }
  Floats(const Floats&) = delete;
  Floats& operator=(const Floats&) = delete;
  float* data;
  int64_t size;
};

int64_t in_size(const cnnc_layer& l) {
  return int64_t{l.in_h} * l.in_w * l.in_c;
}

int64_t out_size(const cnnc_layer& l) {
  return int64_t{l.out_h} * l.out_w * l.out_c;
}

// The forward eltwise algorithm of an activation and its backward from the output; nullopt for
// linear. Softmax is the loss's business (or a plain loop in inference), never a post-op.
struct Eltwise {
  algorithm forward, backward;
};

std::optional<Eltwise> eltwise_of(int32_t activation, const cnnc_layer& l) {
  switch (activation) {
    case CNNC_LINEAR:
    case CNNC_SOFTMAX: return std::nullopt;
    case CNNC_RELU:
      return Eltwise{algorithm::eltwise_relu, algorithm::eltwise_relu_use_dst_for_bwd};
    case CNNC_SIGMOID:
      return Eltwise{algorithm::eltwise_logistic, algorithm::eltwise_logistic_use_dst_for_bwd};
    case CNNC_TANH:
      return Eltwise{algorithm::eltwise_tanh, algorithm::eltwise_tanh_use_dst_for_bwd};
    default:
      throw OnednnUnsupported(
          fmt::format("layer '{}': activation {} has no oneDNN eltwise", l.name, activation));
  }
}

// Activations as oneDNN sees them: 4D nhwc for conv and pool, 2D nc (the [H][W][C] values of
// a sample flattened in that order) for dense and elementwise layers.
memory::desc spatial_md(int32_t n, int32_t h, int32_t w, int32_t c) {
  return memory::desc({n, c, h, w}, f32, Tag::nhwc);
}

memory::desc flat_md(int32_t n, int64_t size) {
  return memory::desc({n, size}, f32, Tag::nc);
}

}  // namespace

void onednn_set_threads(int threads) {
  omp_set_num_threads(threads);
}

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::forward: return "forward";
    case Phase::backward_data: return "backward_data";
    case Phase::backward_weights: return "backward_weights";
  }
  return "?";
}

// The primitives of one layer, bound to caller-owned activation buffers (src, dst) and their
// gradients (diff_src, diff_dst; either may be null when not needed). Weights, biases and their
// gradients are owned here, in the format the forward primitive chose.
struct LayerPrims {
  LayerPrims(const cnnc_layer& layer, int32_t n, float* src, float* dst, float* diff_src,
             float* diff_dst, int32_t activation);

  cnnc_layer l;
  int32_t act;  // the activation fused into forward (the layer's, or linear for a fused softmax)
  dnnl::primitive fwd, bwd_data, bwd_weights, act_bwd;
  Args fwd_args, bwd_data_args, bwd_weights_args, act_bwd_args;
  bool has_bwd_data = false, has_bwd_weights = false, has_act_bwd = false;
  memory weights, bias, diff_weights, diff_bias;  // diff_weights in weights' format
  // When backward chose another weights format than forward: a reorder before backward-data,
  // and one after backward-weights that brings the gradient into the forward format.
  std::optional<dnnl::reorder> weights_for_bwd_data, diff_weights_to_fwd;
  memory bwd_data_weights, diff_weights_bwd;
  memory scratch_fwd, scratch_bwd_data, scratch_bwd_weights;  // conv and dense
  std::string impl[3];

  void forward() { run(fwd, fwd_args); }
  void backward_data() {
    if (weights_for_bwd_data)
      run(*weights_for_bwd_data, {{DNNL_ARG_FROM, weights}, {DNNL_ARG_TO, bwd_data_weights}});
    run(bwd_data, bwd_data_args);
  }
  void backward_weights() {
    run(bwd_weights, bwd_weights_args);
    if (diff_weights_to_fwd)
      run(*diff_weights_to_fwd, {{DNNL_ARG_FROM, diff_weights_bwd}, {DNNL_ARG_TO, diff_weights}});
  }
  // diff_dst = act'(dst) * diff_dst, in place.
  void activation_backward() {
    if (has_act_bwd) run(act_bwd, act_bwd_args);
  }

  // weights from the ABI's layout ([K][R][S][C], or [K][C] for dense) into oneDNN's.
  void set_weights(const float* w, const float* b) {
    memory::desc user =
        l.kind == CNNC_CONV
            ? memory::desc({l.out_c, l.in_c, l.kernel_h, l.kernel_w}, f32, Tag::ohwi)
            : memory::desc({l.out_c, in_size(l)}, f32, Tag::oi);
    memory from(user, cpu(), const_cast<float*>(w));
    run(dnnl::reorder(from, weights), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, weights}});
    std::memcpy(bias.get_data_handle(), b, static_cast<size_t>(l.out_c) * sizeof(float));
  }

 private:
  void conv_or_dense(int32_t n, float* src, float* dst, float* diff_src, float* diff_dst);
  void pool(int32_t n, float* src, float* dst, float* diff_src, float* diff_dst);
  void eltwise(int32_t n, float* src, float* dst, float* diff_src, float* diff_dst);
  // The backward weights format fallback: see weights_for_bwd_data.
  template <class Pd>
  void bind_weights_gradient(const Pd& pd);
  // The backward half of conv and dense alike: its primitives, scratchpads, implementation
  // names, and the weights in the format backward-data chose.
  template <class ForwardPd, class DataPd, class WeightsPd>
  void bind_backward(const ForwardPd& fpd, const DataPd& dpd, const WeightsPd& wpd,
                     dnnl::primitive data, dnnl::primitive grads);
};

LayerPrims::LayerPrims(const cnnc_layer& layer, int32_t n, float* src, float* dst, float* diff_src,
                       float* diff_dst, int32_t activation)
    : l(layer), act(activation) {
  switch (l.kind) {
    case CNNC_CONV:
    case CNNC_DENSE: conv_or_dense(n, src, dst, diff_src, diff_dst); break;
    case CNNC_MAXPOOL:
    case CNNC_AVGPOOL: pool(n, src, dst, diff_src, diff_dst); break;
    case CNNC_ACTIVATION: eltwise(n, src, dst, diff_src, diff_dst); break;
    default:
      throw OnednnUnsupported(
          fmt::format("layer '{}': no oneDNN primitive for layer kind {}", l.name, l.kind));
  }
}

template <class ForwardPd, class DataPd, class WeightsPd>
void LayerPrims::bind_backward(const ForwardPd& fpd, const DataPd& dpd, const WeightsPd& wpd,
                               dnnl::primitive data, dnnl::primitive grads) {
  bwd_data = std::move(data);
  bwd_weights = std::move(grads);
  impl[1] = dpd.impl_info_str();
  impl[2] = wpd.impl_info_str();
  scratch_fwd = memory(fpd.scratchpad_desc(), cpu());
  scratch_bwd_data = memory(dpd.scratchpad_desc(), cpu());
  scratch_bwd_weights = memory(wpd.scratchpad_desc(), cpu());
  bwd_data_weights =
      dpd.weights_desc() == weights.get_desc() ? weights : memory(dpd.weights_desc(), cpu());
  bind_weights_gradient(wpd);
}

void LayerPrims::conv_or_dense(int32_t n, float* src, float* dst, float* diff_src,
                               float* diff_dst) {
  const bool conv = l.kind == CNNC_CONV;
  memory::desc src_md = conv ? spatial_md(n, l.in_h, l.in_w, l.in_c) : flat_md(n, in_size(l));
  memory::desc dst_md = conv ? spatial_md(n, l.out_h, l.out_w, l.out_c) : flat_md(n, l.out_c);
  memory::desc any_weights =
      conv ? memory::desc({l.out_c, l.in_c, l.kernel_h, l.kernel_w}, f32, Tag::any)
           : memory::desc({l.out_c, in_size(l)}, f32, Tag::any);
  memory::desc bias_md({l.out_c}, f32, Tag::x);
  memory::dims strides{l.stride_h, l.stride_w}, pad_l{l.pad_top, l.pad_left},
      pad_r{l.pad_bottom, l.pad_right};

  dnnl::primitive_attr attr = user_scratchpad();
  std::optional<Eltwise> e = eltwise_of(act, l);
  if (e) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, e->forward, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }

  memory src_mem(src_md, cpu(), src), dst_mem(dst_md, cpu(), dst);
  if (conv) {
    dnnl::convolution_forward::primitive_desc fpd(
        dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct,
                                        src_md, any_weights, bias_md, dst_md, strides, pad_l,
                                        pad_r),
        attr, cpu());
    weights = memory(fpd.weights_desc(), cpu());
    fwd = dnnl::convolution_forward(fpd);
    impl[0] = fpd.impl_info_str();
    // Backward chooses its own weights format too: forcing the forward's makes oneDNN 2.6 fall
    // back to its reference convolution (ref:any, 40x slower) for backward-data on NHWC. When
    // the formats differ, weights and gradients are reordered every step, as a oneDNN user
    // would do.
    dnnl::convolution_backward_data::primitive_desc dpd(
        dnnl::convolution_backward_data::desc(algorithm::convolution_direct, src_md, any_weights,
                                              dst_md, strides, pad_l, pad_r),
        user_scratchpad(), cpu(), fpd);
    dnnl::convolution_backward_weights::primitive_desc wpd(
        dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src_md, any_weights,
                                                 bias_md, dst_md, strides, pad_l, pad_r),
        user_scratchpad(), cpu(), fpd);
    bind_backward(fpd, dpd, wpd, dnnl::convolution_backward_data(dpd),
                  dnnl::convolution_backward_weights(wpd));
  } else {
    dnnl::inner_product_forward::primitive_desc fpd(
        dnnl::inner_product_forward::desc(prop_kind::forward_training, src_md, any_weights, bias_md,
                                          dst_md),
        attr, cpu());
    weights = memory(fpd.weights_desc(), cpu());
    fwd = dnnl::inner_product_forward(fpd);
    impl[0] = fpd.impl_info_str();
    dnnl::inner_product_backward_data::primitive_desc dpd(
        dnnl::inner_product_backward_data::desc(src_md, any_weights, dst_md), user_scratchpad(),
        cpu(), fpd);
    dnnl::inner_product_backward_weights::primitive_desc wpd(
        dnnl::inner_product_backward_weights::desc(src_md, any_weights, bias_md, dst_md),
        user_scratchpad(), cpu(), fpd);
    bind_backward(fpd, dpd, wpd, dnnl::inner_product_backward_data(dpd),
                  dnnl::inner_product_backward_weights(wpd));
  }
  if (bwd_data_weights.get_data_handle() != weights.get_data_handle())
    weights_for_bwd_data.emplace(weights, bwd_data_weights);
  bias = memory(bias_md, cpu());
  diff_bias = memory(bias_md, cpu());

  fwd_args = {{DNNL_ARG_SRC, src_mem},
              {DNNL_ARG_WEIGHTS, weights},
              {DNNL_ARG_BIAS, bias},
              {DNNL_ARG_DST, dst_mem},
              {DNNL_ARG_SCRATCHPAD, scratch_fwd}};
  if (diff_dst) {
    memory diff_dst_mem(dst_md, cpu(), diff_dst);
    has_bwd_weights = true;
    bwd_weights_args = {{DNNL_ARG_SRC, src_mem},
                        {DNNL_ARG_DIFF_DST, diff_dst_mem},
                        {DNNL_ARG_DIFF_WEIGHTS, diff_weights_bwd},
                        {DNNL_ARG_DIFF_BIAS, diff_bias},
                        {DNNL_ARG_SCRATCHPAD, scratch_bwd_weights}};
    if (diff_src) {
      has_bwd_data = true;
      bwd_data_args = {{DNNL_ARG_DIFF_DST, diff_dst_mem},
                       {DNNL_ARG_WEIGHTS, bwd_data_weights},
                       {DNNL_ARG_DIFF_SRC, memory(src_md, cpu(), diff_src)},
                       {DNNL_ARG_SCRATCHPAD, scratch_bwd_data}};
    }
    if (e) {
      // In place: oneDNN's eltwise backward allows diff_src to be diff_dst.
      dnnl::eltwise_forward::primitive_desc hint(
          dnnl::eltwise_forward::desc(prop_kind::forward_training, e->backward, dst_md), cpu());
      dnnl::eltwise_backward::primitive_desc bpd(
          dnnl::eltwise_backward::desc(e->backward, dst_md, dst_md), user_scratchpad(), cpu(),
          hint);
      act_bwd = dnnl::eltwise_backward(bpd);
      act_bwd_args = {{DNNL_ARG_DST, dst_mem},
                      {DNNL_ARG_DIFF_DST, diff_dst_mem},
                      {DNNL_ARG_DIFF_SRC, diff_dst_mem}};
      add_scratchpad(act_bwd_args, bpd);
      has_act_bwd = true;
    }
  }
}

template <class Pd>
void LayerPrims::bind_weights_gradient(const Pd& wpd) {
  diff_weights = memory(weights.get_desc(), cpu());
  if (wpd.diff_weights_desc() == weights.get_desc()) {
    diff_weights_bwd = diff_weights;
  } else {
    diff_weights_bwd = memory(wpd.diff_weights_desc(), cpu());
    diff_weights_to_fwd.emplace(diff_weights_bwd, diff_weights);
  }
}

void LayerPrims::pool(int32_t n, float* src, float* dst, float* diff_src, float* diff_dst) {
  memory::desc src_md = spatial_md(n, l.in_h, l.in_w, l.in_c);
  memory::desc dst_md = spatial_md(n, l.out_h, l.out_w, l.out_c);
  // No padding in cnnc's pools; a window that does not fit the last rows is dropped, which
  // oneDNN expresses as a negative right padding.
  memory::dims strides{l.stride_h, l.stride_w}, kernel{l.kernel_h, l.kernel_w}, pad_l{0, 0},
      pad_r{(l.out_h - 1) * l.stride_h + l.kernel_h - l.in_h,
            (l.out_w - 1) * l.stride_w + l.kernel_w - l.in_w};
  algorithm alg = l.kind == CNNC_MAXPOOL ? algorithm::pooling_max : algorithm::pooling_avg;
  dnnl::pooling_forward::primitive_desc fpd(
      dnnl::pooling_forward::desc(prop_kind::forward_training, alg, src_md, dst_md, strides, kernel,
                                  pad_l, pad_r),
      user_scratchpad(), cpu());
  fwd = dnnl::pooling_forward(fpd);
  impl[0] = fpd.impl_info_str();
  memory src_mem(src_md, cpu(), src), dst_mem(dst_md, cpu(), dst);
  fwd_args = {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_DST, dst_mem}};
  add_scratchpad(fwd_args, fpd);
  memory workspace;
  if (alg == algorithm::pooling_max) {
    workspace = memory(fpd.workspace_desc(), cpu());
    fwd_args[DNNL_ARG_WORKSPACE] = workspace;
  }
  if (diff_src && diff_dst) {
    dnnl::pooling_backward::primitive_desc bpd(
        dnnl::pooling_backward::desc(alg, src_md, dst_md, strides, kernel, pad_l, pad_r),
        user_scratchpad(), cpu(), fpd);
    bwd_data = dnnl::pooling_backward(bpd);
    impl[1] = bpd.impl_info_str();
    bwd_data_args = {{DNNL_ARG_DIFF_DST, memory(dst_md, cpu(), diff_dst)},
                     {DNNL_ARG_DIFF_SRC, memory(src_md, cpu(), diff_src)}};
    add_scratchpad(bwd_data_args, bpd);
    if (alg == algorithm::pooling_max) bwd_data_args[DNNL_ARG_WORKSPACE] = workspace;
    has_bwd_data = true;
  }
}

void LayerPrims::eltwise(int32_t n, float* src, float* dst, float* diff_src, float* diff_dst) {
  std::optional<Eltwise> e = eltwise_of(l.activation, l);
  if (!e) throw std::logic_error("LayerPrims::eltwise: linear and softmax are not primitives");
  memory::desc md = flat_md(n, out_size(l));
  dnnl::eltwise_forward::primitive_desc fpd(
      dnnl::eltwise_forward::desc(prop_kind::forward_training, e->backward, md), user_scratchpad(),
      cpu());
  fwd = dnnl::eltwise_forward(fpd);
  impl[0] = fpd.impl_info_str();
  memory dst_mem(md, cpu(), dst);
  fwd_args = {{DNNL_ARG_SRC, memory(md, cpu(), src)}, {DNNL_ARG_DST, dst_mem}};
  add_scratchpad(fwd_args, fpd);
  if (diff_src && diff_dst) {
    dnnl::eltwise_backward::primitive_desc bpd(dnnl::eltwise_backward::desc(e->backward, md, md),
                                               user_scratchpad(), cpu(), fpd);
    bwd_data = dnnl::eltwise_backward(bpd);
    impl[1] = bpd.impl_info_str();
    bwd_data_args = {{DNNL_ARG_DST, dst_mem},
                     {DNNL_ARG_DIFF_DST, memory(md, cpu(), diff_dst)},
                     {DNNL_ARG_DIFF_SRC, memory(md, cpu(), diff_src)}};
    add_scratchpad(bwd_data_args, bpd);
    has_bwd_data = true;
  }
}

// ---- OnednnLayer ----

struct OnednnLayer::Impl {
  Impl(const cnnc_layer& l, int32_t n)
      : src(n * in_size(l)),
        dst(n * out_size(l)),
        diff_src(n * in_size(l)),
        diff_dst(n * out_size(l)),
        prims(l, n, src.data, dst.data, diff_src.data, diff_dst.data, l.activation) {
    // Inputs like a ReLU network's (mostly positive, some exact zeros); weights small, as after
    // He initialisation; they only need to be finite and not denormal.
    uint64_t state = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(n);
    auto next = [&] {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<float>(state >> 40) / static_cast<float>(1 << 24);  // [0, 1)
    };
    for (int64_t i = 0; i < src.size; ++i) src.data[i] = std::max(0.0f, next() - 0.2f);
    for (int64_t i = 0; i < diff_dst.size; ++i) diff_dst.data[i] = next() - 0.5f;
    if (l.kind == CNNC_CONV || l.kind == CNNC_DENSE) {
      std::vector<float> w(static_cast<size_t>(l.weight_count)), b(static_cast<size_t>(l.out_c));
      for (float& x : w) x = (next() - 0.5f) * 0.1f;
      for (float& x : b) x = (next() - 0.5f) * 0.1f;
      prims.set_weights(w.data(), b.data());
    }
    prims.forward();  // pooling's backward reads the workspace forward leaves
  }
  Floats src, dst, diff_src, diff_dst;
  LayerPrims prims;
};

OnednnLayer::OnednnLayer(const cnnc_layer& l, int32_t n) {
  if (l.kind != CNNC_CONV && l.kind != CNNC_DENSE && l.kind != CNNC_MAXPOOL &&
      l.kind != CNNC_AVGPOOL)
    throw OnednnUnsupported(fmt::format("layer '{}' is not conv, pool or dense", l.name));
  impl_ = std::make_unique<Impl>(l, n);
}

OnednnLayer::~OnednnLayer() = default;

bool OnednnLayer::has(Phase phase) const {
  switch (phase) {
    case Phase::forward: return true;
    case Phase::backward_data: return impl_->prims.has_bwd_data;
    case Phase::backward_weights: return impl_->prims.has_bwd_weights;
  }
  return false;
}

void OnednnLayer::run(Phase phase) {
  switch (phase) {
    case Phase::forward: impl_->prims.forward(); break;
    case Phase::backward_data: impl_->prims.backward_data(); break;
    case Phase::backward_weights: impl_->prims.backward_weights(); break;
  }
}

std::string OnednnLayer::implementation(Phase phase) const {
  return impl_->prims.impl[static_cast<int>(phase)];
}

// ---- OnednnNet ----

struct OnednnNet::Impl {
  Impl(const cnnc_model& model, int32_t batch);

  const cnnc_model& m;
  int32_t n;
  std::vector<cnnc_layer> layers;
  std::vector<std::unique_ptr<Floats>> owned;
  std::vector<float*> act;   // act[0] the input; act[i + 1] layer i's output
  std::vector<float*> grad;  // grad[i + 1] the loss's gradient at layer i's output
  std::vector<std::unique_ptr<LayerPrims>> prims;  // null for flatten, dropout, identities
  std::vector<std::unique_ptr<Floats>> state;      // per layer: momentum | Adam's m and v
  size_t first_trained;
  bool fused_softmax;

  float* buffer(int64_t count) {
    owned.push_back(std::make_unique<Floats>(count));
    return owned.back()->data;
  }
  void run_forward(bool training, uint32_t epoch, uint32_t sample_base, uint64_t seed);
};

OnednnNet::Impl::Impl(const cnnc_model& model, int32_t batch) : m(model), n(batch) {
  if (m.loss != CNNC_CROSS_ENTROPY)
    throw OnednnUnsupported("the MSE loss is not mapped to oneDNN (only softmax cross-entropy)");
  layers.assign(m.layers, m.layers + m.layer_count);
  const size_t count = layers.size();
  fused_softmax = layers.back().activation == CNNC_SOFTMAX;
  for (size_t i = 0; i < count; ++i) {
    const cnnc_layer& l = layers[i];
    if (l.activation == CNNC_SOFTMAX && i + 1 != count)
      throw OnednnUnsupported(fmt::format("layer '{}': softmax before the last layer", l.name));
  }
  first_trained = count;
  for (size_t i = 0; i < count; ++i)
    if (layers[i].trainable && layers[i].weight_count + layers[i].bias_count > 0) {
      first_trained = i;
      break;
    }

  // Activations: flatten and the identities alias their input; dropout gets its own buffer
  // (its output differs from its input in training).
  act.assign(count + 1, nullptr);
  act[0] = buffer(n * in_size(layers[0]));
  for (size_t i = 0; i < count; ++i) {
    const cnnc_layer& l = layers[i];
    bool alias =
        l.kind == CNNC_FLATTEN || (l.kind == CNNC_ACTIVATION && !eltwise_of(l.activation, l));
    act[i + 1] = alias ? act[i] : buffer(n * out_size(l));
  }
  // Gradients, from the loss backwards: flatten passes its buffer through.
  grad.assign(count + 1, nullptr);
  grad[count] = buffer(n * out_size(layers.back()));
  for (size_t i = count; i-- > first_trained;) {
    const cnnc_layer& l = layers[i];
    if (i == first_trained) break;  // nothing below needs a gradient
    bool alias =
        l.kind == CNNC_FLATTEN || (l.kind == CNNC_ACTIVATION && !eltwise_of(l.activation, l));
    grad[i] = alias ? grad[i + 1] : buffer(n * in_size(l));
  }

  prims.resize(count);
  state.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const cnnc_layer& l = layers[i];
    const bool last = i + 1 == count;
    switch (l.kind) {
      case CNNC_CONV:
      case CNNC_DENSE:
      case CNNC_MAXPOOL:
      case CNNC_AVGPOOL:
        prims[i] = std::make_unique<LayerPrims>(l, n, act[i], act[i + 1],
                                                i > first_trained ? grad[i] : nullptr,
                                                i >= first_trained ? grad[i + 1] : nullptr,
                                                last && fused_softmax ? CNNC_LINEAR : l.activation);
        break;
      case CNNC_ACTIVATION:
        if (last && fused_softmax) {
          act[i + 1] = act[i];  // the loss applies the softmax
          if (grad[i]) grad[i] = grad[i + 1];
        } else if (eltwise_of(l.activation, l)) {
          prims[i] = std::make_unique<LayerPrims>(l, n, act[i], act[i + 1],
                                                  i > first_trained ? grad[i] : nullptr,
                                                  grad[i + 1], l.activation);
        }
        break;
      case CNNC_FLATTEN:
      case CNNC_DROPOUT: break;
      default:
        throw OnednnUnsupported(
            fmt::format("layer '{}': layer kind {} is not mapped to oneDNN", l.name, l.kind));
    }
    if (prims[i] && (l.kind == CNNC_CONV || l.kind == CNNC_DENSE) && l.trainable) {
      int64_t w = static_cast<int64_t>(prims[i]->weights.get_desc().get_size() / sizeof(float));
      state[i] = std::make_unique<Floats>(2 * (2 * w + l.out_c));
    }
  }
}

void OnednnNet::Impl::run_forward(bool training, uint32_t epoch, uint32_t sample_base,
                                  uint64_t seed) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const cnnc_layer& l = layers[i];
    if (prims[i]) {
      prims[i]->forward();
    } else if (l.kind == CNNC_DROPOUT) {
      if (training)
        rt::dropout_forward(l, n, {seed, epoch, sample_base, static_cast<uint32_t>(i)}, act[i],
                            act[i + 1]);
      else
        std::memcpy(act[i + 1], act[i], static_cast<size_t>(n * out_size(l)) * sizeof(float));
    }
  }
}

OnednnNet::OnednnNet(const cnnc_model& model, int32_t batch)
    : impl_(std::make_unique<Impl>(model, batch)) {}

OnednnNet::~OnednnNet() = default;

void OnednnNet::set_params(const float* params) {
  for (size_t i = 0; i < impl_->layers.size(); ++i) {
    const cnnc_layer& l = impl_->layers[i];
    if (impl_->prims[i] && (l.kind == CNNC_CONV || l.kind == CNNC_DENSE))
      impl_->prims[i]->set_weights(params + l.weight_offset, params + l.bias_offset);
    if (impl_->state[i])
      std::memset(impl_->state[i]->data, 0, static_cast<size_t>(impl_->state[i]->size) * 4);
  }
}

float OnednnNet::train_step(const float* images, const int32_t* labels, const cnnc_optimizer& opt,
                            uint32_t epoch, uint32_t sample_base, uint64_t seed) {
  Impl& d = *impl_;
  const size_t count = d.layers.size();
  const int32_t o = d.m.output_size;
  std::memcpy(d.act[0], images, static_cast<size_t>(d.n * in_size(d.layers[0])) * sizeof(float));
  d.run_forward(true, epoch, sample_base, seed);

  // The loss on the logits (the softmax is fused into it, as in the ABI's engines); its
  // gradient is scaled to the batch mean here, so the weight gradients come out as the mean
  // that the optimizer takes.
  float* dz = d.grad[count];
  float loss = rt::softmax_xent(d.n, o, d.act[count], labels, nullptr, dz);
  const float inv_n = 1.0f / static_cast<float>(d.n);
  for (int64_t i = 0; i < int64_t{d.n} * o; ++i) dz[i] *= inv_n;

  for (size_t i = count; i-- > d.first_trained;) {
    const cnnc_layer& l = d.layers[i];
    const bool need_dx = i > d.first_trained;
    if (LayerPrims* p = d.prims[i].get()) {
      if (l.kind == CNNC_CONV || l.kind == CNNC_DENSE) {
        p->activation_backward();
        p->backward_weights();
        if (need_dx) p->backward_data();
      } else if (need_dx) {
        p->backward_data();
      }
    } else if (l.kind == CNNC_DROPOUT && need_dx) {
      rt::dropout_backward(l, d.n, {seed, epoch, sample_base, static_cast<uint32_t>(i)},
                           d.grad[i + 1], d.grad[i]);
    }
  }

  // Non-finite loss or gradient: leave the parameters alone, as rt::TrainStep does.
  bool finite = std::isfinite(loss);
  for (size_t i = 0; i < count && finite; ++i) {
    if (!d.state[i]) continue;
    const LayerPrims& p = *d.prims[i];
    const float* g = static_cast<const float*>(p.diff_weights.get_data_handle());
    size_t w = p.diff_weights.get_desc().get_size() / sizeof(float);
    for (size_t k = 0; k < w && finite; ++k) finite = std::isfinite(g[k]);
    const float* gb = static_cast<const float*>(p.diff_bias.get_data_handle());
    for (int32_t k = 0; k < p.l.out_c && finite; ++k) finite = std::isfinite(gb[k]);
  }
  if (!finite) return loss;

  for (size_t i = 0; i < count; ++i) {
    if (!d.state[i]) continue;
    LayerPrims& p = *d.prims[i];
    int64_t w = static_cast<int64_t>(p.weights.get_desc().get_size() / sizeof(float));
    int64_t b = p.l.out_c;
    float* s = d.state[i]->data;  // [w momentum | b momentum | w second moment | b second]
    float* pw = static_cast<float*>(p.weights.get_data_handle());
    float* pb = static_cast<float*>(p.bias.get_data_handle());
    const float* gw = static_cast<const float*>(p.diff_weights.get_data_handle());
    const float* gb = static_cast<const float*>(p.diff_bias.get_data_handle());
    if (opt.kind == CNNC_SGD) {
      rt::sgd_step(opt, w, pw, gw, s);
      rt::sgd_step(opt, b, pb, gb, s + w);
    } else {
      rt::adam_step(opt, w, pw, gw, s, s + w + b);
      rt::adam_step(opt, b, pb, gb, s + w, s + 2 * w + b);
    }
  }
  return loss;
}

void OnednnNet::forward(const float* images, float* outputs) {
  Impl& d = *impl_;
  const size_t count = d.layers.size();
  const int32_t o = d.m.output_size;
  std::memcpy(d.act[0], images, static_cast<size_t>(d.n * in_size(d.layers[0])) * sizeof(float));
  d.run_forward(false, 0, 0, 0);
  std::memcpy(outputs, d.act[count], static_cast<size_t>(d.n) * o * sizeof(float));
  if (d.fused_softmax) rt::activation_forward(CNNC_SOFTMAX, d.n, o, outputs);
}

std::string OnednnNet::implementations() const {
  std::string out;
  for (size_t i = 0; i < impl_->layers.size(); ++i)
    if (impl_->prims[i])
      out += fmt::format("{}{} {}", out.empty() ? "" : ", ", impl_->layers[i].name,
                         impl_->prims[i]->impl[0]);
  return out;
}

}  // namespace cnnc::bench
