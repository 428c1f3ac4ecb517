// Checking: the syntax tree to the Graph, with every problem in the file reported.
#pragma once

#include <cstdint>
#include <optional>

#include "dsl/ast.hpp"
#include "dsl/diagnostics.hpp"
#include "dsl/graph.hpp"

namespace cnnc::dsl {

// What cnnc agrees to generate and train. Each limit has a command-line flag that raises it.
struct Limits {
  int64_t max_params = 50'000'000;            // --max-params
  int64_t max_activation_bytes = 64ll << 20;  // --max-activation-mib, per sample
  int64_t max_code_bytes = 16ll << 20;        // --max-code-mib, estimated source size
};

// Runs the statement pass and then the shape pass. Returns the Graph only when the file has no
// errors; all problems go to diags either way.
std::optional<Graph> check(const Ast& ast, const SourceFile& file, const Limits& limits,
                           Diagnostics& diags);

}  // namespace cnnc::dsl
