// An indentation-aware text writer over fmt: how every emitter writes C++.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace cnnc::codegen {

class Writer {
 public:
  // One line at the current indentation; an empty format writes an empty line.
  template <class... Args>
  void line(fmt::format_string<Args...> format, Args&&... args) {
    std::string text = fmt::format(format, std::forward<Args>(args)...);
    if (!text.empty()) out_.append(static_cast<size_t>(indent_) * 2, ' ');
    out_ += text;
    out_ += '\n';
    ++lines_;
  }
  void blank() { line(""); }

  // `head {` ... `}`: a block whose body is indented.
  template <class... Args>
  void open(fmt::format_string<Args...> format, Args&&... args) {
    std::string head = fmt::format(format, std::forward<Args>(args)...);
    if (head.empty())
      line("{{");
    else
      line("{} {{", head);
    ++indent_;
  }
  // `{  // note`: a bare block that scopes its body's declarations; the note says why it is there.
  void open_scope(std::string_view note) {
    line("{{  // {}", note);
    ++indent_;
  }
  // A function: a block, counted for `cnnc gen --stats`.
  template <class... Args>
  void function(fmt::format_string<Args...> format, Args&&... args) {
    open(format, std::forward<Args>(args)...);
    ++functions_;
  }
  void close(std::string_view tail = "") {
    --indent_;
    line("}}{}", tail);
  }

  // Namespaces do not indent their contents, as in hand-written C++.
  void open_namespace(std::string_view name) { line("namespace {} {{", name); }
  void close_namespace(std::string_view name) { line("}}  // namespace {}", name); }

  // A comment block; every line of text (which may hold user text) is made safe for a
  // comment: no line can end the comment or continue it onto code.
  void comment(std::string_view text);

  const std::string& str() const { return out_; }
  int lines() const { return lines_; }
  int functions() const { return functions_; }

 private:
  std::string out_;
  int indent_ = 0;
  int lines_ = 0;
  int functions_ = 0;
};

// A count and its noun, singular or plural: "1 sample", "16 samples", "1,024 rows".
std::string counted(int64_t n, std::string_view noun);

// A float as a C++ literal that reads back to the same value: 0.25f, 2.0f, 1e-08f.
std::string float_literal(float x);

// User text made safe inside a // comment: control characters and backslashes (which could
// splice the next line into the comment) become visible escapes.
std::string comment_safe(std::string_view text);

}  // namespace cnnc::codegen
