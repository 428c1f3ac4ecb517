// Index expressions and loops of generated code, with their constants folded: an offset prints as
// "k0 * 9 + 3" or "48", never "0 * 2 + k0 + 0", and a loop of one iteration becomes its body with
// the index a constant, so the text a reader audits holds no arithmetic the generator could do.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codegen/writer.hpp"

namespace cnnc::codegen {

// An integer expression of generated code: variables times constants, plus a constant.
class Expr {
 public:
  Expr(int64_t constant = 0) : constant_(constant) {}  // implicit: an offset of 48 is an Expr
  static Expr var(std::string name);                   // a variable of generated code
  Expr operator+(const Expr& other) const;
  Expr operator*(int64_t factor) const;
  // Folded: terms in order of first use, no zero term, no factor of 1; "0" when nothing is left.
  std::string str() const;
  // The value, when no variable is left in it.
  std::optional<int64_t> value() const;

 private:
  std::vector<std::pair<std::string, int64_t>> terms_;  // variable, factor
  int64_t constant_ = 0;
};

// A condition of generated code, folded like Expr: "true", "false", or its text.
struct Condition {
  std::string text;
  bool is(bool value) const { return text == (value ? "true" : "false"); }
};
Condition constant(bool value);
Condition is_zero(const Expr& index);
Condition at_least(const Expr& index, int64_t bound);  // for an index that is never negative
Condition below(const Expr& index, int64_t bound);     // the same
Condition any_of(const Condition& a, const Condition& b);
Condition all_of(const Condition& a, const Condition& b);
// A condition that code tests more than once as a named bool, declared (with the comment why)
// unless it is constant.
Condition named(Writer& w, const std::string& name, const Condition& c, const std::string& why);

// body's lines under `if (c)`; alone when c is true, none when it is false.
void emit_if(Writer& w, const Condition& c, const std::function<void()>& body);

// A pointer plus an offset: "w + k0 * 9", or "w" alone when the offset is 0.
std::string at(std::string_view base, const Expr& offset);

// for (int var = start; var < start + count * step; var += step) { body(var) }, count a constant.
// One iteration is a block (to scope its declarations) whose index is the constant start, passed
// to body in place of the variable; no iteration writes nothing.
void emit_loop(Writer& w, const std::string& var, int64_t count,
               const std::function<void(const Expr& index)>& body, const Expr& start = 0,
               int64_t step = 1);

// The same for one statement: `<prefix>for (...) statement;`, or `<prefix>statement;` with the
// index folded when count is 1. prefix is a guard such as "if (training) ".
void emit_loop_line(Writer& w, std::string_view prefix, const std::string& var, int64_t count,
                    const std::function<std::string(const Expr& index)>& statement,
                    const Expr& start = 0, int64_t step = 1);

// Items [0, total) `size` at a time: a loop over the full blocks, then the rest; body(count,
// first) writes one block of count items whose first item is `first` (the loop's variable `var`,
// or a constant).
void emit_blocks(Writer& w, const std::string& var, int64_t total, int64_t size,
                 const std::function<void(int64_t count, const Expr& first)>& body);

}  // namespace cnnc::codegen

template <>
struct fmt::formatter<cnnc::codegen::Expr> : fmt::formatter<std::string> {
  auto format(const cnnc::codegen::Expr& e, format_context& context) const {
    return fmt::formatter<std::string>::format(e.str(), context);
  }
};
