#include "gw/http/server.hpp"

#include <boost/asio/write.hpp>
#include <charconv>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstring>  // explicit_bzero
#include <stdexcept>

#include "gw/core/error.hpp"
#include "gw/core/log.hpp"
#include "gw/http/listen.hpp"

namespace gw::http {

namespace {
bool is_http_parse_error(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}
}  // namespace

std::string_view reason_phrase(unsigned status) noexcept {
  auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return r.empty() ? std::string_view("Unknown") : std::string_view(r.data(), r.size());
}

// ---------------------------------------------------------------- listener

struct server::listener {
  io_thread& thread;
  acceptor_type acceptor;
  asio::steady_timer retry_timer;
  /// A descriptor kept in reserve: when the process is out of them (EMFILE), it is
  /// closed to accept the waiting client, answer it 503 and close it, then taken again,
  /// so clients get an answer instead of hanging in the backlog.
  int spare_fd = -1;
  std::chrono::steady_clock::time_point last_log{};
  std::uint64_t unlogged = 0;
  explicit listener(io_thread& t) : thread(t), acceptor(t.io().get_executor()), retry_timer(t.io()) {
    spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  ~listener() {
    if (spare_fd >= 0) ::close(spare_fd);
  }
};

namespace {

constexpr std::string_view k_busy_body =
    R"({"error":{"message":"too many connections: the gateway is out of file descriptors","type":"service_unavailable","param":null,"code":"service_unavailable"}})";

const std::string& busy_response() {
  static const std::string r =
      "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
      "retry-after: 1\r\ncontent-length: " +
      std::to_string(k_busy_body.size()) + "\r\n\r\n" + std::string(k_busy_body);
  return r;
}

}  // namespace

server::server(io_threads& threads, server_options opts, request_handler& handler)
    : threads_(threads), opts_(std::move(opts)), handler_(handler) {}

server::~server() { close(); }

void server::close() { listeners_.clear(); }

void server::start() {
  std::uint16_t port = opts_.port;
  for (std::size_t i = 0; i < threads_.size(); ++i) {
    auto l = std::make_unique<listener>(threads_[i]);
    port = listen_reuseport(l->acceptor, opts_.host, port);  // the others join the first's port
    listeners_.push_back(std::move(l));
  }
  port_ = port;
  for (auto& l : listeners_) asio::post(l->thread.io(), [this, lp = l.get()] { accept(*lp); });
}

void server::accept(listener& l) {
  l.acceptor.async_accept(l.thread.io(), [this, &l](error_code ec, socket_type sock) {
    if (ec == asio::error::operation_aborted || !l.acceptor.is_open()) return;
    if (ec) {
      bool out_of_fds = ec == asio::error::no_descriptors || ec.value() == ENFILE;
      if (out_of_fds && l.spare_fd >= 0) {
        // Answer the waiting clients with the reserved descriptor, one at a time.
        ::close(l.spare_fd);
        l.spare_fd = -1;
        int fd = ::accept4(l.acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
          stats_->rejected_over_cap.fetch_add(1, std::memory_order_relaxed);
          [[maybe_unused]] auto n = ::send(fd, busy_response().data(), busy_response().size(), MSG_NOSIGNAL);
          ::shutdown(fd, SHUT_RDWR);
          ::close(fd);
        }
        l.spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      // Logged at most once a second (a flood of clients would fill the log).
      ++l.unlogged;
      auto now = std::chrono::steady_clock::now();
      if (now - l.last_log >= std::chrono::seconds(1)) {
        log::warn("accept failed: " + ec.message() + " (" + std::to_string(l.unlogged) +
                  " time(s) in the last second" +
                  (out_of_fds ? "; clients are answered 503: raise the open-file limit or lower max_connections" : "") +
                  ")");
        l.last_log = now;
        l.unlogged = 0;
      }
      if (out_of_fds && l.spare_fd >= 0) return accept(l);  // answered one; keep going
      l.retry_timer.expires_after(std::chrono::milliseconds(50));
      l.retry_timer.async_wait([this, &l](error_code e) {
        if (!e) accept(l);
      });
      return;
    }
    stats_->accepted.fetch_add(1, std::memory_order_relaxed);
    if (static_cast<std::size_t>(stats_->open_connections.load(std::memory_order_relaxed)) >=
        opts_.max_connections) {
      stats_->rejected_over_cap.fetch_add(1, std::memory_order_relaxed);
      // Shed load with a clear answer rather than a silent reset.
      auto body = openai_error_json("too many connections", "service_unavailable", "",
                                    "service_unavailable");
      auto msg = std::make_shared<std::string>(
          "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: "
          "close\r\ncontent-length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
      auto s = std::make_shared<socket_type>(std::move(sock));
      asio::async_write(*s, asio::buffer(*msg), [s, msg](error_code, std::size_t) {
        error_code ignored;
        s->shutdown(tcp::socket::shutdown_both, ignored);
        s->close(ignored);
      });
    } else {
      error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      auto s = std::make_shared<session>(*this, l.thread, std::move(sock));
      l.thread.watch(s);
      s->start();
    }
    accept(l);
  });
}

void server::begin_drain() {
  if (draining_.exchange(true)) return;
  for (auto& l : listeners_) {
    asio::post(l->thread.io(), [lp = l.get()] {
      error_code ignored;
      lp->acceptor.close(ignored);
      lp->retry_timer.cancel();
      lp->thread.drain_all();
    });
  }
}

// ---------------------------------------------------------------- session

session::session(server& srv, io_thread& th, socket_type sock)
    : server_(srv), stats_(srv.stats_), write_timeout_(srv.opts_.write_timeout), thread_(th), socket_(std::move(sock)) {
  stats_->open_connections.fetch_add(1, std::memory_order_relaxed);
  head_.reserve(512);
}

void session::credential_memo::wipe() noexcept {
  if (!presented.empty()) explicit_bzero(presented.data(), presented.size());
  presented.clear();
  derived.clear();
}

session::~session() {
  memo_.wipe();
  release_body();
  if (in_request_) stats_->active_requests.fetch_sub(1, std::memory_order_relaxed);
  stats_->open_connections.fetch_sub(1, std::memory_order_relaxed);
}

void session::start() { read_request(); }

void session::read_request() {
  if (!open_) return;
  if (server_.draining()) {
    close();
    return;
  }
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(server_.opts_.max_header_bytes));
  parser_->body_limit(server_.opts_.max_body_bytes);
  waiting_for_request_ = true;
  head_partial_ = false;
  idle_since_ = clock::now();
  set_timeout(std::min<std::chrono::milliseconds>(server_.opts_.keepalive_timeout,
                                                  server_.opts_.header_read_timeout / 2));
  bhttp::async_read_header(socket_, buffer_, *parser_,
                           [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
}

void session::on_header(error_code ec) {
  waiting_for_request_ = false;
  received_at_ = clock::now();
  if (ec) {
    if (timed_out_ && head_partial_) {
      fail_request(408, to_openai_json({errc::request_timeout, "request headers not received in time", ""}));
    } else if (ec == bhttp::error::header_limit) {
      fail_request(431, to_openai_json({errc::headers_too_large, "request headers too large", ""}));
    } else if (ec == bhttp::error::body_limit) {  // Content-Length over the limit
      keep_alive_ = false;
      fail_request(413, to_openai_json({errc::payload_too_large,
                                        "request body exceeds the limit of " +
                                            std::to_string(server_.opts_.max_body_bytes) + " bytes",
                                        ""}));
    } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
               ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
               ec == asio::error::bad_descriptor) {
      close();
    } else if (is_http_parse_error(ec)) {
      fail_request(400, to_openai_json({errc::invalid_request, "malformed HTTP request: " + ec.message(), ""}));
    } else {
      close();
    }
    return;
  }
  auto& r = parser_->get();
  keep_alive_ = r.keep_alive() && !server_.draining();
  // HTTP/1.1 requires Host (RFC 9112 3.2); a Transfer-Encoding that is not chunked
  // leaves the body's end unknown (RFC 9112 6.3): refused, or what follows would be
  // read as the next request (smuggling behind a lenient proxy).
  if (r.version() >= 11 && r.find(bhttp::field::host) == r.end()) {
    keep_alive_ = false;
    return fail_request(400, to_openai_json({errc::invalid_request, "HTTP/1.1 request without a Host header", ""}));
  }
  if (r.find(bhttp::field::transfer_encoding) != r.end() && !parser_->chunked()) {
    keep_alive_ = false;
    return fail_request(400, to_openai_json({errc::invalid_request,
                                             "unsupported Transfer-Encoding: only chunked is accepted", ""}));
  }
  if (parser_->is_done()) return dispatch();  // no body, or all of it came with the head
  switch (server_.handler_.on_head(shared_from_this())) {
    case head_verdict::read_body:
      return after_head();
    case head_verdict::answered:
      return;
    case head_verdict::pending:
      set_timeout(server_.opts_.request_read_timeout);  // a look-up the handler waits for
      return;
  }
}

void session::continue_body() {
  if (!open_ || in_request_) return;
  after_head();
}

bool session::reserve_body(std::size_t bytes) {
  auto cap = static_cast<std::int64_t>(server_.opts_.max_body_bytes_in_flight);
  auto n = static_cast<std::int64_t>(bytes);
  auto before = stats_->body_bytes_in_flight.fetch_add(n, std::memory_order_relaxed);
  if (before + n > cap && before > 0) {  // one body alone may always use the per-request limit
    stats_->body_bytes_in_flight.fetch_sub(n, std::memory_order_relaxed);
    return false;
  }
  body_reserved_ += bytes;
  return true;
}

void session::release_body() noexcept {
  if (body_reserved_) {
    stats_->body_bytes_in_flight.fetch_sub(static_cast<std::int64_t>(body_reserved_), std::memory_order_relaxed);
    body_reserved_ = 0;
  }
}

void session::refuse_body_over_memory() {
  stats_->rejected_over_body_memory.fetch_add(1, std::memory_order_relaxed);
  fail_request(503, to_openai_json({errc::service_unavailable,
                                    "The gateway is receiving too many request bodies at once; try again shortly.", ""}),
               "retry-after: 1\r\n");
}

void session::after_head() {
  if (auto cl = parser_->content_length()) {
    if (!reserve_body(static_cast<std::size_t>(*cl))) return refuse_body_over_memory();
    // Beast reads at most the buffer's free space: make room for the body (up to
    // 1 MiB) so it arrives in a few reads; the body's own storage is reserved once.
    auto room = std::min<std::size_t>(static_cast<std::size_t>(*cl), std::size_t{1} << 20);
    if (room > buffer_.capacity() - buffer_.size()) buffer_.reserve(buffer_.size() + room);
  } else if (parser_->chunked()) {
    // Chunked: the body's memory is reserved as its chunks announce themselves.
    on_chunk_ = [this](std::uint64_t size, beast::string_view, error_code& ec) {
      auto want = parser_->get().body().size() + static_cast<std::size_t>(size) + json_padding;
      if (want <= body_reserved_) return;
      if (!reserve_body(std::max(want - body_reserved_, body_reserved_))) {
        over_body_memory_ = true;
        ec = bhttp::error::body_limit;
      }
    };
    parser_->on_chunk_header(on_chunk_);
  }
  auto& r = parser_->get();
  auto expect = r[bhttp::field::expect];
  if (!expect.empty() && beast::iequals(expect, "100-continue")) {
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    set_timeout(server_.opts_.write_timeout);
    asio::async_write(socket_, asio::buffer(cont.data(), cont.size()),
                      [self = shared_from_this()](error_code e, std::size_t) {
                        if (e) return self->close();
                        self->read_body();
                      });
    return;
  }
  read_body();
}

void session::read_body() {
  if (parser_->is_done()) return dispatch();
  set_timeout(server_.opts_.request_read_timeout);
  reading_body_ = true;
  bhttp::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
    self->reading_body_ = false;
    self->on_body(ec);
  });
}

void session::on_body(error_code ec) {
  if (ec) {
    if (over_body_memory_) {
      refuse_body_over_memory();
    } else if (ec == bhttp::error::body_limit) {
      keep_alive_ = false;
      fail_request(413, to_openai_json({errc::payload_too_large,
                                        "request body exceeds the limit of " +
                                            std::to_string(server_.opts_.max_body_bytes) + " bytes",
                                        ""}));
    } else if (timed_out_) {
      keep_alive_ = false;
      fail_request(408, to_openai_json({errc::request_timeout, "request body not received in time", ""}));
    } else if (is_http_parse_error(ec)) {
      keep_alive_ = false;
      fail_request(400, to_openai_json({errc::invalid_request, "malformed HTTP request body: " + ec.message(), ""}));
    } else {
      close();
    }
    return;
  }
  dispatch();
}

void session::dispatch() {
  clear_deadline();
  in_request_ = true;
  stats_->active_requests.fetch_add(1, std::memory_order_relaxed);
  ensure_padding(parser_->get().body());
  server_.handler_.on_request(shared_from_this());
}

void session::fail_request(unsigned status, std::string body, std::string_view extra_headers) {
  // An error found by the session itself, before the handler saw the request.
  keep_alive_ = false;
  in_request_ = true;
  stats_->active_requests.fetch_add(1, std::memory_order_relaxed);
  respond(status, "application/json", std::move(body), extra_headers);
}

void session::write_head(unsigned status, std::string_view content_type, std::size_t content_length,
                         bool chunked, std::string_view extra_headers) {
  if (server_.draining()) keep_alive_ = false;
  head_.clear();
  head_ += "HTTP/1.1 ";
  append_uint(head_, status);
  head_ += ' ';
  head_ += reason_phrase(status);
  head_ += "\r\n";
  if (!content_type.empty()) {
    head_ += "content-type: ";
    head_ += content_type;
    head_ += "\r\n";
  }
  if (chunked) {
    head_ += "transfer-encoding: chunked\r\n";
  } else {
    head_ += "content-length: ";
    append_uint(head_, content_length);
    head_ += "\r\n";
  }
  head_ += extra_headers;
  if (!keep_alive_) head_ += "connection: close\r\n";
  head_ += "\r\n";
}

void session::respond(unsigned status, std::string_view content_type, std::string body,
                      std::string_view extra_headers) {
  if (!in_request_) {
    // Answered from on_head(), before the body was read: what the client still sends
    // is not read as a next request; the connection closes after the answer.
    in_request_ = true;
    keep_alive_ = false;
    stats_->active_requests.fetch_add(1, std::memory_order_relaxed);
    stats_->refused_at_head.fetch_add(1, std::memory_order_relaxed);
  }
  if (!open_) return finish_request();
  write_head(status, content_type, body.size(), false, extra_headers);
  body_ = std::move(body);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(head_), asio::buffer(body_)};
  set_timeout(server_.opts_.write_timeout);
  asio::async_write(socket_, bufs, [self = shared_from_this()](error_code ec, std::size_t) {
    self->clear_deadline();
    if (ec) self->close();
    self->finish_request();
  });
}

void session::respond_error(unsigned status, std::string body, std::string_view extra_headers) {
  respond(status, "application/json", std::move(body), extra_headers);
}

std::size_t session::format_chunk_head(std::size_t size) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  char tmp[20];
  int n = 0;
  for (std::size_t v = size; v; v >>= 4) tmp[n++] = hex[v & 0xf];
  std::size_t len = 0;
  while (n) chunk_head_[len++] = tmp[--n];
  chunk_head_[len++] = '\r';
  chunk_head_[len++] = '\n';
  return len;
}

void session::end_stream() {
  if (!open_) return finish_request();
  static constexpr std::string_view last = "0\r\n\r\n";
  set_timeout(server_.opts_.write_timeout);
  asio::async_write(socket_, asio::buffer(last.data(), last.size()),
                    [self = shared_from_this()](error_code ec, std::size_t) {
                      self->clear_deadline();
                      if (ec) self->close();
                      self->finish_request();
                    });
}

void session::abort() {
  close();
  finish_request();
}

void session::finish_request() {
  if (in_request_) {
    in_request_ = false;
    stats_->active_requests.fetch_sub(1, std::memory_order_relaxed);
  }
  release_body();
  on_chunk_ = nullptr;
  over_body_memory_ = false;
  body_.clear();
  if (!open_) return;
  if (keep_alive_ && !server_.draining()) {
    // Free the request's memory before waiting on an idle connection.
    parser_.reset();
    if (buffer_.size() == 0 && buffer_.capacity() > 64 * 1024) buffer_ = beast::flat_buffer();
    read_request();
  } else {
    linger_close();
  }
}

void session::linger_close() {
  // Half-close, then drain what the client still sends (an unread body, say) for a
  // moment: closing with unread input makes the kernel send RST, which can destroy
  // the response we just wrote before the client reads it.
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  set_timeout(std::chrono::seconds(2));
  parser_.reset();
  buffer_.clear();
  drain_some();
}

void session::drain_some() {
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, std::size_t) {
    if (ec || !self->open_) return self->close();
    self->drain_some();
  });
}

void session::close() {
  if (!open_) return;
  open_ = false;
  clear_deadline();
  error_code ignored;
  socket_.close(ignored);
}

void session::on_deadline() {
  if (waiting_for_request_) {
    // Waiting for a head: idle keep-alive connections close after keepalive_timeout;
    // a head begun (bytes in the buffer) must be complete within header_read_timeout
    // of being seen, give or take half of it, or 408.
    auto now = clock::now();
    auto step = server_.opts_.header_read_timeout / 2;
    if (buffer_.size() > 0) {
      if (!head_partial_) {
        head_partial_ = true;
        set_timeout(server_.opts_.header_read_timeout);
        return;
      }
      timed_out_ = true;
      error_code ignored;
      socket_.cancel(ignored);  // on_header answers 408
      return;
    }
    auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(now - idle_since_);
    if (idle < server_.opts_.keepalive_timeout) {
      set_timeout(std::min<std::chrono::milliseconds>(step, server_.opts_.keepalive_timeout - idle));
      return;
    }
    timed_out_ = true;
    close();
    return;
  }
  timed_out_ = true;
  if (reading_body_) {
    // The client is too slow sending its body: cancel the read so that its handler
    // can still answer 408 before closing.
    error_code ignored;
    socket_.cancel(ignored);
    return;
  }
  // Idle, or a write the client does not read: close; the pending handler sees
  // operation_aborted.
  close();
}

void session::on_drain() {
  keep_alive_ = false;
  if (waiting_for_request_ && buffer_.size() == 0) close();
}

}  // namespace gw::http
