// Settings written into .cnn text: the text a user would have written by hand, checked by the
// front end; names that do not exist are refused with what does.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "dsl/frontend.hpp"
#include "dsl/variant.hpp"
#include "experiment/variants.hpp"

using namespace cnnc;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(CNNC_SOURCE_DIR "/" + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

dsl::Edited apply(const std::string& text, std::vector<dsl::Setting> settings) {
  return dsl::apply_settings("m.cnn", text, settings);
}

std::optional<dsl::Graph> check(const std::string& text) {
  dsl::SourceFile f("m.cnn", text);
  dsl::Diagnostics d(f);
  return dsl::analyze(f, {}, d);
}

const std::string small =
    "model small\ninput 28x28x1\nconv 4 3x3 relu  # the first\nmaxpool 2x2\ndense 10 softmax\n"
    "optimizer sgd lr=0.05 momentum=0.9 weight_decay=0.001\n";

}  // namespace

TEST_CASE("layer settings replace the argument the layer's name and field address") {
  CHECK(apply(small, {{"conv1.filters", "8"}}).text ==
        "model small\ninput 28x28x1\nconv 8 3x3 relu  # the first\nmaxpool 2x2\n"
        "dense 10 softmax\noptimizer sgd lr=0.05 momentum=0.9 weight_decay=0.001\n");
  dsl::Edited e = apply(small, {{"conv1.kernel", "5x5"},
                                {"conv1.pad", "same"},
                                {"conv1.activation", "tanh"},
                                {"maxpool1.stride", "1"},
                                {"dense1.units", "12"}});
  REQUIRE(e.error.empty());
  CHECK(e.text ==
        "model small\ninput 28x28x1\nconv 4 5x5 tanh pad=same  # the first\nmaxpool 2x2 "
        "stride=1\ndense 12 softmax\noptimizer sgd lr=0.05 momentum=0.9 weight_decay=0.001\n");
  // conv 4 5x5 same: 28x28x4 = 4*25+4 params; maxpool stride 1: 27x27x4; dense 12: 2916*12+12.
  std::optional<dsl::Graph> g = check(e.text);
  REQUIRE(g);
  CHECK(g->param_count == 4 * 25 + 4 + 27 * 27 * 4 * 12 + 12);
}

TEST_CASE("training settings replace a statement's value or option, or add the statement") {
  CHECK(apply(small, {{"lr", "0.1"}})
            .text.ends_with("optimizer sgd lr=0.1 momentum=0.9 weight_decay=0.001\n"));
  CHECK(apply(small, {{"batch", "32"}}).text.ends_with("weight_decay=0.001\nbatch 32\n"));
  CHECK(apply(small, {{"augment.shift", "2"}}).text.ends_with("\naugment shift=2\n"));
  // A new optimizer starts from its own defaults; weight decay means the same to both. lr is
  // applied after it, whatever the order given.
  dsl::Edited adam = apply(small, {{"lr", "0.003"}, {"optimizer", "adam"}});
  REQUIRE(adam.error.empty());
  CHECK(adam.text.ends_with("\noptimizer adam weight_decay=0.001 lr=0.003\n"));
  std::optional<dsl::Graph> g = check(adam.text);
  REQUIRE(g);
  CHECK(g->training.optimizer.kind == dsl::OptimizerKind::adam);
  CHECK(g->training.optimizer.lr == 0.003);
  // The kind it already has leaves the statement as it is.
  CHECK(apply(small, {{"optimizer", "sgd"}}).text == small);
}

TEST_CASE("names that do not exist are refused with the names that do") {
  CHECK(apply(small, {{"conv2.filters", "8"}}).error ==
        "--set conv2.filters: no such setting; the layers of small are conv1, maxpool1, dense1 "
        "(as cnnc summary names them: conv1.filters, dense1.units, ...), the training settings "
        "batch, epochs, validation, loss, optimizer, schedule, lr, momentum, weight_decay, "
        "beta1, beta2, eps, augment.shift, augment.rotate, augment.scale, schedule.every, "
        "schedule.gamma");
  CHECK(apply(small, {{"conv1.filter", "8"}}).error ==
        "--set conv1.filter: layer conv1 ('conv 4 3x3 relu') has the settings filters, kernel, "
        "stride, pad, activation");
  CHECK(apply(small, {{"seed", "3"}}).error.find("(seeds are chosen with --seeds)") !=
        std::string::npos);
  CHECK(apply(small, {{"conv1.filters", "8 relu"}}).error ==
        "--set conv1.filters=8 relu: a value is one number, shape or word (8, 0.05, 5x5, same)");
}

TEST_CASE("a value its statement refuses comes back as the checker's diagnostic") {
  CHECK(apply(small, {{"conv1.stride", "0"}}).error ==
        "m.cnn:3:24: error: stride must be positive, found 0\n"
        "    3 | conv 4 3x3 relu stride=0  # the first\n"
        "      |                        ^\n");
}

TEST_CASE("variants: one setting at a time, or every combination with --grid") {
  std::string text = read("models/lenet5.cnn");
  dsl::SourceFile f("models/lenet5.cnn", text);
  dsl::Diagnostics d(f);
  std::optional<dsl::Graph> base = dsl::analyze(f, {}, d);
  REQUIRE(base);
  std::vector<experiment::SetFlag> flags = {experiment::parse_set("conv1.filters=4,8"),
                                            experiment::parse_set("conv2.kernel=5x5,20x20")};
  std::vector<experiment::Variant> one = experiment::make_variants(*base, flags, false, {});
  REQUIRE(one.size() == 4);
  CHECK(one[0].name == "conv1.filters=4");
  CHECK(one[3].name == "conv2.kernel=20x20");
  CHECK(one[0].graph);
  // conv2 reads 14x14 after the first pool: a 20x20 kernel does not fit, as the checker says.
  CHECK_FALSE(one[3].graph);
  CHECK(one[3].diagnostic.starts_with(
      "models/lenet5.cnn [conv2.kernel=20x20]:13:1: error: 'conv 16 20x20' needs an input of "
      "at least 20x20, but receives 14x14x6"));
  std::vector<experiment::Variant> grid = experiment::make_variants(*base, flags, true, {});
  REQUIRE(grid.size() == 4);
  CHECK(grid[1].name == "conv1.filters=4 conv2.kernel=20x20");
  CHECK(grid[2].name == "conv1.filters=8 conv2.kernel=5x5");
  // A value no statement accepts stops the sweep before anything runs.
  CHECK_THROWS_WITH(
      experiment::make_variants(*base, {experiment::parse_set("dropout1.rate=0.5")}, false, {}),
      Catch::Contains("no such setting; the layers of lenet5 are conv1, maxpool1, conv2"));
  CHECK_THROWS_WITH(experiment::parse_set("conv1.filters=4,,8"),
                    "--set conv1.filters=4,,8: an empty value");
}
