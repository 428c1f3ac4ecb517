// validate(ModelSpec): the layer table's promises (shapes chain, counts match, ranges fit),
// checked.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "generic/generic_engine.hpp"

namespace cnnc::rt {
namespace {

std::string dims(int64_t h, int64_t w, int64_t c) {
  return std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c);
}

const char* kind_name(int32_t kind) {
  switch (kind) {
    case CNNC_CONV: return "conv";
    case CNNC_MAXPOOL: return "maxpool";
    case CNNC_AVGPOOL: return "avgpool";
    case CNNC_FLATTEN: return "flatten";
    case CNNC_DENSE: return "dense";
    case CNNC_DROPOUT: return "dropout";
    case CNNC_ACTIVATION: return "activation";
  }
  return "unknown kind";
}

// Collects the context ("layer 2 'pool1' (maxpool)") once so every message carries it.
struct LayerCheck {
  std::string where;

  void require(bool ok, const std::string& what) const {
    if (!ok) throw std::invalid_argument(where + ": " + what);
  }

  // floor((in + pad - k) / stride) + 1, the one output-size rule of conv and pool.
  void window(const char* axis, int64_t in, int64_t pad, int64_t k, int64_t stride,
              int64_t out) const {
    require(k > 0 && stride > 0, std::string(axis) + " kernel and stride must be positive");
    require(in + pad >= k, std::string(axis) + " kernel " + std::to_string(k) +
                               " is larger than the padded input " + std::to_string(in + pad));
    const int64_t expected = (in + pad - k) / stride + 1;
    require(out == expected, std::string(axis) + " output is " + std::to_string(out) +
                                 ", but input " + std::to_string(in) + ", padding " +
                                 std::to_string(pad) + ", kernel " + std::to_string(k) +
                                 " and stride " + std::to_string(stride) + " give " +
                                 std::to_string(expected));
  }

  void same_shape(const cnnc_layer& l) const {
    require(l.out_h == l.in_h && l.out_w == l.in_w && l.out_c == l.in_c,
            "output " + dims(l.out_h, l.out_w, l.out_c) + " must equal input " +
                dims(l.in_h, l.in_w, l.in_c));
  }

  void counts(const cnnc_layer& l, int64_t weights, bool has_bias) const {
    require(l.weight_count == weights, "weight_count is " + std::to_string(l.weight_count) +
                                           ", the shapes need " + std::to_string(weights));
    require(l.bias_count == 0 || (has_bias && l.bias_count == l.out_c),
            "bias_count is " + std::to_string(l.bias_count) + ", expected 0" +
                (has_bias ? " or " + std::to_string(l.out_c) : std::string()));
  }
};

}  // namespace

void validate(const ModelSpec& spec) {
  const LayerCheck model{"model '" + spec.name + "'"};
  model.require(spec.input_h > 0 && spec.input_w > 0 && spec.input_c > 0,
                "input " + dims(spec.input_h, spec.input_w, spec.input_c) + " must be positive");
  model.require(spec.loss == CNNC_CROSS_ENTROPY || spec.loss == CNNC_MSE,
                "loss " + std::to_string(spec.loss) + " is not a cnnc_loss");
  model.require(!spec.layers.empty(), "has no layers");
  model.require(spec.param_count >= 0, "param_count is negative");

  int64_t h = spec.input_h, w = spec.input_w, c = spec.input_c;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const cnnc_layer& l = spec.layers[i];
    const size_t name_len = strnlen(l.name, sizeof l.name);
    const std::string name(l.name, name_len);
    const LayerCheck at{"layer " + std::to_string(i) + " '" + name + "' (" + kind_name(l.kind) +
                        ")"};
    at.require(name_len < sizeof l.name, "name is not NUL-terminated");
    at.require(l.in_h == h && l.in_w == w && l.in_c == c,
               "input " + dims(l.in_h, l.in_w, l.in_c) + " does not match the " +
                   (i == 0 ? "model input " : "previous output ") + dims(h, w, c));
    at.require(l.out_h > 0 && l.out_w > 0 && l.out_c > 0,
               "output " + dims(l.out_h, l.out_w, l.out_c) + " must be positive");
    at.require(l.activation >= CNNC_LINEAR && l.activation <= CNNC_SOFTMAX,
               "activation " + std::to_string(l.activation) + " is not a cnnc_activation");
    at.require(l.activation != CNNC_SOFTMAX || i + 1 == spec.layers.size(),
               "softmax is allowed on the last layer only");
    const bool has_activation =
        l.kind == CNNC_CONV || l.kind == CNNC_DENSE || l.kind == CNNC_ACTIVATION;
    at.require(has_activation || l.activation == CNNC_LINEAR,
               "only conv, dense and activation layers carry an activation");
    const bool padded = l.pad_top || l.pad_left || l.pad_bottom || l.pad_right;
    switch (l.kind) {
      case CNNC_CONV:
        at.require(l.pad_top >= 0 && l.pad_left >= 0 && l.pad_bottom >= 0 && l.pad_right >= 0,
                   "padding must not be negative");
        at.window("height", l.in_h, int64_t{l.pad_top} + l.pad_bottom, l.kernel_h, l.stride_h,
                  l.out_h);
        at.window("width", l.in_w, int64_t{l.pad_left} + l.pad_right, l.kernel_w, l.stride_w,
                  l.out_w);
        at.counts(l, int64_t{l.out_c} * l.kernel_h * l.kernel_w * l.in_c, true);
        break;
      case CNNC_MAXPOOL:
      case CNNC_AVGPOOL:
        at.require(!padded, "pooling has no padding");
        at.require(l.out_c == l.in_c, "pooling keeps the channels: output has " +
                                          std::to_string(l.out_c) + ", input " +
                                          std::to_string(l.in_c));
        at.window("height", l.in_h, 0, l.kernel_h, l.stride_h, l.out_h);
        at.window("width", l.in_w, 0, l.kernel_w, l.stride_w, l.out_w);
        at.counts(l, 0, false);
        break;
      case CNNC_FLATTEN:
        at.require(l.out_h == 1 && l.out_w == 1 && int64_t{l.out_c} == h * w * c,
                   "output " + dims(l.out_h, l.out_w, l.out_c) + " must be 1x1x" +
                       std::to_string(h * w * c));
        at.counts(l, 0, false);
        break;
      case CNNC_DENSE:
        at.require(l.out_h == 1 && l.out_w == 1,
                   "output " + dims(l.out_h, l.out_w, l.out_c) + " must be 1x1xUNITS");
        at.counts(l, int64_t{l.out_c} * h * w * c, true);
        break;
      case CNNC_DROPOUT:
        at.same_shape(l);
        at.require(l.dropout_rate >= 0.0f && l.dropout_rate < 1.0f,
                   "dropout rate " + std::to_string(l.dropout_rate) + " is outside [0, 1)");
        at.counts(l, 0, false);
        break;
      case CNNC_ACTIVATION:
        at.same_shape(l);
        at.counts(l, 0, false);
        break;
      default: at.require(false, "kind " + std::to_string(l.kind) + " is not a cnnc_layer_kind");
    }
    at.require(l.trainable == 0 || l.trainable == 1, "trainable must be 0 or 1");
    at.require(!l.trainable || l.weight_count + l.bias_count > 0,
               "a layer without parameters cannot be trainable");
    for (auto [offset, count, what] : {std::tuple{l.weight_offset, l.weight_count, "weights"},
                                       std::tuple{l.bias_offset, l.bias_count, "bias"}}) {
      if (count == 0) continue;
      at.require(offset >= 0 && offset + count <= spec.param_count,
                 std::string(what) + " [" + std::to_string(offset) + ", " +
                     std::to_string(offset + count) + ") are outside the " +
                     std::to_string(spec.param_count) + " parameters");
      ranges.emplace_back(offset, offset + count);
    }
    h = l.out_h, w = l.out_w, c = l.out_c;
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t j = 1; j < ranges.size(); ++j)
    model.require(ranges[j].first >= ranges[j - 1].second,
                  "parameter ranges [" + std::to_string(ranges[j - 1].first) + ", " +
                      std::to_string(ranges[j - 1].second) + ") and [" +
                      std::to_string(ranges[j].first) + ", " + std::to_string(ranges[j].second) +
                      ") overlap");
}

}  // namespace cnnc::rt
