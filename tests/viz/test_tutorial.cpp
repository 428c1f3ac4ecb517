// docs/tutorial.md stays true: every "    $ cnnc ..." line of it runs, in order, and succeeds, and
// every picture it shows, "![...](tutorial/NAME.png)<!-- from PATH -->", is byte for byte the file
// PATH those commands wrote. They run in a directory of this test's own, where models/, data/ and
// docs/ lead back to the source tree, so the runs/ they write never lands in it.
// CNNC_UPDATE_TUTORIAL=1 copies the pictures into docs/tutorial/ instead of comparing them.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "../run_command.hpp"
#include "../skip.hpp"

namespace fs = std::filesystem;

TEST_CASE("every command of docs/tutorial.md succeeds and writes the pictures it shows") {
  if (!cnnc_test::have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist (scripts/setup)");
  cnnc_test::TempDir dir("tutorial");
  for (const char* link : {"models", "data", "docs"})
    fs::create_directory_symlink(fs::path(CNNC_SOURCE_DIR) / link, dir.path / link);
  std::ifstream doc(CNNC_SOURCE_DIR "/docs/tutorial.md");
  REQUIRE(doc);
  int commands = 0;
  const std::regex picture(R"(^!\[[^\]]*\]\((tutorial/[^)]+\.png)\)<!-- from (\S+) -->$)");
  std::vector<std::pair<std::string, std::string>> pictures;  // in docs/, and as written
  for (std::string line; std::getline(doc, line);) {
    const std::string prompt = "    $ cnnc ";
    if (std::smatch m; std::regex_match(line, m, picture)) pictures.emplace_back(m[1], m[2]);
    if (line.rfind(prompt, 0) != 0) continue;
    const std::string args = line.substr(prompt.size());
    const auto r = cnnc_test::run("cd '" + dir.path.string() + "' && '" CNNC_EXE "' " + args);
    INFO("cnnc " << args << "\n" << r.out);
    REQUIRE(r.status == 0);
    ++commands;
  }
  CHECK(commands == 10);
  CHECK(pictures.size() == 10);
  auto bytes = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const bool update = std::getenv("CNNC_UPDATE_TUTORIAL") != nullptr;
  for (const auto& [shown, written] : pictures) {
    INFO("docs/" << shown << " is " << written << " (CNNC_UPDATE_TUTORIAL=1 updates it)");
    REQUIRE(fs::exists(dir.path / written));
    if (update)
      fs::copy_file(dir.path / written, fs::path(CNNC_SOURCE_DIR) / "docs" / shown,
                    fs::copy_options::overwrite_existing);
    CHECK(bytes(fs::path(CNNC_SOURCE_DIR) / "docs" / shown) == bytes(dir.path / written));
  }
}
