// cnnc compare and cnnc sweep end to end, on the first 256 images and one epoch so that each
// takes seconds: parameters against cnnc summary, a variant that does not fit, --resume, the
// JSON against results.csv, and --jobs against the same runs alone.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "../run_command.hpp"
#include "../skip.hpp"
#include "experiment/results.hpp"

using namespace cnnc_test;
namespace fs = std::filesystem;

namespace {

const std::string quick = " --epochs 1 --limit 256 --engine generic --json";

// cnnc with args, on the quick settings, its results in out.
Output quick_run(const std::string& args, const std::string& out) {
  return run_apart("'" CNNC_EXE "' " + args + " --out " + out + quick);
}

nlohmann::json last_line(const std::string& out) {
  size_t end = out.find_last_not_of('\n');
  size_t start = out.rfind('\n', end);
  return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1));
}

}  // namespace

TEST_CASE("sweep: every variant's parameters are cnnc summary's for its model.cnn") {
  if (!have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist");
  TempDir dir("sweep_params");
  Output r = quick_run(
      "sweep models/lenet5.cnn --set conv1.filters=4,8 --set dense1.units=32 --viz", dir / "out");
  INFO(r.err);
  REQUIRE(r.status == 0);
  nlohmann::json runs = last_line(r.out)["runs"];
  REQUIRE(runs.size() == 3);
  CHECK(runs[0]["variant"] == "conv1.filters=4");
  CHECK(runs[2]["variant"] == "dense1.units=32");
  for (const nlohmann::json& run : runs) {
    // The variant's text is saved beside its runs; cnnc summary counts it independently.
    std::string model =
        (fs::path(dir / "out") / run["dir"].get<std::string>()).parent_path() / "model.cnn";
    Output s = run_apart("'" CNNC_EXE "' summary --json '" + model + "'");
    REQUIRE(s.status == 0);
    CHECK(run["params"] == nlohmann::json::parse(s.out)["params"]);
    CHECK(run["test_accuracy"].get<double>() > 0.1);  // it learned something in 4 steps
  }
  CHECK(fs::exists(dir / "out/chart.png"));
  // The report links each run's cnnc viz pictures, which --viz wrote.
  std::ifstream in(dir / "out/report.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(contains(html, "<img src=\"chart.png\""));
  CHECK(contains(html, "<a href=\"conv1.filters%3D8/seed-1/viz/index.html\">pictures</a>"));
  CHECK(fs::exists(dir / "out/conv1.filters=8/seed-1/viz/index.html"));
  CHECK(fs::exists(dir / "out/conv1.filters=8/seed-1/viz/filters_conv1.png"));
}

TEST_CASE("sweep: a variant that does not fit is reported with its diagnostic and not run") {
  if (!have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist");
  TempDir dir("sweep_skip");
  Output r = quick_run("sweep models/lenet5.cnn --set conv2.kernel=3x3,20x20", dir / "out");
  REQUIRE(r.status == 0);
  nlohmann::json j = last_line(r.out);
  REQUIRE(j["runs"].size() == 1);
  CHECK(j["runs"][0]["variant"] == "conv2.kernel=3x3");
  REQUIRE(j["skipped"].size() == 1);
  const std::string diagnostic =
      "models/lenet5.cnn [conv2.kernel=20x20]:13:1: error: 'conv 16 20x20' needs an input "
      "of at least 20x20";
  CHECK(contains(j["skipped"][0]["diagnostic"].get<std::string>(), diagnostic));
  CHECK(contains(r.err, "cnnc: conv2.kernel=20x20 does not check and is skipped:\n" + diagnostic));
  CHECK_FALSE(fs::exists(dir / "out/conv2.kernel=20x20"));
}

TEST_CASE("compare: --resume trains nothing finished, and the JSON is results.csv") {
  if (!have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist");
  TempDir dir("compare_resume");
  const std::string cmd = "'" CNNC_EXE
                          "' compare models/mlp.cnn models/lenet5.cnn --seeds 1,2 "
                          "--out " +
                          dir / "out" + quick;
  Output first = run_apart(cmd);
  INFO(first.err);
  REQUIRE(first.status == 0);
  nlohmann::json runs = last_line(first.out)["runs"];
  REQUIRE(runs.size() == 4);

  std::vector<cnnc::experiment::Run> csv = cnnc::experiment::read_results(dir / "out/results.csv");
  REQUIRE(csv.size() == runs.size());
  for (size_t i = 0; i < csv.size(); ++i) {
    CHECK(runs[i] == cnnc::experiment::run_json(csv[i]));
    CHECK(csv[i].status == "finished");
  }
  CHECK(csv[0].model == "mlp");
  CHECK(csv[3].model == "lenet5");
  CHECK(csv[3].seed == 2);

  // Without --resume, finished work is never overwritten.
  Run refused = run(cmd);
  CHECK(refused.status == 1);
  CHECK(contains(refused.out, "results.csv exists: --resume continues that experiment"));

  // One run lost (as if interrupted before it finished): --resume trains that one alone.
  const fs::path kept = dir / "out/mlp/seed-1/history.csv";
  const fs::file_time_type kept_time = fs::last_write_time(kept);
  cnnc::experiment::write_results(dir / "out/results.csv", {csv[0], csv[1], csv[2]});
  Output resumed = run_apart(cmd + " --resume");
  REQUIRE(resumed.status == 0);
  nlohmann::json now = last_line(resumed.out)["runs"];
  REQUIRE(now.size() == 4);
  for (size_t i = 0; i < 3; ++i) CHECK(now[i] == runs[i]);  // kept as they were
  // Trained again: the same bits (the same seed and threads), other seconds.
  CHECK(now[3]["weights_digest"] == runs[3]["weights_digest"]);
  CHECK(now[3]["test_loss"] == runs[3]["test_loss"]);
  CHECK(fs::last_write_time(kept) == kept_time);
  CHECK(cnnc::experiment::read_results(dir / "out/results.csv").size() == 4);
  const fs::file_time_type last_time =
      fs::last_write_time(dir / "out/lenet5/seed-2/checkpoint.bin");
  Output again = run_apart(cmd + " --resume");
  CHECK(last_line(again.out)["runs"] == now);
  CHECK(contains(again.out, "4 of 4 runs are in"));
  CHECK(fs::last_write_time(dir / "out/lenet5/seed-2/checkpoint.bin") == last_time);

  // A different experiment in the same --out is refused, not mixed in.
  Run other = run("'" CNNC_EXE "' compare models/mlp.cnn models/lenet5.cnn --seeds 1,2 --out " +
                  dir / "out" + " --epochs 1 --limit 128 --engine generic --resume");
  CHECK(other.status == 1);
  CHECK(contains(other.out,
                 "holds a run this command would not make (mlp seed 1, 1 epochs, "
                 "limit 256"));
}

TEST_CASE("compare --jobs 2: each run is the same bits as that run alone on as many threads") {
  if (!have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist");
  TempDir dir("compare_jobs");
  const std::string common = "compare models/lenet5.cnn models/mlp.cnn --seeds 3,4";
  Output together = quick_run(common + " --jobs 2 --threads 2", dir / "a");
  Output alone = quick_run(common + " --jobs 1 --threads 1", dir / "b");
  REQUIRE(together.status == 0);
  REQUIRE(alone.status == 0);
  nlohmann::json a = last_line(together.out)["runs"], b = last_line(alone.out)["runs"];
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["threads"] == 1);
    CHECK(a[i]["weights_digest"] == b[i]["weights_digest"]);
    CHECK(a[i]["test_loss"] == b[i]["test_loss"]);
  }
  // And cnnc train agrees with the run it stands for.
  Output train = quick_run("train models/mlp.cnn --seed 4 --threads 1", dir / "t");
  REQUIRE(train.status == 0);
  CHECK(last_line(train.out)["weights_digest"] == a[3]["weights_digest"]);
}

TEST_CASE("sweep: the specialised code is compiled once per variant, whatever the seeds") {
  if (!have_mnist()) CNNC_SKIP("data", "no MNIST in data/mnist");
  TempDir dir("sweep_compile");
  Output r = run_apart("'" CNNC_EXE
                       "' sweep models/lenet5.cnn --set conv1.filters=4,5 --seeds "
                       "1,2 --epochs 1 --limit 128 --out " +
                       dir / "out");
  if (r.status != 0 && contains(r.err, "compiler")) CNNC_SKIP("compiler", r.err);
  REQUIRE(r.status == 0);
  size_t engines = 0;
  for (size_t at = 0; (at = r.out.find(": specialized-", at)) != std::string::npos; ++at) ++engines;
  CHECK(engines == 2);
  CHECK(contains(r.out, "4 runs (4 trained now"));
}

TEST_CASE("sweep: a misspelt --set stops before anything runs, naming what exists") {
  TempDir dir("sweep_names");
  Run r = run("'" CNNC_EXE "' sweep models/lenet5.cnn --set conv3.filters=4 --out " + dir / "o");
  CHECK(r.status == 1);
  CHECK(contains(r.out,
                 "cnnc: error: --set conv3.filters: no such setting; the layers of lenet5 "
                 "are conv1, maxpool1, conv2, maxpool2, dense1, dense2, dense3"));
  CHECK_FALSE(fs::exists(dir / "o"));
  check_refusal("compare models/mlp.cnn --seeds 1,2,1 --out " + dir / "o",
                "cnnc: error: --seeds: 1 is given twice\n");
  CHECK_FALSE(fs::exists(dir / "o"));
}

TEST_CASE("compare: missing data is refused before anything is written") {
  TempDir dir("compare_nodata");
  Run r = run("'" CNNC_EXE "' compare models/lenet5.cnn --data " + dir / "none" + " --out " +
              dir / "o");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cnnc: error: "));
  CHECK(contains(r.out, dir / "none"));
  CHECK_FALSE(fs::exists(dir / "o"));
}
