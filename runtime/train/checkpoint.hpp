// Checkpoints: the parameters and optimizer state after an epoch, written so that a crash at
// any moment leaves either the old file or the new one, never a torn one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/byte_source.hpp"

namespace cnnc::rt {

struct Checkpoint {
  uint64_t model_digest = 0;  // see params.hpp; loading into another model is refused
  uint32_t epochs_done = 0;
  int64_t step = 0;              // optimizer steps taken
  std::vector<float> params;     // param_count
  std::vector<float> optimizer;  // 2 * param_count
};

// Layout (little-endian): "CNNCCKPT", u32 version, u32 reserved, u64 model digest,
// u32 epochs_done, u32 reserved, i64 step, i64 param_count, f32 params[param_count],
// f32 optimizer[2 * param_count], u32 CRC-32 of every byte before it. Written to a temporary
// file in the same directory, fsynced, then renamed over the target.
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c);

// Throws std::runtime_error naming the file and what is wrong: missing or not a regular file
// (with the system's reason), not a checkpoint, another version, truncated, a checksum mismatch,
// or a different model than expected_digest. The header is checked against the file's real size
// and expected_digest before the parameters are allocated.
Checkpoint load_checkpoint(const std::filesystem::path& path, uint64_t expected_digest);

// The same from any bytes (the fuzzer's); name stands for the file in messages.
Checkpoint read_checkpoint(ByteSource& in, const std::string& name, uint64_t expected_digest);

}  // namespace cnnc::rt
