// Specification of what each .cnn statement means once checked (dsl.md), as Graph fields.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>

#include "check_text.hpp"

using namespace cnnc::dsl;
using cnnc::test::check_text;
using cnnc::test::graph_of;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(std::string(CNNC_SOURCE_DIR) + "/" + path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string head = "model m\ninput 28x28x1\n";

}  // namespace

TEST_CASE("the shipped models have the parameter counts of their papers") {
  CHECK(graph_of(read("models/lenet5.cnn")).param_count == 61706);
  CHECK(graph_of(read("models/keras_mnist.cnn")).param_count == 1199882);
  CHECK(graph_of(read("models/mlp.cnn")).param_count ==
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  Graph edges = graph_of(read("models/edges.cnn"));
  CHECK(edges.param_count == 20);
  CHECK(edges.trainable_params == 0);
}

TEST_CASE("lenet5: shapes, names, FLOPs and the training statements") {
  Graph g = graph_of(read("models/lenet5.cnn"));
  CHECK(g.name == "lenet5");
  CHECK(g.input == Shape{28, 28, 1, false});
  std::vector<std::string> names, shapes;
  for (const Layer& l : g.layers) {
    names.push_back(l.name);
    shapes.push_back(l.out.str());
  }
  CHECK(names == std::vector<std::string>{"conv1", "maxpool1", "conv2", "maxpool2", "dense1",
                                          "dense2", "dense3"});
  CHECK(shapes ==
        std::vector<std::string>{"28x28x6", "14x14x6", "10x10x16", "5x5x16", "120", "84", "10"});
  // conv1: 28*28 outputs x 6 filters x 25 taps = 117,600 multiply-adds, plus bias and relu.
  CHECK(g.layers[0].forward_flops == 2 * 117600 + 2 * 28 * 28 * 6);
  std::string text = read("models/lenet5.cnn");
  CHECK(g.layers[0].line ==
        1 + std::count(text.begin(), text.begin() + static_cast<long>(text.find("conv 6 5x5")),
                       '\n'));
  CHECK(g.layers[0].statement == "conv 6 5x5 pad=same relu");
  CHECK(g.training.optimizer.kind == OptimizerKind::sgd);
  CHECK(g.training.optimizer.lr == 0.05);
  CHECK(g.training.batch == 64);
  CHECK(g.training.epochs == 10);
  CHECK(g.training.optimizer.weight_decay == 0.0005);
  CHECK(g.training.schedule.kind == ScheduleKind::cosine);
  // Training counts the work done: conv1 computes its weight gradient and its relu's derivative
  // but no input gradient (nothing reads it); every later layer computes its input gradient.
  CHECK_FALSE(g.layers[0].needs_input_grad);
  // Forward, the relu's derivative and the weight gradient: twice the forward pass.
  CHECK(g.layers[0].training_flops == 2 * (2 * 117600 + 2 * 28 * 28 * 6));
  CHECK(g.layers[2].needs_input_grad);
  // conv2: 10*10 outputs x 16 filters x 25 taps x 6 channels = 240,000 multiply-adds.
  // Those, and the input gradient's 240,000 multiply-adds more.
  CHECK(g.layers[2].training_flops == 2 * g.layers[2].forward_flops + 2 * 240000);
  // So the step is a little under 3x the forward pass (docs/design.md: 2.30 MFLOP per image).
  CHECK(g.training_flops == Approx(2.30e6).epsilon(0.01));
}

TEST_CASE("receptive fields and jumps grow as stacked windows and strides say") {
  // Each window adds (kernel - 1) x the jump so far; each stride multiplies the jump; a dense
  // layer's window is every position of its input.
  Graph g = graph_of(read("models/lenet5.cnn"));
  std::vector<std::array<int64_t, 2>> fields, jumps;
  for (const Layer& l : g.layers) {
    fields.push_back({l.receptive_h, l.receptive_w});
    jumps.push_back({l.jump_h, l.jump_w});
  }
  using A = std::array<int64_t, 2>;
  CHECK(fields == std::vector<A>{{5, 5}, {6, 6}, {14, 14}, {16, 16}, {32, 32}, {32, 32}, {32, 32}});
  CHECK(jumps == std::vector<A>{{1, 1}, {2, 2}, {2, 2}, {4, 4}, {4, 4}, {4, 4}, {4, 4}});
  Graph strided = graph_of(head + "conv 4 3x5 stride=2x1\nflatten\ndense 10 softmax\n");
  // 28x28 input: the conv gives 13x24 positions, 2 rows and 1 column apart, which the dense
  // layer reads all of: 3 + 12 x 2 rows and 5 + 23 x 1 columns, the whole image.
  CHECK(strided.layers[0].receptive_h == 3);
  CHECK(strided.layers[0].receptive_w == 5);
  CHECK(strided.layers[0].jump_h == 2);
  CHECK(strided.layers[0].jump_w == 1);
  CHECK(strided.layers[2].receptive_h == 27);
  CHECK(strided.layers[2].receptive_w == 28);
}

TEST_CASE("training defaults when no training statement is given (dsl.md)") {
  Graph g = graph_of(head + "dense 10 softmax\n");
  const Training& t = g.training;
  CHECK(t.loss == Loss::cross_entropy);
  CHECK(t.optimizer.kind == OptimizerKind::sgd);
  CHECK(t.optimizer.lr == 0.01);
  CHECK(t.optimizer.momentum == 0.9);
  CHECK(t.optimizer.weight_decay == 0);
  CHECK(t.batch == 64);
  CHECK(t.epochs == 10);
  CHECK(t.seed == 1);
  CHECK(t.validation == 0);
  CHECK_FALSE(t.augment.enabled());
  CHECK(t.schedule.kind == ScheduleKind::constant);
  CHECK(t.precision == Precision::fp32);
}

TEST_CASE("every training statement and option") {
  Graph g = graph_of(
      head +
      "dense 10\nloss mse\noptimizer adam beta1=0.8 beta2=0.99 eps=1e-7 weight_decay=0.0005\nbatch "
      "32\nepochs 3\nseed 42\n"
      "validation 0.1\naugment shift=2 rotate=10 scale=0.1\nschedule step every=2 gamma=0.5\n");
  const Training& t = g.training;
  CHECK(t.loss == Loss::mse);
  CHECK(t.optimizer.kind == OptimizerKind::adam);
  CHECK(t.optimizer.lr == 0.001);  // Adam's own default
  CHECK(t.optimizer.beta1 == 0.8);
  CHECK(t.optimizer.beta2 == 0.99);
  CHECK(t.optimizer.eps == 1e-7);
  CHECK(t.optimizer.weight_decay == 0.0005);
  CHECK(t.batch == 32);
  CHECK(t.epochs == 3);
  CHECK(t.seed == 42);
  CHECK(t.validation == 0.1);
  CHECK(t.augment.shift == 2);
  CHECK(t.augment.rotate == 10);
  CHECK(t.augment.scale == 0.1);
  CHECK(t.schedule.kind == ScheduleKind::step);
  CHECK(t.schedule.every == 2);
  CHECK(t.schedule.gamma == 0.5);
  CHECK(graph_of(head +
                 "dense 10\nschedule cosine\noptimizer sgd lr=0.1 momentum=0 weight_decay=0.01\n")
            .training.schedule.kind == ScheduleKind::cosine);
  CHECK(graph_of(head + "dense 10\nschedule step every=3\n").training.schedule.gamma == 0.1);
  Schedule one = graph_of(head + "dense 10\nschedule onecycle warmup=0.25\n").training.schedule;
  CHECK(one.kind == ScheduleKind::onecycle);
  CHECK(one.warmup == 0.25);
  CHECK(graph_of(head + "dense 10\nschedule onecycle\n").training.schedule.warmup == 0);
  CHECK(graph_of(head + "dense 10\nprecision bf16\n").training.precision == Precision::bf16);
  CHECK(graph_of(head + "dense 10\nprecision fp32\n").training.precision == Precision::fp32);
}

TEST_CASE("training statements may come in any order, also between layers") {
  Graph g = graph_of("model m\nbatch 16\ninput 8x8x1\nepochs 2\ndense 4\nseed 7\n");
  CHECK(g.training.batch == 16);
  CHECK(g.training.epochs == 2);
  CHECK(g.training.seed == 7);
}

TEST_CASE("every layer kind and option") {
  Graph g = graph_of(
      "model all\ninput 32x30x3\n"
      "conv 8 3x3 stride=2 pad=same tanh\n"    // 16x15x8
      "conv 8 2x3 stride=1x2 pad=1 sigmoid\n"  // (16+2-2)/1+1=17, (15+2-3)/2+1=8
      "avgpool 3x2 stride=2\n"                 // (17-3)/2+1=8, (8-2)/2+1=4
      "maxpool 2x2 stride=1\n"                 // 7x3x8
      "relu\nsigmoid\ntanh\ndropout 0\n"
      "flatten\n"
      "dense 16 linear\n"
      "dropout 0.5\n"
      "dense 4\n"
      "softmax\n");
  std::vector<std::string> shapes;
  for (const Layer& l : g.layers) shapes.push_back(l.out.str());
  CHECK(shapes == std::vector<std::string>{"16x15x8", "17x8x8", "8x4x8", "7x3x8", "7x3x8", "7x3x8",
                                           "7x3x8", "7x3x8", "168", "16", "16", "4", "4"});
  CHECK(g.layers[0].activation == Activation::tanh);
  CHECK(g.layers[0].stride_h == 2);
  CHECK(g.layers[1].stride_w == 2);
  CHECK(g.layers[1].activation == Activation::sigmoid);
  CHECK(g.layers[2].kind == LayerKind::avgpool);
  CHECK(g.layers[4].kind == LayerKind::activation);
  CHECK(g.layers[4].activation == Activation::relu);
  CHECK(g.layers[4].name == "relu1");
  CHECK(g.layers[7].rate == 0);
  CHECK(g.layers[10].rate == 0.5);
  CHECK(g.layers[12].activation == Activation::softmax);
  CHECK(g.layers[0].weight_count == 8 * 3 * 3 * 3);
  CHECK(g.layers[9].weight_count == 168 * 16);
}

TEST_CASE("conv and pool output sizes against hand-computed values") {
  // {input, kernel, stride, pad, expected output}; pad -1 means pad=same.
  struct Case {
    int in, k, s, pad, out, pad_before, pad_after;
  };
  const Case cases[] = {// valid: floor((in - k) / s) + 1
                        {28, 5, 1, 0, 24, 0, 0},
                        {28, 5, 2, 0, 12, 0, 0},
                        {28, 5, 3, 0, 8, 0, 0},
                        {7, 3, 2, 0, 3, 0, 0},
                        {5, 5, 3, 0, 1, 0, 0},
                        // same: ceil(in / s), the odd pixel of padding at the bottom/right
                        {28, 5, 1, -1, 28, 2, 2},
                        {28, 4, 1, -1, 28, 1, 2},
                        {28, 3, 2, -1, 14, 0, 1},
                        {27, 3, 2, -1, 14, 1, 1},
                        {28, 5, 3, -1, 10, 2, 2},
                        {5, 1, 3, -1, 2, 0, 0},
                        // explicit: floor((in + 2P - k) / s) + 1
                        {28, 5, 1, 2, 28, 2, 2},
                        {28, 3, 2, 1, 14, 1, 1},
                        {10, 3, 3, 1, 4, 1, 1},
                        {4, 7, 1, 2, 2, 2, 2}};
  for (const Case& c : cases) {
    std::string pad = c.pad < 0 ? "same" : std::to_string(c.pad);
    std::string text = "model m\ninput " + std::to_string(c.in) + "x" + std::to_string(c.in) +
                       "x1\nconv 1 " + std::to_string(c.k) + "x" + std::to_string(c.k) +
                       " stride=" + std::to_string(c.s) + " pad=" + pad + "\n";
    INFO(text);
    Graph g = graph_of(text);
    const Layer& l = g.layers[0];
    CHECK(l.out.h == c.out);
    CHECK(l.out.w == c.out);
    CHECK(l.pad_top == c.pad_before);
    CHECK(l.pad_left == c.pad_before);
    CHECK(l.pad_bottom == c.pad_after);
    CHECK(l.pad_right == c.pad_after);
  }
}

TEST_CASE("pool stride defaults to the window, and may be set") {
  CHECK(graph_of(head + "maxpool 3x3\n").layers[0].out.str() == "9x9x1");
  CHECK(graph_of(head + "maxpool 3x3 stride=2\n").layers[0].out.str() == "13x13x1");
  CHECK(graph_of(head + "avgpool 2\n").layers[0].out.str() == "14x14x1");
}

TEST_CASE("weights=, bias= and frozen fix a conv's parameters") {
  Graph g = graph_of(
      "model e\ninput 4x4x1\nconv 2 3x3 weights=sobel frozen\nconv 1 1x1 weights=[0.5,-1.5] "
      "bias=[0.25]\n");
  const Layer& sobel = g.layers[0];
  CHECK(sobel.frozen);
  CHECK_FALSE(sobel.trainable());
  REQUIRE(sobel.initial_weights.size() == 18);
  CHECK(sobel.initial_weights[0] == -1);      // top-left of the d/dx filter
  CHECK(sobel.initial_weights[9 + 1] == -2);  // top-centre of the d/dy filter
  const Layer& lin = g.layers[1];
  CHECK(lin.initial_weights == std::vector<float>{0.5f, -1.5f});
  CHECK(lin.initial_bias == std::vector<float>{0.25f});
  CHECK(lin.trainable());
  CHECK(g.trainable_params == 3);
  CHECK(graph_of("model l\ninput 8x8x1\nconv 1 3x3 weights=laplacian\n")
            .layers[0]
            .initial_weights[4] == -4);
}

TEST_CASE("parameters are laid out in order, each tensor 64-byte aligned") {
  Graph g = graph_of(head + "conv 6 5x5\ndense 10\n");
  const Layer& c = g.layers[0];
  const Layer& d = g.layers[1];
  CHECK(c.weight_offset == 0);
  CHECK(c.weight_count == 150);
  CHECK(c.bias_offset == 160);
  CHECK(d.weight_offset == 176);
  CHECK(d.weight_count == 24 * 24 * 6 * 10);
  CHECK(d.bias_offset == 176 + 34560);
  CHECK(g.param_count == 150 + 6 + 34560 + 10);
  CHECK(g.param_floats == 176 + 34560 + 16);
  for (const Layer& l : g.layers) {
    CHECK(l.weight_offset % 16 == 0);
    CHECK(l.bias_offset % 16 == 0);
  }
}

TEST_CASE("dense flattens its input itself, so flatten is optional") {
  CHECK(graph_of(head + "dense 10\n").layers[0].weight_count == 7840);
  CHECK(graph_of(head + "flatten\ndense 10\n").layers[1].weight_count == 7840);
}

TEST_CASE("the limits refuse a model with the figure and accept it when raised") {
  std::string big = head + "dense 100\n";  // 78,500 parameters
  Limits tight;
  tight.max_params = 50000;
  auto c = check_text(big, tight);
  CHECK_FALSE(c.graph);
  CHECK(c.diagnostics.find("the model has 78,500 parameters, over the limit of 50,000") !=
        std::string::npos);
  CHECK(c.diagnostics.find("--max-params") != std::string::npos);
  tight.max_params = 78500;
  CHECK(check_text(big, tight).graph);
}

TEST_CASE("a model name can only ever be a checked identifier") {
  for (std::string bad : {"model Foo", "model foo-bar", "model 1abc", "model int", "model std",
                          "model a__b", "model _x", "model x;y", "model \"x\"", "model x/**/"}) {
    INFO(bad);
    auto c = check_text(bad + "\ninput 4x4x1\ndense 2\n");
    CHECK_FALSE(c.graph);
    CHECK(c.errors >= 1);
  }
  CHECK(graph_of("model a_1\ninput 4x4x1\ndense 2\n").name == "a_1");
}

TEST_CASE("comments, blank lines and odd spacing change nothing") {
  Graph a = graph_of("model m\ninput 8x8x1\nconv 2 3x3 relu\ndense 4\n");
  Graph b =
      graph_of("# header\n\nmodel m   # name\n\t input 8x8x1\n\n  conv\t2 3x3   relu # c\ndense 4");
  CHECK(a.param_count == b.param_count);
  CHECK(a.layers.size() == b.layers.size());
  CHECK(a.layers[0].out == b.layers[0].out);
}
