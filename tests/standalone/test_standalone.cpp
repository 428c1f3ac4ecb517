// cnnc build: the executable trains, evaluates and predicts exactly as cnnc does with the
// specialised engine, and every refusal leaves nothing behind; and cnnc's own run-time build
// trains to the same bits whichever compiler made the code.
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "../run_command.hpp"
#include "../skip.hpp"

using namespace cnnc_test;

namespace {

// The compiler of both sides: linked code and cnnc's run-time build (the subprocess backend, not
// the in-process Clang) must come from the same one to be sure of the same bits.
const std::string compiler = "c++";
const std::string cnnc_with_compiler = "CNNC_BUILD=subprocess CXX=" + compiler + " '" CNNC_EXE "'";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// What must agree between two training runs: the epoch lines without their timings, the test
// accuracy without the checkpoint's path, and the JSON's results.
std::vector<std::string> results_of(const std::string& out) {
  std::vector<std::string> kept;
  for (const std::string& line : lines_of(out)) {
    if (line.rfind("epoch ", 0) == 0 || line.rfind("test accuracy", 0) == 0)
      kept.push_back(line.substr(0, line.rfind(line[0] == 'e' ? " | " : ";")));
    if (line.rfind("training ", 0) == 0) kept.push_back(line);
    for (const char* key : {"\"test_accuracy\":", "\"test_loss\":", "\"weights_digest\":"}) {
      size_t at = line.find(key);
      if (at != std::string::npos) kept.push_back(line.substr(at, line.find(',', at) - at));
    }
  }
  return kept;
}

bool only_file_in(const std::filesystem::path& dir, const std::string& name) {
  int count = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++count;
    if (e.path().filename() != name) return false;
  }
  return count == (name.empty() ? 0 : 1);
}

}  // namespace

TEST_CASE("cnnc build: the executable trains, evaluates and predicts as cnnc does, bit for bit") {
  if (!have_mnist()) {
    CNNC_SKIP("data", "data/mnist is absent (scripts/setup fetches it)");
  }
  TempDir dir("standalone");
  std::string exe = dir / "small";
  Run b = run_cnnc("build tests/standalone/small.cnn -o " + exe + " --compiler " + compiler);
  INFO(b.out);
  REQUIRE(b.status == 0);
  CHECK(contains(b.out, "built " + exe + ": model small"));
  struct stat st {};
  REQUIRE(::stat(exe.c_str(), &st) == 0);
  CHECK((st.st_mode & S_IXUSR) != 0);
  CHECK(only_file_in(dir.path, "small"));  // no temporary file left beside it

  // The executable's train and cnnc train's, with the same options, each into its own directory.
  auto train_both = [&](const std::string& options, const std::string& out_a,
                        const std::string& out_b) {
    return std::pair{run("'" + exe + "' train" + options + (dir / out_a)),
                     run(cnnc_with_compiler + " train tests/standalone/small.cnn " +
                         "--engine specialized" + options + (dir / out_b))};
  };
  std::string common = " --max-steps 20 --limit 1024 --threads 2 --json --out ";
  auto [linked, loaded] = train_both(common, "a", "b");
  INFO(linked.out);
  INFO(loaded.out);
  REQUIRE(linked.status == 0);
  REQUIRE(loaded.status == 0);
  CHECK(contains(linked.out, R"("build":"linked")"));
  CHECK(results_of(linked.out).size() >= 5);
  CHECK(results_of(linked.out) == results_of(loaded.out));

  // eval prints no engine line: the whole output must agree.
  std::string ev = " --limit 1000 --threads 2 --weights ";
  Run e1 = run("'" + exe + "' eval" + ev + (dir / "a/checkpoint.bin"));
  Run e2 = run(cnnc_with_compiler + " eval tests/standalone/small.cnn --engine " + "specialized" +
               ev + (dir / "b/checkpoint.bin"));
  CHECK(e1.status == 0);
  CHECK(contains(e1.out, "small on 1000 test images: accuracy "));
  CHECK(e1.out == e2.out);

  std::string pr = " data/mnist/t10k-images-idx3-ubyte --limit 3 --checkpoint ";
  Run p1 = run("'" + exe + "' predict" + pr + (dir / "a/checkpoint.bin"));
  Run p2 = run(cnnc_with_compiler + " predict tests/standalone/small.cnn " +
               "--engine specialized" + pr + (dir / "b/checkpoint.bin"));
  CHECK(p1.status == 0);
  CHECK(contains(p1.out, "data/mnist/t10k-images-idx3-ubyte[2]: "));
  CHECK(p1.out == p2.out);

  std::ifstream in(CNNC_SOURCE_DIR "/tests/standalone/small.cnn", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(run("'" + exe + "' model").out == text);
  CHECK(contains(run("'" + exe + "' --version").out, "model small"));
  CHECK(run("'" + exe + "' train --help").status == 0);
  CHECK(run("'" + exe + "' frobnicate").status == 2);

  Run plain = run("'" + exe + "' train --max-steps 2 --limit 256 --out " + (dir / "c"));
  CHECK(plain.status == 0);
  CHECK(contains(plain.out, "engine: specialized-"));
  CHECK(contains(plain.out, ": linked into this executable ("));

  // The linked code holds both precisions' variants, whatever the file says: --precision bf16
  // runs the bf16 one where the CPU has AVX512_BF16 and trains as cnnc does, bit for bit; else
  // both fall back to fp32, say why, and train as fp32 does.
  auto [linked_bf16, loaded_bf16] = train_both(" --precision bf16" + common, "d", "e");
  INFO(linked_bf16.out);
  INFO(loaded_bf16.out);
  REQUIRE(linked_bf16.status == 0);
  REQUIRE(loaded_bf16.status == 0);
  CHECK(results_of(linked_bf16.out) == results_of(loaded_bf16.out));
  const bool has_bf16 = cpu_has("avx512_bf16");
  CHECK((results_of(linked_bf16.out) != results_of(linked.out)) == has_bf16);
  Run plain_bf16 =
      run("'" + exe + "' train --precision bf16 --max-steps 2 --limit 256 --out " + (dir / "f"));
  CHECK(contains(plain_bf16.out, "engine: specialized-avx512_bf16: linked") == has_bf16);
  CHECK(contains(plain_bf16.out, "this CPU lacks AVX512_BF16") == !has_bf16);
  CHECK(!contains(plain.out, "bf16"));  // the file's fp32 still runs an fp32 variant

  // The linked code takes slices of up to 32 samples, and no compiler is at hand to make more.
  Run big = run("'" + exe + "' train --batch 128 --threads 1 --limit 256 --out " + (dir / "c"));
  CHECK(big.status == 1);
  CHECK(contains(big.out, "takes slices of up to 32 samples, but this run needs 128"));
  // The generic engine needs no code of the model's own.
  CHECK(
      run("'" + exe + "' eval --engine generic --limit 100 --weights " + (dir / "a/checkpoint.bin"))
          .status == 0);
}

// The generated code writes its fused multiply-adds itself (vfma) and is compiled with
// -ffp-contract=off, so GCC, which would fuse every vmul into the vadd that takes it, computes
// what the in-process Clang does: the optimizer step's multiplies and adds, above all.
TEST_CASE("g++ and the in-process Clang build train to the same bits") {
  if (!have_mnist()) {
    CNNC_SKIP("data", "data/mnist is absent (scripts/setup fetches it)");
  }
  if (run("command -v g++").status != 0) {
    CNNC_SKIP("compiler", "g++ is not on PATH");
  }
  TempDir dir("compilers");
  // A cache of the test's own, so that both builds compile rather than load.
  std::string cache = "XDG_CACHE_HOME='" + (dir / "cache") + "' ";
  std::string options =
      " tests/standalone/small.cnn --engine specialized --max-steps 20 "
      "--limit 1024 --threads 2 --json --out ";
  Run clang = run(cache + "CNNC_BUILD=jit '" CNNC_EXE "' train" + options + (dir / "clang"));
  if (clang.status != 0 && contains(clang.out, "without the Clang libraries")) {
    CNNC_SKIP("clang", "cnnc was built without the Clang libraries");
  }
  Run gcc =
      run(cache + "CNNC_BUILD=subprocess CXX=g++ '" CNNC_EXE "' train" + options + (dir / "gcc"));
  INFO(clang.out);
  INFO(gcc.out);
  REQUIRE(clang.status == 0);
  REQUIRE(gcc.status == 0);
  CHECK(contains(clang.out, R"("build":"jit")"));
  CHECK(contains(gcc.out, R"("build":"subprocess")"));
  CHECK(results_of(clang.out).size() >= 5);
  CHECK(results_of(clang.out) == results_of(gcc.out));
}

TEST_CASE("cnnc build: refusals are clear, exit 1, and leave no file") {
  TempDir dir("standalone_errors");
  std::string model = "tests/standalone/small.cnn";

  Run r = run_cnnc("build " + model + " -o " + dir.path.string() + "/missing/exe");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cannot write '" + dir.path.string() + "/missing/exe': the directory '" +
                            dir.path.string() + "/missing' does not exist"));
  r = run_cnnc("build " + model + " -o /dev/null/exe");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "'/dev/null' is not a directory"));
  r = run_cnnc("build " + model + " -o /proc/cnnc_test_exe");  // unwritable, even for root
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cannot write '/proc/cnnc_test_exe': cannot create files in '/proc'"));
  r = run_cnnc("build " + model + " -o " + dir.path.string());
  CHECK(r.status == 1);
  CHECK(contains(r.out, "names a directory"));

  r = run_cnnc("build tests/dsl/errors/unknown_layer.cnn -o " + (dir / "exe"));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "unknown_layer.cnn:5:1: error: unknown layer 'maxpol'"));
  r = run_cnnc("build no/such.cnn -o " + (dir / "exe"));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "cannot read 'no/such.cnn'"));

  r = run_cnnc("build " + model + " -o " + (dir / "exe") + " --compiler no-such-compiler++");
  CHECK(r.status == 1);
  CHECK(contains(r.out, "the C++ compiler 'no-such-compiler++' was not found on PATH"));
  // A compiler that fails: the sources are kept for the report, the output is not written.
  std::string fake = dir / "fake-c++";
  {
    std::ofstream script(fake);
    script << "#!/bin/sh\n[ \"$1\" = --version ] && echo 'fake-c++ 1.0' && exit 0\n"
              "echo 'fake-c++: error: no'; exit 1\n";
  }
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  r = run_cnnc("build " + model + " -o " + (dir / "exe") + " --compiler " + fake);
  CHECK(r.status == 1);
  CHECK(contains(r.out, "compiling small.gen.cpp with fake-c++"));
  CHECK(contains(r.out, "fake-c++: error: no"));
  CHECK(contains(r.out, "failed (exit status 1); no executable was written"));
  size_t at = r.out.find("sources kept in: ");
  REQUIRE(at != std::string::npos);
  std::string kept = r.out.substr(at + 17, r.out.find('\n', at) - at - 17);
  CHECK(std::filesystem::exists(kept + "/small.gen.cpp"));
  CHECK(std::filesystem::exists(kept + "/main.cpp"));
  std::filesystem::remove_all(kept);

  std::filesystem::remove(fake);
  CHECK(only_file_in(dir.path, ""));
  CHECK(run_cnnc("build --help").status == 0);
  CHECK(run_cnnc("build " + model).status == 2);  // -o is required
}

TEST_CASE("cnnc build embeds the user's text as bytes only, and its defaults match cnnc's") {
  // A path that would be code, or end a comment, if pasted into C++ unescaped.
  TempDir dir("standalone_escape");
  std::filesystem::create_directories(dir / "q\")\"; int x = 1; *");
  std::string evil = dir / "q\")\"; int x = 1; */m\\.cnn";
  std::filesystem::copy_file(CNNC_SOURCE_DIR "/tests/standalone/small.cnn", evil);
  Run r = run_cnnc("build '" + evil + "' -o " + (dir / "exe") + " --verbose");
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, " -c "));  // --verbose shows the commands
  CHECK(contains(run("'" + (dir / "exe") + "' --help").out, evil));

  // The default compiler of cnnc build and cnnc's default build of specialised code agree.
  if (!have_mnist()) return;
  std::string common = " --max-steps 10 --limit 640 --threads 2 --json --out ";
  Run linked = run("'" + (dir / "exe") + "' train" + common + (dir / "a"));
  Run loaded = run_cnnc("train '" + evil + "' --engine specialized" + common + (dir / "b"));
  CHECK(linked.status == 0);
  CHECK(results_of(linked.out).size() >= 5);
  CHECK(results_of(linked.out) == results_of(loaded.out));
}
