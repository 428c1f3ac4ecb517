// Atomic, checksummed checkpoint files.
#include "train/checkpoint.hpp"

#include "train/atomic_file.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>
#include <span>
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

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(fmt::format("checkpoint '{}': {}", name, what));
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
  put(out,
      static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(out.data()), out.size())));

  write_file_atomically(path, out);
}

Checkpoint read_checkpoint(ByteSource& in, const std::string& name, uint64_t expected_digest) {
  // Everything the header announces is checked against the real size and the expected model
  // before anything is allocated for the parameters.
  constexpr size_t header = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8;
  std::string head(header, '\0');
  if (in.size() < header || in.read(std::as_writable_bytes(std::span(head))) < header ||
      std::memcmp(head.data(), magic, sizeof magic) != 0)
    fail(name, "not a cnnc checkpoint");
  size_t pos = sizeof magic;
  uint32_t v = get<uint32_t>(head, pos);
  if (v != version) fail(name, fmt::format("version {}, this cnnc reads version {}", v, version));
  get<uint32_t>(head, pos);
  Checkpoint c;
  c.model_digest = get<uint64_t>(head, pos);
  c.epochs_done = get<uint32_t>(head, pos);
  get<uint32_t>(head, pos);
  c.step = get<int64_t>(head, pos);
  int64_t count = get<int64_t>(head, pos);
  if (count < 0 || static_cast<uint64_t>(count) > (in.size() - header) / 12)
    fail(name, "truncated or damaged (parameter count does not fit the file)");
  uint64_t body = static_cast<uint64_t>(count) * 3 * sizeof(float);
  if (in.size() != header + body + 4)
    fail(name,
         fmt::format("truncated or damaged: {} bytes, expected {}", in.size(), header + body + 4));
  if (c.model_digest != expected_digest)
    fail(name, "written for a different model (its layer table differs)");

  c.params.resize(static_cast<size_t>(count));
  c.optimizer.resize(static_cast<size_t>(count) * 2);
  uint32_t stored = 0;
  auto params = std::as_writable_bytes(std::span(c.params));
  auto optimizer = std::as_writable_bytes(std::span(c.optimizer));
  size_t got = in.read(params);
  got += in.read(optimizer);
  got += in.read(std::as_writable_bytes(std::span(&stored, 1)));
  if (got != body + 4) fail(name, "truncated while being read (did another program change it?)");
  uLong crc = crc32_z(0, reinterpret_cast<const Bytef*>(head.data()), head.size());
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(params.data()), params.size());
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(optimizer.data()), optimizer.size());
  if (stored != static_cast<uint32_t>(crc)) fail(name, "checksum mismatch: the file is damaged");
  return c;
}

Checkpoint load_checkpoint(const std::filesystem::path& path, uint64_t expected_digest) {
  try {
    InputFile file(path);
    return read_checkpoint(file, path.string(), expected_digest);
  } catch (const FileError& e) {
    fail(path.string(), fmt::format("cannot read: {}", e.what()));
  }
}

}  // namespace cnnc::rt
