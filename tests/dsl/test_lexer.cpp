// Specification of the tokens of the .cnn language (dsl.md, "Shape of a file").
#include <catch2/catch.hpp>

#include "dsl/lexer.hpp"

using namespace cnnc::dsl;

namespace {

std::vector<Token> tokens_of(const std::string& text, int* errors = nullptr) {
  static std::vector<SourceFile> keep;  // tokens point into the file's text
  keep.reserve(64);
  keep.emplace_back("lex.cnn", text);
  Diagnostics diags(keep.back());
  auto tokens = lex(keep.back(), diags);
  if (errors) *errors = static_cast<int>(diags.sorted().size());
  return tokens;
}

std::vector<TokenKind> kinds(const std::vector<Token>& tokens) {
  std::vector<TokenKind> out;
  for (const Token& t : tokens) out.push_back(t.kind);
  return out;
}

}  // namespace

TEST_CASE("a statement lexes into a keyword, values and a newline") {
  auto t = tokens_of("conv 6 5x5 pad=same relu # a comment\n");
  using K = TokenKind;
  CHECK(kinds(t) == std::vector<K>{K::word, K::integer, K::shape, K::word, K::equals, K::word,
                                   K::word, K::newline, K::eof});
  CHECK(t[2].text == "5x5");
  CHECK(t[2].range.begin == 7);
  CHECK(t[2].range.end == 10);
}

TEST_CASE("numbers: integers, signs, decimals and exponents") {
  auto t = tokens_of("lr=0.05 eps=1e-8 a=-3 b=+2 c=.5 d=5. e=-2.5E+3");
  std::vector<std::pair<TokenKind, std::string_view>> values;
  for (const Token& tok : t)
    if (tok.kind == TokenKind::integer || tok.kind == TokenKind::number)
      values.emplace_back(tok.kind, tok.text);
  using K = TokenKind;
  CHECK(values == std::vector<std::pair<K, std::string_view>>{{K::number, "0.05"},
                                                              {K::number, "1e-8"},
                                                              {K::integer, "-3"},
                                                              {K::integer, "+2"},
                                                              {K::number, ".5"},
                                                              {K::number, "5."},
                                                              {K::number, "-2.5E+3"}});
}

TEST_CASE("shapes have two or three dimensions joined by x") {
  auto t = tokens_of("input 28x28x1");
  REQUIRE(t[1].kind == TokenKind::shape);
  CHECK(t[1].text == "28x28x1");
}

TEST_CASE("lists are brackets, numbers and commas, spaces allowed") {
  auto t = tokens_of("[-1, 0,1]");
  using K = TokenKind;
  CHECK(kinds(t) == std::vector<K>{K::lbracket, K::integer, K::comma, K::integer, K::comma,
                                   K::integer, K::rbracket, K::newline, K::eof});
}

TEST_CASE("a file without a final newline still ends its last statement") {
  auto t = tokens_of("dense 10");
  using K = TokenKind;
  CHECK(kinds(t) == std::vector<K>{K::word, K::integer, K::newline, K::eof});
}

TEST_CASE("CRLF line endings and tabs are blank space") {
  auto t = tokens_of("conv\t6\t5x5\r\ndense 10\r\n");
  using K = TokenKind;
  CHECK(kinds(t) == std::vector<K>{K::word, K::integer, K::shape, K::newline, K::word, K::integer,
                                   K::newline, K::eof});
}

TEST_CASE("malformed numbers and stray characters are reported, once each") {
  int errors = 0;
  auto t = tokens_of("conv 6 5x dense 1.2.3 @ 3px", &errors);
  CHECK(errors == 4);
  CHECK(std::count_if(t.begin(), t.end(),
                      [](const Token& k) { return k.kind == TokenKind::invalid; }) == 4);
}

TEST_CASE("a file that is not UTF-8 text yields no tokens and one error") {
  int errors = 0;
  auto t = tokens_of(std::string("model x\0y", 9), &errors);
  CHECK(errors == 1);
  CHECK(kinds(t) == std::vector<TokenKind>{TokenKind::eof});
  t = tokens_of("model caf\xe9\n", &errors);
  CHECK(errors == 1);
  CHECK(kinds(t) == std::vector<TokenKind>{TokenKind::eof});
  t = tokens_of("# \xc0\xaf overlong\n", &errors);  // an overlong encoding of '/'
  CHECK(errors == 1);
}
