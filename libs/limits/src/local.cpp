#include "gw/limits/local.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

namespace gw::limits {

// ------------------------------------------------------------ sliding_window

sliding_window::sliding_window(const window_settings& w)
    : bucket_ms_(w.bucket_ms()), n_(std::max(1, w.buckets) + 1), slots_(static_cast<std::size_t>(n_), 0) {}

void sliding_window::advance(std::int64_t bucket) noexcept {
  if (bucket <= head_) return;  // same bucket, or time went backwards: stay
  if (bucket - head_ >= n_) {
    std::fill(slots_.begin(), slots_.end(), 0);
    total_ = 0;
  } else {
    for (std::int64_t b = head_ + 1; b <= bucket; ++b) {
      auto& slot = slots_[static_cast<std::size_t>(b % n_)];
      total_ -= slot;
      slot = 0;
    }
  }
  head_ = bucket;
}

std::int64_t sliding_window::sum(std::int64_t now_ms) noexcept {
  advance(now_ms / bucket_ms_);
  return total_;
}

void sliding_window::add(std::int64_t now_ms, std::int64_t n) noexcept {
  advance(now_ms / bucket_ms_);
  slots_[static_cast<std::size_t>(head_ % n_)] += n;
  total_ += n;
}

std::int64_t sliding_window::ms_until_at_most(std::int64_t now_ms, std::int64_t target) noexcept {
  advance(now_ms / bucket_ms_);
  if (total_ <= target) return 0;
  // Oldest first: bucket head_-n_+1 leaves the counted range when bucket head_+1 begins.
  std::int64_t left = total_;
  for (std::int64_t b = head_ - n_ + 1; b <= head_; ++b) {
    if (b < 0) continue;
    left -= slots_[static_cast<std::size_t>(b % n_)];
    if (left <= target) return std::max<std::int64_t>(1, (b + n_) * bucket_ms_ - now_ms);
  }
  return std::max<std::int64_t>(1, (head_ + n_) * bucket_ms_ - now_ms);
}

// ------------------------------------------------------------- local_limiter

local_limiter::local_limiter(window_settings w) : w_(w) {}

std::int64_t local_limiter::now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

std::int64_t scaled(std::int64_t limit, double share) {
  if (limit <= 0 || share >= 1.0) return limit;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(static_cast<double>(limit) * share - 1e-9)));
}

/// Locks the stripes of `scopes` in ascending order (no deadlock between overlapping sets).
template <class Stripes>
struct stripe_locks {
  std::vector<std::unique_lock<std::mutex>> held;
  stripe_locks(Stripes& stripes, const std::vector<std::size_t>& idx) {
    held.reserve(idx.size());
    for (auto i : idx) held.emplace_back(stripes[i].m);
  }
};

}  // namespace

decision local_limiter::acquire(const std::vector<scope>& scopes, double share) {
  return acquire_at(scopes, share, now_ms());
}

decision local_limiter::acquire_at(const std::vector<scope>& scopes, double share, std::int64_t now) {
  decision d;
  d.states.resize(scopes.size());
  std::vector<std::size_t> stripe_of(scopes.size());
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    stripe_of[i] = std::hash<std::string>{}(scopes[i].id) % k_stripes;
    idx.push_back(stripe_of[i]);
  }
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  stripe_locks locks(stripes_, idx);

  std::vector<counters*> cs(scopes.size(), nullptr);
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    const auto& sc = scopes[i];
    if (!sc.limited()) continue;
    auto& table = stripes_[stripe_of[i]].table;
    auto it = table.find(sc.id);
    if (it == table.end()) it = table.emplace(sc.id, std::make_unique<counters>(w_)).first;
    cs[i] = it->second.get();
  }
  auto refuse = [&](std::size_t i, kind k, std::int64_t limit, std::int64_t current, std::int64_t retry) {
    d.admitted = false;
    d.refused = static_cast<int>(i);
    d.refused_kind = k;
    d.limit = limit;
    d.current = current;
    d.retry_after_ms = std::max<std::int64_t>(1, retry);
    return d;
  };
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    if (!cs[i]) continue;
    const auto& sc = scopes[i];
    auto& c = *cs[i];
    if (sc.rpm >= 0) {
      auto limit = scaled(sc.rpm, share);
      auto n = c.requests.sum(now);
      if (n + 1 > limit) return refuse(i, kind::requests, limit, n, c.requests.ms_until_at_most(now, limit - 1));
    }
    if (sc.tpm >= 0) {
      auto limit = scaled(sc.tpm, share);
      auto n = c.tokens.sum(now);
      if (n >= limit) return refuse(i, kind::tokens, limit, n, c.tokens.ms_until_at_most(now, limit - 1));
    }
    if (sc.max_parallel >= 0) {
      auto limit = scaled(sc.max_parallel, share);
      if (c.in_flight + 1 > limit) return refuse(i, kind::parallel, limit, c.in_flight, 1000);
    }
  }
  d.admitted = true;
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    if (!cs[i]) continue;
    const auto& sc = scopes[i];
    auto& c = *cs[i];
    auto& st = d.states[i];
    if (sc.rpm >= 0) {
      c.requests.add(now, 1);
      auto limit = scaled(sc.rpm, share);
      auto n = c.requests.sum(now);
      st.limit_requests = limit;
      st.remaining_requests = std::max<std::int64_t>(0, limit - n);
      st.reset_requests_ms = c.requests.ms_until_at_most(now, 0);
    }
    if (sc.tpm >= 0) {
      auto limit = scaled(sc.tpm, share);
      auto n = c.tokens.sum(now);
      st.limit_tokens = limit;
      st.remaining_tokens = std::max<std::int64_t>(0, limit - n);
      st.reset_tokens_ms = c.tokens.ms_until_at_most(now, 0);
    }
    if (sc.max_parallel >= 0) ++c.in_flight;
  }
  return d;
}

void local_limiter::release(const std::vector<scope>& scopes, const token_usage& usage) {
  release_at(scopes, usage, now_ms());
}

void local_limiter::release_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now) {
  for (const auto& sc : scopes) {
    if (!sc.limited()) continue;
    auto& s = stripes_[std::hash<std::string>{}(sc.id) % k_stripes];
    std::lock_guard lock(s.m);
    auto it = s.table.find(sc.id);
    if (it == s.table.end()) continue;
    auto& c = *it->second;
    if (sc.max_parallel >= 0 && c.in_flight > 0) --c.in_flight;
    auto t = usage.of(sc.counts);
    if (sc.tpm >= 0 && t > 0) c.tokens.add(now, t);
  }
}

void local_limiter::add_tokens_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now) {
  for (const auto& sc : scopes) {
    auto t = usage.of(sc.counts);
    if (sc.tpm < 0 || t <= 0) continue;
    auto& s = stripes_[std::hash<std::string>{}(sc.id) % k_stripes];
    std::lock_guard lock(s.m);
    auto it = s.table.find(sc.id);
    if (it == s.table.end()) it = s.table.emplace(sc.id, std::make_unique<counters>(w_)).first;
    it->second->tokens.add(now, t);
  }
}

std::size_t local_limiter::sweep() { return sweep_at(now_ms()); }

std::size_t local_limiter::sweep_at(std::int64_t now) {
  std::size_t left = 0;
  for (auto& s : stripes_) {
    std::lock_guard lock(s.m);
    for (auto it = s.table.begin(); it != s.table.end();) {
      auto& c = *it->second;
      if (c.in_flight == 0 && c.requests.idle(now) && c.tokens.idle(now))
        it = s.table.erase(it);
      else
        ++it, ++left;
    }
  }
  return left;
}

}  // namespace gw::limits
