#pragma once
/// The HTTP/1.1 frontend: one SO_REUSEPORT acceptor per io thread, keep-alive
/// sessions, body/header limits, idle and read timeouts, a connection cap, and
/// graceful drain. The handler answers each request through its `session`.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/write.hpp>

#include "gw/http/asio.hpp"
#include "gw/http/io_threads.hpp"
#include "gw/http/padded_body.hpp"

namespace gw::http {

struct server_options {
  std::string host = "0.0.0.0";
  std::uint16_t port = 4000;
  std::size_t max_connections = 20000;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 32 * 1024 * 1024;
  /// The request bodies all connections may hold at once (declared Content-Lengths, and
  /// chunked bodies as they grow): past it, a new body is refused with 503 before it is
  /// read, so clients cannot take the gateway's memory by sending large bodies at once.
  std::size_t max_body_bytes_in_flight = std::size_t{1} << 30;
  /// Reading a request's head (from its first byte, or from when a keep-alive
  /// connection has one waiting): past it, 408 and the connection closes.
  std::chrono::milliseconds header_read_timeout{30'000};
  std::chrono::milliseconds keepalive_timeout{75'000};
  std::chrono::milliseconds request_read_timeout{60'000};
  std::chrono::milliseconds write_timeout{60'000};
};

class session;
using session_ptr = std::shared_ptr<session>;

/// What the handler decides once a request's head is read, before its body is.
enum class head_verdict {
  read_body,  ///< read the body, then on_request()
  answered,   ///< the handler responded (refused); the body is not read, the connection closes
  pending,    ///< the handler will call session::continue_body() or respond, on the io thread
};

/// Receives complete requests, on the io thread of their connection.
class request_handler {
 public:
  virtual ~request_handler() = default;
  /// Called with the head of a request whose body has not arrived yet (a body that
  /// came with its head is in memory already: on_request() follows directly). A handler
  /// authenticates here so that a caller without a valid key never makes the gateway
  /// hold its body.
  virtual head_verdict on_head(const session_ptr&) { return head_verdict::read_body; }
  /// The handler must eventually answer with respond(), or begin_stream() ... end_stream(),
  /// or abort(), on the session's io thread.
  virtual void on_request(const session_ptr& s) = 0;
};

/// Counters shared by all io threads (thread-safe).
struct server_stats {
  std::atomic<std::int64_t> open_connections{0};
  std::atomic<std::int64_t> active_requests{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected_over_cap{0};
  std::atomic<std::int64_t> body_bytes_in_flight{0};       ///< reserved by request bodies
  std::atomic<std::uint64_t> rejected_over_body_memory{0};  ///< bodies refused with 503
  std::atomic<std::uint64_t> refused_at_head{0};             ///< answered before the body was read
};

class server;

/// One client connection and its current request. io-thread owned: every method
/// must be called on the io thread that accepted it (post to io() from elsewhere).
class session : public deadline_target, public std::enable_shared_from_this<session> {
 public:
  using clock = std::chrono::steady_clock;

  session(server& srv, io_thread& th, socket_type sock);
  ~session() override;

  void start();
  /// After on_head() returned pending: reads the body, then on_request(). io thread.
  void continue_body();

  request& req() noexcept { return parser_->get(); }
  io_thread& thread() noexcept { return thread_; }
  asio::io_context& io() noexcept { return thread_.io(); }
  clock::time_point received_at() const noexcept { return received_at_; }
  /// False once the connection broke or was closed.
  bool is_open() const noexcept { return open_; }
  /// True when this response will close the connection (drain, HTTP/1.0, Connection: close).
  bool closing() const noexcept { return !keep_alive_; }

  /// Sends a complete response. `extra_headers` are whole "name: value\r\n" lines.
  void respond(unsigned status, std::string_view content_type, std::string body,
               std::string_view extra_headers = {});
  /// Sends an OpenAI-shaped error response.
  void respond_error(unsigned status, std::string body, std::string_view extra_headers = {});

  /// Sends a chunked response head, and `first_chunk` with it in the same write if not
  /// empty (its bytes must stay valid until `on_done(ec)` runs).
  template <class Handler>
  void begin_stream(unsigned status, std::string_view content_type, std::string_view extra_headers,
                    asio::const_buffer first_chunk, Handler&& on_done);
  /// Writes one chunk (the bytes must stay valid until `on_done(ec)`). Empty data is skipped.
  template <class Handler>
  void write_chunk(asio::const_buffer data, Handler&& on_done);
  /// Writes the terminating chunk and finishes the request (keep-alive continues).
  void end_stream();
  /// Closes the connection at once (client gone, protocol broken).
  void abort();

  /// Per-connection memo for the request handler: the last credential presented on this
  /// connection and what it was turned into (a virtual key's SHA-256). A keep-alive
  /// client sends the same key on every request; it is hashed once per connection, not
  /// once per request. Wiped when the connection ends.
  struct credential_memo {
    std::string presented;
    std::string derived;
    void wipe() noexcept;
  };
  credential_memo& memo() noexcept { return memo_; }

  // deadline_target
  void on_deadline() override;
  void on_drain() override;

 private:
  void read_request();
  void on_header(error_code ec);
  void read_body();
  void on_body(error_code ec);
  void dispatch();
  void fail_request(unsigned status, std::string body, std::string_view extra_headers = {});
  void after_head();
  void refuse_body_over_memory();
  bool reserve_body(std::size_t bytes);
  void release_body() noexcept;
  void write_head(unsigned status, std::string_view content_type, std::size_t content_length,
                  bool chunked, std::string_view extra_headers);
  std::size_t format_chunk_head(std::size_t size) noexcept;
  void finish_request();
  void linger_close();
  void drain_some();
  void close();

  template <std::size_t N, class Handler>
  void write_stream_buffers(const std::array<asio::const_buffer, N>& bufs, Handler&& on_done);

  server& server_;
  std::shared_ptr<server_stats> stats_;
  std::chrono::milliseconds write_timeout_;
  io_thread& thread_;
  socket_type socket_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<padded_string_body>> parser_;
  std::string head_;
  std::string body_;
  char chunk_head_[24];
  bool open_ = true;
  bool keep_alive_ = true;
  bool in_request_ = false;
  bool waiting_for_request_ = false;
  bool timed_out_ = false;
  bool reading_body_ = false;
  bool head_partial_ = false;      ///< a head's first bytes were seen at a deadline check
  clock::time_point idle_since_{};
  bool over_body_memory_ = false;  ///< a chunked body outgrew max_body_bytes_in_flight
  std::size_t body_reserved_ = 0;  ///< this request's part of body_bytes_in_flight
  std::function<void(std::uint64_t, beast::string_view, error_code&)> on_chunk_;
  clock::time_point received_at_{};
  credential_memo memo_;
};

class server {
 public:
  server(io_threads& threads, server_options opts, request_handler& handler);
  ~server();

  /// Binds one acceptor per io thread and starts accepting. Throws std::runtime_error.
  void start();
  /// The bound port (valid after start()).
  std::uint16_t port() const noexcept { return port_; }
  /// Stops accepting; idle keep-alive connections close, in-flight requests finish and
  /// then close. Thread-safe.
  void begin_drain();
  bool draining() const noexcept { return draining_.load(std::memory_order_relaxed); }
  /// After the io threads stopped: releases the acceptors (before io_threads::destroy()).
  void close();

  const server_stats& stats() const noexcept { return *stats_; }
  const server_options& options() const noexcept { return opts_; }

 private:
  friend class session;
  struct listener;
  void accept(listener& l);

  io_threads& threads_;
  server_options opts_;
  request_handler& handler_;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  // Shared with sessions: a session destroyed with its io_context may outlive the server.
  std::shared_ptr<server_stats> stats_ = std::make_shared<server_stats>();
};

template <class Handler>
void session::begin_stream(unsigned status, std::string_view content_type, std::string_view extra_headers,
                           asio::const_buffer first_chunk, Handler&& on_done) {
  if (!open_) return on_done(error_code(asio::error::not_connected));
  write_head(status, content_type, 0, true, extra_headers);
  std::size_t n = first_chunk.size() ? format_chunk_head(first_chunk.size()) : 0;
  std::array<asio::const_buffer, 4> bufs{asio::buffer(head_), asio::buffer(chunk_head_, n), first_chunk,
                                         asio::buffer("\r\n", first_chunk.size() ? 2 : 0)};
  write_stream_buffers(bufs, std::forward<Handler>(on_done));
}

template <class Handler>
void session::write_chunk(asio::const_buffer data, Handler&& on_done) {
  if (!open_) return on_done(error_code(asio::error::not_connected));
  if (data.size() == 0) return on_done(error_code{});
  std::size_t len = format_chunk_head(data.size());
  std::array<asio::const_buffer, 3> bufs{asio::buffer(chunk_head_, len), data, asio::buffer("\r\n", 2)};
  write_stream_buffers(bufs, std::forward<Handler>(on_done));
}

template <std::size_t N, class Handler>
void session::write_stream_buffers(const std::array<asio::const_buffer, N>& bufs, Handler&& on_done) {
  set_timeout(write_timeout_);
  asio::async_write(socket_, bufs,
                    [self = shared_from_this(), cb = std::forward<Handler>(on_done)](error_code ec, std::size_t) mutable {
                      self->clear_deadline();
                      if (ec) self->close();
                      cb(ec);
                    });
}

/// The reason phrase for a status code ("OK", "Not Found", ...).
std::string_view reason_phrase(unsigned status) noexcept;

}  // namespace gw::http
