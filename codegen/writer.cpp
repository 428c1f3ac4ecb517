// Comment escaping for the Writer, and the text helpers of generated comments.
#include "codegen/writer.hpp"

#include "dsl/graph.hpp"

namespace cnnc::codegen {

std::string counted(int64_t n, std::string_view noun) {
  return fmt::format("{} {}{}", dsl::with_thousands(n), noun, n == 1 ? "" : "s");
}

std::string float_literal(float x) {
  std::string s = fmt::format("{}", x);  // the shortest text that reads back exactly
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

std::string comment_safe(std::string_view text) {
  std::string out;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '\\')
      out += "\\\\";
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out += ch;
  }
  return out;
}

void Writer::comment(std::string_view text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    std::string_view part =
        text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.empty())
      line("//");
    else
      line("// {}", comment_safe(part));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

}  // namespace cnnc::codegen
