// The conservative sliding window and the in-process limiter. Explicit times only.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "gw/limits/local.hpp"

using namespace gw::limits;

namespace {

window_settings win(std::int64_t ms, int buckets) {
  window_settings w;
  w.window_ms = ms;
  w.buckets = buckets;
  return w;
}

scope key(std::string id, std::int64_t rpm = -1, std::int64_t tpm = -1, std::int64_t par = -1) {
  scope s;
  s.id = std::move(id);
  s.label = "api_key '" + s.id + "'";
  s.rpm = rpm;
  s.tpm = tpm;
  s.max_parallel = par;
  return s;
}

/// Admitted times, sorted: the most in any half-open interval [t, t + window).
std::int64_t max_in_any_window(std::vector<std::int64_t> times, std::int64_t window) {
  std::sort(times.begin(), times.end());
  std::int64_t most = 0;
  for (std::size_t i = 0; i < times.size(); ++i) {
    auto end = std::lower_bound(times.begin(), times.end(), times[i] + window);
    most = std::max<std::int64_t>(most, end - (times.begin() + static_cast<std::ptrdiff_t>(i)));
  }
  return most;
}

/// Exact sliding log: how many of `times` fall in [from, to].
std::int64_t count_in(const std::vector<std::int64_t>& times, std::int64_t from, std::int64_t to) {
  return std::upper_bound(times.begin(), times.end(), to) - std::lower_bound(times.begin(), times.end(), from);
}

}  // namespace

// ------------------------------------------------------------------ sliding_window

TEST(SlidingWindow, CountsTheCurrentBucketAndTheWindowBeforeIt) {
  sliding_window w(win(10'000, 10));  // 1 s buckets, 11 counted
  w.add(500, 3);
  w.add(5'500, 2);
  EXPECT_EQ(w.sum(5'600), 5);
  EXPECT_EQ(w.sum(10'999), 5);  // bucket 0 still counted (buckets 0..10)
  EXPECT_EQ(w.sum(11'000), 2);  // bucket 0 left at the start of bucket 11
  EXPECT_EQ(w.sum(15'999), 2);
  EXPECT_EQ(w.sum(16'000), 0);  // bucket 5 left at the start of bucket 16
  EXPECT_TRUE(w.idle(16'000));
}

TEST(SlidingWindow, BucketsRoundUpToCoverTheWindow) {
  EXPECT_EQ(win(1'000, 3).bucket_ms(), 334);
  EXPECT_EQ(win(60'000, 60).bucket_ms(), 1'000);
  EXPECT_EQ(win(5, 10).bucket_ms(), 1);
  EXPECT_EQ(win(1'000, 0).bucket_ms(), 1'000);  // buckets < 1 act as 1
  sliding_window w(win(1'000, 3));                // buckets of 334 ms, 4 counted
  w.add(0, 1);
  EXPECT_EQ(w.sum(1'335), 1);  // bucket 3 (1002..1335): bucket 0 still counted
  EXPECT_EQ(w.sum(1'336), 0);  // bucket 4
}

TEST(SlidingWindow, TimeUntilAtMost) {
  sliding_window w(win(10'000, 10));
  w.add(500, 3);
  w.add(5'500, 2);
  EXPECT_EQ(w.ms_until_at_most(6'000, 5), 0);
  EXPECT_EQ(w.ms_until_at_most(6'000, 10), 0);
  EXPECT_EQ(w.ms_until_at_most(6'000, 4), 11'000 - 6'000);  // bucket 0 must leave
  EXPECT_EQ(w.ms_until_at_most(6'000, 2), 11'000 - 6'000);
  EXPECT_EQ(w.ms_until_at_most(6'000, 1), 16'000 - 6'000);  // bucket 5 must leave too
  EXPECT_EQ(w.ms_until_at_most(6'000, 0), 16'000 - 6'000);
  // target < 0 (a limit of 0) is never reached: as the Redis script, until the current
  // bucket leaves.
  EXPECT_EQ(w.ms_until_at_most(6'000, -1), 17'000 - 6'000);
  EXPECT_EQ(w.ms_until_at_most(10'999, 4), 1);                // at least 1 ms
  // The answer is right: just before it, still above; at it, at most the target.
  sliding_window a = w, b = w;
  EXPECT_GT(a.sum(10'999), 4);
  EXPECT_LE(b.sum(11'000), 4);
}

TEST(SlidingWindow, ShortIdleGapDropsOnlyTheBucketsThatLeft) {
  sliding_window w(win(4'000, 4));  // 1 s buckets, 5 counted
  for (int b = 0; b < 5; ++b) w.add(b * 1'000, b + 1);  // 1..5 in buckets 0..4
  EXPECT_EQ(w.sum(4'999), 15);
  EXPECT_EQ(w.sum(7'000), 15 - 1 - 2 - 3);  // buckets 0..2 left
  w.add(7'000, 10);
  EXPECT_EQ(w.sum(8'000), 4 + 5 + 10 - 4);  // bucket 3 left
  EXPECT_EQ(w.sum(11'999), 10);
  EXPECT_EQ(w.sum(12'000), 0);
}

TEST(SlidingWindow, LongIdleGapAndTimeGoingBackwards) {
  sliding_window w(win(1'000, 4));
  w.add(100, 7);
  EXPECT_EQ(w.sum(1'000'000'000'000), 0);  // a huge gap: cleared, not walked bucket by bucket
  w.add(1'000'000'000'000, 1);
  EXPECT_EQ(w.sum(999'000'000'000), 1);  // backwards: stays at the newest bucket
  w.add(999'000'000'000, 2);             // counted in the newest bucket
  EXPECT_EQ(w.sum(1'000'000'000'000), 3);
  EXPECT_EQ(w.sum(1'000'000'000'000 + 1'250), 0);  // the newest bucket left: so did the 2
  // ms_until_at_most with a clock behind the newest bucket measures from that bucket.
  sliding_window v(win(1'000, 4));  // 250 ms buckets
  v.add(10'000, 1);
  EXPECT_EQ(v.ms_until_at_most(5'000, 0), 10'000 + 1'250 - 10'000);
}

TEST(SlidingWindow, NeverMoreThanTheLimitInAnyWindowLongInterval) {
  // Random arrivals (bursts on the same millisecond included) against an exact sliding
  // log: admit while sum()+1 <= limit. Then every [t, t + window) of the admitted times
  // holds at most `limit`; sum() is never below the exact count of the last window and
  // never above the exact count of the last window plus one bucket; and a refused
  // arrival's ms_until_at_most is exact at bucket granularity.
  std::mt19937_64 rng(7);
  for (int round = 0; round < 40; ++round) {
    const std::int64_t window = 100 + static_cast<std::int64_t>(rng() % 5'000);
    const int buckets = 1 + static_cast<int>(rng() % 30);
    const std::int64_t limit = 1 + static_cast<std::int64_t>(rng() % 25);
    const auto bms = win(window, buckets).bucket_ms();
    const std::int64_t span = bms * (buckets + 1);  // what is counted at most
    sliding_window w(win(window, buckets));
    std::vector<std::int64_t> admitted;
    std::int64_t t = static_cast<std::int64_t>(rng() % 100'000);
    int refusals = 0;
    for (int i = 0; i < 2'000; ++i) {
      if (rng() % 4) t += static_cast<std::int64_t>(rng() % (window / 8 + 1));
      if (rng() % 50 == 0) t += static_cast<std::int64_t>(rng() % (3 * window));  // idle gap
      const auto s = w.sum(t);
      ASSERT_GE(s, count_in(admitted, t - window + 1, t)) << "sum below the exact count";
      ASSERT_LE(s, count_in(admitted, t - span + 1, t)) << "sum counts older than the counted buckets";
      if (s + 1 <= limit) {
        w.add(t, 1);
        admitted.push_back(t);
      } else {
        ++refusals;
        auto retry = w.ms_until_at_most(t, limit - 1);
        ASSERT_GE(retry, 1);
        sliding_window later = w, earlier = w;
        ASSERT_LE(later.sum(t + retry), limit - 1);
        if (retry > 1) {
          ASSERT_GT(earlier.sum(t + retry - 1), limit - 1) << "retry-after later than needed";
        }
      }
    }
    ASSERT_FALSE(admitted.empty());
    ASSERT_GT(refusals, 0) << "the case never reached its limit";
    ASSERT_LE(max_in_any_window(admitted, window), limit)
        << "window " << window << " buckets " << buckets << " limit " << limit;
  }
}

TEST(LocalLimiter, NeverMoreThanTheLimitInAnyWindowLongIntervalAcrossScopes) {
  // The same property through the limiter, with two scopes of different limits: every
  // admitted request counts in both, so each limit holds over the admitted times.
  std::mt19937_64 rng(11);
  for (int round = 0; round < 10; ++round) {
    const std::int64_t window = 1'000 + static_cast<std::int64_t>(rng() % 3'000);
    const int buckets = 1 + static_cast<int>(rng() % 12);
    local_limiter l(win(window, buckets));
    std::vector<scope> v{key("a", 3 + static_cast<std::int64_t>(rng() % 10)),
                         key("b", 3 + static_cast<std::int64_t>(rng() % 10))};
    std::vector<std::int64_t> admitted;
    std::int64_t t = 0;
    for (int i = 0; i < 3'000; ++i) {
      t += static_cast<std::int64_t>(rng() % 40);
      if (l.acquire_at(v, 1.0, t).admitted) admitted.push_back(t);
    }
    // At most the smaller limit in any window-long interval, and (arrivals being dense)
    // exactly that in some: the limiter does not admit less than it may.
    ASSERT_EQ(max_in_any_window(admitted, window), std::min(v[0].rpm, v[1].rpm));
  }
}

// ------------------------------------------------------------------- local_limiter

TEST(LocalLimiter, RpmAdmitsTheLimitThenRefusesWithRetryAfter) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> s{key("k", 3)};
  for (int i = 0; i < 3; ++i) {
    auto d = l.acquire_at(s, 1.0, 1'000 + i);
    ASSERT_TRUE(d.admitted);
    EXPECT_EQ(d.refused, -1);
    EXPECT_EQ(d.states[0].limit_requests, 3);
    EXPECT_EQ(d.states[0].remaining_requests, 2 - i);
    EXPECT_EQ(d.states[0].reset_requests_ms, 62'000 - (1'000 + i));
    EXPECT_EQ(d.states[0].limit_tokens, -1);
    EXPECT_EQ(d.states[0].remaining_tokens, -1);
  }
  auto d = l.acquire_at(s, 1.0, 2'000);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 0);
  EXPECT_EQ(d.refused_kind, kind::requests);
  EXPECT_EQ(d.limit, 3);
  EXPECT_EQ(d.current, 3);
  EXPECT_EQ(d.retry_after_ms, 62'000 - 2'000);  // bucket 1 leaves when bucket 62 begins
  // States on refusal, best effort: nothing counted, nothing remaining.
  EXPECT_EQ(d.states[0].limit_requests, 3);
  EXPECT_EQ(d.states[0].remaining_requests, 0);
  EXPECT_EQ(d.states[0].reset_requests_ms, 60'000);
  EXPECT_FALSE(l.acquire_at(s, 1.0, 61'999).admitted);
  EXPECT_TRUE(l.acquire_at(s, 1.0, 62'000).admitted);
}

TEST(LocalLimiter, RetryAfterWaitsForEnoughOldBuckets) {
  local_limiter l(win(10'000, 10));  // 1 s buckets
  std::vector<scope> s{key("k", 4)};
  ASSERT_TRUE(l.acquire_at(s, 1.0, 0).admitted);
  ASSERT_TRUE(l.acquire_at(s, 1.0, 3'000).admitted);
  ASSERT_TRUE(l.acquire_at(s, 1.0, 3'500).admitted);
  ASSERT_TRUE(l.acquire_at(s, 1.0, 7'000).admitted);
  auto d = l.acquire_at(s, 1.0, 9'000);
  ASSERT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_ms, 11'000 - 9'000);  // one must leave: bucket 0
  ASSERT_TRUE(l.acquire_at(s, 1.0, 11'000).admitted);
  d = l.acquire_at(s, 1.0, 11'500);
  ASSERT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_ms, 14'000 - 11'500);  // bucket 3 holds two
}

TEST(LocalLimiter, RpmZeroRefusesEverything) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("zero", 0)};
  auto d = l.acquire_at(v, 1.0, 0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.limit, 0);
  EXPECT_EQ(d.current, 0);
  EXPECT_GE(d.retry_after_ms, 1);
  std::vector<scope> t{key("tzero", -1, 0)};
  EXPECT_FALSE(l.acquire_at(t, 1.0, 0).admitted);
  std::vector<scope> p{key("pzero", -1, -1, 0)};
  EXPECT_FALSE(l.acquire_at(p, 1.0, 0).admitted);
  std::vector<scope> none{key("none")};
  auto n = l.acquire_at(none, 1.0, 0);
  EXPECT_TRUE(n.admitted);
  EXPECT_EQ(n.states[0].limit_requests, -1);
  EXPECT_EQ(l.sweep_at(0), 0u);  // an unlimited scope is never stored
}

TEST(LocalLimiter, TpmRefusesOnceTheTokensReachTheLimit) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("t", -1, 100)};
  auto d = l.acquire_at(v, 1.0, 0);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].limit_tokens, 100);
  EXPECT_EQ(d.states[0].remaining_tokens, 100);
  EXPECT_EQ(d.states[0].reset_tokens_ms, 0);    // nothing counted yet
  EXPECT_EQ(d.states[0].limit_requests, -1);    // no rpm: requests not counted
  l.release_at(v, token_usage{30, 69}, 5'000);  // 99 < 100: still admits
  d = l.acquire_at(v, 1.0, 6'000);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].remaining_tokens, 1);
  EXPECT_EQ(d.states[0].reset_tokens_ms, 66'000 - 6'000);
  l.release_at(v, token_usage{0, 50}, 20'000);  // 149 >= 100
  d = l.acquire_at(v, 1.0, 21'000);
  ASSERT_FALSE(d.admitted);
  EXPECT_EQ(d.refused_kind, kind::tokens);
  EXPECT_EQ(d.limit, 100);
  EXPECT_EQ(d.current, 149);
  EXPECT_EQ(d.retry_after_ms, 66'000 - 21'000);  // the 99 of bucket 5 must leave
  EXPECT_EQ(d.states[0].remaining_tokens, 0);
  EXPECT_EQ(d.states[0].reset_tokens_ms, 81'000 - 21'000);
  EXPECT_FALSE(l.acquire_at(v, 1.0, 65'999).admitted);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 66'000).admitted);  // 50 left
}

TEST(LocalLimiter, TokensCountOnReleaseByKind) {
  local_limiter l(win(60'000, 60));
  auto s = key("t", -1, 100);
  s.counts = token_count::output;
  std::vector<scope> v{s};
  ASSERT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  l.release_at(v, token_usage{1000, 60}, 10);  // only the 60 output tokens count
  auto d = l.acquire_at(v, 1.0, 20);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].remaining_tokens, 40);
  l.release_at(v, token_usage{0, 40}, 30);
  d = l.acquire_at(v, 1.0, 40);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused_kind, kind::tokens);
  EXPECT_EQ(d.current, 100);

  v[0].counts = token_count::input;
  local_limiter l2(win(60'000, 60));
  ASSERT_TRUE(l2.acquire_at(v, 1.0, 0).admitted);
  l2.release_at(v, token_usage{99, 1000}, 1);
  EXPECT_TRUE(l2.acquire_at(v, 1.0, 2).admitted);
  l2.release_at(v, token_usage{1, 0}, 3);
  EXPECT_FALSE(l2.acquire_at(v, 1.0, 4).admitted);

  v[0].counts = token_count::total;
  local_limiter l3(win(60'000, 60));
  ASSERT_TRUE(l3.acquire_at(v, 1.0, 0).admitted);
  l3.release_at(v, token_usage{50, 49}, 1);
  d = l3.acquire_at(v, 1.0, 2);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].remaining_tokens, 1);
  l3.release_at(v, token_usage{1, 0}, 3);
  EXPECT_FALSE(l3.acquire_at(v, 1.0, 4).admitted);

  // Negative usage never subtracts; tokens without a tpm are not counted.
  local_limiter l4(win(60'000, 60));
  std::vector<scope> both{key("with", -1, 10), key("without", 5)};
  ASSERT_TRUE(l4.acquire_at(both, 1.0, 0).admitted);
  l4.release_at(both, token_usage{-100, 0}, 1);
  d = l4.acquire_at(both, 1.0, 2);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].remaining_tokens, 10);
  EXPECT_EQ(d.states[1].limit_tokens, -1);
}

TEST(LocalLimiter, AddTokensWithoutAnAcquire) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("x", -1, 10), key("y", 5)};
  l.add_tokens_at(v, token_usage{4, 6}, 0);  // x: 10 of 10; y has no tpm
  auto d = l.acquire_at(v, 1.0, 1);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 0);
  EXPECT_EQ(d.refused_kind, kind::tokens);
  EXPECT_EQ(d.states[1].remaining_requests, 5);  // y not counted
}

TEST(LocalLimiter, ParallelIsReleasedAndNeverBelowZero) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("p", -1, -1, 2)};
  EXPECT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  auto d = l.acquire_at(v, 1.0, 0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused_kind, kind::parallel);
  EXPECT_EQ(d.limit, 2);
  EXPECT_EQ(d.current, 2);
  EXPECT_EQ(d.retry_after_ms, 1'000);  // a hint
  l.release_at(v, {}, 1);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 1).admitted);
  EXPECT_FALSE(l.acquire_at(v, 1.0, 1).admitted);
  for (int i = 0; i < 5; ++i) l.release_at(v, {}, 2);  // more releases than acquires
  EXPECT_TRUE(l.acquire_at(v, 1.0, 3).admitted);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 3).admitted);
  EXPECT_FALSE(l.acquire_at(v, 1.0, 3).admitted);  // still 2, not 2 + the extra releases
}

TEST(LocalLimiter, AllOrNothing) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> both{key("a", 10), key("b", 1)};
  EXPECT_TRUE(l.acquire_at(both, 1.0, 0).admitted);
  auto d = l.acquire_at(both, 1.0, 1);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 1);
  EXPECT_EQ(d.states[0].remaining_requests, 9);  // best-effort state of the other scope
  // "a" counted once only: 9 more fit.
  std::vector<scope> a{key("a", 10)};
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(l.acquire_at(a, 1.0, 2).admitted);
  EXPECT_FALSE(l.acquire_at(a, 1.0, 2).admitted);

  // A parallel refusal in a later scope leaves the earlier ones uncounted too.
  local_limiter m(win(60'000, 60));
  std::vector<scope> mixed{key("r", 2, -1, 5), key("p", -1, -1, 1)};
  ASSERT_TRUE(m.acquire_at(mixed, 1.0, 0).admitted);
  d = m.acquire_at(mixed, 1.0, 0);
  ASSERT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 1);
  EXPECT_EQ(d.refused_kind, kind::parallel);
  m.release_at(mixed, {}, 1);
  ASSERT_TRUE(m.acquire_at(mixed, 1.0, 1).admitted);  // r: the refusal did not count
  d = m.acquire_at({key("r", 2, -1, 5)}, 1.0, 1);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused_kind, kind::requests);
  EXPECT_EQ(d.current, 2);
}

TEST(LocalLimiter, FirstRefusalWinsInScopeOrderThenKindOrder) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("one", 1, 1, 1), key("two", 1)};
  ASSERT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  l.release_at({key("one", 1, 1, -1)}, token_usage{5, 5}, 0);  // tokens over, still one in flight
  auto d = l.acquire_at(v, 1.0, 1);
  ASSERT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 0);  // both scopes are over: the first one is named
  EXPECT_EQ(d.refused_kind, kind::requests);  // rpm before tpm before parallel
  std::vector<scope> tp{key("one", -1, 1, 1)};
  d = l.acquire_at(tp, 1.0, 1);
  EXPECT_EQ(d.refused_kind, kind::tokens);
  EXPECT_EQ(d.current, 10);
  std::vector<scope> p{key("one", -1, -1, 1)};
  d = l.acquire_at(p, 1.0, 1);
  EXPECT_EQ(d.refused_kind, kind::parallel);
}

TEST(LocalLimiter, ShareScalesLimits) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("s", 100)};
  int admitted = 0;
  decision last;
  for (int i = 0; i < 100; ++i) {
    last = l.acquire_at(v, 0.34, 0);
    admitted += last.admitted;
  }
  EXPECT_EQ(admitted, 34);
  EXPECT_EQ(last.limit, 34);  // the scaled limit is reported
  std::vector<scope> small{key("small", 5)};
  auto d = l.acquire_at(small, 0.01, 0);
  EXPECT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].limit_requests, 1);
  EXPECT_FALSE(l.acquire_at(small, 0.01, 0).admitted);
  std::vector<scope> zero{key("zero", 0, 0, 0)};
  d = l.acquire_at(zero, 0.5, 0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.limit, 0);
  // tpm and max_parallel scale too; share 1 leaves limits alone.
  std::vector<scope> t{key("tk", -1, 1'000, 10)};
  d = l.acquire_at(t, 0.25, 0);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].limit_tokens, 250);
  int in_flight = 1;
  while (l.acquire_at(t, 0.25, 0).admitted) ++in_flight;
  EXPECT_EQ(in_flight, 3);  // ceil(10 * 0.25)
  std::vector<scope> whole{key("whole", 7)};
  d = l.acquire_at(whole, 1.0, 0);
  EXPECT_EQ(d.states[0].limit_requests, 7);
}

TEST(LocalLimiter, StatesForEveryScope) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("key", 10, 1'000), key("user"), key("team", 3, -1, 4)};
  auto d = l.acquire_at(v, 1.0, 30'500);
  ASSERT_TRUE(d.admitted);
  ASSERT_EQ(d.states.size(), 3u);
  EXPECT_EQ(d.states[0].limit_requests, 10);
  EXPECT_EQ(d.states[0].remaining_requests, 9);
  EXPECT_EQ(d.states[0].reset_requests_ms, 91'000 - 30'500);  // bucket 30 leaves at 91 s
  EXPECT_EQ(d.states[0].limit_tokens, 1'000);
  EXPECT_EQ(d.states[0].remaining_tokens, 1'000);
  EXPECT_EQ(d.states[1].limit_requests, -1);
  EXPECT_EQ(d.states[1].remaining_requests, -1);
  EXPECT_EQ(d.states[1].limit_tokens, -1);
  EXPECT_EQ(d.states[2].limit_requests, 3);
  EXPECT_EQ(d.states[2].remaining_requests, 2);
  EXPECT_EQ(d.states[2].limit_tokens, -1);
  l.release_at(v, token_usage{100, 200}, 40'000);
  d = l.acquire_at(v, 1.0, 45'000);
  ASSERT_TRUE(d.admitted);
  EXPECT_EQ(d.states[0].remaining_requests, 8);
  EXPECT_EQ(d.states[0].reset_requests_ms, 106'000 - 45'000);  // the newest request leaves last
  EXPECT_EQ(d.states[0].remaining_tokens, 700);
  EXPECT_EQ(d.states[0].reset_tokens_ms, 101'000 - 45'000);
}

TEST(LocalLimiter, SweepForgetsIdleScopesOnly) {
  local_limiter l(win(1'000, 10));  // 100 ms buckets, 11 counted
  std::vector<scope> v{key("x", 5)};
  std::vector<scope> busy{key("busy", -1, -1, 3)};
  std::vector<scope> tok{key("tok", -1, 100)};
  l.acquire_at(v, 1.0, 0);
  l.acquire_at(busy, 1.0, 0);
  l.acquire_at(tok, 1.0, 0);
  l.release_at(tok, token_usage{1, 1}, 900);
  EXPECT_EQ(l.sweep_at(500), 3u);
  EXPECT_EQ(l.sweep_at(1'100), 2u);  // x left its window; busy is in flight; tok has tokens
  EXPECT_EQ(l.sweep_at(2'000), 1u);  // tokens left; busy still in flight
  l.release_at(busy, {}, 2'000);
  EXPECT_EQ(l.sweep_at(2'000), 0u);
  // A swept scope starts over.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.acquire_at(v, 1.0, 3'000).admitted);
  EXPECT_FALSE(l.acquire_at(v, 1.0, 3'000).admitted);
}

TEST(LocalLimiter, TokensOfARequestOutlivingItsSweptScopeStillCount) {
  local_limiter l(win(1'000, 10));
  std::vector<scope> v{key("long", -1, 10)};
  ASSERT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  EXPECT_EQ(l.sweep_at(5'000), 0u);  // nothing counted, nothing in flight (no max_parallel)
  l.release_at(v, token_usage{0, 10}, 6'000);
  auto d = l.acquire_at(v, 1.0, 6'001);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.current, 10);
}

TEST(LocalLimiter, RefusalMessageNamesScopeAndLimit) {
  window_settings minute = win(60'000, 60);
  std::vector<scope> v{key("other"), key("x")};
  v[1].label = "api_key 'my-alias'";
  decision d;
  d.refused = 1;
  d.refused_kind = kind::requests;
  d.limit = 100;
  d.current = 100;
  d.retry_after_ms = 12'345;
  EXPECT_EQ(refusal_message(v, d, minute),
            "Rate limit exceeded for api_key 'my-alias': requests limit 100 per 60s reached (current 100). "
            "Retry after 12.345s.");
  d.refused_kind = kind::tokens;
  d.limit = 5'000;
  d.current = 5'210;
  d.retry_after_ms = 2'000;
  EXPECT_EQ(refusal_message(v, d, win(2'500, 5)),
            "Rate limit exceeded for api_key 'my-alias': tokens limit 5000 per 2.5s reached (current 5210). "
            "Retry after 2s.");
  d.refused_kind = kind::parallel;
  d.limit = 5;
  d.current = 5;
  d.retry_after_ms = 1'000;
  EXPECT_EQ(refusal_message(v, d, minute),
            "Rate limit exceeded for api_key 'my-alias': max_parallel_requests 5 reached (in flight 5). "
            "Retry after 1s.");
  d.retry_after_ms = 10;
  EXPECT_NE(refusal_message(v, d, minute).find("Retry after 0.01s."), std::string::npos);
  d.retry_after_ms = 0;  // never "0s"
  EXPECT_NE(refusal_message(v, d, minute).find("Retry after 0.001s."), std::string::npos);

  EXPECT_STREQ(kind_name(kind::requests), "requests");
  EXPECT_STREQ(kind_name(kind::tokens), "tokens");
  EXPECT_STREQ(kind_name(kind::parallel), "parallel requests");

  // From a real refusal.
  local_limiter l(minute);
  std::vector<scope> a{key("alice", 1)};
  l.acquire_at(a, 1.0, 0);
  auto r = l.acquire_at(a, 1.0, 0);
  EXPECT_EQ(refusal_message(a, r, l.window()),
            "Rate limit exceeded for api_key 'alice': requests limit 1 per 60s reached (current 1). Retry after 61s.");
}

TEST(LocalLimiter, ExactUnderThreads) {
  local_limiter l(win(60'000, 60));
  std::atomic<int> admitted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      std::vector<scope> shared{key("shared", 5'000)};
      for (int i = 0; i < 10'000; ++i) admitted += l.acquire_at(shared, 1.0, 1'000).admitted;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(admitted.load(), 5'000);
}

TEST(LocalLimiter, OverlappingScopeSetsInOppositeOrdersDoNotDeadlock) {
  // Ids in distinct stripes (the limiter stripes by std::hash % 16), so that locking in
  // the order given would deadlock between the two orders.
  std::vector<std::string> ids;
  std::set<std::size_t> stripes;
  for (int i = 0; ids.size() < 4; ++i) {
    auto id = "scope-" + std::to_string(i);
    if (stripes.insert(std::hash<std::string>{}(id) % 16).second) ids.push_back(id);
  }
  std::vector<scope> forward{key(ids[0], 4'000), key(ids[1], 1'000'000), key(ids[2], 1'000'000, -1, 1'000'000),
                             key(ids[3], 1'000'000)};
  std::vector<scope> backward(forward.rbegin(), forward.rend());
  local_limiter l(win(60'000, 60));
  std::atomic<int> admitted{0};
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      const auto& mine = t % 2 ? backward : forward;
      for (int i = 0; i < 10'000; ++i) {
        auto d = l.acquire_at(mine, 1.0, 1'000);
        if (d.admitted) {
          ++admitted;
          l.release_at(mine, {}, 1'000);
        }
      }
      std::lock_guard g(m);
      ++done;
      cv.notify_all();
    });
  {
    std::unique_lock g(m);
    if (!cv.wait_for(g, std::chrono::seconds(60), [&] { return done == 4; })) {
      std::fprintf(stderr, "deadlock: the threads did not finish in 60 s\n");
      std::abort();
    }
  }
  for (auto& t : ts) t.join();
  // Every request includes ids[0] (rpm 4000): exactly 4000 admitted, and counted
  // exactly once in every other scope (all-or-nothing under contention).
  EXPECT_EQ(admitted.load(), 4'000);
  for (const auto& sc : forward) {
    auto d = l.acquire_at({sc}, 1.0, 1'000);
    EXPECT_EQ(d.states[0].remaining_requests, sc.rpm - 4'000 - (d.admitted ? 1 : 0)) << sc.id;
  }
}
