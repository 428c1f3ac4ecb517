// The per-slice drivers of one ISA: loading a block, the slice's start and end, the output stage
// (softmax, loss, its gradient), cnnc_model::train and ::forward, and the per-layer kernel table.
#include <fmt/format.h>

#include <algorithm>

#include "codegen/emit.hpp"

namespace cnnc::codegen {

namespace {

// grads[offset + j] = the sum over L lanes of partials[j][lane], j < count, lanes in order from
// 0.0f. The partials are read through a pointer named `name`.
void emit_lane_sums(EmitContext& c, const char* name, const Slot& partials, int64_t count,
                    int64_t offset, int64_t L) {
  if (L == 1) {  // one lane: the partials are the sums
    c.w.line("std::memcpy({}, {}, {} * sizeof(float));", at("grads", offset), ws(partials), count);
    return;
  }
  c.w.line("const float* {} = {};", name, ws(partials));
  // L sums at a time, transposed in registers; a scalar chain of L adds per sum took lenet5's
  // conv2 (2,400 weights) about 25 us a slice.
  emit_loop_line(
      c.w, "", "j", count / L,
      [&](const Expr& j) {
        return fmt::format("vlane_sums({}, {});", at("grads", j + offset), at(name, j * L));
      },
      0, L);
  emit_loop(
      c.w, "j", count % L,
      [&](const Expr& j) {
        c.w.line("float sum = 0.0f;");
        emit_loop_line(c.w, "", "lane", L, [&](const Expr& lane) {
          return fmt::format("sum += {}[{}];", name, j * L + lane);
        });
        c.w.line("grads[{}] = sum;", j + offset);
      },
      count / L * L);
}

// The slice's start and end: clearing per-lane partials, and per trainable layer reducing them
// (or the dense layer's row product) into the caller's gradient vector, lanes summed in order.
void emit_slice_edges(EmitContext& c) {
  bool padding = false, trainable = false;
  for (const LayerPlan& lp : c.plan.layers) {
    padding |= lp.padded.floats > 0;
    trainable |= lp.layer->trainable();
  }
  c.w.comment("Zeroes the borders of padded inputs: only their interiors are written per block.");
  c.w.function("static {} void clear_padding(float* __restrict ws)", c.target());
  if (!padding) c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers)
    if (lp.padded.floats)
      c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(lp.padded), lp.padded.floats);
  c.w.close();
  c.w.blank();

  c.w.comment("Clears what accumulates over a slice: per-lane gradient partials.");
  c.w.function("static {} void begin_slice(float* __restrict ws)", c.target());
  if (!trainable) c.w.line("(void)ws;");
  for (const LayerPlan& lp : c.plan.layers)
    for (const Slot* s : {&lp.lane_dw, &lp.lane_db})
      if (s->floats) c.w.line("std::memset({}, 0, {} * sizeof(float));", ws(*s), s->floats);
  c.w.close();
  c.w.blank();

  // Run in the slice's last block, right after the layer's backward: the layers below it still
  // run backward while a data-parallel runtime exchanges what this one reports, or while another
  // thread sums a deferred dense layer's weights from it (cnnc_model::dense_weights).
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    if (!l.trainable()) continue;
    bool conv = l.kind == dsl::LayerKind::conv;
    c.w.comment(fmt::format(
        "Writes {}'s gradients once its backward has seen the slice's last block ({}), and "
        "reports them.",
        l.name,
        !conv           ? "weights as one product over the slice's rows, unless deferred"
        : lp.dw_by_taps ? "weights summed by taps already, bias lanes summed in order"
                        : "lanes summed in order"));
    c.w.function("static {} void {}_finish(const cnnc_pass* pass, float* __restrict ws, int rows)",
                 c.target(), l.name);
    c.w.line("float* __restrict grads = pass->grads;");
    if (conv) {
      c.w.line("(void)rows;");
      emit_lane_sums(c, "dw", lp.lane_dw, l.weight_count, l.weight_offset,
                     lp.dw_by_taps ? 1 : c.L());
    } else {
      c.w.line("if (!pass->defer_dense_weights) {}_backward_weights(grads, ws, rows);", l.name);
    }
    emit_lane_sums(c, "db", lp.lane_db, l.units, l.bias_offset, c.L());
    c.w.line("if (pass->gradients_ready) pass->gradients_ready(pass, {});", lp.index);
    c.w.close();
    c.w.blank();
  }
}

// The block's input, transposed from the caller's [n][H][W][C] into [H][W][C][L] (into the
// interior of the first conv's padded buffer when it pads); lanes past the slice's end are zero.
// A full block is moved as squares of L samples x L values transposed in registers: a value at
// a time, lane by lane, and then copied again into the padding, it held lenet5's batch-1,000
// inference 6% (fp32) and 13% (bf16) below this.
void emit_load_block(EmitContext& c) {
  const dsl::Graph& g = c.graph;
  int64_t L = c.L(), size = g.input.size();
  // Runs of values contiguous in both layouts: the whole sample, or with padding one input row.
  int64_t runs = 1, run = size, run_stride = 0;
  std::string to = ws(c.plan.input);
  Expr first_run = 0;
  if (c.plan.input_padded) {
    const LayerPlan& conv = c.plan.layers.front();
    const dsl::Layer& l = *conv.layer;
    int64_t Wp = l.in.w + l.pad_left + l.pad_right;
    runs = l.in.h;
    run = l.in.w * l.in.c;
    run_stride = Wp * l.in.c * L;
    first_run = (l.pad_top * Wp + l.pad_left) * l.in.c * L;
    to = ws(conv.padded);
  }
  c.w.comment(fmt::format(
      "input [n][{}] -> block [{}][{}][{}][L]{}, samples first .. first + count - 1.", size,
      g.input.h, g.input.w, g.input.c, c.plan.input_padded ? " in the first conv's padding" : ""));
  c.w.function(
      "static {} void load_block(const float* __restrict input, int first, int count, float* "
      "__restrict ws)",
      c.target());
  c.w.line("float* x = {};", to);
  // Each run h: values [0, run) of the sample from src + h * run, to x + dst(h) + value * L.
  auto each_run = [&](const std::function<void(const Expr& src, const Expr& dst)>& body) {
    emit_loop(c.w, "h", runs, [&](const Expr& h) { body(h * run, first_run + h * run_stride); });
  };
  if (L == 1) {  // a block of one sample: no transposition, and never a lane to spare
    c.w.line("(void)count;");
    c.w.line("const float* src = input + (int64_t)first * {};", size);
    each_run([&](const Expr& src, const Expr& dst) {
      c.w.line("std::memcpy({}, {}, {} * sizeof(float));", at("x", dst), at("src", src), run);
    });
    c.w.close();
    c.w.blank();
    return;
  }
  const Expr lane = Expr::var("lane");
  if (run >= L) {
    c.w.open("if (count == {})", L);
    c.w.comment(fmt::format("A full block: squares of {} samples x {} values{}.", L, L,
                            run % L ? ", the last of a run overlapping the one before it" : ""));
    c.w.line("const float* src = input + (int64_t)first * {};", size);
    c.w.line("V r[{}];", L);
    // The square of values [e, e + L) of the run, of which values from `keep` on are stored.
    auto square = [&](const Expr& src, const Expr& dst, const Expr& e, int64_t keep) {
      c.w.line("vtranspose_rows(r, {}, {});", at("src", src + e), size);
      emit_loop_line(
          c.w, "", "i", L - keep,
          [&](const Expr& i) {
            return fmt::format("vstore({}, r[{}]);", at("x", dst + (e + i) * L), i);
          },
          keep);
    };
    each_run([&](const Expr& src, const Expr& dst) {
      emit_loop(
          c.w, "e", run / L, [&](const Expr& e) { square(src, dst, e, 0); }, 0, L);
      if (run % L) square(src, dst, run - L, L - run % L);
    });
    c.w.line("return;");
    c.w.close();
  }
  c.w.open("for (int lane = 0; lane < count; ++lane)");
  c.w.line("const float* src = input + (int64_t)(first + lane) * {};", size);
  each_run([&](const Expr& src, const Expr& dst) {
    emit_loop_line(c.w, "", "e", run, [&](const Expr& e) {
      return fmt::format("x[{}] = src[{}];", dst + e * L + lane, src + e);
    });
  });
  c.w.close();
  c.w.open("for (int lane = count; lane < {}; ++lane)", L);
  each_run([&](const Expr&, const Expr& dst) {
    emit_loop_line(c.w, "", "e", run,
                   [&](const Expr& e) { return fmt::format("x[{}] = 0.0f;", dst + e * L + lane); });
  });
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
  const Expr lane = Expr::var("lane");
  // One statement per output j: `for (int j = 0; j < O; ++j) <statement(j)>`.
  auto outputs = [&](const std::function<std::string(const Expr& j)>& statement,
                     int64_t first = 0) {
    emit_loop_line(c.w, "", "j", O - first, statement, first);
  };
  c.w.comment(
      fmt::format("The last layer's {} per lane -> {}the loss ({}) and the gradient that "
                  "starts backward.",
                  counted(O, "value"), softmax ? "softmax, " : "", dsl::name_of(g.training.loss)));
  c.w.function(
      "static {} double output_block(const cnnc_pass* pass, int first, int count, float* "
      "__restrict ws, bool training)",
      c.target());
  c.w.line("const float* z = {};", c.output_of(last.index));
  c.w.line("float* dz = {};", c.grad_of(last.index));
  c.w.line("double loss = 0.0;");
  c.w.open("for (int lane = 0; lane < count; ++lane)");
  c.w.line("float v[{}], p[{}];", O, O);
  outputs([&](const Expr& j) { return fmt::format("v[{}] = z[{}];", j, j * L + lane); });
  c.w.line("float top = v[0];");
  outputs([&](const Expr& j) { return fmt::format("top = v[{}] > top ? v[{}] : top;", j, j); }, 1);
  c.w.line("double sum = 0.0;");
  emit_loop(c.w, "j", O, [&](const Expr& j) {
    c.w.line("p[{}] = std::exp(v[{}] - top);", j, j);
    c.w.line("sum += p[{}];", j);
  });
  c.w.line("const float inv = (float)(1.0 / sum);");
  outputs([&](const Expr& j) { return fmt::format("p[{}] *= inv;", j); });
  c.w.line("const float* y = {};", softmax ? "p" : "v");
  const Expr row = Expr::var("(int64_t)(first + lane)") * O;  // the sample's output row
  emit_loop_line(c.w, "if (pass->output) ", "j", O, [&](const Expr& j) {
    return fmt::format("pass->output[{}] = y[{}];", row + j, j);
  });
  c.w.line("if (!training) continue;");
  c.w.line("const int32_t label = pass->labels[first + lane];");
  c.w.open("if (label < 0 || label >= {})", O);
  c.w.comment("The runtime checks labels when it loads them; a bad one here adds nothing.");
  outputs([&](const Expr& j) { return fmt::format("dz[{}] = 0.0f;", j * L + lane); });
  c.w.line("continue;");
  c.w.close();
  if (xent) {
    c.w.comment(
        "-log softmax(z)[label] = log sum exp(z - top) - (z[label] - top); its gradient is p - "
        "onehot.");
    c.w.line("loss += std::log(sum) - (double)(v[label] - top);");
    outputs([&](const Expr& j) {
      return fmt::format("dz[{}] = p[{}] - ({} == label ? 1.0f : 0.0f);", j * L + lane, j, j);
    });
  } else {
    c.w.line("float d[{}];", O);
    c.w.line("double squares = 0.0;");
    emit_loop(c.w, "j", O, [&](const Expr& j) {
      c.w.line("const float diff = y[{}] - ({} == label ? 1.0f : 0.0f);", j, j);
      c.w.line("squares += (double)diff * diff;");
      c.w.line("d[{}] = 2.0f * diff / {}.0f;", j, O);
    });
    c.w.line("loss += squares / {};", O);
    if (softmax) {
      c.w.comment("Through the softmax: dz = p * (d - sum_j d_j p_j).");
      c.w.line("float dot = 0.0f;");
      outputs([&](const Expr& j) { return fmt::format("dot += d[{}] * p[{}];", j, j); });
      outputs([&](const Expr& j) {
        return fmt::format("dz[{}] = p[{}] * (d[{}] - dot);", j * L + lane, j, j);
      });
    } else {
      outputs([&](const Expr& j) { return fmt::format("dz[{}] = d[{}];", j * L + lane, j); });
    }
  }
  c.w.close();
  if (L > 1) {
    c.w.comment("Lanes past the slice's end pass no gradient back.");
    c.w.open("for (int lane = count; training && lane < {}; ++lane)", L);
    outputs([&](const Expr& j) { return fmt::format("dz[{}] = 0.0f;", j * L + lane); });
    c.w.close();
  }
  c.w.line("return loss;");
  c.w.close();
  c.w.blank();
}

void emit_layer_calls(EmitContext& c, bool training) {
  for (size_t i = 0; i < c.plan.layers.size(); ++i) {
    const LayerPlan& lp = c.plan.layers[i];
    const dsl::Layer& l = *lp.layer;
    if (lp.view) continue;
    if (lp.pool_fused) {  // and the pool after it, which the loop then skips
      c.w.line("{}(params, ws);", pooled_forward(c.plan, lp, training));
      ++i;
    } else if (l.kind == dsl::LayerKind::conv || l.kind == dsl::LayerKind::dense)
      c.w.line("{}_forward(params, ws);", l.name);
    else if (l.kind == dsl::LayerKind::dropout)
      c.w.line("{}_forward(ws, pass, first, {});", l.name, training ? "true" : "false");
    else
      c.w.line("{}_forward(ws);", l.name);
  }
}

// The weights in the layouts the products read, from the fp32 master weights: a Winograd
// conv's transformed filters (winograd_u); bf16's pairs, w_pairs for forward, wt_pairs for the
// input gradient in training (a dense layer's in tiles of its input-gradient block, plan.cpp).
// Made by parts of every layout's rows, so that the threads of a step share one copy
// (cnnc_model::prepare); a call whose pass brings none makes its own.
void emit_convert_weights(EmitContext& c) {
  const bool bf16 = c.plan.isa == Isa::avx512_bf16;
  c.w.comment(fmt::format(
      "The weights as the products read them, part `part` of `parts`{}",
      bf16 ? ", rounded to bf16 pairs: by pairs\nalong each row for the forward products, by "
             "pairs of rows (filters, units) for the input\ngradients."
           : "."));
  c.w.function(
      "static {} void convert_weights(const float* __restrict params, uint32_t* __restrict "
      "to, bool training, int part, int parts)",
      c.target());
  c.w.line("(void)params, (void)to, (void)training, (void)part, (void)parts;");
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    int64_t n = l.kind == dsl::LayerKind::conv ? l.kernel_h * l.kernel_w * l.in.c : l.in.size();
    auto winograd = [&](const Slot& u, bool turned) {
      c.w.line("{}{}({}, {}, {}, {}, {}, part, parts);", turned ? "if (training) " : "",
               bf16 ? "winograd_filter_pairs" : "winograd_filters",
               bf16 ? "to + " + u.name : "(float*)(to + " + u.name + ")",
               at("params", l.weight_offset), l.units, l.in.c, turned ? "true" : "false");
    };
    if (lp.winograd) winograd(lp.winograd_u, false);
    if (lp.winograd_dx) winograd(lp.winograd_dx_u, true);
    const std::string w = at("params", l.weight_offset);
    const int64_t tile = l.kind == dsl::LayerKind::dense ? lp.dx_tblock : n;
    const bool rows = !lp.bf16_columns && lp.w_pairs.floats, turned = lp.wt_pairs.floats;
    if (lp.bf16_columns)
      c.w.line("column_pairs(to + {}, {}, {}, {}, {}, part, parts);", lp.w_pairs.name, w,
               l.units * l.kernel_h, l.kernel_w, l.in.c);
    // Both layouts in one pass over the rows in training; inference makes only the first. The
    // step's rows stream past the caches when they would not stay in a core's L2 anyway (1 MB
    // on Zen 4 and 5): keras_mnist's dense1 (2.4 MB), not lenet5's (96 KB).
    if (rows && turned) {
      const bool stream = lp.w_pairs.floats * 4 > (int64_t{1} << 20);
      c.w.line("if (training) row_pairs(to + {}, to + {}, {}, {}, {}, {}, {}, part, parts);",
               lp.wt_pairs.name, lp.w_pairs.name, w, l.units, n, tile, stream ? "true" : "false");
      c.w.line("else rows_to_pairs(to + {}, {}, {}, {}, part, parts);", lp.w_pairs.name, w, l.units,
               n);
    } else if (rows) {
      c.w.line("rows_to_pairs(to + {}, {}, {}, {}, part, parts);", lp.w_pairs.name, w, l.units, n);
    } else if (turned) {
      c.w.line("if (training) row_pairs(to + {}, nullptr, {}, {}, {}, {}, false, part, parts);",
               lp.wt_pairs.name, w, l.units, n, tile);
    }
  }
  c.w.close();
  c.w.blank();
  c.w.comment(
      "cnnc_model::prepare for this ISA: part of the weights of a training step, for the\n"
      "cnnc_pass::prepared that every slice of the step reads.");
  c.w.function(
      "static {} void prepare(const cnnc_model* model, const float* params, void* prepared, "
      "int32_t part, int32_t parts)",
      c.target());
  c.w.line("(void)model;");
  c.w.line("convert_weights(params, (uint32_t*)prepared, true, part, parts);");
  c.w.close();
  c.w.blank();
}

// cnnc_model::train and cnnc_model::forward: one block of L samples at a time through every
// layer; train() also runs the loss and the backward pass, and writes the slice's gradients.
void emit_driver(EmitContext& c, bool training) {
  int64_t L = c.L();
  const dsl::Graph& g = c.graph;
  bool parameters = std::any_of(g.layers.begin(), g.layers.end(),
                                [](const dsl::Layer& l) { return l.params() > 0; });
  if (training) {
    c.w.comment(fmt::format(
        "cnnc_model::train for this ISA: forward, loss and backward block by block, then the "
        "slice's gradients; {} FLOPs per sample.",
        dsl::with_thousands(g.training_flops)));
    c.w.function("static {} float train(const cnnc_model* model, const cnnc_pass* pass)",
                 c.target());
  } else {
    c.w.comment(fmt::format(
        "cnnc_model::forward for this ISA: inference, dropout off; {} FLOPs per sample.",
        dsl::with_thousands(g.forward_flops)));
    c.w.function("static {} void forward(const cnnc_model* model, const cnnc_pass* pass)",
                 c.target());
  }
  c.w.line("(void)model;");
  c.w.line("float* ws = (float*)pass->workspace;");
  if (parameters) c.w.line("const float* params = pass->params;");
  c.w.line("clear_padding(ws);");
  if (c.plan.prepared_floats > 0) {
    c.w.comment(
        "The weights as the products read them: the step's (cnnc_pass::prepared), or this call's "
        "own.");
    c.w.line("const uint32_t* prepared = (const uint32_t*)pass->prepared;");
    c.w.open("if (!prepared)");
    c.w.line("uint32_t* own = (uint32_t*)({});", ws(c.plan.own_weights));
    c.w.line("convert_weights(params, own, {}, 0, 1);", training ? "true" : "false");
    c.w.line("prepared = own;");
    c.w.close();
    c.w.line("std::memcpy({}, &prepared, sizeof prepared);", ws(c.plan.weights_at));
  }
  if (training) {
    c.w.line("begin_slice(ws);");
    c.w.line("double loss = 0.0;");
  }
  if (L == 1)
    c.w.line("const int blocks = pass->n;");
  else
    c.w.line("const int blocks = (pass->n + {}) / {};", L - 1, L);
  c.w.open("for (int block = 0; block < blocks; ++block)");
  c.w.line("const int first = {};", Expr::var("block") * L);
  if (L == 1)
    c.w.line("const int count = 1;");
  else
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
    if (l.trainable())
      c.w.line("if (block == blocks - 1) {}_finish(pass, ws, {});", l.name,
               Expr::var("blocks") * L);
  }
  c.w.close();
  if (training) c.w.line("return (float)loss;");
  c.w.close();
  c.w.blank();
}

// The per-layer kernels of this ISA behind one signature, for cnnc_<name>_kernels: what a
// benchmark times layer by layer on a workspace that train() filled.
void emit_kernel_table(EmitContext& c) {
  struct Entry {
    std::string layer, phase, call;
    int64_t samples, flops;
    bool params, grads;  // which of the kernel's arguments the call reads
  };
  int64_t L = c.L(), rows = (c.plan.max_batch + L - 1) / L * L;
  std::vector<Entry> entries;
  for (const LayerPlan& lp : c.plan.layers) {
    const dsl::Layer& l = *lp.layer;
    bool conv = l.kind == dsl::LayerKind::conv, dense = l.kind == dsl::LayerKind::dense;
    bool pool = l.kind == dsl::LayerKind::maxpool || l.kind == dsl::LayerKind::avgpool;
    if (!conv && !dense && !pool) continue;
    std::string args = pool ? "ws" : "params, ws";
    // A conv fused with the pool after it: the conv's forward is the pair's, as training runs
    // it, and the pool has none.
    if (lp.pool_fused) {
      entries.push_back({l.name, "forward", pooled_forward(c.plan, lp, true) + "(params, ws)", L,
                         pooled_forward_flops(c.plan, lp) * L, true, false});
    } else if (!fused_conv_before(c.plan, lp)) {
      entries.push_back({l.name, "forward", fmt::format("{}_forward({})", l.name, args), L,
                         flops_of(lp, Pass::forward) * L, !pool, false});
    }
    if (lp.needs_dx) {
      Pass pass = pool ? Pass::backward : Pass::backward_data;
      entries.push_back({l.name, "backward_data",
                         fmt::format("{}_{}({})", l.name, name_of(pass), args), L,
                         flops_of(lp, pass) * L, !pool, false});
    }
    if (l.trainable()) {
      int64_t samples = conv ? L : rows;
      entries.push_back({l.name, "backward_weights",
                         conv ? fmt::format("{}_backward_weights(params, ws)", l.name)
                              : fmt::format("{}_backward_weights(grads, ws, {})", l.name, rows),
                         samples, flops_of(lp, Pass::backward_weights) * samples, conv, dense});
    }
  }
  c.w.comment(
      "The layer functions behind one signature (cnnc_kernel), for cnnc_<model>_kernels: a "
      "benchmark times them\none by one on a workspace that train() filled. FLOPs are per call.");
  for (const Entry& e : entries) {
    c.w.function("static {} void kernel_{}_{}(const float* params, float* grads, void* workspace)",
                 c.target(), e.layer, e.phase);
    c.w.line("float* ws = (float*)workspace;");
    if (!e.params) c.w.line("(void)params;");
    if (!e.grads) c.w.line("(void)grads;");
    c.w.line("{};", e.call);
    c.w.close();
  }
  c.w.line("static const cnnc_kernel kernels[{}] = {{", std::max<size_t>(entries.size(), 1));
  for (const Entry& e : entries)
    c.w.line("    {{\"{}\", \"{}\", kernel_{}_{}, {}, {}.0}},", e.layer, e.phase, e.layer, e.phase,
             e.samples, e.flops);
  if (entries.empty()) c.w.line("    {{\"\", \"\", nullptr, 0, 0.0}},");
  c.w.line("}};");
  c.w.line("static const int32_t kernel_count = {};", entries.size());
  c.w.blank();
}

// cnnc_model::dense_weights: the step's weight gradient of one dense layer by units, from the
// slices' workspaces (emit_dense.cpp's <layer>_step_weights).
void emit_dense_weights(EmitContext& c) {
  c.w.comment(
      "The weight gradient of dense layer `layer` for units [unit_begin, unit_end) of the step "
      "whose slices\nran train with defer_dense_weights, `count` of them: the slices' products "
      "added in order and scaled.");
  c.w.function(
      "static {} void dense_weights(const cnnc_model* model, int32_t layer, const cnnc_pass* "
      "passes, int32_t count, float scale, int32_t unit_begin, int32_t unit_end, float* grads)",
      c.target());
  c.w.line("(void)model;");
  c.w.open("switch (layer)");
  for (const LayerPlan& lp : c.plan.layers)
    if (has_step_weights(lp))
      c.w.line(
          "case {}: {}_step_weights(passes, count, scale, unit_begin, unit_end, grads); break;",
          lp.index, lp.layer->name);
  c.w.line("default: break;");
  c.w.close();
  c.w.close();
  c.w.blank();
}

}  // namespace

bool has_step_weights(const LayerPlan& lp) {
  return lp.layer->kind == dsl::LayerKind::dense && lp.layer->trainable();
}

bool has_dense_weights(const Plan& plan) {
  return std::any_of(plan.layers.begin(), plan.layers.end(), has_step_weights);
}

void emit_drivers(EmitContext& c) {
  emit_load_block(c);
  emit_slice_edges(c);
  emit_output_block(c);
  if (c.plan.prepared_floats > 0) emit_convert_weights(c);
  emit_driver(c, true);
  emit_driver(c, false);
  if (has_dense_weights(c.plan)) emit_dense_weights(c);
  emit_kernel_table(c);
}

}  // namespace cnnc::codegen
