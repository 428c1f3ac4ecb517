// libFuzzer target: any bytes as a file given to cnnc predict (PNG, PGM, PPM or IDX, told apart
// by their first bytes) must give pictures of the size they say or an error naming the file,
// never a crash or a hang. Run: scripts/fuzz SECONDS pictures
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "cli/pictures.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc::cli;
  try {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    for (const Picture& p : decode_pictures("fuzz", bytes, 4))
      if (p.rows <= 0 || p.cols <= 0 || p.pixels.size() != static_cast<size_t>(p.rows) * p.cols)
        std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
