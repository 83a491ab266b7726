#pragma once
// What the HTTP client's tests and the credentials tests share: a temporary directory,
// stand-in servers (silent, one-shot), and the fixture (an io_context thread, the mock
// server, fetch() made synchronous).

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "gw/http/client.hpp"
#include "gw/mock/mock_server.hpp"

namespace gw::http::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

/// A temporary directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "gw-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, std::string_view content) const {
    auto p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

/// A TCP listener that accepts connections (the kernel does) but never answers: a
/// stand-in for an endpoint that hangs.
struct silent_server {
  boost::asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)};
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
};

/// A port nothing listens on (bound, then closed).
inline std::uint16_t closed_port() {
  boost::asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  auto p = a.local_endpoint().port();
  a.close();
  return p;
}

/// Answers one connection on 127.0.0.1 with `response` (raw bytes), then closes.
struct one_shot_server {
  boost::asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)};
  std::thread thread;
  explicit one_shot_server(std::string response) {
    thread = std::thread([this, response = std::move(response)] {
      tcp::socket s(io);
      boost::system::error_code ec;
      acceptor.accept(s, ec);
      if (ec) return;
      char buf[4096];
      s.read_some(boost::asio::buffer(buf), ec);
      boost::asio::write(s, boost::asio::buffer(response), ec);
      s.shutdown(tcp::socket::shutdown_both, ec);
    });
  }
  ~one_shot_server() { thread.join(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/"; }
};

/// An io_context on its own thread (fetch callbacks run there), an optional mock server,
/// a temporary directory.
struct client_fixture : ::testing::Test {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  std::unique_ptr<mock::server> mock;
  temp_dir dir;

  void start_mock(mock::options o = {}) {
    o.port = 0;
    mock = std::make_unique<mock::server>(o);
    mock->start();
  }
  std::string mock_url() const { return "http://127.0.0.1:" + std::to_string(mock->port()); }

  /// The mock over HTTPS with a self-signed certificate for "localhost" only, trusted
  /// through SSL_CERT_FILE (read when the client TLS context is first built: call it
  /// before anything in the process uses https). False without the openssl CLI.
  bool start_tls_mock() {
    std::string key = (dir.path / "key.pem").string(), cert = (dir.path / "cert.pem").string();
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                      " -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return false;
    ::setenv("SSL_CERT_FILE", cert.c_str(), 1);
    mock::options o;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    start_mock(o);
    return true;
  }

  void TearDown() override {
    guard.reset();
    io.stop();
    thread.join();
    if (mock) mock->stop();
  }

  fetch_result fetch_sync(fetch_request r) {
    std::promise<fetch_result> p;
    auto f = p.get_future();
    fetch(io, std::move(r), [&p](fetch_result res) { p.set_value(std::move(res)); });
    if (f.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "fetch callback never ran";
      return {};
    }
    return f.get();
  }
};

}  // namespace gw::http::test
