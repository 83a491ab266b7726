#include "tls_bridge.hpp"

#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <stdexcept>

namespace gw::redis::detail {

using error_code = boost::system::error_code;

std::shared_ptr<asio::ssl::context> make_tls_context(const tls_options& o) {
  auto c = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  c->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                 asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (!o.ca_file.empty()) {
    c->load_verify_file(o.ca_file, ec);
    if (ec) throw std::runtime_error("cannot load the Redis CA file " + o.ca_file + ": " + ec.message());
  } else {
    c->set_default_verify_paths(ec);  // honours SSL_CERT_FILE / SSL_CERT_DIR
  }
  c->set_verify_mode(o.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
  return c;
}

tls_bridge::tls_bridge(asio::io_context& io, std::shared_ptr<asio::ssl::context> ctx, tls_options o,
                       asio::ip::tcp::endpoint redis)
    : ctx_(std::move(ctx)),
      opt_(std::move(o)),
      redis_(redis),
      acceptor_(io),
      local_(io),
      tls_(io, *ctx_) {}

tls_bridge::~tls_bridge() {
  error_code ignored;
  acceptor_.close(ignored);
  local_.close(ignored);
  tls_.lowest_layer().close(ignored);
  remove_path();
}

std::shared_ptr<tls_bridge> tls_bridge::open(asio::io_context& io, std::shared_ptr<asio::ssl::context> ctx,
                                             tls_options o, asio::ip::tcp::endpoint redis, std::string& err) {
  std::shared_ptr<tls_bridge> b(new tls_bridge(io, std::move(ctx), std::move(o), redis));
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  std::string templ = base + "/llm-gateway-redis-XXXXXX";
  if (!::mkdtemp(templ.data())) {  // mode 0700: only this user reaches the socket
    err = "cannot create a private directory in " + base + " for the Redis TLS bridge";
    return nullptr;
  }
  b->dir_ = templ;
  b->path_ = templ + "/s";
  error_code ec;
  asio::local::stream_protocol::endpoint ep(b->path_);
  b->acceptor_.open(ep.protocol(), ec);
  if (!ec) b->acceptor_.bind(ep, ec);
  if (!ec) b->acceptor_.listen(1, ec);
  if (ec) {
    err = "cannot listen on " + b->path_ + " for the Redis TLS bridge: " + ec.message();
    return nullptr;  // the destructor removes what was made
  }
  return b;
}

void tls_bridge::remove_path() {
  if (!path_.empty()) ::unlink(path_.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
  path_.clear();
  dir_.clear();
}

void tls_bridge::fail(const std::string& why) {
  if (closed_) return;
  auto cb = std::move(on_error_);
  on_error_ = nullptr;
  close();
  if (cb) cb(why);
}

void tls_bridge::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  local_.close(ignored);
  tls_.lowest_layer().close(ignored);
  remove_path();
}

void tls_bridge::start(error_callback on_error) {
  on_error_ = std::move(on_error);
  auto self = shared_from_this();
  auto both_ready = [this] {
    if (!local_ready_ || !tls_ready_ || closed_) return;
    pump(local_, tls_, up_);
    pump(tls_, local_, down_);
  };
  acceptor_.async_accept(local_, [this, self, both_ready](error_code ec) {
    if (closed_) return;
    if (ec) return fail("accepting hiredis' connection: " + ec.message());
    error_code ignored;
    acceptor_.close(ignored);
    remove_path();  // one connection only: nobody else can connect from now on
    local_ready_ = true;
    both_ready();
  });
  tls_.next_layer().async_connect(redis_, [this, self, both_ready](error_code ec) {
    if (closed_) return;
    if (ec) return fail("connect: " + ec.message());
    error_code ignored;
    tls_.next_layer().set_option(asio::ip::tcp::no_delay(true), ignored);
    // SNI for names only (an IP literal is not a server name).
    error_code not_ip;
    asio::ip::make_address(opt_.server_name, not_ip);
    if (not_ip && !opt_.server_name.empty())
      SSL_set_tlsext_host_name(tls_.native_handle(), opt_.server_name.c_str());
    if (opt_.verify) tls_.set_verify_callback(asio::ssl::host_name_verification(opt_.server_name));
    tls_.async_handshake(asio::ssl::stream_base::client, [this, self, both_ready](error_code ec) {
      if (closed_) return;
      if (ec) {
        std::string why = "TLS handshake: " + ec.message();
        long v = SSL_get_verify_result(tls_.native_handle());
        if (v != X509_V_OK) why += " (certificate: " + std::string(X509_verify_cert_error_string(v)) + ")";
        return fail(why);
      }
      tls_ready_ = true;
      both_ready();
    });
  });
}

template <class From, class To>
void tls_bridge::pump(From& from, To& to, std::array<char, 16384>& buf) {
  from.async_read_some(asio::buffer(buf), [this, self = shared_from_this(), &from, &to, &buf](error_code ec,
                                                                                               std::size_t n) {
    if (closed_) return;
    // hiredis closing its side ends the bridge quietly; Redis closing or a TLS error
    // is reported (the connection logs why it went).
    if (ec) {
      if (static_cast<void*>(&from) == static_cast<void*>(&local_)) return close();
      return fail("TLS connection: " + ec.message());
    }
    asio::async_write(to, asio::buffer(buf.data(), n), [this, self, &from, &to, &buf](error_code ec, std::size_t) {
      if (closed_) return;
      if (ec) return fail("relay: " + ec.message());
      pump(from, to, buf);
    });
  });
}

}  // namespace gw::redis::detail
