// The one-shot HTTP(S) client (fetch) against the in-process mock server and stand-in
// servers (client_fixture.hpp): responses, bounds, timeouts, address filter, TLS.

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "client_fixture.hpp"
#include "gw/http/client.hpp"

namespace gw::http {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

using HttpClient = test::client_fixture;
using test::closed_port;
using test::one_shot_server;
using test::silent_server;

TEST_F(HttpClient, FetchGetsAResponse) {
  start_mock();
  fetch_request r;
  r.url = mock_url() + "/_mock/stats";
  auto res = fetch_sync(r);
  EXPECT_TRUE(res.error.empty()) << res.error;
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, "application/json");
  EXPECT_EQ(res.header("content-type"), "application/json");
  EXPECT_NE(res.body.find("\"requests\":"), std::string::npos) << res.body;
  EXPECT_TRUE(res.ok());
}

TEST_F(HttpClient, FetchDialsOnlyAllowedAddresses) {
  start_mock();
  // "localhost" resolves to loopback; a filter refusing loopback leaves nothing to dial.
  std::string url = mock_url();
  url.replace(url.find("127.0.0.1"), 9, "localhost");
  fetch_request r;
  r.url = url + "/_mock/stats";
  r.allow_address = [](const asio::ip::address& a) { return !a.is_loopback(); };
  r.refused_what = "loopback addresses";
  auto res = fetch_sync(r);
  EXPECT_EQ(res.status, 0);
  EXPECT_EQ(res.error, "localhost resolves only to loopback addresses");
  // The same filter accepting loopback: dialled and answered.
  r.allow_address = [](const asio::ip::address& a) { return a.is_loopback(); };
  res = fetch_sync(r);
  EXPECT_EQ(res.status, 200) << res.error;
}

TEST_F(HttpClient, FetchKeepsTrailingSlashAndQuery) {
  start_mock();
  // Trailing slash matters: the IMDS role list is ".../security-credentials/".
  fetch_request t;
  t.method = "PUT";
  t.url = mock_url() + "/latest/api/token";
  t.headers = {{"x-aws-ec2-metadata-token-ttl-seconds", "60"}};
  auto token = fetch_sync(t);
  ASSERT_EQ(token.status, 200) << token.error;
  EXPECT_EQ(token.header("x-aws-ec2-metadata-token-ttl-seconds"), "60");
  fetch_request r;
  r.url = mock_url() + "/latest/meta-data/iam/security-credentials/?x=1";
  r.headers = {{"x-aws-ec2-metadata-token", token.body}};
  auto res = fetch_sync(r);
  EXPECT_EQ(res.status, 200) << res.error;
  EXPECT_EQ(res.body, "mock-role");
}

TEST_F(HttpClient, FetchTimesOut) {
  silent_server s;
  fetch_request r;
  r.url = s.url() + "/";
  r.timeout = 200ms;
  auto t0 = steady::now();
  auto res = fetch_sync(r);
  auto took = steady::now() - t0;
  EXPECT_NE(res.error.find("timed out after 200 ms"), std::string::npos) << res.error;
  EXPECT_EQ(res.status, 0);
  EXPECT_LT(took, 2s);
  EXPECT_GE(took, 150ms);
}

TEST_F(HttpClient, FetchConnectionRefused) {
  fetch_request r;
  r.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/";
  auto res = fetch_sync(r);
  EXPECT_NE(res.error.find("connect 127.0.0.1:"), std::string::npos) << res.error;
  EXPECT_FALSE(res.ok());
}

TEST_F(HttpClient, FetchBoundsTheResponse) {
  start_mock();
  fetch_request r;
  r.url = mock_url() + "/_mock/stats";
  r.max_body_bytes = 10;
  auto res = fetch_sync(r);
  EXPECT_NE(res.error.find("response larger than 10 bytes"), std::string::npos) << res.error << " status " << res.status << " body " << res.body;
}

TEST_F(HttpClient, FetchRefusesHugeContentLengthArrivingWithTheHead) {
  // The body bytes come in the same segment as the head: the case Beast's eager parse
  // gets wrong (it would reserve 100 GB).
  one_shot_server s("HTTP/1.1 200 OK\r\ncontent-length: 100000000000\r\n\r\nabc");
  fetch_request r;
  r.url = s.url();
  auto res = fetch_sync(r);
  EXPECT_NE(res.error.find("response larger than"), std::string::npos) << res.error;
}

TEST_F(HttpClient, FetchBoundsChunkedAndUntilCloseBodies) {
  {
    one_shot_server s("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n");
    fetch_request r;
    r.url = s.url();
    r.max_body_bytes = 12;
    EXPECT_NE(fetch_sync(r).error.find("response larger than 12 bytes"), std::string::npos);
  }
  {
    one_shot_server s("HTTP/1.1 200 OK\r\n\r\n0123456789abcdef");
    fetch_request r;
    r.url = s.url();
    r.max_body_bytes = 12;
    EXPECT_NE(fetch_sync(r).error.find("response larger than 12 bytes"), std::string::npos);
  }
  {
    one_shot_server s("HTTP/1.1 200 OK\r\n\r\n0123456789");
    fetch_request r;
    r.url = s.url();
    r.max_body_bytes = 12;
    auto res = fetch_sync(r);
    EXPECT_EQ(res.status, 200) << res.error;
    EXPECT_EQ(res.body, "0123456789");
  }
  {
    one_shot_server s("garbage\r\n\r\n");
    fetch_request r;
    r.url = s.url();
    auto res = fetch_sync(r);
    EXPECT_FALSE(res.error.empty());
    EXPECT_EQ(res.status, 0);
  }
}

TEST_F(HttpClient, FetchRejectsBadInput) {
  for (std::string url : {"ftp://x/", "http://", "http://[::1/", "http://h:99999/", "http://h/a b"}) {
    fetch_request r;
    r.url = url;
    auto res = fetch_sync(r);
    EXPECT_NE(res.error.find("invalid URL"), std::string::npos) << url << ": " << res.error;
  }
  fetch_request r;
  r.url = "http://127.0.0.1:1/";
  r.headers = {{"x-a", "v\r\nx-injected: 1"}};
  EXPECT_EQ(fetch_sync(r).error, "invalid request header");
  r.headers = {};
  r.method = "GE T";
  EXPECT_EQ(fetch_sync(r).error, "invalid HTTP method");
}

TEST_F(HttpClient, FetchIpv6Literal) {
  EXPECT_EQ(url_origin("http://[fd00:ec2::254]/latest/api/token"), "http://[fd00:ec2::254]");
  EXPECT_EQ(url_origin("http://[fd00:ec2::254]:8080"), "http://[fd00:ec2::254]:8080");
  // A one-shot HTTP answer on [::1], if this host has IPv6 loopback.
  boost::asio::io_context sio;
  boost::system::error_code ec;
  tcp::acceptor a(sio);
  a.open(tcp::v6(), ec);
  if (!ec) a.bind(tcp::endpoint(boost::asio::ip::make_address("::1"), 0), ec);
  if (!ec) a.listen(4, ec);
  if (ec) GTEST_SKIP() << "no IPv6 loopback here: " << ec.message();
  std::thread server([&] {
    tcp::socket s(sio);
    a.accept(s);
    char buf[2048];
    boost::system::error_code e;
    std::size_t n = s.read_some(boost::asio::buffer(buf), e);
    std::string req(buf, n);
    std::string body = req.find("Host: [::1]:") != std::string::npos ? "host-ok" : "host-bad";
    std::string resp = "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    boost::asio::write(s, boost::asio::buffer(resp), e);
  });
  fetch_request r;
  r.url = "http://[::1]:" + std::to_string(a.local_endpoint().port()) + "/x";
  auto res = fetch_sync(r);
  server.join();
  EXPECT_EQ(res.status, 200) << res.error;
  EXPECT_EQ(res.body, "host-ok");
}


TEST_F(HttpClient, FetchOverTlsVerifiesTheHost) {
  // A self-signed certificate for "localhost" only (no other test here uses https).
  if (!start_tls_mock()) GTEST_SKIP() << "openssl CLI not available";
  std::string port = std::to_string(mock->port());
  fetch_request r;
  r.url = "https://localhost:" + port + "/_mock/stats";
  auto res = fetch_sync(r);
  EXPECT_EQ(res.status, 200) << res.error;
  // The certificate does not name 127.0.0.1: the handshake must fail.
  r.url = "https://127.0.0.1:" + port + "/_mock/stats";
  res = fetch_sync(r);
  EXPECT_EQ(res.status, 0);
  EXPECT_NE(res.error.find("TLS handshake"), std::string::npos) << res.error;
}

}  // namespace
}  // namespace gw::http
