#pragma once
/// A one-shot asynchronous HTTP(S) client for calls off the data plane (token and
/// metadata services, image URLs, trace exporters): its own connection per call (no
/// pooling, "Connection: close"), a deadline over the whole exchange, a bounded response.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gw/http/asio.hpp"

namespace gw::http {

struct fetch_request {
  std::string method = "GET";   ///< any token: GET, PUT, POST, ...
  std::string url;              ///< http(s)://host[:port][/path][?query]; IPv6 as [addr]
  /// Extra header fields. Host, Content-Length, Connection and User-Agent are set
  /// unless given here. Values with CR or LF make the request fail (no injection).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Deadline for everything: resolve, connect, TLS handshake, write, read.
  std::chrono::milliseconds timeout{5000};
  /// Largest response body accepted (larger: an error, the connection is dropped).
  std::size_t max_body_bytes = 256 * 1024;
  /// When set, only resolved addresses it accepts are connected to (a name that
  /// resolves to none of them fails without a connection). The check is on the
  /// addresses actually dialled, so a name cannot pass it and then re-resolve elsewhere.
  std::function<bool(const asio::ip::address&)> allow_address;
  /// Why an address is refused, for the error ("a private address").
  std::string refused_what = "an address this request may not reach";
};

struct fetch_result {
  /// Transport failure ("timed out after 1000 ms", "connect 127.0.0.1:9: Connection
  /// refused", "response too large", ...); empty when an HTTP response arrived, whatever
  /// its status. Never contains header values or bodies (they may be secrets).
  std::string error;
  int status = 0;
  std::string content_type;
  std::string body;
  /// Response header fields (names lower-cased) when the caller needs more than these.
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds elapsed{0};

  bool ok() const noexcept { return error.empty() && status >= 200 && status < 300; }
  /// The first header field `lower_name`, or "".
  std::string header(std::string_view lower_name) const;
};

using fetch_callback = std::function<void(fetch_result)>;

/// Starts the exchange; `cb` runs exactly once, on a thread running `io` (never inside
/// this call), unless `io` is stopped or destroyed first. Callable from any thread.
/// TLS uses client_tls_context() (system trust store, host verification).
void fetch(asio::io_context& io, fetch_request req, fetch_callback cb);

/// The request target fetch() sends for `url`: path and query verbatim ("/" when
/// empty), without the fragment. parse_url normalises the path away (drops the query and
/// trailing slashes), but metadata services need both (".../security-credentials/" lists
/// roles), and a SigV4 signature must cover exactly what is sent.
std::string url_request_target(std::string_view url);

/// "https://host:port" for messages about `url` (no path or query: they can carry
/// secrets, e.g. a container credentials URI).
std::string url_origin(std::string_view url);

}  // namespace gw::http
