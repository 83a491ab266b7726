#pragma once
/// Admission of requests to one deployment: in-flight cap and requests/tokens per
/// minute over a sliding 60-second window of one-second buckets. Owned by the
/// deployment actor (single-threaded); pure logic, no clock of its own.

#include <array>
#include <cstdint>
#include <optional>

namespace gw::gateway {

/// Sum over the last 60 seconds, in one-second buckets.
class minute_window {
 public:
  void add(std::int64_t now_s, std::int64_t n) noexcept;
  std::int64_t sum(std::int64_t now_s) noexcept;

 private:
  void advance(std::int64_t now_s) noexcept;
  std::array<std::int64_t, 60> buckets_{};
  std::int64_t total_ = 0;
  std::int64_t head_s_ = 0;  // the second buckets_[head_s_ % 60] holds
};

enum class admit_result { admitted, over_parallel, over_rpm, over_tpm };

class admission_control {
 public:
  admission_control(std::optional<std::int64_t> rpm, std::optional<std::int64_t> tpm,
                     std::optional<std::int64_t> max_parallel) noexcept
      : rpm_(rpm), tpm_(tpm), max_parallel_(max_parallel) {}

  /// Admits and reserves `estimated_tokens` against the tpm window, or says why not.
  admit_result try_admit(std::int64_t now_s, std::int64_t estimated_tokens) noexcept;
  /// A request finished: frees its slot and replaces the estimate by the tokens used
  /// (negative `actual_tokens` = unknown, keep the estimate).
  void release(std::int64_t now_s, std::int64_t estimated_tokens, std::int64_t actual_tokens) noexcept;

  std::int64_t in_flight() const noexcept { return in_flight_; }
  std::int64_t requests_last_minute(std::int64_t now_s) noexcept { return requests_.sum(now_s); }
  std::int64_t tokens_last_minute(std::int64_t now_s) noexcept { return tokens_.sum(now_s); }

 private:
  std::optional<std::int64_t> rpm_, tpm_, max_parallel_;
  std::int64_t in_flight_ = 0;
  minute_window requests_;
  minute_window tokens_;
};

}  // namespace gw::gateway
