// gw::redis::connection against a real redis-server (Debian's) started per test on an
// ephemeral port in a temporary directory (redis_server.hpp): commands and replies,
// pipelining, timeouts when the server hangs, outages and reconnects, AUTH and SELECT,
// handshake steps (scripts), stop and destruction, TLS through the bridge.
#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gw/core/log.hpp"
#include "gw/redis/connection.hpp"
#include "redis_server.hpp"

namespace gw::redis {
namespace {

using namespace test;

settings make_settings(int port) {
  settings s;
  s.port = port;
  s.timeout = 200ms;
  s.connect_timeout = 300ms;
  s.reconnect_min = 20ms;
  s.reconnect_max = 100ms;
  return s;
}

/// A reply as text: strings as they are, "+OK" for a status, integers in decimal, nil as
/// "(nil)", errors as "ERR: ...", arrays as "[a,b]".
std::string text(const reply& r) {
  if (r.is_string()) return std::string(r.str());
  if (r.is_status()) return "+" + std::string(r.str());
  if (r.is_integer()) return std::to_string(r.integer());
  if (r.is_error()) return "ERR: " + std::string(r.str());
  if (r.is_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < r.size(); ++i) out += (i ? "," : "") + text(r[i]);
    return out + "]";
  }
  return "(nil)";
}

struct outcome {
  int calls = 0;
  std::optional<std::string> text;  ///< nullopt: no reply
};

/// One command, waited for (the callback must run exactly once, never synchronously).
std::optional<std::string> call_sync(boost::asio::io_context& io, connection& c,
                                     std::initializer_list<std::string_view> argv,
                                     std::chrono::milliseconds limit = 5s) {
  auto o = std::make_shared<outcome>();
  c.call(argv, [o](std::optional<reply> r) {
    ++o->calls;
    if (r) o->text = text(*r);
  });
  EXPECT_EQ(o->calls, 0) << "called back synchronously";
  EXPECT_TRUE(run_until(io, [&] { return o->calls > 0; }, limit)) << "no callback";
  EXPECT_EQ(o->calls, 1);
  return o->text;
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gw::log::set_level(gw::log::level::off); }
  void SetUp() override { server_ = std::make_unique<redis_server>(free_port()); }
  int port() const { return server_->port(); }
  /// A started connection, up.
  std::unique_ptr<connection> make(boost::asio::io_context& io, settings s) {
    auto c = std::make_unique<connection>(io, std::move(s));
    c->start();
    EXPECT_TRUE(run_until(io, [&] { return c->up(); })) << "not up";
    return c;
  }
  std::unique_ptr<redis_server> server_;
};

}  // namespace

TEST_F(RedisConnectionTest, GetSetRoundTrip) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  EXPECT_EQ(call_sync(io, *c, {"SET", "k", "v"}), "+OK");
  EXPECT_EQ(call_sync(io, *c, {"GET", "k"}), "v");
  EXPECT_EQ(call_sync(io, *c, {"GET", "missing"}), "(nil)");
  // Expiries: PX and EX.
  EXPECT_EQ(call_sync(io, *c, {"SET", "px", "1", "PX", "100000"}), "+OK");
  EXPECT_EQ(call_sync(io, *c, {"SET", "ex", "2", "EX", "60"}), "+OK");
  raw_client raw(port());
  auto pttl = std::stoll(raw.run({"PTTL", "px"}));
  EXPECT_GT(pttl, 90'000);
  EXPECT_LE(pttl, 100'000);
  auto ttl = std::stoll(raw.run({"TTL", "ex"}));
  EXPECT_GT(ttl, 50);
  EXPECT_LE(ttl, 60);
  EXPECT_EQ(call_sync(io, *c, {"MGET", "k", "missing", "px"}), "[v,(nil),1]");
  EXPECT_EQ(call_sync(io, *c, {"DEL", "k", "px", "missing"}), "2");
  EXPECT_EQ(call_sync(io, *c, {"GET", "k"}), "(nil)");
  // Binary values (CR, LF, NUL) go through RESP's length framing untouched.
  std::string bin("a\r\nb\0c$3\r\n", 11);
  EXPECT_EQ(call_sync(io, *c, {"SET", "bin", bin}), "+OK");
  EXPECT_EQ(call_sync(io, *c, {"GET", "bin"}), bin);
  EXPECT_EQ(raw.run({"STRLEN", "bin"}), "11");
  // An error reply is a reply; the connection stays up.
  auto e = call_sync(io, *c, {"INCR", "bin"});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rfind("ERR: ERR value is not an integer", 0), 0u) << *e;
  EXPECT_TRUE(c->up());
  EXPECT_EQ(call_sync(io, *c, {"INCR", "n"}), "1");
  auto st = c->status();
  EXPECT_TRUE(st.up);
  EXPECT_EQ(st.commands, 13u);  // the handshake's PING and the 12 above
  EXPECT_EQ(st.failures, 0u);
  EXPECT_EQ(st.timeouts, 0u);
}

TEST_F(RedisConnectionTest, CommandBuilderArguments) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  command cmd;
  cmd.arg("SET").arg_concat("{p}", ":w:", "id").arg_int(-42);
  EXPECT_EQ(cmd.args(), 3u);
  std::optional<std::string> got;
  ASSERT_TRUE(c->send(cmd, [&](std::optional<reply> r) { got = r ? text(*r) : "none"; }));
  // Reusable at once: hiredis copied the first.
  cmd.clear().arg("GET").arg_concat("{p}", ":w:", "id");
  std::optional<std::string> value;
  ASSERT_TRUE(c->send(cmd, [&](std::optional<reply> r) { value = r ? text(*r) : "none"; }));
  ASSERT_TRUE(run_until(io, [&] { return got && value; }));
  EXPECT_EQ(got, "+OK");
  EXPECT_EQ(value, "-42");
  // Scripts: SCRIPT LOAD answers the sha, EVALSHA runs it with keys and arguments.
  cmd.script_load("return {KEYS[1], ARGV[1], 7}");
  std::string sha;
  ASSERT_TRUE(c->send(cmd, [&](std::optional<reply> r) { sha = r && r->is_string() ? std::string(r->str()) : "?"; }));
  ASSERT_TRUE(run_until(io, [&] { return !sha.empty(); }));
  EXPECT_EQ(sha.size(), 40u) << sha;
  cmd.evalsha(sha, 1).arg("key").arg("arg");
  std::optional<std::string> out;
  c->call(cmd, [&](std::optional<reply> r) { out = r ? text(*r) : "none"; });
  ASSERT_TRUE(run_until(io, [&] { return out.has_value(); }));
  EXPECT_EQ(out, "[key,arg,7]");
  // An unknown sha: NOSCRIPT.
  cmd.evalsha(std::string(40, '0'), 0);
  std::optional<bool> noscript;
  c->call(cmd, [&](std::optional<reply> r) { noscript = r && r->is_noscript(); });
  ASSERT_TRUE(run_until(io, [&] { return noscript.has_value(); }));
  EXPECT_TRUE(*noscript);
  EXPECT_TRUE(c->up());
}

TEST_F(RedisConnectionTest, PipelinesManyCommandsInOrder) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  constexpr int n = 5000;
  command cmd;
  int answered = 0, in_order = 0, values = 0;
  auto before = c->status().commands;
  for (int i = 0; i < n; ++i) {
    cmd.clear().arg("SET").arg_concat("key:", std::to_string(i)).arg_int(i);
    ASSERT_TRUE(c->send(cmd, [&, i](std::optional<reply> r) {
      if (answered++ == i) ++in_order;
      if (r && r->is_status()) ++values;
    }));
  }
  for (int i = 0; i < n; ++i) {
    cmd.clear().arg("GET").arg_concat("key:", std::to_string(i));
    ASSERT_TRUE(c->send(cmd, [&, i](std::optional<reply> r) {
      if (answered++ == n + i) ++in_order;
      if (r && r->is_string() && r->str() == std::to_string(i)) ++values;
    }));
  }
  ASSERT_TRUE(run_until(io, [&] { return answered == 2 * n; }, 10s));
  EXPECT_EQ(in_order, 2 * n);
  EXPECT_EQ(values, 2 * n);
  EXPECT_EQ(c->status().commands, before + 2 * n);
  raw_client raw(port());
  EXPECT_EQ(raw.run({"DBSIZE"}), std::to_string(n));
}

TEST_F(RedisConnectionTest, HungServerTimesOutAndRecovers) {
  boost::asio::io_context io;
  int ups = 0, downs = 0;
  connection c(io, make_settings(port()));
  c.on_up([&] { ++ups; });
  c.on_down([&] { ++downs; });
  c.start();
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }));
  EXPECT_EQ(ups, 1);
  server_->pause();
  auto t0 = steady::now();
  EXPECT_FALSE(call_sync(io, c, {"GET", "k"}));
  auto waited = steady::now() - t0;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 600ms);
  EXPECT_FALSE(c.up());
  EXPECT_FALSE(c.status().up);
  EXPECT_GE(c.status().timeouts, 1u);
  EXPECT_GE(downs, 1);
  // While down: call() answers std::nullopt at once (posted); send() sends nothing and
  // never calls back.
  auto commands = c.status().commands;
  t0 = steady::now();
  EXPECT_FALSE(call_sync(io, c, {"GET", "k"}));
  EXPECT_LT(steady::now() - t0, 50ms);
  command cmd;
  cmd.arg("GET").arg("k");
  bool called = false;
  EXPECT_FALSE(c.send(cmd, [&](std::optional<reply>) { called = true; }));
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }, 5s));
  EXPECT_GT(c.status().commands, commands);
  EXPECT_EQ(ups, 2);
  EXPECT_EQ(call_sync(io, c, {"SET", "k", "v"}), "+OK");
  EXPECT_FALSE(called);
}

TEST_F(RedisConnectionTest, LateRepliesAfterATimeoutAreIgnored) {
  boost::asio::io_context io;
  auto s = make_settings(port());
  s.timeout = 50ms;
  auto c = make(io, s);
  // Commands pile up, time out, then the server answers all of them late.
  int calls = 0, nullopts = 0;
  server_->pause();
  for (int i = 0; i < 50; ++i)
    c->call({"INCR", "late"}, [&](std::optional<reply> r) {
      ++calls;
      if (!r) ++nullopts;
    });
  run_for(io, 150ms);
  EXPECT_EQ(calls, 50);
  EXPECT_EQ(nullopts, 50);
  server_->resume();
  ASSERT_TRUE(run_until(io, [&] { return c->up(); }, 5s));
  run_for(io, 100ms);
  EXPECT_EQ(calls, 50);
  EXPECT_TRUE(call_sync(io, *c, {"GET", "late"}));
}

TEST_F(RedisConnectionTest, KilledAndRestartedServerReconnects) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  EXPECT_EQ(call_sync(io, *c, {"SET", "k", "v"}), "+OK");
  server_->kill();
  EXPECT_FALSE(call_sync(io, *c, {"GET", "k"}));
  EXPECT_TRUE(run_until(io, [&] { return !c->up(); }, 1s));
  server_->start();  // empty: no persistence
  ASSERT_TRUE(run_until(io, [&] { return c->up(); }, 5s));
  EXPECT_GE(c->status().reconnects, 1u);
  EXPECT_EQ(call_sync(io, *c, {"GET", "k"}), "(nil)");
  EXPECT_EQ(call_sync(io, *c, {"SET", "k", "w"}), "+OK");
  EXPECT_EQ(call_sync(io, *c, {"GET", "k"}), "w");
}

TEST_F(RedisConnectionTest, ResetDropsTheConnectionAndReconnects) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  auto before = c->status().reconnects;
  int calls = 0;
  c->call({"GET", "k"}, [&](std::optional<reply> r) {
    ++calls;
    EXPECT_FALSE(r);
  });
  c->reset("test");
  EXPECT_EQ(calls, 1) << "pending callbacks get std::nullopt at once";
  EXPECT_FALSE(c->up());
  ASSERT_TRUE(run_until(io, [&] { return c->up(); }, 5s));
  EXPECT_EQ(c->status().reconnects, before + 1);
}

TEST_F(RedisConnectionTest, HandshakeStepsLoadScriptsOnEveryConnection) {
  boost::asio::io_context io;
  connection c(io, make_settings(port()));
  command script;
  std::string sha;
  int connects = 0;
  bool loaded_before_up = false;
  c.on_connect([&] {
    ++connects;
    EXPECT_TRUE(c.send_setup(script.script_load("return 42"), "SCRIPT LOAD", [&](const reply& r) {
      if (!r.is_string()) return false;
      sha.assign(r.str());
      return true;
    }));
  });
  c.on_up([&] { loaded_before_up = !sha.empty(); });
  command outside;
  outside.arg("PING");
  EXPECT_FALSE(c.send_setup(outside, "PING", nullptr)) << "only inside on_connect";
  c.start();
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }));
  EXPECT_TRUE(loaded_before_up);
  EXPECT_EQ(connects, 1);
  command cmd;
  cmd.evalsha(sha, 0);
  std::optional<std::string> out;
  c.call(cmd, [&](std::optional<reply> r) { out = r ? text(*r) : "none"; });
  ASSERT_TRUE(run_until(io, [&] { return out.has_value(); }));
  EXPECT_EQ(out, "42");
  // Redis lost its scripts: NOSCRIPT; a new connection loads it again.
  raw_client raw(port());
  EXPECT_EQ(raw.run({"SCRIPT", "FLUSH"}), "OK");
  std::optional<bool> noscript;
  c.call(cmd, [&](std::optional<reply> r) { noscript = r && r->is_noscript(); });
  ASSERT_TRUE(run_until(io, [&] { return noscript.has_value(); }));
  EXPECT_TRUE(*noscript);
  sha.clear();
  c.reset("scripts lost");
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }, 5s));
  EXPECT_EQ(connects, 2);
  cmd.evalsha(sha, 0);
  out.reset();
  c.call(cmd, [&](std::optional<reply> r) { out = r ? text(*r) : "none"; });
  ASSERT_TRUE(run_until(io, [&] { return out.has_value(); }));
  EXPECT_EQ(out, "42");
}

TEST_F(RedisConnectionTest, AFailedHandshakeStepKeepsItDown) {
  boost::asio::io_context io;
  // A script Redis refuses (an error reply), and a reply the check refuses.
  for (bool error : {true, false}) {
    connection c(io, make_settings(port()));
    command script;
    c.on_connect([&] {
      c.send_setup(script.script_load(error ? "return +" : "return 1"), "SCRIPT LOAD",
                   [](const reply&) { return false; });
    });
    c.start();
    run_for(io, 300ms);
    EXPECT_FALSE(c.up()) << error;
    EXPECT_GE(c.status().failures, 1u) << error;
    EXPECT_GE(c.status().reconnects, 1u) << error;
    EXPECT_FALSE(call_sync(io, c, {"PING"})) << error;
    c.stop();
  }
}

TEST_F(RedisConnectionTest, StopFailsPendingCallbacksOnceAndDestructionDropsThem) {
  boost::asio::io_context io;
  auto c = make(io, make_settings(port()));
  server_->pause();
  int calls = 0, nullopts = 0;
  for (int i = 0; i < 10; ++i)
    c->call({"GET", "k"}, [&](std::optional<reply> r) {
      ++calls;
      if (!r) ++nullopts;
    });
  run_for(io, 20ms);
  EXPECT_EQ(calls, 0);
  c->stop();
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(nullopts, 10);
  EXPECT_FALSE(c->up());
  // After stop: posted nullopt, never synchronous; no reconnect.
  EXPECT_FALSE(call_sync(io, *c, {"GET", "k"}));
  auto reconnects = c->status().reconnects;
  run_for(io, 300ms);
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(c->status().reconnects, reconnects) << "reconnecting after stop()";
  server_->resume();

  // Destroyed with commands in flight: their callbacks are dropped, not called.
  auto c2 = make(io, make_settings(port()));
  server_->pause();
  int calls2 = 0;
  for (int i = 0; i < 10; ++i) c2->call({"GET", "k"}, [&](std::optional<reply>) { ++calls2; });
  run_for(io, 20ms);
  c2.reset();
  run_for(io, 300ms);
  EXPECT_EQ(calls2, 0);
  server_->resume();
}

TEST(RedisConnectionNoServer, NeverBlocksAndKeepsTrying) {
  gw::log::set_level(gw::log::level::off);
  boost::asio::io_context io;
  connection c(io, make_settings(free_port()));
  auto t0 = steady::now();
  c.start();
  EXPECT_LT(steady::now() - t0, 50ms);
  EXPECT_FALSE(call_sync(io, c, {"GET", "k"}));
  EXPECT_LT(steady::now() - t0, 100ms);
  EXPECT_FALSE(c.up());
  run_for(io, 300ms);
  EXPECT_FALSE(c.up());
  EXPECT_GE(c.status().reconnects, 2u);
  EXPECT_GE(c.status().failures, 2u);
  c.stop();
  auto r = c.status().reconnects;
  run_for(io, 200ms);
  EXPECT_EQ(c.status().reconnects, r) << "reconnecting after stop()";
}

TEST(RedisConnectionNoServer, ServerAppearingLaterIsUsed) {
  gw::log::set_level(gw::log::level::off);
  boost::asio::io_context io;
  int port = free_port();
  connection c(io, make_settings(port));
  c.start();
  run_for(io, 100ms);
  EXPECT_FALSE(c.up());
  redis_server server(port);
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }, 3s));
  EXPECT_EQ(call_sync(io, c, {"SET", "k", "v"}), "+OK");
}

TEST(RedisConnectionAuth, PasswordAndWrongPassword) {
  gw::log::set_level(gw::log::level::off);
  redis_server server(free_port(), "s3cret");
  boost::asio::io_context io;
  auto good = make_settings(server.port());
  good.password = "s3cret";
  connection ok(io, good);
  ok.start();
  ASSERT_TRUE(run_until(io, [&] { return ok.up(); }));
  EXPECT_EQ(call_sync(io, ok, {"SET", "k", "v"}), "+OK");
  EXPECT_EQ(call_sync(io, ok, {"GET", "k"}), "v");

  auto acl = good;  // Redis 6 ACL form: AUTH default <password>, and SELECT 2
  acl.username = "default";
  acl.db = 2;
  connection with_user(io, acl);
  with_user.start();
  ASSERT_TRUE(run_until(io, [&] { return with_user.up(); }));
  EXPECT_EQ(call_sync(io, with_user, {"SET", "in-db-2", "x"}), "+OK");
  raw_client raw(server.port(), "s3cret");
  EXPECT_EQ(raw.run({"EXISTS", "in-db-2"}), "0") << "written to db 0";
  raw.run({"SELECT", "2"});
  EXPECT_EQ(raw.run({"EXISTS", "in-db-2"}), "1") << "SELECT 2 not used";

  auto bad = good;
  bad.password = "wrong";
  connection no(io, bad);
  no.start();
  auto none = good;
  none.password.clear();
  connection anon(io, none);
  anon.start();
  run_for(io, 400ms);
  EXPECT_FALSE(no.up());
  EXPECT_FALSE(anon.up());
  EXPECT_FALSE(call_sync(io, no, {"GET", "k"}));
  EXPECT_FALSE(call_sync(io, anon, {"GET", "k"}));
  EXPECT_GE(no.status().failures, 1u);
  EXPECT_GE(anon.status().failures, 1u);
  EXPECT_TRUE(ok.up());
}

/// A redis-server on TLS only, with a certificate for localhost from a test CA (as the
/// integration tests' TlsRedisTest).
class RedisConnectionTls : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gw-redis-ca-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    if (!ca_.make(dir_)) GTEST_SKIP() << "openssl CLI not available";
    server_ = std::make_unique<redis_server>(free_port(), "tls-secret", &ca_);
    // The bridges' private directories go here, where nothing else makes them.
    if (const char* t = std::getenv("TMPDIR")) old_tmpdir_ = t;
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    if (old_tmpdir_)
      ::setenv("TMPDIR", old_tmpdir_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  settings tls_settings(std::string ca_file, bool verify = true) {
    auto s = make_settings(server_->port());
    s.host = "localhost";
    s.password = "tls-secret";
    s.tls = true;
    s.tls_verify = verify;
    s.tls_ca_file = std::move(ca_file);
    s.connect_timeout = 2s;
    return s;
  }
  std::filesystem::path dir_;
  std::optional<std::string> old_tmpdir_;
  test_ca ca_;
  std::unique_ptr<redis_server> server_;
};

TEST_F(RedisConnectionTls, CommandsOverTlsAndReconnectAfterARestart) {
  gw::log::set_level(gw::log::level::off);
  boost::asio::io_context io;
  connection c(io, tls_settings(ca_.ca));
  c.start();
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }));
  EXPECT_EQ(call_sync(io, c, {"SET", "k", "over tls"}), "+OK");
  EXPECT_EQ(call_sync(io, c, {"GET", "k"}), "over tls");
  server_->kill();
  EXPECT_TRUE(run_until(io, [&] { return !c.up(); }, 2s));
  server_->start();
  ASSERT_TRUE(run_until(io, [&] { return c.up(); }, 5s));
  EXPECT_EQ(call_sync(io, c, {"SET", "k", "again"}), "+OK");
  // No bridge socket left behind: each is removed once hiredis connected.
  c.stop();
  for (auto& e : std::filesystem::directory_iterator(dir_))
    EXPECT_NE(e.path().filename().string().rfind("llm-gateway-redis-", 0), 0u) << e.path();
}

TEST_F(RedisConnectionTls, AnUnverifiableCertificateIsRefusedUnlessVerificationIsOff) {
  gw::log::set_level(gw::log::level::warn);
  boost::asio::io_context io;
  auto s = tls_settings(ca_.other_ca);
  s.outage_note = "served without Redis";
  connection bad(io, s);
  ::testing::internal::CaptureStderr();
  bad.start();
  run_for(io, 1s);
  std::string log = ::testing::internal::GetCapturedStderr();
  gw::log::set_level(gw::log::level::off);
  EXPECT_FALSE(bad.up());
  EXPECT_FALSE(call_sync(io, bad, {"GET", "k"}));
  EXPECT_NE(log.find("TLS bridge: TLS handshake: "), std::string::npos) << log;
  EXPECT_NE(log.find("certificate verify failed"), std::string::npos) << log;
  EXPECT_NE(log.find("; served without Redis"), std::string::npos) << log;
  bad.stop();
  // Verification off: the same server is accepted.
  connection ok(io, tls_settings(ca_.other_ca, false));
  ok.start();
  ASSERT_TRUE(run_until(io, [&] { return ok.up(); }));
  EXPECT_EQ(call_sync(io, ok, {"SET", "k", "v"}), "+OK");
}

}  // namespace gw::redis
