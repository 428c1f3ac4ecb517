// cnnc build FILE -o EXE: a standalone trainer for one model. The executable holds the .cnn text
// and the model's specialised code, compiled ahead of time and linked statically with cnnc's own
// libraries, and offers cnnc's train, eval and predict for that model (standalone.cpp).
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/standalone_link.hpp"
#include "cnnc/version.hpp"
#include "codegen/compile/abi_header.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/compile/cache.hpp"
#include "codegen/compile/compiler.hpp"
#include "codegen/emit_model.hpp"

namespace cnnc::cli {

namespace {

namespace fs = std::filesystem;

// The default, in order of preference. clang 19 first: on the generated code it trains as fast
// as g++ 12 or faster and compiles sooner (docs/build.md), and it is what cnnc's run-time build
// uses, so that linked code computes what `cnnc train` computes. The rest are fallbacks.
constexpr const char* default_compilers[] = {"clang++-19", "clang++", "g++", "c++"};

// The flags of the run-time build, so that linked code and code loaded by cnnc train compute the
// same bits.
const std::vector<std::string> compile_flags = codegen::object_flags(codegen::BuildOptions{}.flags);

struct BuildArgs {
  std::string file, out, compiler;
  std::optional<int64_t> max_batch;
  bool verbose = false;
  dsl::Limits limits;
};

// A user-facing failure of cnnc build: printed as "cnnc: error: <what>", exit 1.
struct BuildFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool is_identifier(const std::string& s) {
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (s.empty() || !alpha(s[0])) return false;
  for (char c : s)
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

// bytes as the elements of an unsigned char array, NUL-terminated (no array may be empty):
// user text reaches main.cpp only as numbers, so nothing in it can become code.
std::string byte_array(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i)
    out +=
        fmt::format("{}0x{:02x},", i % 16 ? " " : "\n    ", static_cast<unsigned char>(bytes[i]));
  return out + "\n    0x00";
}

std::string main_source(const dsl::Graph& g, int64_t max_batch, const std::string& built_with,
                        const dsl::Limits& limits) {
  return fmt::format(
      R"(// main() of the standalone trainer for model {0}, written by cnnc build {1}. Do not edit.
// It hands the embedded .cnn file and the linked code to cnnc's standalone runtime.
#include "standalone.hpp"
#include "{0}.gen.hpp"

namespace {{

// The strings are bytes, NUL-terminated: they hold the user's text.
const unsigned char path[] = {{{2}}};
const unsigned char text[] = {{{3}}};
const unsigned char built_with[] = {{{4}}};

}}  // namespace

int main(int argc, char** argv) {{
  const cnnc::standalone::Model model{{
      "{0}", path, sizeof path - 1, text, sizeof text - 1, {5}, &cnnc_{0}_create,
      &cnnc_{0}_destroy, reinterpret_cast<const char*>(built_with), {6}, {7}, {8}}};
  return cnnc::standalone::main(argc, argv, model);
}}
)",
      g.name, cnnc::version, byte_array(g.source_path), byte_array(g.source_text),
      byte_array(built_with), max_batch, limits.max_params, limits.max_activation_bytes,
      limits.max_code_bytes);
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-+=./,:@") == std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A fresh directory for the sources and objects, removed unless kept for a failure's report.
class WorkDir {
 public:
  explicit WorkDir(const std::string& model) {
    std::string pattern =
        (fs::temp_directory_path() / ("cnnc-build-" + model + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data()))
      throw BuildFailure(fmt::format("cannot create a directory for the build in {}: {}",
                                     fs::temp_directory_path().string(), std::strerror(errno)));
    path_ = pattern;
  }
  ~WorkDir() {
    std::error_code ignored;
    if (!keep_) fs::remove_all(path_, ignored);
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const fs::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  fs::path path_;
  bool keep_ = false;
};

// Where the executable goes: refused before anything is compiled when it cannot be written.
// Returns the temporary file beside it that the linker will write, already created.
fs::path check_output(const fs::path& out) {
  std::error_code ec;
  fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (out.filename().empty() || fs::is_directory(out, ec))
    throw BuildFailure(
        fmt::format("-o '{}' names a directory; give the executable's path, "
                    "e.g. {}",
                    out.string(), (out / "trainer").string()));
  if (!fs::exists(dir, ec))
    throw BuildFailure(fmt::format("cannot write '{}': the directory '{}' does not exist",
                                   out.string(), dir.string()));
  if (!fs::is_directory(dir, ec))
    throw BuildFailure(
        fmt::format("cannot write '{}': '{}' is not a directory", out.string(), dir.string()));
  fs::path temp = codegen::unique_temp_name(out);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
  if (fd < 0)
    throw BuildFailure(fmt::format("cannot write '{}': cannot create files in '{}': {}",
                                   out.string(), dir.string(), std::strerror(errno)));
  ::close(fd);
  return temp;
}

codegen::CompilerIdentity choose_compiler(const std::string& name) {
  if (!name.empty()) {
    std::optional<fs::path> path = codegen::find_on_path(name);
    if (!path)
      throw BuildFailure(fmt::format("the C++ compiler '{}' was not found{}", name,
                                     name.find('/') == std::string::npos ? " on PATH" : ""));
    return codegen::identify_compiler(*path);
  }
  for (const char* candidate : default_compilers)
    if (std::optional<fs::path> path = codegen::find_on_path(candidate))
      return codegen::identify_compiler(*path);
  throw BuildFailure(
      fmt::format("no C++ compiler found on PATH (tried {}); install g++ or clang, "
                  "or name one with --compiler",
                  fmt::join(default_compilers, ", ")));
}

std::string first_lines(const std::string& text, size_t count) {
  size_t end = 0;
  for (size_t line = 0; line < count && end < text.size(); ++line) {
    size_t nl = text.find('\n', end);
    end = nl == std::string::npos ? text.size() : nl + 1;
  }
  return end < text.size() ? text.substr(0, end) + "[...]\n" : text;
}

// Runs one step of the build; a failure keeps the work directory and says where it is.
void run_step(const std::string& what, const std::vector<std::string>& argv, WorkDir& work,
              bool verbose) {
  std::vector<std::string> quoted;
  for (const std::string& a : argv) quoted.push_back(shell_quote(a));
  if (verbose) fmt::print("{}\n", fmt::join(quoted, " "));
  std::fflush(stdout);
  codegen::ProcessResult r = codegen::run_process(argv);
  if (r.status == 0 && r.signal == 0) {
    if (verbose && !r.output.empty()) fmt::print("{}", r.output);
    return;
  }
  work.keep();
  throw BuildFailure(
      fmt::format("{} failed ({}); no executable was written\n"
                  "  sources kept in: {}\n"
                  "  to reproduce: cd {} && {}\n"
                  "the compiler said:\n{}",
                  what,
                  r.signal ? fmt::format("killed by signal {}", r.signal)
                           : fmt::format("exit status {}", r.status),
                  work.path().string(), shell_quote(work.path().string()), fmt::join(quoted, " "),
                  first_lines(r.output, 40)));
}

void write_file(const fs::path& path, std::string_view text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (f) ok = std::fclose(f) == 0 && ok;
  if (!ok)
    throw BuildFailure(fmt::format("cannot write '{}': {}", path.string(), std::strerror(errno)));
}

int run_build(const BuildArgs& a) {
  std::optional<dsl::Graph> graph = load_model(a.file, a.limits);
  if (!graph) return exit_user_error;
  const dsl::Graph& g = *graph;
  if (!is_identifier(g.name))
    throw std::logic_error(fmt::format("model name '{}' is not a C identifier", g.name));
  int64_t max_batch = a.max_batch.value_or(g.training.batch);

  const StandaloneLink& link = standalone_link();
  for (const std::string& archive : link.archives)
    if (!fs::exists(archive))
      throw BuildFailure(fmt::format(
          "'{}' is missing: cnnc build links against the libraries of the build tree that made "
          "this cnnc; rebuild it (cmake --build <that tree>)",
          archive));
  codegen::CompilerIdentity compiler = choose_compiler(a.compiler);
  // Link with the compiler that built the libraries, whose runtime (sanitizers, libstdc++) they
  // expect; the generated code, the part that is timed, is compiled with the chosen one.
  std::string linker = fs::exists(link.linker) ? link.linker : compiler.path.string();
  fs::path out = a.out;
  codegen::TempFile linked(check_output(out));

  auto start = std::chrono::steady_clock::now();
  // Generated at precision bf16, the linked code holds the bf16 variant beside the fp32 ones
  // whatever the file says, so that the trainer's --precision is honoured either way; the run's
  // precision picks the variant (engine/make_engine.cpp).
  dsl::Graph both = g;
  both.training.precision = dsl::Precision::bf16;
  codegen::Generated gen =
      codegen::generate(both, {g.source_path, g.source_text, static_cast<int>(max_batch)});
  std::string built_with = fmt::format("{} {}", compiler.short_name, compile_flags[0]);
  WorkDir work(g.name);
  const fs::path& dir = work.path();
  write_file(dir / "cnnc_abi.h", codegen::abi_header_text());
  write_file(dir / "standalone.hpp", standalone_header_text());
  write_file(dir / (g.name + ".gen.hpp"), gen.header);
  write_file(dir / (g.name + ".gen.cpp"), gen.source);
  write_file(dir / "main.cpp", main_source(g, max_batch, built_with, a.limits));

  auto compile = [&](const std::string& source, const std::string& object) {
    std::vector<std::string> argv{compiler.path.string()};
    argv.insert(argv.end(), compile_flags.begin(), compile_flags.end());
    argv.insert(argv.end(),
                {"-I", dir.string(), "-c", (dir / source).string(), "-o", (dir / object).string()});
    run_step(fmt::format("compiling {} with {}", source, compiler.short_name), argv, work,
             a.verbose);
  };
  compile(g.name + ".gen.cpp", "model.o");
  compile("main.cpp", "main.o");
  std::vector<std::string> argv{linker, (dir / "main.o").string(), (dir / "model.o").string()};
  argv.insert(argv.end(), link.archives.begin(), link.archives.end());
  argv.insert(argv.end(), link.libraries.begin(), link.libraries.end());
  argv.insert(argv.end(), link.flags.begin(), link.flags.end());
  argv.insert(argv.end(), {"-o", linked.path().string()});
  run_step("linking", argv, work, a.verbose);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::error_code ec;
  fs::rename(linked.path(), out, ec);
  if (ec)
    throw BuildFailure(
        fmt::format("cannot move the executable to '{}': {}", out.string(), ec.message()));
  linked.release();
  fmt::print("built {}: model {} with its specialised code linked in ({} lines, {}, {:.1f} s)\n",
             out.string(), g.name, dsl::with_thousands(gen.lines), built_with, seconds);
  fmt::print("run `{} train` to train it on data/mnist, `{} --help` for more\n",
             shell_quote(out.string()), shell_quote(out.string()));
  return exit_ok;
}

}  // namespace

void register_build(CLI::App& app, int& status) {
  auto a = std::make_shared<BuildArgs>();
  CLI::App* cmd =
      app.add_subcommand("build",
                         "Build a standalone trainer for one model: train, eval and predict, its "
                         "specialised code compiled in");
  cmd->add_option("file", a->file, ".cnn file")->required();
  cmd->add_option("-o,--out", a->out, "The executable to write (its directory must exist)")
      ->required();
  cmd->add_option("--compiler", a->compiler,
                  fmt::format("C++ compiler for the generated code (default: the first found of "
                              "{})",
                              fmt::join(default_compilers, ", ")));
  cmd->add_option("--max-batch", a->max_batch,
                  "The largest slice the linked code takes (default: the file's batch)")
      ->check(within(int64_t{1}, int64_t{65536}));
  cmd->add_flag("-v,--verbose", a->verbose, "Print the compiler and linker commands");
  add_limit_flags(*cmd, a->limits);
  cmd->callback([a, &status] {
    try {
      status = run_build(*a);
    } catch (const BuildFailure& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    } catch (const codegen::BuildError& e) {
      fmt::print(stderr, "cnnc: error: {}\n", e.what());
      status = exit_user_error;
    }
  });
}

}  // namespace cnnc::cli
