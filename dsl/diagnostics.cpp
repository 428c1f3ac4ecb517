// Collecting diagnostics and rendering them with the source line and a caret.
#include "dsl/diagnostics.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace cnnc::dsl {

Diagnostic& Diagnostics::error(Range range, std::string message) {
  list_.push_back({Severity::error, range, std::move(message), {}, {}, true});
  return list_.back();
}

Diagnostic& Diagnostics::warning(Range range, std::string message) {
  list_.push_back({Severity::warning, range, std::move(message), {}, {}, true});
  return list_.back();
}

bool Diagnostics::has_errors() const {
  return std::any_of(list_.begin(), list_.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::error; });
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = list_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.range.begin < b.range.begin;
  });
  return out;
}

namespace {

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::error: return "error";
    case Severity::warning: return "warning";
    case Severity::note: return "note";
  }
  return "error";
}

// A source line made safe for a terminal: tabs and control characters become one space each,
// so that the caret line, built by counting code points, stays aligned.
std::string printable(std::string_view line) {
  std::string out;
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c == 0x7F) ? ' ' : ch;
  }
  return out;
}

}  // namespace

std::string render(const SourceFile& file, const Diagnostic& d) {
  uint32_t line = file.line_of(d.range.begin);
  uint32_t column = file.column_of(d.range.begin);
  std::string out = fmt::format("{}:{}:{}: {}: {}\n", file.path(), line, column,
                                severity_name(d.severity), d.message);
  if (d.show_source) {
    std::string_view text = file.line_text(line);
    uint32_t line_end = file.line_start(line) + static_cast<uint32_t>(text.size());
    uint32_t end = std::max(d.range.begin, std::min(d.range.end, line_end));
    // Columns count code points, so the width of the range is counted the same way.
    uint32_t width = end > d.range.begin ? file.column_of(end) - column : 0;
    out += fmt::format("{:>5} | {}\n", line, printable(text));
    out += fmt::format("{:>5} | {}^{}\n", "", std::string(column - 1, ' '),
                       std::string(width > 0 ? width - 1 : 0, '~'));
  }
  if (!d.hint.empty()) out += fmt::format("{:>5} = hint: {}\n", "", d.hint);
  for (const Note& n : d.notes)
    out += fmt::format("{}:{}:{}: note: {}\n", file.path(), file.line_of(n.range.begin),
                       file.column_of(n.range.begin), n.message);
  return out;
}

std::string json_line(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string render_json(const SourceFile& file, const Diagnostic& d) {
  uint32_t line = file.line_of(d.range.begin);
  nlohmann::ordered_json notes = nlohmann::ordered_json::array();
  for (const Note& n : d.notes)
    notes.push_back({{"line", file.line_of(n.range.begin)},
                     {"column", file.column_of(n.range.begin)},
                     {"message", n.message}});
  uint32_t end = std::max(d.range.begin, d.range.end);
  uint32_t end_column =
      file.line_of(end) == line ? file.column_of(end) : file.column_of(d.range.begin) + 1;
  return json_line({{"file", file.path()},
                    {"line", line},
                    {"column", file.column_of(d.range.begin)},
                    {"end_column", end_column},
                    {"severity", severity_name(d.severity)},
                    {"message", d.message},
                    {"notes", notes},
                    {"hint", d.hint}});
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string_view closest(std::string_view word, std::span<const std::string_view> candidates) {
  std::string lower(word);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  word = lower;
  std::string_view best;
  // A third of the word's length, at least one edit: 'maxpol' finds 'maxpool', 'x' finds nothing.
  size_t best_distance = std::max<size_t>(1, word.size() / 3) + 1;
  for (std::string_view c : candidates) {
    // 'batchsize' means 'batch': a whole keyword followed by more letters.
    if (c.size() >= 4 && word.size() > c.size() && word.substr(0, c.size()) == c) return c;
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best = closest(word, candidates);
  return best.empty() ? std::string() : fmt::format("; did you mean '{}'?", best);
}

}  // namespace cnnc::dsl
