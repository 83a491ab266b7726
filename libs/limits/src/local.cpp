#include "gw/limits/local.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

namespace gw::limits {

namespace {
/// floor(a / b) for b > 0 (a may be negative on a clock that starts below 0).
constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  auto q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
}  // namespace

// ------------------------------------------------------------ sliding_window
//
// slots_[b mod n_] holds bucket b for b in (head_ - n_, head_]; total_ is their sum.
// A bucket b is counted while the current bucket is in [b, b + buckets], so it leaves
// at the start of bucket b + n_ (n_ = buckets + 1).

sliding_window::sliding_window(const window_settings& w)
    : bucket_ms_(w.bucket_ms()), n_(std::max(1, w.buckets) + 1), slots_(static_cast<std::size_t>(n_), 0) {}

void sliding_window::advance(std::int64_t bucket) noexcept {
  if (bucket <= head_) return;  // same bucket, or time went backwards: stay at head_
  if (bucket - head_ >= n_) {   // idle for a window or more: O(slots), never O(gap)
    std::fill(slots_.begin(), slots_.end(), 0);
    total_ = 0;
  } else {
    for (std::int64_t b = head_ + 1; b <= bucket; ++b) {
      auto& slot = slots_[static_cast<std::size_t>(((b % n_) + n_) % n_)];
      total_ -= slot;
      slot = 0;
    }
  }
  head_ = bucket;
}

std::int64_t sliding_window::sum(std::int64_t now_ms) noexcept {
  advance(floor_div(now_ms, bucket_ms_));
  return total_;
}

void sliding_window::add(std::int64_t now_ms, std::int64_t n) noexcept {
  advance(floor_div(now_ms, bucket_ms_));
  slots_[static_cast<std::size_t>(((head_ % n_) + n_) % n_)] += n;
  total_ += n;
}

std::int64_t sliding_window::ms_until_at_most(std::int64_t now_ms, std::int64_t target) noexcept {
  advance(floor_div(now_ms, bucket_ms_));
  if (total_ <= target) return 0;
  // Time went backwards: measure from the start of the newest bucket seen.
  const std::int64_t now = std::max(now_ms, head_ * bucket_ms_);
  if (target == 0) {
    // Until everything has left (every answer's x-ratelimit-reset-*): when the newest
    // non-empty bucket leaves. Searched from the newest down: a busy window stops at once.
    std::size_t slot = static_cast<std::size_t>(((head_ % n_) + n_) % n_);
    for (std::int64_t b = head_; b > head_ - n_; --b) {
      if (slots_[slot] != 0) return std::max<std::int64_t>(1, (b + n_) * bucket_ms_ - now);
      slot = slot == 0 ? static_cast<std::size_t>(n_ - 1) : slot - 1;
    }
  }
  // Oldest first: bucket b leaves the counted range when bucket b + n_ begins.
  std::int64_t left = total_;
  for (std::int64_t b = head_ - n_ + 1; b <= head_; ++b) {
    left -= slots_[static_cast<std::size_t>(((b % n_) + n_) % n_)];
    if (left <= target) return std::max<std::int64_t>(1, (b + n_) * bucket_ms_ - now);
  }
  // target < 0 (a limit of 0): never; say when everything counted has left.
  return std::max<std::int64_t>(1, (head_ + n_) * bucket_ms_ - now);
}

// ------------------------------------------------------------- local_limiter

local_limiter::local_limiter(window_settings w) : w_(w) {}

std::int64_t local_limiter::now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

/// A limit scaled to this node's share: ceil(limit * share), at least 1 when limit > 0;
/// 0 stays 0 and "none" (< 0) stays none.
std::int64_t scaled(std::int64_t limit, double share) {
  if (limit <= 0 || !(share < 1.0)) return limit;
  if (!(share > 0.0)) return 1;
  // The epsilon keeps 0.34 * 100 (= 34.000000000000004) at 34.
  auto v = static_cast<std::int64_t>(std::ceil(static_cast<double>(limit) * share - 1e-9));
  return std::clamp<std::int64_t>(v, 1, limit);
}

std::size_t stripe_index(const std::string& id, std::size_t stripes) { return std::hash<std::string>{}(id) % stripes; }

/// Where the scope stands at `now` (nothing counted). reset = until everything counted
/// has left the window (OpenAI's x-ratelimit-reset-*: back to the initial state), as
/// the Redis script answers.
void fill_state(scope_state& st, const scope& sc, sliding_window& requests, sliding_window& tokens,
                       double share, std::int64_t now) {
  if (sc.rpm >= 0) {
    auto limit = scaled(sc.rpm, share);
    auto n = requests.sum(now);
    st.limit_requests = limit;
    st.remaining_requests = std::max<std::int64_t>(0, limit - n);
    st.reset_requests_ms = requests.ms_until_at_most(now, 0);
  }
  if (sc.tpm >= 0) {
    auto limit = scaled(sc.tpm, share);
    auto n = tokens.sum(now);
    st.limit_tokens = limit;
    st.remaining_tokens = std::max<std::int64_t>(0, limit - n);
    st.reset_tokens_ms = tokens.ms_until_at_most(now, 0);
  }
}

}  // namespace

decision local_limiter::acquire(const std::vector<scope>& scopes, double share) {
  return acquire_at(scopes, share, now_ms());
}

decision local_limiter::acquire_at(const std::vector<scope>& scopes, double share, std::int64_t now) {
  decision d;
  const std::size_t n = scopes.size();
  d.states.resize(n);
  // Small fixed buffers: a request has a handful of scopes (key, user, team, key x model,
  // deployment); more than k_inline is allowed but allocates.
  constexpr std::size_t k_inline = 16;
  std::array<std::uint8_t, k_inline> stripe_inline{};
  std::array<counters*, k_inline> cs_inline{};
  std::vector<std::uint8_t> stripe_heap;
  std::vector<counters*> cs_heap;
  std::uint8_t* stripe_of = stripe_inline.data();
  counters** cs = cs_inline.data();
  if (n > k_inline) {
    stripe_heap.resize(n);
    cs_heap.assign(n, nullptr);
    stripe_of = stripe_heap.data();
    cs = cs_heap.data();
  }
  // Lock every distinct stripe involved, in ascending index order: two requests with
  // overlapping scope sets (in any order) take their common stripes in the same order,
  // so they cannot deadlock; the decision over all scopes is atomic.
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!scopes[i].limited()) continue;
    stripe_of[i] = static_cast<std::uint8_t>(stripe_index(scopes[i].id, k_stripes));
    mask |= 1u << stripe_of[i];
  }
  std::array<std::unique_lock<std::mutex>, k_stripes> locks;
  for (std::size_t s = 0; s < k_stripes; ++s)
    if (mask & (1u << s)) locks[s] = std::unique_lock<std::mutex>(stripes_[s].m);

  for (std::size_t i = 0; i < n; ++i) {
    const auto& sc = scopes[i];
    if (!sc.limited()) continue;
    auto& table = stripes_[stripe_of[i]].table;
    auto it = table.find(sc.id);
    if (it == table.end()) it = table.emplace(sc.id, std::make_unique<counters>(w_)).first;
    cs[i] = it->second.get();
  }
  auto states = [&] {
    for (std::size_t i = 0; i < n; ++i)
      if (cs[i]) fill_state(d.states[i], scopes[i], cs[i]->requests, cs[i]->tokens, share, now);
  };
  auto refuse = [&](std::size_t i, kind k, std::int64_t limit, std::int64_t current, std::int64_t retry) {
    d.admitted = false;
    d.refused = static_cast<int>(i);
    d.refused_kind = k;
    d.limit = limit;
    d.current = current;
    d.retry_after_ms = std::max<std::int64_t>(1, retry);
    states();  // best effort: where each scope stands, nothing counted
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (!cs[i]) continue;
    const auto& sc = scopes[i];
    auto& c = *cs[i];
    if (sc.rpm >= 0) {
      auto limit = scaled(sc.rpm, share);
      auto cur = c.requests.sum(now);
      // Retry when one more fits: at most limit - 1 counted.
      if (cur + 1 > limit) {
        refuse(i, kind::requests, limit, cur, c.requests.ms_until_at_most(now, limit - 1));
        return d;
      }
    }
    if (sc.tpm >= 0) {
      auto limit = scaled(sc.tpm, share);
      auto cur = c.tokens.sum(now);
      // Retry when the tokens counted are below the limit again.
      if (cur >= limit) {
        refuse(i, kind::tokens, limit, cur, c.tokens.ms_until_at_most(now, limit - 1));
        return d;
      }
    }
    if (sc.max_parallel >= 0) {
      auto limit = scaled(sc.max_parallel, share);
      // Depends on other requests finishing: a fixed hint.
      if (c.in_flight + 1 > limit) {
        refuse(i, kind::parallel, limit, c.in_flight, 1000);
        return d;
      }
    }
  }
  d.admitted = true;
  // Requests are counted only in scopes with an rpm (a tpm-only scope keeps no request
  // count: nothing reads it).
  for (std::size_t i = 0; i < n; ++i) {
    if (!cs[i]) continue;
    const auto& sc = scopes[i];
    auto& c = *cs[i];
    if (sc.rpm >= 0) c.requests.add(now, 1);
    if (sc.max_parallel >= 0) ++c.in_flight;
  }
  states();
  return d;
}

void local_limiter::release(const std::vector<scope>& scopes, const token_usage& usage) {
  release_at(scopes, usage, now_ms());
}

void local_limiter::release_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now) {
  // Scope by scope: a release has nothing to decide, so no all-or-nothing locking.
  for (const auto& sc : scopes) {
    if (!sc.limited()) continue;
    auto t = std::max<std::int64_t>(0, usage.of(sc.counts));
    bool tokens = sc.tpm >= 0 && t > 0;
    auto& s = stripes_[stripe_index(sc.id, k_stripes)];
    std::lock_guard lock(s.m);
    auto it = s.table.find(sc.id);
    if (it == s.table.end()) {
      // Swept while the request ran (a tpm-only scope keeps nothing in flight): the
      // tokens still count.
      if (!tokens) continue;
      it = s.table.emplace(sc.id, std::make_unique<counters>(w_)).first;
    }
    auto& c = *it->second;
    if (sc.max_parallel >= 0 && c.in_flight > 0) --c.in_flight;
    if (tokens) c.tokens.add(now, t);
  }
}

void local_limiter::add_tokens_at(const std::vector<scope>& scopes, const token_usage& usage, std::int64_t now) {
  for (const auto& sc : scopes) {
    auto t = usage.of(sc.counts);
    if (sc.tpm < 0 || t <= 0) continue;
    auto& s = stripes_[stripe_index(sc.id, k_stripes)];
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
      if (c.in_flight == 0 && c.requests.idle(now) && c.tokens.idle(now)) {
        it = s.table.erase(it);
      } else {
        ++it;
        ++left;
      }
    }
  }
  return left;
}

}  // namespace gw::limits
