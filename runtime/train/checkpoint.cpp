// Atomic, checksummed checkpoint files.
#include "train/checkpoint.hpp"

#include "train/atomic_file.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>

namespace cnnc::rt {

namespace {

constexpr char magic[8] = {'C', 'N', 'N', 'C', 'C', 'K', 'P', 'T'};
constexpr uint32_t version = 2;
constexpr size_t header_bytes = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 8;
// Far more than the few dozen settings a run records; bounds what a header can make us read.
constexpr uint32_t max_settings_bytes = 64 * 1024;

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

std::string settings_text(const RunSettings& settings) {
  std::string text;
  for (const auto& [name, value] : settings) {
    if (name.find_first_of("=\n") != std::string::npos || value.find('\n') != std::string::npos)
      throw std::logic_error(fmt::format("checkpoint setting '{}' cannot be recorded", name));
    text += name + "=" + value + "\n";
  }
  return text;
}

std::optional<RunSettings> parse_settings(std::string_view text) {
  RunSettings settings;
  while (!text.empty()) {
    size_t end = text.find('\n'), eq = text.find('=');
    if (end == std::string_view::npos || eq > end) return std::nullopt;
    settings.emplace_back(text.substr(0, eq), text.substr(eq + 1, end - eq - 1));
    text.remove_prefix(end + 1);
  }
  return settings;
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  std::string settings = settings_text(c.settings);
  std::string out(magic, sizeof magic);
  put(out, version);
  put(out, static_cast<uint32_t>(settings.size()));
  put(out, c.model_digest);
  put(out, c.epochs_done);
  put(out, c.batches_done);
  put(out, c.step);
  put(out, static_cast<int64_t>(c.params.size()));
  put(out, c.loss_sum);
  put(out, c.correct);
  put(out, c.images);
  put(out, c.seconds);
  out += settings;
  out.append(reinterpret_cast<const char*>(c.params.data()), c.params.size() * sizeof(float));
  out.append(reinterpret_cast<const char*>(c.optimizer.data()), c.optimizer.size() * sizeof(float));
  put(out,
      static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(out.data()), out.size())));

  write_file_atomically(path, out);
}

Checkpoint read_checkpoint(ByteSource& in, const std::string& name, uint64_t expected_digest,
                           int64_t expected_count) {
  // Everything the header announces is checked against the real size and the expected model
  // before anything is allocated for the settings or the parameters.
  std::string head(header_bytes, '\0');
  if (in.size() < 12 || in.read(std::as_writable_bytes(std::span(head)).first(12)) < 12 ||
      std::memcmp(head.data(), magic, sizeof magic) != 0)
    fail(name, "not a cnnc checkpoint");
  size_t pos = sizeof magic;
  uint32_t v = get<uint32_t>(head, pos);
  if (v == 1)
    fail(name,
         fmt::format("version 1, written by an older cnnc that did not record the run's settings; "
                     "this cnnc reads version {}: train afresh",
                     version));
  if (v != version) fail(name, fmt::format("version {}, this cnnc reads version {}", v, version));
  if (in.size() < header_bytes ||
      in.read(std::as_writable_bytes(std::span(head)).subspan(12)) < header_bytes - 12)
    fail(name, "truncated or damaged (shorter than its header)");
  Checkpoint c;
  uint32_t settings_bytes = get<uint32_t>(head, pos);
  c.model_digest = get<uint64_t>(head, pos);
  c.epochs_done = get<uint32_t>(head, pos);
  c.batches_done = get<uint32_t>(head, pos);
  c.step = get<int64_t>(head, pos);
  int64_t count = get<int64_t>(head, pos);
  c.loss_sum = get<double>(head, pos);
  c.correct = get<int64_t>(head, pos);
  c.images = get<int64_t>(head, pos);
  c.seconds = get<double>(head, pos);
  if (settings_bytes > max_settings_bytes || settings_bytes > in.size() - header_bytes)
    fail(name, "truncated or damaged (its settings do not fit the file)");
  uint64_t rest = in.size() - header_bytes - settings_bytes;
  if (count < 0 || static_cast<uint64_t>(count) > rest / 12)
    fail(name, "truncated or damaged (parameter count does not fit the file)");
  uint64_t body = static_cast<uint64_t>(count) * 3 * sizeof(float);
  uint64_t expected_size = header_bytes + settings_bytes + body + 4;
  if (in.size() != expected_size)
    fail(name,
         fmt::format("truncated or damaged: {} bytes, expected {}", in.size(), expected_size));
  if (c.model_digest != expected_digest)
    fail(name, "written for a different model (its layer table differs)");
  if (count != expected_count)
    fail(name,
         fmt::format("damaged: it holds {} parameters, its model has {}", count, expected_count));

  std::string settings(settings_bytes, '\0');
  c.params.resize(static_cast<size_t>(count));
  c.optimizer.resize(static_cast<size_t>(count) * 2);
  uint32_t stored = 0;
  auto params = std::as_writable_bytes(std::span(c.params));
  auto optimizer = std::as_writable_bytes(std::span(c.optimizer));
  size_t got = in.read(std::as_writable_bytes(std::span(settings)));
  got += in.read(params);
  got += in.read(optimizer);
  got += in.read(std::as_writable_bytes(std::span(&stored, 1)));
  if (got != settings_bytes + body + 4)
    fail(name, "truncated while being read (did another program change it?)");
  uLong crc = crc32_z(0, reinterpret_cast<const Bytef*>(head.data()), head.size());
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(settings.data()), settings.size());
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(params.data()), params.size());
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(optimizer.data()), optimizer.size());
  if (stored != static_cast<uint32_t>(crc)) fail(name, "checksum mismatch: the file is damaged");
  std::optional<RunSettings> parsed = parse_settings(settings);
  if (!parsed) fail(name, "damaged: its settings are not name=value lines");
  c.settings = std::move(*parsed);
  return c;
}

Checkpoint load_checkpoint(const std::filesystem::path& path, uint64_t expected_digest,
                           int64_t expected_count) {
  try {
    InputFile file(path);
    return read_checkpoint(file, path.string(), expected_digest, expected_count);
  } catch (const FileError& e) {
    fail(path.string(), fmt::format("cannot read: {}", e.what()));
  }
}

std::vector<std::string> settings_differences(const RunSettings& checkpoint,
                                              const RunSettings& run) {
  auto find = [](const RunSettings& s, const std::string& name) -> std::string {
    for (const auto& [n, v] : s)
      if (n == name) return v;
    return "none";
  };
  std::vector<std::string> out;
  auto note = [&](const std::string& name) {
    std::string was = find(checkpoint, name), now = find(run, name);
    if (was != now)
      out.push_back(fmt::format("{}: the checkpoint's {}, this run's {}", name, was, now));
  };
  for (const auto& [name, value] : checkpoint) note(name);
  for (const auto& [name, value] : run)
    if (find(checkpoint, name) == "none") note(name);
  return out;
}

Checkpoint load_to_resume(const std::filesystem::path& path, uint64_t expected_digest,
                          int64_t expected_count, const RunSettings& settings) {
  Checkpoint c = load_checkpoint(path, expected_digest, expected_count);
  std::vector<std::string> diff = settings_differences(c.settings, settings);
  if (diff.empty()) return c;
  throw std::runtime_error(fmt::format(
      "cannot resume from '{}': it was written by a run with other settings, and a resumed run "
      "must end with the bits of an uninterrupted one; run with the checkpoint's settings, or "
      "train afresh in another --out:\n  {}",
      path.string(), fmt::join(diff, "\n  ")));
}

}  // namespace cnnc::rt
