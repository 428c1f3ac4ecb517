// A .cnn file held in memory, and the byte ranges that tokens and diagnostics point into.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cnnc::dsl {

// A half-open byte range [begin, end) of one source file.
struct Range {
  uint32_t begin = 0;
  uint32_t end = 0;
};

inline Range join(Range a, Range b) {
  return {a.begin < b.begin ? a.begin : b.begin, a.end > b.end ? a.end : b.end};
}

class SourceFile {
 public:
  SourceFile(std::string path, std::string text);

  const std::string& path() const { return path_; }
  const std::string& text() const { return text_; }
  std::string_view slice(Range r) const {
    return std::string_view(text_).substr(r.begin, r.end - r.begin);
  }

  // 1-based line of a byte offset.
  uint32_t line_of(uint32_t offset) const;
  // 1-based column of a byte offset, counted in code points so that it matches what an editor
  // shows for UTF-8 comments.
  uint32_t column_of(uint32_t offset) const;
  // The text of a 1-based line without its line ending.
  std::string_view line_text(uint32_t line) const;
  uint32_t line_start(uint32_t line) const { return line_starts_[line - 1]; }

 private:
  std::string path_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

}  // namespace cnnc::dsl
