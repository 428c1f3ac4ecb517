// libFuzzer target: any bytes, as an IDX images file and as an IDX labels file, plain or gzip,
// must give exactly what the header announces or a DataError, never a crash, a hang or memory
// beyond what the bytes hold. Run: scripts/fuzz SECONDS idx
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc::rt;
  auto bytes = std::as_bytes(std::span(data, size));
  try {
    MemorySource in(bytes);
    IdxImages im = read_idx_images(in, "fuzz.idx");
    if (im.count <= 0 || im.rows <= 0 || im.cols <= 0 ||
        im.pixels.size() != static_cast<size_t>(im.count) * im.rows * im.cols)
      std::abort();
  } catch (const DataError&) {
  }
  try {
    MemorySource in(bytes);
    IdxLabels lb = read_idx_labels(in, "fuzz.idx");
    if (lb.count <= 0 || lb.labels.size() != static_cast<size_t>(lb.count)) std::abort();
  } catch (const DataError&) {
  }
  return 0;
}
