// Pass 1 of checking: every statement's arguments typed and range-checked, the order of
// statements, duplicates, and the training defaults of dsl.md.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "dsl/draft.hpp"

namespace cnnc::dsl {

namespace {

constexpr std::string_view layer_keywords[] = {"conv",  "maxpool", "avgpool", "flatten",
                                               "dense", "dropout", "relu",    "sigmoid",
                                               "tanh",  "softmax"};
constexpr std::string_view training_keywords[] = {"loss",    "optimizer", "batch",
                                                  "epochs",  "seed",      "validation",
                                                  "augment", "schedule",  "precision"};
constexpr std::string_view activation_words[] = {"relu", "sigmoid", "tanh", "softmax", "linear"};

// Words a model name may not be: it names a C++ namespace in generated code.
constexpr std::string_view reserved_names[] = {"alignas",       "alignof",     "and",
                                               "and_eq",        "asm",         "auto",
                                               "bitand",        "bitor",       "bool",
                                               "break",         "case",        "catch",
                                               "char",          "char8_t",     "char16_t",
                                               "char32_t",      "class",       "compl",
                                               "concept",       "const",       "consteval",
                                               "constexpr",     "constinit",   "const_cast",
                                               "continue",      "co_await",    "co_return",
                                               "co_yield",      "decltype",    "default",
                                               "delete",        "do",          "double",
                                               "dynamic_cast",  "else",        "enum",
                                               "explicit",      "export",      "extern",
                                               "false",         "float",       "for",
                                               "friend",        "goto",        "if",
                                               "inline",        "int",         "long",
                                               "mutable",       "namespace",   "new",
                                               "noexcept",      "not",         "not_eq",
                                               "nullptr",       "operator",    "or",
                                               "or_eq",         "private",     "protected",
                                               "public",        "register",    "reinterpret_cast",
                                               "requires",      "return",      "short",
                                               "signed",        "sizeof",      "static",
                                               "static_assert", "static_cast", "struct",
                                               "switch",        "template",    "this",
                                               "thread_local",  "throw",       "true",
                                               "try",           "typedef",     "typeid",
                                               "typename",      "union",       "unsigned",
                                               "using",         "virtual",     "void",
                                               "volatile",      "wchar_t",     "while",
                                               "xor",           "xor_eq",      "std",
                                               "cnnc",          "main"};

template <size_t N>
bool contains(const std::string_view (&list)[N], std::string_view word) {
  return std::find(std::begin(list), std::end(list), word) != std::end(list);
}

std::string join_words(std::span<const std::string_view> words, std::string_view last = " or ") {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i)
    out += (i == 0 ? "" : i + 1 == words.size() ? std::string(last) : ", ") + std::string(words[i]);
  return out;
}

// A statement's arguments: positional values in order and name=value options, where unknown
// and repeated options are reported once here.
class Args {
 public:
  Args(const Statement& st, Diagnostics& diags, std::span<const std::string_view> options)
      : st_(st), diags_(diags) {
    for (const Arg& a : st.args) {
      if (!a.name) {
        positional_.push_back(&a.value);
        continue;
      }
      if (std::find(options.begin(), options.end(), *a.name) == options.end()) {
        std::string known = options.empty() ? std::string("takes no options")
                                            : "takes the options " + join_words(options, " and ");
        diags
            .error(a.name_range, fmt::format("unknown option '{}' for {}{}", *a.name, st.keyword,
                                             did_you_mean(*a.name, options)))
            .hint = fmt::format("{} {}", st.keyword, known);
        ok_ = false;
      } else if (options_.count(*a.name)) {
        diags.error(a.name_range, fmt::format("option '{}' is given twice", *a.name))
            .notes.push_back({options_[*a.name]->name_range, "first given here"});
        ok_ = false;
      } else {
        options_[*a.name] = &a;
      }
    }
  }

  const Value* at(size_t i) const { return i < positional_.size() ? positional_[i] : nullptr; }
  size_t count() const { return positional_.size(); }
  const Value* option(std::string_view name) const {
    auto it = options_.find(name);
    return it == options_.end() ? nullptr : &it->second->value;
  }
  const Arg* option_arg(std::string_view name) const {
    auto it = options_.find(name);
    return it == options_.end() ? nullptr : it->second;
  }

  // Reports a missing positional value, with an example of the statement written correctly.
  bool require(size_t i, std::string_view what, std::string_view example) {
    if (at(i)) return true;
    diags_.error(st_.range, fmt::format("{} needs {}, e.g. '{}'", st_.keyword, what, example));
    ok_ = false;
    return false;
  }

  // Reports positional values beyond the first n.
  void at_most(size_t n) {
    for (size_t i = n; i < positional_.size(); ++i) {
      diags_.error(positional_[i]->range, fmt::format("unexpected argument '{}' for {}",
                                                      positional_[i]->text, st_.keyword));
      ok_ = false;
    }
  }

  bool ok() const { return ok_; }
  void fail() { ok_ = false; }

 private:
  const Statement& st_;
  Diagnostics& diags_;
  std::vector<const Value*> positional_;
  std::map<std::string_view, const Arg*, std::less<>> options_;
  bool ok_ = true;
};

std::string bound(double x) {
  return fmt::format("{}", x);
}

class StatementChecker {
 public:
  StatementChecker(const SourceFile& file, Diagnostics& diags) : file_(file), diags_(diags) {}

  Draft run(const Ast& ast) {
    for (size_t i = 0; i < ast.statements.size(); ++i) statement(ast.statements[i], i == 0);
    finish();
    return std::move(d_);
  }

 private:
  void statement(const Statement& st, bool first) {
    std::string_view kw = st.keyword;
    if (kw == "model") return model(st, first);
    if (first) {
      diags_.error(st.keyword_range,
                   "a .cnn file must start with 'model NAME'; found '" + std::string(kw) + "'");
      missing_model_reported_ = true;
    }
    if (kw == "input") return input(st);
    if (contains(layer_keywords, kw)) return layer(st);
    if (contains(training_keywords, kw)) return training(st);
    unknown(st);
  }

  void unknown(const Statement& st) {
    std::string lower;
    for (char c : st.keyword) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    bool known = lower == "model" || lower == "input" || contains(layer_keywords, lower) ||
                 contains(training_keywords, lower);
    if (known) {
      diags_.error(st.keyword_range,
                   fmt::format("keywords are lower case: write '{}', not '{}'", lower, st.keyword));
      return;
    }
    std::vector<std::string_view> all = {"model", "input"};
    all.insert(all.end(), std::begin(layer_keywords), std::end(layer_keywords));
    all.insert(all.end(), std::begin(training_keywords), std::end(training_keywords));
    std::string_view best = closest(lower, all);
    bool layer_like = !best.empty() && contains(layer_keywords, best);
    diags_.error(st.keyword_range,
                 fmt::format("unknown {} '{}'{}", layer_like ? "layer" : "statement", st.keyword,
                             did_you_mean(lower, all)));
    // An unknown layer has no known effect on the shape: checking goes on past it.
  }

  bool once(const Statement& st) {
    auto [it, fresh] = seen_.emplace(st.keyword, st.keyword_range);
    if (!fresh) {
      diags_.error(st.keyword_range, fmt::format("duplicate '{}' statement", st.keyword))
          .notes.push_back({it->second, fmt::format("the first '{}' is here", st.keyword)});
    }
    return fresh;
  }

  // model NAME
  void model(const Statement& st, bool first) {
    if (!once(st)) return;
    if (!first) diags_.error(st.keyword_range, "'model' must be the first statement");
    d_.model_range = st.range;
    if (st.broken) return;
    Args args(st, diags_, {});
    if (!args.require(0, "a name", "model lenet5")) return;
    args.at_most(1);
    const Value& v = *args.at(0);
    std::string_view name = v.text;
    if (v.kind != Value::Kind::word) {
      diags_.error(v.range,
                   fmt::format("model name must be a word ([a-z_][a-z0-9_]*), found '{}'", name));
    } else if (std::any_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      diags_.error(v.range,
                   fmt::format("model name '{}' must be lower case ([a-z_][a-z0-9_]*)", name));
    } else if (name.size() > 64) {
      diags_.error(v.range,
                   fmt::format("model name is {} characters long; at most 64", name.size()));
    } else if (name[0] == '_' || name.find("__") != std::string_view::npos) {
      diags_.error(
          v.range,
          fmt::format("model name '{}' must not start with '_' or contain '__' (reserved in C++)",
                      name));
    } else if (contains(reserved_names, name)) {
      diags_.error(
          v.range,
          fmt::format("model name '{}' is reserved: it names a C++ namespace in generated code",
                      name));
    } else {
      d_.name = name;
    }
  }

  // input HxWxC
  void input(const Statement& st) {
    if (!once(st)) return;
    if (!d_.layers.empty()) {
      diags_.error(st.keyword_range, "'input' must come before the layers")
          .notes.push_back({d_.layers.front().layer.range, "the first layer is here"});
    }
    d_.input_range = st.range;
    if (st.broken) return;
    Args args(st, diags_, {});
    if (!args.require(0, "a shape HxWxC", "input 28x28x1")) return;
    args.at_most(1);
    const Value& v = *args.at(0);
    if (v.kind != Value::Kind::shape || v.dims.size() != 3) {
      diags_
          .error(v.range,
                 fmt::format("input needs a shape HxWxC (height x width x channels), found '{}'",
                             v.text))
          .hint = v.kind == Value::Kind::shape && v.dims.size() == 2
                      ? fmt::format("for one channel write 'input {}x1'", v.text)
                      : "e.g. 'input 28x28x1'";
      return;
    }
    if (std::any_of(v.dims.begin(), v.dims.end(), [](int64_t x) { return x < 1; })) {
      diags_.error(v.range, fmt::format("input sizes must be positive, found {}", v.text));
      return;
    }
    if (std::any_of(v.dims.begin(), v.dims.end(), [](int64_t x) { return x > 4096; })) {
      diags_.error(v.range, fmt::format("input sizes must be at most 4096, found {}", v.text));
      return;
    }
    d_.has_input = true;
    d_.input = {v.dims[0], v.dims[1], v.dims[2], false};
  }

  // ---- typed values -------------------------------------------------------------------

  std::optional<int64_t> integer(const Value& v, std::string_view what, int64_t min, int64_t max) {
    if (v.kind != Value::Kind::integer) {
      diags_.error(v.range, fmt::format("{} must be a whole number, found '{}'", what, v.text));
      return std::nullopt;
    }
    if (v.integer < min) {
      diags_.error(v.range, min == 1 ? fmt::format("{} must be positive, found {}", what, v.integer)
                                     : fmt::format("{} must be at least {}, found {}", what, min,
                                                   v.integer));
      return std::nullopt;
    }
    if (v.integer > max) {
      diags_.error(v.range, fmt::format("{} must be at most {}, found {}", what, max, v.integer));
      return std::nullopt;
    }
    return v.integer;
  }

  // K or KHxKW, each in [min, max].
  std::optional<std::array<int64_t, 2>> pair(const Value& v, std::string_view what,
                                             std::string_view example, int64_t min, int64_t max) {
    std::array<int64_t, 2> out{};
    if (v.kind == Value::Kind::integer) {
      out = {v.integer, v.integer};
    } else if (v.kind == Value::Kind::shape && v.dims.size() == 2) {
      out = {v.dims[0], v.dims[1]};
    } else {
      diags_.error(v.range,
                   fmt::format("{} must be written like {}, found '{}'", what, example, v.text));
      return std::nullopt;
    }
    if (out[0] < min || out[1] < min) {
      diags_.error(v.range,
                   min == 1 ? fmt::format("{} must be positive, found {}", what, v.text)
                            : fmt::format("{} must be at least {}, found {}", what, min, v.text));
      return std::nullopt;
    }
    if (out[0] > max || out[1] > max) {
      diags_.error(v.range, fmt::format("{} must be at most {}, found {}", what, max, v.text));
      return std::nullopt;
    }
    return out;
  }

  // A number in an interval; `lo_open`/`hi_open` exclude the end.
  std::optional<double> number(const Value& v, std::string_view what, double lo, double hi,
                               bool lo_open, bool hi_open) {
    if (!v.is_number()) {
      diags_.error(v.range, fmt::format("{} must be a number, found '{}'", what, v.text));
      return std::nullopt;
    }
    double x = v.number;
    if ((lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi)) {
      diags_.error(
          v.range,
          fmt::format("{} must be in {}{}, {}{}, found {}", what, lo_open ? "(" : "[", bound(lo),
                      std::isinf(hi) ? "inf" : bound(hi), hi_open ? ")" : "]", v.text));
      return std::nullopt;
    }
    return x;
  }

  std::optional<std::string_view> word(const Value& v, std::string_view what,
                                       std::span<const std::string_view> choices) {
    if (v.kind == Value::Kind::word &&
        std::find(choices.begin(), choices.end(), v.text) != choices.end())
      return v.text;
    diags_
        .error(v.range,
               fmt::format("unknown {} '{}'{}", what, v.text,
                           v.kind == Value::Kind::word ? did_you_mean(v.text, choices) : ""))
        .hint = "expected " + join_words(choices);
    return std::nullopt;
  }

  // ---- layers ---------------------------------------------------------------------------

  void layer(const Statement& st) {
    std::string_view kw = st.keyword;
    if (!d_.has_input && !layer_before_input_reported_ && !seen_.count("input")) {
      diags_.error(st.keyword_range, fmt::format("layer '{}' comes before 'input'; declare the "
                                                 "input shape first, e.g. 'input 28x28x1'",
                                                 kw));
      layer_before_input_reported_ = true;
    }
    DraftLayer dl;
    Layer& l = dl.layer;
    l.statement = std::string(file_.slice(st.range));
    l.line = file_.line_of(st.range.begin);
    l.range = st.range;
    if (st.broken) {  // the parser reported it; the shape after it is unknown
      dl.valid = false;
      l.kind = kw == "conv"      ? LayerKind::conv
               : kw == "maxpool" ? LayerKind::maxpool
               : kw == "avgpool" ? LayerKind::avgpool
               : kw == "flatten" ? LayerKind::flatten
               : kw == "dense"   ? LayerKind::dense
               : kw == "dropout" ? LayerKind::dropout
                                 : LayerKind::activation;
    } else if (kw == "conv") {
      conv(st, dl);
    } else if (kw == "maxpool" || kw == "avgpool") {
      l.kind = kw == "maxpool" ? LayerKind::maxpool : LayerKind::avgpool;
      Args args(st, diags_, std::array<std::string_view, 1>{"stride"});
      if (args.require(0, "a window size", fmt::format("{} 2x2", kw))) {
        args.at_most(1);
        if (auto k = pair(*args.at(0), "pool window", "2x2", 1, 1024)) {
          l.kernel_h = (*k)[0];
          l.kernel_w = (*k)[1];
          l.stride_h = l.kernel_h;  // the stride defaults to the window
          l.stride_w = l.kernel_w;
        } else {
          args.fail();
        }
      }
      stride(args, l);
      dl.valid = dl.valid && args.ok();
    } else if (kw == "flatten") {
      l.kind = LayerKind::flatten;
      Args args(st, diags_, {});
      args.at_most(0);
    } else if (kw == "dense") {
      l.kind = LayerKind::dense;
      Args args(st, diags_, {});
      if (args.require(0, "a number of units", "dense 10 softmax")) {
        if (auto u = integer(*args.at(0), "unit count", 1, 1 << 20))
          l.units = *u;
        else
          args.fail();
      }
      trailing_words(args, 1, l, false);
      dl.valid = dl.valid && args.ok();
    } else if (kw == "dropout") {
      l.kind = LayerKind::dropout;
      Args args(st, diags_, {});
      if (args.require(0, "a rate", "dropout 0.25")) {
        args.at_most(1);
        if (auto r = number(*args.at(0), "dropout rate", 0, 1, false, true)) l.rate = *r;
      }
    } else {  // relu, sigmoid, tanh, softmax as a layer of its own
      l.kind = LayerKind::activation;
      l.activation = kw == "relu"      ? Activation::relu
                     : kw == "sigmoid" ? Activation::sigmoid
                     : kw == "tanh"    ? Activation::tanh
                                       : Activation::softmax;
      Args args(st, diags_, {});
      args.at_most(0);
    }
    std::string base = l.kind == LayerKind::activation ? std::string(kw) : name_of(l.kind);
    l.name = fmt::format("{}{}", base, ++layer_counts_[base]);
    d_.layers.push_back(std::move(dl));
  }

  // conv FILTERS KHxKW [stride=S|SHxSW] [pad=valid|same|P] [ACT] [weights=...] [bias=...] [frozen]
  void conv(const Statement& st, DraftLayer& dl) {
    Layer& l = dl.layer;
    l.kind = LayerKind::conv;
    Args args(st, diags_, std::array<std::string_view, 4>{"stride", "pad", "weights", "bias"});
    if (args.require(0, "a number of filters and a kernel size", "conv 6 5x5")) {
      if (auto k = integer(*args.at(0), "filter count", 1, 65536))
        l.units = *k;
      else
        args.fail();
    }
    if (args.at(0) &&
        args.require(1, "a kernel size", fmt::format("conv {} 5x5", args.at(0)->text))) {
      if (auto k = pair(*args.at(1), "kernel size", "5x5", 1, 1024)) {
        l.kernel_h = (*k)[0];
        l.kernel_w = (*k)[1];
      } else {
        args.fail();
      }
    }
    trailing_words(args, 2, l, true);
    stride(args, l);
    if (const Value* p = args.option("pad")) {
      if (p->kind == Value::Kind::word && p->text == "same") {
        dl.pad_same = true;
      } else if (p->kind == Value::Kind::word && p->text == "valid") {
        dl.pad = 0;
      } else if (p->kind == Value::Kind::integer) {
        if (auto x = integer(*p, "padding", 0, 1024))
          dl.pad = *x;
        else
          args.fail();
      } else {
        diags_.error(
            p->range,
            fmt::format(
                "pad must be valid, same or a number of pixels, found '{}'{}", p->text,
                p->kind == Value::Kind::word
                    ? did_you_mean(p->text, std::array<std::string_view, 2>{"valid", "same"})
                    : ""));
        args.fail();
      }
    }
    if (const Arg* w = args.option_arg("weights")) {
      dl.weights_range = w->range;
      if (w->value.kind == Value::Kind::list) {
        l.initial_weights.assign(w->value.list.begin(), w->value.list.end());
      } else if (w->value.kind == Value::Kind::word && filter_bank(w->value.text)) {
        dl.bank = w->value.text;
      } else {
        diags_.error(
            w->value.range,
            fmt::format(
                "weights= takes a list of numbers or a built-in filter bank ({}), found '{}'{}",
                join_words(filter_bank_names), w->value.text,
                w->value.kind == Value::Kind::word ? did_you_mean(w->value.text, filter_bank_names)
                                                   : ""));
        args.fail();
      }
    }
    if (const Arg* b = args.option_arg("bias")) {
      dl.bias_range = b->range;
      if (b->value.kind == Value::Kind::list) {
        l.initial_bias.assign(b->value.list.begin(), b->value.list.end());
      } else {
        diags_.error(b->value.range,
                     fmt::format("bias= takes a list of numbers, one per filter, found '{}'",
                                 b->value.text));
        args.fail();
      }
    }
    dl.valid = dl.valid && args.ok();
  }

  // The words after a layer's numbers: one activation, and `frozen` where allowed.
  void trailing_words(Args& args, size_t from, Layer& l, bool frozen_allowed) {
    const Value* act = nullptr;
    for (size_t i = from; i < args.count(); ++i) {
      const Value& v = *args.at(i);
      if (v.kind == Value::Kind::word && v.text == "frozen" && frozen_allowed) {
        l.frozen = true;
      } else if (v.kind == Value::Kind::word && contains(activation_words, v.text)) {
        if (act) {
          diags_.error(v.range, fmt::format("a layer takes one activation, found '{}' and '{}'",
                                            act->text, v.text));
          args.fail();
        }
        act = &v;
        l.activation = v.text == "relu"      ? Activation::relu
                       : v.text == "sigmoid" ? Activation::sigmoid
                       : v.text == "tanh"    ? Activation::tanh
                       : v.text == "softmax" ? Activation::softmax
                                             : Activation::linear;
      } else {
        std::vector<std::string_view> words(std::begin(activation_words),
                                            std::end(activation_words));
        if (frozen_allowed) words.push_back("frozen");
        diags_
            .error(v.range,
                   fmt::format("unexpected argument '{}'{}", v.text,
                               v.kind == Value::Kind::word ? did_you_mean(v.text, words) : ""))
            .hint = "after the sizes come an activation (" + join_words(activation_words) + ")" +
                    (frozen_allowed ? " and 'frozen'" : "");
        args.fail();
      }
    }
  }

  void stride(Args& args, Layer& l) {
    const Value* s = args.option("stride");
    if (!s) return;
    if (auto v = pair(*s, "stride", "2 or 2x1", 1, 1024)) {
      l.stride_h = (*v)[0];
      l.stride_w = (*v)[1];
    } else {
      args.fail();
    }
  }

  // ---- training -------------------------------------------------------------------------

  void training(const Statement& st) {
    if (!once(st) || st.broken) return;
    Training& t = d_.training;
    std::string_view kw = st.keyword;
    if (kw == "loss") {
      Args args(st, diags_, {});
      if (!args.require(0, "a loss", "loss cross_entropy")) return;
      args.at_most(1);
      if (auto w =
              word(*args.at(0), "loss", std::array<std::string_view, 2>{"cross_entropy", "mse"}))
        t.loss = *w == "mse" ? Loss::mse : Loss::cross_entropy;
    } else if (kw == "optimizer") {
      optimizer(st);
    } else if (kw == "batch") {
      Args args(st, diags_, {});
      if (!args.require(0, "a batch size", "batch 64")) return;
      args.at_most(1);
      if (auto v = integer(*args.at(0), "batch size", 1, 65536)) t.batch = *v;
    } else if (kw == "epochs") {
      Args args(st, diags_, {});
      if (!args.require(0, "a number of epochs", "epochs 10")) return;
      args.at_most(1);
      if (auto v = integer(*args.at(0), "epoch count", 1, 100000)) t.epochs = *v;
    } else if (kw == "seed") {
      Args args(st, diags_, {});
      if (!args.require(0, "a number", "seed 1")) return;
      args.at_most(1);
      if (auto v = integer(*args.at(0), "seed", 0, INT64_MAX)) t.seed = static_cast<uint64_t>(*v);
    } else if (kw == "validation") {
      Args args(st, diags_, {});
      if (!args.require(0, "a fraction", "validation 0.1")) return;
      args.at_most(1);
      if (auto v = number(*args.at(0), "validation fraction", 0, 1, false, true)) t.validation = *v;
    } else if (kw == "augment") {
      Args args(st, diags_, std::array<std::string_view, 3>{"shift", "rotate", "scale"});
      args.at_most(0);
      if (!args.option("shift") && !args.option("rotate") && !args.option("scale") && args.ok()) {
        diags_.error(st.range, "augment needs at least one of shift=, rotate=, scale=").hint =
            "e.g. 'augment shift=2 rotate=10 scale=0.1'";
      }
      if (const Arg* a = args.option_arg("shift")) {
        d_.shift_range = a->range;
        if (auto v = integer(a->value, "shift", 0, 4096)) t.augment.shift = *v;
      }
      if (const Value* v = args.option("rotate")) {
        if (auto x = number(*v, "rotation in degrees", 0, 180, false, false)) t.augment.rotate = *x;
      }
      if (const Value* v = args.option("scale")) {
        if (auto x = number(*v, "scale", 0, 1, false, true)) t.augment.scale = *x;
      }
    } else if (kw == "schedule") {
      schedule(st);
    } else if (kw == "precision") {
      Args args(st, diags_, {});
      if (!args.require(0, "fp32 or bf16", "precision bf16")) return;
      args.at_most(1);
      if (auto w = word(*args.at(0), "precision", std::array<std::string_view, 2>{"fp32", "bf16"}))
        t.precision = *w == "bf16" ? Precision::bf16 : Precision::fp32;
    }
  }

  // optimizer sgd [lr=F] [momentum=F] [weight_decay=F]
  // optimizer adam [lr=F] [beta1=F] [beta2=F] [eps=F] [weight_decay=F]
  void optimizer(const Statement& st) {
    constexpr std::array<std::string_view, 6> all = {"lr",    "momentum", "beta1",
                                                     "beta2", "eps",      "weight_decay"};
    Args args(st, diags_, all);
    if (!args.require(0, "sgd or adam", "optimizer sgd lr=0.05 momentum=0.9")) return;
    args.at_most(1);
    auto kind = word(*args.at(0), "optimizer", std::array<std::string_view, 2>{"sgd", "adam"});
    if (!kind) return;
    Optimizer& o = d_.training.optimizer;
    o.kind = *kind == "adam" ? OptimizerKind::adam : OptimizerKind::sgd;
    if (o.kind == OptimizerKind::adam) o.lr = 0.001;
    for (std::string_view name : all) {
      const Arg* a = args.option_arg(name);
      if (!a) continue;
      bool adam_only = name == "beta1" || name == "beta2" || name == "eps";
      if ((adam_only && o.kind != OptimizerKind::adam) ||
          (name == "momentum" && o.kind != OptimizerKind::sgd)) {
        diags_.error(a->name_range, fmt::format("option '{}' belongs to {}, not {}", name,
                                                adam_only ? "adam" : "sgd", *kind));
        continue;
      }
      const Value& v = a->value;
      std::optional<double> x;
      if (name == "lr")
        x = number(v, "learning rate", 0, 10, true, false);
      else if (name == "momentum")
        x = number(v, "momentum", 0, 1, false, true);
      else if (name == "beta1")
        x = number(v, "beta1", 0, 1, false, true);
      else if (name == "beta2")
        x = number(v, "beta2", 0, 1, false, true);
      else if (name == "eps")
        x = number(v, "eps", 0, 1, true, false);
      else
        x = number(v, "weight decay", 0, 1, false, false);
      if (!x) continue;
      (name == "lr"         ? o.lr
       : name == "momentum" ? o.momentum
       : name == "beta1"    ? o.beta1
       : name == "beta2"    ? o.beta2
       : name == "eps"      ? o.eps
                            : o.weight_decay) = *x;
    }
  }

  // schedule constant | step every=N [gamma=F] | cosine | onecycle [warmup=F]
  void schedule(const Statement& st) {
    Args args(st, diags_, std::array<std::string_view, 3>{"every", "gamma", "warmup"});
    if (!args.require(0, "constant, step, cosine or onecycle", "schedule step every=3 gamma=0.5"))
      return;
    args.at_most(1);
    auto kind = word(*args.at(0), "schedule",
                     std::array<std::string_view, 4>{"constant", "step", "cosine", "onecycle"});
    if (!kind) return;
    Schedule& s = d_.training.schedule;
    s.kind = *kind == "step"       ? ScheduleKind::step
             : *kind == "cosine"   ? ScheduleKind::cosine
             : *kind == "onecycle" ? ScheduleKind::onecycle
                                   : ScheduleKind::constant;
    for (std::string_view name : {"every", "gamma", "warmup"}) {
      const Arg* a = args.option_arg(name);
      bool own = name == "warmup" ? s.kind == ScheduleKind::onecycle : s.kind == ScheduleKind::step;
      if (a && !own)
        diags_.error(a->name_range,
                     fmt::format("option '{}' belongs to 'schedule {}', not '{}'", name,
                                 name == "warmup" ? "onecycle" : "step", *kind));
    }
    if (s.kind == ScheduleKind::onecycle) {
      if (const Value* v = args.option("warmup")) {
        if (auto x = number(*v, "warmup", 0, 1, false, true)) s.warmup = *x;
      }
      return;
    }
    if (s.kind != ScheduleKind::step) return;
    if (const Value* v = args.option("every")) {
      if (auto x = integer(*v, "every", 1, 100000)) s.every = *x;
    } else {
      diags_.error(st.range, "schedule step needs every=N, the epochs between decays").hint =
          "e.g. 'schedule step every=3 gamma=0.5'";
    }
    if (const Value* v = args.option("gamma")) {
      if (auto x = number(*v, "gamma", 0, 1, true, false)) s.gamma = *x;
    }
  }

  // ---- the file as a whole --------------------------------------------------------------

  void finish() {
    Range start{0, 0};
    if (!seen_.count("model") && !missing_model_reported_) {
      diags_.error(start, "empty model: a .cnn file starts with 'model NAME'").show_source =
          !file_.text().empty();
    }
    if (seen_.count("model") && !seen_.count("input")) {
      diags_.error(d_.model_range, "missing 'input HxWxC' statement after 'model'").hint =
          "e.g. 'input 28x28x1'";
    }
    if (d_.has_input && d_.layers.empty()) {
      diags_.error(d_.input_range, "the model has no layers").hint =
          "add layers after 'input', e.g. 'dense 10 softmax'";
    }
    // softmax turns the outputs into probabilities; any layer after it would undo that.
    for (size_t i = 0; i + 1 < d_.layers.size(); ++i) {
      const Layer& l = d_.layers[i].layer;
      if (l.activation != Activation::softmax) continue;
      const Layer& after = d_.layers[i + 1].layer;
      diags_
          .error(l.range,
                 fmt::format("softmax is allowed on the last layer only, but '{}' follows it",
                             after.statement))
          .notes.push_back({after.range, fmt::format("'{}' is here", after.statement)});
    }
  }

  const SourceFile& file_;
  Diagnostics& diags_;
  Draft d_;
  std::map<std::string_view, Range, std::less<>> seen_;  // statements allowed once
  std::map<std::string, int, std::less<>> layer_counts_;
  bool missing_model_reported_ = false;
  bool layer_before_input_reported_ = false;
};

}  // namespace

Draft check_statements(const Ast& ast, const SourceFile& file, Diagnostics& diags) {
  return StatementChecker(file, diags).run(ast);
}

}  // namespace cnnc::dsl
