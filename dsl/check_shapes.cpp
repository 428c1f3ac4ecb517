// Pass 2 of checking: every layer's input and output shape, the parameter layout, FLOPs,
// weights= lengths, and the limits a model must stay within to be generated and trained.
//
// Output size of conv and pool: floor((in + pad_total - k) / stride) + 1. pad=same pads so
// that out = ceil(in / stride), the odd pixel going to the bottom/right (as Keras does).
#include <fmt/format.h>

#include <algorithm>

#include "dsl/check.hpp"
#include "dsl/draft.hpp"

namespace cnnc::dsl {

namespace {

// Parameter tensors start on 64-byte boundaries so that generated code can use aligned loads.
int64_t align16(int64_t n) {
  return (n + 15) / 16 * 16;
}

// A first estimate of the specialised source's size, made before anything is generated:
// three ISA variants, three passes (forward, backward data, backward weights) of the
// unrolled kernel window and channel blocks, plus a fixed cost per function.
int64_t estimated_code_bytes(const Layer& l) {
  constexpr int64_t variants = 3, passes = 3, bytes_per_line = 60, per_function = 4096;
  if (l.kind == LayerKind::conv) {
    int64_t unrolled = l.kernel_h * l.kernel_w * ((l.in.c + 7) / 8) * ((l.units + 7) / 8);
    return variants * passes * (unrolled * bytes_per_line + per_function);
  }
  return variants * passes * per_function;
}

std::string mib(int64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

class ShapeChecker {
 public:
  ShapeChecker(const SourceFile& file, const Limits& limits, Diagnostics& diags)
      : file_(file), limits_(limits), diags_(diags) {}

  std::optional<Graph> run(Draft d) {
    Graph g;
    g.name = d.name;
    g.source_path = file_.path();
    g.source_text = file_.text();
    g.input = d.input;
    g.training = d.training;
    std::optional<Shape> shape;
    if (d.has_input) shape = d.input;
    producer_range_ = d.input_range;
    producer_text_ = std::string(file_.slice(d.input_range));

    for (DraftLayer& dl : d.layers) {
      Layer& l = dl.layer;
      if (shape && dl.valid)
        shape = layer(dl, *shape);
      else
        shape.reset();  // unknown from here on: no follow-on errors about shapes
      producer_range_ = l.range;
      producer_text_ = l.statement;
      g.layers.push_back(std::move(l));
    }
    if (!d.has_input || g.layers.empty() || diags_.has_errors()) return std::nullopt;

    int64_t offset = 0;
    int64_t activations = g.input.size();
    bool trainable_before = false;  // nothing reads the input gradient of layers before it
    int64_t receptive_h = 1, receptive_w = 1, jump_h = 1, jump_w = 1;  // of the input pixels
    int64_t grid_h = g.input.h, grid_w = g.input.w;  // positions of the tensor so far (flatten
                                                     // keeps them: a dense layer reads them all)
    for (Layer& l : g.layers) {
      if (l.kind == LayerKind::conv || l.kind == LayerKind::maxpool ||
          l.kind == LayerKind::avgpool) {
        receptive_h += (l.kernel_h - 1) * jump_h;
        receptive_w += (l.kernel_w - 1) * jump_w;
        jump_h *= l.stride_h;
        jump_w *= l.stride_w;
        grid_h = l.out.h;
        grid_w = l.out.w;
      } else if (l.kind == LayerKind::dense) {  // a window over every position, nowhere to slide
        receptive_h += (grid_h - 1) * jump_h;
        receptive_w += (grid_w - 1) * jump_w;
        grid_h = grid_w = 1;
      }
      l.receptive_h = receptive_h;
      l.receptive_w = receptive_w;
      l.jump_h = jump_h;
      l.jump_w = jump_w;
      l.needs_input_grad = trainable_before;
      bool backward = trainable_before || l.trainable();
      l.training_flops = l.forward_flops + (backward ? l.backward_act_flops : 0) +
                         (l.trainable() ? l.backward_weights_flops : 0) +
                         (l.needs_input_grad ? l.backward_data_flops : 0);
      trainable_before = backward;
      l.weight_offset = offset;
      offset = align16(offset + l.weight_count);
      l.bias_offset = offset;
      offset = align16(offset + l.bias_count);
      g.param_count += l.params();
      if (l.trainable()) g.trainable_params += l.params();
      g.forward_flops += l.forward_flops;
      g.training_flops += l.training_flops;
      g.estimated_code_bytes += estimated_code_bytes(l);
      activations += l.out.size();
    }
    g.param_floats = offset;
    g.activation_bytes = activations * static_cast<int64_t>(sizeof(float));

    if (d.training.augment.shift > 0 &&
        d.training.augment.shift >= std::min(g.input.h, g.input.w)) {
      diags_.error(d.shift_range,
                   fmt::format("shift={} moves a {}x{} input entirely out of view; at most {}",
                               d.training.augment.shift, g.input.h, g.input.w,
                               std::min(g.input.h, g.input.w) - 1));
    }
    check_limits(g, d.model_range);
    if (diags_.has_errors()) return std::nullopt;
    return g;
  }

 private:
  // Shapes one layer; returns its output, or nothing when its input does not fit.
  std::optional<Shape> layer(DraftLayer& dl, const Shape& in) {
    Layer& l = dl.layer;
    l.in = in;
    int64_t out_size = 0;
    switch (l.kind) {
      case LayerKind::conv:
      case LayerKind::maxpool:
      case LayerKind::avgpool: {
        if (in.flat) {
          mismatch(l, fmt::format("'{}' needs an HxWxC input, but receives a flat vector of {}",
                                  first_words(l), in.c));
          return std::nullopt;
        }
        if (dl.pad_same) {
          int64_t out_h = (in.h + l.stride_h - 1) / l.stride_h,
                  out_w = (in.w + l.stride_w - 1) / l.stride_w;
          int64_t total_h = std::max<int64_t>((out_h - 1) * l.stride_h + l.kernel_h - in.h, 0);
          int64_t total_w = std::max<int64_t>((out_w - 1) * l.stride_w + l.kernel_w - in.w, 0);
          l.pad_top = total_h / 2;
          l.pad_bottom = total_h - l.pad_top;
          l.pad_left = total_w / 2;
          l.pad_right = total_w - l.pad_left;
        } else {
          l.pad_top = l.pad_bottom = l.pad_left = l.pad_right = dl.pad;
        }
        int64_t padded_h = in.h + l.pad_top + l.pad_bottom,
                padded_w = in.w + l.pad_left + l.pad_right;
        if (padded_h < l.kernel_h || padded_w < l.kernel_w) {
          bool padded = padded_h != in.h || padded_w != in.w;
          mismatch(
              l, fmt::format("'{}' needs an input of at least {}x{}{}, but receives {}{}",
                             first_words(l), l.kernel_h, l.kernel_w, padded ? " after padding" : "",
                             in.str(),
                             padded ? fmt::format(" ({}x{} padded)", padded_h, padded_w) : ""));
          return std::nullopt;
        }
        int64_t c = l.kind == LayerKind::conv ? l.units : in.c;
        l.out = {(padded_h - l.kernel_h) / l.stride_h + 1, (padded_w - l.kernel_w) / l.stride_w + 1,
                 c, false};
        out_size = l.out.size();
        if (l.kind == LayerKind::conv) {
          int64_t macs = out_size * l.kernel_h * l.kernel_w * in.c;
          l.weight_count = l.units * l.kernel_h * l.kernel_w * in.c;
          l.bias_count = l.units;
          if (!initial_values(dl)) return std::nullopt;
          matmul_flops(l, macs, out_size);
        } else {
          l.forward_flops = out_size * l.kernel_h * l.kernel_w;
          l.backward_data_flops = l.forward_flops;
        }
        break;
      }
      case LayerKind::dense: {
        l.out = {1, 1, l.units, true};
        l.weight_count = l.units * in.size();
        l.bias_count = l.units;
        matmul_flops(l, l.weight_count, l.units);
        break;
      }
      case LayerKind::flatten: l.out = {1, 1, in.size(), true}; break;
      case LayerKind::dropout:
      case LayerKind::activation:
        l.out = in;
        l.forward_flops = in.size();
        l.backward_data_flops = l.forward_flops;
        break;
    }
    return l.out;
  }

  // Conv and dense: 2 FLOPs per multiply-add, one more per output for the bias and one for the
  // activation. The data and weight gradients each repeat the multiply-adds; the activation's
  // derivative and the bias gradient cost the elementwise part once more.
  static void matmul_flops(Layer& l, int64_t macs, int64_t outputs) {
    int64_t elementwise = outputs * (l.activation == Activation::linear ? 1 : 2);
    l.forward_flops = 2 * macs + elementwise;
    l.backward_data_flops = 2 * macs;
    l.backward_weights_flops = 2 * macs;
    l.backward_act_flops = elementwise;
  }

  // weights= and bias= of a conv, now that the input channels are known.
  bool initial_values(DraftLayer& dl) {
    Layer& l = dl.layer;
    bool ok = true;
    if (!dl.bank.empty()) {
      FilterBank fb = *filter_bank(dl.bank);
      if (fb.filters != l.units || fb.kernel_h != l.kernel_h || fb.kernel_w != l.kernel_w ||
          fb.channels != l.in.c) {
        diags_
            .error(dl.weights_range,
                   fmt::format(
                       "weights={} is {} filter{} of {}x{} on {} input channel{}, but this layer "
                       "has {} filter{} of {}x{} on {}",
                       dl.bank, fb.filters, fb.filters == 1 ? "" : "s", fb.kernel_h, fb.kernel_w,
                       fb.channels, fb.channels == 1 ? "" : "s", l.units, l.units == 1 ? "" : "s",
                       l.kernel_h, l.kernel_w,
                       l.in.c == 1 ? "1 input channel" : fmt::format("{} input channels", l.in.c)))
            .hint = fmt::format("write 'conv {} {}x{} ... weights={}' on a {}-channel input",
                                fb.filters, fb.kernel_h, fb.kernel_w, dl.bank, fb.channels);
        ok = false;
      } else {
        l.initial_weights = fb.weights;
      }
    } else if (!l.initial_weights.empty() &&
               static_cast<int64_t>(l.initial_weights.size()) != l.weight_count) {
      diags_.error(
          dl.weights_range,
          fmt::format(
              "weights= needs {} numbers ({} filters x {}x{} x {} input channels), found {}",
              l.weight_count, l.units, l.kernel_h, l.kernel_w, l.in.c, l.initial_weights.size()));
      ok = false;
    }
    if (!l.initial_bias.empty() && static_cast<int64_t>(l.initial_bias.size()) != l.bias_count) {
      diags_.error(dl.bias_range, fmt::format("bias= needs {} numbers, one per filter, found {}",
                                              l.bias_count, l.initial_bias.size()));
      ok = false;
    }
    return ok;
  }

  // "conv 16 5x5" of "conv 16 5x5 relu": the words that decide the size, for messages.
  static std::string first_words(const Layer& l) {
    std::string_view s = l.statement;
    size_t words = l.kind == LayerKind::conv ? 3 : 2, pos = 0;
    for (size_t i = 0; i < words && pos != std::string_view::npos; ++i) {
      pos = s.find_first_not_of(" \t", pos);
      pos = pos == std::string_view::npos ? pos : s.find_first_of(" \t", pos);
    }
    return std::string(s.substr(0, pos));
  }

  void mismatch(const Layer& l, std::string message) {
    Shape produced = l.in;
    diags_.error(l.range, std::move(message))
        .notes.push_back(
            {producer_range_, fmt::format("'{}' produces {}", producer_text_, produced.str())});
  }

  void check_limits(const Graph& g, Range model_range) {
    auto largest = [&](auto measure) {
      return *std::max_element(
          g.layers.begin(), g.layers.end(),
          [&](const Layer& a, const Layer& b) { return measure(a) < measure(b); });
    };
    if (g.param_count > limits_.max_params) {
      const Layer& big = largest([](const Layer& l) { return l.params(); });
      auto& d =
          diags_.error(model_range, fmt::format("the model has {} parameters, over the limit of {}",
                                                with_thousands(g.param_count),
                                                with_thousands(limits_.max_params)));
      d.hint = "raise the limit with --max-params";
      d.notes.push_back({big.range, fmt::format("'{}' holds {} of them", big.statement,
                                                with_thousands(big.params()))});
    }
    if (g.activation_bytes > limits_.max_activation_bytes) {
      const Layer& big = largest([](const Layer& l) { return l.out.size(); });
      auto& d = diags_.error(
          model_range,
          fmt::format("the model needs {} of activations per sample, over the limit of {}",
                      mib(g.activation_bytes), mib(limits_.max_activation_bytes)));
      d.hint = "raise the limit with --max-activation-mib";
      d.notes.push_back({big.range, fmt::format("'{}' produces {} ({})", big.statement,
                                                big.out.str(), mib(big.out.size() * 4))});
    }
    if (g.estimated_code_bytes > limits_.max_code_bytes) {
      const Layer& big = largest([](const Layer& l) { return estimated_code_bytes(l); });
      auto& d = diags_.error(
          model_range, fmt::format("the specialised code would be about {}, over the limit of {}",
                                   mib(g.estimated_code_bytes), mib(limits_.max_code_bytes)));
      d.hint = "raise the limit with --max-code-mib";
      d.notes.push_back({big.range, fmt::format("'{}' needs about {} of it", big.statement,
                                                mib(estimated_code_bytes(big)))});
    }
  }

  const SourceFile& file_;
  const Limits& limits_;
  Diagnostics& diags_;
  Range producer_range_;
  std::string producer_text_;
};

}  // namespace

std::optional<Graph> check_shapes(Draft draft, const SourceFile& file, const Limits& limits,
                                  Diagnostics& diags) {
  return ShapeChecker(file, limits, diags).run(std::move(draft));
}

std::optional<Graph> check(const Ast& ast, const SourceFile& file, const Limits& limits,
                           Diagnostics& diags) {
  return check_shapes(check_statements(ast, file, diags), file, limits, diags);
}

}  // namespace cnnc::dsl
