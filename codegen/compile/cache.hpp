// The on-disk cache of compiled models: keys, entries, and files that appear whole or not at all.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "codegen/compile/compiler.hpp"

namespace cnnc::codegen {

// The CPU as far as the compiler's output may depend on it: vendor, model name and a hash of the
// feature flags, from /proc/cpuinfo (empty where there is none).
const std::string& cpu_identity();

// The SHA-256 over everything that decides the compiled bytes (model.so or model.o).
std::string cache_key(const std::string& source, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags);

// <cache>/v1/<key>/: model.cpp (the source, kept for debuggers), the compiled code (model.so from
// the subprocess, model.o, an object file, from the in-process build), meta.txt. One key is only
// ever built by one backend: the compiler's identity is part of it.
struct CacheEntry {
  std::filesystem::path dir;
  std::string compiled_name = "model.so";
  std::filesystem::path source() const { return dir / "model.cpp"; }
  std::filesystem::path library() const { return dir / compiled_name; }
  std::filesystem::path meta() const { return dir / "meta.txt"; }
};

// The compiled file's bytes when the entry's meta.txt is whole and the file has exactly the size
// and SHA-256 it records. Anything else (missing, truncated, altered) is a miss: nullopt.
std::optional<std::string> read_valid_entry(const CacheEntry& entry);
inline bool entry_is_valid(const CacheEntry& entry) {
  return read_valid_entry(entry).has_value();
}

// The meta.txt that describes compiled (the bytes about to become the entry's compiled file):
// their size and SHA-256, and for people, how they were made.
std::string meta_text(const std::string& compiled, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags,
                      double compile_seconds);

// The whole file at path, or nullopt when it cannot be read.
std::optional<std::string> read_file(const std::filesystem::path& path);

// A name beside `path` that no other thread or process uses: path + ".tmp-<pid>-<n>".
std::filesystem::path unique_temp_name(const std::filesystem::path& path);

// Writes contents to a temporary file beside path and renames it over path, so a reader sees
// the old file or the new one, never a part. Throws BuildError on failure, leaving no temp file.
void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

// Removes the file on destruction unless released: temp files never outlive a failure.
class TempFile {
 public:
  explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

}  // namespace cnnc::codegen
