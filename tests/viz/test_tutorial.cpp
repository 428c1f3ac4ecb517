// docs/tutorial.md stays true: every "    $ cnnc ..." line of it runs, in order, and succeeds.
// They run in a directory of this test's own, where models/ and data/ lead back to the source
// tree, so the runs/ they write never lands in it.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "../run_command.hpp"
#include "../skip.hpp"

namespace fs = std::filesystem;

TEST_CASE("every command of docs/tutorial.md runs and succeeds") {
  if (!cnnc_test::have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist (scripts/setup)");
  cnnc_test::TempDir dir("tutorial");
  for (const char* link : {"models", "data"})
    fs::create_directory_symlink(fs::path(CNNC_SOURCE_DIR) / link, dir.path / link);
  std::ifstream doc(CNNC_SOURCE_DIR "/docs/tutorial.md");
  REQUIRE(doc);
  int commands = 0;
  for (std::string line; std::getline(doc, line);) {
    const std::string prompt = "    $ cnnc ";
    if (line.rfind(prompt, 0) != 0) continue;
    const std::string args = line.substr(prompt.size());
    const auto r = cnnc_test::run("cd '" + dir.path.string() + "' && '" CNNC_EXE "' " + args);
    INFO("cnnc " << args << "\n" << r.out);
    REQUIRE(r.status == 0);
    ++commands;
  }
  CHECK(commands == 5);
  CHECK(fs::exists(dir.path / "runs" / "edges" / "viz" / "index.html"));
  CHECK(fs::exists(dir.path / "runs" / "lenet5" / "viz" / "confusion.png"));
}
