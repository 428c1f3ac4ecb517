// cnnc bench as a script uses it: the JSON last line, user errors and --help. Timings are never
// checked against a bound (DESIGN.md: timed checks are benchmarks, not pass/fail tests).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace {

struct BenchRun {
  int status;
  std::string out, err;
};

// Runs cnnc with arguments from the source directory, stdout and stderr kept apart so that the
// last line of stdout can be read as the JSON a script would read.
BenchRun bench_cnnc(const std::string& args) {
  std::string err_path = "/tmp/cnnc_test_bench_" + std::to_string(getpid()) + ".stderr";
  std::string cmd = "cd '" CNNC_SOURCE_DIR "' && '" CNNC_EXE "' " + args + " 2>" + err_path;
  std::FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  BenchRun r{-1, {}, {}};
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  int raw = pclose(p);
  if (std::FILE* e = std::fopen(err_path.c_str(), "r")) {
    while (size_t n = std::fread(buf.data(), 1, buf.size(), e)) r.err.append(buf.data(), n);
    std::fclose(e);
  }
  std::remove(err_path.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
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
  BenchRun r =
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
  CHECK(bench_number(j, "engines.0.ratio") == 1);          // the first engine is the reference
  CHECK(r.out.find("not measured") != std::string::npos);  // the peak is DESIGN.md's figure
}

TEST_CASE("cnnc bench compares two engines and reports the second's ratio to the first") {
  // The same engine twice runs the verification and ratio paths without a second engine.
  BenchRun r = bench_cnnc(
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
  BenchRun r = bench_cnnc("bench models/lenet5.cnn --engines nonsense --reps 1 --seconds 0.01");
  CHECK(r.status == 1);
  CHECK(r.err.find("unknown engine 'nonsense'") != std::string::npos);
  CHECK(bench_cnnc("bench models/lenet5.cnn --engines generic, --seconds 0.01").status == 1);
  CHECK(bench_cnnc("bench tests/dsl/errors/unknown_layer.cnn").status == 1);
  CHECK(bench_cnnc("bench models/lenet5.cnn --reps 0").status == 2);
  r = bench_cnnc("bench --help");
  CHECK(r.status == 0);
  for (const char* flag : {"Usage", "--engines", "--threads", "--batch", "--reps", "--seconds",
                           "--json", "--peak-gflops"})
    CHECK(r.out.find(flag) != std::string::npos);
}
