// Cluster-wide limits on Redis: hiredis' async API driven by an Asio io_context, one Lua
// script per request. See redis.hpp and docs/RATE_LIMITS.md.
//
// Connection: one hiredis async context per limiter, its socket watched by a
// posix::stream_descriptor (hiredis owns and closes the fd; the descriptor only borrows
// it and is released in hiredis' cleanup hook). Handshake AUTH, SELECT, SCRIPT LOAD is
// pipelined; the limiter is up once the script is loaded. Every command then is an
// EVALSHA, pipelined; replies come back in order, so the commands awaiting a reply are a
// FIFO ring (slots reused, so their buffers keep their capacity) and one timer watches
// the oldest deadline. A command not answered in time, an error on the connection or a
// failed handshake drops the connection: every command still waiting fails (acquire
// callbacks get std::nullopt, once), and the limiter reconnects with exponential backoff
// until stop(). hiredis may call back while a context is being freed (pending commands
// get a null reply, then the disconnect callback): a callback whose context is not the
// current one is ignored, so nothing is failed twice and no freed state is touched.
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

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <string_view>
#include <unordered_map>

#include "gw/core/log.hpp"
#include "tls_bridge.hpp"

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
enum class op : std::uint8_t { auth, select, load, reload, heartbeat, acquire, write };

struct command {
  std::uint64_t seq = 0;
  steady::time_point deadline{};
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
};

/// The commands awaiting a reply, oldest first. Slots are reused (their strings and
/// vectors keep their capacity), so steady traffic allocates nothing here.
class command_ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  command& front() noexcept { return slots_[head_]; }
  /// A cleared slot at the back. Invalidates references to other slots when it grows.
  command& push() {
    if (size_ == slots_.size()) grow();
    auto& c = slots_[(head_ + size_) % slots_.size()];
    ++size_;
    c.cb = nullptr;
    c.scopes = 0;
    c.ids.clear();
    c.ends.clear();
    c.parallel.clear();
    return c;
  }
  void pop() noexcept {
    slots_[head_].cb = nullptr;
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  /// Drops every command without calling anything.
  void clear() noexcept {
    while (!empty()) pop();
  }

 private:
  void grow() {
    std::vector<command> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    slots_.swap(bigger);
    head_ = 0;
  }
  std::vector<command> slots_;
  std::size_t head_ = 0, size_ = 0;
};

/// hiredis' event hooks on an Asio descriptor. hiredis owns the socket and closes it:
/// cleanup releases the descriptor, never closes it. The pending waits share the
/// watcher, so it outlives its context until the last of them has run (or has been
/// destroyed with the io_context).
struct watcher : std::enable_shared_from_this<watcher> {
  explicit watcher(asio::io_context& io) : sd(io) {}
  asio::posix::stream_descriptor sd;
  redisAsyncContext* ac = nullptr;            ///< null once hiredis has cleaned up
  std::shared_ptr<watcher>* owner = nullptr;  ///< the limiter's reference, dropped in cleanup
  bool want_read = false, want_write = false, reading = false, writing = false;

  static void add_read(void* p) {
    auto* w = static_cast<watcher*>(p);
    w->want_read = true;
    w->arm(true);
  }
  static void del_read(void* p) { static_cast<watcher*>(p)->want_read = false; }
  static void add_write(void* p) {
    auto* w = static_cast<watcher*>(p);
    w->want_write = true;
    w->arm(false);
  }
  static void del_write(void* p) { static_cast<watcher*>(p)->want_write = false; }
  static void cleanup(void* p) {
    auto* w = static_cast<watcher*>(p);
    w->ac = nullptr;
    w->want_read = w->want_write = false;
    w->sd.release();  // cancels the waits; hiredis closes the fd
    std::shared_ptr<watcher> keep;
    if (w->owner && w->owner->get() == w) keep = std::move(*w->owner);
    w->owner = nullptr;
    // `keep` may delete the watcher here, the last thing done with it.
  }

  /// One wait per direction at a time; hiredis' hooks may be called any number of times.
  void arm(bool read) {
    bool& busy = read ? reading : writing;
    if (busy || !(read ? want_read : want_write) || !ac) return;
    busy = true;
    sd.async_wait(read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write,
                  [self = shared_from_this(), read](error_code ec) {
                    (read ? self->reading : self->writing) = false;
                    if (ec || !self->ac || !(read ? self->want_read : self->want_write)) return;
                    if (read)
                      redisAsyncHandleRead(self->ac);  // may free the context (cleanup runs)
                    else
                      redisAsyncHandleWrite(self->ac);
                    self->arm(read);
                  });
  }
};

}  // namespace

struct redis_limiter::impl {
  impl(asio::io_context& i, redis_settings st)
      : io(i), s(std::move(st)), field(s.node_id + "/" + std::to_string(s.thread)) {
    s.window.buckets = std::max(1, s.window.buckets);
    s.window.window_ms = std::max<std::int64_t>(1, s.window.window_ms);
    // Other nodes drop the in-flight counts of a node silent for 10 s.
    s.heartbeat = std::clamp(s.heartbeat, milliseconds(10), milliseconds(5'000));
    s.reconnect_min = std::max(s.reconnect_min, milliseconds(1));
    s.reconnect_max = std::max(s.reconnect_max, s.reconnect_min);
  }

  asio::io_context& io;
  redis_settings s;
  const std::string field;  ///< "<node>/<thread>"
  /// Timer and resolver handlers hold it weakly: nothing of a destroyed limiter is touched.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  asio::ip::tcp::resolver resolver{io};
  asio::steady_timer deadline_timer{io}, reconnect_timer{io}, heartbeat_timer{io};
  steady::time_point deadline_at = steady::time_point::max();  ///< what deadline_timer waits for

  redisAsyncContext* ac = nullptr;  ///< the current connection (null: none)
  std::shared_ptr<watcher> w;
  /// TLS: the bridge hiredis talks through (one per connection), the context (made once)
  /// and why the bridge's TLS side failed, for the log line of the outage.
  std::shared_ptr<asio::ssl::context> tls_ctx;
  std::shared_ptr<detail::tls_bridge> bridge;
  std::string bridge_error;
  bool stopped = true;
  bool connecting = false;        ///< resolving
  bool reconnect_pending = false;
  bool reloading = false;         ///< SCRIPT LOAD after NOSCRIPT sent
  bool rewrite_all = false;       ///< rewrite every in-flight field once up
  bool outage_logged = false;
  bool ever_up = false;
  std::string sha;
  milliseconds backoff{0};
  steady::time_point last_error_log{};

  command_ring ring;
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

  /// The command being built, already in RESP (hiredis only copies it): its header
  /// "*<count>" goes into the reserved space in front once the count is known.
  std::string buf;
  std::size_t nargs = 0;
  static constexpr std::size_t k_header_room = 24;
  std::vector<flight_map::value_type*> scratch;

  std::atomic<bool> is_up{false};
  std::atomic<std::size_t> live_nodes{1};
  std::atomic<std::uint64_t> commands{0}, failures{0}, timeouts{0}, reconnects{0}, prechecked{0};

  std::string where() const { return s.host + ":" + std::to_string(s.port); }
  bool ready() const noexcept { return ac && is_up.load(std::memory_order_relaxed); }

  // ------------------------------------------------------------------ argv
  void begin() {
    buf.assign(k_header_room, ' ');
    nargs = 0;
  }
  void append_int(std::int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf.append(tmp, static_cast<std::size_t>(r.ptr - tmp));
  }
  /// "$<length>\r\n": the caller appends the bytes, then end_arg().
  void begin_arg(std::size_t length) {
    buf += '$';
    append_int(static_cast<std::int64_t>(length));
    buf += "\r\n";
    ++nargs;
  }
  void end_arg() { buf += "\r\n"; }
  void arg(std::string_view a) {
    begin_arg(a.size());
    buf.append(a);
    end_arg();
  }
  void arg_int(std::int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    arg(std::string_view(tmp, static_cast<std::size_t>(r.ptr - tmp)));
  }
  void arg_key(std::string_view kind_part, std::string_view id) {
    begin_arg(s.prefix.size() + kind_part.size() + id.size());
    buf += s.prefix;
    buf += kind_part;
    buf += id;
    end_arg();
  }
  /// EVALSHA sha numkeys: the caller adds the keys, then script_args().
  void begin_script(std::size_t nscopes) {
    begin();
    arg("EVALSHA");
    arg(sha);
    arg_int(static_cast<std::int64_t>(nscopes * 2 + 1));
  }
  void script_args(char mode) {
    arg_key(":nodes", {});
    arg(std::string_view(&mode, 1));
    arg_int(s.window.window_ms);
    arg_int(s.window.buckets);
    arg(s.node_id);
    arg(field);
  }

  /// Sends the command built; the command's slot (valid until the next send), or null.
  command* send(op what, steady::time_point deadline) {
    if (!ac) return nullptr;
    char head[k_header_room];
    head[0] = '*';
    auto r = std::to_chars(head + 1, head + sizeof head - 2, static_cast<std::int64_t>(nargs));
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    auto hlen = static_cast<std::size_t>(r.ptr - head);
    auto at = k_header_room - hlen;
    std::copy(head, head + hlen, buf.begin() + static_cast<std::ptrdiff_t>(at));
    auto seq = next_seq++;
    if (redisAsyncFormattedCommand(ac, on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(seq)),
                                   buf.data() + at, buf.size() - at) != REDIS_OK) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    commands.fetch_add(1, std::memory_order_relaxed);
    auto& c = ring.push();
    c.seq = seq;
    c.deadline = deadline;
    c.what = what;
    arm_deadline(deadline);
    return &c;
  }

  // ------------------------------------------------------------ connection
  void connect() {
    if (stopped || ac || connecting) return;
    error_code ec;
    auto addr = asio::ip::make_address(s.host, ec);
    if (!ec) return open(addr.to_string());
    connecting = true;
    resolver.async_resolve(s.host, std::to_string(s.port),
                           [this, a = std::weak_ptr<bool>(alive)](error_code e, asio::ip::tcp::resolver::results_type r) {
                             if (a.expired() || e == asio::error::operation_aborted) return;
                             connecting = false;
                             if (stopped || ac) return;
                             if (e || r.empty()) return attempt_failed("cannot resolve " + s.host + ": " + e.message());
                             open(r.begin()->endpoint().address().to_string());
                           });
  }

  void open(const std::string& ip) {
    redisAsyncContext* c = nullptr;
    if (s.tls) {
      detail::tls_options o{s.tls_verify, s.tls_ca_file, s.host};
      if (!tls_ctx) {
        try {
          tls_ctx = detail::make_tls_context(o);
        } catch (const std::exception& e) {
          return attempt_failed(e.what());
        }
      }
      error_code ec;
      auto addr = asio::ip::make_address(ip, ec);
      if (ec) return attempt_failed("invalid Redis address " + ip);
      std::string err;
      auto b = detail::tls_bridge::open(io, tls_ctx, o, asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(s.port)),
                                        err);
      if (!b) return attempt_failed(err);
      bridge_error.clear();
      b->start([this, a = std::weak_ptr<bool>(alive)](const std::string& why) {
        if (!a.expired()) bridge_error = why;
      });
      bridge = b;
      c = redisAsyncConnectUnix(b->path().c_str());
    } else {
      c = redisAsyncConnect(ip.c_str(), s.port);
    }
    if (!c) return attempt_failed("cannot connect to " + where() + ": out of memory");
    if (c->err) {
      std::string why = c->errstr ? c->errstr : "error";
      redisAsyncFree(c);
      return attempt_failed("cannot connect to " + where() + ": " + why);
    }
    auto wt = std::make_shared<watcher>(io);
    error_code ec;
    wt->sd.assign(c->c.fd, ec);
    if (ec) {
      redisAsyncFree(c);
      return attempt_failed("cannot watch the Redis socket: " + ec.message());
    }
    wt->ac = c;
    w = wt;
    wt->owner = &w;
    c->data = this;
    c->ev.data = wt.get();
    c->ev.addRead = watcher::add_read;
    c->ev.delRead = watcher::del_read;
    c->ev.addWrite = watcher::add_write;
    c->ev.delWrite = watcher::del_write;
    c->ev.cleanup = watcher::cleanup;
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    ac = c;
    // The handshake, pipelined; the connect timeout covers it all.
    auto deadline = steady::now() + s.connect_timeout;
    if (!s.password.empty()) {
      begin();
      arg("AUTH");
      if (!s.username.empty()) arg(s.username);
      arg(s.password);
      send(op::auth, deadline);
    }
    if (s.db != 0) {
      begin();
      arg("SELECT");
      arg_int(s.db);
      send(op::select, deadline);
    }
    begin();
    arg("SCRIPT");
    arg("LOAD");
    arg(k_script);
    if (!send(op::load, deadline)) teardown("cannot send to " + where());
  }

  static void on_connect(const redisAsyncContext* c, int status) {
    auto* m = static_cast<impl*>(c->data);
    if (c != m->ac || status == REDIS_OK) return;
    // hiredis frees the context after this (pending commands get null replies, ignored).
    m->ac = nullptr;
    m->connection_down("cannot connect to " + m->where() + ": " + c->c.errstr, true);
  }

  static void on_disconnect(const redisAsyncContext* c, int) {
    auto* m = static_cast<impl*>(c->data);
    if (c != m->ac) return;  // given up by us already
    m->ac = nullptr;
    m->connection_down("connection to " + m->where() + " lost", false);
  }

  /// Gives the current connection up (outside or inside hiredis' callbacks: hiredis
  /// defers the free until its callback returns).
  void teardown(const std::string& why) {
    auto* c = ac;
    ac = nullptr;
    if (c) redisAsyncFree(c);  // its pending commands call back with null: ignored (c != ac)
    connection_down(why, false);
  }

  /// The connection is gone (ac already null): fail what waits, reconnect later.
  void connection_down(const std::string& why_plain, bool attempt) {
    std::string why = why_plain;
    if (!bridge_error.empty()) why += " (TLS bridge: " + bridge_error + ")";
    bridge_error.clear();
    close_bridge();
    bool was_up = is_up.exchange(false);
    reloading = false;
    rewrite_all = true;
    if (attempt) failures.fetch_add(1, std::memory_order_relaxed);
    if (!stopped && (was_up || !outage_logged)) {
      log::warn("redis: " + why + "; limits are decided locally until it answers");
      outage_logged = true;
    }
    fail_all();
    schedule_reconnect();
  }

  void attempt_failed(const std::string& why) { connection_down(why, true); }

  void close_bridge() {
    if (!bridge) return;
    bridge->close();
    bridge.reset();
  }

  void schedule_reconnect() {
    if (stopped || reconnect_pending) return;
    reconnect_pending = true;
    backoff = backoff.count() == 0 ? s.reconnect_min : std::min(backoff * 2, s.reconnect_max);
    reconnect_timer.expires_after(backoff);
    reconnect_timer.async_wait([this, a = std::weak_ptr<bool>(alive)](error_code ec) {
      if (a.expired() || ec == asio::error::operation_aborted) return;
      reconnect_pending = false;
      if (stopped || ac || connecting) return;
      reconnects.fetch_add(1, std::memory_order_relaxed);
      connect();
    });
  }

  void became_up() {
    backoff = milliseconds(0);
    outage_logged = false;
    is_up = true;
    log::info(std::string("redis: ") + (ever_up ? "reconnected to " : "connected to ") + where());
    ever_up = true;
    send_heartbeat();
    if (rewrite_all) write_all();
  }

  // ------------------------------------------------------------ replies
  static void on_reply(redisAsyncContext* c, void* reply, void* privdata) {
    auto* m = static_cast<impl*>(c->data);
    if (c != m->ac) return;  // a connection given up: its commands were failed then
    auto seq = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
    if (m->ring.empty() || m->ring.front().seq != seq) return;  // not ours (replies come in order)
    if (!reply) {
      // hiredis is freeing the context after an error: fail everything once, now.
      m->ac = nullptr;
      m->connection_down("connection to " + m->where() + " lost", false);
      return;
    }
    m->answer(static_cast<redisReply*>(reply));
  }

  void log_error(std::string_view what, const redisReply* r) {
    auto now = steady::now();
    if (now - last_error_log < k_error_log_every) return;
    last_error_log = now;
    std::string m = "redis: ";
    m += what;
    m += ": ";
    if (r && r->type == REDIS_REPLY_ERROR)
      m.append(r->str, r->len);
    else
      m += "unexpected reply";
    log::warn(m);
  }

  /// The reply to the oldest command.
  void answer(redisReply* r) {
    command& c = ring.front();
    const bool error = r->type == REDIS_REPLY_ERROR;
    const bool noscript = error && std::string_view(r->str, r->len).substr(0, 8) == "NOSCRIPT";
    switch (c.what) {
      case op::auth:
      case op::select:
      case op::load: {
        bool ok = !error && (c.what != op::load || r->type == REDIS_REPLY_STRING);
        auto what = c.what;
        if (ok && what == op::load) sha.assign(r->str, r->len);
        ring.pop();
        if (!ok) {
          failures.fetch_add(1, std::memory_order_relaxed);
          std::string why = what == op::auth ? "AUTH failed" : what == op::select ? "SELECT failed" : "SCRIPT LOAD failed";
          if (error) why += std::string(": ") + std::string(r->str, r->len);
          return teardown(why);
        }
        if (what == op::load) became_up();
        return;
      }
      case op::reload: {
        bool ok = r->type == REDIS_REPLY_STRING;
        if (ok) sha.assign(r->str, r->len);
        ring.pop();
        reloading = false;
        if (!ok) return teardown("SCRIPT LOAD failed");
        return write_all();
      }
      case op::heartbeat: {
        if (r->type == REDIS_REPLY_INTEGER)
          live_nodes.store(static_cast<std::size_t>(std::max<long long>(1, r->integer)), std::memory_order_relaxed);
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

  /// Fails every command waiting (acquire callbacks get std::nullopt), oldest first.
  /// Re-entrant: a callback may stop() the limiter or acquire again.
  void fail_all() {
    while (!ring.empty()) {
      auto& c = ring.front();
      failures.fetch_add(1, std::memory_order_relaxed);
      redis_limiter::callback cb;
      if (c.what == op::acquire) {
        settle(c, nullptr);
        cb = std::move(c.cb);
      }
      ring.pop();
      if (cb) cb(std::nullopt);
    }
    to_write.clear();  // the connection is gone: everything is rewritten when it returns
  }

  /// SCRIPT LOAD again after NOSCRIPT (Redis lost its scripts: SCRIPT FLUSH, failover).
  /// The commands already sent fail; the next ones run after it.
  void reload() {
    rewrite_all = true;
    if (reloading || !ac) return;
    begin();
    arg("SCRIPT");
    arg("LOAD");
    arg(k_script);
    if (send(op::reload, steady::now() + s.timeout)) reloading = true;
  }

  static bool parse(const redisReply* r, std::size_t nscopes, decision& d) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 6) return false;
    for (std::size_t i = 0; i < r->elements; ++i)
      if (!r->element[i] || r->element[i]->type != REDIS_REPLY_INTEGER) return false;
    auto at = [r](std::size_t i) { return static_cast<std::int64_t>(r->element[i]->integer); };
    d.admitted = at(0) == 1;
    d.states.assign(nscopes, scope_state{});
    if (d.admitted) {
      if (r->elements != 6 + nscopes * 6) return false;
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
      auto* c = send(op::write, now + s.timeout);
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
  void arm_deadline(steady::time_point t) {
    if (deadline_at <= t) return;
    deadline_at = t;
    deadline_timer.expires_at(t);
    deadline_timer.async_wait([this, a = std::weak_ptr<bool>(alive)](error_code ec) {
      if (a.expired() || ec) return;
      deadline_at = steady::time_point::max();
      check_deadline();
    });
  }

  void check_deadline() {
    if (ring.empty() || stopped) return;
    auto& c = ring.front();
    if (c.deadline > steady::now()) return arm_deadline(c.deadline);
    bool handshake = c.what == op::auth || c.what == op::select || c.what == op::load;
    if (handshake) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return teardown("no connection to " + where() + " within " + std::to_string(s.connect_timeout.count()) + " ms");
    }
    timeouts.fetch_add(1, std::memory_order_relaxed);
    teardown("no answer from " + where() + " within " + std::to_string(s.timeout.count()) + " ms");
  }

  void send_heartbeat() {
    if (!ready()) return;
    begin_script(0);
    script_args('h');
    send(op::heartbeat, steady::now() + s.timeout);
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
redis_limiter::~redis_limiter() {
  auto& m = *impl_;
  m.stopped = true;
  m.is_up = false;
  m.ring.clear();
  if (auto* c = m.ac) {
    m.ac = nullptr;
    redisAsyncFree(c);  // callbacks with null replies are ignored (c is not current)
  }
  m.close_bridge();
}

void redis_limiter::start() {
  auto& m = *impl_;
  if (!m.stopped) return;
  m.stopped = false;
  m.heartbeat_loop();
  m.connect();
}

void redis_limiter::stop() {
  auto& m = *impl_;
  if (m.stopped && !m.ac && m.ring.empty()) return;
  m.stopped = true;
  m.deadline_timer.cancel();
  m.deadline_at = steady::time_point::max();
  m.reconnect_timer.cancel();
  m.reconnect_pending = false;
  m.heartbeat_timer.cancel();
  m.resolver.cancel();
  m.connecting = false;
  // Pending acquire callbacks are called here, with std::nullopt.
  m.teardown("stopped");
}

bool redis_limiter::up() const noexcept { return impl_->is_up.load(std::memory_order_relaxed); }

redis_status redis_limiter::status() const {
  auto& m = *impl_;
  redis_status st;
  st.up = up();
  st.live_nodes = std::max<std::size_t>(1, m.live_nodes.load(std::memory_order_relaxed));
  st.commands = m.commands.load(std::memory_order_relaxed);
  st.failures = m.failures.load(std::memory_order_relaxed);
  st.timeouts = m.timeouts.load(std::memory_order_relaxed);
  st.reconnects = m.reconnects.load(std::memory_order_relaxed);
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
  auto* c = m.send(op::acquire, now + m.s.timeout);
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
  auto* c = m.send(op::write, now + m.s.timeout);
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
