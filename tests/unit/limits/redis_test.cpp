// redis_limiter against a real redis-server (Debian's) started per test on an ephemeral
// port in a temporary directory (tests/unit/redis/redis_server.hpp).
#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gw/core/log.hpp"
#include "gw/limits/redis.hpp"
#include "redis_server.hpp"

using namespace gw::limits;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using gw::redis::test::free_port;
using gw::redis::test::raw_client;
using gw::redis::test::redis_server;
using gw::redis::test::run_for;
using gw::redis::test::run_until;

namespace {

redis_settings settings(int port, std::string node, std::size_t thread = 0) {
  redis_settings s;
  s.port = port;
  s.node_id = std::move(node);
  s.thread = thread;
  s.timeout = 200ms;
  s.connect_timeout = 300ms;
  s.reconnect_min = 20ms;
  s.reconnect_max = 100ms;
  s.heartbeat = 100ms;
  s.window.window_ms = 60'000;
  s.window.buckets = 60;
  return s;
}

struct outcome {
  bool called = false;
  int calls = 0;
  std::optional<decision> d;
};

/// One acquire, waited for (the callback must run exactly once).
std::optional<decision> acquire_sync(boost::asio::io_context& io, redis_limiter& l, const std::vector<scope>& s,
                                     std::chrono::milliseconds limit = 5s) {
  auto o = std::make_shared<outcome>();
  l.acquire(s, [o](std::optional<decision> d) {
    ++o->calls;
    o->called = true;
    o->d = std::move(d);
  });
  EXPECT_FALSE(o->called) << "acquire called back synchronously";
  EXPECT_TRUE(run_until(io, [&] { return o->called; }, limit)) << "no callback";
  EXPECT_EQ(o->calls, 1);
  return o->d;
}

bool admitted(const std::optional<decision>& d) { return d && d->admitted; }

scope sc(std::string id, std::int64_t rpm = -1, std::int64_t tpm = -1, std::int64_t par = -1) {
  scope s;
  s.id = std::move(id);
  s.label = s.id;
  s.rpm = rpm;
  s.tpm = tpm;
  s.max_parallel = par;
  return s;
}

class RedisLimiterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gw::log::set_level(gw::log::level::off); }
  void SetUp() override { server_ = std::make_unique<redis_server>(free_port()); }
  int port() const { return server_->port(); }
  /// A started limiter, up.
  std::unique_ptr<redis_limiter> make(boost::asio::io_context& io, redis_settings s) {
    auto l = std::make_unique<redis_limiter>(io, std::move(s));
    l->start();
    EXPECT_TRUE(run_until(io, [&] { return l->up(); })) << "not up";
    return l;
  }
  std::unique_ptr<redis_server> server_;
};

}  // namespace

TEST_F(RedisLimiterTest, RpmAdmitsExactlyTheLimitThenRefuses) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "n1"));
  std::vector<scope> s{sc("key:rpm", 5)};
  for (int i = 0; i < 5; ++i) {
    auto d = acquire_sync(io, *l, s);
    ASSERT_TRUE(admitted(d)) << i;
    ASSERT_EQ(d->states.size(), 1u);
    EXPECT_EQ(d->states[0].limit_requests, 5);
    EXPECT_EQ(d->states[0].remaining_requests, 4 - i);
    EXPECT_GT(d->states[0].reset_requests_ms, 0);
    EXPECT_LE(d->states[0].reset_requests_ms, 61'000);
    EXPECT_EQ(d->states[0].limit_tokens, -1);
    EXPECT_EQ(d->states[0].remaining_tokens, -1);
  }
  auto d = acquire_sync(io, *l, s);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 0);
  EXPECT_EQ(d->refused_kind, kind::requests);
  EXPECT_EQ(d->limit, 5);
  EXPECT_EQ(d->current, 5);
  // The end of the bucket that must leave: at most a window plus one bucket away.
  EXPECT_GT(d->retry_after_ms, 0);
  EXPECT_LE(d->retry_after_ms, 61'000);
  EXPECT_GT(d->retry_after_ms, 59'000);  // all five are in the current (1 s) bucket
  EXPECT_TRUE(l->up());
  EXPECT_EQ(l->status().live_nodes, 1u);
}

TEST_F(RedisLimiterTest, RefusalNamesTheRefusingScopeAndCountsNothing) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "n1"));
  // Scope 2 refuses: scope 1 (requests and in flight) is not counted.
  std::vector<scope> both{sc("s1", 1, -1, 1), sc("s2", 0)};
  auto d = acquire_sync(io, *l, both);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 1);
  EXPECT_EQ(d->refused_kind, kind::requests);
  EXPECT_EQ(d->limit, 0);
  EXPECT_EQ(d->current, 0);
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("s1", 1, -1, 1)}))) << "s1 was counted by a refused request";
  // First refusal in scope order wins.
  d = acquire_sync(io, *l, {sc("a", 0), sc("b", 0)});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->refused, 0);
  // No limited scope at all: admitted without a round trip.
  auto before = l->status().commands;
  d = acquire_sync(io, *l, {sc("free"), sc("free2")});
  ASSERT_TRUE(admitted(d));
  EXPECT_EQ(d->states.size(), 2u);
  EXPECT_EQ(l->status().commands, before);
}

TEST_F(RedisLimiterTest, ThreeLimitersShareOneLimitExactly) {
  std::atomic<int> admitted_n{0}, answered{0}, ready{0};
  std::vector<std::thread> ts;
  for (int n = 0; n < 3; ++n)
    ts.emplace_back([&, n] {
      boost::asio::io_context io;
      auto st = settings(port(), "node" + std::to_string(n));
      st.precheck = false;
      redis_limiter l(io, st);
      l.start();
      if (!run_until(io, [&] { return l.up(); })) return;
      ++ready;
      run_until(io, [&] { return ready.load() == 3; });
      std::vector<scope> s{sc("key:shared", 100)};
      int pending = 0;
      for (int i = 0; i < 80; ++i) {  // pipelined
        ++pending;
        l.acquire(s, [&](std::optional<decision> d) {
          --pending;
          ++answered;
          if (admitted(d)) ++admitted_n;
        });
      }
      run_until(io, [&] { return pending == 0; });
      l.stop();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(answered.load(), 240);
  EXPECT_EQ(admitted_n.load(), 100);
}

TEST_F(RedisLimiterTest, WindowSlidesAndNeverAdmitsMoreThanTheLimitPerWindow) {
  boost::asio::io_context io;
  auto st = settings(port(), "n1");
  st.window.window_ms = 1'000;
  st.window.buckets = 4;  // 250 ms buckets
  st.precheck = false;
  auto l = make(io, st);
  const std::int64_t limit = 5;
  std::vector<scope> s{sc("key:slide", limit)};
  struct sample {
    steady::time_point sent, answered;
  };
  std::vector<sample> ok;
  int refused = 0;
  auto end = steady::now() + 3'200ms;
  while (steady::now() < end) {
    auto sent = steady::now();
    auto d = acquire_sync(io, *l, s);
    ASSERT_TRUE(d);
    if (d->admitted) {
      ok.push_back({sent, steady::now()});
    } else {
      ++refused;
      EXPECT_EQ(d->refused_kind, kind::requests);
      EXPECT_GT(d->retry_after_ms, 0);
      EXPECT_LE(d->retry_after_ms, 1'250);  // a window plus one bucket at most
    }
    run_for(io, 20ms);
  }
  EXPECT_GT(refused, 0);
  // After the window passed, requests are admitted again: at least 3 windows' worth.
  EXPECT_GE(static_cast<std::int64_t>(ok.size()), 3 * limit);
  // Never more than `limit` in any window-long interval: requests i and j surely lie
  // within one window on Redis's clock when j's answer came less than a window after
  // i was sent.
  for (std::size_t j = 0; j < ok.size(); ++j) {
    std::int64_t in_window = 0;
    for (std::size_t i = 0; i <= j; ++i)
      if (ok[j].answered - ok[i].sent < 1'000ms) ++in_window;
    EXPECT_LE(in_window, limit) << "at admission " << j;
  }
  // A refused caller retrying after retry_after is admitted.
  std::optional<decision> d;
  do {
    d = acquire_sync(io, *l, s);
    ASSERT_TRUE(d);
  } while (d->admitted);
  run_for(io, std::chrono::milliseconds(d->retry_after_ms + 5));
  EXPECT_TRUE(admitted(acquire_sync(io, *l, s)));
}

TEST_F(RedisLimiterTest, TokensAreAddedOnReleaseAndRefuseAtTheLimit) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "n1"));
  auto out = sc("tok:out", -1, 100);
  out.counts = token_count::output;
  auto in = sc("tok:in", -1, 1000);
  in.counts = token_count::input;
  auto total = sc("tok:total", -1, 1000);
  std::vector<scope> s{out, in, total};
  auto d = acquire_sync(io, *l, s);
  ASSERT_TRUE(admitted(d));
  EXPECT_EQ(d->states[0].limit_tokens, 100);
  EXPECT_EQ(d->states[0].remaining_tokens, 100);
  EXPECT_EQ(d->states[0].reset_tokens_ms, 0);
  EXPECT_TRUE(l->release(s, token_usage{500, 60}));
  d = acquire_sync(io, *l, s);  // the release was sent first: it is counted
  ASSERT_TRUE(admitted(d));
  EXPECT_EQ(d->states[0].remaining_tokens, 40);
  EXPECT_EQ(d->states[1].remaining_tokens, 500);
  EXPECT_EQ(d->states[2].remaining_tokens, 440);
  EXPECT_GT(d->states[0].reset_tokens_ms, 0);
  EXPECT_LE(d->states[0].reset_tokens_ms, 61'000);
  EXPECT_TRUE(l->release(s, token_usage{0, 40}));
  d = acquire_sync(io, *l, s);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 0);
  EXPECT_EQ(d->refused_kind, kind::tokens);
  EXPECT_EQ(d->limit, 100);
  EXPECT_EQ(d->current, 100);
  EXPECT_GT(d->retry_after_ms, 0);
  EXPECT_LE(d->retry_after_ms, 61'000);
  // A release with nothing to write (no tokens, no in-flight limit) costs no round trip.
  auto before = l->status().commands;
  EXPECT_TRUE(l->release({sc("rpm-only", 10)}, token_usage{5, 5}));
  EXPECT_EQ(l->status().commands, before);
}

TEST_F(RedisLimiterTest, MaxParallelAcrossTwoLimitersAndPipelined) {
  boost::asio::io_context io;
  auto a = make(io, settings(port(), "na"));
  auto b = make(io, settings(port(), "nb"));
  std::vector<scope> p{sc("par", -1, -1, 2)};
  EXPECT_TRUE(admitted(acquire_sync(io, *a, p)));
  EXPECT_TRUE(admitted(acquire_sync(io, *b, p)));
  auto d = acquire_sync(io, *a, p);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused_kind, kind::parallel);
  EXPECT_EQ(d->limit, 2);
  EXPECT_EQ(d->current, 2);
  EXPECT_EQ(d->retry_after_ms, 1000);
  EXPECT_FALSE(a->precheck(p)) << "parallel refusals are not pre-checked";
  EXPECT_TRUE(b->release(p, {}));
  EXPECT_TRUE(admitted(acquire_sync(io, *a, p)));
  EXPECT_TRUE(a->release(p, {}));
  EXPECT_TRUE(a->release(p, {}));

  // Pipelined acquires from one thread carry increasing counts: exactly 3 of 6.
  std::vector<scope> q{sc("par3", -1, -1, 3)};
  for (int round = 0; round < 2; ++round) {
    int pending = 0, ok = 0;
    for (int i = 0; i < 6; ++i) {
      ++pending;
      a->acquire(q, [&](std::optional<decision> d) {
        --pending;
        if (admitted(d)) ++ok;
      });
    }
    ASSERT_TRUE(run_until(io, [&] { return pending == 0; }));
    EXPECT_EQ(ok, 3) << "round " << round;
    // The refused ones took their counts back: the other node sees 3 in flight.
    auto bd = acquire_sync(io, *b, q);
    ASSERT_TRUE(bd);
    EXPECT_FALSE(bd->admitted);
    EXPECT_EQ(bd->current, 3);
    for (int i = 0; i < ok; ++i) EXPECT_TRUE(a->release(q, {}));
  }
  run_for(io, 50ms);
  raw_client raw(port());
  EXPECT_EQ(raw.run({"HEXISTS", "{llm-gateway}:p:par3", "na/0"}), "0") << "a zero count leaves no field";
  EXPECT_TRUE(admitted(acquire_sync(io, *b, q)));
}

TEST_F(RedisLimiterTest, DeadNodesInFlightCountIsIgnored) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "n1"));
  raw_client raw(port());
  auto now = raw.now_ms();
  raw.run({"ZADD", "{llm-gateway}:nodes", std::to_string(now - 20'000), "ghost"});
  raw.run({"ZADD", "{llm-gateway}:nodes", std::to_string(now), "live"});
  raw.run({"HSET", "{llm-gateway}:p:dead", "ghost/0", "5"});
  raw.run({"HSET", "{llm-gateway}:p:busy", "live/3", "1", "ghost/1", "7"});
  // The ghost's 5 do not count (and its field goes); the live node's 1 does.
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("dead", -1, -1, 1)})));
  EXPECT_EQ(raw.run({"HEXISTS", "{llm-gateway}:p:dead", "ghost/0"}), "0");
  EXPECT_EQ(raw.run({"HGET", "{llm-gateway}:p:dead", "n1/0"}), "1");
  auto d = acquire_sync(io, *l, {sc("busy", -1, -1, 1)});
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused_kind, kind::parallel);
  EXPECT_EQ(d->current, 1);
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("busy", -1, -1, 2)})));
}

TEST_F(RedisLimiterTest, LiveNodesCountsHeartbeatingNodes) {
  boost::asio::io_context io;
  auto a = make(io, settings(port(), "na"));
  raw_client raw(port());
  raw.run({"ZADD", "{llm-gateway}:nodes", std::to_string(raw.now_ms() - 30'000), "gone"});
  run_for(io, 250ms);
  EXPECT_EQ(a->status().live_nodes, 1u);
  auto b = make(io, settings(port(), "nb", 1));
  auto c = make(io, settings(port(), "nb", 2));  // another thread of the same node
  EXPECT_TRUE(run_until(io, [&] { return a->status().live_nodes == 2 && b->status().live_nodes == 2; }, 2s));
  EXPECT_EQ(a->status().live_nodes, 2u);
  EXPECT_EQ(c->status().live_nodes, 2u);
}

TEST_F(RedisLimiterTest, PrecheckRefusesWithoutARoundTripUntilTheRetryTime) {
  boost::asio::io_context io;
  auto st = settings(port(), "n1");
  st.window.window_ms = 1'000;
  st.window.buckets = 4;
  auto l = make(io, st);
  std::vector<scope> s{sc("other", 100), sc("key:pre", 2)};
  EXPECT_FALSE(l->precheck(s));
  ASSERT_TRUE(admitted(acquire_sync(io, *l, s)));
  ASSERT_TRUE(admitted(acquire_sync(io, *l, s)));
  auto d = acquire_sync(io, *l, s);
  ASSERT_TRUE(d);
  ASSERT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 1);

  auto before = l->status();
  auto p = l->precheck(s);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->admitted);
  EXPECT_EQ(p->refused, 1);
  EXPECT_EQ(p->refused_kind, kind::requests);
  EXPECT_EQ(p->limit, 2);
  EXPECT_EQ(p->current, 2);
  EXPECT_GT(p->retry_after_ms, 0);
  EXPECT_LE(p->retry_after_ms, d->retry_after_ms);
  EXPECT_EQ(p->states.size(), 2u);
  auto after = l->status();
  EXPECT_EQ(after.prechecked, before.prechecked + 1);
  EXPECT_EQ(after.commands, before.commands);
  // Other scopes alone are not refused; a changed limit forgets the refusal.
  EXPECT_FALSE(l->precheck({sc("other", 100)}));
  EXPECT_FALSE(l->precheck({sc("key:pre", 3)}));
  ASSERT_TRUE(acquire_sync(io, *l, s));  // refused again: remembered again
  ASSERT_TRUE(l->precheck(s));
  // Once the retry time has come it stops refusing, and Redis admits.
  auto wait = l->precheck(s)->retry_after_ms;
  auto t0 = steady::now();
  run_for(io, std::chrono::milliseconds(wait + 5));
  auto again = l->precheck(s);
  EXPECT_FALSE(again) << "waited " << wait << " ms (" << (steady::now() - t0) / 1ms << " ms), now "
                      << (again ? again->retry_after_ms : 0) << " ms more";
  EXPECT_TRUE(admitted(acquire_sync(io, *l, s)));
}

TEST_F(RedisLimiterTest, PrecheckOffNeverPrechecks) {
  boost::asio::io_context io;
  auto st = settings(port(), "n1");
  st.precheck = false;
  auto l = make(io, st);
  std::vector<scope> s{sc("key:nopre", 1)};
  ASSERT_TRUE(admitted(acquire_sync(io, *l, s)));
  for (int i = 0; i < 3; ++i) {
    auto d = acquire_sync(io, *l, s);
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->admitted);
    EXPECT_FALSE(l->precheck(s));
  }
  EXPECT_EQ(l->status().prechecked, 0u);
}

TEST_F(RedisLimiterTest, HungServerTimesOutAndRecovers) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "nh"));
  server_->pause();
  auto t0 = steady::now();
  auto d = acquire_sync(io, *l, {sc("k", 1000)});
  auto waited = steady::now() - t0;
  EXPECT_FALSE(d);
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 600ms);
  EXPECT_FALSE(l->up());
  EXPECT_FALSE(l->status().up);
  EXPECT_GE(l->status().timeouts, 1u);
  // While down: posted at once, no round trip; release sends nothing.
  auto commands = l->status().commands;
  t0 = steady::now();
  EXPECT_FALSE(acquire_sync(io, *l, {sc("k", 1000)}));
  EXPECT_LT(steady::now() - t0, 50ms);
  EXPECT_FALSE(l->release({sc("k", -1, 10)}, token_usage{1, 1}));
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return l->up(); }, 5s));
  EXPECT_GT(l->status().commands, commands);
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("k", 1000)})));
}

TEST_F(RedisLimiterTest, KilledAndRestartedServerReconnectsAndRewritesInFlight) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "nk"));
  ASSERT_TRUE(admitted(acquire_sync(io, *l, {sc("par", -1, -1, 5)})));
  ASSERT_TRUE(admitted(acquire_sync(io, *l, {sc("par", -1, -1, 5)})));
  server_->kill();
  EXPECT_FALSE(acquire_sync(io, *l, {sc("k", 10)}));
  EXPECT_TRUE(run_until(io, [&] { return !l->up(); }, 1s));
  EXPECT_FALSE(l->release({sc("par", -1, -1, 5)}, {}));  // 1 in flight now
  server_->start();  // empty: no persistence
  ASSERT_TRUE(run_until(io, [&] { return l->up(); }, 5s));
  EXPECT_GE(l->status().reconnects, 1u);
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("k", 10)})));
  raw_client raw(port());
  EXPECT_EQ(raw.run({"HGET", "{llm-gateway}:p:par", "nk/0"}), "1") << "in-flight field not rewritten";
}

TEST_F(RedisLimiterTest, ReleaseWhileDownIsWrittenWhenRedisReturns) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "nr"));
  std::vector<scope> p{sc("par", -1, -1, 1)};
  ASSERT_TRUE(admitted(acquire_sync(io, *l, p)));
  raw_client raw(port());
  EXPECT_EQ(raw.run({"HGET", "{llm-gateway}:p:par", "nr/0"}), "1");
  server_->pause();
  EXPECT_FALSE(acquire_sync(io, *l, {sc("k", 10)}));  // times out
  EXPECT_FALSE(l->up());
  EXPECT_FALSE(l->release(p, {}));
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return l->up(); }, 5s));
  run_for(io, 50ms);
  EXPECT_EQ(raw.run({"HEXISTS", "{llm-gateway}:p:par", "nr/0"}), "0");
  EXPECT_TRUE(admitted(acquire_sync(io, *l, p)));
}

TEST_F(RedisLimiterTest, ScriptFlushedIsReloaded) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "ns"));
  raw_client raw(port());
  EXPECT_EQ(raw.run({"SCRIPT", "FLUSH"}), "OK");
  auto d = acquire_sync(io, *l, {sc("k", 10)});  // NOSCRIPT: nullopt, reloaded
  EXPECT_TRUE(l->up());
  int ok = admitted(d) ? 1 : 0;
  for (int i = 0; i < 3; ++i) ok += admitted(acquire_sync(io, *l, {sc("k", 10)}));
  EXPECT_GE(ok, 3);
  EXPECT_TRUE(l->up());
}

TEST_F(RedisLimiterTest, StopFailsPendingCallbacksOnceAndDestructionDropsThem) {
  boost::asio::io_context io;
  auto l = make(io, settings(port(), "nx"));
  server_->pause();
  int calls = 0, nullopts = 0;
  for (int i = 0; i < 10; ++i)
    l->acquire({sc("k", 10)}, [&](std::optional<decision> d) {
      ++calls;
      if (!d) ++nullopts;
    });
  run_for(io, 20ms);
  EXPECT_EQ(calls, 0);
  l->stop();
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(nullopts, 10);
  EXPECT_FALSE(l->up());
  EXPECT_FALSE(l->release({sc("p", -1, -1, 1)}, {}));
  // After stop: posted nullopt, never synchronous.
  EXPECT_FALSE(acquire_sync(io, *l, {sc("k", 10)}));
  run_for(io, 300ms);  // no reconnect, nothing called again
  EXPECT_EQ(calls, 10);
  server_->resume();

  // Destroyed with commands in flight: their callbacks are dropped, not called.
  auto l2 = make(io, settings(port(), "ny"));
  server_->pause();
  int calls2 = 0;
  for (int i = 0; i < 10; ++i) l2->acquire({sc("k", 10)}, [&](std::optional<decision>) { ++calls2; });
  run_for(io, 20ms);
  l2.reset();
  run_for(io, 300ms);
  EXPECT_EQ(calls2, 0);
  server_->resume();
}

TEST_F(RedisLimiterTest, LateRepliesAfterATimeoutAreIgnored) {
  boost::asio::io_context io;
  auto st = settings(port(), "nl");
  st.timeout = 50ms;
  auto l = make(io, st);
  // Commands pile up, time out, then the server answers all of them late.
  int calls = 0;
  server_->pause();
  for (int i = 0; i < 50; ++i) l->acquire({sc("late", 1000)}, [&](std::optional<decision>) { ++calls; });
  run_for(io, 150ms);
  EXPECT_EQ(calls, 50);
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return l->up(); }, 5s));
  run_for(io, 100ms);
  EXPECT_EQ(calls, 50);
  EXPECT_TRUE(admitted(acquire_sync(io, *l, {sc("late", 1000)})));
}

TEST(RedisLimiterNoServer, NeverBlocksAndKeepsTrying) {
  boost::asio::io_context io;
  auto st = settings(free_port(), "nx");
  redis_limiter l(io, st);
  auto t0 = steady::now();
  l.start();
  EXPECT_LT(steady::now() - t0, 50ms);
  auto d = acquire_sync(io, l, {sc("k", 10)});
  EXPECT_FALSE(d);
  EXPECT_LT(steady::now() - t0, 100ms);
  EXPECT_FALSE(l.up());
  run_for(io, 300ms);
  EXPECT_FALSE(l.up());
  EXPECT_GE(l.status().reconnects, 2u);
  EXPECT_GE(l.status().failures, 2u);
  l.stop();
  auto r = l.status().reconnects;
  run_for(io, 200ms);
  EXPECT_EQ(l.status().reconnects, r) << "reconnecting after stop()";
}

TEST(RedisLimiterNoServer, ServerAppearingLaterIsUsed) {
  gw::log::set_level(gw::log::level::off);
  boost::asio::io_context io;
  int port = free_port();
  redis_limiter l(io, settings(port, "nlate"));
  l.start();
  run_for(io, 100ms);
  EXPECT_FALSE(l.up());
  redis_server server(port);
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }, 3s));
  EXPECT_TRUE(admitted(acquire_sync(io, l, {sc("k", 10)})));
}

TEST(RedisLimiterAuth, PasswordAndWrongPassword) {
  gw::log::set_level(gw::log::level::off);
  redis_server server(free_port(), "s3cret");
  boost::asio::io_context io;
  auto good = settings(server.port(), "good");
  good.password = "s3cret";
  redis_limiter ok(io, good);
  ok.start();
  ASSERT_TRUE(run_until(io, [&] { return ok.up(); }));
  EXPECT_TRUE(admitted(acquire_sync(io, ok, {sc("k", 10)})));

  auto acl = good;  // Redis 6 ACL form: AUTH default <password>
  acl.node_id = "acl";
  acl.username = "default";
  acl.db = 2;
  redis_limiter with_user(io, acl);
  with_user.start();
  ASSERT_TRUE(run_until(io, [&] { return with_user.up(); }));
  EXPECT_TRUE(admitted(acquire_sync(io, with_user, {sc("k", 10)})));
  raw_client raw(server.port(), "s3cret");
  raw.run({"SELECT", "2"});
  EXPECT_EQ(raw.run({"EXISTS", "{llm-gateway}:w:k"}), "1") << "SELECT 2 not used";

  auto bad = good;
  bad.node_id = "bad";
  bad.password = "wrong";
  redis_limiter no(io, bad);
  no.start();
  auto none = good;
  none.node_id = "none";
  none.password.clear();
  redis_limiter anon(io, none);
  anon.start();
  run_for(io, 400ms);
  EXPECT_FALSE(no.up());
  EXPECT_FALSE(anon.up());
  EXPECT_FALSE(acquire_sync(io, no, {sc("k", 10)}));
  EXPECT_FALSE(acquire_sync(io, anon, {sc("k", 10)}));
  EXPECT_GE(no.status().failures, 1u);
  EXPECT_TRUE(ok.up());
}
