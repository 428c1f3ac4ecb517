// Shares of work items, claimed from the front by their owner and from the back by the others.
#include "train/shared_work.hpp"

#include <stdexcept>

namespace cnnc::rt {

SharedWork::SharedWork(std::vector<size_t> starts)
    : starts_(std::move(starts)),
      unclaimed_(new std::atomic<uint64_t>[starts_.empty() ? 0 : starts_.size() - 1]) {
  if (starts_.size() < 2 || starts_.back() >= (uint64_t{1} << 32))
    throw std::logic_error("SharedWork: needs a share per thread and fewer than 2^32 items");
  for (size_t t = 0; t + 1 < starts_.size(); ++t)
    if (starts_[t] > starts_[t + 1]) throw std::logic_error("SharedWork: starts must not fall");
  reset();
}

void SharedWork::reset() {
  for (int t = 0; t < threads(); ++t)
    unclaimed_[t].store(uint64_t{starts_[t]} << 32 | starts_[t + 1], std::memory_order_relaxed);
}

std::optional<size_t> SharedWork::claim(int t) {
  for (int k = 0; k < threads(); ++k) {
    const bool own = k == 0;
    std::atomic<uint64_t>& share = unclaimed_[(t + k) % threads()];
    uint64_t now = share.load(std::memory_order_relaxed);
    for (;;) {
      uint64_t front = now >> 32, back = now & 0xffffffffu;
      if (front >= back) break;
      uint64_t next = own ? (front + 1) << 32 | back : front << 32 | (back - 1);
      if (share.compare_exchange_weak(now, next, std::memory_order_relaxed))
        return own ? front : back - 1;
    }
  }
  return std::nullopt;
}

}  // namespace cnnc::rt
