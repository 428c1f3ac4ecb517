// Cache keys, entry validation and atomic writes for compiled models.
#include "codegen/compile/cache.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "codegen/compile/abi_header.hpp"
#include "codegen/compile/build.hpp"
#include "codegen/sha256.hpp"

namespace cnnc::codegen {

namespace {

constexpr std::string_view meta_magic = "cnnc-build-cache 1";

// Length-prefixed, so no two different lists of fields hash the same bytes.
void hash_field(Sha256& h, std::string_view field) {
  h.update(fmt::format("{}:", field.size()));
  h.update(field);
}

}  // namespace

const std::string& cpu_identity() {
  static const std::string identity = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line, vendor, model, flags;
    // The first processor's block is enough: every core of one machine has the same features.
    while (std::getline(in, line) && !line.empty()) {
      std::string key = line.substr(0, line.find(':'));
      std::string value =
          line.find(": ") == std::string::npos ? "" : line.substr(line.find(": ") + 2);
      key.erase(key.find_last_not_of(" \t") + 1);
      if (key == "vendor_id") vendor = value;
      if (key == "model name") model = value;
      if (key == "flags") flags = value;
    }
    return fmt::format("{} | {} | flags {}", vendor, model, sha256_hex(flags));
  }();
  return identity;
}

std::string cache_key(const std::string& source, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags) {
  Sha256 h;
  hash_field(h, meta_magic);
  hash_field(h, model_name);
  hash_field(h, source);
  hash_field(h, abi_header_text());
  hash_field(h, compiler.path.string());
  hash_field(h, compiler.version_text);
  hash_field(h, fmt::format("{}", flags.size()));
  for (const std::string& f : flags) hash_field(h, f);
  hash_field(h, cpu_identity());
  return h.hex();
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return std::move(s).str();
}

std::optional<std::string> read_valid_entry(const CacheEntry& entry) {
  std::optional<std::string> meta = read_file(entry.meta());
  if (!meta) return std::nullopt;
  std::istringstream lines(*meta);
  std::string line, bytes, sha;
  if (!std::getline(lines, line) || line != meta_magic) return std::nullopt;
  while (std::getline(lines, line)) {
    if (line.starts_with("so_bytes ")) bytes = line.substr(9);
    if (line.starts_with("so_sha256 ")) sha = line.substr(10);
  }
  // The size first: a truncated file is rejected without reading it all.
  std::error_code ec;
  auto size = std::filesystem::file_size(entry.library(), ec);
  if (ec || bytes != std::to_string(size)) return std::nullopt;
  std::optional<std::string> compiled = read_file(entry.library());
  if (!compiled || sha256_hex(*compiled) != sha) return std::nullopt;
  return compiled;
}

std::string meta_text(const std::string& compiled, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags,
                      double compile_seconds) {
  // so_bytes and so_sha256 describe the compiled file whatever it is, model.so or model.o: the
  // names predate the object files and stay, so entries keep one format.
  return fmt::format(
      "{}\nmodel {}\ncompiler {}\ncompiler_path {}\nflags {}\ncpu {}\n"
      "compile_seconds {:.3f}\nso_bytes {}\nso_sha256 {}\n",
      meta_magic, model_name, compiler.short_name, compiler.path.string(), fmt::join(flags, " "),
      cpu_identity(), compile_seconds, compiled.size(), sha256_hex(compiled));
}

std::filesystem::path unique_temp_name(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path p = path;
  p += fmt::format(".tmp-{}-{}", ::getpid(), counter.fetch_add(1));
  return p;
}

void write_file_atomically(const std::filesystem::path& path, const std::string& contents) {
  TempFile tmp(unique_temp_name(path));
  {
    std::ofstream out(tmp.path(), std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) throw CacheWriteError(fmt::format("cannot write {}", tmp.path().string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp.path(), path, ec);
  if (ec) {
    throw CacheWriteError(fmt::format("cannot rename {} to {}: {}", tmp.path().string(),
                                      path.string(), ec.message()));
  }
  tmp.release();
}

TempFile::~TempFile() {
  if (path_.empty()) return;
  std::error_code ignored;  // nothing better to do in a destructor; the file may not exist yet
  std::filesystem::remove(path_, ignored);
}

}  // namespace cnnc::codegen
