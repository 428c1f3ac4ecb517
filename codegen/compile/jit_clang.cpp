// The in-process build with the Clang 19 libraries: driver arguments to a CompilerInvocation,
// EmitObjAction into memory, ORC's LLJIT (JITLink) to link the object into this process, and
// clang-format. The one file of cnnc that includes LLVM's headers.
//
// Not clang::Interpreter: on erroneous input it crashes in IncrementalParser::CleanUpPTU, and
// generated code that does not compile must be reported, not crash cnnc.
#include "codegen/compile/jit_clang.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <link.h>

#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/Basic/Version.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Format/Format.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <clang/Frontend/Utils.h>
#include <clang/Tooling/Core/Replacement.h>
#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/Orc/EPCEHFrameRegistrar.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/VirtualFileSystem.h>
#include <llvm/Support/raw_ostream.h>

#include <mutex>

#include "codegen/compile/build.hpp"

namespace cnnc::codegen::jit {

namespace fs = std::filesystem;
namespace orc = llvm::orc;
namespace jitlink = llvm::jitlink;

namespace {

// Found at configure time (cmake/CnncClang.cmake): where Debian's clang-19 keeps its driver and
// its own headers. The driver is never run; its path anchors the search for libstdc++.
constexpr const char* driver_path = CNNC_CLANG_DRIVER;
constexpr const char* resource_dir = CNNC_CLANG_RESOURCE_DIR;

// cnnc's .clang-format, so that `cnnc gen --format` writes what the repository would.
constexpr const char* format_style =
    "BasedOnStyle: Google\n"
    "ColumnLimit: 100\n"
    "IndentWidth: 2\n"
    "AllowShortFunctionsOnASingleLine: Inline\n"
    "AllowShortIfStatementsOnASingleLine: WithoutElse\n"
    "DerivePointerAlignment: false\n"
    "PointerAlignment: Left\n"
    "IncludeBlocks: Preserve\n"
    "AllowShortCaseLabelsOnASingleLine: true\n";

std::string message_of(llvm::Error error) {
  std::string text = llvm::toString(std::move(error));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();  // inline assembly in system headers
  });
}

// A symbol of libgcc_s as this process sees it: its address and, where the dynamic symbol table
// says, its size.
struct ProcessSymbol {
  const void* address = nullptr;
  size_t size = 0;
};

ProcessSymbol libgcc_symbol(const char* name) {
  // libgcc_s exports the CPU model only under the version GCC_4.8.0, never as the default
  // version, so a plain dlsym does not see it.
  void* address = ::dlvsym(RTLD_DEFAULT, name, "GCC_4.8.0");
  if (!address) address = ::dlsym(RTLD_DEFAULT, name);
  if (!address) return {};
  Dl_info info;
  void* entry = nullptr;  // dladdr1 stores a const ElfW(Sym)* here
  size_t size = 0;
  if (::dladdr1(address, &info, &entry, RTLD_DL_SYMENT) && entry) {
    size = static_cast<const ElfW(Sym)*>(entry)->st_size;
  }
  return {address, size};
}

// Clang compiles __builtin_cpu_supports into a PC-relative load from __cpu_model, a symbol it
// expects in the same image (libgcc.a links it into every executable and library). Here the
// only copy is libgcc_s's, which may lie beyond the ±2 GiB such a load reaches from JIT memory.
// So each object gets its own copy inside its link graph, taken after libgcc's constructor
// filled it in; __cpu_indicator_init is a call, which JITLink routes through a stub, so the
// process's own function is used.
void localize_libgcc_cpu_model(jitlink::LinkGraph& graph) {
  std::vector<jitlink::Symbol*> wanted;
  for (jitlink::Symbol* symbol : graph.external_symbols()) {
    llvm::StringRef name = symbol->getName();
    if (name == "__cpu_model" || name == "__cpu_features2" || name == "__cpu_indicator_init") {
      wanted.push_back(symbol);
    }
  }
  if (wanted.empty()) return;
  // Idempotent: libgcc_s ran it as a constructor; calling it makes sure the copy is complete.
  if (auto init = libgcc_symbol("__cpu_indicator_init"); init.address) {
    reinterpret_cast<int (*)()>(const_cast<void*>(init.address))();
  }
  jitlink::Section* section = nullptr;
  for (jitlink::Symbol* symbol : wanted) {
    std::string name = symbol->getName().str();
    ProcessSymbol found = libgcc_symbol(name.c_str());
    if (!found.address) continue;  // stays undefined: the link names it as missing
    if (name == "__cpu_indicator_init" || found.size == 0) {
      graph.makeAbsolute(*symbol, orc::ExecutorAddr::fromPtr(found.address));
      continue;
    }
    if (!section) {
      using llvm::BitmaskEnumDetail::operator|;  // MemProt's, which ADL does not find from here
      section =
          &graph.createSection("__cnnc_libgcc_data", orc::MemProt::Read | orc::MemProt::Write);
    }
    auto bytes = graph.allocateContent(
        llvm::ArrayRef<char>(static_cast<const char*>(found.address), found.size));
    jitlink::Block& block =
        graph.createMutableContentBlock(*section, bytes, orc::ExecutorAddr(), 16, 0);
    graph.makeDefined(*symbol, block, 0, found.size, jitlink::Linkage::Strong,
                      jitlink::Scope::Local, true);
  }
}

class LibgccCpuModelPlugin final : public orc::ObjectLinkingLayer::Plugin {
 public:
  void modifyPassConfig(orc::MaterializationResponsibility&, jitlink::LinkGraph&,
                        jitlink::PassConfiguration& config) override {
    config.PrePrunePasses.push_back([](jitlink::LinkGraph& graph) {
      localize_libgcc_cpu_model(graph);
      return llvm::Error::success();
    });
  }
  llvm::Error notifyFailed(orc::MaterializationResponsibility&) override {
    return llvm::Error::success();
  }
  llvm::Error notifyRemovingResources(orc::JITDylib&, orc::ResourceKey) override {
    return llvm::Error::success();
  }
  void notifyTransferringResources(orc::JITDylib&, orc::ResourceKey, orc::ResourceKey) override {}
};

struct ProcessJit {
  std::unique_ptr<orc::LLJIT> jit;
  std::mutex mutex;  // one link or unload at a time; linking is milliseconds
  uint64_t libraries = 0;
};

// Created on first use and never destroyed, on purpose: LLVM tears its own static state down at
// exit in an order cnnc does not control, and a JIT destroyed after that crashes. Code it
// linked is unmapped when its model's owner goes (load_object).
ProcessJit& process_jit() {
  static ProcessJit* const instance = [] {
    initialize_llvm();
    auto jit =
        orc::LLJITBuilder()
            .setObjectLinkingLayerCreator(
                [](orc::ExecutionSession& session,
                   const llvm::Triple&) -> llvm::Expected<std::unique_ptr<orc::ObjectLayer>> {
                  auto layer = std::make_unique<orc::ObjectLinkingLayer>(session);
                  // Unwind tables, for debuggers and profilers walking through generated code.
                  auto registrar = orc::EPCEHFrameRegistrar::Create(session);
                  if (!registrar) return registrar.takeError();
                  layer->addPlugin(std::make_unique<orc::EHFrameRegistrationPlugin>(
                      session, std::move(*registrar)));
                  layer->addPlugin(std::make_shared<LibgccCpuModelPlugin>());
                  return layer;
                })
            .create();
    if (!jit) {
      throw BuildError(fmt::format("internal error: cannot start the in-process JIT: {}",
                                   message_of(jit.takeError())));
    }
    auto* p = new ProcessJit;
    p->jit = std::move(*jit);
    return p;
  }();
  return *instance;
}

}  // namespace

bool available() {
  static const bool headers_present = [] {
    std::error_code ignored;
    return fs::exists(fs::path(resource_dir) / "include" / "immintrin.h", ignored);
  }();
  return headers_present;
}

const CompilerIdentity& identity() {
  static const CompilerIdentity id = [] {
    CompilerIdentity c;
    c.path = driver_path;
    std::string full = clang::getClangFullVersion();  // the library's, not the headers'
    c.version_text =
        fmt::format("{}\nin-process (libclang-cpp)\nresource-dir {}\n", full, resource_dir);
    std::string version = CLANG_VERSION_STRING;
    if (size_t at = full.find("clang version "); at != std::string::npos) {
      std::string rest = full.substr(at + 14);
      version = rest.substr(0, rest.find(' '));
    }
    c.short_name = "clang " + version;
    return c;
  }();
  return id;
}

std::vector<std::string> driver_command(const std::vector<std::string>& args) {
  std::vector<std::string> command{driver_path, "-resource-dir", resource_dir};
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

ObjectResult compile_object(const std::string& source, const fs::path& source_path,
                            const std::vector<std::string>& args) {
  initialize_llvm();
  ObjectResult result;
  llvm::raw_string_ostream diagnostics(result.diagnostics);

  auto memory = llvm::makeIntrusiveRefCnt<llvm::vfs::InMemoryFileSystem>();
  memory->addFile(source_path.string(), 0,
                  llvm::MemoryBuffer::getMemBufferCopy(source, source_path.string()));
  auto files =
      llvm::makeIntrusiveRefCnt<llvm::vfs::OverlayFileSystem>(llvm::vfs::getRealFileSystem());
  files->pushOverlay(memory);

  // The driver's own complaints (an unknown flag) go to the same text as the compiler's.
  llvm::IntrusiveRefCntPtr<clang::DiagnosticOptions> driver_options(new clang::DiagnosticOptions);
  driver_options->ShowColors = false;
  auto driver_diagnostics = clang::CompilerInstance::createDiagnostics(
      driver_options.get(), new clang::TextDiagnosticPrinter(diagnostics, driver_options.get()),
      /*ShouldOwnClient=*/true);

  std::vector<std::string> command = driver_command(args);
  command.insert(command.begin() + 1, "-fno-color-diagnostics");
  // The output goes to memory (setOutputStream below); -o only keeps the driver from naming a
  // file in the working directory.
  command.insert(command.end(), {"-c", source_path.string(), "-o", "/dev/null"});
  std::vector<const char*> argv;
  for (const std::string& a : command) argv.push_back(a.c_str());
  clang::CreateInvocationOptions options;
  options.Diags = driver_diagnostics;
  options.VFS = files;
  std::shared_ptr<clang::CompilerInvocation> invocation =
      clang::createInvocation(argv, std::move(options));
  if (!invocation) {
    diagnostics.flush();
    if (result.diagnostics.empty()) result.diagnostics = "the driver rejected the arguments\n";
    return result;
  }
  // The driver passes -disable-free, for a process that exits after one compile; this one
  // compiles again and must not leak the AST and the target machine each time.
  invocation->getFrontendOpts().DisableFree = false;
  invocation->getCodeGenOpts().DisableFree = false;

  llvm::SmallString<0> object;
  llvm::LLVMContext context;  // outlives the compiler and the action, which hold modules in it
  clang::CompilerInstance compiler;
  compiler.setInvocation(std::move(invocation));
  // A fresh engine built from the invocation's own options: a DiagnosticsEngine passed in from
  // outside would ignore -ferror-limit and the like.
  compiler.createDiagnostics(
      new clang::TextDiagnosticPrinter(diagnostics, &compiler.getDiagnosticOpts()),
      /*ShouldOwnClient=*/true);
  compiler.setVerboseOutputStream(diagnostics);  // "1 error generated.", else on stderr
  compiler.createFileManager(files);
  compiler.setOutputStream(std::make_unique<llvm::raw_svector_ostream>(object));
  clang::EmitObjAction action(&context);
  bool ok = compiler.ExecuteAction(action) && !compiler.getDiagnostics().hasErrorOccurred();
  diagnostics.flush();
  if (ok && object.empty()) {
    ok = false;
    result.diagnostics += "the compiler produced no object code\n";
  }
  result.ok = ok;
  if (ok) result.object.assign(object.data(), object.size());
  return result;
}

LoadedObject load_object(const std::string& object, const std::string& label,
                         const std::vector<std::string>& names) {
  ProcessJit& p = process_jit();
  std::lock_guard lock(p.mutex);
  orc::ExecutionSession& session = p.jit->getExecutionSession();
  auto created = p.jit->createJITDylib(fmt::format("{}#{}", label, p.libraries++));
  if (!created) {
    throw BuildError(fmt::format("internal error: cannot create a JIT library for {}: {}", label,
                                 message_of(created.takeError())));
  }
  orc::JITDylib* library = &*created;
  auto unload = [&p](orc::JITDylib* jd) {
    std::lock_guard unload_lock(p.mutex);
    // Nothing to do about a failure to unmap: the memory stays mapped, which is harmless.
    llvm::consumeError(p.jit->getExecutionSession().removeJITDylib(*jd));
  };
  auto fail = [&](const std::string& what, llvm::Error error) {
    llvm::consumeError(session.removeJITDylib(*library));
    return BuildError(fmt::format("internal error: cannot {} the compiled code of {}: {}", what,
                                  label, message_of(std::move(error))));
  };

  if (llvm::Error error = p.jit->addObjectFile(
          *library, llvm::MemoryBuffer::getMemBufferCopy(object, label + ".o"))) {
    throw fail("load", std::move(error));
  }
  // Weak references: a name the object lacks comes back absent rather than failing the lookup,
  // so the caller can say which entry point is missing. Anything else (an undefined symbol
  // the process cannot provide) fails the link.
  orc::SymbolLookupSet lookup;
  std::vector<orc::SymbolStringPtr> interned;
  for (const std::string& name : names) {
    interned.push_back(p.jit->mangleAndIntern(name));
    lookup.add(interned.back(), orc::SymbolLookupFlags::WeaklyReferencedSymbol);
  }
  auto found = session.lookup(
      orc::makeJITDylibSearchOrder({library}, orc::JITDylibLookupFlags::MatchAllSymbols),
      std::move(lookup));
  if (!found) throw fail("link", found.takeError());

  LoadedObject loaded;
  for (const orc::SymbolStringPtr& name : interned) {
    auto at = found->find(name);
    loaded.symbols.push_back(at == found->end() ? nullptr : at->second.getAddress().toPtr<void*>());
  }
  loaded.owner = std::shared_ptr<void>(
      static_cast<void*>(library), [unload](void* jd) { unload(static_cast<orc::JITDylib*>(jd)); });
  return loaded;
}

bool can_format() {
  return true;
}

std::string format_source(const std::string& source, const std::string& file_name) {
  clang::format::FormatStyle style = clang::format::getLLVMStyle();
  style.Language = clang::format::FormatStyle::LK_Cpp;
  if (std::error_code ec = clang::format::parseConfiguration(format_style, &style)) {
    throw std::runtime_error(fmt::format("internal error: cnnc's format style: {}", ec.message()));
  }
  std::vector<clang::tooling::Range> whole{
      clang::tooling::Range(0, static_cast<unsigned>(source.size()))};
  clang::tooling::Replacements edits = clang::format::reformat(style, source, whole, file_name);
  llvm::Expected<std::string> formatted = clang::tooling::applyAllReplacements(source, edits);
  if (!formatted) {
    throw std::runtime_error(
        fmt::format("cannot format {}: {}", file_name, message_of(formatted.takeError())));
  }
  return *formatted;
}

}  // namespace cnnc::codegen::jit
