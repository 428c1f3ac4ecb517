// jit_clang.hpp for a cnnc built without the Clang libraries (CNNC_WITH_CLANG=OFF): the
// in-process backend is absent, and build_generated uses the compiler subprocess.
#include <stdexcept>

#include "codegen/compile/build.hpp"
#include "codegen/compile/jit_clang.hpp"

namespace cnnc::codegen::jit {

namespace {

constexpr const char* absent =
    "cnnc was built without the Clang libraries (CNNC_WITH_CLANG=OFF): there is no in-process "
    "build; use the compiler subprocess";

}  // namespace

bool available() {
  return false;
}

const CompilerIdentity& identity() {
  throw BuildError(absent);
}

std::vector<std::string> driver_command(const std::vector<std::string>& args) {
  return args;
}

ObjectResult compile_object(const std::string&, const std::filesystem::path&,
                            const std::vector<std::string>&) {
  throw BuildError(absent);
}

LoadedObject load_object(const std::string&, const std::string&, const std::vector<std::string>&) {
  throw BuildError(absent);
}

bool can_format() {
  return false;
}

std::string format_source(const std::string&, const std::string&) {
  throw std::runtime_error(
      "cnnc was built without the Clang libraries (CNNC_WITH_CLANG=OFF), which --format needs");
}

}  // namespace cnnc::codegen::jit
