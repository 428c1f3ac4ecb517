// The vector helpers of each ISA (vload, vfma, vbcast, ...): C++ text that every generated file
// carries in the ISA's namespace, kept in codegen/isa/<isa>.inc and embedded at build time.
#pragma once

#include <string_view>

#include "codegen/plan.hpp"

namespace cnnc::codegen {

// avx512_bf16: only what it adds to the AVX-512 helpers, which its namespace carries first.
std::string_view isa_helpers(Isa isa);

}  // namespace cnnc::codegen
