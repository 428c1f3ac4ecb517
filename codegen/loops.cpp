// Folding of index expressions, and the loops that pass their index to the body as one.
#include "codegen/loops.hpp"

#include <algorithm>

namespace cnnc::codegen {

Expr Expr::var(std::string name) {
  Expr e;
  e.terms_.push_back({std::move(name), 1});
  return e;
}

Expr Expr::operator+(const Expr& other) const {
  Expr sum = *this;
  for (const auto& [name, factor] : other.terms_) {
    auto same = std::find_if(sum.terms_.begin(), sum.terms_.end(),
                             [&name = name](const auto& term) { return term.first == name; });
    if (same == sum.terms_.end())
      sum.terms_.push_back({name, factor});
    else
      same->second += factor;
  }
  sum.constant_ += other.constant_;
  return sum;
}

Expr Expr::operator*(int64_t factor) const {
  Expr product(constant_ * factor);
  for (const auto& [name, f] : terms_) product.terms_.push_back({name, f * factor});
  return product;
}

std::optional<int64_t> Expr::value() const {
  for (const auto& term : terms_)
    if (term.second != 0) return std::nullopt;
  return constant_;
}

std::string Expr::str() const {
  std::string out;
  for (const auto& [name, factor] : terms_) {
    if (factor == 0) continue;
    if (!out.empty()) out += " + ";
    out += factor == 1 ? name : fmt::format("{} * {}", name, factor);
  }
  if (out.empty()) return std::to_string(constant_);
  if (constant_ > 0) out += fmt::format(" + {}", constant_);
  if (constant_ < 0) out += fmt::format(" - {}", -constant_);
  return out;
}

Condition constant(bool value) {
  return {value ? "true" : "false"};
}

Condition is_zero(const Expr& index) {
  if (std::optional<int64_t> v = index.value()) return constant(*v == 0);
  return {fmt::format("{} == 0", index)};
}

Condition at_least(const Expr& index, int64_t bound) {
  if (bound <= 0) return constant(true);
  if (std::optional<int64_t> v = index.value()) return constant(*v >= bound);
  return {fmt::format("{} >= {}", index, bound)};
}

Condition below(const Expr& index, int64_t bound) {
  if (bound <= 0) return constant(false);
  if (std::optional<int64_t> v = index.value()) return constant(*v < bound);
  return {fmt::format("{} < {}", index, bound)};
}

Condition any_of(const Condition& a, const Condition& b) {
  if (a.is(true) || b.is(false)) return a;
  if (b.is(true) || a.is(false)) return b;
  return {fmt::format("{} || {}", a.text, b.text)};
}

Condition all_of(const Condition& a, const Condition& b) {
  auto term = [](const Condition& c) {
    return c.text.find("||") == std::string::npos ? c.text : "(" + c.text + ")";
  };
  if (a.is(false) || b.is(true)) return a;
  if (b.is(false) || a.is(true)) return b;
  return {fmt::format("{} && {}", term(a), term(b))};
}

Condition named(Writer& w, const std::string& name, const Condition& c, const std::string& why) {
  if (c.is(true) || c.is(false)) return c;
  w.line("const bool {} = {};  // {}", name, c.text, why);
  return {name};
}

void emit_if(Writer& w, const Condition& c, const std::function<void()>& body) {
  if (c.is(false)) return;
  if (!c.is(true)) w.open("if ({})", c.text);
  body();
  if (!c.is(true)) w.close();
}

std::string at(std::string_view base, const Expr& offset) {
  std::string e = offset.str();
  return e == "0" ? std::string(base) : fmt::format("{} + {}", base, e);
}

namespace {

// "for (int var = start; var < end; var += step)"
std::string loop_head(const std::string& var, int64_t count, const Expr& start, int64_t step) {
  std::string next = step == 1 ? "++" + var : fmt::format("{} += {}", var, step);
  return fmt::format("for (int {} = {}; {} < {}; {})", var, start, var, start + count * step, next);
}

}  // namespace

void emit_loop(Writer& w, const std::string& var, int64_t count,
               const std::function<void(const Expr& index)>& body, const Expr& start,
               int64_t step) {
  if (count > 1) {
    w.open("{}", loop_head(var, count, start, step));
    body(Expr::var(var));
    w.close();
  } else if (count == 1) {
    w.open_scope(fmt::format("{} = {}", var, start));
    body(start);
    w.close();
  }
}

void emit_loop_line(Writer& w, std::string_view prefix, const std::string& var, int64_t count,
                    const std::function<std::string(const Expr& index)>& statement,
                    const Expr& start, int64_t step) {
  if (count > 1)
    w.line("{}{} {}", prefix, loop_head(var, count, start, step), statement(Expr::var(var)));
  else if (count == 1)
    w.line("{}{}", prefix, statement(start));
}

void emit_blocks(Writer& w, const std::string& var, int64_t total, int64_t size,
                 const std::function<void(int64_t count, const Expr& first)>& body) {
  int64_t full = total / size, tail = total % size;
  emit_loop(
      w, var, full, [&](const Expr& first) { body(size, first); }, 0, size);
  emit_loop(
      w, var, tail ? 1 : 0, [&](const Expr& first) { body(tail, first); }, full * size);
}

}  // namespace cnnc::codegen
