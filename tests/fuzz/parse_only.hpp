// cnnc's command line parsed and validated, and not run: what the command-line fuzzer
// (fuzz_cli.cpp) and its test (tests/cli/test_command_line.cpp) drive, so that any arguments may
// be tried without a command writing a file, training or compiling.
#pragma once

#include <CLI/CLI.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace cnnc_test {

// CLI11 calls pre_callback() once the whole line is parsed and validated (values converted, the
// flags' validators run, required options and exclusions checked, no argument left over) and
// before any callback: a subcommand's callback is where its command's work is done.
class ParseOnlyApp : public CLI::App {
 public:
  struct Accepted {};

 protected:
  void pre_callback() override { throw Accepted{}; }
};

struct ParseResult {
  bool accepted = false;
  std::vector<std::string> commands;  // the subcommands chosen, when accepted
  int status = 0;                     // CLI11's exit code when not accepted (0: help, version)
  std::string out, err;               // what cnnc prints then
};

// args: the words after the program's name.
inline ParseResult parse_only(const std::vector<std::string>& args) {
  ParseOnlyApp app;
  int status = cnnc::cli::exit_ok;
  cnnc::cli::register_commands(app, status);
  std::vector<const char*> argv{"cnnc"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  ParseResult r;
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const ParseOnlyApp::Accepted&) {
    r.accepted = true;
    for (const CLI::App* sub : app.get_subcommands()) r.commands.push_back(sub->get_name());
  } catch (const CLI::ParseError& e) {
    // As run_app reports it: help and version on stdout, the error on stderr.
    std::ostringstream out, err;
    r.status = app.exit(e, out, err);
    r.out = out.str();
    r.err = err.str();
  }
  return r;
}

}  // namespace cnnc_test
