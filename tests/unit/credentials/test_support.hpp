#pragma once
// What the credentials tests share: the HTTP client tests' temporary directory,
// stand-in servers and fixture (client_fixture.hpp), a capturing server, and sync
// wrappers around the providers' callbacks.

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
#include "gw/mock/mock_server.hpp"
#include "client_fixture.hpp"  // tests/unit/http

namespace gw::credentials::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tcp = boost::asio::ip::tcp;
using env_map = std::map<std::string, std::string, std::less<>>;

using http::fetch_request;
using http::test::closed_port;
using http::test::one_shot_server;
using http::test::silent_server;
using http::test::temp_dir;

/// The fixture of the credentials tests: the HTTP client's (an io_context on its own
/// thread, where the providers' callbacks run, an optional mock server, a temporary
/// directory) and sync wrappers around the providers' callbacks.
struct credentials_fixture : http::test::client_fixture {
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
