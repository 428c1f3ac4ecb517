// onednn_net.cpp: a training network of oneDNN primitives for a cnnc layer table, built the way
// oneDNN's own training example builds one: create each primitive with the formats it may
// choose, then bind tensors, inserting a reorder only where a tensor's format and its
// consumer's differ. See onednn_net.hpp.
//
// Letters as in runtime/generic/layers.hpp: n samples, H W C input, K filters or units, R S
// window, P Q output. oneDNN names dimensions in its own order ({n, C, H, W}, weights
// {K, C, R, S}) whatever the memory order; the format tag (nhwc, ohwi) says the memory order.
#include "bench/onednn_net.hpp"

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "generic/layers.hpp"  // the generic engine's dropout, softmax-xent and optimizer loops

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

// A buffer in format md, zeroed: blocked formats pad channels up to the block (6 filters fill
// 16 lanes), and the padding must read as zero.
memory zeroed(const memory::desc& md) {
  memory m(md, cpu());
  std::memset(m.get_data_handle(), 0, md.get_size());
  return m;
}

float* floats(const memory& m) {
  return static_cast<float*>(m.get_data_handle());
}

// The ABI's order: [n][H][W][C] for spatial tensors, [n][C] for flat ones.
memory::desc plain(const memory::dims& dims) {
  return {dims, f32, dims.size() == 4 ? Tag::nhwc : Tag::nc};
}

memory::desc any(const memory::dims& dims) {
  return {dims, f32, Tag::any};
}

// A format's short name for the implementation rows, as oneDNN's tags spell it: dimensions from
// the largest stride to the smallest, blocked ones in capitals, then the inner blocks
// ("nChw16c", "nhwc", "OIhw16i16o"). letters names oneDNN's logical dimensions ("nchw", "oihw").
std::string format_name(const memory::desc& md, const char* letters) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return "?";
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  std::vector<int> order(static_cast<size_t>(d.ndims));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) {
    // A dimension of size 1 has no meaningful stride: it goes where its letter would.
    if (d.dims[x] == 1 || d.dims[y] == 1) return false;
    return b.strides[x] > b.strides[y];
  });
  std::string name;
  for (int dim : order) {
    bool blocked = std::count(b.inner_idxs, b.inner_idxs + b.inner_nblks, dim) > 0;
    name += static_cast<char>(blocked ? std::toupper(letters[dim]) : letters[dim]);
  }
  for (int k = 0; k < b.inner_nblks; ++k)
    name += fmt::format("{}{}", b.inner_blks[k], letters[b.inner_idxs[k]]);
  return name;
}

// The forward eltwise algorithm of an activation and its backward from the output; nullopt for
// linear. Softmax is the loss's business (or a plain loop in inference), never a post-op.
struct Eltwise {
  algorithm forward, backward;
  const char* name;
};

std::optional<Eltwise> eltwise_of(int32_t activation, const cnnc_layer& l) {
  switch (activation) {
    case CNNC_LINEAR:
    case CNNC_SOFTMAX: return std::nullopt;
    case CNNC_RELU:
      return Eltwise{algorithm::eltwise_relu, algorithm::eltwise_relu_use_dst_for_bwd, "relu"};
    case CNNC_SIGMOID:
      return Eltwise{algorithm::eltwise_logistic, algorithm::eltwise_logistic_use_dst_for_bwd,
                     "logistic"};
    case CNNC_TANH:
      return Eltwise{algorithm::eltwise_tanh, algorithm::eltwise_tanh_use_dst_for_bwd, "tanh"};
    default:
      throw OnednnUnsupported(
          fmt::format("layer '{}': activation {} has no oneDNN eltwise", l.name, activation));
  }
}

// A backward primitive descriptor that takes the forward's weights format when the
// implementation oneDNN picks for it is the one it picks given a free choice (format_tag::any):
// then neither the weights nor their gradient need a reorder every step. Otherwise the free
// choice: forcing the forward's format can cost far more than the reorders (oneDNN 2.6 falls
// back to ref:any, 40x slower, for a conv's backward-data on nhwc). desc_for(weights) is the
// operation's descriptor with those weights.
template <class Pd, class Hint, class DescFor>
Pd with_forward_weights(const Hint& hint, const memory::desc& free_weights, DescFor&& desc_for) {
  Pd free(desc_for(free_weights), user_scratchpad(), cpu(), hint);
  Pd forced(desc_for(hint.weights_desc()), user_scratchpad(), cpu(), hint);
  return std::string(forced.impl_info_str()) == free.impl_info_str() ? forced : free;
}

// The vector width an implementation's name promises ("jit:avx512_core" 512, "jit:avx2" 256,
// "ref:any" and names without an ISA 0): how two candidates for one primitive are ranked.
int vector_bits(const char* implementation) {
  const std::string name = implementation;
  if (name.find("avx512") != std::string::npos) return 512;
  return name.find("avx2") != std::string::npos ? 256 : 0;
}

// A primitive with its arguments bound, and oneDNN's implementation of it.
struct Bound {
  dnnl::primitive primitive;
  Args args;
  std::string implementation;
  void run() const { primitive.execute(stream(), args); }
};

// Steps run in order: bound primitives, and host loops, which first wait for the stream.
struct Program {
  std::vector<std::function<void()>> steps;
  void add(Bound b) {
    steps.push_back([b = std::move(b)] { b.run(); });
  }
  void add_host(std::function<void()> loop) {
    steps.push_back([loop = std::move(loop)] {
      stream().wait();
      loop();
    });
  }
  void run() const {
    for (const auto& step : steps) step();
    stream().wait();
  }
};

}  // namespace

void onednn_set_threads(int threads) {
  omp_set_num_threads(threads);
}

const char* layout_name(OnednnLayout layout) {
  return layout == OnednnLayout::any ? "any" : "nhwc";
}

struct OnednnNet::Impl {
  Impl(const cnnc_model& model, int32_t batch, OnednnLayout layout);

  // One row of the layer table with what the network keeps for it.
  struct Layer {
    cnnc_layer l;
    // conv and dense: parameters and gradients in the forward primitive's weights format; the
    // ABI's layout of the weights as oneDNN sees it, which set_params reorders from.
    memory weights, bias, diff_weights, diff_bias;
    memory::desc user_weights;
    std::vector<float> state;  // the optimizer's: [w momentum | b momentum | w second | b second]
    std::optional<Bound> phase[3];  // the layer's own primitive of each phase (bench_layers)
  };

  int32_t n, output_size;
  bool fused_softmax;
  OnednnLayout layout;
  std::vector<Layer> layers;
  size_t first_trained;  // the first layer with trainable parameters; no gradient flows below it
  // Tensors between layers: value[0] the input, value[i + 1] layer i's output in the format
  // its primitive chose; grad[i + 1] the loss's gradient there, in the same format.
  std::vector<memory> value, grad;
  memory input;            // value[0]: the caller's images, [n][H][W][C], bound per call
  memory logits, dlogits;  // [n][output_size] for the loss, reordered from and into the last layer
  Program forward, loss_gradient;
  std::vector<Program> backward;  // per layer; train_step runs them last layer first
  std::vector<OnednnImplementation> rows;
  // What the dropout steps read: training or inference, and the mask key of this step.
  bool training = false;
  uint32_t epoch = 0, sample_base = 0;
  uint64_t seed = 0;

  void conv_or_dense(size_t i, int32_t activation);
  void pool(size_t i);
  void eltwise(size_t i);
  void dropout(size_t i);
  // grad[i + 1], in value[i + 1]'s format, when layer i takes part in backward.
  void gradient_at_output(size_t i);

  // Appends the primitive to p, with a scratchpad for pd, and records its implementation row.
  // The Bound returned shares the primitive and the buffers with p's copy.
  Bound add(Program& p, const dnnl::primitive_desc_base& pd, dnnl::primitive prim, Args args,
            size_t i, Phase phase, std::string what);
  // m in the format want: m itself, or a copy that p reorders into.
  memory in_format(const memory& m, const memory::desc& want, Program& p, size_t i, Phase phase,
                   const char* tensor);
  // Where a primitive that writes the format have should write target: target itself, or a
  // buffer that copy_back then reorders into target.
  memory out_buffer(const memory& target, const memory::desc& have);
  void copy_back(const memory& from, const memory& target, Program& p, size_t i, Phase phase,
                 const char* tensor);
  void reorder(const memory& from, const memory& to, Program& p, size_t i, Phase phase,
               const char* tensor);
};

OnednnNet::Impl::Impl(const cnnc_model& m, int32_t batch, OnednnLayout lay)
    : n(batch), output_size(m.output_size), layout(lay) {
  if (m.loss != CNNC_CROSS_ENTROPY)
    throw OnednnUnsupported("the MSE loss is not mapped to oneDNN (only softmax cross-entropy)");
  const size_t count = static_cast<size_t>(m.layer_count);
  layers.resize(count);
  for (size_t i = 0; i < count; ++i) {
    layers[i].l = m.layers[i];
    if (m.layers[i].activation == CNNC_SOFTMAX && i + 1 != count)
      throw OnednnUnsupported(
          fmt::format("layer '{}': softmax before the last layer", m.layers[i].name));
  }
  fused_softmax = layers.back().l.activation == CNNC_SOFTMAX;
  first_trained = count;
  for (size_t i = 0; i < count; ++i)
    if (layers[i].l.trainable && layers[i].l.weight_count + layers[i].l.bias_count > 0) {
      first_trained = i;
      break;
    }

  value.resize(count + 1);
  grad.resize(count + 1);
  backward.resize(count);
  input = memory(plain({n, m.input_c, m.input_h, m.input_w}), cpu(), DNNL_MEMORY_NONE);
  value[0] = input;
  for (size_t i = 0; i < count; ++i) {
    const cnnc_layer& l = layers[i].l;
    const bool last = i + 1 == count;
    switch (l.kind) {
      case CNNC_CONV:
      case CNNC_DENSE: conv_or_dense(i, last && fused_softmax ? CNNC_LINEAR : l.activation); break;
      case CNNC_MAXPOOL:
      case CNNC_AVGPOOL: pool(i); break;
      case CNNC_ACTIVATION:
        if (eltwise_of(l.activation, l) && !(last && fused_softmax)) {
          eltwise(i);
          break;
        }
        [[fallthrough]];  // linear, or the softmax that the loss applies: the input passes
      case CNNC_FLATTEN:  // flatten keeps oneDNN's 4D tensor: dense reads it as such
        value[i + 1] = value[i];
        if (i >= first_trained) grad[i + 1] = grad[i];
        break;
      case CNNC_DROPOUT: dropout(i); break;
      default:
        throw OnednnUnsupported(
            fmt::format("layer '{}': layer kind {} is not mapped to oneDNN", l.name, l.kind));
    }
  }
  // The output edge: the loss reads and writes [n][output_size].
  const size_t last = count - 1;
  logits = in_format(value[count], plain(value[count].get_desc().dims()), forward, last,
                     Phase::forward, "dst");
  if (grad[count]) {
    dlogits = out_buffer(grad[count], logits.get_desc());
    copy_back(dlogits, grad[count], loss_gradient, last, Phase::backward_data, "diff_dst");
  } else {
    dlogits = zeroed(logits.get_desc());
  }
}

Bound OnednnNet::Impl::add(Program& p, const dnnl::primitive_desc_base& pd, dnnl::primitive prim,
                           Args args, size_t i, Phase phase, std::string what) {
  args[DNNL_ARG_SCRATCHPAD] = memory(pd.scratchpad_desc(), cpu());
  rows.push_back({layers[i].l.name, phase, std::move(what), pd.impl_info_str()});
  Bound bound{std::move(prim), std::move(args), pd.impl_info_str()};
  p.add(bound);
  return bound;
}

void OnednnNet::Impl::reorder(const memory& from, const memory& to, Program& p, size_t i,
                              Phase phase, const char* tensor) {
  const char* letters = std::strstr(tensor, "weights") ? "oihw" : "nchw";
  dnnl::reorder::primitive_desc pd(cpu(), from.get_desc(), cpu(), to.get_desc(), user_scratchpad());
  add(p, pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, i, phase,
      fmt::format("reorder {} {}->{}", tensor, format_name(from.get_desc(), letters),
                  format_name(to.get_desc(), letters)));
}

memory OnednnNet::Impl::in_format(const memory& m, const memory::desc& want, Program& p, size_t i,
                                  Phase phase, const char* tensor) {
  if (m.get_desc() == want) return m;
  memory to = zeroed(want);
  reorder(m, to, p, i, phase, tensor);
  return to;
}

memory OnednnNet::Impl::out_buffer(const memory& target, const memory::desc& have) {
  return target.get_desc() == have ? target : zeroed(have);
}

void OnednnNet::Impl::copy_back(const memory& from, const memory& target, Program& p, size_t i,
                                Phase phase, const char* tensor) {
  if (from != target) reorder(from, target, p, i, phase, tensor);
}

void OnednnNet::Impl::gradient_at_output(size_t i) {
  grad[i + 1] = zeroed(value[i + 1].get_desc());
}

void OnednnNet::Impl::conv_or_dense(size_t i, int32_t activation) {
  Layer& L = layers[i];
  const cnnc_layer& l = L.l;
  const bool conv = l.kind == CNNC_CONV;
  const bool trains = i >= first_trained, need_dx = i > first_trained;
  const bool weights_grad = trains && l.trainable;

  // Dense reads a spatial input as it is, 4D (oneDNN's inner product takes {n, C, H, W} with
  // weights {K, C, H, W}): flatten costs no reorder.
  const memory::dims src_dims = value[i].get_desc().dims();
  const memory::dims dst_dims =
      conv ? memory::dims{n, l.out_c, l.out_h, l.out_w} : memory::dims{n, l.out_c};
  memory::dims w_dims{l.out_c, src_dims[1]};
  if (conv)
    w_dims = {l.out_c, l.in_c, l.kernel_h, l.kernel_w};
  else if (src_dims.size() == 4)
    w_dims = {l.out_c, src_dims[1], src_dims[2], src_dims[3]};
  // The ABI's [K][R][S][C], and dense's [K][H*W*C] read in [H][W][C] order, are both ohwi.
  L.user_weights = memory::desc(w_dims, f32, w_dims.size() == 4 ? Tag::ohwi : Tag::oi);
  auto activation_md = [&](const memory::dims& d) {
    return layout == OnednnLayout::any ? any(d) : plain(d);
  };
  // Inner product multiplies whatever order its input is in (oneDNN's gemm reads nChw16c as it
  // reads nhwc, with weights in the matching order): given its producer's format, its input
  // needs no reorder.
  const memory::desc src_md = conv ? activation_md(src_dims) : value[i].get_desc(),
                     dst_md = activation_md(dst_dims), w_md = any(w_dims),
                     b_md({l.out_c}, f32, Tag::x);
  const memory::dims strides{l.stride_h, l.stride_w}, pad_l{l.pad_top, l.pad_left},
      pad_r{l.pad_bottom, l.pad_right};

  dnnl::primitive_attr attr = user_scratchpad();
  std::optional<Eltwise> e = eltwise_of(activation, l);
  if (e) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, e->forward, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }

  // Backward chooses its activations' formats from the forward's hint, and its weights' as
  // with_forward_weights says. Where formats differ, tensors are reordered every step.
  dnnl::primitive_desc fpd, dpd, wpd;
  dnnl::primitive fwd, bwd_data, bwd_weights;
  if (conv) {
    const algorithm direct = algorithm::convolution_direct;
    dnnl::convolution_forward::primitive_desc f(
        {prop_kind::forward_training, direct, src_md, w_md, b_md, dst_md, strides, pad_l, pad_r},
        attr, cpu());
    fpd = f;
    fwd = dnnl::convolution_forward(f);
    if (need_dx) {
      auto d = with_forward_weights<dnnl::convolution_backward_data::primitive_desc>(
          f, w_md, [&](const memory::desc& w) {
            return dnnl::convolution_backward_data::desc(direct, src_md, w, dst_md, strides, pad_l,
                                                         pad_r);
          });
      dpd = d;
      bwd_data = dnnl::convolution_backward_data(d);
    }
    if (weights_grad) {
      auto weights_grad_pd = [&](const memory::desc& src, const memory::desc& dst) {
        return with_forward_weights<dnnl::convolution_backward_weights::primitive_desc>(
            f, w_md, [&](const memory::desc& dw) {
              return dnnl::convolution_backward_weights::desc(direct, src, dw, b_md, dst, strides,
                                                              pad_l, pad_r);
            });
      };
      auto w = weights_grad_pd(src_md, dst_md);
      // For an input of a few channels (lenet5's conv2 reads 6) oneDNN 2.6 chooses an AVX2
      // kernel on nChw8c even on AVX-512, where its channels-last AVX-512 kernel takes 0.43x the
      // time (216 vs 504 us at batch 64, 1 thread, interleaved): lenet5 then trains 1.13x as
      // fast, the two reorders into channels-last included (1.26x nhwc's img/s instead of
      // 1.12x, medians of 5 runs that alternated the two builds).
      if (layout == OnednnLayout::any) {
        auto channels_last = weights_grad_pd(plain(src_dims), plain(dst_dims));
        if (vector_bits(channels_last.impl_info_str()) > vector_bits(w.impl_info_str()))
          w = channels_last;
      }
      wpd = w;
      bwd_weights = dnnl::convolution_backward_weights(w);
    }
  } else {
    dnnl::inner_product_forward::primitive_desc f(
        {prop_kind::forward_training, src_md, w_md, b_md, dst_md}, attr, cpu());
    fpd = f;
    fwd = dnnl::inner_product_forward(f);
    if (need_dx) {
      auto d = with_forward_weights<dnnl::inner_product_backward_data::primitive_desc>(
          f, w_md, [&](const memory::desc& w) {
            return dnnl::inner_product_backward_data::desc(src_md, w, dst_md);
          });
      dpd = d;
      bwd_data = dnnl::inner_product_backward_data(d);
    }
    if (weights_grad) {
      auto w = with_forward_weights<dnnl::inner_product_backward_weights::primitive_desc>(
          f, w_md, [&](const memory::desc& dw) {
            return dnnl::inner_product_backward_weights::desc(src_md, dw, b_md, dst_md);
          });
      wpd = w;
      bwd_weights = dnnl::inner_product_backward_weights(w);
    }
  }
  const std::string kind = conv ? "convolution" : "inner_product";

  L.weights = zeroed(fpd.weights_desc(0));
  L.bias = zeroed(b_md);
  memory src = in_format(value[i], fpd.src_desc(0), forward, i, Phase::forward, "src");
  memory dst = zeroed(fpd.dst_desc(0));
  L.phase[0] = add(forward, fpd, fwd,
                   {{DNNL_ARG_SRC, src},
                    {DNNL_ARG_WEIGHTS, L.weights},
                    {DNNL_ARG_BIAS, L.bias},
                    {DNNL_ARG_DST, dst}},
                   i, Phase::forward, e ? fmt::format("{} + {}", kind, e->name) : kind);
  value[i + 1] = dst;
  if (!trains) return;

  gradient_at_output(i);
  Program& b = backward[i];
  if (e) {
    // In place, from the output: oneDNN's eltwise backward allows diff_src to be diff_dst.
    dnnl::eltwise_forward::primitive_desc hint(
        {prop_kind::forward_training, e->backward, dst.get_desc()}, cpu());
    dnnl::eltwise_backward::primitive_desc bpd({e->backward, dst.get_desc(), dst.get_desc()},
                                               user_scratchpad(), cpu(), hint);
    add(b, bpd, dnnl::eltwise_backward(bpd),
        {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, grad[i + 1]}, {DNNL_ARG_DIFF_SRC, grad[i + 1]}},
        i, Phase::backward_data, fmt::format("eltwise_{} backward", e->name));
  }
  if (weights_grad) {
    memory w_src = in_format(src, wpd.src_desc(0), b, i, Phase::backward_weights, "src");
    memory w_diff_dst =
        in_format(grad[i + 1], wpd.diff_dst_desc(0), b, i, Phase::backward_weights, "diff_dst");
    L.diff_weights = zeroed(L.weights.get_desc());
    L.diff_bias = zeroed(b_md);
    memory diff_weights = out_buffer(L.diff_weights, wpd.diff_weights_desc(0));
    L.phase[2] = add(b, wpd, bwd_weights,
                     {{DNNL_ARG_SRC, w_src},
                      {DNNL_ARG_DIFF_DST, w_diff_dst},
                      {DNNL_ARG_DIFF_WEIGHTS, diff_weights},
                      {DNNL_ARG_DIFF_BIAS, L.diff_bias}},
                     i, Phase::backward_weights, kind + " backward_weights");
    copy_back(diff_weights, L.diff_weights, b, i, Phase::backward_weights, "diff_weights");
    const size_t w = L.weights.get_desc().get_size() / sizeof(float);
    L.state.assign(2 * (2 * w + static_cast<size_t>(l.out_c)), 0.0f);
  }
  if (need_dx) {
    memory d_diff_dst =
        in_format(grad[i + 1], dpd.diff_dst_desc(0), b, i, Phase::backward_data, "diff_dst");
    memory weights =
        in_format(L.weights, dpd.weights_desc(0), b, i, Phase::backward_data, "weights");
    memory diff_src = out_buffer(grad[i], dpd.diff_src_desc(0));
    L.phase[1] = add(b, dpd, bwd_data,
                     {{DNNL_ARG_DIFF_DST, d_diff_dst},
                      {DNNL_ARG_WEIGHTS, weights},
                      {DNNL_ARG_DIFF_SRC, diff_src}},
                     i, Phase::backward_data, kind + " backward_data");
    copy_back(diff_src, grad[i], b, i, Phase::backward_data, "diff_src");
  }
}

void OnednnNet::Impl::pool(size_t i) {
  Layer& L = layers[i];
  const cnnc_layer& l = L.l;
  const memory::dims dst_dims{n, l.out_c, l.out_h, l.out_w};
  // Pooling takes its input's format (it cannot choose one) and, given any, keeps it for dst.
  const memory::desc src_md = value[i].get_desc(),
                     dst_md = layout == OnednnLayout::any ? any(dst_dims) : plain(dst_dims);
  // No padding in cnnc's pools; a window that does not fit the last rows is dropped, which
  // oneDNN expresses as a negative right padding.
  const memory::dims strides{l.stride_h, l.stride_w}, kernel{l.kernel_h, l.kernel_w}, pad_l{0, 0},
      pad_r{(l.out_h - 1) * l.stride_h + l.kernel_h - l.in_h,
            (l.out_w - 1) * l.stride_w + l.kernel_w - l.in_w};
  const algorithm alg = l.kind == CNNC_MAXPOOL ? algorithm::pooling_max : algorithm::pooling_avg;
  const char* kind = l.kind == CNNC_MAXPOOL ? "pooling_max" : "pooling_avg";
  dnnl::pooling_forward::primitive_desc fpd(
      {prop_kind::forward_training, alg, src_md, dst_md, strides, kernel, pad_l, pad_r},
      user_scratchpad(), cpu());
  memory dst = zeroed(fpd.dst_desc());
  Args args{{DNNL_ARG_SRC, value[i]}, {DNNL_ARG_DST, dst}};
  memory workspace;
  if (alg == algorithm::pooling_max) {
    workspace = zeroed(fpd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = workspace;
  }
  L.phase[0] =
      add(forward, fpd, dnnl::pooling_forward(fpd), std::move(args), i, Phase::forward, kind);
  value[i + 1] = dst;
  if (i < first_trained) return;

  gradient_at_output(i);
  dnnl::pooling_backward::primitive_desc bpd(
      {alg, fpd.src_desc(), fpd.dst_desc(), strides, kernel, pad_l, pad_r}, user_scratchpad(),
      cpu(), fpd);
  Program& b = backward[i];
  memory diff_src = out_buffer(grad[i], bpd.diff_src_desc());
  Args bargs{{DNNL_ARG_DIFF_DST,
              in_format(grad[i + 1], bpd.diff_dst_desc(), b, i, Phase::backward_data, "diff_dst")},
             {DNNL_ARG_DIFF_SRC, diff_src}};
  if (workspace) bargs[DNNL_ARG_WORKSPACE] = workspace;
  L.phase[1] = add(b, bpd, dnnl::pooling_backward(bpd), std::move(bargs), i, Phase::backward_data,
                   fmt::format("{} backward", kind));
  copy_back(diff_src, grad[i], b, i, Phase::backward_data, "diff_src");
}

void OnednnNet::Impl::eltwise(size_t i) {
  Layer& L = layers[i];
  const Eltwise e = *eltwise_of(L.l.activation, L.l);
  // Elementwise: any format will do, so the input's.
  const memory::desc md = value[i].get_desc();
  dnnl::eltwise_forward::primitive_desc fpd({prop_kind::forward_training, e.backward, md},
                                            user_scratchpad(), cpu());
  memory dst = zeroed(md);
  L.phase[0] =
      add(forward, fpd, dnnl::eltwise_forward(fpd), {{DNNL_ARG_SRC, value[i]}, {DNNL_ARG_DST, dst}},
          i, Phase::forward, fmt::format("eltwise_{}", e.name));
  value[i + 1] = dst;
  if (i < first_trained) return;

  gradient_at_output(i);
  dnnl::eltwise_backward::primitive_desc bpd({e.backward, md, md}, user_scratchpad(), cpu(), fpd);
  Program& b = backward[i];
  memory diff_src = out_buffer(grad[i], md);
  L.phase[1] =
      add(b, bpd, dnnl::eltwise_backward(bpd),
          {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, grad[i + 1]}, {DNNL_ARG_DIFF_SRC, diff_src}}, i,
          Phase::backward_data, fmt::format("eltwise_{} backward", e.name));
  copy_back(diff_src, grad[i], b, i, Phase::backward_data, "diff_src");
}

// Dropout's mask is keyed by the ABI's element index, [H][W][C] within a sample: it runs on a
// channels-last copy of its input, and its output stays channels-last.
void OnednnNet::Impl::dropout(size_t i) {
  const memory::desc md = plain(value[i].get_desc().dims());
  const int64_t bytes = static_cast<int64_t>(md.get_size());
  memory src = in_format(value[i], md, forward, i, Phase::forward, "src");
  memory dst = zeroed(md);
  forward.add_host([this, i, src, dst, bytes] {
    if (training)
      rt::dropout_forward(layers[i].l, n, {seed, epoch, sample_base, static_cast<uint32_t>(i)},
                          floats(src), floats(dst));
    else
      std::memcpy(floats(dst), floats(src), static_cast<size_t>(bytes));
  });
  value[i + 1] = dst;
  if (i < first_trained) return;

  gradient_at_output(i);
  Program& b = backward[i];
  memory diff_src = out_buffer(grad[i], md);
  memory diff_dst = grad[i + 1];
  b.add_host([this, i, diff_dst, diff_src] {
    rt::dropout_backward(layers[i].l, n, {seed, epoch, sample_base, static_cast<uint32_t>(i)},
                         floats(diff_dst), floats(diff_src));
  });
  copy_back(diff_src, grad[i], b, i, Phase::backward_data, "diff_src");
}

OnednnNet::OnednnNet(const cnnc_model& model, int32_t batch, OnednnLayout layout)
    : impl_(std::make_unique<Impl>(model, batch, layout)) {}

OnednnNet::~OnednnNet() = default;

void OnednnNet::set_params(const float* params) {
  for (Impl::Layer& L : impl_->layers) {
    if (!L.weights) continue;
    memory from(L.user_weights, cpu(), const_cast<float*>(params + L.l.weight_offset));
    dnnl::reorder(from, L.weights).execute(stream(), from, L.weights);
    stream().wait();
    std::memcpy(floats(L.bias), params + L.l.bias_offset,
                static_cast<size_t>(L.l.out_c) * sizeof(float));
    std::fill(L.state.begin(), L.state.end(), 0.0f);
  }
}

float OnednnNet::train_step(const float* images, const int32_t* labels, const cnnc_optimizer& opt,
                            uint32_t epoch, uint32_t sample_base, uint64_t seed) {
  Impl& d = *impl_;
  d.input.set_data_handle(const_cast<float*>(images));
  d.training = true;
  d.epoch = epoch;
  d.sample_base = sample_base;
  d.seed = seed;
  d.forward.run();

  // The loss on the logits (the softmax is fused into it, as in the ABI's engines); its
  // gradient is scaled to the batch mean here, so the weight gradients come out as the mean
  // that the optimizer takes.
  const int32_t o = d.output_size;
  float* dz = floats(d.dlogits);
  float loss = rt::softmax_xent(d.n, o, floats(d.logits), labels, nullptr, dz);
  const float inv_n = 1.0f / static_cast<float>(d.n);
  for (int64_t i = 0; i < int64_t{d.n} * o; ++i) dz[i] *= inv_n;
  d.loss_gradient.run();
  for (size_t i = d.layers.size(); i-- > d.first_trained;) d.backward[i].run();

  // Non-finite loss or gradient: leave the parameters alone, as rt::TrainStep does.
  bool finite = std::isfinite(loss);
  for (const Impl::Layer& L : d.layers) {
    if (!finite || L.state.empty()) continue;
    const float* g = floats(L.diff_weights);
    size_t w = L.diff_weights.get_desc().get_size() / sizeof(float);
    for (size_t k = 0; k < w && finite; ++k) finite = std::isfinite(g[k]);
    const float* gb = floats(L.diff_bias);
    for (int32_t k = 0; k < L.l.out_c && finite; ++k) finite = std::isfinite(gb[k]);
  }
  if (!finite) return loss;

  for (Impl::Layer& L : d.layers) {
    if (L.state.empty()) continue;
    const int64_t w = static_cast<int64_t>(L.weights.get_desc().get_size() / sizeof(float));
    const int64_t b = L.l.out_c;
    float* s = L.state.data();
    float *pw = floats(L.weights), *pb = floats(L.bias);
    const float *gw = floats(L.diff_weights), *gb = floats(L.diff_bias);
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
  d.input.set_data_handle(const_cast<float*>(images));
  d.training = false;
  d.forward.run();
  std::memcpy(outputs, floats(d.logits), d.logits.get_desc().get_size());
  if (d.fused_softmax) rt::activation_forward(CNNC_SOFTMAX, d.n, d.output_size, outputs);
}

std::vector<OnednnImplementation> OnednnNet::implementation_rows() const {
  return impl_->rows;
}

bool OnednnNet::has(size_t layer, Phase phase) const {
  return layer < impl_->layers.size() &&
         impl_->layers[layer].phase[static_cast<int>(phase)].has_value();
}

void OnednnNet::run(size_t layer, Phase phase) {
  impl_->layers.at(layer).phase[static_cast<int>(phase)].value().run();
  stream().wait();
}

std::string OnednnNet::implementation(size_t layer, Phase phase) const {
  return impl_->layers.at(layer).phase[static_cast<int>(phase)].value().implementation;
}

}  // namespace cnnc::bench
