// The machine a benchmark ran on, named by the benchmark itself: the CPU from CPUID, its vector
// ISAs, and the FP32 peak measured in the same run. Every published figure carries this.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cnnc::bench {

struct Cpu {
  std::string vendor;  // "AuthenticAMD"
  std::string brand;   // CPUID's brand string, "AMD EPYC 9R45 ..."
  int family = 0, model = 0, stepping = 0;
  std::string core;              // "Zen 5" where the family and model say so, else empty
  std::vector<std::string> isa;  // of avx512f, avx512bw, avx512vl, avx512_bf16, avx2, fma
  int logical_cpus = 0;          // this process may use
  // One line: "AMD EPYC (AuthenticAMD family 26 model 2, Zen 5), 2 CPUs, avx512f ... fma".
  std::string describe() const;
};

Cpu this_cpu();

nlohmann::ordered_json cpu_json(const Cpu& cpu);

}  // namespace cnnc::bench
