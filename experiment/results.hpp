// One finished run of an experiment, and results.csv: every finished run, one row each, written
// atomically after each run so that an interrupted experiment loses only the runs under way.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cnnc::experiment {

struct Run {
  // What the run is: --resume keeps a finished run only when all of these match.
  std::string model;    // the model's name
  std::string variant;  // what changed; empty for the file as written
  uint64_t seed = 0;
  std::string file;    // the .cnn file as the user named it
  std::string digest;  // SHA-256 of the variant's .cnn text, the first 16 hex digits
  int64_t epochs = 0;
  int32_t limit = 0;  // 0: all the data
  std::string data, engine;
  int threads = 0;  // the run's own pool: results are bit-identical for one thread count

  // What it gave.
  std::string status;  // "finished", or "diverged" (a non-finite loss or gradient)
  int64_t params = 0, training_flops = 0;  // per image, as cnnc summary counts them
  double test_accuracy = 0, test_loss = 0, train_seconds = 0, train_images_per_second = 0;
  std::string weights_digest;  // of the trained parameters (rt::weights_digest)
  std::string dir;             // history.csv and checkpoint.bin, relative to --out

  bool same_run(const Run& other) const;
  // "lenet5", or "lenet5 conv1.filters=8": what tables call it.
  std::string label() const { return variant.empty() ? model : model + " " + variant; }
};

// Writes every run to path atomically: a header line, then one row per run (RFC 4180 quoting,
// numbers in the shortest form that reads back to the same double).
void write_results(const std::filesystem::path& path, const std::vector<Run>& runs);

// Reads what write_results wrote. Throws std::runtime_error naming the file and line of a row
// that is not one.
std::vector<Run> read_results(const std::filesystem::path& path);

// The JSON object of one run: model, variant, seed, params, test_accuracy, test_loss,
// train_seconds, train_images_per_second, then the rest of the row.
nlohmann::ordered_json run_json(const Run& run);

}  // namespace cnnc::experiment
