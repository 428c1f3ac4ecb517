// Diagnostics: collected while a file is checked, then rendered as a C compiler does.
//
//   models/bad.cnn:5:1: error: unknown layer 'maxpol'; did you mean 'maxpool'?
//       5 | maxpol 2x2
//         | ^~~~~~
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dsl/source.hpp"

namespace cnnc::dsl {

enum class Severity { error, warning, note };

struct Note {
  Range range;
  std::string message;
};

struct Diagnostic {
  Severity severity = Severity::error;
  Range range;
  std::string message;
  std::vector<Note> notes;  // rendered as 'note:' lines without a source excerpt
  std::string hint;         // optional advice, rendered after the excerpt
  bool show_source = true;  // false for files that are not text
};

class Diagnostics {
 public:
  explicit Diagnostics(const SourceFile& file) : file_(&file) {}

  Diagnostic& error(Range range, std::string message);
  Diagnostic& warning(Range range, std::string message);

  bool has_errors() const;
  const SourceFile& file() const { return *file_; }
  // In source order; diagnostics at one place keep the order they were reported in.
  std::vector<Diagnostic> sorted() const;

 private:
  const SourceFile* file_;
  std::vector<Diagnostic> list_;
};

// The text form: location, severity, message, the source line, a caret under the range.
std::string render(const SourceFile& file, const Diagnostic& d);
// One JSON object per diagnostic: {"file","line","column","end_column","severity","message",
// "notes":[{"line","column","message"}],"hint"}.
std::string render_json(const SourceFile& file, const Diagnostic& d);

// One line of JSON for any object cnnc prints: keys in the order given, bytes that are not
// UTF-8 (a file name may hold them) replaced rather than thrown about.
std::string json_line(const nlohmann::ordered_json& j);

// The candidate closest to `word` by edit distance when it is close enough to be a likely
// misspelling, else an empty view.
std::string_view closest(std::string_view word, std::span<const std::string_view> candidates);

// "; did you mean 'x'?" for a close candidate, else "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace cnnc::dsl
