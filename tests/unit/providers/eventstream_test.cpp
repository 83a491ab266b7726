#include <gtest/gtest.h>

#include <random>

#include "gw/providers/eventstream.hpp"

namespace gw::providers::eventstream {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s += static_cast<char>(x);
  return s;
}

// botocore's published vector (wire-specs section 3).
std::string published_vector() {
  std::string f = bytes({0x00, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x20, 0x07, 0xfd, 0x83, 0x96});
  f += static_cast<char>(0x0c);
  f += "content-type";
  f += bytes({0x07, 0x00, 0x10});
  f += "application/json";
  f += "{'foo':'bar'}";
  f += bytes({0x8d, 0x9c, 0x08, 0xb1});
  return f;
}

std::string empty_frame() {
  return bytes({0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff});
}

TEST(EventStream, Crc32IsIeee) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
}

TEST(EventStream, DecodesPublishedVector) {
  auto f = published_vector();
  ASSERT_EQ(f.size(), 0x3du);
  decoder d;
  std::vector<message> out;
  auto e = d.feed(f, out);
  ASSERT_FALSE(e) << *e;
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].headers.size(), 1u);
  EXPECT_EQ(out[0].headers[0].name, "content-type");
  EXPECT_EQ(out[0].headers[0].type, header_type::string);
  EXPECT_EQ(out[0].header_value("content-type"), "application/json");
  EXPECT_EQ(out[0].payload, "{'foo':'bar'}");
  EXPECT_FALSE(d.finish());
}

TEST(EventStream, EncoderReproducesPublishedVectorAndEmptyFrame) {
  EXPECT_EQ(encode_message({{"content-type", "application/json"}}, "{'foo':'bar'}"), published_vector());
  EXPECT_EQ(encode_message({}, ""), empty_frame());
}

TEST(EventStream, DecodesEmptyFrame) {
  decoder d;
  std::vector<message> out;
  ASSERT_FALSE(d.feed(empty_frame(), out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].headers.empty());
  EXPECT_TRUE(out[0].payload.empty());
}

TEST(EventStream, ByteByByteAndRandomSplits) {
  std::string stream;
  for (int i = 0; i < 5; ++i)
    stream += encode_message({{":message-type", "event"}, {":event-type", "e" + std::to_string(i)}},
                             "{\"i\":" + std::to_string(i) + "}");
  {
    decoder d;
    std::vector<message> out;
    for (char c : stream) ASSERT_FALSE(d.feed(std::string_view(&c, 1), out));
    ASSERT_EQ(out.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(out[i].header_value(":event-type"), "e" + std::to_string(i));
      EXPECT_EQ(out[i].payload, "{\"i\":" + std::to_string(i) + "}");
    }
    EXPECT_FALSE(d.finish());
    EXPECT_EQ(d.buffered(), 0u);
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    decoder d;
    std::vector<message> out;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(1, 40)(rng);
      ASSERT_FALSE(d.feed(std::string_view(stream).substr(pos, n), out));
      pos += n;
    }
    ASSERT_EQ(out.size(), 5u);
    EXPECT_EQ(out[4].payload, "{\"i\":4}");
  }
}

TEST(EventStream, AllHeaderTypesDecode) {
  // Hand-built headers of every type, framed with correct CRCs.
  std::string hs;
  auto name = [&](std::string_view n, int type) {
    hs += static_cast<char>(n.size());
    hs += n;
    hs += static_cast<char>(type);
  };
  name("t", 0);
  name("f", 1);
  name("b", 2);
  hs += bytes({0xff});  // -1
  name("s", 3);
  hs += bytes({0x80, 0x00});  // -32768
  name("i", 4);
  hs += bytes({0x00, 0x01, 0x00, 0x00});  // 65536
  name("l", 5);
  hs += bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe});  // -2
  name("y", 6);
  hs += bytes({0x00, 0x02, 0x00, 0x01});
  name("str", 7);
  hs += bytes({0x00, 0x02});
  hs += "ok";
  name("ts", 8);
  hs += bytes({0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00});
  name("u", 9);
  hs += std::string(16, 'x');
  std::string f;
  auto u32 = [&](std::uint32_t v) {
    f += static_cast<char>(v >> 24);
    f += static_cast<char>(v >> 16);
    f += static_cast<char>(v >> 8);
    f += static_cast<char>(v);
  };
  u32(static_cast<std::uint32_t>(16 + hs.size() + 2));
  u32(static_cast<std::uint32_t>(hs.size()));
  u32(crc32(f));
  f += hs;
  f += "{}";
  u32(crc32(f));

  message m;
  auto e = decode_message(f, m);
  ASSERT_FALSE(e) << *e;
  ASSERT_EQ(m.headers.size(), 10u);
  EXPECT_EQ(m.find("t")->number, 1);
  EXPECT_EQ(m.find("f")->number, 0);
  EXPECT_EQ(m.find("b")->number, -1);
  EXPECT_EQ(m.find("s")->number, -32768);
  EXPECT_EQ(m.find("i")->number, 65536);
  EXPECT_EQ(m.find("l")->number, -2);
  EXPECT_EQ(m.header_value("y"), std::string("\0\1", 2));
  EXPECT_EQ(m.header_value("str"), "ok");
  EXPECT_EQ(m.find("ts")->type, header_type::timestamp);
  EXPECT_EQ(m.find("ts")->number, 1700000000000);
  EXPECT_EQ(m.find("u")->value, std::string(16, 'x'));
  EXPECT_EQ(m.header_value("i"), "");  // not a string header
  EXPECT_EQ(m.find("absent"), nullptr);
  EXPECT_EQ(m.payload, "{}");
}

std::optional<std::string> feed_all(std::string_view s, std::vector<message>& out, decoder& d) {
  return d.feed(s, out);
}

TEST(EventStream, PreludeCrcMismatch) {
  auto f = published_vector();
  f[8] = static_cast<char>(f[8] ^ 1);
  decoder d;
  std::vector<message> out;
  auto e = feed_all(f, out, d);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("prelude CRC mismatch"), std::string::npos) << *e;
  EXPECT_TRUE(out.empty());
  // Sticky: the stream is unusable from here on.
  EXPECT_TRUE(d.feed(empty_frame(), out));
  EXPECT_TRUE(d.failed());
  EXPECT_TRUE(d.finish());
}

TEST(EventStream, LengthCorruptionCaughtByPreludeCrc) {
  auto f = published_vector();
  f[3] = static_cast<char>(0x3e);  // total length off by one
  decoder d;
  std::vector<message> out;
  auto e = feed_all(f, out, d);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("prelude CRC"), std::string::npos) << *e;
}

TEST(EventStream, MessageCrcMismatch) {
  auto f = published_vector();
  f[f.size() - 6] = 'X';  // inside the payload
  decoder d;
  std::vector<message> out;
  auto e = feed_all(f, out, d);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("message CRC mismatch"), std::string::npos) << *e;
  EXPECT_TRUE(out.empty());
}

TEST(EventStream, GoodFramesBeforeACorruptOneAreDelivered) {
  auto bad = published_vector();
  bad[bad.size() - 1] = static_cast<char>(bad[bad.size() - 1] ^ 0x55);
  std::string s = published_vector() + bad;
  decoder d;
  std::vector<message> out;
  EXPECT_TRUE(d.feed(s, out));
  EXPECT_EQ(out.size(), 1u);
}

TEST(EventStream, TruncatedFrameReportedAtFinish) {
  auto f = published_vector();
  decoder d;
  std::vector<message> out;
  ASSERT_FALSE(d.feed(std::string_view(f).substr(0, 30), out));
  EXPECT_TRUE(out.empty());
  auto e = d.finish();
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("30 of 61 bytes"), std::string::npos) << *e;

  decoder d2;
  ASSERT_FALSE(d2.feed(std::string_view(f).substr(0, 5), out));
  auto e2 = d2.finish();
  ASSERT_TRUE(e2);
  EXPECT_NE(e2->find("prelude"), std::string::npos) << *e2;
}

/// A prelude with a valid CRC over the given lengths.
std::string prelude(std::uint32_t total, std::uint32_t headers) {
  std::string p;
  for (std::uint32_t v : {total, headers}) {
    p += static_cast<char>(v >> 24);
    p += static_cast<char>(v >> 16);
    p += static_cast<char>(v >> 8);
    p += static_cast<char>(v);
  }
  std::uint32_t c = crc32(p);
  p += static_cast<char>(c >> 24);
  p += static_cast<char>(c >> 16);
  p += static_cast<char>(c >> 8);
  p += static_cast<char>(c);
  return p;
}

TEST(EventStream, AbsurdLengthsRefusedAtThePrelude) {
  struct tc {
    std::uint32_t total, headers;
    const char* expect;
  } cases[] = {
      {0, 0, "below the 16-byte minimum"},
      {15, 0, "below the 16-byte minimum"},
      {16, 1, "exceeds the frame length"},
      {100, 0xffffffffu, "exceeds the frame length"},
      {0xffffffffu, 0, "exceeds the 24 MiB limit"},
      {16 + 200 * 1024, 200 * 1024, "exceeds the 128 KiB limit"},
  };
  for (auto& c : cases) {
    decoder d;
    std::vector<message> out;
    auto e = d.feed(prelude(c.total, c.headers), out);
    ASSERT_TRUE(e) << c.total << "/" << c.headers;
    EXPECT_NE(e->find(c.expect), std::string::npos) << *e;
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(EventStream, MalformedHeadersRefused) {
  auto frame_with_headers = [](std::string hs) {
    std::string f = prelude(static_cast<std::uint32_t>(16 + hs.size()), static_cast<std::uint32_t>(hs.size()));
    f += hs;
    std::uint32_t c = crc32(f);
    f += static_cast<char>(c >> 24);
    f += static_cast<char>(c >> 16);
    f += static_cast<char>(c >> 8);
    f += static_cast<char>(c);
    return f;
  };
  message m;
  // Name longer than the headers.
  auto e = decode_message(frame_with_headers(bytes({0x09}) + "abc"), m);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("name runs past"), std::string::npos) << *e;
  // String value longer than the headers.
  e = decode_message(frame_with_headers(bytes({0x01}) + "a" + bytes({0x07, 0x00, 0x50}) + "xy"), m);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("value runs past"), std::string::npos) << *e;
  // Unknown type.
  e = decode_message(frame_with_headers(bytes({0x01}) + "a" + bytes({0x0a})), m);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("unknown type 10"), std::string::npos) << *e;
  // Empty name.
  e = decode_message(frame_with_headers(bytes({0x00, 0x00})), m);
  ASSERT_TRUE(e);
  // Truncated int64.
  e = decode_message(frame_with_headers(bytes({0x01}) + "a" + bytes({0x05, 0x00, 0x00})), m);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("value runs past"), std::string::npos) << *e;
  // decode_message with the wrong size.
  e = decode_message(published_vector() + "x", m);
  ASSERT_TRUE(e);
  e = decode_message("short", m);
  ASSERT_TRUE(e);
}

TEST(EventStream, RandomGarbageNeverCrashes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string s(std::uniform_int_distribution<std::size_t>(0, 80)(rng), '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    if (round % 2) s = published_vector().substr(0, 12) + s;  // a valid prelude, then noise
    decoder d;
    std::vector<message> out;
    (void)d.feed(s, out);
    (void)d.finish();
    message m;
    (void)decode_message(s, m);
  }
  SUCCEED();
}

TEST(EventStream, EncoderRejectsOversizedHeaders) {
  EXPECT_THROW(encode_message({{std::string(256, 'n'), "v"}}, ""), std::invalid_argument);
  EXPECT_THROW(encode_message({{"n", std::string(70000, 'v')}}, ""), std::invalid_argument);
  EXPECT_THROW(encode_message({{"", "v"}}, ""), std::invalid_argument);
}

}  // namespace
}  // namespace gw::providers::eventstream
