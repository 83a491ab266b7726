#include "gw/http/client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <optional>

#include "gw/core/strings.hpp"
#include "gw/http/upstream.hpp"

namespace gw::http {
namespace {

constexpr std::uint32_t header_limit = 16 * 1024;

bool clean_header_text(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool valid_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
              c == '+' || c == '^' || c == '`' || c == '|' || c == '~';
    if (!ok) return false;
  }
  return true;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

class fetch_op : public std::enable_shared_from_this<fetch_op> {
 public:
  fetch_op(asio::io_context& io, fetch_request req, fetch_callback cb)
      : io_(io),
        strand_(asio::make_strand(io)),
        req_(std::move(req)),
        cb_(std::move(cb)),
        resolver_(io.get_executor()),
        timer_(io) {}

  /// Every completion handler runs on the op's strand: on an io_context run by several
  /// threads the deadline's handler would otherwise race an I/O completion.
  template <class F>
  auto on_strand(F&& f) {
    return asio::bind_executor(strand_, std::forward<F>(f));
  }
  asio::strand<asio::io_context::executor_type>& strand() { return strand_; }

  void start() {
    started_ = std::chrono::steady_clock::now();
    std::string err;
    if (!parse_url(req_.url, ep_, err)) return finish_error("invalid URL: " + err);
    target_ = url_request_target(req_.url);
    for (char c : target_)
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return finish_error("invalid URL: bad character in path");
    if (!valid_token(req_.method)) return finish_error("invalid HTTP method");
    for (auto& [k, v] : req_.headers)
      if (!valid_token(k) || !clean_header_text(v)) return finish_error("invalid request header");

    auto verb = bhttp::string_to_verb(req_.method);
    if (verb == bhttp::verb::unknown)
      request_.method_string(req_.method);
    else
      request_.method(verb);
    request_.target(target_);
    request_.version(11);
    request_.set(bhttp::field::host, ep_.authority);
    request_.set(bhttp::field::user_agent, "llm-gateway-credentials/1");
    request_.set(bhttp::field::connection, "close");
    for (auto& [k, v] : req_.headers) request_.set(k, v);
    request_.body() = std::move(req_.body);
    // Content-Length by hand: prepare_payload() throws for TRACE with a body.
    if (!request_.body().empty() || verb == bhttp::verb::post || verb == bhttp::verb::put ||
        verb == bhttp::verb::patch)
      request_.content_length(request_.body().size());

    timer_.expires_after(req_.timeout);
    timer_.async_wait(on_strand([self = shared_from_this()](error_code ec) {
      if (ec || self->done_) return;
      self->timed_out_ = true;
      self->abort_io();
    }));
    stage_ = "resolve";
    resolver_.async_resolve(ep_.host, std::to_string(ep_.port),
                            on_strand([self = shared_from_this()](error_code ec, resolver_type::results_type r) {
                              self->on_resolve(ec, std::move(r));
                            }));
  }

 private:
  void on_resolve(error_code ec, resolver_type::results_type results) {
    if (ec) return fail(ec);
    stage_ = "connect";
    if (ep_.tls)
      tls_.emplace(io_.get_executor(), client_tls_context());
    else
      plain_.emplace(io_.get_executor());
    if (timed_out_) return fail(boost::asio::error::operation_aborted);
    if (req_.allow_address) {
      std::vector<tcp::endpoint> allowed;
      for (const auto& e : results)
        if (req_.allow_address(e.endpoint().address())) allowed.push_back(e.endpoint());
      if (allowed.empty()) return finish_error(ep_.host + " resolves only to " + req_.refused_what);
      asio::async_connect(socket(), allowed,
                          on_strand([self = shared_from_this()](error_code ec, const tcp::endpoint&) {
                            self->on_connect(ec);
                          }));
      return;
    }
    asio::async_connect(socket(), results,
                        on_strand([self = shared_from_this()](error_code ec, const tcp::endpoint&) {
                          self->on_connect(ec);
                        }));
  }

  void on_connect(error_code ec) {
    if (ec) return fail(ec);
    error_code ignored;
    socket().set_option(tcp::no_delay(true), ignored);
    if (!tls_) return write();
    stage_ = "TLS handshake";
    // SNI only for names: RFC 6066 forbids IP literals in server_name.
    if (!is_ip_literal(ep_.host) && !SSL_set_tlsext_host_name(tls_->native_handle(), ep_.host.c_str()))
      return finish_error("TLS setup failed");
    tls_->set_verify_callback(asio::ssl::host_name_verification(ep_.host));
    tls_->async_handshake(asio::ssl::stream_base::client, on_strand([self = shared_from_this()](error_code ec) {
                            if (ec) return self->fail(ec);
                            self->write();
                          }));
  }

  void write() {
    stage_ = "write";
    auto on_write = on_strand([self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->read();
    });
    if (tls_)
      bhttp::async_write(*tls_, request_, std::move(on_write));
    else
      bhttp::async_write(*plain_, request_, std::move(on_write));
  }

  void read() {
    stage_ = "read";
    parser_.emplace();
    parser_->header_limit(header_limit);
    parser_->body_limit(req_.max_body_bytes);
    if (request_.method() == bhttp::verb::head) parser_->skip(true);
    // The head first, then the body. Beast 1.74's eager parse (async_read) drops the
    // body_limit error for a too-large Content-Length when body bytes arrived with the
    // head, and string_body then reserves the advertised length: one read would let a
    // server make us allocate whatever it claims. async_read_header parses non-eagerly
    // and reports the limit; the explicit check below is belt and braces.
    auto on_head = on_strand([self = shared_from_this()](error_code ec, std::size_t) { self->on_head(ec); });
    if (tls_)
      bhttp::async_read_header(*tls_, buffer_, *parser_, std::move(on_head));
    else
      bhttp::async_read_header(*plain_, buffer_, *parser_, std::move(on_head));
  }

  void on_head(error_code ec) {
    if (ec) return fail(ec);
    if (auto len = parser_->content_length(); len && *len > req_.max_body_bytes)
      return fail(bhttp::error::body_limit);
    auto on_read = on_strand([self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    if (tls_)
      bhttp::async_read(*tls_, buffer_, *parser_, std::move(on_read));
    else
      bhttp::async_read(*plain_, buffer_, *parser_, std::move(on_read));
  }

  void on_read(error_code ec) {
    // A TLS peer that closes without close_notify ends a read-until-close body with
    // stream_truncated rather than eof: end the body there, as for eof.
    if (ec == asio::ssl::error::stream_truncated && parser_ && !parser_->is_done() && !timed_out_) {
      error_code eof_ec;
      parser_->put_eof(eof_ec);
      if (!eof_ec && parser_->is_done()) ec = {};
    }
    if (ec) return fail(ec);
    fetch_result r;
    auto& res = parser_->get();
    r.status = static_cast<int>(res.result_int());
    for (auto& f : res) {
      std::string name = to_lower(std::string_view(f.name_string().data(), f.name_string().size()));
      std::string value(f.value().data(), f.value().size());
      if (name == "content-type") r.content_type = value;
      r.headers.emplace_back(std::move(name), std::move(value));
    }
    r.body = std::move(res.body());
    finish(std::move(r));
  }

  socket_type& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  void abort_io() {
    error_code ignored;
    resolver_.cancel();
    if (tls_) tls_->next_layer().close(ignored);
    if (plain_) plain_->close(ignored);
  }

  void fail(error_code ec) {
    if (timed_out_) return finish_error("timed out after " + std::to_string(req_.timeout.count()) + " ms (" + stage_ + ")");
    if (ec == bhttp::error::body_limit)
      return finish_error("response larger than " + std::to_string(req_.max_body_bytes) + " bytes");
    if (ec == bhttp::error::header_limit) return finish_error("response header too large");
    std::string where = stage_;
    if (stage_ == "connect" || stage_ == "resolve") where += " " + ep_.authority;
    finish_error(where + ": " + ec.message());
  }

  void finish_error(std::string msg) {
    fetch_result r;
    r.error = std::move(msg);
    finish(std::move(r));
  }

  void finish(fetch_result r) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    abort_io();
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    auto cb = std::move(cb_);
    if (cb) cb(std::move(r));
  }

  asio::io_context& io_;
  asio::strand<asio::io_context::executor_type> strand_;
  fetch_request req_;
  fetch_callback cb_;
  endpoint ep_;
  std::string target_;
  resolver_type resolver_;
  std::optional<socket_type> plain_;
  std::optional<asio::ssl::stream<socket_type>> tls_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  std::string stage_;
  std::chrono::steady_clock::time_point started_;
  bool done_ = false;
  bool timed_out_ = false;
};

}  // namespace

std::string fetch_result::header(std::string_view lower_name) const {
  for (auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

void fetch(asio::io_context& io, fetch_request req, fetch_callback cb) {
  auto op = std::make_shared<fetch_op>(io, std::move(req), std::move(cb));
  asio::post(op->strand(), [op] { op->start(); });
}

std::string url_request_target(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return "/";
  std::string_view rest = url.substr(scheme + 3);
  auto start = rest.find_first_of("/?#");
  if (start == std::string_view::npos) return "/";
  std::string_view t = rest.substr(start);
  t = t.substr(0, t.find('#'));
  if (t.empty()) return "/";
  if (t.front() == '?') return "/" + std::string(t);
  return std::string(t);
}

std::string url_origin(std::string_view url) {
  endpoint ep;
  std::string err;
  if (!parse_url(url, ep, err)) return "<invalid URL>";
  return std::string(ep.tls ? "https://" : "http://") + ep.authority;
}

}  // namespace gw::http
