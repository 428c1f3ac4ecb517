// Guards on generated code, read from Clang's AST (libTooling, AST matchers): inside every kernel
// (the <layer>_forward and <layer>_backward functions of cnnc_gen_<model>::{avx512,avx2,portable})
// each for-loop runs to a compile-time constant, nothing allocates, every call is direct, and
// no shape is read from the model's layer table. docs/design.md promises these; the checker is
// itself tested on a hand-written source that breaks each rule. And `cnnc gen --format`.
#include <catch2/catch.hpp>

#include <clang/AST/ASTContext.h>
#include <clang/AST/Expr.h>
#include <clang/AST/ExprCXX.h>
#include <clang/AST/Stmt.h>
#include <clang/ASTMatchers/ASTMatchFinder.h>
#include <clang/ASTMatchers/ASTMatchers.h>
#include <clang/Frontend/FrontendActions.h>
#include <clang/Tooling/Tooling.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "../dsl/check_text.hpp"
#include "codegen/compile/jit_clang.hpp"
#include "codegen/emit_model.hpp"

namespace fs = std::filesystem;
using namespace clang::ast_matchers;

namespace {

struct Violation {
  std::string rule;      // "loop bound", "allocation", "indirect call", "shape read"
  std::string function;  // qualified name of the kernel
  std::string where;     // file:line:col
  std::string detail;
};

struct KernelReport {
  bool parsed = false;
  std::map<std::string, int> kernels;  // qualified name -> for-loops in it
  std::vector<Violation> violations;
  int count(const std::string& rule) const {
    return static_cast<int>(std::count_if(violations.begin(), violations.end(),
                                          [&](const Violation& v) { return v.rule == rule; }));
  }
  int loops() const {
    int n = 0;
    for (const auto& kernel : kernels) n += kernel.second;
    return n;
  }
};

// A kernel: a static function defined in cnnc_gen_<model>::<isa> named <layer>_forward or
// <layer>_backward. The drivers around them (forward, train, load_block, ...) loop over the
// slice's samples, a run-time count, and are not kernels.
auto kernel_function() {
  return functionDecl(isDefinition(), isStaticStorageClass(),
                      matchesName("^::cnnc_gen_[A-Za-z0-9_]+::(avx512|avx2|portable)::"
                                  "[A-Za-z0-9_]+_(forward|backward)$"))
      .bind("kernel");
}

class Checker : public MatchFinder::MatchCallback {
 public:
  explicit Checker(KernelReport& report) : report_(report) {}

  void register_with(MatchFinder& finder) {
    auto in_kernel = hasAncestor(kernel_function());
    finder.addMatcher(kernel_function(), this);
    finder.addMatcher(forStmt(in_kernel).bind("for"), this);
    finder.addMatcher(stmt(anyOf(whileStmt(), doStmt(), cxxForRangeStmt()), in_kernel).bind("loop"),
                      this);
    finder.addMatcher(cxxNewExpr(in_kernel).bind("new"), this);
    finder.addMatcher(cxxDeleteExpr(in_kernel).bind("delete"), this);
    finder.addMatcher(callExpr(in_kernel).bind("call"), this);
    finder.addMatcher(
        memberExpr(member(fieldDecl(hasParent(recordDecl(hasAnyName("cnnc_layer", "cnnc_model"))))),
                   in_kernel)
            .bind("shape"),
        this);
  }

  void run(const MatchFinder::MatchResult& result) override {
    const auto* kernel = result.Nodes.getNodeAs<clang::FunctionDecl>("kernel");
    if (!kernel) return;
    std::string name = "::" + kernel->getQualifiedNameAsString();
    clang::ASTContext& ast = *result.Context;
    if (result.Nodes.getNodeAs<clang::Stmt>("for") == nullptr &&
        result.Nodes.getNodeAs<clang::Stmt>("loop") == nullptr &&
        result.Nodes.getNodeAs<clang::Stmt>("new") == nullptr &&
        result.Nodes.getNodeAs<clang::Stmt>("delete") == nullptr &&
        result.Nodes.getNodeAs<clang::Stmt>("call") == nullptr &&
        result.Nodes.getNodeAs<clang::Stmt>("shape") == nullptr) {
      report_.kernels.emplace(name, 0);
      return;
    }
    if (const auto* loop = result.Nodes.getNodeAs<clang::ForStmt>("for")) {
      ++report_.kernels[name];
      if (std::string why = bound_problem(*loop, ast); !why.empty()) {
        flag("loop bound", name, loop->getBeginLoc(), ast, why);
      }
    }
    if (const auto* loop = result.Nodes.getNodeAs<clang::Stmt>("loop")) {
      flag("loop bound", name, loop->getBeginLoc(), ast,
           "a while, do or range-for loop: its trip count is not a constant in the source");
    }
    if (const auto* e = result.Nodes.getNodeAs<clang::Stmt>("new")) {
      flag("allocation", name, e->getBeginLoc(), ast, "new expression");
    }
    if (const auto* e = result.Nodes.getNodeAs<clang::Stmt>("delete")) {
      flag("allocation", name, e->getBeginLoc(), ast, "delete expression");
    }
    if (const auto* call = result.Nodes.getNodeAs<clang::CallExpr>("call"))
      check_call(*call, name, ast);
    if (const auto* member = result.Nodes.getNodeAs<clang::MemberExpr>("shape")) {
      flag("shape read", name, member->getBeginLoc(), ast,
           "reads " + member->getMemberDecl()->getQualifiedNameAsString());
    }
  }

 private:
  // Empty when the loop is `for (init; i <op> constant; step)`; else what is wrong.
  static std::string bound_problem(const clang::ForStmt& loop, clang::ASTContext& ast) {
    const auto* cond = llvm::dyn_cast_or_null<clang::BinaryOperator>(
        loop.getCond() ? loop.getCond()->IgnoreParenImpCasts() : nullptr);
    if (!cond || !cond->isComparisonOp()) return "the condition is not a comparison";
    const clang::Expr* lhs = cond->getLHS()->IgnoreParenImpCasts();
    const clang::Expr* rhs = cond->getRHS()->IgnoreParenImpCasts();
    // One side is the loop's variable, the other the bound.
    const clang::Expr* bound = llvm::isa<clang::DeclRefExpr>(lhs) ? rhs : lhs;
    if (!bound->isValueDependent() && bound->isIntegerConstantExpr(ast)) return {};
    return "the bound is not a compile-time constant";
  }

  void check_call(const clang::CallExpr& call, const std::string& name, clang::ASTContext& ast) {
    const clang::FunctionDecl* callee = call.getDirectCallee();
    if (!callee) {
      flag("indirect call", name, call.getBeginLoc(), ast, "call through a pointer");
      return;
    }
    if (const auto* method = llvm::dyn_cast<clang::CXXMethodDecl>(callee);
        method && method->isVirtual()) {
      flag("indirect call", name, call.getBeginLoc(), ast,
           "virtual call to " + method->getQualifiedNameAsString());
    }
    static const char* const allocators[] = {
        "malloc",        "calloc",         "realloc",         "free",
        "aligned_alloc", "posix_memalign", "_mm_malloc",      "_mm_free",
        "operator new",  "operator new[]", "operator delete", "operator delete[]"};
    std::string callee_name = callee->getNameAsString();
    for (const char* a : allocators) {
      if (callee_name == a)
        flag("allocation", name, call.getBeginLoc(), ast, "calls " + callee_name);
    }
  }

  void flag(const std::string& rule, const std::string& function, clang::SourceLocation at,
            clang::ASTContext& ast, const std::string& detail) {
    clang::PresumedLoc p = ast.getSourceManager().getPresumedLoc(at);
    std::string where =
        p.isValid() ? fmt_location(p.getFilename(), p.getLine(), p.getColumn()) : "?";
    report_.violations.push_back({rule, function, where, detail});
  }

  static std::string fmt_location(const char* file, unsigned line, unsigned column) {
    return std::string(file) + ":" + std::to_string(line) + ":" + std::to_string(column);
  }

  KernelReport& report_;
};

// Parses code (a generated .gen.cpp, or a stand-in) as Clang would compile it, without code
// generation, and applies the rules to every kernel.
KernelReport check_kernels(const std::string& code, const std::string& file_name) {
  KernelReport report;
  Checker checker(report);
  MatchFinder finder;
  checker.register_with(finder);
  std::vector<std::string> args = {"-std=c++17", "-resource-dir", CNNC_CLANG_RESOURCE_DIR, "-I",
                                   std::string(CNNC_SOURCE_DIR) + "/runtime"};
  report.parsed = clang::tooling::runToolOnCodeWithArgs(
      clang::tooling::newFrontendActionFactory(&finder)->create(), code, args, file_name,
      "cnnc-kernel-rules");
  return report;
}

std::string describe(const KernelReport& r) {
  std::string s = std::to_string(r.kernels.size()) + " kernels, " + std::to_string(r.loops()) +
                  " for-loops, " + std::to_string(r.violations.size()) + " violations\n";
  for (const Violation& v : r.violations) {
    s += v.where + ": " + v.rule + " in " + v.function + ": " + v.detail + "\n";
  }
  return s;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Breaks every rule once or more, in the shape of generated code; plus a driver function and a
// kernel in another namespace, which the rules do not cover.
const char* const broken_kernels = R"(#include "cnnc_abi.h"
#include <cstdlib>
namespace cnnc_gen_bad {
namespace avx2 {
struct Base { virtual ~Base() = default; virtual int f() const { return 1; } };
static void helper() {}
static void conv1_forward(float* ws, int n, const cnnc_model* model, const cnnc_layer* layer,
                          void (*callback)(), const Base& base) {
  for (int i = 0; i < 16; ++i) ws[i] = 0;            // fine
  for (int i = 0; i < n; ++i) ws[i] = 1;             // loop bound: a parameter
  for (int i = 0; i < layer->out_c; ++i) ws[i] = 2;  // loop bound, shape read
  for (;;) break;                                    // loop bound: no condition
  int k = 0;
  while (k < 4) ++k;                                 // loop bound: a while loop
  float* heap = new float[4];                        // allocation
  delete[] heap;                                     // allocation
  void* raw = std::malloc(16);                       // allocation
  std::free(raw);                                    // allocation
  callback();                                        // indirect call
  ws[0] = static_cast<float>(base.f());              // indirect call: virtual
  ws[1] = static_cast<float>(model->max_batch);      // shape read
  helper();                                          // fine: a direct call
}
}  // namespace avx2
static void forward(float* ws, int n) {
  for (int i = 0; i < n; ++i) ws[i] = 0;  // a driver, not a kernel: not checked
}
namespace avx2 {
static void dense1_backward(float* ws) {
  for (int i = 0; i < 8; i += 2) ws[i] = 0;  // a clean kernel
}
}  // namespace avx2
}  // namespace cnnc_gen_bad
namespace other {
static void conv1_forward(float* ws, int n) {
  for (int i = 0; i < n; ++i) ws[i] = 0;  // not generated code: not checked
}
}  // namespace other
void use(float* ws) {
  cnnc_gen_bad::avx2::conv1_forward(ws, 1, nullptr, nullptr, nullptr, {});
  cnnc_gen_bad::avx2::dense1_backward(ws);
  cnnc_gen_bad::forward(ws, 1);
  other::conv1_forward(ws, 1);
}
)";

}  // namespace

TEST_CASE("The kernel checker flags each broken rule, and only in kernels") {
  KernelReport r = check_kernels(broken_kernels, "broken_kernels.cpp");
  INFO(describe(r));
  REQUIRE(r.parsed);
  CHECK(r.kernels.size() == 2);
  CHECK(r.kernels.count("::cnnc_gen_bad::avx2::conv1_forward") == 1);
  CHECK(r.kernels.count("::cnnc_gen_bad::avx2::dense1_backward") == 1);
  CHECK(r.count("loop bound") == 4);
  CHECK(r.count("allocation") == 4);
  CHECK(r.count("indirect call") == 2);
  CHECK(r.count("shape read") == 2);
  for (const Violation& v : r.violations)
    CHECK(v.function == "::cnnc_gen_bad::avx2::conv1_forward");
  // Located in the source, as a compiler would: line 10 holds the parameter-bound loop.
  CHECK(std::any_of(r.violations.begin(), r.violations.end(), [](const Violation& v) {
    return v.where == "broken_kernels.cpp:10:3" && v.rule == "loop bound";
  }));
}

TEST_CASE(
    "Generated kernels of every model: constant loop bounds, no allocation, direct calls, "
    "no shape reads") {
  std::vector<fs::path> models;
  for (const auto& e : fs::directory_iterator(fs::path(CNNC_SOURCE_DIR) / "models")) {
    if (e.path().extension() == ".cnn") models.push_back(e.path());
  }
  std::sort(models.begin(), models.end());
  REQUIRE(models.size() >= 4);
  for (const fs::path& path : models) {
    DYNAMIC_SECTION(path.filename().string()) {
      std::string text = read(path);
      cnnc::dsl::Graph g = cnnc::test::check_text(text, {}, path.string()).graph.value();
      cnnc::codegen::Generated gen = cnnc::codegen::generate(
          g, {path.filename().string(), text, static_cast<int>(g.training.batch)});
      KernelReport r = check_kernels(gen.source, g.name + ".gen.cpp");
      INFO(g.name << ": " << describe(r));
      REQUIRE(r.parsed);
      // Not vacuous: every ISA has kernels, and they loop.
      for (const char* isa : {"avx512", "avx2", "portable"}) {
        std::string prefix = "::cnnc_gen_" + g.name + "::" + isa + "::";
        CHECK(std::any_of(r.kernels.begin(), r.kernels.end(),
                          [&](const auto& k) { return k.first.starts_with(prefix); }));
      }
      CHECK(r.loops() > 0);
      CHECK(r.violations.empty());
    }
  }
}

TEST_CASE("cnnc gen --format formats with clang-format in cnnc's style") {
  REQUIRE(cnnc::codegen::jit::can_format());
  // Google style, pointers to the left, short functions on one line only inside a class.
  CHECK(cnnc::codegen::jit::format_source("int  f( int*a ){return *a;}\n", "x.cpp") ==
        "int f(int* a) {\n  return *a;\n}\n");
  CHECK(cnnc::codegen::jit::format_source("struct S{int  f( ){return 1;}};\n", "x.cpp") ==
        "struct S {\n  int f() { return 1; }\n};\n");
  // 100 columns, as .clang-format says: this 89-column line stays whole.
  std::string long_line =
      "void g(int first_argument, int second_argument, int third_argument, int fourth_argument);\n";
  CHECK(cnnc::codegen::jit::format_source(long_line, "x.cpp") == long_line);
}
