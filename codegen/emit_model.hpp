// Emission of a whole model: the .gen.cpp that implements the C ABI for one checked Graph.
#pragma once

#include <string>

#include "dsl/graph.hpp"

namespace cnnc::codegen {

struct GenOptions {
  std::string source_path;  // as the user named it: it appears in the banner
  std::string source_text;  // the .cnn text: its SHA-256 appears in the banner
  int max_batch = 64;       // the largest slice one call takes
};

struct Generated {
  std::string source;  // <model>.gen.cpp
  std::string header;  // <model>.gen.hpp
  int lines = 0;
  int functions = 0;
};

// The .gen.cpp (and its line and function counts; header left empty).
Generated emit_model(const dsl::Graph& graph, const GenOptions& options);
// The .gen.hpp.
std::string emit_header(const dsl::Graph& graph, const GenOptions& options);

// Both files: what `cnnc gen` writes.
inline Generated generate(const dsl::Graph& graph, const GenOptions& options) {
  Generated g = emit_model(graph, options);
  g.header = emit_header(graph, options);
  return g;
}

}  // namespace cnnc::codegen
