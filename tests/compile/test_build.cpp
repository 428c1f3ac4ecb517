// Specifications of build_generated: generated source becomes a callable model, the cache hits,
// misses and heals, concurrent builds agree, and failures say what went wrong and where; each
// of them for both backends, the Clang libraries in-process and the compiler subprocess.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "../skip.hpp"
#include "codegen/compile/abi_header.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/sha256.hpp"

namespace fs = std::filesystem;
using namespace cnnc::codegen;

namespace {

// A fresh cache directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "cnnc-test-build-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Generated-style code for a model named NAME: one dense layer 2 -> 2 without activation,
// cross-entropy on the logits, SGD with momentum. marker changes the text, not the behaviour.
std::string fixture(const std::string& name, const std::string& marker = "") {
  std::string text = R"(// Test fixture in the shape of cnnc's generated code; marker: MARKER
#include "cnnc_abi.h"

#include <math.h>
#include <string.h>

namespace {

// dense1: [n][2] -> [n][2]; weights [K=2][C=2] at 0, biases [2] at 4.
const cnnc_layer layers[1] = {{"dense1", CNNC_DENSE, CNNC_LINEAR, 1, 1, 2, 1, 1, 2, 0, 0, 1, 1,
                               0, 0, 0, 0, 0.0f, 0, 4, 4, 2, 1}};

void logits(const float* p, const float* x, float* z) {
  for (int k = 0; k < 2; ++k) z[k] = p[4 + k] + p[2 * k] * x[0] + p[2 * k + 1] * x[1];
}

void forward(const cnnc_model*, const cnnc_pass* pass) {
  for (int s = 0; s < pass->n; ++s) logits(pass->params, pass->input + 2 * s, pass->output + 2 * s);
}

float train(const cnnc_model*, const cnnc_pass* pass) {
  float loss = 0;
  memset(pass->grads, 0, 6 * sizeof(float));
  for (int s = 0; s < pass->n; ++s) {
    const float* x = pass->input + 2 * s;
    float z[2];
    logits(pass->params, x, z);
    if (pass->output) memcpy(pass->output + 2 * s, z, sizeof z);
    float m = z[0] > z[1] ? z[0] : z[1];
    float sum = expf(z[0] - m) + expf(z[1] - m);
    loss += m + logf(sum) - z[pass->labels[s]];
    for (int k = 0; k < 2; ++k) {
      float dz = expf(z[k] - m) / sum - (k == pass->labels[s] ? 1.0f : 0.0f);
      pass->grads[2 * k] += dz * x[0];
      pass->grads[2 * k + 1] += dz * x[1];
      pass->grads[4 + k] += dz;
    }
  }
  return loss;
}

void update_range(const cnnc_model*, float* params, const float* grads, float* state,
                  const cnnc_optimizer* opt, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    state[i] = opt->momentum * state[i] + grads[i] + opt->weight_decay * params[i];
    params[i] -= opt->lr * state[i];
  }
}

void update(const cnnc_model* m, float* params, const float* grads, float* state,
            const cnnc_optimizer* opt) {
  update_range(m, params, grads, state, opt, 0, 6);
}

}  // namespace

extern "C" cnnc_model* cnnc_NAME_create(int32_t max_batch, const char* target) {
  bool known = !strcmp(target, "auto") || !strcmp(target, "portable") ||
               !strcmp(target, "avx2") || !strcmp(target, "avx512");
  if (!known || (!strcmp(target, "avx512") && !__builtin_cpu_supports("avx512f")) ||
      (!strcmp(target, "avx2") && !__builtin_cpu_supports("avx2"))) {
    return NULL;
  }
  return new cnnc_model{CNNC_ABI_VERSION, "NAME", "specialized-portable", 1, 1, 2, 2, max_batch,
                        CNNC_CROSS_ENTROPY, 1, layers, 6, 0, forward, train, update, NULL,
                        update_range};
}

extern "C" void cnnc_NAME_destroy(cnnc_model* model) { delete model; }
)";
  for (auto [from, to] : {std::pair<std::string, std::string>{"NAME", name}, {"MARKER", marker}}) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

BuildOptions in(const TempDir& cache, Backend backend = Backend::subprocess) {
  BuildOptions options;
  options.cache_dir = cache.path();
  options.backend = backend;
  return options;
}

// The backends this cnnc has: the subprocess always, in-process when built with Clang.
std::vector<Backend> backends() {
  std::vector<Backend> all{Backend::subprocess};
  if (in_process_available()) all.push_back(Backend::jit);
  return all;
}

// What how() says after a compile by backend.
std::string compiled_by(Backend backend) {
  return backend == Backend::jit ? "jit" : "subprocess";
}

// The fixture's arithmetic through the ABI: W = [[1, 2], [3, 4]], b = [0.5, -0.5].
void check_calls_work(const GeneratedModel& built, const std::string& name) {
  ModelPtr model = built.make(4, "auto");
  REQUIRE(model);
  CHECK(model->abi_version == CNNC_ABI_VERSION);
  CHECK(std::string(model->name) == name);
  CHECK(model->param_count == 6);

  float params[6] = {1, 2, 3, 4, 0.5f, -0.5f};
  float input[4] = {1, 1, 0, -1};
  int32_t labels[2] = {1, 0};
  float output[4] = {}, grads[6] = {};
  cnnc_pass pass{};
  pass.params = params;
  pass.input = input;
  pass.labels = labels;
  pass.output = output;
  pass.grads = grads;
  pass.n = 2;
  model->forward(model.get(), &pass);
  CHECK(output[0] == 3.5f);
  CHECK(output[1] == 6.5f);
  CHECK(output[2] == -1.5f);
  CHECK(output[3] == -4.5f);

  float loss = model->train(model.get(), &pass);
  double expected = std::log1p(std::exp(-3.0)) + std::log1p(std::exp(-3.0));
  CHECK(loss == Approx(expected).epsilon(1e-5));
  double p = 1 / (1 + std::exp(3.0));  // the probability each sample gives its wrong class
  CHECK(grads[4] == Approx(p - p).margin(1e-6));
  CHECK(grads[0] == Approx(p).epsilon(1e-5));

  float state[12] = {};
  cnnc_optimizer sgd{CNNC_SGD, 0.5f, 0.9f, 0, 0, 0, 0, 1};
  model->update(model.get(), params, grads, state, &sgd);
  CHECK(params[0] == Approx(1 - 0.5 * p).epsilon(1e-5));
}

std::vector<fs::path> files_named_like(const fs::path& dir, const std::string& part) {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().find(part) != std::string::npos) found.push_back(e.path());
  }
  return found;
}

size_t cache_entries(const fs::path& cache) {
  if (!fs::exists(cache / "v1")) return 0;
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(cache / "v1")) n += e.is_directory();
  return n;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

#define SKIP_WITHOUT_COMPILER() \
  if (!find_compiler("")) CNNC_SKIP("compiler", "no C++ compiler on PATH")

// Runs the rest of the test once per backend (Catch's GENERATE), naming the backend in failures;
// the subprocess runs are skipped when no compiler is on PATH.
#define FOR_EACH_BACKEND(backend)                                                  \
  const Backend backend = GENERATE(from_range(backends()));                        \
  INFO("backend: " << compiled_by(backend));                                       \
  if (backend == Backend::subprocess && !find_compiler("")) {                      \
    WARN("no C++ compiler on PATH: the subprocess backend's build tests skipped"); \
    return;                                                                        \
  }

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("SHA-256 gives the FIPS 180-4 digests") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in uneven pieces, the digest is the same as in one piece.
  Sha256 pieces;
  for (size_t at = 0; at < million.size(); at += 6007) pieces.update(million.substr(at, 6007));
  CHECK(pieces.hex() == sha256_hex(million));
}

TEST_CASE("The embedded ABI header is runtime/cnnc_abi.h") {
  CHECK(abi_header_text() == read_file(fs::path(CNNC_SOURCE_DIR) / "runtime" / "cnnc_abi.h"));
}

TEST_CASE("Generated source builds into a model whose entry points work") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  GeneratedModel built = build_generated(fixture("tiny"), "tiny", in(cache, backend));
  CHECK(built.how() == compiled_by(backend));
  CHECK(built.backend() == compiled_by(backend));
  CHECK(built.library().filename() == (backend == Backend::jit ? "model.o" : "model.so"));
  CHECK(built.library().is_absolute());
  CHECK(built.library().parent_path().parent_path() == cache.path() / "v1");
  CHECK(built.library().parent_path().filename().string().size() == 64);
  CHECK(fs::exists(built.library().parent_path() / "meta.txt"));
  CHECK(read_file(built.library().parent_path() / "model.cpp") == fixture("tiny"));
  CHECK_FALSE(built.compiler().empty());
  check_calls_work(built, "tiny");

  // The header went into the cache, so the build needs no source tree.
  auto headers = files_named_like(cache.path() / "include", "cnnc_abi.h");
  REQUIRE(headers.size() == 1);
  CHECK(read_file(headers[0]) == abi_header_text());

  GeneratedModel moved = std::move(built);
  check_calls_work(moved, "tiny");
  CHECK(moved.create(1, "no-such-target") == nullptr);
}

TEST_CASE("A second build of the same source is a cache hit, and faster") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  GeneratedModel cold = build_generated(fixture("tiny"), "tiny", in(cache, backend));
  GeneratedModel hit = build_generated(fixture("tiny"), "tiny", in(cache, backend));
  CHECK(cold.how() == compiled_by(backend));
  CHECK(hit.how() == "cache");
  CHECK(hit.backend() == compiled_by(backend));
  CHECK(hit.library() == cold.library());
  CHECK(hit.compiler() == cold.compiler());
  // A compile is hundreds of milliseconds; a hit, reading and hashing one file, a few.
  CHECK(hit.build_seconds() < cold.build_seconds());
  check_calls_work(hit, "tiny");
  CHECK(cache_entries(cache.path()) == 1);
}

TEST_CASE("A changed source, flags or model name is a miss") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  GeneratedModel first = build_generated(fixture("tiny"), "tiny", in(cache, backend));

  GeneratedModel other_source = build_generated(fixture("tiny", "v2"), "tiny", in(cache, backend));
  CHECK(other_source.how() == compiled_by(backend));
  CHECK(other_source.library() != first.library());

  BuildOptions o1 = in(cache, backend);
  o1.flags[0] = "-O1";
  GeneratedModel other_flags = build_generated(fixture("tiny"), "tiny", o1);
  CHECK(other_flags.how() == compiled_by(backend));
  CHECK_THAT(other_flags.summary(), Catch::EndsWith(", -O1)"));
  check_calls_work(other_flags, "tiny");

  GeneratedModel other_name = build_generated(fixture("small"), "small", in(cache, backend));
  CHECK(other_name.how() == compiled_by(backend));
  check_calls_work(other_name, "small");

  CHECK(cache_entries(cache.path()) == 4);
  CHECK(build_generated(fixture("tiny"), "tiny", in(cache, backend)).how() == "cache");
}

TEST_CASE("use_cache = false compiles every time") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  BuildOptions options = in(cache, backend);
  options.use_cache = false;
  CHECK(build_generated(fixture("tiny"), "tiny", options).how() == compiled_by(backend));
  CHECK(build_generated(fixture("tiny"), "tiny", options).how() == compiled_by(backend));
  CHECK(build_generated(fixture("tiny"), "tiny", in(cache, backend)).how() == "cache");
}

TEST_CASE("Two threads building the same key at once both succeed, into one entry") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  std::barrier start(2);
  std::optional<GeneratedModel> built[2];
  std::string errors[2];
  auto build = [&](int i) {
    start.arrive_and_wait();
    try {
      built[i].emplace(build_generated(fixture("tiny"), "tiny", in(cache, backend)));
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  };
  std::thread a(build, 0), b(build, 1);
  a.join();
  b.join();
  CHECK(errors[0].empty());
  CHECK(errors[1].empty());
  REQUIRE(built[0]);
  REQUIRE(built[1]);
  check_calls_work(*built[0], "tiny");
  check_calls_work(*built[1], "tiny");
  CHECK(cache_entries(cache.path()) == 1);
  CHECK(files_named_like(cache.path(), ".tmp-").empty());
}

TEST_CASE("Two processes building the same key at once both succeed, into one entry") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  pid_t children[2];
  for (pid_t& child : children) {
    child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // No Catch assertions here: the child reports through its exit status only.
      try {
        GeneratedModel m = build_generated(fixture("tiny"), "tiny", in(cache, backend));
        ModelPtr model = m.make(2, "auto");
        ::_exit(model ? 0 : 2);
      } catch (...) {
        ::_exit(1);
      }
    }
  }
  for (pid_t child : children) {
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(cache_entries(cache.path()) == 1);
  CHECK(files_named_like(cache.path(), ".tmp-").empty());
  CHECK(build_generated(fixture("tiny"), "tiny", in(cache, backend)).how() == "cache");
}

TEST_CASE("A damaged cache entry is rebuilt, never loaded") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  fs::path library = build_generated(fixture("tiny"), "tiny", in(cache, backend)).library();
  fs::path meta = library.parent_path() / "meta.txt";

  SECTION("model.so truncated") {
    fs::resize_file(library, fs::file_size(library) / 2);
  }
  SECTION("one byte of model.so changed, its size unchanged") {
    std::fstream f(library, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(library) / 2));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(fs::file_size(library) / 2));
    f.put(static_cast<char>(c ^ 0x20));
  }
  SECTION("meta.txt records another checksum") {
    std::string text = read_file(meta);
    size_t at = text.find("so_sha256 ") + 10;
    text[at] = text[at] == '0' ? '1' : '0';
    std::ofstream(meta, std::ios::binary) << text;
  }
  SECTION("meta.txt missing") {
    fs::remove(meta);
  }
  SECTION("model.so missing") {
    fs::remove(library);
  }

  GeneratedModel rebuilt = build_generated(fixture("tiny"), "tiny", in(cache, backend));
  CHECK(rebuilt.how() == compiled_by(backend));
  CHECK(rebuilt.library() == library);
  check_calls_work(rebuilt, "tiny");
  CHECK(build_generated(fixture("tiny"), "tiny", in(cache, backend)).how() == "cache");
}

TEST_CASE("Generated code that does not compile is reported as cnnc's bug, with the evidence") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  std::string broken = "#include \"cnnc_abi.h\"\nint broken() {\n  return undeclared_name;\n}\n";
  std::string message;
  try {
    build_generated(broken, "broken", in(cache, backend));
  } catch (const BuildError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.starts_with(
      "internal error: the generated code for model broken did not compile; this is a bug in "
      "cnnc, please report it\n"));

  auto saved = files_named_like(cache.path() / "failed", "broken-");
  REQUIRE(saved.size() == 1);
  CHECK(read_file(saved[0]) == broken);
  CHECK_THAT(message, Catch::Contains("source saved to: " + saved[0].string()));
  // The compiler's own diagnostic, pointing at the saved file's line.
  CHECK_THAT(message, Catch::Contains(saved[0].string() + ":3:"));
  CHECK_THAT(message, Catch::Contains("undeclared_name"));
  CHECK_THAT(message, Catch::Contains(" -I " + (cache.path() / "include").string()));
  if (backend == Backend::jit) {
    // The line itself and a caret under the column.
    CHECK_THAT(message, Catch::Contains("    3 |   return undeclared_name;\n"
                                        "      |          ^\n"));
    CHECK_THAT(message, Catch::EndsWith("1 error generated.\n"));
    CHECK_THAT(message, Catch::Contains(saved[0].string() + ":3:10: error: use of undeclared "
                                                            "identifier 'undeclared_name'"));
    CHECK_THAT(message, Catch::Contains("in-process (libclang-cpp), errors reported"));
    CHECK_THAT(message, Catch::Contains("-resource-dir "));
  }

  CHECK(files_named_like(cache.path(), ".tmp-").empty());
  CHECK(cache_entries(cache.path()) == 0);

  // Many errors: the first 40 lines of them, and how many more there were.
  std::string many = "#include \"cnnc_abi.h\"\n";
  for (int i = 0; i < 30; ++i) many += "int v" + std::to_string(i) + " = undeclared;\n";
  try {
    build_generated(many, "many", in(cache, backend));
  } catch (const BuildError& e) {
    message = e.what();
  }
  std::string said = message.substr(message.find("the compiler said:\n") + 19);
  CHECK(std::count(said.begin(), said.end(), '\n') == 41);
  CHECK_THAT(said, Catch::Contains("\n[... ") && Catch::EndsWith(" more lines]\n"));
}

TEST_CASE("Compiled code without the entry points is an error naming the missing one") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  std::string source =
      "#include \"cnnc_abi.h\"\nextern \"C\" int cnnc_other_create() { return 0; }\n";
  CHECK_THROWS_WITH(
      build_generated(source, "nosym", in(cache, backend)),
      Catch::StartsWith("internal error: the compiled code for model nosym lacks "
                        "cnnc_nosym_create; this is a bug in cnnc, please report it"));
}

TEST_CASE("An unknown compiler is a clear error") {
  TempDir cache;
  // automatic: a named compiler asks for the subprocess, even where in-process is available.
  BuildOptions options = in(cache, Backend::automatic);
  options.compiler = "cnnc-no-such-compiler";
  CHECK_THROWS_WITH(build_generated(fixture("tiny"), "tiny", options),
                    "cannot build the generated code for model tiny: the C++ compiler "
                    "'cnnc-no-such-compiler' was not found on PATH");
  options.compiler = "/nonexistent/c++";
  CHECK_THROWS_WITH(build_generated(fixture("tiny"), "tiny", options),
                    "cannot build the generated code for model tiny: the C++ compiler "
                    "'/nonexistent/c++' was not found");
  CHECK_THROWS_AS(build_generated(fixture("tiny"), "tiny", options), BuildError);
}

TEST_CASE("A model name must be a C identifier") {
  TempDir cache;
  CHECK_THROWS_AS(build_generated(fixture("tiny"), "1tiny", in(cache)), std::invalid_argument);
  CHECK_THROWS_AS(build_generated(fixture("tiny"), "ti-ny", in(cache)), std::invalid_argument);
  CHECK_THROWS_AS(build_generated(fixture("tiny"), "", in(cache)), std::invalid_argument);
}

TEST_CASE("The compiler is named short: family and version") {
  for (std::string name : {"g++", "clang++"}) {
    if (!find_compiler(name)) continue;
    TempDir cache;
    BuildOptions options = in(cache);
    options.compiler = name;
    GeneratedModel built = build_generated(fixture("tiny"), "tiny", options);
    INFO(built.compiler());
    CHECK(built.compiler().starts_with(name + " "));
    CHECK(built.compiler().find_first_of("0123456789") == name.size() + 1);
    CHECK(built.compiler().find(' ', name.size() + 1) == std::string::npos);
    check_calls_work(built, "tiny");
  }
}

TEST_CASE("Without a cache_dir the cache is $XDG_CACHE_HOME/cnnc") {
  FOR_EACH_BACKEND(backend);
  TempDir xdg;
  fs::path library;
  {
    ScopedEnv env("XDG_CACHE_HOME", xdg.path().c_str());
    BuildOptions options;
    options.backend = backend;
    library = build_generated(fixture("tiny"), "tiny", options).library();
  }
  CHECK(library.parent_path().parent_path() == xdg.path() / "cnnc" / "v1");
}

TEST_CASE(
    "automatic builds in-process when cnnc can, else in a subprocess, and CNNC_BUILD overrides") {
  TempDir cache;
  ScopedEnv unset("CNNC_BUILD", nullptr);
  std::string expected = in_process_available() ? "jit" : "subprocess";
  if (expected == "subprocess" && !find_compiler("")) return;
  GeneratedModel built = build_generated(fixture("tiny"), "tiny", in(cache, Backend::automatic));
  CHECK(built.backend() == expected);
  check_calls_work(built, "tiny");

  if (find_compiler("")) {
    ScopedEnv env("CNNC_BUILD", "subprocess");
    CHECK(build_generated(fixture("tiny"), "tiny", in(cache, Backend::automatic)).backend() ==
          "subprocess");
  }
  {
    // An explicit backend is not overridden.
    ScopedEnv env("CNNC_BUILD", "no-such-backend");
    CHECK_THROWS_WITH(build_generated(fixture("tiny"), "tiny", in(cache, Backend::automatic)),
                      "CNNC_BUILD is 'no-such-backend'; expected auto, jit (in-process) or "
                      "subprocess");
    if (find_compiler("")) {
      CHECK(build_generated(fixture("tiny"), "tiny", in(cache)).backend() == "subprocess");
    }
  }
  CHECK(parse_backend("auto") == Backend::automatic);
  CHECK(parse_backend("jit") == Backend::jit);
  CHECK(parse_backend("subprocess") == Backend::subprocess);
  CHECK_THROWS_AS(parse_backend("dlopen"), std::invalid_argument);
}

TEST_CASE("Without the Clang libraries, asking for the in-process build is a clear error") {
  if (in_process_available()) return;
  TempDir cache;
  CHECK_THROWS_WITH(build_generated(fixture("tiny"), "tiny", in(cache, Backend::jit)),
                    Catch::StartsWith("cannot build the generated code for model tiny in-process: "
                                      "this cnnc was built without the Clang libraries"));
}

TEST_CASE("The in-process build needs no compiler on PATH and caches an object file") {
  if (!in_process_available()) {
    CNNC_SKIP("clang", "cnnc was built without the Clang libraries");
  }
  TempDir cache;
  GeneratedModel built = [&] {
    ScopedEnv no_path("PATH", "");
    ScopedEnv no_cxx("CXX", nullptr);
    REQUIRE_FALSE(find_compiler(""));
    return build_generated(fixture("tiny"), "tiny", in(cache, Backend::jit));
  }();
  CHECK(built.how() == "jit");
  check_calls_work(built, "tiny");
  // An ELF relocatable object (e_type 1 = ET_REL), not a shared library.
  std::string object = read_file(built.library());
  REQUIRE(object.size() > 64);
  CHECK(object.substr(0, 4) ==
        "\x7f"
        "ELF");
  CHECK(object[16] == 1);
  CHECK(object[17] == 0);

  INFO(built.compiler());
  CHECK(built.compiler().starts_with("clang 19."));
  CHECK_THAT(
      built.summary(),
      Catch::Matches(R"(compiled in [0-9]+\.[0-9] s \(clang 19\.[0-9.]+, in-process, -O2\))"));
  GeneratedModel hit = build_generated(fixture("tiny"), "tiny", in(cache, Backend::jit));
  CHECK_THAT(hit.summary(), Catch::Matches(R"(loaded from the cache in [0-9]+\.[0-9]{2} s )"
                                           R"(\(clang 19\.[0-9.]+, in-process, -O2\))"));
  // Both loaded at once: each object links into a JIT library of its own, so the same names
  // do not collide, and destroying one leaves the other working.
  check_calls_work(hit, "tiny");
  { GeneratedModel gone = std::move(built); }
  check_calls_work(hit, "tiny");
}

TEST_CASE("The two backends never share a cache entry") {
  if (!in_process_available() || !find_compiler("")) return;
  TempDir cache;
  GeneratedModel jit = build_generated(fixture("tiny"), "tiny", in(cache, Backend::jit));
  GeneratedModel sub = build_generated(fixture("tiny"), "tiny", in(cache, Backend::subprocess));
  CHECK(jit.how() == "jit");
  CHECK(sub.how() == "subprocess");
  CHECK(jit.library().parent_path() != sub.library().parent_path());
  CHECK(cache_entries(cache.path()) == 2);
  check_calls_work(jit, "tiny");
  check_calls_work(sub, "tiny");
}

TEST_CASE("In-process diagnostics honour -ferror-limit") {
  if (!in_process_available()) return;
  TempDir cache;
  std::string many = "#include \"cnnc_abi.h\"\n";
  for (int i = 0; i < 30; ++i) many += "int v" + std::to_string(i) + " = undeclared;\n";
  BuildOptions options = in(cache, Backend::jit);
  options.flags.push_back("-ferror-limit=2");
  std::string message;
  try {
    build_generated(many, "many", options);
  } catch (const BuildError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("fatal error: too many errors emitted, stopping now"));
  CHECK_THAT(message, Catch::Contains(":3:10: error:"));
  CHECK_THAT(message, !Catch::Contains(":4:10: error:"));
}

TEST_CASE("A cache that cannot be written costs the cache, not the build") {
  FOR_EACH_BACKEND(backend);
  TempDir dir;
  std::ofstream(dir.path() / "file") << "a file, not a directory";
  SECTION("XDG_CACHE_HOME names a file") {
    ScopedEnv env("XDG_CACHE_HOME", (dir.path() / "file").c_str());
    BuildOptions options;
    options.backend = backend;
    GeneratedModel built = build_generated(fixture("tiny"), "tiny", options);
    CHECK(built.how() == compiled_by(backend));
    check_calls_work(built, "tiny");
  }
  SECTION("a cache on a file system no one may write (even root)") {
    BuildOptions options;
    options.cache_dir = "/proc/cnnc-cache";
    options.backend = backend;
    GeneratedModel built = build_generated(fixture("tiny"), "tiny", options);
    CHECK(built.how() == compiled_by(backend));
    check_calls_work(built, "tiny");
  }
}

TEST_CASE("A cache entry holding another model's code is rebuilt, not reported as a bug") {
  FOR_EACH_BACKEND(backend);
  TempDir cache;
  fs::path tiny = build_generated(fixture("tiny"), "tiny", in(cache, backend)).library();
  fs::path other = build_generated(fixture("other"), "other", in(cache, backend)).library();
  // The other model's code and its meta.txt: a whole entry whose checksum matches.
  fs::copy_file(other, tiny, fs::copy_options::overwrite_existing);
  fs::copy_file(other.parent_path() / "meta.txt", tiny.parent_path() / "meta.txt",
                fs::copy_options::overwrite_existing);
  GeneratedModel rebuilt = build_generated(fixture("tiny"), "tiny", in(cache, backend));
  CHECK(rebuilt.how() == compiled_by(backend));
  check_calls_work(rebuilt, "tiny");
  CHECK(build_generated(fixture("tiny"), "tiny", in(cache, backend)).how() == "cache");
}
