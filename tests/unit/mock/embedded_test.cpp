// The embedded provider (gw/mock/embedded.hpp), as llm-gateway starts it without --config.
#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <string>

#include "gw/mock/embedded.hpp"

namespace {

using tcp = boost::asio::ip::tcp;

/// One HTTP/1.1 GET to 127.0.0.1:port; the raw response, or "" when nothing answers.
std::string get(std::uint16_t port, const std::string& target) {
  boost::asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return {};
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(req), ec);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = s.read_some(boost::asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

TEST(EmbeddedProvider, ServesOnLoopbackUntilStopped) {
  auto p = gw::mock::embedded_provider::start();
  ASSERT_TRUE(p);
  ASSERT_NE(p->port(), 0);
  auto models = get(p->port(), "/v1/models");
  EXPECT_EQ(models.rfind("HTTP/1.1 200", 0), 0u) << models;
  EXPECT_NE(models.find("mock-gpt"), std::string::npos) << models;
  EXPECT_NE(models.find("mock-embed"), std::string::npos) << models;
  auto port = p->port();
  p->stop();
  p->stop();  // idempotent
  EXPECT_EQ(get(port, "/v1/models"), "");
}

}  // namespace
