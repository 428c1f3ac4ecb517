// The parser. Grammar (dsl.md):
//   file      := { [statement] newline }
//   statement := word { arg }
//   arg       := word '=' value | value
//   value     := integer | number | shape | word | list
//   list      := '[' number { ',' number } ']'
#include "dsl/parser.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace cnnc::dsl {

namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const SourceFile& file, Diagnostics& diags)
      : t_(tokens), file_(file), diags_(diags) {}

  Ast run() {
    Ast ast;
    while (peek().kind != TokenKind::eof) {
      if (peek().kind == TokenKind::newline) {
        ++pos_;
        continue;
      }
      if (peek().kind == TokenKind::invalid) {  // already reported by the lexer
        skip_line();
        continue;
      }
      if (peek().kind != TokenKind::word) {
        diags_.error(peek().range,
                     fmt::format("expected a keyword at the start of a statement, found {}",
                                 describe(peek())));
        skip_line();
        continue;
      }
      ast.statements.push_back(statement());
    }
    return ast;
  }

 private:
  // statement := word { arg }
  Statement statement() {
    Statement st;
    const Token& kw = next();
    st.keyword = kw.text;
    st.keyword_range = kw.range;
    st.range = kw.range;
    while (peek().kind != TokenKind::newline) {
      std::optional<Arg> a = arg();
      if (!a) {
        st.broken = true;
        skip_line();
        return st;
      }
      st.range = join(st.range, a->range);
      st.args.push_back(std::move(*a));
    }
    ++pos_;  // the newline
    return st;
  }

  // arg := word '=' value | value
  std::optional<Arg> arg() {
    Arg a;
    if (peek().kind == TokenKind::word && peek(1).kind == TokenKind::equals) {
      const Token& name = next();
      const Token& eq = next();
      a.name = name.text;
      a.name_range = name.range;
      if (peek().kind == TokenKind::newline || peek().kind == TokenKind::equals) {
        diags_.error(join(name.range, eq.range),
                     fmt::format("expected a value after '{}='", name.text));
        return std::nullopt;
      }
    }
    std::optional<Value> v = value();
    if (!v) return std::nullopt;
    a.value = std::move(*v);
    a.range = a.name ? join(a.name_range, a.value.range) : a.value.range;
    return a;
  }

  // value := integer | number | shape | word | list
  std::optional<Value> value() {
    const Token& tok = peek();
    Value v;
    v.range = tok.range;
    v.text = tok.text;
    switch (tok.kind) {
      case TokenKind::integer:
        ++pos_;
        v.kind = Value::Kind::integer;
        if (!to_integer(tok, v.integer)) return std::nullopt;
        v.number = static_cast<double>(v.integer);
        return v;
      case TokenKind::number:
        ++pos_;
        v.kind = Value::Kind::number;
        if (!to_number(tok, v.number)) return std::nullopt;
        return v;
      case TokenKind::shape: {
        ++pos_;
        v.kind = Value::Kind::shape;
        std::string_view rest = tok.text;
        while (!rest.empty()) {
          size_t x = rest.find('x');
          Token part{TokenKind::integer, tok.range, rest.substr(0, x)};
          int64_t d = 0;
          if (!to_integer(part, d)) return std::nullopt;
          v.dims.push_back(d);
          rest = x == std::string_view::npos ? std::string_view() : rest.substr(x + 1);
        }
        if (v.dims.size() > 3) {
          diags_.error(tok.range, fmt::format("shape '{}' has {} dimensions; at most 3 (HxWxC)",
                                              tok.text, v.dims.size()));
          return std::nullopt;
        }
        return v;
      }
      case TokenKind::word:
        ++pos_;
        v.kind = Value::Kind::word;
        return v;
      case TokenKind::lbracket: return list();
      case TokenKind::invalid: return std::nullopt;  // already reported by the lexer
      default:
        diags_.error(tok.range, tok.kind == TokenKind::equals
                                    ? std::string("unexpected '='; options are written name=value")
                                    : fmt::format("unexpected {}", token_kind_name(tok.kind)));
        return std::nullopt;
    }
  }

  // list := '[' number { ',' number } ']'
  std::optional<Value> list() {
    Value v;
    v.kind = Value::Kind::list;
    Range open = next().range;
    for (;;) {
      const Token& tok = peek();
      if (tok.kind != TokenKind::integer && tok.kind != TokenKind::number) {
        if (tok.kind == TokenKind::invalid) return std::nullopt;
        diags_.error(tok.kind == TokenKind::newline ? open : tok.range,
                     tok.kind == TokenKind::rbracket && v.list.empty()
                         ? std::string("empty list; a list holds at least one number")
                     : tok.kind == TokenKind::newline
                         ? std::string("unterminated list; expected ']' before the end of the line")
                         : fmt::format("expected a number in the list, found {}", describe(tok)));
        return std::nullopt;
      }
      ++pos_;
      double x = 0;
      if (tok.kind == TokenKind::integer) {
        int64_t i = 0;
        if (!to_integer(tok, i)) return std::nullopt;
        x = static_cast<double>(i);
      } else if (!to_number(tok, x)) {
        return std::nullopt;
      }
      v.list.push_back(x);
      const Token& sep = next();
      if (sep.kind == TokenKind::rbracket) {
        v.range = join(open, sep.range);
        v.text = file_.slice(v.range);
        return v;
      }
      if (sep.kind != TokenKind::comma) {
        diags_.error(sep.kind == TokenKind::newline ? open : sep.range,
                     sep.kind == TokenKind::newline
                         ? std::string("unterminated list; expected ']' before the end of the line")
                         : fmt::format("expected ',' or ']' in the list, found {}", describe(sep)));
        if (sep.kind == TokenKind::newline) --pos_;
        return std::nullopt;
      }
    }
  }

  bool to_integer(const Token& tok, int64_t& out) {
    std::string_view s = tok.text;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) {
      diags_.error(tok.range, fmt::format("integer '{}' is too large", tok.text));
      return false;
    }
    return true;
  }

  bool to_number(const Token& tok, double& out) {
    std::string_view s = tok.text;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(out)) {
      diags_.error(tok.range, fmt::format("number '{}' is out of range", tok.text));
      return false;
    }
    return true;
  }

  // "integer '5'" for tokens with text of their own, "','" for punctuation.
  static std::string describe(const Token& tok) {
    bool has_text = tok.kind == TokenKind::word || tok.kind == TokenKind::integer ||
                    tok.kind == TokenKind::number || tok.kind == TokenKind::shape;
    return has_text ? fmt::format("{} '{}'", token_kind_name(tok.kind), tok.text)
                    : token_kind_name(tok.kind);
  }

  void skip_line() {
    while (peek().kind != TokenKind::newline && peek().kind != TokenKind::eof) ++pos_;
    if (peek().kind == TokenKind::newline) ++pos_;
  }

  const Token& peek(size_t ahead = 0) const {
    size_t i = pos_ + ahead;
    return i < t_.size() ? t_[i] : t_.back();
  }
  const Token& next() { return t_[pos_ < t_.size() - 1 ? pos_++ : pos_]; }

  const std::vector<Token>& t_;
  const SourceFile& file_;
  Diagnostics& diags_;
  size_t pos_ = 0;
};

}  // namespace

Ast parse(const std::vector<Token>& tokens, const SourceFile& file, Diagnostics& diags) {
  return Parser(tokens, file, diags).run();
}

}  // namespace cnnc::dsl
