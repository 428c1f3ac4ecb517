// An engine name of cnnc bench with its precision: ENGINE-bf16 and ENGINE-fp32 run ENGINE at that
// precision whatever the file says (specialized-bf16, pytorch-fp32); a bare name runs at the
// file's.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "dsl/graph.hpp"

namespace cnnc::bench {

struct EngineVariant {
  std::string base;  // the engine: "specialized-bf16" gives "specialized"
  dsl::Graph graph;  // the model with the precision this name asks for
};

inline EngineVariant engine_variant(const dsl::Graph& g, const std::string& name) {
  EngineVariant v{name, g};
  for (auto [suffix, precision] : {std::pair{std::string_view("-bf16"), dsl::Precision::bf16},
                                   std::pair{std::string_view("-fp32"), dsl::Precision::fp32}})
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      v.base = name.substr(0, name.size() - suffix.size());
      v.graph.training.precision = precision;
    }
  return v;
}

}  // namespace cnnc::bench
