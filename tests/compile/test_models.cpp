// Every shipped model, built in-process, agrees with the generic engine on every ISA this CPU
// runs: the comparison cnnc verify makes (engine/verify.hpp), forced onto the Clang libraries.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../dsl/check_text.hpp"
#include "../skip.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/emit_model.hpp"
#include "engine/verify.hpp"

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> shipped_models() {
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(fs::path(CNNC_SOURCE_DIR) / "models")) {
    if (e.path().extension() == ".cnn") found.push_back(e.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

TEST_CASE("Every model in models/, built in-process, agrees with the generic engine") {
  if (!codegen::in_process_available()) {
    CNNC_SKIP("clang", "cnnc was built without the Clang libraries");
  }
  std::vector<fs::path> models = shipped_models();
  REQUIRE(models.size() >= 4);
  // verify_specialized builds with the default options; CNNC_BUILD=jit makes that in-process
  // (or an error), never a quiet fall back to the subprocess.
  std::optional<std::string> old;
  if (const char* v = std::getenv("CNNC_BUILD")) old = v;
  ::setenv("CNNC_BUILD", "jit", 1);
  for (const fs::path& path : models) {
    DYNAMIC_SECTION(path.filename().string()) {
      std::string text = read(path);
      dsl::Graph g = test::check_text(text, {}, path.string()).graph.value();
      // The source verify_specialized generates for n = 13, so that its build is a cache hit.
      dsl::Graph g13 = g;
      g13.training.batch = 13;
      codegen::Generated gen = codegen::emit_model(g13, {g.source_path, g.source_text, 13});
      codegen::GeneratedModel built = codegen::build_generated(gen.source, g.name, {});
      CHECK(built.backend() == "jit");
      INFO(g.name << ": " << built.summary());

      engine::VerifyReport r = engine::verify_specialized(g, 13, 7, {"avx512", "avx2", "portable"});
      int ran = 0;
      for (const engine::TargetCheck& t : r.targets) {
        if (t.engine.empty()) continue;  // this CPU cannot run the target
        ++ran;
        for (const engine::TensorCheck& c : t.tensors) {
          INFO(t.target << " " << c.tensor << ": max abs err " << c.max_abs << ", largest value "
                        << c.max_ref);
          CHECK(c.ok());
        }
      }
      CHECK(ran >= 1);
      CHECK(r.ok());
    }
  }
  if (old) {
    ::setenv("CNNC_BUILD", old->c_str(), 1);
  } else {
    ::unsetenv("CNNC_BUILD");
  }
}
