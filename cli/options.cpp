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

}  // namespace cnnc::cli
