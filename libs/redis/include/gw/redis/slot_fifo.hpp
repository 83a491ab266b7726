#pragma once
/// A FIFO of reusable slots, oldest first: what a pipelined connection keeps for the
/// commands awaiting their replies (which come back in order). A popped slot is cleared
/// with T::clear(), which keeps its buffers' capacity, and reused, so steady traffic
/// allocates nothing here. Single-threaded.

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace gw::redis {

template <class T>
class slot_fifo {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  T& front() noexcept { return slots_[head_]; }
  /// A clear slot at the back. Invalidates references to other slots when it grows.
  T& push() {
    if (size_ == slots_.size()) grow();
    auto& s = slots_[(head_ + size_) % slots_.size()];
    ++size_;
    return s;
  }
  /// Clears the oldest slot and makes it free.
  void pop() noexcept {
    slots_[head_].clear();
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  /// Drops every slot's content without calling anything.
  void clear() noexcept {
    while (!empty()) pop();
  }

 private:
  void grow() {
    std::vector<T> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    slots_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> slots_;
  std::size_t head_ = 0, size_ = 0;
};

}  // namespace gw::redis
