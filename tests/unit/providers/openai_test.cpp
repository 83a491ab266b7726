#include <gtest/gtest.h>

#include "gw/providers/openai.hpp"

namespace gw::providers {
namespace {

std::string padded(std::string s) {
  s.reserve(s.size() + 64);
  return s;
}

std::optional<error> inspect(operation op, const std::string& body, inspected_request& out) {
  auto b = padded(body);
  return inspect_request(op, b, out);
}

TEST(InspectRequest, ChatFindsModelStreamAndUsageFlag) {
  std::string body = padded(
      R"({"model" : "gpt-4o"  , "messages":[{"role":"user","content":"hello"}],"stream":true,)"
      R"("stream_options":{"include_usage":true},"x_custom":{"keep":[1,2,3]}})");
  inspected_request r;
  auto e = inspect_request(operation::chat, body, r);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(r.model, "gpt-4o");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(body.substr(r.model_token_begin, r.model_token_end - r.model_token_begin), "\"gpt-4o\"");
  EXPECT_EQ(r.text_bytes, 5u);
}

TEST(InspectRequest, ModelWithEscapesKeepsRawSpan) {
  std::string body = padded(R"({"messages":[{"role":"user","content":"x"}],"model":"a\/b\u00e9"})");
  inspected_request r;
  ASSERT_FALSE(inspect_request(operation::chat, body, r));
  EXPECT_EQ(r.model, "a/b\xc3\xa9");
  EXPECT_EQ(body.substr(r.model_token_begin, r.model_token_end - r.model_token_begin), R"("a\/b\u00e9")");
}

TEST(InspectRequest, ContentPartsCountText) {
  inspected_request r;
  ASSERT_FALSE(inspect(operation::chat,
                       R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcd"}]}]})", r));
  EXPECT_GE(r.text_bytes, 4u);
}

struct bad_case {
  operation op;
  const char* body;
  errc code;
  const char* param;
};

class InspectBad : public ::testing::TestWithParam<bad_case> {};

TEST_P(InspectBad, Rejects) {
  const auto& c = GetParam();
  inspected_request r;
  auto e = inspect(c.op, c.body, r);
  ASSERT_TRUE(e) << c.body;
  EXPECT_EQ(e->code, c.code) << c.body << " -> " << e->message;
  EXPECT_EQ(e->param, c.param) << c.body;
  EXPECT_EQ(http_status(e->code), 400);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InspectBad,
    ::testing::Values(
        bad_case{operation::chat, "", errc::invalid_json, ""},
        bad_case{operation::chat, "{", errc::invalid_json, ""},
        bad_case{operation::chat, "not json", errc::invalid_json, ""},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}]} trailing)", errc::invalid_json, ""},
        bad_case{operation::chat, R"({"model":"m","messages":[1,]})", errc::invalid_json, ""},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"t":tru})", errc::invalid_json, ""},
        bad_case{operation::chat, R"([1,2])", errc::invalid_request, ""},
        bad_case{operation::chat, R"({"messages":[{"role":"user","content":"x"}]})", errc::missing_parameter, "model"},
        bad_case{operation::chat, R"({"model":"m"})", errc::missing_parameter, "messages"},
        bad_case{operation::chat, R"({"model":7,"messages":[{"role":"user","content":"x"}]})", errc::invalid_type, "model"},
        bad_case{operation::chat, R"({"model":"","messages":[{"role":"user","content":"x"}]})", errc::invalid_request, "model"},
        bad_case{operation::chat, R"({"model":"m","messages":"hi"})", errc::invalid_type, "messages"},
        bad_case{operation::chat, R"({"model":"m","messages":[]})", errc::invalid_request, "messages"},
        bad_case{operation::chat, R"({"model":"m","messages":["hi"]})", errc::invalid_type, "messages[0]"},
        bad_case{operation::chat, R"({"model":"m","messages":[{"content":"x"}]})", errc::missing_parameter, "messages[0].role"},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":1}]})", errc::invalid_type, "messages[0].role"},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", errc::invalid_type, "stream"},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", errc::invalid_type, "temperature"},
        bad_case{operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})", errc::invalid_type, "stream_options.include_usage"},
        bad_case{operation::completion, R"({"model":"m"})", errc::missing_parameter, "prompt"},
        bad_case{operation::completion, R"({"model":"m","prompt":{}})", errc::invalid_type, "prompt"},
        bad_case{operation::embedding, R"({"model":"m"})", errc::missing_parameter, "input"},
        bad_case{operation::embedding, R"({"model":"m","input":[]})", errc::invalid_request, "input"},
        bad_case{operation::embedding, R"({"model":"m","input":[true]})", errc::invalid_type, "input"},
        bad_case{operation::embedding, R"({"model":"m","input":"x","stream":true})", errc::invalid_request, "stream"}),
    [](const ::testing::TestParamInfo<bad_case>& info) { return "case" + std::to_string(info.index); });

TEST(InspectRequest, AcceptsNullOptionalsAndTokenInputs) {
  inspected_request r;
  EXPECT_FALSE(inspect(operation::chat,
                       R"({"model":"m","messages":[{"role":"user","content":null,"tool_calls":[]}],"stream":null,"temperature":null})", r));
  EXPECT_FALSE(inspect(operation::embedding, R"({"model":"m","input":[[1,2,3],[4]]})", r));
  EXPECT_FALSE(inspect(operation::completion, R"({"model":"m","prompt":["a","b"]})", r));
}

TEST(Inspect, StreamOptionsPresenceIncludesNull) {
  inspected_request r;
  ASSERT_FALSE(inspect(operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true})", r));
  EXPECT_FALSE(r.has_stream_options);
  ASSERT_FALSE(inspect(operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":null})", r));
  EXPECT_TRUE(r.has_stream_options);
  EXPECT_FALSE(r.include_usage);
  ASSERT_FALSE(inspect(operation::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{}})", r));
  EXPECT_TRUE(r.has_stream_options);
}

TEST(ReadUsage, EmptyChoices) {
  EXPECT_TRUE(has_empty_choices(R"({"id":"c","choices":[],"usage":{"prompt_tokens":1}})"));
  EXPECT_TRUE(has_empty_choices(R"({"choices" :  [ ] })"));
  EXPECT_FALSE(has_empty_choices(R"({"choices":[{"index":0}],"usage":{"prompt_tokens":1}})"));
  EXPECT_FALSE(has_empty_choices(R"({"usage":{"prompt_tokens":1}})"));
  EXPECT_FALSE(has_empty_choices(R"({"choices":)"));
  EXPECT_FALSE(has_empty_choices(R"({"x":"\"choices\"", "choices":[1]})"));
}

TEST(ReadUsage, CachedTokens) {
  usage u;
  ASSERT_TRUE(read_usage(R"({"usage":{"prompt_tokens":2000,"completion_tokens":5,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":1536},"completion_tokens_details":{"reasoning_tokens":3}}})", u));
  EXPECT_EQ(u.prompt_tokens, 2000);
  EXPECT_EQ(u.cached_tokens, 1536);
  EXPECT_EQ(u.cache_creation_tokens, 0);
  // Anthropic's fields as LiteLLM passes them on.
  usage a;
  ASSERT_TRUE(read_usage(R"({"usage":{"prompt_tokens":300,"completion_tokens":1,"cache_creation_input_tokens":100,"cache_read_input_tokens":150}})", a));
  EXPECT_EQ(a.cached_tokens, 150);
  EXPECT_EQ(a.cache_creation_tokens, 100);
  // Wrong types are ignored, not fatal.
  usage w;
  ASSERT_TRUE(read_usage(R"({"usage":{"prompt_tokens":3,"prompt_tokens_details":null,"cache_read_input_tokens":"x"}})", w));
  EXPECT_EQ(w.prompt_tokens, 3);
  EXPECT_EQ(w.cached_tokens, 0);
}

TEST(ReadUsage, FromResponseAndChunks) {
  usage u;
  std::string model;
  ASSERT_TRUE(read_usage(R"({"id":"x","model":"gpt-4o-2024","usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0}}})", u, &model));
  EXPECT_EQ(u.prompt_tokens, 12);
  EXPECT_EQ(u.completion_tokens, 5);
  EXPECT_EQ(u.total_tokens, 17);
  EXPECT_EQ(model, "gpt-4o-2024");
  usage none;
  ASSERT_TRUE(read_usage(R"({"choices":[],"usage":null})", none));
  EXPECT_FALSE(none.known());
  EXPECT_FALSE(read_usage("[DONE]", none));
  usage emb;
  ASSERT_TRUE(read_usage(R"({"object":"list","usage":{"prompt_tokens":8,"total_tokens":8}})", emb));
  EXPECT_EQ(emb.prompt_tokens, 8);
  EXPECT_EQ(emb.completion_tokens, -1);
}

TEST(IsOpenAIError, Detects) {
  EXPECT_TRUE(is_openai_error(R"({"error":{"message":"x"}})"));
  EXPECT_FALSE(is_openai_error(R"({"id":"x"})"));
  EXPECT_FALSE(is_openai_error("<html>502</html>"));
}

}  // namespace
}  // namespace gw::providers

namespace gw::providers {
namespace {
TEST(MayCarryUsage, OnlyObjects) {
  EXPECT_TRUE(may_carry_usage(R"(data: {"choices":[],"usage":{"prompt_tokens":1}})"));
  EXPECT_TRUE(may_carry_usage(R"(data: {"usage" :  {"prompt_tokens":1}})"));
  EXPECT_FALSE(may_carry_usage(R"(data: {"choices":[{"delta":{"content":"x"}}],"usage":null})"));
  EXPECT_FALSE(may_carry_usage(R"(data: {"choices":[{"delta":{"content":"the \"usage\" word"}}]})"));
  EXPECT_TRUE(may_carry_usage(R"(data: {"usage":null,"x":{"usage":{"a":1}}})")) << "a nested one is parsed too";
}
}  // namespace
}  // namespace gw::providers

namespace gw::providers {
namespace {

TEST(WithModel, ReplacesAddsAndKeepsTheRest) {
  EXPECT_EQ(with_model(R"({"model":"x","messages":[]})", "dep1"), R"({"model":"dep1","messages":[]})");
  EXPECT_EQ(with_model(R"({"messages":[],"model" : "x" })", "a\"b"), R"({"messages":[],"model" : "a\"b" })");
  EXPECT_EQ(with_model(R"({"messages":[{"model":"inner"}]})", "d"), R"({"model":"d","messages":[{"model":"inner"}]})");
  EXPECT_EQ(with_model(R"({ })", "d"), R"({"model":"d" })");
  EXPECT_EQ(with_model("not json", "d"), "not json");
  EXPECT_EQ(with_model("[1]", "d"), "[1]");
}

}  // namespace
}  // namespace gw::providers

namespace gw::providers {
namespace {

TEST(NormalizeErrorBody, AzureNullTypeGetsOneAndKeepsInnerError) {
  std::string azure =
      R"({"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,)"
      R"("innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true}}}}})";
  auto out = normalize_error_body(azure, 400);
  EXPECT_EQ(out, R"({"error":{"message":"filtered","type":"invalid_request_error","param":"prompt","code":"content_filter",)"
                 R"("status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true}}}}})");
  std::string complete = R"({"error":{"message":"m","type":"t","param":null,"code":null}})";
  EXPECT_EQ(normalize_error_body(complete, 400), complete);
  EXPECT_EQ(normalize_error_body(R"({"error":{"code":"429"}})", 429),
            R"j({"error":{"message":"upstream error (HTTP 429)","type":"rate_limit_error","param":null,"code":"429"}})j");
  EXPECT_EQ(normalize_error_body("<html>", 502), "<html>");
  EXPECT_EQ(normalize_error_body(R"({"ok":true})", 500), R"({"ok":true})");
}

}  // namespace
}  // namespace gw::providers
