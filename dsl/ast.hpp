// The syntax tree of a .cnn file: statements of a keyword and arguments, nothing checked yet.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "dsl/source.hpp"

namespace cnnc::dsl {

struct Value {
  enum class Kind { integer, number, shape, word, list };
  Kind kind = Kind::integer;
  Range range;
  std::string_view text;      // the source slice, for messages
  int64_t integer = 0;        // integer
  double number = 0;          // number, and integer as a number
  std::vector<int64_t> dims;  // shape: 2 or 3 dimensions as written
  std::vector<double> list;   // list
  bool is_number() const { return kind == Kind::integer || kind == Kind::number; }
};

// A positional value, or name=value.
struct Arg {
  std::optional<std::string_view> name;
  Range name_range;
  Value value;
  Range range;  // the whole argument
};

struct Statement {
  std::string_view keyword;
  Range keyword_range;
  std::vector<Arg> args;
  Range range;          // keyword to last argument, without comment or blank space
  bool broken = false;  // the parser reported an error in this statement's arguments
};

struct Ast {
  std::vector<Statement> statements;
};

}  // namespace cnnc::dsl
