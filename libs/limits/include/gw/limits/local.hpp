#pragma once
/// The in-process limiter: the same semantics as Redis's, for one node. Thread-safe
/// (io threads call it directly; a few hundred nanoseconds under one striped lock).

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gw/limits/limits.hpp"

namespace gw::limits {

/// A conservative sliding window of `buckets` sub-buckets (see limits.hpp). Not
/// thread-safe. Times in milliseconds on any monotonic clock.
class sliding_window {
 public:
  explicit sliding_window(const window_settings& w);
  /// What counts at `now_ms`: the current bucket plus the `buckets` before it.
  std::int64_t sum(std::int64_t now_ms) noexcept;
  void add(std::int64_t now_ms, std::int64_t n) noexcept;
  /// Milliseconds from `now_ms` until sum() <= `target` (0 if already); the end of the
  /// bucket that must leave the window.
  std::int64_t ms_until_at_most(std::int64_t now_ms, std::int64_t target) noexcept;
  /// True when every counted bucket is empty at `now_ms` (the window can be forgotten).
  bool idle(std::int64_t now_ms) noexcept { return sum(now_ms) == 0; }

 private:
  void advance(std::int64_t bucket) noexcept;
  std::int64_t bucket_ms_;
  int n_;  ///< buckets + 1 slots: the current one and `buckets` before it
  std::vector<std::int64_t> slots_;
  std::int64_t head_ = 0;  ///< bucket number held by slots_[head_ % n_]
  std::int64_t total_ = 0;
};

class local_limiter {
 public:
  explicit local_limiter(window_settings w);

  /// Checks every scope of `scopes`; if all admit, counts the request in each (one
  /// request in the rpm windows, one in flight where max_parallel is set) and returns
  /// admitted. Otherwise counts nothing and says which refused first (scope order).
  /// `share` in (0, 1] scales every limit (ceil, at least 1 when the limit is > 0): the
  /// node's part of a cluster limit while Redis is away. tpm refuses when the tokens
  /// already counted are >= the limit (the request's own tokens are not known yet).
  decision acquire(const std::vector<scope>& scopes, double share = 1.0);
  decision acquire_at(const std::vector<scope>& scopes, double share, std::int64_t now_ms);

  /// A request admitted by acquire() finished: one fewer in flight where max_parallel
  /// is set, and each scope's tokens (usage.of(scope.counts), >= 0) added to its tpm
  /// window (only where tpm is set).
  void release(const std::vector<scope>& scopes, const token_usage& usage);
  void release_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now_ms);

  /// Adds tokens only (usage of a request not admitted here, e.g. admitted by Redis
  /// while it was up, released while it was away).
  void add_tokens_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now_ms);

  /// Forgets scopes with empty windows and nothing in flight; returns how many remain.
  std::size_t sweep();
  std::size_t sweep_at(std::int64_t now_ms);

  const window_settings& window() const noexcept { return w_; }
  static std::int64_t now_ms() noexcept;  ///< steady clock

 private:
  struct counters {
    explicit counters(const window_settings& w) : requests(w), tokens(w) {}
    sliding_window requests;
    sliding_window tokens;
    std::int64_t in_flight = 0;
  };
  static constexpr std::size_t k_stripes = 16;
  struct stripe {
    std::mutex m;
    std::unordered_map<std::string, std::unique_ptr<counters>> table;
  };
  window_settings w_;
  std::array<stripe, k_stripes> stripes_;
};

}  // namespace gw::limits
