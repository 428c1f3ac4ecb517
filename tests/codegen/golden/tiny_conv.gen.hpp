// tiny_conv.gen.hpp: the C entry points of the code cnnc generated from tests/codegen/golden/tiny_conv.cnn. Do not edit.
//
// Parameters: one vector of 128 floats (cnnc_model::param_count); each tensor starts on a 64-byte boundary.
//   layer     tensor  offset  shape
//   conv1     weights       0  [2][3][3][1]
//   conv1     bias         32  [2]
//   dense1    weights      48  [3][18]
//   dense1    bias        112  [3]
//
// Use:
//   cnnc_model* m = cnnc_tiny_conv_create(/*max_batch=*/4, "auto");  // or "avx512", "avx2", "portable"
//   ... m->train(m, &pass), m->update(...), m->forward(m, &pass): see cnnc_abi.h ...
//   cnnc_tiny_conv_destroy(m);
#pragma once

#include "cnnc_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

// NULL when max_batch is outside 1..4 or the CPU cannot run the target.
cnnc_model* cnnc_tiny_conv_create(int32_t max_batch, const char* target);
void cnnc_tiny_conv_destroy(cnnc_model* model);
// Per-layer kernels of a target's variant, for benchmarks (cnnc_kernel in cnnc_abi.h).
int32_t cnnc_tiny_conv_kernels(const char* target, const cnnc_kernel** kernels);

#ifdef __cplusplus
}
#endif
