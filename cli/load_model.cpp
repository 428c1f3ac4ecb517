// Reading a .cnn file and reporting its diagnostics: the one way every subcommand loads a model.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "data/byte_source.hpp"
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

// The text of a .cnn file, or nullopt after saying why it cannot be had. Refuses without
// reading what is not a regular file (a FIFO would block forever, /dev/zero fill memory) and a
// file larger than the lexer accepts, with its real size.
std::optional<std::string> read_source(const std::string& path) {
  try {
    return rt::read_file(path, dsl::max_source_bytes, ".cnn file");
  } catch (const rt::FileError& e) {
    fmt::print(stderr, "cnnc: error: cannot read '{}': {}\n", path, e.what());
    return std::nullopt;
  }
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
