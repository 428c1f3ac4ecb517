// cnnc: the command line. Each subcommand lives in its own cmd_*.cpp.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cnnc/version.hpp"
#include "engine/engine.hpp"

int main(int argc, char** argv) {
  using namespace cnnc::cli;
  CLI::App app{"cnnc: compiles a .cnn model description into a specialised CPU trainer", "cnnc"};
  app.set_version_flag("--version", fmt::format("cnnc {}", cnnc::version));
  app.require_subcommand(1);
  cnnc::engine::set_compiled_engine(&cnnc::engine::make_compiled_engine);
  int status = exit_ok;
  register_check(app, status);
  register_summary(app, status);
  register_train(app, status);
  register_eval(app, status);
  register_predict(app, status);
  register_viz(app, status);
  register_gen(app, status);
  register_build(app, status);
  register_verify(app, status);
  register_bench(app, status);
  register_compare(app, status);
  register_sweep(app, status);
  return run_app(app, argc, argv, status, "cnnc");
}
