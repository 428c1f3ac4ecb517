// Variants: --set flags parsed, combined, written into the base text and checked.
#include "experiment/variants.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "dsl/frontend.hpp"

namespace cnnc::experiment {

SetFlag parse_set(const std::string& flag) {
  size_t eq = flag.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == flag.size())
    throw std::runtime_error(
        fmt::format("--set {}: write NAME=V1,V2,... (e.g. --set conv1.filters=8,16,32)", flag));
  SetFlag s{flag.substr(0, eq), {}};
  std::string rest = flag.substr(eq + 1);
  for (size_t start = 0;;) {
    size_t comma = rest.find(',', start);
    std::string v = rest.substr(start, comma - start);
    if (v.empty()) throw std::runtime_error(fmt::format("--set {}: an empty value", flag));
    for (const std::string& seen : s.values)
      if (seen == v) throw std::runtime_error(fmt::format("--set {}: {} is given twice", flag, v));
    s.values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return s;
}

std::vector<std::vector<dsl::Setting>> combinations(const std::vector<SetFlag>& flags, bool grid) {
  std::vector<std::vector<dsl::Setting>> out;
  if (!grid) {
    for (const SetFlag& f : flags)
      for (const std::string& v : f.values) out.push_back({{f.name, v}});
    return out;
  }
  out.push_back({});
  for (const SetFlag& f : flags) {
    std::vector<std::vector<dsl::Setting>> next;
    for (const std::vector<dsl::Setting>& partial : out)
      for (const std::string& v : f.values) {
        next.push_back(partial);
        next.back().push_back({f.name, v});
      }
    out = std::move(next);
  }
  return out;
}

std::vector<Variant> make_variants(const dsl::Graph& base, const std::vector<SetFlag>& flags,
                                   bool grid, const dsl::Limits& limits) {
  for (size_t i = 0; i < flags.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (flags[i].name == flags[j].name)
        throw std::runtime_error(fmt::format("--set {} is given twice", flags[i].name));
  // Every value alone first: a misspelt name or a value its statement refuses stops the sweep
  // before anything is trained.
  for (const SetFlag& f : flags)
    for (const std::string& v : f.values) {
      dsl::Setting s{f.name, v};
      std::string path = fmt::format("{} [{}={}]", base.source_path, f.name, v);
      dsl::Edited e = dsl::apply_settings(path, base.source_text, {&s, 1});
      if (!e.error.empty()) throw std::runtime_error(e.error);
    }
  std::vector<Variant> out;
  for (const std::vector<dsl::Setting>& settings : combinations(flags, grid)) {
    Variant v;
    v.file = base.source_path;
    for (const dsl::Setting& s : settings)
      v.name += (v.name.empty() ? "" : " ") + s.name + "=" + s.value;
    v.path = fmt::format("{} [{}]", base.source_path, v.name);
    dsl::Edited e = dsl::apply_settings(v.path, base.source_text, settings);
    if (!e.error.empty()) {
      v.diagnostic = e.error;  // settings that contradict each other, as the checker says
      out.push_back(std::move(v));
      continue;
    }
    v.text = std::move(e.text);
    dsl::SourceFile file(v.path, v.text);
    dsl::Diagnostics diags(file);
    v.graph = dsl::analyze(file, limits, diags);
    for (const dsl::Diagnostic& d : diags.sorted()) v.diagnostic += dsl::render(file, d);
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace cnnc::experiment
