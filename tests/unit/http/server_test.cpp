#include <gtest/gtest.h>

#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <thread>

#include "gw/http/server.hpp"

namespace gw::http {
namespace {

/// Echoes the body; "/stream" answers with three chunks; "/hold" never answers
/// until released.
class test_handler : public request_handler {
 public:
  void on_request(const session_ptr& s) override {
    std::string target(s->req().target());
    if (target == "/stream") {
      s->begin_stream(200, "text/event-stream", "", {}, [s](error_code ec) {
        if (ec) return;
        static const std::string a = "data: 1\n\n", b = "data: 2\n\n";
        s->write_chunk(asio::buffer(a), [s](error_code ec) {
          if (ec) return;
          s->write_chunk(asio::buffer(b), [s](error_code ec) {
            if (!ec) s->end_stream();
          });
        });
      });
      return;
    }
    if (target == "/hold") {
      held = s;
      return;
    }
    s->respond(200, "text/plain", "echo:" + s->req().body(), "x-test: 1\r\n");
  }
  session_ptr held;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = std::make_unique<io_threads>(2);
    server_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_body_bytes = 1024;
    o.max_header_bytes = 2048;
    o.keepalive_timeout = std::chrono::milliseconds(2000);
    server_ = std::make_unique<server>(*threads_, o, handler_);
    threads_->start();
    server_->start();
  }
  void TearDown() override {
    threads_->stop();
    server_->close();
    threads_->destroy();
    server_.reset();
    threads_.reset();
  }

  tcp::socket connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    return s;
  }

  /// Reads one HTTP response (headers + body) with Beast's parser.
  static bhttp::response<bhttp::string_body> read_response(tcp::socket& s, beast::flat_buffer& buf) {
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    return res;
  }

  asio::io_context client_io_;
  test_handler handler_;
  std::unique_ptr<io_threads> threads_;
  std::unique_ptr<server> server_;
};

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto s = connect();
  beast::flat_buffer buf;
  for (int i = 0; i < 3; ++i) {
    std::string body = "hello" + std::to_string(i);
    std::string req = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(s, asio::buffer(req));
    auto res = read_response(s, buf);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "echo:" + body);
    EXPECT_EQ(res["x-test"], "1");
    EXPECT_TRUE(res.keep_alive());
  }
}

TEST_F(ServerTest, PipelinedRequestsAnswerInOrder) {
  auto s = connect();
  std::string req = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nA"
                    "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nB";
  asio::write(s, asio::buffer(req));
  beast::flat_buffer buf;
  EXPECT_EQ(read_response(s, buf).body(), "echo:A");
  EXPECT_EQ(read_response(s, buf).body(), "echo:B");
}

TEST_F(ServerTest, OversizedBodyGets413BeforeTheBodyIsRead) {
  auto s = connect();
  std::string req = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n";
  asio::write(s, asio::buffer(req));
  beast::flat_buffer buf;
  auto res = read_response(s, buf);
  EXPECT_EQ(res.result_int(), 413u);
  EXPECT_NE(res.body().find("\"code\":\"request_too_large\""), std::string::npos) << res.body();
  EXPECT_FALSE(res.keep_alive());
}

TEST_F(ServerTest, OversizedChunkedBodyGets413) {
  auto s = connect();
  std::string chunk(800, 'x');
  std::string req = "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" + chunk + "\r\n320\r\n" +
                    chunk + "\r\n0\r\n\r\n";
  asio::write(s, asio::buffer(req));
  beast::flat_buffer buf;
  EXPECT_EQ(read_response(s, buf).result_int(), 413u);
}

TEST_F(ServerTest, HugeHeadersGet431) {
  auto s = connect();
  std::string req = "GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n";
  asio::write(s, asio::buffer(req));
  beast::flat_buffer buf;
  EXPECT_EQ(read_response(s, buf).result_int(), 431u);
}

TEST_F(ServerTest, GarbageGets400) {
  auto s = connect();
  asio::write(s, asio::buffer(std::string("THIS IS NOT HTTP\r\n\r\n")));
  beast::flat_buffer buf;
  auto res = read_response(s, buf);
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_NE(res.body().find("\"error\""), std::string::npos);
}

TEST_F(ServerTest, ExpectContinueIsAnswered) {
  auto s = connect();
  asio::write(s, asio::buffer(std::string("POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")));
  std::string got;
  asio::read_until(s, asio::dynamic_buffer(got), "\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 100 Continue", 0), 0u);
  asio::write(s, asio::buffer(std::string("abc")));
  beast::flat_buffer buf;
  EXPECT_EQ(read_response(s, buf).body(), "echo:abc");
}

TEST_F(ServerTest, StreamsChunks) {
  auto s = connect();
  asio::write(s, asio::buffer(std::string("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")));
  beast::flat_buffer buf;
  auto res = read_response(s, buf);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(res.body(), "data: 1\n\ndata: 2\n\n");
}

TEST_F(ServerTest, Http10ClosesAfterResponse) {
  auto s = connect();
  asio::write(s, asio::buffer(std::string("POST /x HTTP/1.0\r\nContent-Length: 1\r\n\r\nZ")));
  beast::flat_buffer buf;
  auto res = read_response(s, buf);
  EXPECT_EQ(res.body(), "echo:Z");
  char c;
  error_code ec;
  s.read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(ServerTest, IdleConnectionTimesOut) {
  auto s = connect();
  auto start = std::chrono::steady_clock::now();
  char c;
  error_code ec;
  s.read_some(asio::buffer(&c, 1), ec);  // the server closes after keepalive_timeout
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));
}

TEST_F(ServerTest, DrainClosesIdleAndFinishesInFlight) {
  auto idle = connect();
  auto busy = connect();
  asio::write(busy, asio::buffer(std::string("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")));
  // Wait until the handler holds the request.
  for (int i = 0; i < 200 && server_->stats().active_requests.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(server_->stats().active_requests.load(), 1);
  server_->begin_drain();
  char c;
  error_code ec;
  idle.read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof) << "idle keep-alive connection is closed on drain";
  // The held request still completes, with Connection: close.
  asio::post(threads_->operator[](0).io(), [this] {});
  auto held = handler_.held;
  ASSERT_TRUE(held);
  asio::post(held->io(), [held] { held->respond(200, "text/plain", "late"); });
  beast::flat_buffer buf;
  auto res = read_response(busy, buf);
  EXPECT_EQ(res.body(), "late");
  EXPECT_FALSE(res.keep_alive());
  handler_.held.reset();
  // New connections are refused once draining.
  tcp::socket s(client_io_);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()), ec);
  if (!ec) {
    s.read_some(asio::buffer(&c, 1), ec);
    EXPECT_TRUE(ec);  // closed without an answer, or refused
  }
}

}  // namespace
}  // namespace gw::http
