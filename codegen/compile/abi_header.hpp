// The text of runtime/cnnc_abi.h, embedded at build time: generated code includes it on machines
// where cnnc's source tree is absent.
#pragma once

#include <string_view>

namespace cnnc::codegen {

std::string_view abi_header_text();

}  // namespace cnnc::codegen
