#include "gw/gateway/admission.hpp"

namespace gw::gateway {

void minute_window::advance(std::int64_t now_s) noexcept {
  if (now_s <= head_s_) return;
  if (now_s - head_s_ >= 60) {
    buckets_.fill(0);
    total_ = 0;
  } else {
    for (std::int64_t s = head_s_ + 1; s <= now_s; ++s) {
      auto& b = buckets_[static_cast<std::size_t>(s % 60)];
      total_ -= b;
      b = 0;
    }
  }
  head_s_ = now_s;
}

void minute_window::add(std::int64_t now_s, std::int64_t n) noexcept {
  advance(now_s);
  buckets_[static_cast<std::size_t>(head_s_ % 60)] += n;
  total_ += n;
}

std::int64_t minute_window::sum(std::int64_t now_s) noexcept {
  advance(now_s);
  return total_;
}

admit_result admission_control::try_admit(std::int64_t now_s, std::int64_t estimated_tokens) noexcept {
  if (max_parallel_ && in_flight_ >= *max_parallel_) return admit_result::over_parallel;
  if (rpm_ && requests_.sum(now_s) + 1 > *rpm_) return admit_result::over_rpm;
  // A request alone larger than the whole budget still gets through when the window
  // is empty; otherwise it could never run.
  if (tpm_) {
    auto used = tokens_.sum(now_s);
    if (used > 0 && used + estimated_tokens > *tpm_) return admit_result::over_tpm;
  }
  ++in_flight_;
  requests_.add(now_s, 1);
  tokens_.add(now_s, estimated_tokens);
  return admit_result::admitted;
}

void admission_control::release(std::int64_t now_s, std::int64_t estimated_tokens,
                                std::int64_t actual_tokens) noexcept {
  if (in_flight_ > 0) --in_flight_;
  if (actual_tokens >= 0) tokens_.add(now_s, actual_tokens - estimated_tokens);
}

}  // namespace gw::gateway
