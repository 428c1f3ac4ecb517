// Test helper: runs the front end on a string and keeps what a user would see.
#pragma once

#include <optional>
#include <string>

#include "dsl/frontend.hpp"

namespace cnnc::test {

struct Checked {
  std::optional<dsl::Graph> graph;
  std::string diagnostics;  // rendered exactly as cnnc check prints them
  int errors = 0;
};

inline Checked check_text(const std::string& text, const dsl::Limits& limits = {},
                          const std::string& path = "test.cnn") {
  dsl::SourceFile file(path, text);
  dsl::Diagnostics diags(file);
  Checked out;
  out.graph = dsl::analyze(file, limits, diags);
  for (const dsl::Diagnostic& d : diags.sorted()) {
    out.diagnostics += dsl::render(file, d);
    out.errors += d.severity == dsl::Severity::error;
  }
  return out;
}

// The one graph a valid text must give; fails the test with the diagnostics otherwise.
inline dsl::Graph graph_of(const std::string& text) {
  Checked c = check_text(text);
  if (!c.graph) throw std::runtime_error("expected a valid model, got:\n" + c.diagnostics);
  return *c.graph;
}

}  // namespace cnnc::test
