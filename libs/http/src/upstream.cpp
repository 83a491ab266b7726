#include "gw/http/upstream.hpp"

#include <openssl/ssl.h>

#include <limits>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>

#include "gw/core/strings.hpp"
#include "gw/http/io_threads.hpp"

namespace gw::http {

bool parse_url(std::string_view url, endpoint& out, std::string& err) {
  out = endpoint{};
  std::string_view rest;
  if (url.size() >= 8 && iequals(url.substr(0, 8), "https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.size() >= 7 && iequals(url.substr(0, 7), "http://")) {
    rest = url.substr(7);
  } else {
    err = "URL must start with http:// or https://";
    return false;
  }
  auto slash = rest.find_first_of("/?#");
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (auto q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  if (hostport.find('@') != std::string_view::npos) {
    err = "credentials in the URL are not supported";
    return false;
  }
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) {
      err = "unterminated IPv6 address";
      return false;
    }
    host = hostport.substr(1, close - 1);
    auto after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        err = "unexpected text after IPv6 address";
        return false;
      }
      port = after.substr(1);
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) {
    err = "URL has no host";
    return false;
  }
  if (!port.empty()) {
    auto p = parse_int(port);
    if (!p || *p <= 0 || *p > 65535) {
      err = "invalid port in URL";
      return false;
    }
    out.port = static_cast<std::uint16_t>(*p);
  } else {
    out.port = out.tls ? 443 : 80;
  }
  out.host = std::string(host);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.base_path = std::string(path);
  bool v6 = out.host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + out.host + "]" : out.host;
  bool default_port = (out.tls && out.port == 443) || (!out.tls && out.port == 80);
  out.authority = default_port ? h : h + ":" + std::to_string(out.port);
  out.pool_key = std::string(out.tls ? "https://" : "http://") + h + ":" + std::to_string(out.port);
  return true;
}

asio::ssl::context& client_tls_context() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
    error_code ec;
    c.set_default_verify_paths(ec);  // honours SSL_CERT_FILE / SSL_CERT_DIR
    c.set_verify_mode(asio::ssl::verify_peer);
    return c;
  }();
  return ctx;
}

upstream_connection::upstream_connection(asio::io_context& io, const endpoint& ep)
    : io_(io),
      host_(ep.host),
      port_(std::to_string(ep.port)),
      pool_key_(ep.pool_key),
      tls_wanted_(ep.tls),
      resolver_(io.get_executor()) {
  // Beast reads at most the free capacity (512 bytes on an empty buffer): start with
  // room for a typical response or a burst of stream events, so one read takes it all.
  buffer_.reserve(8192);
}

upstream_connection::~upstream_connection() { close(); }

void upstream_connection::async_connect(callback cb) {
  resolver_.async_resolve(
      host_, port_, [this, cb = std::move(cb)](error_code ec, resolver_type::results_type results) mutable {
        if (ec) return cb(ec);
        if (tls_wanted_) {
          tls_.emplace(io_.get_executor(), client_tls_context());
        } else {
          plain_.emplace(io_.get_executor());
        }
        socket_type& s = tls_ ? tls_->next_layer() : *plain_;
        asio::async_connect(s, results, [this, cb = std::move(cb)](error_code ec, const tcp::endpoint&) mutable {
          if (ec) return cb(ec);
          socket_type& s = tls_ ? tls_->next_layer() : *plain_;
          error_code ignored;
          s.set_option(tcp::no_delay(true), ignored);
          if (!tls_) {
            connected_ = true;
            return cb({});
          }
          // SNI and host-name verification.
          if (!SSL_set_tlsext_host_name(tls_->native_handle(), host_.c_str())) {
            return cb(error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
          }
          tls_->set_verify_callback(asio::ssl::host_name_verification(host_));
          tls_->async_handshake(asio::ssl::stream_base::client, [this, cb = std::move(cb)](error_code ec) {
            if (!ec) connected_ = true;
            cb(ec);
          });
        });
      });
}

void upstream_connection::start_response(std::size_t header_limit) {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(header_limit));
  // Not boost::none: Beast 1.74 compares Content-Length against the optional, and
  // any length is "greater" than none.
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
}

std::size_t upstream_connection::take_buffered_body(char* data, std::size_t size, bool& done) {
  auto& body = parser_->get().body();
  body.data = data;
  body.size = size;
  parse_buffered();
  done = parser_->is_done();
  return size - body.size;
}

void upstream_connection::parse_buffered() {
  // Beast's read_some stops after one chunk; the next chunks may already be here.
  // Parse them from memory (never touching the socket) so the caller gets every
  // event that has arrived, and forwards them in one write. Errors are left for the
  // next read to report.
  while (buffer_.size() > 0 && !parser_->is_done() && parser_->get().body().size > 0) {
    error_code ec;
    auto used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec || used == 0) break;
  }
}

bool upstream_connection::reusable() const noexcept {
  return connected_ && !broken_ && parser_ && parser_->is_done() && parser_->get().keep_alive() &&
         buffer_.size() == 0;
}

void upstream_connection::finish_exchange() {
  ++uses_;
  idle_since_ = clock::now();
  parser_.reset();
}

void upstream_connection::close() noexcept {
  connected_ = false;
  error_code ignored;
  resolver_.cancel();
  if (tls_) tls_->next_layer().close(ignored);
  if (plain_) plain_->close(ignored);
}

std::unique_ptr<upstream_connection> upstream_pool::acquire(const endpoint& ep) {
  auto it = idle_.find(ep.pool_key);
  if (it != idle_.end() && !it->second.empty()) {
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }
  return std::make_unique<upstream_connection>(thread_.io(), ep);
}

void upstream_pool::release(std::unique_ptr<upstream_connection> c) {
  if (!c) return;
  if (!c->reusable()) return;  // destructor closes it
  c->finish_exchange();
  auto& v = idle_[c->pool_key()];
  if (v.size() >= opts_.max_idle_per_key) return;
  v.push_back(std::move(c));
}

void upstream_pool::sweep(std::chrono::steady_clock::time_point now) {
  for (auto& [key, conns] : idle_) {
    // Oldest first: the vector is LIFO, so expired ones sit at the front.
    std::size_t expired = 0;
    while (expired < conns.size() && now - conns[expired]->idle_since() > opts_.idle_timeout) ++expired;
    if (expired) conns.erase(conns.begin(), conns.begin() + static_cast<std::ptrdiff_t>(expired));
  }
}

std::size_t upstream_pool::idle_count() const noexcept {
  std::size_t n = 0;
  for (auto& [k, v] : idle_) n += v.size();
  return n;
}

}  // namespace gw::http
