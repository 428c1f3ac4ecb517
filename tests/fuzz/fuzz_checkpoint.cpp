// libFuzzer target: any bytes as a checkpoint of the model whose digest is 0x1234 and that has 3
// parameters (the seeds' model) must give its parameters, optimizer state and settings or a
// clean error, never a crash or an allocation the bytes do not back. Run: scripts/fuzz SECONDS
// checkpoint
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <stdexcept>

#include "train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc::rt;
  MemorySource in(std::as_bytes(std::span(data, size)));
  try {
    Checkpoint c = read_checkpoint(in, "fuzz.ckpt", 0x1234, 3);
    size_t settings = 0;
    for (const auto& [name, value] : c.settings) settings += name.size() + value.size() + 2;
    if (c.model_digest != 0x1234 || c.params.size() != 3 || c.optimizer.size() != 6 ||
        size != 80 + settings + 12 * c.params.size() + 4)
      std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
