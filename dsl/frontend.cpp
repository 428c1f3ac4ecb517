// The front end's passes in order: lex, parse, check statements, check shapes.
#include "dsl/frontend.hpp"

#include "dsl/lexer.hpp"
#include "dsl/parser.hpp"

namespace cnnc::dsl {

std::optional<Graph> analyze(const SourceFile& file, const Limits& limits, Diagnostics& diags) {
  std::vector<Token> tokens = lex(file, diags);
  if (tokens.size() == 1 && diags.has_errors()) return std::nullopt;  // not text: nothing to parse
  Ast ast = parse(tokens, file, diags);
  std::optional<Graph> graph = check(ast, file, limits, diags);
  if (diags.has_errors()) return std::nullopt;
  return graph;
}

}  // namespace cnnc::dsl
