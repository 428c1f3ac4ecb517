// What an experiment shows: the table (a row per variant, seeds summarised), the chart of
// accuracy against parameters and against seconds, and report.html with both and every run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "experiment/experiment.hpp"

namespace cnnc::experiment {

// One variant's runs over its seeds.
struct Row {
  std::string label, file, variant;
  int64_t params = 0, training_flops = 0;
  int seeds = 0, threads = 0;
  double accuracy = 0;             // mean test accuracy
  double lowest = 0, highest = 0;  // over the seeds; their difference is the spread
  double loss = 0, seconds = 0, images_per_second = 0;  // means
  int diverged = 0;                                     // runs that diverged
};

// Runs grouped by file and variant, in the order they first appear.
std::vector<Row> summarize(const std::vector<Run>& runs);

// The table as cnnc prints it, one line per row, with a line that says what the columns count.
std::string table(const std::vector<Row>& rows);

// chart.png: test accuracy against parameters (log scale) and against training seconds, one
// point per variant at its mean, a bar from its lowest to its highest seed.
void write_chart(const std::filesystem::path& path, const std::vector<Row>& rows);

// report.html in out: the command, the machine, the table, chart.png, each run with links to
// its history.csv, checkpoint and (when out/<run>/viz/index.html exists) its cnnc viz pictures,
// and the skipped variants with their diagnostics. Self-contained: no scripts, no network.
void write_html(const std::filesystem::path& out, const std::string& command,
                const Outcome& outcome, const std::vector<Row>& rows);

}  // namespace cnnc::experiment
