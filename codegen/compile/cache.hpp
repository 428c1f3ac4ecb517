// The on-disk cache of compiled models: keys, entries, and files that appear whole or not at all.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "compiler.hpp"

namespace cnnc::codegen {

// The CPU as far as the compiler's output may depend on it: vendor, model name and a hash of the
// feature flags, from /proc/cpuinfo (empty where there is none).
const std::string& cpu_identity();

// The SHA-256 over everything that decides the bytes of model.so.
std::string cache_key(const std::string& source, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags);

// <cache>/v1/<key>/: model.cpp (the source, kept for debuggers), model.so, meta.txt.
struct CacheEntry {
  std::filesystem::path dir;
  std::filesystem::path source() const { return dir / "model.cpp"; }
  std::filesystem::path library() const { return dir / "model.so"; }
  std::filesystem::path meta() const { return dir / "meta.txt"; }
};

// True when the entry's meta.txt is whole and model.so has exactly the size and SHA-256 it
// records. Anything else (missing, truncated, altered) is a miss.
bool entry_is_valid(const CacheEntry& entry);

// The meta.txt that describes compiled (a library about to become the entry's model.so): its
// size and SHA-256, and for people, how it was made.
std::string meta_text(const std::filesystem::path& compiled, const std::string& model_name,
                      const CompilerIdentity& compiler, const std::vector<std::string>& flags,
                      double compile_seconds);

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
