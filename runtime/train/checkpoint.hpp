// Checkpoints: the parameters and optimizer state of a run, after an epoch or where it was
// stopped within one, with the settings the run's bits depend on; written so that a crash at any
// moment leaves either the old file or the new one, never a torn one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data/byte_source.hpp"

namespace cnnc::rt {

// Every setting a run's weights depend on (seed, threads, engine, optimizer, data, ...), as
// name and value, in the order they were recorded: a resumed run must have the same ones.
using RunSettings = std::vector<std::pair<std::string, std::string>>;

struct Checkpoint {
  uint64_t model_digest = 0;  // see params.hpp; loading into another model is refused
  uint32_t epochs_done = 0;
  uint32_t batches_done = 0;  // of epoch epochs_done + 1, when the run stopped within it
  int64_t step = 0;           // optimizer steps taken
  // The stopped epoch's sums so far (zero at an epoch's end): its history row comes out as an
  // uninterrupted run's.
  double loss_sum = 0;
  int64_t correct = 0, images = 0;
  double seconds = 0;
  RunSettings settings;
  std::vector<float> params;     // param_count
  std::vector<float> optimizer;  // 2 * param_count
};

// Layout (little-endian), version 2: "CNNCCKPT", u32 version, u32 settings_bytes, u64 model
// digest, u32 epochs_done, u32 batches_done, i64 step, i64 param_count, f64 loss_sum, i64
// correct, i64 images, f64 seconds, the settings as settings_bytes of "name=value\n" lines,
// f32 params[param_count], f32 optimizer[2 * param_count], u32 CRC-32 of every byte before it.
// Written to a temporary file in the same directory, fsynced, then renamed over the target.
// Version 1 (no settings, no place within an epoch) is refused.
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c);

// Throws std::runtime_error naming the file and what is wrong: missing or not a regular file
// (with the system's reason), not a checkpoint, another version, truncated, a checksum mismatch,
// or a different model than expected_digest with expected_count parameters. The header is
// checked against the file's real size and the expected model before anything it announces is
// allocated or read.
Checkpoint load_checkpoint(const std::filesystem::path& path, uint64_t expected_digest,
                           int64_t expected_count);

// The same from any bytes (the fuzzer's); name stands for the file in messages.
Checkpoint read_checkpoint(ByteSource& in, const std::string& name, uint64_t expected_digest,
                           int64_t expected_count);

// What differs between a checkpoint's settings and a run's, one "name: the checkpoint's X, this
// run's Y" line each (a setting only one side has shows as "none" on the other); empty when
// they agree.
std::vector<std::string> settings_differences(const RunSettings& checkpoint,
                                              const RunSettings& run);

// load_checkpoint for a resumed run whose settings are `settings`: a checkpoint written with
// others is refused (std::runtime_error) with each difference named, since the resumed run could
// not end with an uninterrupted run's bits.
Checkpoint load_to_resume(const std::filesystem::path& path, uint64_t expected_digest,
                          int64_t expected_count, const RunSettings& settings);

}  // namespace cnnc::rt
