// Reading a .cnn file and reporting its diagnostics: the one way every subcommand loads a model.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "commands.hpp"
#include "dsl/frontend.hpp"
#include "dsl/lexer.hpp"

namespace cnnc::cli {

void add_limit_flags(CLI::App& cmd, dsl::Limits& limits) {
  cmd.add_option("--max-params", limits.max_params, "Largest parameter count accepted")
      ->default_val(limits.max_params)
      ->check(within(int64_t{1}, INT64_MAX));
  cmd.add_option_function<int64_t>(
         "--max-activation-mib", [&limits](int64_t v) { limits.max_activation_bytes = v << 20; },
         "Largest activation memory per sample, MiB")
      ->default_str(std::to_string(limits.max_activation_bytes >> 20))
      ->check(within(int64_t{1}, int64_t{1} << 20));
  cmd.add_option_function<int64_t>(
         "--max-code-mib", [&limits](int64_t v) { limits.max_code_bytes = v << 20; },
         "Largest estimated size of the generated source, MiB")
      ->default_str(std::to_string(limits.max_code_bytes >> 20))
      ->check(within(int64_t{1}, int64_t{1} << 20));
}

namespace {

// Reads at most one byte more than a .cnn file may hold, so that /dev/zero or a huge file is
// refused by the lexer's size check instead of filling memory.
std::optional<std::string> read_source(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fmt::print(stderr, "cnnc: error: '{}' is a directory, not a .cnn file\n", path);
    return std::nullopt;
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    fmt::print(stderr, "cnnc: error: cannot read '{}': {}\n", path, std::strerror(errno));
    return std::nullopt;
  }
  std::string text(dsl::max_source_bytes + 1, '\0');
  size_t n = std::fread(text.data(), 1, text.size(), f);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    fmt::print(stderr, "cnnc: error: cannot read '{}'\n", path);
    return std::nullopt;
  }
  text.resize(n);
  return text;
}

std::optional<dsl::Graph> analyze_text(const std::string& path, std::string text,
                                       const dsl::Limits& limits, bool json) {
  dsl::SourceFile file(path, std::move(text));
  dsl::Diagnostics diags(file);
  std::optional<dsl::Graph> graph = dsl::analyze(file, limits, diags);
  for (const dsl::Diagnostic& d : diags.sorted())
    fmt::print(stderr, "{}", json ? dsl::render_json(file, d) + "\n" : dsl::render(file, d));
  return graph;
}

}  // namespace

std::optional<dsl::Graph> load_model(const std::string& path, const dsl::Limits& limits,
                                     bool json) {
  std::optional<std::string> text = read_source(path);
  if (!text) return std::nullopt;
  return analyze_text(path, std::move(*text), limits, json);
}

std::optional<dsl::Graph> load_model(const EmbeddedModel* embedded, const std::string& path,
                                     const dsl::Limits& limits, bool json) {
  if (!embedded) return load_model(path, limits, json);
  return analyze_text(embedded->path, embedded->text, embedded->limits, json);
}

}  // namespace cnnc::cli
