// The conservative sliding window and the in-process limiter.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
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

}  // namespace

TEST(SlidingWindow, CountsTheCurrentBucketAndTheWindowBeforeIt) {
  sliding_window w(win(10'000, 10));  // 1 s buckets, 11 counted
  w.add(500, 3);
  w.add(5'500, 2);
  EXPECT_EQ(w.sum(5'600), 5);
  EXPECT_EQ(w.sum(10'999), 5);   // bucket 0 still counted (buckets 0..10)
  EXPECT_EQ(w.sum(11'000), 2);   // bucket 0 left at the start of bucket 11
  EXPECT_EQ(w.sum(16'000), 0);
  EXPECT_TRUE(w.idle(16'000));
}

TEST(SlidingWindow, TimeUntilAtMost) {
  sliding_window w(win(10'000, 10));
  w.add(500, 3);
  w.add(5'500, 2);
  EXPECT_EQ(w.ms_until_at_most(6'000, 5), 0);
  EXPECT_EQ(w.ms_until_at_most(6'000, 4), 11'000 - 6'000);  // bucket 0 must leave
  EXPECT_EQ(w.ms_until_at_most(6'000, 0), 16'000 - 6'000);  // bucket 5 must leave
}

TEST(SlidingWindow, LongIdleGapAndTimeGoingBackwards) {
  sliding_window w(win(1'000, 4));
  w.add(100, 7);
  EXPECT_EQ(w.sum(1'000'000), 0);
  w.add(1'000'000, 1);
  EXPECT_EQ(w.sum(999'000), 1);  // backwards: stays at the newest bucket
}

TEST(SlidingWindow, NeverMoreThanTheLimitInAnyWindowLongInterval) {
  // Random arrivals against an exact reference: admit while sum()+1 <= limit; then
  // every [t, t + window) of the admitted times holds at most `limit`.
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    const std::int64_t window = 1'000 + rng() % 5'000;
    const int buckets = 1 + static_cast<int>(rng() % 20);
    const std::int64_t limit = 1 + rng() % 20;
    sliding_window w(win(window, buckets));
    std::vector<std::int64_t> admitted;
    std::int64_t t = 0;
    for (int i = 0; i < 3'000; ++i) {
      t += rng() % (window / 10 + 1);
      if (w.sum(t) + 1 <= limit) {
        w.add(t, 1);
        admitted.push_back(t);
      }
    }
    ASSERT_FALSE(admitted.empty());
    for (std::size_t i = 0; i < admitted.size(); ++i) {
      auto end = std::lower_bound(admitted.begin(), admitted.end(), admitted[i] + window);
      ASSERT_LE(end - (admitted.begin() + static_cast<std::ptrdiff_t>(i)), limit)
          << "window " << window << " buckets " << buckets << " at " << admitted[i];
    }
  }
}

TEST(LocalLimiter, RpmAdmitsTheLimitThenRefusesWithRetryAfter) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> s{key("k", 3)};
  for (int i = 0; i < 3; ++i) {
    auto d = l.acquire_at(s, 1.0, 1'000 + i);
    ASSERT_TRUE(d.admitted);
    EXPECT_EQ(d.states[0].limit_requests, 3);
    EXPECT_EQ(d.states[0].remaining_requests, 2 - i);
    EXPECT_GT(d.states[0].reset_requests_ms, 0);
  }
  auto d = l.acquire_at(s, 1.0, 2'000);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 0);
  EXPECT_EQ(d.refused_kind, kind::requests);
  EXPECT_EQ(d.limit, 3);
  EXPECT_EQ(d.current, 3);
  EXPECT_EQ(d.retry_after_ms, 62'000 - 2'000);  // bucket 1 leaves when bucket 62 begins
  EXPECT_TRUE(l.acquire_at(s, 1.0, 62'000).admitted);
}

TEST(LocalLimiter, AllOrNothing) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> both{key("a", 10), key("b", 1)};
  EXPECT_TRUE(l.acquire_at(both, 1.0, 0).admitted);
  auto d = l.acquire_at(both, 1.0, 1);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused, 1);
  // "a" counted once only: 9 more fit.
  std::vector<scope> a{key("a", 10)};
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(l.acquire_at(a, 1.0, 2).admitted);
  EXPECT_FALSE(l.acquire_at(a, 1.0, 2).admitted);
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
}

TEST(LocalLimiter, ParallelIsReleased) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("p", -1, -1, 2)};
  EXPECT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 0).admitted);
  auto d = l.acquire_at(v, 1.0, 0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.refused_kind, kind::parallel);
  l.release_at(v, {}, 1);
  EXPECT_TRUE(l.acquire_at(v, 1.0, 1).admitted);
}

TEST(LocalLimiter, ShareScalesLimits) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("s", 100)};
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += l.acquire_at(v, 0.34, 0).admitted;
  EXPECT_EQ(admitted, 34);
  std::vector<scope> small{key("small", 5)};
  EXPECT_TRUE(l.acquire_at(small, 0.01, 0).admitted);
  EXPECT_FALSE(l.acquire_at(small, 0.01, 0).admitted);
  std::vector<scope> zero{key("zero", 0)};
  EXPECT_FALSE(l.acquire_at(zero, 1.0, 0).admitted);
}

TEST(LocalLimiter, SweepForgetsIdleScopes) {
  local_limiter l(win(1'000, 10));
  std::vector<scope> v{key("x", 5)};
  l.acquire_at(v, 1.0, 0);
  EXPECT_EQ(l.sweep_at(500), 1u);
  EXPECT_EQ(l.sweep_at(5'000), 0u);
}

TEST(LocalLimiter, RefusalMessageNamesScopeAndLimit) {
  local_limiter l(win(60'000, 60));
  std::vector<scope> v{key("alice", 1)};
  l.acquire_at(v, 1.0, 0);
  auto d = l.acquire_at(v, 1.0, 0);
  auto m = refusal_message(v, d, l.window());
  EXPECT_NE(m.find("api_key 'alice'"), std::string::npos) << m;
  EXPECT_NE(m.find("requests limit 1 per 60s"), std::string::npos) << m;
  EXPECT_NE(m.find("Retry after 61s"), std::string::npos) << m;
}

TEST(LocalLimiter, ExactUnderThreadsAndNoDeadlock) {
  local_limiter l(win(60'000, 60));
  std::atomic<int> admitted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::vector<scope> shared{key("shared", 5'000)};
      std::vector<scope> ab{key("a" + std::to_string(t % 2), 1'000'000), key("b" + std::to_string(1 - t % 2), 1'000'000)};
      for (int i = 0; i < 10'000; ++i) {
        admitted += l.acquire_at(shared, 1.0, 1'000).admitted;
        l.acquire_at(ab, 1.0, 1'000);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(admitted.load(), 5'000);
}
