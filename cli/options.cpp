// Validators for numeric flags: the bounds in the message as a user writes them, NaN refused.
#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "cli/commands.hpp"

namespace cnnc::cli {

namespace {

template <class T>
CLI::Validator within_any(T lo, T hi, const char* kind) {
  return CLI::Validator(
      [lo, hi, kind](std::string& text) -> std::string {
        T v{};
        const char* end = text.data() + text.size();
        auto [stop, ec] = std::from_chars(text.data(), end, v);
        bool parsed = ec == std::errc() && stop == end;
        if constexpr (std::is_floating_point_v<T>) parsed = parsed && std::isfinite(v);
        if (parsed && v >= lo && v <= hi) return {};
        return fmt::format("{} is not {} from {} to {}", text, kind, lo, hi);
      },
      fmt::format("{} to {}", lo, hi));
}

}  // namespace

CLI::Validator within_integer(int64_t lo, int64_t hi) {
  return within_any(lo, hi, "a whole number");
}

CLI::Validator within_real(double lo, double hi) {
  return within_any(lo, hi, "a number");
}

void add_precision_flag(CLI::App& cmd, std::string& precision) {
  cmd.add_option("--precision", precision,
                 "fp32, or bf16 (conv and dense products in bf16, sums in fp32); overrides the "
                 "file's precision statement")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void apply_precision(dsl::Graph& graph, const std::string& precision) {
  if (!precision.empty())
    graph.training.precision = precision == "bf16" ? dsl::Precision::bf16 : dsl::Precision::fp32;
}

}  // namespace cnnc::cli
