// The draft between the two checking passes: layers with their options typed but not shaped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dsl/ast.hpp"
#include "dsl/diagnostics.hpp"
#include "dsl/graph.hpp"

namespace cnnc::dsl {

struct DraftLayer {
  Layer layer;            // kind, name, options; shapes and counts still empty
  bool valid = true;      // false: an option was wrong, so its output shape is unknown
  bool pad_same = false;  // pad=same: the padding depends on the input size
  int64_t pad = 0;        // pad=P
  std::string bank;       // weights=sobel | laplacian
  Range weights_range, bias_range;
};

struct Draft {
  std::string name;
  Range model_range;
  bool has_input = false;
  Shape input;
  Range input_range;
  std::vector<DraftLayer> layers;
  Training training;
  Range shift_range;  // augment shift=, checked against the input size
};

// Pass 1: each statement's arguments, the order of statements, duplicates, defaults.
Draft check_statements(const Ast& ast, const SourceFile& file, Diagnostics& diags);

struct Limits;
// Pass 2: shapes, parameter layout, FLOPs, weights= lengths and the limits. Returns a Graph
// only when pass 1 and pass 2 found no error.
std::optional<Graph> check_shapes(Draft draft, const SourceFile& file, const Limits& limits,
                                  Diagnostics& diags);

// The built-in filter banks of weights=: filters in [K][R][S][C] order, or empty when the
// name is not a bank. Each needs K x R x S x C = the returned shape.
struct FilterBank {
  int64_t filters, kernel_h, kernel_w, channels;
  std::vector<float> weights;
};
std::optional<FilterBank> filter_bank(std::string_view name);
inline constexpr std::string_view filter_bank_names[] = {"sobel", "laplacian"};

}  // namespace cnnc::dsl
