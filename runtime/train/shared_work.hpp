// Items of work that each thread owns a share of and takes from the front, and that a thread
// out of its own takes from the back of another's: so that when the machine slows one thread,
// the others do part of its share, and otherwise each does its own.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

namespace cnnc::rt {

class SharedWork {
 public:
  // Thread t owns items [starts[t], starts[t + 1]); starts.back() is the number of items.
  explicit SharedWork(std::vector<size_t> starts);

  int threads() const { return static_cast<int>(starts_.size()) - 1; }
  // Every item is unclaimed again. Not while a claim runs.
  void reset();
  // Thread t's next item: its own share's first unclaimed, else the last unclaimed of the next
  // share that has one, t + 1 first; none once every item is claimed. Each item goes to one
  // claim between resets, whichever threads call at the same time.
  std::optional<size_t> claim(int t);

 private:
  std::vector<size_t> starts_;
  // Per share, its unclaimed items [front, back) as front << 32 | back: one word, so that the
  // owner and a thief cannot both take the last item.
  std::unique_ptr<std::atomic<uint64_t>[]> unclaimed_;
};

}  // namespace cnnc::rt
