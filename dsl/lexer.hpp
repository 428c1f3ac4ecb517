// The lexer: .cnn text to tokens that are slices of the source.
#pragma once

#include <string_view>
#include <vector>

#include "dsl/diagnostics.hpp"

namespace cnnc::dsl {

enum class TokenKind {
  word,      // [A-Za-z_][A-Za-z0-9_]*; upper case is lexed so that the checker can say why not
  integer,   // -?[0-9]+
  number,    // a decimal with a '.' or an exponent: 0.05, 1e-8, -.5
  shape,     // 5x5, 28x28x1
  lbracket,  // [
  rbracket,  // ]
  comma,     // ,
  equals,    // =
  invalid,   // a run the lexer reported; the parser skips its statement silently
  newline,   // ends a statement
  eof,
};

struct Token {
  TokenKind kind;
  Range range;
  std::string_view text;
};

const char* token_kind_name(TokenKind kind);

// Splits a file into tokens. Comments and blank space vanish; every line ends in a newline
// token and the list in eof. Lexical errors (a stray character, a malformed number, bytes
// that are not UTF-8 text) are reported and the offending characters skipped; a file that is
// not text at all yields only eof.
std::vector<Token> lex(const SourceFile& file, Diagnostics& diags);

// The largest .cnn file cnnc reads; anything bigger is not a model description.
inline constexpr size_t max_source_bytes = 1 << 20;

}  // namespace cnnc::dsl
