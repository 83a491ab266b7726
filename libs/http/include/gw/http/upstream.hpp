#pragma once
/// The upstream side: parsed provider endpoints, keep-alive connections over HTTP or
/// HTTPS (OpenSSL, SNI, verification against the system store), and one connection
/// pool per io thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include "gw/http/asio.hpp"

namespace gw::http {

class io_thread;

/// A parsed base URL, e.g. "https://api.openai.com/v1".
struct endpoint {
  bool tls = false;
  std::string host;        ///< without IPv6 brackets
  std::uint16_t port = 0;
  std::string base_path;   ///< "" or "/v1" (no trailing slash)
  std::string authority;   ///< Host header value ("host" or "host:port")
  std::string pool_key;    ///< "https://host:port": connections are shared per key
};

/// Parses http(s)://host[:port][/path]; false with `err` set on anything else.
bool parse_url(std::string_view url, endpoint& out, std::string& err);

/// The client TLS context: system trust store (or $SSL_CERT_FILE/$SSL_CERT_DIR),
/// peer verification on, TLS 1.2 or later. Thread-safe, built once.
boost::asio::ssl::context& client_tls_context();

/// One connection to an upstream. io-thread owned. Its handlers refer to it: never
/// destroy it while an operation is pending; call close() to cancel and let the
/// pending handler (which sees operation_aborted) run first.
class upstream_connection {
 public:
  using clock = std::chrono::steady_clock;
  using callback = std::function<void(error_code)>;

  upstream_connection(asio::io_context& io, const endpoint& ep);
  ~upstream_connection();

  const std::string& pool_key() const noexcept { return pool_key_; }
  bool connected() const noexcept { return connected_; }
  /// Exchanges completed on this connection (>0 means it came from the pool).
  std::uint32_t uses() const noexcept { return uses_; }

  /// Resolves, connects (TCP_NODELAY) and, for https, handshakes with SNI and
  /// host-name verification.
  void async_connect(callback cb);
  // The per-request operations take their handler as a template parameter (no
  // std::function): Asio then recycles the operation's memory per thread.

  /// Writes the request (a gather list of N buffers). `h(ec)`.
  template <std::size_t N, class Handler>
  void async_write(const std::array<asio::const_buffer, N>& bufs, Handler&& h);
  /// Reads the response head; afterwards response() holds status and fields. `h(ec)`.
  template <class Handler>
  void async_read_head(std::size_t header_limit, Handler&& h);
  const bhttp::response_parser<bhttp::buffer_body>& response() const { return *parser_; }
  /// Reads body bytes into [data, data+size): what arrives, plus whatever is already
  /// buffered. `h(ec, n, done)`.
  template <class Handler>
  void async_read_body(char* data, std::size_t size, Handler&& h);
  /// Bytes read from the socket but not yet parsed (e.g. body bytes that came with the head).
  std::size_t buffered() const noexcept { return buffer_.size(); }
  /// Moves body bytes already read (they came with the head) into [data, data+size)
  /// without I/O. Returns how many; `done` when the body is complete.
  std::size_t take_buffered_body(char* data, std::size_t size, bool& done);
  /// After a complete exchange: true if the connection can go back to the pool.
  bool reusable() const noexcept;
  /// Marks an exchange complete (counts uses, remembers when it went idle).
  void finish_exchange();
  clock::time_point idle_since() const noexcept { return idle_since_; }
  void close() noexcept;

 private:
  template <class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(*plain_);
  }
  void start_response(std::size_t header_limit);
  void parse_buffered();

  asio::io_context& io_;
  std::string host_;
  std::string port_;
  std::string pool_key_;
  bool tls_wanted_;
  resolver_type resolver_;
  std::optional<socket_type> plain_;
  std::optional<asio::ssl::stream<socket_type>> tls_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  bool connected_ = false;
  bool broken_ = false;
  std::uint32_t uses_ = 0;
  clock::time_point idle_since_{};
};

template <std::size_t N, class Handler>
void upstream_connection::async_write(const std::array<asio::const_buffer, N>& bufs, Handler&& h) {
  with_stream([&](auto& s) {
    asio::async_write(s, bufs, [this, h = std::forward<Handler>(h)](error_code ec, std::size_t) mutable {
      if (ec) broken_ = true;
      h(ec);
    });
  });
}

template <class Handler>
void upstream_connection::async_read_head(std::size_t header_limit, Handler&& h) {
  start_response(header_limit);
  with_stream([&](auto& s) {
    bhttp::async_read_header(s, buffer_, *parser_,
                             [this, h = std::forward<Handler>(h)](error_code ec, std::size_t) mutable {
                               if (ec) broken_ = true;
                               h(ec);
                             });
  });
}

template <class Handler>
void upstream_connection::async_read_body(char* data, std::size_t size, Handler&& h) {
  if (parser_->is_done()) return h(error_code{}, std::size_t{0}, true);
  auto& body = parser_->get().body();
  body.data = data;
  body.size = size;
  with_stream([&](auto& s) {
    bhttp::async_read_some(s, buffer_, *parser_,
                           [this, size, h = std::forward<Handler>(h)](error_code ec, std::size_t) mutable {
                             if (ec == bhttp::error::need_buffer) ec = {};
                             if (!ec) parse_buffered();
                             std::size_t n = size - parser_->get().body().size;
                             if (ec) broken_ = true;
                             h(ec, n, !ec && parser_->is_done());
                           });
  });
}

struct pool_options {
  std::size_t max_idle_per_key = 256;
  std::chrono::milliseconds idle_timeout{30'000};
};

/// Idle keep-alive connections of one io thread, per endpoint. io-thread owned.
class upstream_pool {
 public:
  explicit upstream_pool(io_thread& th) : thread_(th) {}
  void configure(const pool_options& o) { opts_ = o; }

  /// An idle connection for `ep` (most recently used first), or a new unconnected one.
  std::unique_ptr<upstream_connection> acquire(const endpoint& ep);
  /// Returns a connection; it is kept only if reusable and the pool has room.
  void release(std::unique_ptr<upstream_connection> c);
  /// Closes connections idle for longer than the idle timeout.
  void sweep(std::chrono::steady_clock::time_point now);
  std::size_t idle_count() const noexcept;

 private:
  io_thread& thread_;
  pool_options opts_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<upstream_connection>>> idle_;
};

}  // namespace gw::http
