// cnnc: the command line. Each subcommand lives in its own cmd_*.cpp.
#include <fmt/format.h>

#include <exception>

#include "cnnc/version.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace cnnc::cli;
  CLI::App app{"cnnc: compiles a .cnn model description into a specialised CPU trainer", "cnnc"};
  app.set_version_flag("--version", fmt::format("cnnc {}", cnnc::version));
  app.require_subcommand(1);
  int status = exit_ok;
  register_check(app, status);
  register_summary(app, status);
  register_train(app, status);
  register_eval(app, status);
  register_gen(app, status);
  register_verify(app, status);
  register_bench(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("internal error", 0) == 0)  // it already says so, and how to report it
      fmt::print(stderr, "cnnc: {}\n", what);
    else
      fmt::print(stderr,
                 "cnnc: internal error: {}\nThis is a bug in cnnc; please report it with the "
                 "command and the .cnn file.\n",
                 what);
    return exit_internal;
  }
  return status;
}
