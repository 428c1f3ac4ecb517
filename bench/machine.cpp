// CPUID, read once per run: vendor, brand, family and model, the ISAs cnnc's variants use.
#include "bench/machine.hpp"

#include <cpuid.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

namespace cnnc::bench {

namespace {

std::string trimmed(std::string s) {
  s.erase(s.find_last_not_of(" \t") + 1);
  s.erase(0, s.find_first_not_of(" \t"));
  return s;
}

// AMD's families: 0x19 holds Zen 3 and Zen 4 (only Zen 4 has AVX-512), 0x1a Zen 5. The core
// decides the FMA peak per cycle (Zen 4: one 512-bit FMA, Zen 5: two), which is why it is named.
std::string amd_core(int family, bool avx512) {
  if (family == 0x1a) return "Zen 5";
  if (family == 0x19) return avx512 ? "Zen 4" : "Zen 3";
  if (family == 0x17) return "Zen 2 or earlier";
  return "";
}

}  // namespace

Cpu this_cpu() {
  Cpu cpu;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    std::array<char, 13> v{};
    std::memcpy(v.data(), &b, 4);
    std::memcpy(v.data() + 4, &d, 4);
    std::memcpy(v.data() + 8, &c, 4);
    cpu.vendor = v.data();
  }
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    int base_family = static_cast<int>((a >> 8) & 0xf),
        base_model = static_cast<int>((a >> 4) & 0xf);
    cpu.family =
        base_family == 0xf ? base_family + static_cast<int>((a >> 20) & 0xff) : base_family;
    cpu.model =
        base_family >= 0x6 ? base_model | static_cast<int>(((a >> 16) & 0xf) << 4) : base_model;
    cpu.stepping = static_cast<int>(a & 0xf);
  }
  unsigned max_ext = __get_cpuid_max(0x80000000, nullptr);
  if (max_ext >= 0x80000004) {
    std::array<char, 49> brand{};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand.data() + 16 * i, &a, 4);
      std::memcpy(brand.data() + 16 * i + 4, &b, 4);
      std::memcpy(brand.data() + 16 * i + 8, &c, 4);
      std::memcpy(brand.data() + 16 * i + 12, &d, 4);
    }
    cpu.brand = trimmed(brand.data());
  }
  __builtin_cpu_init();
  // __builtin_cpu_supports takes string literals only.
  auto add = [&](bool has, const char* name) {
    if (has) cpu.isa.emplace_back(name);
  };
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  add(__builtin_cpu_supports("avx512bw"), "avx512bw");
  add(__builtin_cpu_supports("avx512vl"), "avx512vl");
  add(__builtin_cpu_supports("avx512bf16"), "avx512_bf16");
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  bool avx512 = __builtin_cpu_supports("avx512f");
  if (cpu.vendor == "AuthenticAMD") cpu.core = amd_core(cpu.family, avx512);
  cpu_set_t set;
  cpu.logical_cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  return cpu;
}

std::string Cpu::describe() const {
  return fmt::format("{} ({} family {} model {}{}), {} CPU{}, {}",
                     brand.empty() ? "unknown CPU" : brand, vendor, family, model,
                     core.empty() ? "" : ", " + core, logical_cpus, logical_cpus == 1 ? "" : "s",
                     fmt::join(isa, " "));
}

nlohmann::ordered_json cpu_json(const Cpu& cpu) {
  return {{"vendor", cpu.vendor},     {"brand", cpu.brand},
          {"family", cpu.family},     {"model", cpu.model},
          {"stepping", cpu.stepping}, {"core", cpu.core},
          {"isa", cpu.isa},           {"logical_cpus", cpu.logical_cpus}};
}

}  // namespace cnnc::bench
