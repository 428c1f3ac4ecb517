// cnnc check FILE...: reports every problem in every file; exit 0 only when all are valid.
#include <fmt/format.h>

#include "cli/commands.hpp"

namespace cnnc::cli {

void register_check(CLI::App& app, int& status) {
  struct Options {
    std::vector<std::string> files;
    dsl::Limits limits;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("check", "Check .cnn files and report every problem, as a compiler does");
  cmd->add_option("files", opt->files, ".cnn files to check")->required();
  cmd->add_flag("--json", opt->json, "Print diagnostics as JSON objects, one per line");
  add_limit_flags(*cmd, opt->limits);
  cmd->callback([opt, &status] {
    int invalid = 0;
    for (const std::string& path : opt->files)
      if (!load_model(path, opt->limits, opt->json)) ++invalid;
    if (!opt->json) {
      if (invalid == 0)
        fmt::print("{} valid\n", opt->files.size() == 1
                                     ? opt->files[0]
                                     : fmt::format("all {} files", opt->files.size()));
      else
        fmt::print(stderr, "{} of {} file{} invalid\n", invalid, opt->files.size(),
                   opt->files.size() == 1 ? "" : "s");
    }
    status = invalid == 0 ? exit_ok : exit_user_error;
  });
}

}  // namespace cnnc::cli
