// cnnc gen FILE -o DIR: writes the specialised <model>.gen.cpp and <model>.gen.hpp.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "cli/commands.hpp"
#include "codegen/compile/jit_clang.hpp"
#include "codegen/emit_model.hpp"
#include "train/atomic_file.hpp"

namespace cnnc::cli {

void register_gen(CLI::App& app, int& status) {
  struct Options {
    std::string file, out_dir;
    std::optional<int64_t> batch;
    bool stats = false, format = false;
    dsl::Limits limits;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "gen", "Generate the specialised C++ for a model: <model>.gen.cpp and <model>.gen.hpp");
  cmd->add_option("file", opt->file, ".cnn file")->required();
  cmd->add_option("-o,--out", opt->out_dir, "Directory to write into (created if missing)")
      ->required();
  cmd->add_option("--batch", opt->batch,
                  "Override the file's batch: the largest slice the code takes")
      ->check(within(int64_t{1}, int64_t{65536}));
  cmd->add_flag("--stats", opt->stats, "Print lines, functions, bytes and generation time");
  cmd->add_flag("--format", opt->format,
                "Run clang-format (built in, cnnc's style) over both files: for reading; the "
                "generated layout is what cnnc compiles");
  add_limit_flags(*cmd, opt->limits);
  cmd->callback([opt, &status] {
    std::optional<dsl::Graph> g = load_model(opt->file, opt->limits);
    if (!g) {
      status = exit_user_error;
      return;
    }
    if (opt->batch) g->training.batch = *opt->batch;
    auto start = std::chrono::steady_clock::now();
    codegen::Generated gen = codegen::generate(
        *g, {g->source_path, g->source_text, static_cast<int>(g->training.batch)});
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (opt->format) {
      try {
        gen.source = codegen::jit::format_source(gen.source, g->name + ".gen.cpp");
        gen.header = codegen::jit::format_source(gen.header, g->name + ".gen.hpp");
      } catch (const std::runtime_error& e) {
        fmt::print(stderr, "cnnc: error: {}\n", e.what());
        status = exit_user_error;
        return;
      }
    }
    std::filesystem::path dir(opt->out_dir);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      fmt::print(stderr, "cnnc: error: cannot create '{}': {}\n", dir.string(), ec.message());
      status = exit_user_error;
      return;
    }
    try {
      rt::write_file_atomically(dir / (g->name + ".gen.cpp"), gen.source);
      rt::write_file_atomically(dir / (g->name + ".gen.hpp"), gen.header);
    } catch (const std::runtime_error& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
      return;
    }
    fmt::print("wrote {} and {}\n", (dir / (g->name + ".gen.cpp")).string(),
               (dir / (g->name + ".gen.hpp")).string());
    if (opt->stats)
      fmt::print(
          "{} lines, {} functions, {} bytes of source (about {} KiB of object code per ISA "
          "variant, estimated), generated in {:.1f} ms\n",
          dsl::with_thousands(gen.lines), gen.functions,
          dsl::with_thousands(static_cast<int64_t>(gen.source.size())),
          dsl::with_thousands(static_cast<int64_t>(gen.source.size()) / 3 / 1024 / 2), ms);
    status = exit_ok;
  });
}

}  // namespace cnnc::cli
