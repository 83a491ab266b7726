#pragma once
/// TLS for Redis (rediss://) with a hiredis that has none (Debian's 0.14): hiredis
/// connects to a Unix socket in a private directory (mode 0700) that this bridge
/// listens on; the bridge accepts that one connection, opens TCP + TLS to Redis
/// (SNI, certificate and host-name verification unless turned off) and relays bytes
/// both ways until either side closes. Commands hiredis writes before the handshake
/// ends wait in the socket buffer. One bridge per connection; io-thread owned.

#include <array>
#include <functional>
#include <memory>
#include <string>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>

namespace gw::redis::detail {

namespace asio = boost::asio;

struct tls_options {
  bool verify = true;        ///< check the certificate chain and the host name
  std::string ca_file;       ///< PEM bundle; empty: the system's (SSL_CERT_FILE / SSL_CERT_DIR honoured)
  std::string server_name;   ///< SNI and the name verified (the configured host)
};

/// An SSL context for `o` (one per connection: the CA file is read once). Throws
/// std::runtime_error when the CA file cannot be loaded.
std::shared_ptr<asio::ssl::context> make_tls_context(const tls_options& o);

class tls_bridge : public std::enable_shared_from_this<tls_bridge> {
 public:
  using error_callback = std::function<void(const std::string&)>;

  /// Listens on a new socket; nullptr and `err` when that fails.
  static std::shared_ptr<tls_bridge> open(asio::io_context& io, std::shared_ptr<asio::ssl::context> ctx,
                                          tls_options o, asio::ip::tcp::endpoint redis, std::string& err);
  ~tls_bridge();

  /// The Unix socket hiredis connects to (removed once accepted or closed).
  const std::string& path() const noexcept { return path_; }

  /// Accepts, connects, handshakes, relays. `on_error` runs at most once, on the io
  /// thread, with why the TLS side failed (connect, handshake, verification, I/O); the
  /// hiredis side then sees its connection closed.
  void start(error_callback on_error);
  /// Closes both sides (idempotent).
  void close();

 private:
  tls_bridge(asio::io_context& io, std::shared_ptr<asio::ssl::context> ctx, tls_options o,
             asio::ip::tcp::endpoint redis);
  void remove_path();
  void fail(const std::string& why);
  template <class From, class To>
  void pump(From& from, To& to, std::array<char, 16384>& buf);

  std::shared_ptr<asio::ssl::context> ctx_;
  tls_options opt_;
  asio::ip::tcp::endpoint redis_;
  std::string dir_, path_;
  asio::local::stream_protocol::acceptor acceptor_;
  asio::local::stream_protocol::socket local_;
  asio::ssl::stream<asio::ip::tcp::socket> tls_;
  std::array<char, 16384> up_{}, down_{};
  error_callback on_error_;
  bool closed_ = false;
  bool local_ready_ = false, tls_ready_ = false;
};

}  // namespace gw::redis::detail
