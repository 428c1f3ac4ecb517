// Settings written into .cnn text: the statement and argument a setting names are found in the
// syntax tree, the text is spliced there, and the result is checked again.
#include "dsl/variant.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "dsl/draft.hpp"
#include "dsl/lexer.hpp"
#include "dsl/parser.hpp"

namespace cnnc::dsl {

namespace {

constexpr std::string_view activation_words[] = {"relu", "sigmoid", "tanh", "softmax", "linear"};
constexpr std::string_view optimizer_options[] = {"lr",    "momentum", "beta1",
                                                  "beta2", "eps",      "weight_decay"};

// Where a setting goes in its statement.
enum class Slot { positional, option, activation, kind };
struct Target {
  Slot slot = Slot::positional;
  size_t index = 0;         // positional
  std::string_view option;  // option
};

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}

// The settings of each layer statement, by the statement's keyword.
std::optional<Target> layer_target(std::string_view keyword, std::string_view field,
                                   std::string& fields) {
  struct Field {
    std::string_view keyword, name;
    Target target;
  };
  static const Field table[] = {
      {"conv", "filters", {Slot::positional, 0, {}}},
      {"conv", "kernel", {Slot::positional, 1, {}}},
      {"conv", "stride", {Slot::option, 0, "stride"}},
      {"conv", "pad", {Slot::option, 0, "pad"}},
      {"conv", "activation", {Slot::activation, 0, {}}},
      {"maxpool", "window", {Slot::positional, 0, {}}},
      {"maxpool", "stride", {Slot::option, 0, "stride"}},
      {"avgpool", "window", {Slot::positional, 0, {}}},
      {"avgpool", "stride", {Slot::option, 0, "stride"}},
      {"dense", "units", {Slot::positional, 0, {}}},
      {"dense", "activation", {Slot::activation, 0, {}}},
      {"dropout", "rate", {Slot::positional, 0, {}}},
  };
  std::vector<std::string_view> names;
  for (const Field& f : table) {
    if (f.keyword != keyword) continue;
    if (f.name == field) return f.target;
    names.push_back(f.name);
  }
  fields = join(names);
  return std::nullopt;
}

// The training statements a setting may name: the statement's value, or one of its options.
struct TrainingTarget {
  std::string_view keyword;
  Target target;
  std::string_view insert;  // the statement written when the file has none: the text before
                            // the value
};

std::optional<TrainingTarget> training_target(std::string_view name) {
  for (std::string_view o : optimizer_options)
    if (name == o || name == "optimizer." + std::string(o))
      return TrainingTarget{"optimizer", {Slot::option, 0, o}, "optimizer sgd "};
  for (std::string_view k : {"batch", "epochs", "validation", "loss"})
    if (name == k) return TrainingTarget{k, {Slot::positional, 0, {}}, k};
  if (name == "optimizer") return TrainingTarget{"optimizer", {Slot::kind, 0, {}}, "optimizer"};
  if (name == "schedule") return TrainingTarget{"schedule", {Slot::kind, 0, {}}, "schedule"};
  for (std::string_view o : {"shift", "rotate", "scale"})
    if (name == "augment." + std::string(o))
      return TrainingTarget{"augment", {Slot::option, 0, o}, "augment "};
  for (std::string_view o : {"every", "gamma"})
    if (name == "schedule." + std::string(o))
      return TrainingTarget{"schedule", {Slot::option, 0, o}, "schedule step "};
  return std::nullopt;
}

constexpr std::string_view training_names =
    "batch, epochs, validation, loss, optimizer, schedule, lr, momentum, weight_decay, beta1, "
    "beta2, eps, augment.shift, augment.rotate, augment.scale, schedule.every, schedule.gamma";

// One replacement of a byte range of the text.
struct Splice {
  Range range;
  std::string text;
};

std::string spliced(const std::string& text, const Splice& s) {
  return text.substr(0, s.range.begin) + s.text + text.substr(s.range.end);
}

// The splice that writes `value` into statement st at target.
Splice splice_into(const SourceFile& file, const Statement& st, const Target& t,
                   const std::string& value) {
  const Range end{st.range.end, st.range.end};
  size_t positional = 0;
  for (const Arg& a : st.args) {
    if (t.slot == Slot::option && a.name && *a.name == t.option) return {a.value.range, value};
    if (a.name) continue;
    if (t.slot == Slot::positional && positional == t.index) return {a.value.range, value};
    if (t.slot == Slot::activation && a.value.kind == Value::Kind::word &&
        std::find(std::begin(activation_words), std::end(activation_words), a.value.text) !=
            std::end(activation_words))
      return {a.value.range, value};
    ++positional;
  }
  if (t.slot == Slot::kind) {
    // A new kind starts from its defaults; only weight decay means the same to both optimizers.
    if (!st.args.empty() && st.args.front().value.text == value) return {end, ""};
    std::string text = fmt::format("{} {}", st.keyword, value);
    for (const Arg& a : st.args)
      if (a.name && *a.name == "weight_decay" && st.keyword == "optimizer")
        text += " " + std::string(file.slice(a.range));
    return {st.range, text};
  }
  if (t.slot == Slot::option) return {end, fmt::format(" {}={}", t.option, value)};
  return {end, " " + value};  // an activation the statement leaves at its default
}

std::string rendered_errors(const SourceFile& file, const Diagnostics& diags) {
  std::string out;
  for (const Diagnostic& d : diags.sorted()) out += render(file, d);
  return out;
}

// A value is one token of the language: a number, a shape or a word. Anything else (spaces,
// '#', '=', a list) would write more than one argument into the statement.
bool one_token(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '+';
  });
}

Edited apply_one(const std::string& path, const std::string& text, const Setting& s) {
  if (!one_token(s.value))
    return {{},
            fmt::format("--set {}={}: a value is one number, shape or word (8, 0.05, 5x5, same)",
                        s.name, s.value)};
  SourceFile file(path, text);
  Diagnostics diags(file);
  Ast ast = parse(lex(file, diags), file, diags);
  Draft draft = check_statements(ast, file, diags);
  auto statement_at = [&](Range r) -> const Statement* {
    for (const Statement& st : ast.statements)
      if (st.range.begin == r.begin) return &st;
    return nullptr;
  };
  std::string_view name = s.name;
  size_t dot = name.find('.');
  std::string_view head = name.substr(0, dot);
  std::string_view field = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  std::optional<Splice> splice;
  for (const DraftLayer& dl : draft.layers) {
    if (dl.layer.name != head) continue;
    const Statement* st = statement_at(dl.layer.range);
    std::string fields;
    std::optional<Target> t = layer_target(st->keyword, field, fields);
    if (!t)
      return {{},
              fields.empty() ? fmt::format("--set {}: layer {} ('{}') has no settings", name, head,
                                           dl.layer.statement)
                             : fmt::format("--set {}: layer {} ('{}') has the settings {}", name,
                                           head, dl.layer.statement, fields)};
    splice = splice_into(file, *st, *t, s.value);
  }
  if (!splice) {
    std::optional<TrainingTarget> t = training_target(name);
    if (!t) {
      std::vector<std::string> layers;
      for (const DraftLayer& dl : draft.layers) layers.push_back(dl.layer.name);
      std::string why = name == "seed" ? " (seeds are chosen with --seeds)" : "";
      return {{},
              fmt::format("--set {}: no such setting{}; the layers of {} are {} (as cnnc summary "
                          "names them: conv1.filters, dense1.units, ...), the training settings "
                          "{}",
                          name, why, draft.name, fmt::join(layers, ", "), training_names)};
    }
    const Statement* st = nullptr;
    for (const Statement& candidate : ast.statements)
      if (candidate.keyword == t->keyword) st = &candidate;
    if (st) {
      splice = splice_into(file, *st, t->target, s.value);
    } else {
      std::string line = t->target.slot == Slot::option
                             ? fmt::format("{}{}={}", t->insert, t->target.option, s.value)
                             : fmt::format("{} {}", t->insert, s.value);
      uint32_t at = static_cast<uint32_t>(text.size());
      splice = Splice{{at, at}, (text.empty() || text.back() == '\n' ? "" : "\n") + line + "\n"};
    }
  }
  Edited out{spliced(text, *splice), {}};
  SourceFile edited(path, out.text);
  Diagnostics check(edited);
  check_statements(parse(lex(edited, check), edited, check), edited, check);
  if (check.has_errors()) return {{}, rendered_errors(edited, check)};
  return out;
}

}  // namespace

Edited apply_settings(const std::string& path, const std::string& text,
                      std::span<const Setting> settings) {
  std::vector<Setting> ordered(settings.begin(), settings.end());
  std::stable_partition(ordered.begin(), ordered.end(), [](const Setting& s) {
    return s.name == "optimizer" || s.name == "schedule";
  });
  Edited e{text, {}};
  for (const Setting& s : ordered) {
    e = apply_one(path, e.text, s);
    if (!e.error.empty()) return e;
  }
  return e;
}

}  // namespace cnnc::dsl
