// The end of every main: parse, run, and turn what escaped into an exit status.
#include <fmt/format.h>

#include <exception>
#include <stdexcept>
#include <string_view>

#include "cli/commands.hpp"
#include "codegen/compile/build.hpp"  // BuildError

namespace cnnc::cli {

int run_app(CLI::App& app, int argc, char** argv, const int& status, const std::string& program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("internal error", 0) == 0)  // it already says so, and how to report it
      fmt::print(stderr, "{}: {}\n", program, what);
    else
      fmt::print(stderr,
                 "{}: internal error: {}\nThis is a bug in cnnc; please report it with the "
                 "command and the .cnn file.\n",
                 program, what);
    return exit_internal;
  }
  return status;
}

int user_errors(const std::function<int()>& command) {
  try {
    return command();
  } catch (const codegen::BuildError& e) {
    // A missing compiler is the user's to fix; generated code that does not compile says so.
    fmt::print(stderr, "cnnc: error: {}\n", e.what());
    return std::string_view(e.what()).starts_with("internal error") ? exit_internal
                                                                    : exit_user_error;
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "cnnc: error: {}\n", e.what());
    return exit_user_error;
  }
}

}  // namespace cnnc::cli
