// The parser: tokens to statements, recovering at the next line after an error.
#pragma once

#include <vector>

#include "dsl/ast.hpp"
#include "dsl/diagnostics.hpp"
#include "dsl/lexer.hpp"

namespace cnnc::dsl {

// Every line with content becomes one Statement; syntax errors are reported and the rest of
// that line skipped, so that every line's errors are found in one run.
Ast parse(const std::vector<Token>& tokens, const SourceFile& file, Diagnostics& diags);

}  // namespace cnnc::dsl
