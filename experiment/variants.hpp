// The models an experiment trains: files as written (cnnc compare), or variants of one file with
// settings written in (cnnc sweep), each checked as a .cnn file is.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dsl/check.hpp"
#include "dsl/graph.hpp"
#include "dsl/variant.hpp"

namespace cnnc::experiment {

struct Variant {
  std::string file;  // the .cnn file as the user named it
  std::string name;  // what changed, "conv1.filters=8 lr=0.1"; empty for the file as written
  std::string path;  // what its diagnostics call it: file, or "file [name]"
  std::string text;  // its .cnn text
  std::optional<dsl::Graph> graph;  // when it checks
  std::string diagnostic;           // else why not, rendered as the compiler renders it
};

// One --set: NAME=V1,V2,...
struct SetFlag {
  std::string name;
  std::vector<std::string> values;
};

// "conv1.filters=8,16" to its name and values. Throws std::runtime_error for a flag without a
// name, '=' or values.
SetFlag parse_set(const std::string& flag);

// The settings of each variant: each value of each flag alone on the base (in flag order), or
// with grid every combination (the first flag's values vary slowest).
std::vector<std::vector<dsl::Setting>> combinations(const std::vector<SetFlag>& flags, bool grid);

// The variants of `base` (a checked file) for those settings. A name or value that cannot be
// written into the file (no such layer or setting, a value its statement refuses) throws
// std::runtime_error with the message or diagnostics, before anything runs; a variant that is
// written but does not check (a kernel larger than its input) comes back without a graph and
// with its diagnostic.
std::vector<Variant> make_variants(const dsl::Graph& base, const std::vector<SetFlag>& flags,
                                   bool grid, const dsl::Limits& limits);

}  // namespace cnnc::experiment
