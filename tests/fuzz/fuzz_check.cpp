// libFuzzer target: any bytes through the whole front end must end in a Graph or in errors,
// never a crash, a hang or a Graph with errors. Run: scripts/fuzz SECONDS check
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dsl/frontend.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc::dsl;
  SourceFile file("fuzz.cnn", std::string(reinterpret_cast<const char*>(data), size));
  Diagnostics diags(file);
  std::optional<Graph> graph = analyze(file, {}, diags);
  if (graph.has_value() == diags.has_errors()) std::abort();
  for (const Diagnostic& d : diags.sorted()) {
    if (d.range.end > size) std::abort();
    (void)render(file, d);
  }
  return 0;
}
