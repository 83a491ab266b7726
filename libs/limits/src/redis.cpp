// Cluster-wide limits on Redis: one Lua script per request, on a gw::redis::connection
// (io-thread owned: hiredis driven by the io thread's io_context, commands pipelined,
// deadlines, reconnects; see gw/redis/connection.hpp). See redis.hpp and
// docs/RATE_LIMITS.md.
//
// The script is loaded as part of each connection's handshake (SCRIPT LOAD after AUTH
// and SELECT, pipelined): the limiter is up once it is loaded. Every command then is an
// EVALSHA, pipelined; the connection answers in order, so the limiter's commands awaiting
// a reply are a FIFO too (slots reused, so their buffers keep their capacity). A command
// not answered in time, an error on the connection or a failed handshake drops the
// connection: every command still waiting fails (acquire callbacks get std::nullopt,
// once), and the connection reconnects with exponential backoff until stop().
//
// In-flight counts: this thread's count per parallel-limited scope counts the requests
// admitted and not released plus the acquires still waiting for Redis, so pipelined
// acquires carry increasing absolute values. A refused or failed acquire takes its one
// back; if a later write already carried it, the field is rewritten once no acquire of
// that scope is waiting any more. After a reconnect (or a script reload) every field this
// thread holds is rewritten; fields of long requests are rewritten every half window so
// the key never expires under them.
#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)

#include "gw/limits/redis.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <string_view>
#include <unordered_map>

#include "gw/core/log.hpp"
#include "gw/redis/connection.hpp"
#include "gw/redis/slot_fifo.hpp"

namespace gw::limits {
namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The limit script. One call checks and counts every scope of a request atomically.
///
/// KEYS: per scope i, KEYS[2i-1] = <prefix>:w:<id> (window hash) and KEYS[2i] =
/// <prefix>:p:<id> (in-flight hash); the last key is <prefix>:nodes (heartbeat zset).
/// ARGV: mode ('a' acquire, 'r' release / rewrite, 'h' heartbeat), window_ms, buckets,
/// node id, this thread's field "<node>/<thread>", then 5 per scope: rpm, tpm,
/// max_parallel, mine (this thread's in-flight count after the change), tokens (release).
///
/// Window hash fields: r<bucket> and t<bucket> (requests and tokens per sub-bucket),
/// R and T (their totals over the kept buckets), lo (no bucket below it is kept), tn (the
/// newest bucket holding tokens). Buckets that left the window are dropped when the
/// window moves past them (each once: amortized O(1) per bucket); a hash idle for a whole
/// window is deleted. Its expiry (2 x (buckets + 1) buckets, about two windows) is set
/// when it is created and renewed when buckets are dropped (at most once per bucket):
/// a count always outlives the window it is in. In-flight hashes expire 2 windows after
/// the last release or rewrite, or after the last acquire that renewed it (acquires renew
/// it every half window; field x holds when): their owners rewrite the fields of long
/// requests every half window, so a key never expires under a request.
///
/// Redis calls per request: TIME, then per scope
/// - rpm/tpm: HMGET; admitted with rpm: one HSET (+ PEXPIRE when the hash is new);
///   once per bucket when old buckets leave: HMGET, HDEL, HSET, PEXPIRE (amortized O(1));
///   refused by a window: one HMGET of buckets + 1 fields (the retry time);
/// - max_parallel: HGETALL (+ one ZSCORE per other node holding a field, once per node)
///   and, admitted, one HSET (+ PEXPIRE every half window);
/// - release: HSET + PEXPIRE or HDEL per parallel scope; HMGET, HINCRBY, HSET per scope
///   with tokens (+ TIME once).
///
/// Acquire answers integers: {1, -1, 0, 0, 0, 0, then per scope limit_requests,
/// remaining_requests, reset_requests_ms, limit_tokens, remaining_tokens,
/// reset_tokens_ms} or {0, scope index (0-based), kind (0 requests, 1 tokens,
/// 2 parallel), limit, current, retry_after_ms}. Release answers 1; heartbeat answers the
/// nodes seen in the last 10 s.
constexpr std::string_view k_script = R"LUA(
local mode = ARGV[1]
local nodes = KEYS[#KEYS]
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
if mode == 'h' then
  clock()
  redis.call('ZADD', nodes, now, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now - 60000)
  redis.call('PEXPIRE', nodes, 120000)
  return redis.call('ZCOUNT', nodes, now - 10000, '+inf')
end
local window = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local bms = math.ceil(window / nb)
if bms < 1 then bms = 1 end
local n = nb + 1
local ttl = 2 * n * bms
local field = ARGV[5]
local scopes = (#KEYS - 1) / 2
local cur, first, rcur
local function buckets()
  if not cur then
    cur = math.floor(clock() / bms)
    first = cur - nb
    rcur = 'r' .. cur
  end
end

local function fields(p, from, to, out)
  for b = from, to do out[#out + 1] = p .. b end
  return out
end
local function hmget(k, f)
  local v = {}
  for i = 1, #f, 1000 do
    local part = redis.call('HMGET', k, unpack(f, i, math.min(i + 999, #f)))
    for j = 1, #part do v[#v + 1] = part[j] end
  end
  return v
end

-- A window hash now: requests, tokens, the newest token bucket, whether it is new (its
-- first write sets lo and the expiry), and the current bucket's request count.
local function load(k)
  local v = redis.call('HMGET', k, 'lo', 'R', 'T', 'tn', rcur)
  local lo = tonumber(v[1])
  if not lo then return 0, 0, cur, true, 0 end
  local r, tk, tn, rc = tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or cur, tonumber(v[5]) or 0
  if lo >= first then return r, tk, tn, false, rc end
  if first - lo >= n then
    redis.call('DEL', k)
    return 0, 0, cur, true, 0
  end
  local f = fields('t', lo, first - 1, fields('r', lo, first - 1, {}))
  local old = hmget(k, f)
  local half = first - lo
  for j = 1, half do
    if old[j] then r = r - tonumber(old[j]) end
    if old[half + j] then tk = tk - tonumber(old[half + j]) end
  end
  for i = 1, #f, 1000 do redis.call('HDEL', k, unpack(f, i, math.min(i + 999, #f))) end
  redis.call('HSET', k, 'lo', first, 'R', r, 'T', tk)
  redis.call('PEXPIRE', k, ttl)
  return r, tk, tn, false, rc
end

-- Milliseconds until the counted sum is at most `target`: the end of the bucket that
-- must leave (oldest first).
local function retry(k, p, total, target)
  local v = hmget(k, fields(p, first, cur, {}))
  local left = total
  for j = 1, #v do
    if v[j] then left = left - tonumber(v[j]) end
    if left <= target then return math.max(1, (first + j - 1 + n) * bms - now) end
  end
  return math.max(1, (cur + n) * bms - now)
end

-- In-flight hashes: field x = when an acquire last set the expiry (it renews it every
-- half window; releases and rewrites always do).
local function set_mine(pk, mine)
  if mine > 0 then
    redis.call('HSET', pk, field, mine)
    redis.call('PEXPIRE', pk, 2 * window)
  else
    redis.call('HDEL', pk, field)
  end
end

if mode == 'r' then
  for i = 1, scopes do
    local a = 5 + (i - 1) * 5
    local tpm, par, tokens = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 5])
    if tpm >= 0 and tokens > 0 then
      buckets()
      local wk = KEYS[2 * i - 1]
      local _, tk, _, fresh = load(wk)
      redis.call('HINCRBY', wk, 't' .. cur, tokens)
      if fresh then
        redis.call('HSET', wk, 'T', tk + tokens, 'tn', cur, 'lo', cur)
        redis.call('PEXPIRE', wk, ttl)
      else
        redis.call('HSET', wk, 'T', tk + tokens, 'tn', cur)
      end
    end
    if par >= 0 then set_mine(KEYS[2 * i], tonumber(ARGV[a + 4])) end
  end
  return 1
end
if mode ~= 'a' then return redis.error_reply('unknown mode') end
buckets()

local live = {}
local function alive(f)
  local nd = string.match(f, '^(.*)/[^/]*$') or f
  local a = live[nd]
  if a == nil then
    local hb = redis.call('ZSCORE', nodes, nd)
    a = (hb and tonumber(hb) >= now - 10000) or false
    live[nd] = a
  end
  return a
end

local seen = {}
for i = 1, scopes do
  local a = 5 + (i - 1) * 5
  local rpm, tpm, par = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local wk, pk = KEYS[2 * i - 1], KEYS[2 * i]
  local r, tk, tn, fresh, rc, stale = 0, 0, cur, false, 0, false
  if rpm >= 0 or tpm >= 0 then r, tk, tn, fresh, rc = load(wk) end
  if rpm >= 0 and r + 1 > rpm then return {0, i - 1, 0, rpm, r, retry(wk, 'r', r, rpm - 1)} end
  if tpm >= 0 and tk >= tpm then return {0, i - 1, 1, tpm, tk, retry(wk, 't', tk, tpm - 1)} end
  if par >= 0 then
    local mine = tonumber(ARGV[a + 4])
    local others = 0
    local v = redis.call('HGETALL', pk)
    local x = nil
    for j = 1, #v, 2 do
      local f = v[j]
      if f == 'x' then
        x = tonumber(v[j + 1])
      elseif f ~= field then
        if alive(f) then
          others = others + tonumber(v[j + 1])
        else
          redis.call('HDEL', pk, f)
        end
      end
    end
    if others + mine > par then return {0, i - 1, 2, par, others + mine - 1, 1000} end
    stale = not x or now - x >= window / 2
  end
  seen[i] = {r, tk, tn, fresh, rc, stale}
end

local out = {1, -1, 0, 0, 0, 0}
for i = 1, scopes do
  local a = 5 + (i - 1) * 5
  local rpm, tpm, par = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local wk = KEYS[2 * i - 1]
  local s = seen[i]
  local r, tk, tn = s[1], s[2], s[3]
  if rpm >= 0 then
    r = r + 1
    if s[4] then
      redis.call('HSET', wk, rcur, 1, 'R', r, 'lo', cur)
      redis.call('PEXPIRE', wk, ttl)
    else
      redis.call('HSET', wk, rcur, s[5] + 1, 'R', r)
    end
  end
  if par >= 0 then
    local pk, mine = KEYS[2 * i], tonumber(ARGV[a + 4])
    if s[6] then
      redis.call('HSET', pk, field, mine, 'x', now)
      redis.call('PEXPIRE', pk, 2 * window)
    else
      redis.call('HSET', pk, field, mine)
    end
  end
  out[#out + 1] = rpm
  out[#out + 1] = rpm >= 0 and math.max(0, rpm - r) or -1
  out[#out + 1] = (rpm >= 0 and r > 0) and ((cur + n) * bms - now) or 0
  out[#out + 1] = tpm
  out[#out + 1] = tpm >= 0 and math.max(0, tpm - tk) or -1
  out[#out + 1] = (tpm >= 0 and tk > 0) and math.max(1, (tn + n) * bms - now) or 0
end
return out
)LUA";

constexpr std::size_t k_precheck_max = 10'000;  ///< pre-check entries per thread
constexpr std::size_t k_write_chunk = 256;      ///< scopes per rewrite script call
constexpr milliseconds k_error_log_every{10'000};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

/// What a command waiting for its reply is.
enum class op : std::uint8_t { reload, heartbeat, acquire, write };

struct command {
  std::uint64_t seq = 0;
  op what = op::write;
  redis_limiter::callback cb;  ///< acquire
  std::size_t scopes = 0;      ///< acquire: the number of scopes passed
  /// acquire: every scope's id; write: the ids whose in-flight field it writes.
  std::string ids;
  std::vector<std::uint32_t> ends;     ///< end of each id in `ids`
  std::vector<std::uint8_t> parallel;  ///< acquire: 1 where the in-flight count was raised

  std::string_view id(std::size_t i) const {
    std::size_t from = i == 0 ? 0 : ends[i - 1];
    return std::string_view(ids).substr(from, ends[i] - from);
  }
  void add_id(std::string_view id) {
    ids.append(id);
    ends.push_back(static_cast<std::uint32_t>(ids.size()));
  }
  /// Made reusable (slot_fifo::pop): the buffers keep their capacity.
  void clear() noexcept {
    cb = nullptr;
    scopes = 0;
    ids.clear();
    ends.clear();
    parallel.clear();
  }
};

redis::settings connection_settings(const redis_settings& s) {
  redis::settings c = s;
  c.outage_note = "limits are decided locally until it answers";
  return c;
}

}  // namespace

struct redis_limiter::impl {
  impl(asio::io_context& i, redis_settings st)
      : io(i), s(std::move(st)), field(s.node_id + "/" + std::to_string(s.thread)), conn(i, connection_settings(s)) {
    s.window.buckets = std::max(1, s.window.buckets);
    s.window.window_ms = std::max<std::int64_t>(1, s.window.window_ms);
    // Other nodes drop the in-flight counts of a node silent for 10 s.
    s.heartbeat = std::clamp(s.heartbeat, milliseconds(10), milliseconds(5'000));
    // The script is part of every connection's handshake: up once it is loaded.
    conn.on_connect([this] {
      conn.send_setup(script.script_load(k_script), "SCRIPT LOAD", [this](const redis::reply& r) {
        if (!r.is_string()) return false;
        sha.assign(r.str());
        return true;
      });
    });
    conn.on_up([this] {
      send_heartbeat();
      if (rewrite_all) write_all();
    });
    // After the commands still waiting failed: everything is rewritten when it returns.
    conn.on_down([this] {
      reloading = false;
      rewrite_all = true;
      to_write.clear();
    });
  }

  asio::io_context& io;
  redis_settings s;
  const std::string field;  ///< "<node>/<thread>"
  /// Timer handlers hold it weakly: nothing of a destroyed limiter is touched.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  asio::steady_timer heartbeat_timer{io};

  bool stopped = true;
  bool reloading = false;    ///< SCRIPT LOAD after NOSCRIPT sent
  bool rewrite_all = false;  ///< rewrite every in-flight field once up
  std::string sha;
  steady::time_point last_error_log{};

  /// This limiter's commands awaiting a reply, in the connection's order.
  redis::slot_fifo<command> ring;
  std::uint64_t next_seq = 1;

  /// This thread's in-flight count of one parallel-limited scope.
  struct flight {
    std::int64_t count = 0;       ///< admitted and not released, plus acquires waiting
    std::int64_t waiting = 0;     ///< acquires waiting for Redis
    std::uint64_t last_seq = 0;   ///< the last command that wrote the field
    steady::time_point written{};
    bool dirty = false;           ///< Redis may hold a value the client no longer has
  };
  using flight_map = string_map<flight>;
  flight_map in_flight;
  std::vector<flight_map::value_type*> to_write;  ///< scratch

  /// The pre-check: scope id -> refused until.
  struct refusal {
    steady::time_point until;
    kind k;
    std::int64_t limit;
  };
  string_map<refusal> refused;

  /// The command being built (hiredis only copies it), and the handshake's.
  redis::command cmd, script;
  std::vector<flight_map::value_type*> scratch;
  std::vector<long long> ints;  ///< a script reply's integers (scratch)

  std::atomic<std::size_t> live_nodes{1};
  std::atomic<std::uint64_t> failures{0}, prechecked{0};  ///< the connection counts the rest

  /// Last: destroyed first, its callbacks (which refer to the members above) dropped.
  redis::connection conn;

  bool ready() const noexcept { return conn.up(); }

  // ------------------------------------------------------------------ argv
  void arg_int(std::int64_t v) { cmd.arg_int(v); }
  void arg_key(std::string_view kind_part, std::string_view id) { cmd.arg_concat(s.prefix, kind_part, id); }
  /// EVALSHA sha numkeys: the caller adds the keys, then script_args().
  void begin_script(std::size_t nscopes) { cmd.evalsha(sha, nscopes * 2 + 1); }
  void script_args(char mode) {
    arg_key(":nodes", {});
    cmd.arg(std::string_view(&mode, 1));
    cmd.arg_int(s.window.window_ms);
    cmd.arg_int(s.window.buckets);
    cmd.arg(s.node_id);
    cmd.arg(field);
  }

  /// Sends the command built; its slot (valid until the next send), or null.
  command* send(op what) {
    if (!conn.send(cmd, [this](std::optional<redis::reply> r) { answer(r); })) return nullptr;
    auto& c = ring.push();
    c.seq = next_seq++;
    c.what = what;
    return &c;
  }

  // ------------------------------------------------------------ replies
  void log_error(std::string_view what, const redis::reply& r) {
    auto now = steady::now();
    if (now - last_error_log < k_error_log_every) return;
    last_error_log = now;
    std::string m = "redis: ";
    m += what;
    m += ": ";
    if (r.is_error())
      m += r.str();
    else
      m += "unexpected reply";
    log::warn(m);
  }

  /// The reply to the oldest command, or none (the connection is going down: every
  /// command waiting fails, oldest first; re-entrant: a callback may stop() the limiter
  /// or acquire again).
  void answer(std::optional<redis::reply> reply) {
    command& c = ring.front();
    if (!reply) {
      redis_limiter::callback cb;
      if (c.what == op::acquire) {
        settle(c, nullptr);
        cb = std::move(c.cb);
      }
      ring.pop();
      if (cb) cb(std::nullopt);
      return;
    }
    const redis::reply& r = *reply;
    const bool error = r.is_error();
    const bool noscript = r.is_noscript();
    switch (c.what) {
      case op::reload: {
        bool ok = r.is_string();
        if (ok) sha.assign(r.str());
        ring.pop();
        reloading = false;
        if (!ok) return conn.reset("SCRIPT LOAD failed");
        return write_all();
      }
      case op::heartbeat: {
        if (r.is_integer())
          live_nodes.store(static_cast<std::size_t>(std::max<long long>(1, r.integer())), std::memory_order_relaxed);
        else {
          failures.fetch_add(1, std::memory_order_relaxed);
          log_error("heartbeat failed", r);
        }
        ring.pop();
        if (noscript) reload();
        return;
      }
      case op::write: {
        if (error) {
          failures.fetch_add(1, std::memory_order_relaxed);
          log_error("limit script failed", r);
          rewrite_all = true;  // rewritten at the next heartbeat
        } else {
          forget_written(c);
        }
        ring.pop();
        if (noscript) reload();
        return;
      }
      case op::acquire: {
        decision d;
        bool ok = parse(r, c.scopes, d);
        if (!ok) {
          failures.fetch_add(1, std::memory_order_relaxed);
          log_error("limit script failed", r);
        }
        settle(c, ok ? &d : nullptr);
        auto cb = std::move(c.cb);
        ring.pop();
        if (noscript) reload();
        flush_to_write();
        if (ok)
          cb(std::move(d));
        else
          cb(std::nullopt);
        return;
      }
    }
  }

  /// SCRIPT LOAD again after NOSCRIPT (Redis lost its scripts: SCRIPT FLUSH, failover).
  /// The commands already sent fail; the next ones run after it.
  void reload() {
    rewrite_all = true;
    if (reloading) return;
    cmd.script_load(k_script);
    if (send(op::reload)) reloading = true;
  }

  bool parse(const redis::reply& r, std::size_t nscopes, decision& d) {
    if (r.size() < 6) return false;
    ints.resize(r.size());
    if (!r.integers(ints.data(), ints.size())) return false;
    auto at = [this](std::size_t i) { return static_cast<std::int64_t>(ints[i]); };
    d.admitted = at(0) == 1;
    d.states.assign(nscopes, scope_state{});
    if (d.admitted) {
      if (ints.size() != 6 + nscopes * 6) return false;
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
      return true;
    }
    auto idx = at(1), k = at(2);
    if (idx < 0 || static_cast<std::size_t>(idx) >= nscopes || k < 0 || k > 2) return false;
    d.refused = static_cast<int>(idx);
    d.refused_kind = static_cast<kind>(k);
    d.limit = at(3);
    d.current = at(4);
    d.retry_after_ms = std::max<std::int64_t>(1, at(5));
    return true;
  }

  // -------------------------------------------------- in-flight bookkeeping
  /// An acquire's outcome (d null: failed): counts taken back where it was not admitted,
  /// the pre-check told about a window refusal.
  void settle(command& c, const decision* d) {
    bool admitted = d && d->admitted;
    for (std::size_t i = 0; i < c.parallel.size(); ++i) {
      if (!c.parallel[i]) continue;
      auto it = in_flight.find(c.id(i));
      if (it == in_flight.end()) continue;
      auto& f = it->second;
      if (f.waiting > 0) --f.waiting;
      if (!admitted) {
        if (f.count > 0) --f.count;
        // A later write carried this one too, or the script failed half way: rewrite.
        if (!d || f.last_seq != c.seq) f.dirty = true;
      }
      if (f.dirty && f.waiting == 0) to_write.push_back(&*it);
    }
    if (d && !d->admitted && d->refused_kind != kind::parallel && s.precheck)
      remember(c.id(static_cast<std::size_t>(d->refused)), *d);
  }

  /// A write answered: fields it set to 0 whose scope is idle here are forgotten.
  void forget_written(const command& c) {
    for (std::size_t i = 0; i < c.ends.size(); ++i) {
      auto it = in_flight.find(c.id(i));
      if (it == in_flight.end()) continue;
      auto& f = it->second;
      if (f.last_seq == c.seq && f.count == 0 && f.waiting == 0 && !f.dirty) in_flight.erase(it);
    }
  }

  void flush_to_write() {
    if (to_write.empty()) return;
    scratch.swap(to_write);
    to_write.clear();
    write_fields(scratch);
    scratch.clear();
  }

  /// Every field this thread holds (after a reconnect or reload).
  void write_all() {
    if (!ready()) return;
    rewrite_all = false;
    scratch.clear();
    for (auto& e : in_flight) scratch.push_back(&e);
    write_fields(scratch);
    scratch.clear();
  }

  /// Rewrites this thread's in-flight fields of `entries` (absolute values).
  void write_fields(const std::vector<flight_map::value_type*>& entries) {
    if (!ready()) {
      rewrite_all = true;
      return;
    }
    auto now = steady::now();
    for (std::size_t from = 0; from < entries.size(); from += k_write_chunk) {
      auto to = std::min(entries.size(), from + k_write_chunk);
      begin_script(to - from);
      for (auto i = from; i < to; ++i) {
        arg_key(":w:", entries[i]->first);
        arg_key(":p:", entries[i]->first);
      }
      script_args('r');
      for (auto i = from; i < to; ++i) {
        arg_int(-1);
        arg_int(-1);
        arg_int(0);
        arg_int(entries[i]->second.count);
        arg_int(0);
      }
      auto* c = send(op::write);
      if (!c) {
        rewrite_all = true;
        return;
      }
      for (auto i = from; i < to; ++i) {
        auto& f = entries[i]->second;
        f.last_seq = c->seq;
        f.written = now;
        f.dirty = false;
        c->add_id(entries[i]->first);
      }
    }
  }

  /// Keeps the fields of long requests from expiring (and rewrites what failed).
  void refresh_fields() {
    if (rewrite_all) return write_all();
    auto now = steady::now();
    auto half = milliseconds(std::max<std::int64_t>(1, s.window.window_ms / 2));
    scratch.clear();
    for (auto& e : in_flight) {
      auto& f = e.second;
      if (f.waiting == 0 && (f.dirty || (f.count > 0 && now - f.written >= half))) scratch.push_back(&e);
    }
    write_fields(scratch);
    scratch.clear();
  }

  void remember(std::string_view id, const decision& d) {
    auto now = steady::now();
    if (refused.size() >= k_precheck_max) {
      std::erase_if(refused, [now](const auto& e) { return e.second.until <= now; });
      if (refused.size() >= k_precheck_max && refused.find(id) == refused.end()) return;
    }
    auto until = now + milliseconds(d.retry_after_ms);
    auto it = refused.find(id);
    if (it == refused.end())
      refused.emplace(std::string(id), refusal{until, d.refused_kind, d.limit});
    else
      it->second = refusal{until, d.refused_kind, d.limit};
  }

  // ------------------------------------------------------------ timers
  void send_heartbeat() {
    if (!ready()) return;
    begin_script(0);
    script_args('h');
    send(op::heartbeat);
  }

  void heartbeat_loop() {
    heartbeat_timer.expires_after(s.heartbeat);
    heartbeat_timer.async_wait([this, a = std::weak_ptr<bool>(alive)](error_code ec) {
      if (a.expired() || ec || stopped) return;
      if (ready()) {
        send_heartbeat();
        refresh_fields();
      }
      heartbeat_loop();
    });
  }
};

redis_limiter::redis_limiter(boost::asio::io_context& io, redis_settings s)
    : impl_(std::make_unique<impl>(io, std::move(s))) {}

/// Callbacks of commands still waiting are dropped (destroyed, never called): the
/// io_context is stopped by then. stop() first to have them called with std::nullopt.
redis_limiter::~redis_limiter() { impl_->stopped = true; }

void redis_limiter::start() {
  auto& m = *impl_;
  if (!m.stopped) return;
  m.stopped = false;
  m.heartbeat_loop();
  m.conn.start();
}

void redis_limiter::stop() {
  auto& m = *impl_;
  m.stopped = true;
  m.heartbeat_timer.cancel();
  // Pending acquire callbacks are called here, with std::nullopt.
  m.conn.stop();
}

bool redis_limiter::up() const noexcept { return impl_->conn.up(); }

redis_status redis_limiter::status() const {
  auto& m = *impl_;
  auto c = m.conn.status();
  redis_status st;
  st.up = c.up;
  st.live_nodes = std::max<std::size_t>(1, m.live_nodes.load(std::memory_order_relaxed));
  st.commands = c.commands;
  st.failures = c.failures + m.failures.load(std::memory_order_relaxed);
  st.timeouts = c.timeouts;
  st.reconnects = c.reconnects;
  st.prechecked = m.prechecked.load(std::memory_order_relaxed);
  return st;
}

std::optional<decision> redis_limiter::precheck(const std::vector<scope>& scopes) {
  auto& m = *impl_;
  if (!m.s.precheck || m.refused.empty()) return std::nullopt;
  auto now = steady::now();
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    auto it = m.refused.find(scopes[i].id);
    if (it == m.refused.end()) continue;
    const auto& r = it->second;
    auto limit = r.k == kind::tokens ? scopes[i].tpm : scopes[i].rpm;
    if (r.until <= now || limit != r.limit) {  // its time came, or the limit changed
      m.refused.erase(it);
      continue;
    }
    decision d;
    d.refused = static_cast<int>(i);
    d.refused_kind = r.k;
    d.limit = r.limit;
    d.current = r.limit;
    d.retry_after_ms = std::max<std::int64_t>(1, std::chrono::ceil<milliseconds>(r.until - now).count());
    d.states.assign(scopes.size(), scope_state{});
    m.prechecked.fetch_add(1, std::memory_order_relaxed);
    return d;
  }
  return std::nullopt;
}

void redis_limiter::acquire(const std::vector<scope>& scopes, callback cb) {
  auto& m = *impl_;
  if (std::none_of(scopes.begin(), scopes.end(), [](const scope& sc) { return sc.limited(); })) {
    // Nothing to count: admitted, no round trip.
    decision d;
    d.admitted = true;
    d.states.assign(scopes.size(), scope_state{});
    asio::post(m.io, [cb = std::move(cb), d = std::move(d)]() mutable { cb(std::move(d)); });
    return;
  }
  if (!m.ready()) {
    asio::post(m.io, [cb = std::move(cb)] { cb(std::nullopt); });
    return;
  }
  auto& entries = m.scratch;
  entries.clear();
  m.begin_script(scopes.size());
  for (const auto& sc : scopes) {
    m.arg_key(":w:", sc.id);
    m.arg_key(":p:", sc.id);
  }
  m.script_args('a');
  for (const auto& sc : scopes) {
    m.arg_int(sc.rpm);
    m.arg_int(sc.tpm);
    m.arg_int(sc.max_parallel);
    if (sc.max_parallel >= 0) {
      auto it = m.in_flight.find(sc.id);
      if (it == m.in_flight.end()) it = m.in_flight.emplace(sc.id, impl::flight{}).first;
      entries.push_back(&*it);
      m.arg_int(it->second.count + 1);
    } else {
      m.arg_int(-1);
    }
    m.arg_int(0);
  }
  auto now = steady::now();
  auto* c = m.send(op::acquire);
  if (!c) {
    // Forget the entries made for it (once each: a scope may be passed twice).
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    for (auto* e : entries)
      if (e->second.count == 0 && e->second.waiting == 0 && !e->second.dirty && e->second.last_seq == 0)
        m.in_flight.erase(m.in_flight.find(e->first));
    entries.clear();
    asio::post(m.io, [cb = std::move(cb)] { cb(std::nullopt); });
    return;
  }
  c->cb = std::move(cb);
  c->scopes = scopes.size();
  for (const auto& sc : scopes) {
    c->add_id(sc.id);
    c->parallel.push_back(sc.max_parallel >= 0 ? 1 : 0);
  }
  for (auto* e : entries) {
    auto& f = e->second;
    ++f.count;
    ++f.waiting;
    f.last_seq = c->seq;
    f.written = now;
  }
  entries.clear();
}

bool redis_limiter::release(const std::vector<scope>& scopes, const token_usage& usage) {
  auto& m = *impl_;
  const bool up = m.ready();
  bool work = false;
  for (const auto& sc : scopes) {
    if (sc.max_parallel >= 0) {
      work = true;
      auto it = m.in_flight.find(sc.id);
      if (it != m.in_flight.end() && it->second.count > 0) --it->second.count;
    } else if (sc.tpm >= 0 && usage.of(sc.counts) > 0) {
      work = true;
    }
  }
  if (!up) {
    m.rewrite_all = true;  // the fields are rewritten when Redis returns
    return false;
  }
  if (!work) return true;  // nothing to write: no round trip

  std::size_t n = 0;
  for (const auto& sc : scopes) n += sc.max_parallel >= 0 || (sc.tpm >= 0 && usage.of(sc.counts) > 0);
  m.begin_script(n);
  for (const auto& sc : scopes) {
    if (!(sc.max_parallel >= 0 || (sc.tpm >= 0 && usage.of(sc.counts) > 0))) continue;
    m.arg_key(":w:", sc.id);
    m.arg_key(":p:", sc.id);
  }
  m.script_args('r');
  for (const auto& sc : scopes) {
    auto tokens = std::max<std::int64_t>(0, usage.of(sc.counts));
    if (!(sc.max_parallel >= 0 || (sc.tpm >= 0 && tokens > 0))) continue;
    m.arg_int(-1);
    m.arg_int(sc.tpm);
    m.arg_int(sc.max_parallel);
    std::int64_t mine = 0;
    if (sc.max_parallel >= 0)
      if (auto it = m.in_flight.find(sc.id); it != m.in_flight.end()) mine = it->second.count;
    m.arg_int(mine);
    m.arg_int(tokens);
  }
  auto now = steady::now();
  auto* c = m.send(op::write);
  if (!c) {
    m.rewrite_all = true;
    return false;
  }
  for (const auto& sc : scopes) {
    if (sc.max_parallel < 0) continue;
    auto it = m.in_flight.find(sc.id);
    if (it == m.in_flight.end()) continue;
    auto& f = it->second;
    f.last_seq = c->seq;
    f.written = now;
    f.dirty = false;
    c->add_id(sc.id);
  }
  return true;
}

}  // namespace gw::limits
