// cnnc bench's engine names: ENGINE-bf16 and ENGINE-fp32 run ENGINE at that precision whatever
// the file says; a bare name runs at the file's.
#include <catch2/catch.hpp>

#include "bench/engine_variant.hpp"

using cnnc::bench::engine_variant;
using cnnc::dsl::Precision;

TEST_CASE("a precision suffix names the engine and sets the precision") {
  cnnc::dsl::Graph file;
  file.training.precision = Precision::fp32;
  auto v = engine_variant(file, "specialized-bf16");
  CHECK(v.base == "specialized");
  CHECK(v.graph.training.precision == Precision::bf16);
  v = engine_variant(file, "pytorch-bf16");
  CHECK(v.base == "pytorch");
  CHECK(v.graph.training.precision == Precision::bf16);

  file.training.precision = Precision::bf16;
  v = engine_variant(file, "pytorch-fp32");
  CHECK(v.base == "pytorch");
  CHECK(v.graph.training.precision == Precision::fp32);
}

TEST_CASE("a bare name keeps the file's precision, and a suffix alone is no engine") {
  cnnc::dsl::Graph file;
  file.training.precision = Precision::bf16;
  for (const char* name : {"pytorch", "specialized", "generic", "onednn", "-bf16", "-fp32"}) {
    auto v = engine_variant(file, name);
    CHECK(v.base == name);
    CHECK(v.graph.training.precision == Precision::bf16);
  }
}
