// The table, the chart and report.html of an experiment.
#include "experiment/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "bench/machine.hpp"
#include "draw/charts.hpp"
#include "dsl/graph.hpp"
#include "train/atomic_file.hpp"

namespace cnnc::experiment {

namespace fs = std::filesystem;

namespace {

std::string percent(double x) {
  return fmt::format("{:.2f}%", 100 * x);
}

std::string spread_text(const Row& r) {
  return r.seeds > 1 ? fmt::format("{:.2f}", 100 * (r.highest - r.lowest)) : "-";
}

constexpr size_t columns = 9;
using Cells = std::array<std::string, columns>;
const Cells headings = {"model",     "params",  "train MFLOP", "test acc",       "spread",
                        "test loss", "train s", "images/s",    "seeds x threads"};

Cells cells(const Row& r) {
  return {r.label + (r.diverged ? fmt::format(" ({} diverged)", r.diverged) : ""),
          dsl::with_thousands(r.params),
          fmt::format("{:.3f}", r.training_flops / 1e6),
          percent(r.accuracy),
          spread_text(r),
          fmt::format("{:.4f}", r.loss),
          fmt::format("{:.1f}", r.seconds),
          dsl::with_thousands(static_cast<int64_t>(r.images_per_second + 0.5)),
          fmt::format("{} x {}", r.seeds, r.threads)};
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A relative link: every byte but the unreserved ones percent-encoded.
std::string href(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

constexpr std::string_view columns_note =
    "train MFLOP: one training step (forward and backward) per image, as cnnc summary counts it.\n"
    "test acc, test loss: the mean over seeds after the last epoch; spread: the largest test\n"
    "accuracy minus the smallest, in points. train s: seconds in training steps, evaluation\n"
    "excluded; images/s: training images per second of those. seeds x threads: the runs, and\n"
    "each run's threads (a seed and a thread count give bit-identical results).";

}  // namespace

std::vector<Row> summarize(const std::vector<Run>& runs) {
  std::vector<Row> rows;
  for (const Run& run : runs) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) {
      return r.file == run.file && r.variant == run.variant && r.label == run.label();
    });
    if (it == rows.end()) {
      rows.push_back({run.label(), run.file, run.variant, run.params, run.training_flops});
      it = rows.end() - 1;
      it->lowest = it->highest = run.test_accuracy;
    }
    Row& r = *it;
    r.lowest = std::min(r.lowest, run.test_accuracy);
    r.highest = std::max(r.highest, run.test_accuracy);
    r.seeds += 1;
    r.threads = run.threads;
    r.diverged += run.status == "diverged";
    r.accuracy += run.test_accuracy, r.loss += run.test_loss, r.seconds += run.train_seconds;
    r.images_per_second += run.train_images_per_second;
  }
  for (Row& r : rows)
    r.accuracy /= r.seeds, r.loss /= r.seeds, r.seconds /= r.seeds, r.images_per_second /= r.seeds;
  return rows;
}

std::string table(const std::vector<Row>& rows) {
  std::vector<Cells> all = {headings};
  for (const Row& r : rows) all.push_back(cells(r));
  std::array<size_t, columns> w{};
  for (const Cells& c : all)
    for (size_t i = 0; i < columns; ++i) w[i] = std::max(w[i], c[i].size());
  std::string out;
  for (const Cells& c : all) {
    out += fmt::format("{:<{}}", c[0], w[0]);
    for (size_t i = 1; i < columns; ++i) out += fmt::format("  {:>{}}", c[i], w[i]);
    out += "\n";
  }
  return out + std::string(columns_note) + "\n";
}

void write_chart(const fs::path& path, const std::vector<Row>& rows) {
  draw::ScatterChart by_params{
      "Test accuracy against parameters", "parameters (log scale)", "test accuracy (%)", true, {}};
  draw::ScatterChart by_seconds{"Test accuracy against training time",
                                "training seconds (mean over seeds)",
                                "test accuracy (%)",
                                false,
                                {}};
  for (const Row& r : rows) {
    // A sweep's points are told apart by what changed; a comparison's by the model.
    const std::string& label = r.variant.empty() ? r.label : r.variant;
    const double y = 100 * r.accuracy, lo = 100 * r.lowest, hi = 100 * r.highest;
    by_params.points.push_back({label, static_cast<double>(r.params), y, lo, hi});
    by_seconds.points.push_back({label, r.seconds, y, lo, hi});
  }
  draw::write_scatter_charts(path, {by_params, by_seconds}, 620, 440);
}

void write_html(const fs::path& out, const std::string& command, const Outcome& outcome,
                const std::vector<Row>& rows) {
  std::string h = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cnnc experiment</title>
<style>
body { font-family: "DejaVu Sans", sans-serif; margin: 2em; color: #1e1e1e; max-width: 1300px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child, .files { text-align: left; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
p.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
</style></head><body>
<h1>cnnc experiment</h1>
)";
  h += fmt::format("<p><code>{}</code></p>\n<p class=\"note\">Machine: {}</p>\n",
                   html_escape(command), html_escape(bench::this_cpu().describe()));
  h += "<h2>Results</h2>\n<table>\n<tr>";
  for (const std::string& c : headings) h += "<th>" + html_escape(c) + "</th>";
  h += "</tr>\n";
  for (const Row& r : rows) {
    h += "<tr>";
    for (const std::string& c : cells(r)) h += "<td>" + html_escape(c) + "</td>";
    h += "</tr>\n";
  }
  h += fmt::format("</table>\n<p class=\"note\">{}</p>\n", html_escape(std::string(columns_note)));
  h += "<p><img src=\"chart.png\" alt=\"test accuracy against parameters and against training "
       "seconds\"></p>\n";
  if (!outcome.skipped.empty()) {
    h += "<h2>Skipped: they do not check</h2>\n";
    for (const Variant* v : outcome.skipped)
      h += fmt::format("<p>{}</p>\n<pre>{}</pre>\n", html_escape(v->name),
                       html_escape(v->diagnostic));
  }
  h += "<h2>Runs</h2>\n<table>\n<tr><th>model</th><th>seed</th><th>test acc</th><th>test "
       "loss</th><th>train s</th><th class=\"files\">files</th></tr>\n";
  for (const Run& r : outcome.runs) {
    std::string files = fmt::format(
        "<a href=\"{0}/history.csv\">history.csv</a> · <a "
        "href=\"{0}/checkpoint.bin\">checkpoint.bin</a>",
        href(r.dir));
    if (fs::exists(out / r.dir / "viz" / "index.html"))
      files += fmt::format(" · <a href=\"{}/viz/index.html\">pictures</a>", href(r.dir));
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4f}</td><td>{:.1f}</td><td "
        "class=\"files\">{}</td></tr>\n",
        html_escape(r.label()), r.seed, percent(r.test_accuracy), r.test_loss, r.train_seconds,
        files);
  }
  h += "</table>\n<p class=\"note\">A run's pictures (filters, feature maps, curves, confusion "
       "matrix): <code>--viz</code>, or <code>cnnc viz MODEL --weights "
       "DIR/checkpoint.bin --out DIR/viz</code> afterwards (MODEL is the variant's model.cnn "
       "beside its seed directories).</p>\n</body></html>\n";
  rt::write_file_atomically(out / "report.html", h);
}

}  // namespace cnnc::experiment
