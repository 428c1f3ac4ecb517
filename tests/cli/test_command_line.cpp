// cnnc's command line parsed without running a command (tests/fuzz/parse_only.hpp): what the
// command-line fuzzer relies on, and the crashes it found, kept fixed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/fuzz/parse_only.hpp"

using cnnc_test::parse_only;
using cnnc_test::ParseResult;

TEST_CASE("a valid command line is parsed and validated, and its command does not run") {
  std::filesystem::path out =
      std::filesystem::temp_directory_path() / "cnnc_test_parse_only_never_created";
  std::filesystem::remove_all(out);
  // train would create --out before anything else; a missing .cnn file is the command's to find.
  ParseResult r = parse_only({"train", "no/such/model.cnn", "--out", out.string(), "--max-steps",
                              "13", "--lr", "0.01", "--engine", "generic"});
  CHECK(r.accepted);
  CHECK(r.commands == std::vector<std::string>{"train"});
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

TEST_CASE("what the parser refuses carries cnnc's message and a usage error's status") {
  ParseResult nan = parse_only({"train", "m.cnn", "--lr", "nan"});
  CHECK_FALSE(nan.accepted);
  CHECK(nan.status != 0);
  CHECK(nan.err.find("--lr: nan is not a number from 1e-09 to 10") != std::string::npos);

  ParseResult none = parse_only({});
  CHECK_FALSE(none.accepted);
  CHECK(none.status != 0);
  CHECK(none.err.find("A subcommand is required") != std::string::npos);

  ParseResult both = parse_only({"viz", "m.cnn", "--image", "a.png", "--index", "3"});
  CHECK_FALSE(both.accepted);
  CHECK(both.err.find("--image excludes --index") != std::string::npos);

  // Help and --version are no errors: status 0, printed on stdout.
  ParseResult help = parse_only({"train", "--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("--max-steps") != std::string::npos);
  ParseResult version = parse_only({"--version"});
  CHECK(version.status == 0);
  CHECK(version.out.rfind("cnnc ", 0) == 0);
}
