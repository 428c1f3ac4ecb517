// cnnc: the command line. Each subcommand lives in its own cmd_*.cpp.
#include "cli/commands.hpp"
#include "engine/engine.hpp"

int main(int argc, char** argv) {
  using namespace cnnc::cli;
  cnnc::engine::set_compiled_engine(&cnnc::engine::make_compiled_engine);
  CLI::App app;
  int status = exit_ok;
  register_commands(app, status);
  return run_app(app, argc, argv, status, "cnnc");
}
