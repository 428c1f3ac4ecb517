// The Clang 19 libraries in this process: C++ source to an object file, an object file to
// callable code, and clang-format. No LLVM type crosses this header: only jit_clang.cpp pays
// the 1.5 GB and 20 s that Clang's headers cost to compile. Without CNNC_WITH_CLANG,
// jit_none.cpp implements it and says the in-process backend is absent.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "codegen/compile/compiler.hpp"

namespace cnnc::codegen::jit {

// True when cnnc was built with the Clang libraries and Clang's own headers (immintrin.h, in
// the resource directory found at configure time) are still where they were.
bool available();

// Who compiles in-process, for cache keys and users: short_name "clang 19.1.7"; path is the
// driver that anchors the header search (never run); version_text says "in-process" and names
// the resource directory, so in-process and subprocess builds never share a cache entry.
// Only meaningful when available().
const CompilerIdentity& identity();

// The argument list a compiler driver would get: argv[0] then, in order, -resource-dir, args.
// What the failure message shows to reproduce a build with the clang-19 executable.
std::vector<std::string> driver_command(const std::vector<std::string>& args);

struct ObjectResult {
  bool ok = false;
  std::string object;       // an ELF relocatable object, when ok
  std::string diagnostics;  // Clang's text diagnostics (file:line:col, the line, a caret)
};

// Compiles source as if it were the file at source_path (the file need not exist: the text is
// served from memory, over the real file system for headers). args are driver arguments
// without the input and output: "-O2", "-std=c++17", "-fPIC", "-I", dir, ... Thread-safe.
ObjectResult compile_object(const std::string& source, const std::filesystem::path& source_path,
                            const std::vector<std::string>& args);

// An object linked into this process: symbols holds the address of each name asked for, null
// where the object defines none. The code stays mapped while any copy of `owner` lives.
struct LoadedObject {
  std::shared_ptr<void> owner;
  std::vector<void*> symbols;
};

// Links object into the process-wide JIT, in a library of its own (so two objects may define
// the same names), resolving undefined names against the process. Throws BuildError naming
// label when the object cannot be linked. Thread-safe.
LoadedObject load_object(const std::string& object, const std::string& label,
                         const std::vector<std::string>& names);

// True when format_source can run (cnnc built with the Clang libraries).
bool can_format();

// source reformatted with clang-format in cnnc's style (Google, 100 columns, as .clang-format at
// the repository's root). Throws std::runtime_error when the formatter is absent or fails.
std::string format_source(const std::string& source, const std::string& file_name);

}  // namespace cnnc::codegen::jit
