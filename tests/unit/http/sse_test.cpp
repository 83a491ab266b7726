#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gw/http/sse.hpp"

namespace gw::http {
namespace {

/// Feeds `input` in pieces of `step` bytes the way the relay does (scan, forward up
/// to the boundary, shift) and returns the events and the forwarded text.
struct relay_result {
  std::vector<std::string> events;
  std::string forwarded;
};

relay_result relay(std::string_view input, std::size_t step) {
  relay_result r;
  sse_scanner sc;
  std::string buf;
  std::size_t scanned = 0;
  for (std::size_t pos = 0; pos < input.size(); pos += step) {
    buf.append(input.substr(pos, step));
    std::size_t b = sc.scan(buf, scanned, [&](std::string_view e) { r.events.emplace_back(e); });
    scanned = buf.size();
    if (b > 0) {
      r.forwarded.append(buf, 0, b);
      buf.erase(0, b);
      scanned -= b;
      sc.shift(b);
    }
  }
  r.forwarded += buf;  // the stream ended: the rest goes as is
  return r;
}

TEST(SseScanner, SplitsLfEventsWhateverTheChunking) {
  std::string in = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
  for (std::size_t step : {1u, 2u, 3u, 7u, 100u}) {
    auto r = relay(in, step);
    ASSERT_EQ(r.events.size(), 3u) << "step " << step;
    EXPECT_EQ(r.events[0], "data: {\"a\":1}");
    EXPECT_EQ(r.events[1], "data: {\"b\":2}");
    EXPECT_EQ(r.events[2], "data: [DONE]");
    EXPECT_EQ(r.forwarded, in) << "relay must not change bytes";
  }
}

TEST(SseScanner, HandlesCrLfAndCr) {
  std::string in = "data: x\r\n\r\nevent: y\r\ndata: z\r\n\r\ndata: w\r\r";
  for (std::size_t step : {1u, 4u, 64u}) {
    auto r = relay(in, step);
    ASSERT_EQ(r.events.size(), 3u) << "step " << step;
    EXPECT_EQ(r.events[0], "data: x");
    EXPECT_EQ(r.events[1], "event: y\r\ndata: z");
    EXPECT_EQ(r.events[2], "data: w");
    EXPECT_EQ(r.forwarded, in);
  }
}

TEST(SseScanner, ReturnsBoundaryOfLastCompleteEventOnly) {
  sse_scanner sc;
  std::string buf = "data: 1\n\ndata: 2";  // second event incomplete
  int n = 0;
  auto b = sc.scan(buf, 0, [&](std::string_view) { ++n; });
  EXPECT_EQ(n, 1);
  EXPECT_EQ(b, 9u);
  EXPECT_EQ(sc.event_start(), 9u);
}

TEST(SseScanner, IgnoresCommentOnlyAndEmptyPrefix) {
  auto r = relay("\n: keep-alive\n\ndata: a\n\n", 3);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0], ": keep-alive");
  EXPECT_EQ(r.events[1], "data: a");
}

TEST(SseEventData, JoinsDataLines) {
  std::string scratch;
  EXPECT_EQ(sse_event_data("data: {\"x\":1}", scratch), "{\"x\":1}");
  EXPECT_EQ(sse_event_data("data:{\"x\":1}", scratch), "{\"x\":1}");
  EXPECT_EQ(sse_event_data("event: e\ndata: a\ndata: b", scratch), "a\nb");
  EXPECT_EQ(sse_event_data("id: 3\r\ndata: a\r\ndata:  b", scratch), "a\n b");
  EXPECT_EQ(sse_event_data(": comment", scratch), "");
}

}  // namespace
}  // namespace gw::http
