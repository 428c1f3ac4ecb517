// The full text of every diagnostic, against approved golden files.
//
// Each tests/dsl/errors/NAME.cnn is a model with mistakes; NAME.expected holds exactly what
// `cnnc check` prints for it. A mismatch writes NAME.unapproved beside it and fails; to approve
// a deliberate change, review the .unapproved file and rename it, or run with CNNC_APPROVE=1.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "check_text.hpp"
#include "dsl/diagnostics.hpp"

namespace fs = std::filesystem;
using cnnc::test::check_text;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("every error file prints exactly its approved diagnostics") {
  fs::path dir = fs::path(CNNC_SOURCE_DIR) / "tests/dsl/errors";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".cnn") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 40);
  bool approve = std::getenv("CNNC_APPROVE") != nullptr;
  for (const fs::path& f : files) {
    DYNAMIC_SECTION(f.filename().string()) {
      auto c = check_text(read(f), {}, "tests/dsl/errors/" + f.filename().string());
      CHECK_FALSE(c.graph);
      CHECK(c.errors >= 1);
      fs::path expected = fs::path(f).replace_extension(".expected");
      fs::path unapproved = fs::path(f).replace_extension(".unapproved");
      if (approve) write(expected, c.diagnostics);
      std::string want =
          fs::exists(expected) ? read(expected) : std::string("(no .expected file)\n");
      if (c.diagnostics != want)
        write(unapproved, c.diagnostics);
      else
        fs::remove(unapproved);
      CHECK(c.diagnostics == want);
    }
  }
}

TEST_CASE("the dsl.md example renders as the contract shows") {
  std::string text =
      "model bad\ninput 28x28x1\nconv 16 5x5 relu\nmaxpool 3x3\nmaxpol 2x2\nmaxpool 2x2\nconv 16 "
      "5x5 relu\n";
  auto c = check_text(text, {}, "models/bad.cnn");
  CHECK(c.diagnostics ==
        "models/bad.cnn:5:1: error: unknown layer 'maxpol'; did you mean 'maxpool'?\n"
        "    5 | maxpol 2x2\n"
        "      | ^~~~~~\n"
        "models/bad.cnn:7:1: error: 'conv 16 5x5' needs an input of at least 5x5, but receives "
        "4x4x16\n"
        "    7 | conv 16 5x5 relu\n"
        "      | ^~~~~~~~~~~~~~~~\n"
        "models/bad.cnn:6:1: note: 'maxpool 2x2' produces 4x4x16\n");
}

TEST_CASE("columns count code points, so carets line up after UTF-8 text") {
  auto c = check_text("model m # é\ninput 28x28x1\nconv 6 5x5 stride=0 # ß\n");
  CHECK(c.diagnostics.find("test.cnn:3:19: error: stride must be positive, found 0") !=
        std::string::npos);
}

TEST_CASE("did-you-mean finds close words and only those") {
  using cnnc::dsl::closest;
  std::vector<std::string_view> words = {"conv", "maxpool", "avgpool", "dense", "dropout"};
  CHECK(closest("maxpol", words) == "maxpool");
  CHECK(closest("dens", words) == "dense");
  CHECK(closest("Dense", words) == "dense");
  CHECK(closest("dropuot", words) == "dropout");
  CHECK(closest("xyz", words).empty());
  CHECK(closest("pool", words).empty());
}

TEST_CASE("diagnostics as JSON carry the same facts") {
  cnnc::dsl::SourceFile file("a \"q\".cnn", "model m\ninput 4x4x1\ndense 0\n");
  cnnc::dsl::Diagnostics diags(file);
  CHECK_FALSE(cnnc::dsl::analyze(file, {}, diags));
  auto list = diags.sorted();
  REQUIRE(list.size() == 1);
  CHECK(
      cnnc::dsl::render_json(file, list[0]) ==
      R"({"file":"a \"q\".cnn","line":3,"column":7,"end_column":8,"severity":"error","message":"unit count must be positive, found 0","notes":[],"hint":""})");
}
