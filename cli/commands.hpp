// The cnnc subcommands: each registers its options on the CLI11 app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>

#include "dsl/check.hpp"
#include "dsl/graph.hpp"

namespace cnnc::cli {

// Exit statuses: 0 success, 1 the user's input was wrong, 2 a usage error, 70 (EX_SOFTWARE)
// a bug in cnnc.
inline constexpr int exit_ok = 0, exit_user_error = 1, exit_usage = 2, exit_internal = 70;

// A flag's value must be a number from lo to hi; NaN, infinities and numbers past the type's
// range are refused with a message that shows the bounds as a user writes them ("--lr: nan is
// not a number from 1e-09 to 10").
CLI::Validator within_integer(int64_t lo, int64_t hi);
CLI::Validator within_real(double lo, double hi);
template <class T>
CLI::Validator within(T lo, T hi) {
  if constexpr (std::is_floating_point_v<T>)
    return within_real(lo, hi);
  else
    return within_integer(lo, hi);
}

// The limits of dsl::Limits as flags, shared by every subcommand that checks a model.
void add_limit_flags(CLI::App& cmd, dsl::Limits& limits);

// --precision fp32|bf16, which overrides the file's `precision` statement (docs/language.md);
// apply_precision leaves the graph as it is when the flag was not given (empty).
void add_precision_flag(CLI::App& cmd, std::string& precision);
void apply_precision(dsl::Graph& graph, const std::string& precision);

// Reads and checks a .cnn file, printing its diagnostics (as text, or JSON lines with json)
// to stderr. Returns the Graph when the file is valid.
std::optional<dsl::Graph> load_model(const std::string& path, const dsl::Limits& limits,
                                     bool json = false);

// The model built into an executable by `cnnc build`. Subcommands given one take no FILE
// argument and no limit flags: the model was checked, under these limits, when it was built.
struct EmbeddedModel {
  std::string path;  // as the user named it to cnnc build: diagnostics and banners show it
  std::string text;  // the .cnn text
  dsl::Limits limits;
};

// The embedded model when there is one, else the .cnn file at path, as load_model.
std::optional<dsl::Graph> load_model(const EmbeddedModel* embedded, const std::string& path,
                                     const dsl::Limits& limits, bool json = false);

// Parses the command line and runs the chosen subcommand: status, or exit_usage for a usage
// error, or exit_internal (with the message that calls it a bug) for an escaped exception.
// `program` names the executable in messages.
int run_app(CLI::App& app, int argc, char** argv, const int& status, const std::string& program);

// Runs a command, turning the failures that are the user's to fix (data files, checkpoints,
// engines: a std::runtime_error) into their message and exit_user_error. Generated code that
// does not build is cnnc's bug when its message says "internal error": exit_internal.
int user_errors(const std::function<int()>& command);

// cnnc's name, description, --version and every subcommand below, one of which must be chosen.
// A subcommand's work runs in its callback, after the whole line was parsed and validated.
void register_commands(CLI::App& app, int& status);

void register_check(CLI::App& app, int& status);
void register_summary(CLI::App& app, int& status);
void register_train(CLI::App& app, int& status, const EmbeddedModel* embedded = nullptr);
void register_eval(CLI::App& app, int& status, const EmbeddedModel* embedded = nullptr);
void register_predict(CLI::App& app, int& status, const EmbeddedModel* embedded = nullptr);
void register_gen(CLI::App& app, int& status);
void register_build(CLI::App& app, int& status);
void register_verify(CLI::App& app, int& status);
void register_bench(CLI::App& app, int& status);
void register_viz(CLI::App& app, int& status);
void register_compare(CLI::App& app, int& status);
void register_sweep(CLI::App& app, int& status);

}  // namespace cnnc::cli
