// An engine name of cnnc bench with its precision: ENGINE-bf16 and ENGINE-fp32 run ENGINE at that
// precision whatever the file says (specialized-bf16, pytorch-fp32); a bare name runs at the
// file's.
#pragma once

#include <string>

#include "dsl/graph.hpp"

namespace cnnc::bench {

struct EngineVariant {
  std::string base;  // "specialized", "pytorch", "generic", "onednn"
  dsl::Graph graph;  // the model with the precision this name asks for
};

inline EngineVariant engine_variant(const dsl::Graph& g, const std::string& name) {
  EngineVariant v{name, g};
  for (auto [suffix, precision] :
       {std::pair{"-bf16", dsl::Precision::bf16}, std::pair{"-fp32", dsl::Precision::fp32}})
    if (name.size() > 5 && name.ends_with(suffix)) {
      v.base = name.substr(0, name.size() - 5);
      v.graph.training.precision = precision;
    }
  return v;
}

}  // namespace cnnc::bench
