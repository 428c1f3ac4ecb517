// cnnc bench as a script uses it: the JSON last line, the peers that may be missing (PyTorch,
// oneDNN), --to-accuracy, user errors and --help. Timings are never checked against a bound
// (DESIGN.md: timed checks are benchmarks, not pass/fail tests), and nothing here needs torch.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../data/idx_files.hpp"
#include "../run_command.hpp"

namespace {

// `program` is the shell text that runs cnnc, environment assignments allowed in front; stdout
// and stderr stay apart so that the last line of stdout can be read as a script would.
cnnc_test::Output bench_cnnc_with(const std::string& program, const std::string& args) {
  return cnnc_test::run_apart(program + " " + args);
}

cnnc_test::Output bench_cnnc(const std::string& args) {
  return bench_cnnc_with("'" CNNC_EXE "'", args);
}

std::string bench_last_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// A strict little JSON reader, enough to prove the line parses: it flattens every scalar into
// path -> text ("engines.0.ratio" -> "1.0000"; strings keep their quotes) and fails on any
// syntax error or trailing text.
class BenchJson {
 public:
  explicit BenchJson(const std::string& text) : s_(text) {
    ok = value("") && (skip(), i_ == s_.size());
  }
  bool ok = false;
  std::map<std::string, std::string> flat;

 private:
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    if (i_ >= s_.size()) return false;
    out = s_.substr(start, i_ - start);
    return ++i_, true;
  }
  bool value(const std::string& path) {
    skip();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      if (eat('}')) return true;
      do {
        std::string key;
        if (!string(key) || !eat(':') || !value(path.empty() ? key : path + "." + key))
          return false;
      } while (eat(','));
      return eat('}');
    }
    if (c == '[') {
      ++i_;
      if (eat(']')) return true;
      int index = 0;
      do {
        if (!value(path + "." + std::to_string(index++))) return false;
      } while (eat(','));
      return eat(']');
    }
    if (c == '"') {
      std::string text;
      if (!string(text)) return false;
      flat[path] = '"' + text + '"';
      return true;
    }
    for (const char* word : {"true", "false", "null"})
      if (s_.compare(i_, std::string(word).size(), word) == 0) {
        flat[path] = word;
        i_ += std::string(word).size();
        return true;
      }
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    std::strtod(begin, &end);
    if (end == begin) return false;
    flat[path] = std::string(begin, static_cast<size_t>(end - begin));
    i_ += static_cast<size_t>(end - begin);
    return true;
  }
  std::string s_;
  size_t i_ = 0;
};

double bench_number(const BenchJson& j, const std::string& key) {
  auto it = j.flat.find(key);
  return it == j.flat.end() ? -1 : std::strtod(it->second.c_str(), nullptr);
}

}  // namespace

TEST_CASE("cnnc bench --json ends with one object of positive figures per engine") {
  cnnc_test::Output r =
      bench_cnnc("bench models/lenet5.cnn --engines generic --reps 1 --seconds 0.05 --json");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(j.flat["model"] == "\"lenet5\"");
  CHECK(j.flat["engines.0.engine"] == "\"generic\"");
  CHECK(j.flat.count("engines.1.engine") == 0);
  CHECK(bench_number(j, "reps") == 1);
  CHECK(bench_number(j, "batch") == 64);  // the file's batch
  CHECK(bench_number(j, "threads") >= 1);
  for (const char* key :
       {"train_images_per_second", "infer_images_per_second", "gflops", "peak_share", "ratio"})
    CHECK(bench_number(j, std::string("engines.0.") + key) > 0);
  CHECK(bench_number(j, "engines.0.ratio") == 1);  // the first engine is the reference
  // The peak is measured on the bench's threads unless given.
  CHECK(j.flat["peak_measured"] == "true");
  CHECK(bench_number(j, "peak_gflops") > 0);
  CHECK(bench_number(j, "engines.0.infer_peak_share") > 0);
  CHECK(j.flat["engines.0.label"] == "\"generic\"");
  CHECK(j.flat["engines.0.diverged"] == "false");
  CHECK(j.flat.count("skipped") == 0);  // an empty list: nothing was skipped
}

TEST_CASE("cnnc bench --peak-gflops replaces the measured peak") {
  cnnc_test::Output r = bench_cnnc(
      "bench models/mlp.cnn --engines generic --reps 1 --seconds 0.01 --peak-gflops 232 "
      "--threads 1 --json");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(j.flat["peak_measured"] == "false");
  CHECK(bench_number(j, "peak_gflops") == 116);  // 232 for 2 cores, scaled to 1 thread
  CHECK(r.out.find("not measured") != std::string::npos);
}

TEST_CASE("cnnc bench: without PyTorch, one line says so and the other engines still run") {
  // An interpreter that does not exist stands for a machine without torch: the same path
  // (PytorchPeer::start fails, the engine is skipped), and it never depends on what is installed.
  const std::string args =
      "bench models/mlp.cnn --engines generic,pytorch --reps 1 --seconds 0.01 --json";
  for (const cnnc_test::Output& r :
       {bench_cnnc_with("CNNC_PYTHON=/nonexistent/python3 '" CNNC_EXE "'", args),
        bench_cnnc(args + " --python /nonexistent/python3")}) {
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("pytorch: skipped: /nonexistent/python3 is not an executable interpreter") !=
          std::string::npos);
    BenchJson j(bench_last_line(r.out));
    REQUIRE(j.ok);
    CHECK(j.flat["engines.0.engine"] == "\"generic\"");
    CHECK(j.flat.count("engines.1.engine") == 0);
    CHECK(j.flat["skipped.0.engine"] == "\"pytorch\"");
    CHECK(j.flat["skipped.0.reason"].find("not an executable interpreter") != std::string::npos);
  }
}

TEST_CASE("cnnc bench: a script that cannot build the network is skipped, not fatal") {
  // A fake interpreter that answers like pytorch_mnist.py without torch.
  std::string fake = "/tmp/cnnc_test_bench_fake_python_" + std::to_string(getpid());
  {
    std::FILE* f = std::fopen(fake.c_str(), "w");
    REQUIRE(f);
    std::fputs("#!/bin/sh\necho '{\"error\": \"PyTorch is not installed for fake\"}'\n", f);
    std::fclose(f);
    chmod(fake.c_str(), 0755);
  }
  cnnc_test::Output r = bench_cnnc(
      "bench models/mlp.cnn --engines pytorch,generic --reps 1 --seconds "
      "0.01 --json --python " +
      fake);
  std::remove(fake.c_str());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("pytorch: skipped: PyTorch is not installed for fake") != std::string::npos);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(j.flat["engines.0.engine"] == "\"generic\"");  // the next engine became the reference
  CHECK(bench_number(j, "engines.0.ratio") == 1);
}

TEST_CASE("cnnc bench --engines onednn runs the oneDNN network or says why it cannot") {
  cnnc_test::Output r =
      bench_cnnc("bench models/lenet5.cnn --engines generic,onednn --reps 1 --seconds 0.01 --json");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);  // the verification passed: oneDNN infers what the generic engine does
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  bool ran = j.flat["engines.1.engine"] == "\"onednn\"";
  bool skipped = j.flat["skipped.0.engine"] == "\"onednn\"";
  CHECK(ran != skipped);
  if (ran) CHECK(bench_number(j, "engines.1.train_images_per_second") > 0);
}

TEST_CASE("cnnc bench --engines onednn skips a model it cannot map, with the reason") {
  // tiny_dense trains with the MSE loss, which the oneDNN network does not map.
  cnnc_test::Output r = bench_cnnc(
      "bench tests/codegen/golden/tiny_dense.cnn --engines generic,onednn --reps 1 --seconds "
      "0.01 --json");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("onednn: skipped:") != std::string::npos);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(j.flat["skipped.0.engine"] == "\"onednn\"");
  CHECK(j.flat.count("engines.1.engine") == 0);
}

TEST_CASE("cnnc bench --to-accuracy reports seconds per engine and seed, reached or not") {
  // A small MNIST-shaped directory: 128 training and 50 test images of 28x28.
  cnnc::test::TempDir dir;
  std::vector<uint8_t> train_labels, test_labels;
  for (int i = 0; i < 128; ++i) train_labels.push_back(static_cast<uint8_t>(i % 10));
  for (int i = 0; i < 50; ++i) test_labels.push_back(static_cast<uint8_t>(i % 10));
  auto put = [&](const std::string& name, const cnnc::test::Bytes& bytes) {
    dir.write(name, bytes);
  };
  put("train-images-idx3-ubyte", cnnc::test::image_file(128, 28, 28));
  put("train-labels-idx1-ubyte", cnnc::test::label_file(train_labels));
  put("t10k-images-idx3-ubyte", cnnc::test::image_file(50, 28, 28));
  put("t10k-labels-idx1-ubyte", cnnc::test::label_file(test_labels));

  // Target 0: reached at the first evaluation. Target 1 in one epoch of two steps: not reached.
  cnnc_test::Output r = bench_cnnc_with(
      "CNNC_PYTHON=/nonexistent/python3 '" CNNC_EXE "'",
      "bench models/mlp.cnn --to-accuracy 0 --engines generic,pytorch --seeds 1,2 --eval-every 1 "
      "--epochs 1 --json --data " +
          dir.path().string());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(bench_number(j, "target") == 0);
  CHECK(j.flat["runs.0.engine"] == "\"generic\"");
  CHECK(j.flat["runs.0.seed"] == "1");
  CHECK(j.flat["runs.0.reached"] == "true");
  CHECK(j.flat["runs.0.steps"] == "1");
  CHECK(bench_number(j, "runs.0.train_seconds") >= 0);
  CHECK(j.flat["runs.1.engine"] == "\"pytorch\"");
  CHECK(j.flat["runs.1.ran"] == "false");
  CHECK(j.flat["runs.1.note"].find("skipped") != std::string::npos);
  CHECK(j.flat["runs.2.seed"] == "2");  // seeds interleave: seed 1 on every engine, then seed 2

  r = bench_cnnc(
      "bench models/mlp.cnn --to-accuracy 1 --engines generic --epochs 1 --json --data " +
      dir.path().string());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  BenchJson k(bench_last_line(r.out));
  REQUIRE(k.ok);
  CHECK(k.flat["runs.0.reached"] == "false");
  CHECK(k.flat["runs.0.note"] == "\"not reached after 1 epoch\"");
  CHECK(k.flat["runs.0.steps"] == "2");

  CHECK(bench_cnnc("bench models/mlp.cnn --to-accuracy 0.9 --data /nonexistent/mnist").status == 1);
  CHECK(bench_cnnc("bench models/mlp.cnn --to-accuracy 1.5").status == 2);
}

TEST_CASE("cnnc bench compares two engines and reports the second's ratio to the first") {
  // The same engine twice runs the verification and ratio paths without a second engine.
  cnnc_test::Output r = bench_cnnc(
      "bench models/mlp.cnn --engines generic,generic --threads 2 --batch 32 --reps 1 "
      "--seconds 0.02 --json");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  BenchJson j(bench_last_line(r.out));
  REQUIRE(j.ok);
  CHECK(bench_number(j, "batch") == 32);
  CHECK(bench_number(j, "threads") == 2);
  CHECK(bench_number(j, "engines.1.ratio") > 0);
}

TEST_CASE("cnnc bench: unknown engines are user errors and help works") {
  cnnc_test::Output r =
      bench_cnnc("bench models/lenet5.cnn --engines nonsense --reps 1 --seconds 0.01");
  CHECK(r.status == 1);
  CHECK(r.err.find("unknown engine 'nonsense'; expected generic, specialized, onednn or pytorch") !=
        std::string::npos);
  CHECK(bench_cnnc("bench models/lenet5.cnn --engines generic, --seconds 0.01").status == 1);
  CHECK(bench_cnnc("bench tests/dsl/errors/unknown_layer.cnn").status == 1);
  CHECK(bench_cnnc("bench models/lenet5.cnn --reps 0").status == 2);
  r = bench_cnnc("bench --help");
  CHECK(r.status == 0);
  for (const char* flag :
       {"Usage", "--engines", "--threads", "--batch", "--reps", "--seconds", "--json",
        "--peak-gflops", "--python", "--to-accuracy", "--seeds", "--eval-every", "--data"})
    CHECK(r.out.find(flag) != std::string::npos);
}
