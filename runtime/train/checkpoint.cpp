// Atomic, checksummed checkpoint files.
#include "checkpoint.hpp"

#include "atomic_file.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace cnnc::rt {

namespace {

constexpr char magic[8] = {'C', 'N', 'N', 'C', 'C', 'K', 'P', 'T'};
constexpr uint32_t version = 1;

template <class T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <class T>
T get(const std::string& in, size_t& pos) {
  T v;
  std::memcpy(&v, in.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw std::runtime_error(fmt::format("checkpoint '{}': {}", path.string(), what));
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  std::string out(magic, sizeof magic);
  put(out, version);
  put(out, uint32_t{0});
  put(out, c.model_digest);
  put(out, c.epochs_done);
  put(out, uint32_t{0});
  put(out, c.step);
  put(out, static_cast<int64_t>(c.params.size()));
  out.append(reinterpret_cast<const char*>(c.params.data()), c.params.size() * sizeof(float));
  out.append(reinterpret_cast<const char*>(c.optimizer.data()), c.optimizer.size() * sizeof(float));
  put(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(out.data()),
                                       static_cast<uInt>(out.size()))));

  write_file_atomically(path, out);
}

Checkpoint load_checkpoint(const std::filesystem::path& path, uint64_t expected_digest) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot be opened");
  std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  constexpr size_t header = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8;
  if (in.size() < header || std::memcmp(in.data(), magic, sizeof magic) != 0)
    fail(path, "not a cnnc checkpoint");
  size_t pos = sizeof magic;
  uint32_t v = get<uint32_t>(in, pos);
  if (v != version) fail(path, fmt::format("version {}, this cnnc reads version {}", v, version));
  get<uint32_t>(in, pos);
  Checkpoint c;
  c.model_digest = get<uint64_t>(in, pos);
  c.epochs_done = get<uint32_t>(in, pos);
  get<uint32_t>(in, pos);
  c.step = get<int64_t>(in, pos);
  int64_t count = get<int64_t>(in, pos);
  if (count < 0 || static_cast<uint64_t>(count) > (in.size() - header) / 12)
    fail(path, "truncated or damaged (parameter count does not fit the file)");
  size_t body = static_cast<size_t>(count) * 3 * sizeof(float);
  if (in.size() != header + body + 4)
    fail(path,
         fmt::format("truncated or damaged: {} bytes, expected {}", in.size(), header + body + 4));
  uint32_t want = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(in.data()), static_cast<uInt>(header + body)));
  size_t crc_pos = header + body;
  if (get<uint32_t>(in, crc_pos) != want) fail(path, "checksum mismatch: the file is damaged");
  if (c.model_digest != expected_digest)
    fail(path, "written for a different model (its layer table differs)");
  c.params.resize(static_cast<size_t>(count));
  c.optimizer.resize(static_cast<size_t>(count) * 2);
  std::memcpy(c.params.data(), in.data() + pos, c.params.size() * sizeof(float));
  std::memcpy(c.optimizer.data(), in.data() + pos + c.params.size() * sizeof(float),
              c.optimizer.size() * sizeof(float));
  return c;
}

}  // namespace cnnc::rt
