// The end of every main: parse, run, and turn what escaped into an exit status.
#include <fmt/format.h>

#include <exception>

#include "cli/commands.hpp"

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

}  // namespace cnnc::cli
