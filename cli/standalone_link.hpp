// What `cnnc build` needs to link an executable: this build's own static libraries, their
// dependencies and the standalone header, all recorded by CMake when cnnc was configured.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cnnc::cli {

struct StandaloneLink {
  std::string linker;                  // the compiler that built the libraries drives the link
  std::vector<std::string> archives;   // cnnc's static libraries, users before what they use
  std::vector<std::string> libraries;  // fmt, zlib: files or -l flags
  std::vector<std::string> flags;      // -pthread, -ldl, sanitizers when cnnc was built with them
};
const StandaloneLink& standalone_link();

// The text of cli/standalone.hpp, written beside the generated main.cpp.
std::string_view standalone_header_text();

}  // namespace cnnc::cli
