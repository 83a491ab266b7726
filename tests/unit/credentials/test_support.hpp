#pragma once
// What the credentials tests share: a temporary directory, stand-in servers (silent,
// one-shot, capturing), and the fixture (an io_context thread, the mock server, sync
// wrappers around the providers' callbacks).

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "gw/credentials/aws.hpp"
#include "gw/credentials/fetch.hpp"
#include "gw/mock/mock_server.hpp"

namespace gw::credentials::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tcp = boost::asio::ip::tcp;
using env_map = std::map<std::string, std::string, std::less<>>;

/// A temporary directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "gw-creds-XXXXXX").string();
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

/// The fixture of the credentials tests: an io_context on its own thread (the providers'
/// callbacks run there), an optional mock server, a temporary directory.
struct credentials_fixture : ::testing::Test {
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

  /// A counter from the mock's /_mock/stats.
  long long mock_stat(const std::string& name) {
    fetch_request r;
    r.url = mock_url() + "/_mock/stats";
    auto res = fetch_sync(r);
    EXPECT_EQ(res.status, 200) << res.error;
    auto at = res.body.find("\"" + name + "\":");
    if (at == std::string::npos) return -1;
    return std::stoll(res.body.substr(at + name.size() + 3));
  }

  template <class P>
  auto get_sync(P& p, std::chrono::seconds limit = 20s) {
    using value = typename std::decay_t<decltype(*p.current())>;
    std::promise<std::pair<std::optional<value>, std::string>> pr;
    auto f = pr.get_future();
    p.get([&pr](std::optional<value> v, std::string err) { pr.set_value({std::move(v), std::move(err)}); });
    if (f.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "get() callback never ran";
      return std::pair<std::optional<value>, std::string>{};
    }
    return f.get();
  }

  aws_source_config aws_config(env_map vars, std::string home = {}) {
    aws_source_config c;
    // No real home: the developer's ~/.aws must never leak into a test.
    c.env = environment::from_map(std::move(vars), home.empty() ? (dir.path / "nohome").string() : home);
    c.imds_timeout = 300ms;
    return c;
  }
};

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

/// Answers one connection on 127.0.0.1 with `response` (raw bytes) once it has read the
/// whole request (head and Content-Length body), which request() then returns.
struct capture_server {
  boost::asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)};
  std::promise<std::string> got;
  std::future<std::string> got_future = got.get_future();
  std::atomic<bool> accepted{false};
  std::thread thread;
  explicit capture_server(std::string response) {
    thread = std::thread([this, response = std::move(response)] {
      tcp::socket s(io);
      boost::system::error_code ec;
      acceptor.accept(s, ec);
      accepted = true;
      std::string req;
      std::size_t need = std::string::npos;
      char buf[4096];
      while (!ec) {
        std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
        req.append(buf, n);
        auto head_end = req.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        if (need == std::string::npos) {
          std::string head = req.substr(0, head_end);
          for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          auto at = head.find("\r\ncontent-length:");
          need = head_end + 4 + (at == std::string::npos ? 0 : std::stoul(head.substr(at + 17)));
        }
        if (req.size() >= need) break;
      }
      got.set_value(req);
      boost::asio::write(s, boost::asio::buffer(response), ec);
      s.shutdown(tcp::socket::shutdown_both, ec);
    });
  }
  ~capture_server() {
    if (!accepted) {  // nobody came: unblock accept()
      boost::asio::io_context c;
      tcp::socket s(c);
      boost::system::error_code ec;
      s.connect(acceptor.local_endpoint(), ec);
    }
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/"; }
  /// The raw request ("" if none came within 10 s).
  std::string request() {
    if (got_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return {};
    return got_future.get();
  }
};

}  // namespace gw::credentials::test
