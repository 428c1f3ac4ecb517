// results.csv: RFC 4180 rows, read back exactly, and the JSON of a run.
#include "experiment/results.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "train/atomic_file.hpp"

namespace cnnc::experiment {

namespace {

constexpr const char* header =
    "model,variant,seed,file,digest,epochs,limit,data,engine,threads,status,params,"
    "training_flops,test_accuracy,test_loss,train_seconds,train_images_per_second,"
    "weights_digest,dir";
constexpr size_t columns = 19;

std::string quoted(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// One record from `in` at `pos`: fields split at commas, quotes undone; false at the end.
bool next_record(const std::string& in, size_t& pos, std::vector<std::string>& fields) {
  fields.clear();
  if (pos >= in.size()) return false;
  std::string field;
  bool quoted_field = false;
  while (pos < in.size()) {
    char c = in[pos++];
    if (quoted_field) {
      if (c != '"') {
        field += c;
      } else if (pos < in.size() && in[pos] == '"') {
        field += '"';
        ++pos;
      } else {
        quoted_field = false;
      }
    } else if (c == '"') {
      quoted_field = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      break;
    } else if (c != '\r') {
      field += c;
    }
  }
  fields.push_back(std::move(field));
  return true;
}

template <class T>
T number(const std::string& text, const std::string& where) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw std::runtime_error(fmt::format("{}: '{}' is not a number", where, text));
  return v;
}

auto key(const Run& r) {
  return std::tie(r.model, r.variant, r.seed, r.file, r.digest, r.epochs, r.limit, r.data, r.engine,
                  r.threads);
}

}  // namespace

bool Run::same_run(const Run& other) const {
  return key(*this) == key(other);
}

void write_results(const std::filesystem::path& path, const std::vector<Run>& runs) {
  std::string out = std::string(header) + "\n";
  for (const Run& r : runs)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                       quoted(r.model), quoted(r.variant), r.seed, quoted(r.file), r.digest,
                       r.epochs, r.limit, quoted(r.data), quoted(r.engine), r.threads, r.status,
                       r.params, r.training_flops, r.test_accuracy, r.test_loss, r.train_seconds,
                       r.train_images_per_second, r.weights_digest, quoted(r.dir));
  rt::write_file_atomically(path, out);
}

std::vector<Run> read_results(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  size_t pos = 0;
  std::vector<std::string> f;
  if (!next_record(text, pos, f) || fmt::format("{}", fmt::join(f, ",")) != header)
    throw std::runtime_error(
        fmt::format("{}:1: not the results.csv of cnnc compare or sweep", path.string()));
  std::vector<Run> runs;
  for (int line = 2; next_record(text, pos, f); ++line) {
    if (f.size() == 1 && f[0].empty()) continue;
    std::string where = fmt::format("{}:{}", path.string(), line);
    if (f.size() != columns)
      throw std::runtime_error(
          fmt::format("{}: {} fields where results.csv has {}", where, f.size(), columns));
    Run r;
    r.model = f[0], r.variant = f[1], r.seed = number<uint64_t>(f[2], where), r.file = f[3];
    r.digest = f[4], r.epochs = number<int64_t>(f[5], where);
    r.limit = number<int32_t>(f[6], where), r.data = f[7], r.engine = f[8];
    r.threads = number<int>(f[9], where), r.status = f[10];
    r.params = number<int64_t>(f[11], where), r.training_flops = number<int64_t>(f[12], where);
    r.test_accuracy = number<double>(f[13], where), r.test_loss = number<double>(f[14], where);
    r.train_seconds = number<double>(f[15], where);
    r.train_images_per_second = number<double>(f[16], where);
    r.weights_digest = f[17], r.dir = f[18];
    runs.push_back(std::move(r));
  }
  return runs;
}

nlohmann::ordered_json run_json(const Run& r) {
  return {{"model", r.model},
          {"variant", r.variant},
          {"seed", r.seed},
          {"params", r.params},
          {"test_accuracy", r.test_accuracy},
          {"test_loss", r.test_loss},
          {"train_seconds", r.train_seconds},
          {"train_images_per_second", r.train_images_per_second},
          {"file", r.file},
          {"training_flops", r.training_flops},
          {"epochs", r.epochs},
          {"limit", r.limit},
          {"engine", r.engine},
          {"threads", r.threads},
          {"status", r.status},
          {"weights_digest", r.weights_digest},
          {"dir", r.dir}};
}

}  // namespace cnnc::experiment
