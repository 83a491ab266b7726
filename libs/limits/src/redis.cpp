// Cluster-wide limits on Redis: hiredis' async API driven by an Asio io_context, one Lua
// script per request. See redis.hpp and docs/RATE_LIMITS.md.
#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)

#include "gw/limits/redis.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "gw/core/log.hpp"

namespace gw::limits {
namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

// KEYS: for each scope its window hash and its in-flight hash, then the nodes zset.
// ARGV: mode ('a' acquire, 'r' release, 'h' heartbeat), window_ms, buckets, node,
// field ("<node>/<thread>"), then per scope: rpm, tpm, max_parallel, mine (this
// thread's in-flight count after the change, -1 if none), tokens (release).
// Acquire answers {1, -1, 0, 0, 0, 0, per scope 6 values} or
// {0, index (0-based), kind (0 requests, 1 tokens, 2 parallel), limit, current, retry ms}.
constexpr std::string_view k_script = R"LUA(
local mode = ARGV[1]
local window = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local node = ARGV[4]
local field = ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bms = math.ceil(window / nb)
if bms < 1 then bms = 1 end
local cur = math.floor(now / bms)
local n = nb + 1
local first = cur - n + 1
local nodes = KEYS[#KEYS]
local ttl = window * 2 + 1000
if mode == 'h' then
  redis.call('ZADD', nodes, now, node)
  redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now - 60000)
  redis.call('PEXPIRE', nodes, 120000)
  return redis.call('ZCOUNT', nodes, now - 10000, '+inf')
end
local function prune(k)
  local lo = tonumber(redis.call('HGET', k, 'lo'))
  if not lo or lo >= first then return end
  if first - lo > n then
    redis.call('DEL', k)
    return
  end
  local r, tk = 0, 0
  for b = lo, first - 1 do
    local x = redis.call('HGET', k, 'r' .. b)
    if x then r = r + tonumber(x) ; redis.call('HDEL', k, 'r' .. b) end
    x = redis.call('HGET', k, 't' .. b)
    if x then tk = tk + tonumber(x) ; redis.call('HDEL', k, 't' .. b) end
  end
  if r ~= 0 then redis.call('HINCRBY', k, 'R', -r) end
  if tk ~= 0 then redis.call('HINCRBY', k, 'T', -tk) end
  redis.call('HSET', k, 'lo', first)
end
local function retry(k, prefix, total, target)
  local fields = {}
  for b = first, cur do fields[#fields + 1] = prefix .. b end
  local vals = redis.call('HMGET', k, unpack(fields))
  local left = total
  for j = 1, #vals do
    if vals[j] then left = left - tonumber(vals[j]) end
    if left <= target then return math.max(1, (first + j - 1 + n) * bms - now) end
  end
  return math.max(1, (cur + n) * bms - now)
end
local scopes = (#KEYS - 1) / 2
if mode == 'r' then
  for i = 1, scopes do
    local a = 5 + (i - 1) * 5
    local tpm, par, mine, tokens = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
    local wk, pk = KEYS[2 * i - 1], KEYS[2 * i]
    if tpm >= 0 and tokens > 0 then
      prune(wk)
      redis.call('HINCRBY', wk, 't' .. cur, tokens)
      redis.call('HINCRBY', wk, 'T', tokens)
      redis.call('HSETNX', wk, 'lo', cur)
      redis.call('PEXPIRE', wk, ttl)
    end
    if par >= 0 then
      if mine > 0 then
        redis.call('HSET', pk, field, mine)
        redis.call('PEXPIRE', pk, ttl)
      else
        redis.call('HDEL', pk, field)
      end
    end
  end
  return 1
end
local counts = {}
for i = 1, scopes do
  local a = 5 + (i - 1) * 5
  local rpm, tpm, par, mine = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local wk, pk = KEYS[2 * i - 1], KEYS[2 * i]
  local r, tk = 0, 0
  if rpm >= 0 or tpm >= 0 then
    prune(wk)
    r = tonumber(redis.call('HGET', wk, 'R') or '0')
    tk = tonumber(redis.call('HGET', wk, 'T') or '0')
  end
  if rpm >= 0 and r + 1 > rpm then return {0, i - 1, 0, rpm, r, retry(wk, 'r', r, rpm - 1)} end
  if tpm >= 0 and tk >= tpm then return {0, i - 1, 1, tpm, tk, retry(wk, 't', tk, tpm - 1)} end
  if par >= 0 then
    local vals = redis.call('HGETALL', pk)
    local sum = 0
    for j = 1, #vals, 2 do
      local f = vals[j]
      if f ~= field then
        local nd = string.match(f, '^(.*)/[^/]*$') or f
        local hb = redis.call('ZSCORE', nodes, nd)
        if hb and tonumber(hb) >= now - 10000 then
          sum = sum + tonumber(vals[j + 1])
        else
          redis.call('HDEL', pk, f)
        end
      end
    end
    if sum + mine > par then return {0, i - 1, 2, par, sum + mine - 1, 1000} end
  end
  counts[i] = {r, tk}
end
local out = {1, -1, 0, 0, 0, 0}
for i = 1, scopes do
  local a = 5 + (i - 1) * 5
  local rpm, tpm, par, mine = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local wk, pk = KEYS[2 * i - 1], KEYS[2 * i]
  local r, tk = counts[i][1], counts[i][2]
  if rpm >= 0 then
    redis.call('HINCRBY', wk, 'r' .. cur, 1)
    redis.call('HINCRBY', wk, 'R', 1)
    redis.call('HSETNX', wk, 'lo', cur)
    redis.call('PEXPIRE', wk, ttl)
    r = r + 1
  end
  if par >= 0 then
    redis.call('HSET', pk, field, mine)
    redis.call('PEXPIRE', pk, ttl)
  end
  local reset = (cur + n) * bms - now
  out[#out + 1] = rpm
  out[#out + 1] = rpm >= 0 and math.max(0, rpm - r) or -1
  out[#out + 1] = (rpm >= 0 and r > 0) and reset or 0
  out[#out + 1] = tpm
  out[#out + 1] = tpm >= 0 and math.max(0, tpm - tk) or -1
  out[#out + 1] = (tpm >= 0 and tk > 0) and reset or 0
end
return out
)LUA";


}  // namespace

struct redis_limiter::impl {
  asio::io_context& io;
  redis_settings s;
  asio::ip::tcp::resolver resolver{io};
  asio::steady_timer timer{io};       // command timeouts, connect timeout
  asio::steady_timer reconnect{io};
  asio::steady_timer heartbeat{io};
  redisAsyncContext* ac = nullptr;
  std::uint64_t generation = 0;       // bumps on every (re)connect
  bool stopped = false;
  bool connected = false;             // TCP up
  std::atomic<bool> is_up{false};     // ready for commands
  std::string sha;
  std::chrono::milliseconds backoff{0};
  steady::time_point connect_deadline = steady::time_point::max();

  // The socket watcher (hiredis' event hooks).
  struct watcher {
    impl* owner;
    asio::posix::stream_descriptor sd;
    bool want_read = false, want_write = false, reading = false, writing = false;
    std::shared_ptr<int> alive = std::make_shared<int>(0);
    watcher(impl* o, int fd) : owner(o), sd(o->io, fd) {}
  };
  watcher* w = nullptr;

  // Commands waiting for a reply, by id (hiredis gets the id as privdata).
  using reply_fn = std::function<void(redisReply*)>;  // null reply: failed
  struct pending {
    steady::time_point deadline;
    reply_fn fn;
  };
  std::unordered_map<std::uint64_t, pending> waiting;
  std::deque<std::uint64_t> order;  // ids by deadline (all share the same timeout)
  std::uint64_t next_id = 1;
  bool timer_armed = false;

  // Pre-check: scope id -> refused until.
  std::unordered_map<std::string, steady::time_point> refused_until;
  // In-flight per parallel-limited scope (this thread), and scopes changed while down.
  std::unordered_map<std::string, std::int64_t> in_flight;
  std::unordered_map<std::string, std::int64_t> dirty;  // scope id -> max_parallel

  std::atomic<std::size_t> live_nodes{1};
  std::atomic<std::uint64_t> commands{0}, failures{0}, timeouts{0}, reconnects{0}, prechecked{0};

  std::vector<const char*> argv;
  std::vector<std::size_t> argl;
  std::vector<std::string> strs;

  impl(asio::io_context& i, redis_settings st) : io(i), s(std::move(st)) {}

  // ------------------------------------------------------------ the watcher
  static void add_read(void* p) {
    auto* x = static_cast<watcher*>(p);
    x->want_read = true;
    arm_read(x);
  }
  static void del_read(void* p) { static_cast<watcher*>(p)->want_read = false; }
  static void add_write(void* p) {
    auto* x = static_cast<watcher*>(p);
    x->want_write = true;
    arm_write(x);
  }
  static void del_write(void* p) { static_cast<watcher*>(p)->want_write = false; }
  static void cleanup(void* p) {
    // hiredis frees the context (and closes the fd): give the fd back, then delete
    // the watcher once the cancelled waits have run.
    auto* x = static_cast<watcher*>(p);
    x->want_read = x->want_write = false;
    x->alive.reset();
    error_code ignored;
    x->sd.release();
    if (x->owner->w == x) x->owner->w = nullptr;
    // Owned by the posted handler: deleted when it runs, or when the io_context is
    // destroyed with it still queued (shutdown).
    std::shared_ptr<watcher> own(x);
    asio::post(x->owner->io, [own] {});
  }
  static void arm_read(watcher* x) {
    if (x->reading || !x->want_read) return;
    x->reading = true;
    std::weak_ptr<int> alive = x->alive;
    x->sd.async_wait(asio::posix::descriptor_base::wait_read, [x, alive](error_code ec) {
      if (alive.expired()) return;
      x->reading = false;
      if (ec) return;
      auto* owner = x->owner;
      if (x->want_read && owner->ac) redisAsyncHandleRead(owner->ac);
      if (!alive.expired()) arm_read(x);
    });
  }
  static void arm_write(watcher* x) {
    if (x->writing || !x->want_write) return;
    x->writing = true;
    std::weak_ptr<int> alive = x->alive;
    x->sd.async_wait(asio::posix::descriptor_base::wait_write, [x, alive](error_code ec) {
      if (alive.expired()) return;
      x->writing = false;
      if (ec) return;
      auto* owner = x->owner;
      if (x->want_write && owner->ac) redisAsyncHandleWrite(owner->ac);
      if (!alive.expired()) arm_write(x);
    });
  }

  // ------------------------------------------------------------ connection
  void connect() {
    if (stopped) return;
    resolver.async_resolve(s.host, std::to_string(s.port), [this](error_code ec, asio::ip::tcp::resolver::results_type r) {
      if (stopped) return;
      if (ec || r.empty()) {
        log::warn("redis: cannot resolve " + s.host + ": " + ec.message());
        return schedule_reconnect();
      }
      connect_to(r.begin()->endpoint().address().to_string());
    });
  }

  void connect_to(const std::string& ip) {
    ++generation;
    ac = redisAsyncConnect(ip.c_str(), s.port);
    if (!ac || ac->err) {
      if (ac) {
        log::warn(std::string("redis: connect failed: ") + ac->errstr);
        redisAsyncFree(ac);
      }
      ac = nullptr;
      return schedule_reconnect();
    }
    ac->data = this;
    w = new watcher(this, ac->c.fd);
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    connect_deadline = steady::now() + s.connect_timeout;
    arm_timer();
    // Handshake, pipelined: AUTH, SELECT, SCRIPT LOAD; ready when the script is loaded.
    if (!s.password.empty()) {
      std::vector<std::string> a{"AUTH"};
      if (!s.username.empty()) a.push_back(s.username);
      a.push_back(s.password);
      send(a, [this](redisReply* r) {
        if (!r || r->type == REDIS_REPLY_ERROR) {
          log::warn(std::string("redis: AUTH failed: ") + (r ? r->str : "no answer"));
          drop_connection();
        }
      });
    }
    if (s.db != 0)
      send({"SELECT", std::to_string(s.db)}, [this](redisReply* r) {
        if (!r || r->type == REDIS_REPLY_ERROR) drop_connection();
      });
    send({"SCRIPT", "LOAD", std::string(k_script)}, [this](redisReply* r) {
      if (!r || r->type != REDIS_REPLY_STRING) {
        if (r && r->type == REDIS_REPLY_ERROR) log::warn(std::string("redis: SCRIPT LOAD failed: ") + r->str);
        return drop_connection();
      }
      sha.assign(r->str, r->len);
      connect_deadline = steady::time_point::max();
      bool was_down = !is_up.load();
      backoff = std::chrono::milliseconds(0);
      is_up = true;
      if (was_down) log::info("redis: connected to " + s.host + ":" + std::to_string(s.port));
      send_heartbeat();
      resync();
    });
  }

  static void on_connect(const redisAsyncContext* c, int status) {
    auto* self = static_cast<impl*>(c->data);
    if (status != REDIS_OK) {
      // hiredis frees the context after this callback.
      self->ac = nullptr;
      self->connected = false;
      self->fail_all();
      self->schedule_reconnect();
      return;
    }
    self->connected = true;
  }

  static void on_disconnect(const redisAsyncContext* c, int) {
    auto* self = static_cast<impl*>(c->data);
    // The context is being freed (by hiredis after an error, or by drop_connection).
    if (self->ac == c) self->ac = nullptr;
    self->connected = false;
    if (self->is_up.exchange(false)) log::warn("redis: connection lost; limits are decided locally until it returns");
    self->fail_all();
    if (!self->stopped) self->schedule_reconnect();
  }

  /// Closes the connection from outside hiredis' callbacks (posted).
  void drop_connection() {
    auto gen = generation;
    asio::post(io, [this, gen] {
      if (gen != generation || !ac) return;
      auto* c = ac;
      ac = nullptr;
      is_up = false;
      redisAsyncFree(c);  // pending callbacks get a null reply, then on_disconnect
      fail_all();
      if (!stopped) schedule_reconnect();
    });
  }

  void schedule_reconnect() {
    if (stopped) return;
    connect_deadline = steady::time_point::max();
    backoff = backoff.count() == 0 ? s.reconnect_min : std::min(backoff * 2, s.reconnect_max);
    reconnect.expires_after(backoff);
    reconnect.async_wait([this](error_code ec) {
      if (ec || stopped || ac) return;
      ++reconnects;
      connect();
    });
  }

  void fail_all() {
    auto w2 = std::move(waiting);
    waiting.clear();
    order.clear();
    for (auto& [id, p] : w2) {
      ++failures;
      if (p.fn) p.fn(nullptr);
    }
  }

  // ------------------------------------------------------------ commands
  static void on_reply(redisAsyncContext* c, void* reply, void* privdata) {
    auto* self = static_cast<impl*>(c->data);
    auto id = reinterpret_cast<std::uintptr_t>(privdata);
    auto it = self->waiting.find(id);
    if (it == self->waiting.end()) return;  // timed out already
    auto fn = std::move(it->second.fn);
    self->waiting.erase(it);
    if (!reply) ++self->failures;
    if (fn) fn(static_cast<redisReply*>(reply));
  }

  void send(const std::vector<std::string>& args, reply_fn fn) {
    argv.clear();
    argl.clear();
    for (auto& a : args) {
      argv.push_back(a.data());
      argl.push_back(a.size());
    }
    send_argv(std::move(fn));
  }

  /// Sends argv/argl (filled by the caller).
  void send_argv(reply_fn fn) {
    if (!ac) {
      ++failures;
      if (fn) asio::post(io, [fn = std::move(fn)] { fn(nullptr); });
      return;
    }
    auto id = next_id++;
    ++commands;
    if (redisAsyncCommandArgv(ac, on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)),
                              static_cast<int>(argv.size()), argv.data(), argl.data()) != REDIS_OK) {
      ++failures;
      if (fn) asio::post(io, [fn = std::move(fn)] { fn(nullptr); });
      return;
    }
    waiting.emplace(id, pending{steady::now() + s.timeout, std::move(fn)});
    order.push_back(id);
    arm_timer();
  }

  void arm_timer() {
    if (timer_armed) return;
    steady::time_point next = connect_deadline;
    while (!order.empty() && !waiting.count(order.front())) order.pop_front();
    if (!order.empty()) next = std::min(next, waiting[order.front()].deadline);
    if (next == steady::time_point::max()) return;
    timer_armed = true;
    timer.expires_at(next);
    timer.async_wait([this](error_code ec) {
      timer_armed = false;
      if (ec || stopped) return;
      on_timer();
    });
  }

  void on_timer() {
    auto now = steady::now();
    bool expired = false;
    while (!order.empty()) {
      auto it = waiting.find(order.front());
      if (it == waiting.end()) {
        order.pop_front();
        continue;
      }
      if (it->second.deadline > now) break;
      auto fn = std::move(it->second.fn);
      waiting.erase(it);
      order.pop_front();
      ++timeouts;
      expired = true;
      if (fn) fn(nullptr);
    }
    if (connect_deadline <= now) {
      connect_deadline = steady::time_point::max();
      log::warn("redis: connecting to " + s.host + ":" + std::to_string(s.port) + " timed out");
      expired = true;
    }
    if (expired && ac) {
      // A slow or hung server: stop waiting for it; reconnect with backoff.
      if (is_up.exchange(false))
        log::warn("redis: no answer within " + std::to_string(s.timeout.count()) +
                  " ms; limits are decided locally until it answers");
      drop_connection();
    }
    arm_timer();
  }

  // ------------------------------------------------------------ script calls
  void push(std::string v) { strs.push_back(std::move(v)); }

  /// Fills argv for the script: EVALSHA sha numkeys keys... args...
  void build(const std::vector<scope>& scopes, char mode, const std::vector<std::int64_t>& mine,
             const token_usage* usage) {
    strs.clear();
    strs.reserve(8 + scopes.size() * 7);
    push("EVALSHA");
    push(sha);
    push(std::to_string(scopes.size() * 2 + 1));
    for (auto& sc : scopes) {
      push(s.prefix + ":w:" + sc.id);
      push(s.prefix + ":p:" + sc.id);
    }
    push(s.prefix + ":nodes");
    push(std::string(1, mode));
    push(std::to_string(s.window.window_ms));
    push(std::to_string(std::max(1, s.window.buckets)));
    push(s.node_id);
    push(s.node_id + "/" + std::to_string(s.thread));
    for (std::size_t i = 0; i < scopes.size(); ++i) {
      const auto& sc = scopes[i];
      push(std::to_string(sc.rpm));
      push(std::to_string(sc.tpm));
      push(std::to_string(sc.max_parallel));
      push(std::to_string(i < mine.size() ? mine[i] : -1));
      push(std::to_string(usage ? std::max<std::int64_t>(0, usage->of(sc.counts)) : 0));
    }
    argv.clear();
    argl.clear();
    for (auto& x : strs) {
      argv.push_back(x.data());
      argl.push_back(x.size());
    }
  }

  void send_heartbeat() {
    std::vector<scope> none;
    build(none, 'h', {}, nullptr);
    send_argv([this](redisReply* r) {
      if (r && r->type == REDIS_REPLY_INTEGER) live_nodes = static_cast<std::size_t>(std::max<long long>(1, r->integer));
    });
    heartbeat.expires_after(s.heartbeat);
    heartbeat.async_wait([this](error_code ec) {
      if (ec || stopped) return;
      if (is_up) send_heartbeat();
      else {
        heartbeat.expires_after(s.heartbeat);
        heartbeat.async_wait([this](error_code ec2) {
          if (!ec2 && !stopped && is_up) send_heartbeat();
        });
      }
    });
  }

  /// After a reconnect: rewrite this thread's in-flight fields changed while down.
  void resync() {
    if (dirty.empty()) return;
    std::vector<scope> scopes;
    std::vector<std::int64_t> mine;
    for (auto& [id, par] : dirty) {
      scope sc;
      sc.id = id;
      sc.max_parallel = par;
      scopes.push_back(std::move(sc));
      auto it = in_flight.find(id);
      mine.push_back(it == in_flight.end() ? 0 : it->second);
    }
    dirty.clear();
    build(scopes, 'r', mine, nullptr);
    send_argv(nullptr);
  }

  static bool parse_decision(redisReply* r, std::size_t nscopes, decision& d) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 6) return false;
    auto at = [&](std::size_t i) -> std::int64_t {
      auto* e = r->element[i];
      return e && e->type == REDIS_REPLY_INTEGER ? static_cast<std::int64_t>(e->integer) : 0;
    };
    d.admitted = at(0) == 1;
    d.refused = static_cast<int>(at(1));
    auto k = at(2);
    d.refused_kind = k == 1 ? kind::tokens : k == 2 ? kind::parallel : kind::requests;
    d.limit = at(3);
    d.current = at(4);
    d.retry_after_ms = at(5);
    d.states.assign(nscopes, scope_state{});
    if (d.admitted && r->elements >= 6 + nscopes * 6) {
      for (std::size_t i = 0; i < nscopes; ++i) {
        auto& st = d.states[i];
        std::size_t b = 6 + i * 6;
        st.limit_requests = at(b);
        st.remaining_requests = at(b + 1);
        st.reset_requests_ms = at(b + 2);
        st.limit_tokens = at(b + 3);
        st.remaining_tokens = at(b + 4);
        st.reset_tokens_ms = at(b + 5);
      }
    }
    return true;
  }
};

redis_limiter::redis_limiter(boost::asio::io_context& io, redis_settings s)
    : impl_(std::make_unique<impl>(io, std::move(s))) {}

redis_limiter::~redis_limiter() {
  impl_->stopped = true;
  if (impl_->ac) {
    auto* c = impl_->ac;
    impl_->ac = nullptr;
    redisAsyncFree(c);
  }
  // Callbacks of commands still waiting are dropped (the io_context is stopped).
  impl_->waiting.clear();
}

void redis_limiter::start() {
  impl_->stopped = false;
  impl_->connect();
}

void redis_limiter::stop() {
  auto& m = *impl_;
  m.stopped = true;
  m.is_up = false;
  error_code ignored;
  m.timer.cancel();
  m.reconnect.cancel();
  m.heartbeat.cancel();
  m.resolver.cancel();
  if (m.ac) {
    auto* c = m.ac;
    m.ac = nullptr;
    redisAsyncFree(c);
  }
  m.fail_all();
}

bool redis_limiter::up() const noexcept { return impl_->is_up.load(std::memory_order_relaxed); }

redis_status redis_limiter::status() const {
  redis_status st;
  st.up = up();
  st.live_nodes = impl_->live_nodes.load();
  st.commands = impl_->commands.load();
  st.failures = impl_->failures.load();
  st.timeouts = impl_->timeouts.load();
  st.reconnects = impl_->reconnects.load();
  st.prechecked = impl_->prechecked.load();
  return st;
}

std::optional<decision> redis_limiter::precheck(const std::vector<scope>& scopes) {
  auto& m = *impl_;
  if (!m.s.precheck || m.refused_until.empty()) return std::nullopt;
  auto now = steady::now();
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    auto it = m.refused_until.find(scopes[i].id);
    if (it == m.refused_until.end()) continue;
    if (it->second <= now) {
      m.refused_until.erase(it);
      continue;
    }
    decision d;
    d.refused = static_cast<int>(i);
    // Which limit it was is not kept: the requests one if set, else tokens.
    d.refused_kind = scopes[i].rpm >= 0 ? kind::requests : kind::tokens;
    d.limit = scopes[i].rpm >= 0 ? scopes[i].rpm : scopes[i].tpm;
    d.current = d.limit;
    d.retry_after_ms =
        std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(it->second - now).count());
    d.states.assign(scopes.size(), scope_state{});
    ++m.prechecked;
    return d;
  }
  return std::nullopt;
}

void redis_limiter::acquire(const std::vector<scope>& scopes, callback cb) {
  auto& m = *impl_;
  if (!m.is_up || !m.ac) {
    asio::post(m.io, [cb = std::move(cb)] { cb(std::nullopt); });
    return;
  }
  std::vector<std::int64_t> mine(scopes.size(), -1);
  for (std::size_t i = 0; i < scopes.size(); ++i)
    if (scopes[i].max_parallel >= 0) mine[i] = m.in_flight[scopes[i].id] + 1;
  m.build(scopes, 'a', mine, nullptr);
  // What the reply needs: scope ids (pre-check, in-flight) and which were parallel.
  std::vector<std::pair<std::string, bool>> ids;
  ids.reserve(scopes.size());
  for (auto& sc : scopes) ids.emplace_back(sc.id, sc.max_parallel >= 0);
  auto n = scopes.size();
  m.send_argv([this, n, ids = std::move(ids), cb = std::move(cb)](redisReply* r) mutable {
    auto& m = *impl_;
    if (r && r->type == REDIS_REPLY_ERROR && std::strncmp(r->str, "NOSCRIPT", 8) == 0) {
      // Redis lost its scripts (restart, SCRIPT FLUSH): reload on a fresh connection.
      m.drop_connection();
      return cb(std::nullopt);
    }
    decision d;
    if (!impl::parse_decision(r, n, d)) {
      if (r && r->type == REDIS_REPLY_ERROR) log::warn(std::string("redis: limit script failed: ") + r->str);
      return cb(std::nullopt);
    }
    if (d.admitted) {
      for (auto& [id, par] : ids)
        if (par) ++m.in_flight[id];
    } else if (d.refused >= 0 && static_cast<std::size_t>(d.refused) < ids.size() && d.refused_kind != kind::parallel &&
               m.s.precheck) {
      if (m.refused_until.size() >= 10'000) {
        auto now = steady::now();
        for (auto it = m.refused_until.begin(); it != m.refused_until.end();)
          it = it->second <= now ? m.refused_until.erase(it) : std::next(it);
        if (m.refused_until.size() >= 10'000) m.refused_until.clear();
      }
      m.refused_until[ids[static_cast<std::size_t>(d.refused)].first] =
          steady::now() + std::chrono::milliseconds(d.retry_after_ms);
    }
    cb(std::move(d));
  });
}

bool redis_limiter::release(const std::vector<scope>& scopes, const token_usage& usage) {
  auto& m = *impl_;
  std::vector<std::int64_t> mine(scopes.size(), -1);
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    if (scopes[i].max_parallel < 0) continue;
    auto it = m.in_flight.find(scopes[i].id);
    std::int64_t v = 0;
    if (it != m.in_flight.end()) {
      v = std::max<std::int64_t>(0, it->second - 1);
      if (v == 0)
        m.in_flight.erase(it);
      else
        it->second = v;
    }
    mine[i] = v;
    if (!m.is_up || !m.ac) m.dirty[scopes[i].id] = scopes[i].max_parallel;
  }
  if (!m.is_up || !m.ac) return false;
  // Nothing to write (rpm-only scopes, or no tokens to add): no round trip.
  bool work = false;
  for (auto& sc : scopes) work |= sc.max_parallel >= 0 || (sc.tpm >= 0 && usage.of(sc.counts) > 0);
  if (!work) return true;
  m.build(scopes, 'r', mine, &usage);
  m.send_argv(nullptr);
  return true;
}

}  // namespace gw::limits
