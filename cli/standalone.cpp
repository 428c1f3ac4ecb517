// What an executable built by `cnnc build` does: cnnc's train, eval and predict on its one model,
// whose specialised code is linked in, so nothing is generated or compiled at run time.
#include "cli/standalone.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.hpp"
#include "cnnc/version.hpp"
#include "engine/engine.hpp"

namespace cnnc::standalone {

int main(int argc, char** argv, const Model& model) {
  using namespace cnnc::cli;
  EmbeddedModel m;  // outlives app, whose subcommands point at it
  m.path.assign(reinterpret_cast<const char*>(model.path), model.path_size);
  m.text.assign(reinterpret_cast<const char*>(model.text), model.text_size);
  m.limits = {model.max_params, model.max_activation_bytes, model.max_code_bytes};
  const EmbeddedModel* embedded = &m;
  engine::link_model(
      {model.name, m.text, model.max_batch, model.create, model.destroy, model.built_with});

  std::string program =
      argc > 0 ? std::filesystem::path(argv[0]).filename().string() : std::string(model.name);
  CLI::App app{fmt::format("{}: a trainer for the model {}, built by cnnc {} from {} ({}); "
                           "its specialised code is linked in",
                           program, model.name, cnnc::version, embedded->path, model.built_with),
               program};
  app.set_version_flag("--version", fmt::format("{} (cnnc {}, model {}, {})", program,
                                                cnnc::version, model.name, model.built_with));
  app.require_subcommand(1);
  int status = exit_ok;
  register_train(app, status, embedded);
  register_eval(app, status, embedded);
  register_predict(app, status, embedded);
  app.add_subcommand("model", "Print the .cnn text this executable was built from")
      ->callback([embedded] { fmt::print("{}", embedded->text); });
  return run_app(app, argc, argv, status, program);
}

}  // namespace cnnc::standalone
