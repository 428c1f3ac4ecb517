// The front end in one call: .cnn text to a checked Graph.
#pragma once

#include <optional>

#include "dsl/check.hpp"
#include "dsl/diagnostics.hpp"
#include "dsl/graph.hpp"
#include "dsl/source.hpp"

namespace cnnc::dsl {

// Lexes, parses and checks one file. The Graph comes back only when diags holds no error;
// every problem found in the file is in diags.
std::optional<Graph> analyze(const SourceFile& file, const Limits& limits, Diagnostics& diags);

}  // namespace cnnc::dsl
