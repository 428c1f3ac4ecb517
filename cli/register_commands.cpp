// cnnc's command line: its name, --version and every subcommand, for main() and for the fuzzer
// that parses command lines without running them (tests/fuzz/fuzz_cli.cpp).
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cnnc/version.hpp"

namespace cnnc::cli {

void register_commands(CLI::App& app, int& status) {
  app.name("cnnc");
  app.description("cnnc: compiles a .cnn model description into a specialised CPU trainer");
  app.set_version_flag("--version", fmt::format("cnnc {}", cnnc::version));
  app.require_subcommand(1);
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
}

}  // namespace cnnc::cli
