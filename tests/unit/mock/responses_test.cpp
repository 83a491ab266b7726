#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "responses.hpp"

namespace gw::mock {
namespace {

TEST(MockRequest, ReadsFieldsAndXMock) {
  mock_request r;
  std::string err;
  ASSERT_TRUE(parse_request(
      R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"world"}]}],)"
      R"("stream":true,"stream_options":{"include_usage":true},)"
      R"("x_mock":{"status":429,"retry_after":3,"latency_ms":5,"tokens":4,"tokens_per_second":2.5,"drop_after":1,"echo":true,"headers":{"x-a":"b"}}})",
      kind::chat, r, err))
      << err;
  EXPECT_EQ(r.model, "m");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.last_text, "hello world");
  EXPECT_EQ(r.text_bytes, 8u + 11u);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after, "3");
  EXPECT_EQ(r.latency_ms, 5);
  EXPECT_EQ(r.tokens, 4);
  EXPECT_DOUBLE_EQ(r.tokens_per_second, 2.5);
  EXPECT_EQ(r.drop_after, 1);
  EXPECT_TRUE(r.echo);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "x-a");
  mock_request bad;
  EXPECT_FALSE(parse_request("{nope", kind::chat, bad, err));
}

TEST(MockRequest, EchoAndGeneratedWords) {
  mock_request r;
  r.echo = true;
  r.last_text = "a  b c";
  EXPECT_EQ(completion_words(r, 16), (std::vector<std::string>{"a", "b", "c"}));
  mock_request g;
  g.tokens = 3;
  EXPECT_EQ(completion_words(g, 16).size(), 3u);
  EXPECT_EQ(completion_words(mock_request{}, 5).size(), 5u);
}

TEST(MockStream, ChatEventsLikeOpenAI) {
  auto ev = stream_events(kind::chat, "id1", 1, "m", {"a", "b"}, true, 7);
  // role, a, b, finish, usage, [DONE]
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_NE(ev[0].find(R"("delta":{"role":"assistant","content":""})"), std::string::npos);
  EXPECT_NE(ev[1].find(R"("delta":{"content":"a "})"), std::string::npos);
  EXPECT_NE(ev[2].find(R"("delta":{"content":"b"})"), std::string::npos);
  EXPECT_NE(ev[3].find(R"("finish_reason":"stop")"), std::string::npos);
  EXPECT_NE(ev[1].find(R"("usage":null)"), std::string::npos);
  EXPECT_NE(ev[4].find(R"("choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9})"),
            std::string::npos);
  EXPECT_EQ(ev[5], "data: [DONE]\n\n");
  for (auto& e : ev) {
    EXPECT_EQ(e.rfind("data: ", 0), 0u);
    EXPECT_EQ(e.substr(e.size() - 2), "\n\n");
  }
  auto no_usage = stream_events(kind::chat, "id1", 1, "m", {"a"}, false, 7);
  EXPECT_EQ(no_usage.size(), 4u);
  EXPECT_EQ(no_usage[1].find("usage"), std::string::npos);
}

std::vector<float> decode_base64_floats(std::string_view b64) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : 63;
  };
  std::vector<unsigned char> bytes;
  for (std::size_t i = 0; i + 4 <= b64.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = b64[i + static_cast<std::size_t>(j)];
      if (c == '=') ++pad;
      v = (v << 6) | static_cast<std::uint32_t>(c == '=' ? 0 : val(c));
    }
    bytes.push_back(static_cast<unsigned char>(v >> 16));
    if (pad < 2) bytes.push_back(static_cast<unsigned char>(v >> 8));
    if (pad < 1) bytes.push_back(static_cast<unsigned char>(v));
  }
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

TEST(MockEmbeddings, Base64IsTheSameUnitVector) {
  mock_request r;
  r.model = "e";
  r.inputs = {"hello"};
  r.dimensions = 6;
  auto plain = embeddings_body(r, 8);
  r.base64 = true;
  auto b64 = embeddings_body(r, 8);
  auto start = b64.find(R"("embedding":")") + 13;
  auto end = b64.find('"', start);
  auto floats = decode_base64_floats(std::string_view(b64).substr(start, end - start));
  ASSERT_EQ(floats.size(), 6u);
  double norm = 0;
  for (float f : floats) norm += static_cast<double>(f) * f;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  // The same numbers appear in the float encoding.
  char first[32];
  std::snprintf(first, sizeof first, "%.4f", static_cast<double>(floats[0]));
  EXPECT_NE(plain.find(std::string(first).substr(0, 5)), std::string::npos) << plain;
  EXPECT_NE(plain.find(R"("usage":{"prompt_tokens":1,"total_tokens":1})"), std::string::npos);
}

TEST(MockBodies, ChatShape) {
  auto b = chat_body("chatcmpl-mock-1", 5, "m", "hi \"there\"", 3, 2);
  EXPECT_EQ(b,
            R"({"id":"chatcmpl-mock-1","object":"chat.completion","created":5,"model":"m","system_fingerprint":"fp_mock",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"hi \"there\"","refusal":null},"logprobs":null,)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  EXPECT_NE(error_body(503).find(R"("code":"503")"), std::string::npos);
}

}  // namespace
}  // namespace gw::mock
