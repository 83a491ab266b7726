// redis_limiter against a real redis-server started on an ephemeral port.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gw/limits/redis.hpp"

using namespace gw::limits;
using namespace std::chrono_literals;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class RedisServer {
 public:
  explicit RedisServer(int port) : port_(port) {
    dir_ = std::filesystem::temp_directory_path() / ("gw-redis-test-" + std::to_string(::getpid()) + "-" + std::to_string(port));
    std::filesystem::create_directories(dir_);
    start();
  }
  ~RedisServer() {
    resume();
    kill();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", dir_.c_str(), "--daemonize", "no", "--loglevel", "warning",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait until it accepts connections.
    for (int i = 0; i < 200; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(fd);
      if (ok) return;
      std::this_thread::sleep_for(25ms);
    }
  }
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

 private:
  int port_;
  pid_t pid_ = -1;
  std::filesystem::path dir_;
};

redis_settings settings(int port, std::string node, std::size_t thread = 0) {
  redis_settings s;
  s.port = port;
  s.node_id = std::move(node);
  s.thread = thread;
  s.timeout = 200ms;
  s.reconnect_min = 50ms;
  s.reconnect_max = 200ms;
  s.heartbeat = 200ms;
  s.window.window_ms = 60'000;
  s.window.buckets = 60;
  return s;
}

/// Runs `io` until `done()` or the deadline.
template <class F>
bool run_until(boost::asio::io_context& io, F done, std::chrono::milliseconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(5ms);
  }
  return done();
}

std::optional<decision> acquire_sync(boost::asio::io_context& io, redis_limiter& l, const std::vector<scope>& s) {
  bool done = false;
  std::optional<decision> out;
  l.acquire(s, [&](std::optional<decision> d) {
    out = std::move(d);
    done = true;
  });
  run_until(io, [&] { return done; });
  return out;
}

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
  void SetUp() override {
    port_ = free_port();
    server_ = std::make_unique<RedisServer>(port_);
  }
  int port_ = 0;
  std::unique_ptr<RedisServer> server_;
};

}  // namespace

TEST_F(RedisLimiterTest, RpmAdmitsExactlyTheLimit) {
  boost::asio::io_context io;
  redis_limiter l(io, settings(port_, "n1"));
  l.start();
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }));
  std::vector<scope> s{sc("key:rpm", 5)};
  for (int i = 0; i < 5; ++i) {
    auto d = acquire_sync(io, l, s);
    ASSERT_TRUE(d);
    ASSERT_TRUE(d->admitted) << i;
    EXPECT_EQ(d->states[0].remaining_requests, 4 - i);
  }
  auto d = acquire_sync(io, l, s);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 0);
  EXPECT_EQ(d->refused_kind, kind::requests);
  EXPECT_EQ(d->limit, 5);
  EXPECT_GT(d->retry_after_ms, 0);
  EXPECT_LE(d->retry_after_ms, 61'000);
  // The pre-check refuses the next one without a round trip.
  auto before = l.status();
  auto p = l.precheck(s);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->admitted);
  EXPECT_EQ(l.status().prechecked, before.prechecked + 1);
  EXPECT_EQ(l.status().commands, before.commands);
}

TEST_F(RedisLimiterTest, ThreeNodesShareOneLimitExactly) {
  std::atomic<int> admitted{0};
  std::vector<std::thread> ts;
  for (int n = 0; n < 3; ++n)
    ts.emplace_back([&, n] {
      boost::asio::io_context io;
      auto st = settings(port_, "node" + std::to_string(n));
      st.precheck = false;
      redis_limiter l(io, st);
      l.start();
      if (!run_until(io, [&] { return l.up(); })) return;
      std::vector<scope> s{sc("key:shared", 100)};
      int pending = 0;
      for (int i = 0; i < 80; ++i) {
        ++pending;
        l.acquire(s, [&](std::optional<decision> d) {
          --pending;
          if (d && d->admitted) ++admitted;
        });
      }
      run_until(io, [&] { return pending == 0; });
      l.stop();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(admitted.load(), 100);
}

TEST_F(RedisLimiterTest, AllOrNothingAndTokensAndParallel) {
  boost::asio::io_context io;
  redis_limiter a(io, settings(port_, "na"));
  redis_limiter b(io, settings(port_, "nb"));
  a.start();
  b.start();
  ASSERT_TRUE(run_until(io, [&] { return a.up() && b.up(); }));
  std::vector<scope> both{sc("s1", 10), sc("s2", 0)};
  auto d = acquire_sync(io, a, both);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused, 1);
  std::vector<scope> one{sc("s1", 1)};
  d = acquire_sync(io, b, one);
  ASSERT_TRUE(d && d->admitted) << "s1 was counted by a refused request";

  auto t = sc("tok", -1, 100);
  t.counts = token_count::output;
  std::vector<scope> tv{t};
  ASSERT_TRUE(acquire_sync(io, a, tv)->admitted);
  ASSERT_TRUE(a.release(tv, token_usage{500, 100}));
  run_until(io, [] { return false; }, 100ms);
  d = acquire_sync(io, b, tv);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused_kind, kind::tokens);
  EXPECT_EQ(d->current, 100);

  std::vector<scope> pv{sc("par", -1, -1, 1)};
  ASSERT_TRUE(acquire_sync(io, a, pv)->admitted);
  run_until(io, [] { return false; }, 300ms);  // both nodes heartbeat
  d = acquire_sync(io, b, pv);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->admitted);
  EXPECT_EQ(d->refused_kind, kind::parallel);
  a.release(pv, {});
  run_until(io, [] { return false; }, 50ms);
  d = acquire_sync(io, b, pv);
  ASSERT_TRUE(d && d->admitted);
  EXPECT_EQ(a.status().live_nodes, 2u);
}

TEST_F(RedisLimiterTest, HungServerTimesOutAndRecovers) {
  boost::asio::io_context io;
  redis_limiter l(io, settings(port_, "nh"));
  l.start();
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }));
  server_->pause();
  auto t0 = std::chrono::steady_clock::now();
  auto d = acquire_sync(io, l, {sc("k", 1000)});
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_FALSE(d);
  EXPECT_LT(waited, 1s);
  EXPECT_FALSE(l.up());
  EXPECT_GE(l.status().timeouts, 1u);
  // While down: at once, no round trip.
  t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(acquire_sync(io, l, {sc("k", 1000)}));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }, 5s));
  d = acquire_sync(io, l, {sc("k", 1000)});
  ASSERT_TRUE(d && d->admitted);
}

TEST_F(RedisLimiterTest, KilledAndRestartedServerReconnects) {
  boost::asio::io_context io;
  redis_limiter l(io, settings(port_, "nk"));
  l.start();
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }));
  server_->kill();
  EXPECT_FALSE(acquire_sync(io, l, {sc("k", 10)}));
  run_until(io, [&] { return !l.up(); });
  EXPECT_FALSE(l.up());
  server_->start();
  ASSERT_TRUE(run_until(io, [&] { return l.up(); }, 5s));
  auto d = acquire_sync(io, l, {sc("k", 10)});
  ASSERT_TRUE(d && d->admitted);
  EXPECT_GE(l.status().reconnects, 1u);
}

TEST(RedisLimiterAbsent, NoServerNeverBlocks) {
  boost::asio::io_context io;
  redis_limiter l(io, settings(free_port(), "nx"));
  l.start();
  auto t0 = std::chrono::steady_clock::now();
  auto d = acquire_sync(io, l, {sc("k", 10)});
  EXPECT_FALSE(d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_FALSE(l.up());
  l.stop();
}
