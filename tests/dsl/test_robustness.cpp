// Robustness: thousands of mutated and random inputs each end in a clean error or a valid
// Graph, never a crash, a hang or a Graph returned alongside an error.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dsl/frontend.hpp"
#include "dsl/lexer.hpp"

namespace fs = std::filesystem;
using namespace cnnc::dsl;

namespace {

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  for (const char* dir : {"models", "tests/dsl/errors"})
    for (const auto& e : fs::directory_iterator(fs::path(CNNC_SOURCE_DIR) / dir)) {
      if (e.path().extension() != ".cnn") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      out.push_back(s.str());
    }
  std::sort(out.begin(), out.end());
  return out;
}

// One property for every input: the front end answers, and its answer is consistent.
void check_one(const std::string& text) {
  SourceFile file("fuzz.cnn", text);
  Diagnostics diags(file);
  std::optional<Graph> g = analyze(file, {}, diags);
  REQUIRE(g.has_value() != diags.has_errors());
  for (const Diagnostic& d : diags.sorted()) {
    REQUIRE(d.range.begin <= text.size());
    REQUIRE(d.range.end <= text.size());
    std::string r = render(file, d);
    REQUIRE(r.rfind("fuzz.cnn:", 0) == 0);
    render_json(file, d);
  }
  if (g) {
    REQUIRE_FALSE(g->layers.empty());
    for (const Layer& l : g->layers) {
      REQUIRE(l.out.size() > 0);
      REQUIRE(l.weight_offset + l.weight_count <= g->param_floats);
    }
  }
}

const std::string_view fragments[] = {"conv",
                                      "dense",
                                      "maxpool",
                                      "avgpool",
                                      "flatten",
                                      "dropout",
                                      "relu",
                                      "softmax",
                                      "model",
                                      "input",
                                      "batch",
                                      "=",
                                      "[",
                                      "]",
                                      ",",
                                      "x",
                                      "0",
                                      "-1",
                                      "1e9",
                                      "99999999999",
                                      "3x3",
                                      "28x28x1",
                                      "pad=same",
                                      "stride=",
                                      "weights=sobel",
                                      "#",
                                      "\n",
                                      "\t",
                                      "\r",
                                      "\xc3\xa9",
                                      "\xff",
                                      std::string_view("\0", 1),
                                      "0.5",
                                      ".",
                                      "optimizer adam",
                                      "augment shift=",
                                      "schedule step every=1"};

}  // namespace

TEST_CASE("mutated models and random text never crash the front end") {
  std::vector<std::string> base = seeds();
  REQUIRE(base.size() > 10);
  std::mt19937 rng(12345);  // fixed: a failure reproduces
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int runs = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string s = base[pick(base.size())];
    int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      size_t at = s.empty() ? 0 : pick(s.size() + 1);
      switch (pick(5)) {
        case 0:
          if (!s.empty() && at < s.size()) s[at] = static_cast<char>(pick(256));
          break;
        case 1: s.insert(at, fragments[pick(std::size(fragments))]); break;
        case 2:
          if (at < s.size()) s.erase(at, 1 + pick(8));
          break;
        case 3: s.resize(at); break;
        default: s.insert(at, s.substr(pick(s.size() + 1) / 2, pick(40))); break;
      }
    }
    check_one(s);
    ++runs;
  }
  for (int i = 0; i < 1000; ++i) {
    std::string s(pick(200), '\0');
    for (char& c : s) c = static_cast<char>(i % 2 ? pick(256) : 32 + pick(95));
    check_one(s);
    ++runs;
  }
  CHECK(runs == 5000);
}

TEST_CASE("a file over the size limit is refused without being parsed") {
  std::string huge(max_source_bytes + 1, '#');
  SourceFile file("huge.cnn", huge);
  Diagnostics diags(file);
  CHECK_FALSE(analyze(file, {}, diags));
  REQUIRE(diags.sorted().size() == 1);
  CHECK(diags.sorted()[0].message.find("at most 1048576 bytes") != std::string::npos);
}
