// The lexer. Grammar of tokens (dsl.md):
//   word    := [a-z_][a-z0-9_]*          (upper case lexed, rejected later with a reason)
//   integer := [+-]?[0-9]+
//   number  := [+-]?([0-9]+ '.' [0-9]* | '.' [0-9]+ | [0-9]+) ([eE] [+-]? [0-9]+)?
//   shape   := [0-9]+ 'x' [0-9]+ ('x' [0-9]+)*
//   '[' ']' ',' '='   newline   '#' comment to end of line
#include "dsl/lexer.hpp"

#include <fmt/format.h>

namespace cnnc::dsl {

const char* token_kind_name(TokenKind kind) {
  switch (kind) {
    case TokenKind::word: return "word";
    case TokenKind::integer: return "integer";
    case TokenKind::number: return "number";
    case TokenKind::shape: return "shape";
    case TokenKind::lbracket: return "'['";
    case TokenKind::rbracket: return "']'";
    case TokenKind::comma: return "','";
    case TokenKind::equals: return "'='";
    case TokenKind::invalid: return "invalid token";
    case TokenKind::newline: return "end of line";
    case TokenKind::eof: return "end of file";
  }
  return "token";
}

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_word_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_word_char(char c) {
  return is_word_start(c) || is_digit(c);
}

// Length of the UTF-8 sequence at s[i], or 0 when it is not valid UTF-8.
size_t utf8_length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0;                       // overlong
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogates
  if (n == 4 && (c > 0xF4 || (c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90)))
    return 0;
  return n;
}

// Rejects what is not UTF-8 text before lexing, so that every later message can quote the
// source safely. Returns false when the file must not be lexed.
bool check_text(const SourceFile& file, Diagnostics& diags) {
  std::string_view s = file.text();
  if (s.size() > max_source_bytes) {
    diags
        .error({0, 0}, fmt::format("file is {} bytes; a .cnn file is at most {} bytes", s.size(),
                                   max_source_bytes))
        .show_source = false;
    return false;
  }
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\0') {
      auto& d =
          diags.error({static_cast<uint32_t>(i), static_cast<uint32_t>(i)},
                      fmt::format("file is binary, not .cnn text (NUL byte at offset {})", i));
      d.show_source = false;
      return false;
    }
    size_t n = utf8_length(s, i);
    if (n == 0) {
      auto& d = diags.error(
          {static_cast<uint32_t>(i), static_cast<uint32_t>(i)},
          fmt::format("invalid UTF-8 byte 0x{:02x} at offset {}; .cnn files are UTF-8 text",
                      static_cast<unsigned char>(s[i]), i));
      d.show_source = false;
      return false;
    }
    i += n;
  }
  return true;
}

class Lexer {
 public:
  Lexer(const SourceFile& file, Diagnostics& diags) : s_(file.text()), diags_(diags) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '\n') {
        push(TokenKind::newline, pos_, pos_ + 1);
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (is_word_start(c)) {
        size_t begin = pos_;
        while (pos_ < s_.size() && is_word_char(s_[pos_])) ++pos_;
        push(TokenKind::word, begin, pos_);
      } else if (is_digit(c) || c == '.' ||
                 ((c == '-' || c == '+') && pos_ + 1 < s_.size() &&
                  (is_digit(s_[pos_ + 1]) || s_[pos_ + 1] == '.'))) {
        lex_number();
      } else if (c == '[' || c == ']' || c == ',' || c == '=') {
        push(c == '['   ? TokenKind::lbracket
             : c == ']' ? TokenKind::rbracket
             : c == ',' ? TokenKind::comma
                        : TokenKind::equals,
             pos_, pos_ + 1);
        ++pos_;
      } else {
        size_t n = utf8_length(s_, pos_);  // valid: checked before lexing
        std::string_view ch = s_.substr(pos_, n);
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
          diags_.error(range(pos_, pos_ + n), fmt::format("unexpected control character U+{:04X}",
                                                          static_cast<unsigned>(c)));
        else
          diags_.error(range(pos_, pos_ + n), fmt::format("unexpected character '{}'", ch));
        push(TokenKind::invalid, pos_, pos_ + n);
        pos_ += n;
      }
    }
    // Every statement ends in a newline, also the last one of a file without a final newline.
    if (tokens_.empty() || tokens_.back().kind != TokenKind::newline)
      push(TokenKind::newline, pos_, pos_);
    push(TokenKind::eof, pos_, pos_);
    return std::move(tokens_);
  }

 private:
  void lex_number() {
    size_t begin = pos_;
    if (s_[pos_] == '-' || s_[pos_] == '+') ++pos_;
    size_t digits = skip_digits();
    TokenKind kind = TokenKind::integer;
    if (pos_ < s_.size() && s_[pos_] == 'x' && digits > 0 && s_[begin] != '-' && s_[begin] != '+' &&
        pos_ + 1 < s_.size() && is_digit(s_[pos_ + 1])) {
      kind = TokenKind::shape;
      while (pos_ + 1 < s_.size() && s_[pos_] == 'x' && is_digit(s_[pos_ + 1])) {
        ++pos_;
        skip_digits();
      }
    } else {
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        digits += skip_digits();
        kind = TokenKind::number;
      }
      if (digits > 0 && pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
        size_t save = pos_++;
        if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) ++pos_;
        if (skip_digits() > 0)
          kind = TokenKind::number;
        else
          pos_ = save;
      }
    }
    // A number runs into whatever letters follow it ('5x', '1.2.3', '3px'): report the whole run.
    if (digits == 0 || (pos_ < s_.size() && (is_word_char(s_[pos_]) || s_[pos_] == '.'))) {
      while (pos_ < s_.size() &&
             (is_word_char(s_[pos_]) || s_[pos_] == '.' || s_[pos_] == '-' || s_[pos_] == '+'))
        ++pos_;
      std::string_view text = s_.substr(begin, pos_ - begin);
      bool shape_like = text.find('x') != std::string_view::npos && is_digit(text[0]);
      diags_.error(
          range(begin, pos_),
          shape_like
              ? fmt::format("malformed shape '{}'; a shape is written like 5x5 or 28x28x1", text)
              : fmt::format("malformed number '{}'", text));
      push(TokenKind::invalid, begin, pos_);
      return;
    }
    push(kind, begin, pos_);
  }

  size_t skip_digits() {
    size_t begin = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    return pos_ - begin;
  }

  static Range range(size_t begin, size_t end) {
    return {static_cast<uint32_t>(begin), static_cast<uint32_t>(end)};
  }
  void push(TokenKind kind, size_t begin, size_t end) {
    tokens_.push_back({kind, range(begin, end), s_.substr(begin, end - begin)});
  }

  std::string_view s_;
  Diagnostics& diags_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const SourceFile& file, Diagnostics& diags) {
  if (!check_text(file, diags)) {
    auto end = static_cast<uint32_t>(file.text().size());
    return {{TokenKind::eof, {end, end}, {}}};
  }
  return Lexer(file, diags).run();
}

}  // namespace cnnc::dsl
