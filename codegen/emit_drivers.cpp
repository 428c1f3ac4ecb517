// The per-slice drivers of one ISA: loading a block, the slice's start and end, the output stage
// (softmax, loss, its gradient), cnnc_model::train and ::forward, and the per-layer kernel table.
#include <fmt/format.h>

#include <algorithm>

#include "emit.hpp"

namespace cnnc::codegen {

namespace {

// The slice's start and end: clearing per-lane partials, and reducing them (and the dense
// layers' row products) into the caller's gradient vector, lanes summed in order.
void emit_slice_edges(EmitContext& c) {
  int64_t L = c.L();
  c.w.comment("Zeroes the borders of padded inputs: only their interiors are written per block.");
  c.w.function("static {} void clear_padding(float* __restrict ws)", c.target());
  c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers)
    if (lp.padded.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));  // {}", ws(lp.padded), lp.padded.floats,
               lp.layer->name);
  c.w.close();
  c.w.blank();

  c.w.comment("Clears what accumulates over a slice: per-lane gradient partials.");
  c.w.function("static {} void begin_slice(float* __restrict ws)", c.target());
  c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers) {
    if (!lp.layer->trainable()) continue;
    if (lp.lane_dw.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(lp.lane_dw), lp.lane_dw.floats);
    if (lp.lane_db.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(lp.lane_db), lp.lane_db.floats);
  }
  c.w.close();
  c.w.blank();

  c.w.comment(
      "Writes the slice's parameter gradients: lanes summed in order, dense weights as one product "
      "over the slice's rows.");
  c.w.function(
      "static {} void finish_slice(float* __restrict grads, float* __restrict ws, int rows)",
      c.target());
  c.w.line("(void)grads, (void)ws, (void)rows;");
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    if (!l.trainable()) continue;
    c.w.open("");
    c.w.line("// {}", l.name);
    if (l.kind == dsl::LayerKind::conv) {
      c.w.line("const float* dw = {};", ws(lp.lane_dw));
      c.w.open("for (int j = 0; j < {}; ++j)", l.weight_count);
      c.w.line("float sum = 0.0f;");
      c.w.line("for (int lane = 0; lane < {}; ++lane) sum += dw[j * {} + lane];", L, L);
      c.w.line("grads[{} + j] = sum;", l.weight_offset);
      c.w.close();
    } else {
      c.w.line("{}_backward_weights(grads, ws, rows);", l.name);
    }
    c.w.line("const float* db = {};", ws(lp.lane_db));
    c.w.open("for (int k = 0; k < {}; ++k)", l.units);
    c.w.line("float sum = 0.0f;");
    c.w.line("for (int lane = 0; lane < {}; ++lane) sum += db[k * {} + lane];", L, L);
    c.w.line("grads[{} + k] = sum;", l.bias_offset);
    c.w.close();
    c.w.close();
  }
  c.w.close();
  c.w.blank();
}

// The block's input, transposed from the caller's [n][H][W][C] into [H][W][C][L]; lanes past
// the slice's end are zero.
void emit_load_block(EmitContext& c) {
  int64_t L = c.L(), size = c.graph.input.size();
  c.w.comment(fmt::format("input [n][{}] -> block [{}][L], samples first .. first + count - 1.",
                          size, size));
  c.w.function(
      "static {} void load_block(const float* __restrict input, int first, int count, float* "
      "__restrict ws)",
      c.target());
  c.w.line("float* x = {};", ws(c.plan.input));
  c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
  c.w.line("const float* src = input + (int64_t)(first + lane) * {};", size);
  c.w.line("if (lane < count) for (int e = 0; e < {}; ++e) x[e * {} + lane] = src[e];", size, L);
  c.w.line("else for (int e = 0; e < {}; ++e) x[e * {} + lane] = 0.0f;", size, L);
  c.w.close();
  c.w.close();
  c.w.blank();
}

// The output stage, one lane (sample) at a time: softmax where the model ends in one, the loss
// and its gradient in training, and the caller's output rows.
void emit_output_block(EmitContext& c) {
  const dsl::Graph& g = c.graph;
  const LayerPlan& last = c.plan.layers.back();
  int64_t L = c.L(), O = g.output().size();
  bool softmax = last.layer->activation == dsl::Activation::softmax;
  bool xent = g.training.loss == dsl::Loss::cross_entropy;
  c.w.comment(
      fmt::format("The last layer's {} values per lane -> {}the loss ({}) and the gradient that "
                  "starts backward.",
                  O, softmax ? "softmax, " : "", dsl::name_of(g.training.loss)));
  c.w.function(
      "static {} double output_block(const cnnc_pass* pass, int first, int count, float* "
      "__restrict ws, bool training)",
      c.target());
  c.w.line("const float* z = {};", c.output_of(last.index));
  c.w.line("float* dz = {};", c.grad_of(last.index));
  c.w.line("double loss = 0.0;");
  c.w.open("for (int lane = 0; lane < {}; ++lane)", L);
  c.w.line("float v[{}], p[{}];", O, O);
  c.w.line("for (int j = 0; j < {}; ++j) v[j] = z[j * {} + lane];", O, L);
  c.w.line("float top = v[0];");
  c.w.line("for (int j = 1; j < {}; ++j) top = v[j] > top ? v[j] : top;", O);
  c.w.line("double sum = 0.0;");
  c.w.open("for (int j = 0; j < {}; ++j)", O);
  c.w.line("p[j] = std::exp(v[j] - top);");
  c.w.line("sum += p[j];");
  c.w.close();
  c.w.line("const float inv = (float)(1.0 / sum);");
  c.w.line("for (int j = 0; j < {}; ++j) p[j] *= inv;", O);
  c.w.line("const float* y = {};", softmax ? "p" : "v");
  c.w.open("if (lane >= count)");
  c.w.line("if (training) for (int j = 0; j < {}; ++j) dz[j * {} + lane] = 0.0f;", O, L);
  c.w.line("continue;");
  c.w.close();
  c.w.line(
      "if (pass->output) for (int j = 0; j < {}; ++j) pass->output[(int64_t)(first + lane) * {} + "
      "j] = y[j];",
      O, O);
  c.w.line("if (!training) continue;");
  c.w.line("const int32_t label = pass->labels[first + lane];");
  c.w.open("if (label < 0 || label >= {})", O);
  c.w.comment("The runtime checks labels when it loads them; a bad one here adds nothing.");
  c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = 0.0f;", O, L);
  c.w.line("continue;");
  c.w.close();
  if (xent) {
    c.w.comment(
        "-log softmax(z)[label] = log sum exp(z - top) - (z[label] - top); its gradient is p - "
        "onehot.");
    c.w.line("loss += std::log(sum) - (double)(v[label] - top);");
    c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = p[j] - (j == label ? 1.0f : 0.0f);",
             O, L);
  } else {
    c.w.line("float d[{}];", O);
    c.w.line("double squares = 0.0;");
    c.w.open("for (int j = 0; j < {}; ++j)", O);
    c.w.line("const float diff = y[j] - (j == label ? 1.0f : 0.0f);");
    c.w.line("squares += (double)diff * diff;");
    c.w.line("d[j] = 2.0f * diff / {}.0f;", O);
    c.w.close();
    c.w.line("loss += squares / {};", O);
    if (softmax) {
      c.w.comment("Through the softmax: dz = p * (d - sum_j d_j p_j).");
      c.w.line("float dot = 0.0f;");
      c.w.line("for (int j = 0; j < {}; ++j) dot += d[j] * p[j];", O);
      c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = p[j] * (d[j] - dot);", O, L);
    } else {
      c.w.line("for (int j = 0; j < {}; ++j) dz[j * {} + lane] = d[j];", O, L);
    }
  }
  c.w.close();
  c.w.line("return loss;");
  c.w.close();
  c.w.blank();
}

void emit_layer_calls(EmitContext& c, bool training) {
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    if (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense)
      c.w.line("{}_forward(params, ws);", l.name);
    else if (l.kind == dsl::LayerKind::dropout)
      c.w.line("{}_forward(ws, pass, first, {});", l.name, training ? "true" : "false");
    else
      c.w.line("{}_forward(ws);", l.name);
  }
}

// cnnc_model::train and cnnc_model::forward: one block of L samples at a time through every
// layer; train() also runs the loss and the backward pass, and writes the slice's gradients.
void emit_driver(EmitContext& c, bool training) {
  int64_t L = c.L();
  if (training) {
    c.w.comment(
        "cnnc_model::train for this ISA: forward, loss and backward block by block, then the "
        "slice's gradients.");
    c.w.function("static {} float train(const cnnc_model* model, const cnnc_pass* pass)",
                 c.target());
  } else {
    c.w.comment("cnnc_model::forward for this ISA: inference, dropout off.");
    c.w.function("static {} void forward(const cnnc_model* model, const cnnc_pass* pass)",
                 c.target());
  }
  c.w.line("(void)model;");
  c.w.line("float* ws = (float*)pass->workspace;");
  c.w.line("const float* params = pass->params;");
  c.w.line("(void)params;");
  c.w.line("clear_padding(ws);");
  if (training) {
    c.w.line("begin_slice(ws);");
    c.w.line("double loss = 0.0;");
  }
  c.w.line("const int blocks = (pass->n + {}) / {};", L - 1, L);
  c.w.open("for (int block = 0; block < blocks; ++block)");
  c.w.line("const int first = block * {};", L);
  c.w.line("const int count = pass->n - first < {} ? pass->n - first : {};", L, L);
  c.w.line("load_block(pass->input, first, count, ws);");
  emit_layer_calls(c, training);
  c.w.line("{}output_block(pass, first, count, ws, {});", training ? "loss += " : "",
           training ? "true" : "false");
  for (auto it = c.plan.layers.rbegin(); training && it != c.plan.layers.rend(); ++it) {
    const dsl::Layer& l = *it->layer;
    if (!runs_backward(*it)) continue;
    if (l.kind == dsl::LayerKind::conv)
      c.w.line("{}_backward(params, ws);", l.name);
    else if (l.kind == dsl::LayerKind::dense)
      c.w.line("{}_backward(params, ws, block);", l.name);
    else if (l.kind == dsl::LayerKind::dropout)
      c.w.line("{}_backward(ws, pass, first);", l.name);
    else
      c.w.line("{}_backward(ws);", l.name);
  }
  c.w.close();
  if (training) {
    c.w.line("finish_slice(pass->grads, ws, blocks * {});", L);
    c.w.line("return (float)loss;");
  }
  c.w.close();
  c.w.blank();
}

// The per-layer kernels of this ISA behind one signature, for cnnc_<name>_kernels: what a
// benchmark times layer by layer on a workspace that train() filled.
void emit_kernel_table(EmitContext& c) {
  struct Entry {
    std::string layer, phase, call;
    int64_t samples;
    double flops;
  };
  int64_t L = c.L(), rows = (c.plan.max_batch + L - 1) / L * L;
  std::vector<Entry> entries;
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    bool conv = l.kind == dsl::LayerKind::conv, dense = l.kind == dsl::LayerKind::dense;
    bool pool = l.kind == dsl::LayerKind::maxpool || l.kind == dsl::LayerKind::avgpool;
    if (!conv && !dense && !pool) continue;
    // 2 FLOPs per multiply-add of the layer's matrix product, per sample and phase.
    double macs2 = 2.0 * static_cast<double>(l.weight_count) *
                   static_cast<double>(conv ? l.out.h * l.out.w : 1);
    std::string args = pool ? "ws" : "params, ws";
    entries.push_back({l.name, "forward", fmt::format("{}_forward({})", l.name, args), L,
                       static_cast<double>(l.forward_flops * L)});
    if (lp.needs_dx)
      entries.push_back({l.name, "backward_data",
                         fmt::format("{}_backward{}({})", l.name, pool ? "" : "_data", args), L,
                         pool ? static_cast<double>(l.forward_flops * L) : macs2 * L});
    if (l.trainable())
      entries.push_back({l.name, "backward_weights",
                         conv ? fmt::format("{}_backward_weights(params, ws)", l.name)
                              : fmt::format("{}_backward_weights(grads, ws, {})", l.name, rows),
                         conv ? L : rows, macs2 * static_cast<double>(conv ? L : rows)});
  }
  for (const Entry& e : entries) {
    c.w.function("static {} void kernel_{}_{}(const float* params, float* grads, void* workspace)",
                 c.target(), e.layer, e.phase);
    c.w.line("float* ws = (float*)workspace;");
    c.w.line("(void)params, (void)grads;");
    c.w.line("{};", e.call);
    c.w.close();
  }
  c.w.line("static const cnnc_kernel kernels[{}] = {{", std::max<size_t>(entries.size(), 1));
  for (const Entry& e : entries)
    c.w.line("    {{\"{}\", \"{}\", kernel_{}_{}, {}, {}}},", e.layer, e.phase, e.layer, e.phase,
             e.samples, fmt::format("{:.1f}", e.flops));
  if (entries.empty()) c.w.line("    {{\"\", \"\", nullptr, 0, 0.0}},");
  c.w.line("}};");
  c.w.line("static const int32_t kernel_count = {};", entries.size());
  c.w.blank();
}

}  // namespace

void emit_drivers(EmitContext& c) {
  emit_load_block(c);
  emit_slice_edges(c);
  emit_output_block(c);
  emit_driver(c, true);
  emit_driver(c, false);
  emit_kernel_table(c);
}

}  // namespace cnnc::codegen
