// One Redis connection on an io_context. See connection.hpp.
//
// One hiredis async context per connection, its socket watched by a
// posix::stream_descriptor (hiredis owns and closes the fd; the descriptor only borrows
// it and is released in hiredis' cleanup hook). The handshake (AUTH, SELECT, the owner's
// setup steps) is pipelined; the connection is up once all of it is answered. Commands
// are pipelined and replies come back in order, so the commands awaiting a reply are a
// FIFO of reusable slots and one timer watches the oldest deadline. hiredis may call back
// while a context is being freed (pending commands get a null reply, then the disconnect
// callback): a callback whose context is not the current one is ignored, so nothing is
// failed twice and no freed state is touched.
#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)

#include "gw/redis/connection.hpp"

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

#include "gw/core/log.hpp"
#include "gw/redis/slot_fifo.hpp"
#include "tls_bridge.hpp"

namespace gw::redis {

// ---------------------------------------------------------------- command
command::command() { clear(); }

command& command::clear() {
  buf_.assign(header_room, ' ');
  nargs_ = 0;
  return *this;
}

/// "$<length>\r\n": the caller appends the bytes, then "\r\n".
void command::begin_arg(std::size_t length) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, static_cast<std::uint64_t>(length));
  buf_ += '$';
  buf_.append(tmp, static_cast<std::size_t>(r.ptr - tmp));
  buf_ += "\r\n";
  ++nargs_;
}

command& command::arg(std::string_view a) {
  begin_arg(a.size());
  buf_.append(a);
  buf_ += "\r\n";
  return *this;
}

command& command::arg_int(std::int64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  return arg(std::string_view(tmp, static_cast<std::size_t>(r.ptr - tmp)));
}

command& command::arg_concat(std::string_view a, std::string_view b, std::string_view c) {
  begin_arg(a.size() + b.size() + c.size());
  buf_ += a;
  buf_ += b;
  buf_ += c;
  buf_ += "\r\n";
  return *this;
}

command& command::evalsha(std::string_view sha, std::size_t numkeys) {
  return clear().arg("EVALSHA").arg(sha).arg_int(static_cast<std::int64_t>(numkeys));
}

command& command::script_load(std::string_view script) { return clear().arg("SCRIPT").arg("LOAD").arg(script); }

std::string_view command::finish() {
  char head[header_room];
  head[0] = '*';
  auto r = std::to_chars(head + 1, head + sizeof head - 2, static_cast<std::uint64_t>(nargs_));
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  auto hlen = static_cast<std::size_t>(r.ptr - head);
  auto at = header_room - hlen;
  std::copy(head, head + hlen, buf_.begin() + static_cast<std::ptrdiff_t>(at));
  return std::string_view(buf_).substr(at);
}

namespace {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// A command waiting for its reply.
struct pending {
  std::uint64_t seq = 0;
  steady::time_point deadline{};
  bool setup = false;                   ///< a handshake step
  connection::callback cb;              ///< not a handshake step
  connection::setup_check check;        ///< a handshake step's
  std::string what;                     ///< a handshake step's name, for the log
  void clear() noexcept {
    cb = nullptr;
    check = nullptr;
  }
};

/// hiredis' event hooks on an Asio descriptor. hiredis owns the socket and closes it:
/// cleanup releases the descriptor, never closes it. The pending waits share the
/// watcher, so it outlives its context until the last of them has run (or has been
/// destroyed with the io_context).
struct watcher : std::enable_shared_from_this<watcher> {
  explicit watcher(asio::io_context& io) : sd(io) {}
  asio::posix::stream_descriptor sd;
  redisAsyncContext* ac = nullptr;            ///< null once hiredis has cleaned up
  std::shared_ptr<watcher>* owner = nullptr;  ///< the connection's reference, dropped in cleanup
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

struct connection::impl {
  impl(asio::io_context& i, settings st) : io(i), s(std::move(st)) {
    s.reconnect_min = std::max(s.reconnect_min, milliseconds(1));
    s.reconnect_max = std::max(s.reconnect_max, s.reconnect_min);
  }

  asio::io_context& io;
  settings s;
  /// Timer and resolver handlers hold it weakly: nothing of a destroyed connection is touched.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  asio::ip::tcp::resolver resolver{io};
  asio::steady_timer deadline_timer{io}, reconnect_timer{io};
  steady::time_point deadline_at = steady::time_point::max();  ///< what deadline_timer waits for

  redisAsyncContext* ac = nullptr;  ///< the current connection (null: none)
  std::shared_ptr<watcher> w;
  /// TLS: the bridge hiredis talks through (one per connection), the context (made once)
  /// and why the bridge's TLS side failed, for the log line of the outage.
  std::shared_ptr<asio::ssl::context> tls_ctx;
  std::shared_ptr<detail::tls_bridge> bridge;
  std::string bridge_error;
  bool stopped = true;
  bool connecting = false;  ///< resolving
  bool reconnect_pending = false;
  bool outage_logged = false;
  bool ever_up = false;
  milliseconds backoff{0};

  std::function<void()> on_connect, on_up, on_down;
  bool in_setup = false;                ///< inside on_connect
  bool setup_failed = false;            ///< a handshake step could not be sent
  std::size_t setup_left = 0;           ///< handshake steps not answered yet
  steady::time_point setup_deadline{};  ///< the handshake's

  slot_fifo<pending> ring;
  std::uint64_t next_seq = 1;
  command scratch;  ///< call(argv)

  std::atomic<bool> is_up{false};
  std::atomic<std::uint64_t> commands{0}, failures{0}, timeouts{0}, reconnects{0};

  std::string where() const { return s.host + ":" + std::to_string(s.port); }

  /// Sends `c`; its slot (valid until the next send), or null.
  pending* send(command& c, steady::time_point deadline) {
    if (!ac) return nullptr;
    auto bytes = c.finish();
    auto seq = next_seq++;
    if (redisAsyncFormattedCommand(ac, on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(seq)),
                                   bytes.data(), bytes.size()) != REDIS_OK) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    commands.fetch_add(1, std::memory_order_relaxed);
    auto& p = ring.push();
    p.seq = seq;
    p.deadline = deadline;
    p.setup = false;
    arm_deadline(deadline);
    return &p;
  }

  bool setup_step(command& c, std::string what, setup_check check) {
    auto* p = send(c, setup_deadline);
    if (!p) {
      setup_failed = true;
      return false;
    }
    p->setup = true;
    p->what = std::move(what);
    p->check = std::move(check);
    ++setup_left;
    return true;
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
    redisAsyncSetConnectCallback(c, on_connected);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    ac = c;
    // The handshake, pipelined; the connect timeout covers it all.
    setup_deadline = steady::now() + s.connect_timeout;
    setup_left = 0;
    setup_failed = false;
    auto always = [](const reply&) { return true; };
    if (!s.password.empty()) {
      scratch.clear().arg("AUTH");
      if (!s.username.empty()) scratch.arg(s.username);
      scratch.arg(s.password);
      setup_step(scratch, "AUTH", always);
    }
    if (s.db != 0) setup_step(scratch.clear().arg("SELECT").arg_int(s.db), "SELECT", always);
    if (on_connect) {
      in_setup = true;
      on_connect();
      in_setup = false;
    }
    if (ac && setup_left == 0 && !setup_failed) setup_step(scratch.clear().arg("PING"), "PING", always);
    if (ac && setup_failed) teardown("cannot send to " + where());
  }

  static void on_connected(const redisAsyncContext* c, int status) {
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
    if (attempt) failures.fetch_add(1, std::memory_order_relaxed);
    if (!stopped && (was_up || !outage_logged)) {
      log::warn("redis: " + why + (s.outage_note.empty() ? "" : "; " + s.outage_note));
      outage_logged = true;
    }
    fail_all();
    if (on_down) on_down();
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
    if (on_up) on_up();
  }

  // ------------------------------------------------------------ replies
  static void on_reply(redisAsyncContext* c, void* r, void* privdata) {
    auto* m = static_cast<impl*>(c->data);
    if (c != m->ac) return;  // a connection given up: its commands were failed then
    auto seq = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
    if (m->ring.empty() || m->ring.front().seq != seq) return;  // not ours (replies come in order)
    if (!r) {
      // hiredis is freeing the context after an error: fail everything once, now.
      m->ac = nullptr;
      m->connection_down("connection to " + m->where() + " lost", false);
      return;
    }
    m->answer(reply(static_cast<redisReply*>(r)));
  }

  /// The reply to the oldest command.
  void answer(reply r) {
    pending& p = ring.front();
    if (p.setup) {
      bool ok = !r.is_error() && (!p.check || p.check(r));
      std::string what = std::move(p.what);
      ring.pop();
      if (!ok) {
        failures.fetch_add(1, std::memory_order_relaxed);
        std::string why = what + " failed";
        if (r.is_error()) why += ": " + std::string(r.str());
        return teardown(why);
      }
      if (--setup_left == 0) became_up();
      return;
    }
    auto cb = std::move(p.cb);
    ring.pop();
    cb(r);
  }

  /// Fails every command waiting (callbacks get std::nullopt), oldest first.
  /// Re-entrant: a callback may stop() the connection or send again.
  void fail_all() {
    while (!ring.empty()) {
      auto& p = ring.front();
      failures.fetch_add(1, std::memory_order_relaxed);
      callback cb = p.setup ? nullptr : std::move(p.cb);
      ring.pop();
      if (cb) cb(std::nullopt);
    }
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
    auto& p = ring.front();
    if (p.deadline > steady::now()) return arm_deadline(p.deadline);
    if (p.setup) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return teardown("no connection to " + where() + " within " + std::to_string(s.connect_timeout.count()) + " ms");
    }
    timeouts.fetch_add(1, std::memory_order_relaxed);
    teardown("no answer from " + where() + " within " + std::to_string(s.timeout.count()) + " ms");
  }
};

connection::connection(boost::asio::io_context& io, settings s) : impl_(std::make_unique<impl>(io, std::move(s))) {}

/// Callbacks of commands still waiting are dropped (destroyed, never called): the
/// io_context is stopped by then. stop() first to have them called with std::nullopt.
connection::~connection() {
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

void connection::start() {
  auto& m = *impl_;
  if (!m.stopped) return;
  m.stopped = false;
  m.connect();
}

void connection::stop() {
  auto& m = *impl_;
  if (m.stopped && !m.ac && m.ring.empty()) return;
  m.stopped = true;
  m.deadline_timer.cancel();
  m.deadline_at = std::chrono::steady_clock::time_point::max();
  m.reconnect_timer.cancel();
  m.reconnect_pending = false;
  m.resolver.cancel();
  m.connecting = false;
  // Pending callbacks are called here, with std::nullopt.
  m.teardown("stopped");
}

void connection::reset(const std::string& why) { impl_->teardown(why); }

bool connection::up() const noexcept { return impl_->is_up.load(std::memory_order_relaxed); }

connection_status connection::status() const {
  auto& m = *impl_;
  connection_status st;
  st.up = up();
  st.commands = m.commands.load(std::memory_order_relaxed);
  st.failures = m.failures.load(std::memory_order_relaxed);
  st.timeouts = m.timeouts.load(std::memory_order_relaxed);
  st.reconnects = m.reconnects.load(std::memory_order_relaxed);
  return st;
}

bool connection::send(command& c, callback cb) {
  auto* p = impl_->send(c, std::chrono::steady_clock::now() + impl_->s.timeout);
  if (!p) return false;
  p->cb = std::move(cb);
  return true;
}

void connection::call(command& c, callback cb) {
  auto* p = impl_->send(c, std::chrono::steady_clock::now() + impl_->s.timeout);
  if (p) {
    p->cb = std::move(cb);
    return;
  }
  boost::asio::post(impl_->io, [cb = std::move(cb)] { cb(std::nullopt); });
}

void connection::call(std::initializer_list<std::string_view> argv, callback cb) {
  auto& c = impl_->scratch.clear();
  for (auto a : argv) c.arg(a);
  call(c, std::move(cb));
}

void connection::on_connect(std::function<void()> f) { impl_->on_connect = std::move(f); }
void connection::on_up(std::function<void()> f) { impl_->on_up = std::move(f); }
void connection::on_down(std::function<void()> f) { impl_->on_down = std::move(f); }

bool connection::send_setup(command& c, std::string what, setup_check check) {
  auto& m = *impl_;
  if (!m.in_setup) return false;
  return m.setup_step(c, std::move(what), std::move(check));
}

}  // namespace gw::redis
