// libFuzzer target: any bytes as cnnc's arguments, one per line (a newline or NUL ends each;
// empty ones count), parsed and validated as cnnc parses them, but not run (parse_only.hpp). Each
// must choose one subcommand, or be refused with a message (help and --version print theirs), and
// nothing but CLI11's ParseError may escape: anything else would reach the user as an internal
// error. Run: scripts/fuzz SECONDS cli
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/fuzz/parse_only.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args;
  std::string arg;
  for (size_t i = 0; i < size; ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  if (!arg.empty()) args.push_back(arg);
  cnnc_test::ParseResult r = cnnc_test::parse_only(args);
  bool said = r.status == 0 ? !r.out.empty() : !r.err.empty();
  if (r.accepted ? r.commands.size() != 1 : !said) std::abort();
  return 0;
}
