// SGD with momentum and Adam, each step written in torch.optim's order so results match it.
#include <cmath>

#include "generic/layers.hpp"

namespace cnnc::rt {

// p, g, v [count].
void sgd_step(const cnnc_optimizer& opt, int64_t count, float* p, const float* g, float* v) {
  // torch starts the momentum buffer at the first gradient; with v = 0 before the first step,
  // momentum * 0 + g is exactly that.
  for (int64_t j = 0; j < count; ++j) {
    const float grad = g[j] + opt.weight_decay * p[j];
    v[j] = opt.momentum * v[j] + grad;
    p[j] -= opt.lr * v[j];
  }
}

// p, g, m, v [count].
void adam_step(const cnnc_optimizer& opt, int64_t count, float* p, const float* g, float* m,
               float* v) {
  // torch computes the bias corrections and the step size in double (Python floats), the rest
  // in float: so does this.
  const double t = double(opt.step);
  const double correction1 = 1.0 - std::pow(double(opt.beta1), t);
  const double correction2 = 1.0 - std::pow(double(opt.beta2), t);
  const float step_size = float(double(opt.lr) / correction1);
  const float sqrt_correction2 = float(std::sqrt(correction2));
  for (int64_t j = 0; j < count; ++j) {
    const float grad = g[j] + opt.weight_decay * p[j];
    m[j] = opt.beta1 * m[j] + (1.0f - opt.beta1) * grad;
    v[j] = opt.beta2 * v[j] + (1.0f - opt.beta2) * grad * grad;
    const float denom = std::sqrt(v[j]) / sqrt_correction2 + opt.eps;
    p[j] -= step_size * m[j] / denom;
  }
}

}  // namespace cnnc::rt
