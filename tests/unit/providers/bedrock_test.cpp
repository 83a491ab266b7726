#include <gtest/gtest.h>

#include <random>

#include "gw/providers/bedrock.hpp"
#include "gw/providers/eventstream.hpp"
#include "test_helpers.hpp"

namespace gw::providers {
namespace {

using namespace gw::test;

translate_context ctx(bool stream = false) {
  return make_context("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude", "chatcmpl-1", stream);
}

bool has(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// ------------------------------------------------------------------ paths

TEST(BedrockPath, EncodesModelIdAsOneSegment) {
  EXPECT_EQ(bedrock_path("anthropic.claude-3-5-sonnet-20240620-v1:0", "converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  EXPECT_EQ(bedrock_path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3", "converse-stream"),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3/converse-stream");
  EXPECT_EQ(bedrock_path("amazon.titan-embed-text-v2:0", "invoke"), "/model/amazon.titan-embed-text-v2%3A0/invoke");
}

// ------------------------------------------------------------------ request

TEST(ToConverse, FullMapping) {
  auto r = to_converse(ctx(), R"({"model":"claude","messages":[
      {"role":"system","content":"You are terse."},
      {"role":"user","content":"Weather in Paris?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\":14}"}],
    "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
    "tool_choice":"auto","max_tokens":512,"temperature":0.2,"top_p":0.9,"stop":"END","top_k":50,
    "stream":false,"stream_options":null,"user":"u1","n":1,"seed":7})");
  ASSERT_TRUE(r.request) << r.error->message;
  EXPECT_EQ(r.request->path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  ASSERT_EQ(r.request->headers.size(), 1u);
  EXPECT_EQ(r.request->headers[0].first, "accept");
  EXPECT_EQ(r.request->headers[0].second, "application/json");
  EXPECT_EQ(r.request->body,
            R"({"messages":[{"role":"user","content":[{"text":"Weather in Paris?"}]},)"
            R"({"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"get_weather","input":{"city":"Paris"}}}]},)"
            R"({"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"{\"temp_c\":14}"}]}}]}],)"
            R"("system":[{"text":"You are terse."}],)"
            R"("inferenceConfig":{"maxTokens":512,"temperature":0.2,"topP":0.9,"stopSequences":["END"]},)"
            R"("toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","description":"Get weather",)"
            R"("inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}}],)"
            R"("toolChoice":{"auto":{}}},)"
            R"("additionalModelRequestFields":{"top_k":50}})");
}

TEST(ToConverse, StreamPathAndAccept) {
  auto r = to_converse(ctx(true), R"({"messages":[{"role":"user","content":"hi"}],"stream":true})");
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
  EXPECT_EQ(r.request->headers[0].second, "application/vnd.amazon.eventstream");
  EXPECT_EQ(r.request->body, R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})");
}

TEST(ToConverse, MergesToolResultsAndSameRoleTurns) {
  auto body = body_of(to_converse(ctx(), R"({"messages":[
      {"role":"developer","content":[{"type":"text","text":"Rule 1"},{"type":"text","text":"Rule 2"}]},
      {"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]},
      {"role":"assistant","content":"calling","tool_calls":[
        {"id":"t1","type":"function","function":{"name":"f","arguments":""}},
        {"id":"t2","type":"function","function":{"name":"g","arguments":"{\"x\":[1,2.5,true,null]}"}}]},
      {"role":"tool","tool_call_id":"t1","content":"one"},
      {"role":"tool","tool_call_id":"t2","content":[{"type":"text","text":"two"},{"type":"text","text":"lines"}]},
      {"role":"user","content":"thanks"},
      {"role":"system","content":"Late system"},
      {"role":"assistant","content":""},
      {"role":"user","content":"again"}]})"));
  EXPECT_EQ(body,
            R"({"messages":[{"role":"user","content":[{"text":"a"},{"text":"b"}]},)"
            R"({"role":"assistant","content":[{"text":"calling"},)"
            R"({"toolUse":{"toolUseId":"t1","name":"f","input":{}}},)"
            R"({"toolUse":{"toolUseId":"t2","name":"g","input":{"x":[1,2.5,true,null]}}}]},)"
            R"({"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"one"}]}},)"
            R"({"toolResult":{"toolUseId":"t2","content":[{"text":"two\nlines"}]}},{"text":"thanks"},{"text":"again"}]}],)"
            R"("system":[{"text":"Rule 1"},{"text":"Rule 2"},{"text":"Late system"}]})");
}

TEST(ToConverse, InlineImages) {
  auto body = body_of(to_converse(ctx(), R"({"messages":[{"role":"user","content":[
      {"type":"text","text":"What is this?"},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
      {"type":"image_url","image_url":"data:image/JPEG;base64,/9j/\r\n4AAQ"}]}]})"));
  EXPECT_EQ(body,
            R"({"messages":[{"role":"user","content":[{"text":"What is this?"},)"
            R"({"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},)"
            R"({"image":{"format":"jpeg","source":{"bytes":"/9j/4AAQ"}}}]}]})");
}

TEST(ToConverse, FetchedImageUrls) {
  std::string req = R"({"messages":[{"role":"user","content":[
      {"type":"image_url","image_url":{"url":"https://example.com/cat.png"}},
      {"type":"image_url","image_url":"http://example.com/dog.gif"},
      {"type":"image_url","image_url":{"url":"https://example.com/cat.png"}},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
      {"role":"user","content":"no parts"}]})";
  EXPECT_EQ(image_urls(req), (std::vector<std::string>{"https://example.com/cat.png", "http://example.com/dog.gif"}));
  EXPECT_TRUE(image_urls("not json").empty());
  EXPECT_TRUE(image_urls(R"({"messages":[{"role":"user","content":"hi"}]})").empty());
  std::vector<std::pair<std::string, std::string>> fetched{
      {"https://example.com/cat.png", "data:image/png;base64,CAT="}, {"http://example.com/dog.gif", "data:image/gif;base64,DOG="}};
  auto c = ctx();
  c.fetched_images = &fetched;
  auto body = body_of(to_converse(c, req));
  EXPECT_EQ(body,
            R"({"messages":[{"role":"user","content":[)"
            R"({"image":{"format":"png","source":{"bytes":"CAT="}}},{"image":{"format":"gif","source":{"bytes":"DOG="}}},)"
            R"({"image":{"format":"png","source":{"bytes":"CAT="}}},{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},)"
            R"({"text":"no parts"}]}]})");
  // Not fetched (fetching off, or another URL): refused with a 400 naming the setting.
  fetched.pop_back();
  auto e = error_of(to_converse(c, req));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "fetch_image_urls")) << e.message;
}

TEST(ToConverse, ImageErrors) {
  auto img = [](std::string url) {
    return to_converse(ctx(), R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":")" +
                                  url + R"("}}]}]})");
  };
  auto e = error_of(img("https://example.com/cat.png"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_TRUE(has(e.message, "Bedrock needs inline images")) << e.message;
  EXPECT_TRUE(has(e.message, "data:")) << e.message;
  EXPECT_TRUE(has(error_of(img("data:image/tiff;base64,AAAA")).message, "image/tiff"));
  EXPECT_TRUE(has(error_of(img("data:image/png,rawbytes")).message, "base64"));
  EXPECT_TRUE(has(error_of(img("data:image/png;base64,***")).message, "valid base64"));
  EXPECT_TRUE(has(error_of(img("ftp://x")).message, "data: URL"));
  auto audio = to_converse(ctx(), R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})");
  EXPECT_TRUE(has(error_of(audio).message, "input_audio"));
}

TEST(ToConverse, ToolChoiceVariants) {
  std::string base = R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}])";
  auto with = [&](std::string choice) { return body_of(to_converse(ctx(), base + R"(,"tool_choice":)" + choice + "}")); };
  std::string spec = R"({"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}})";
  EXPECT_TRUE(has(with(R"("required")"), R"("toolConfig":{"tools":[)" + spec + R"(],"toolChoice":{"any":{}}})"));
  EXPECT_TRUE(has(with(R"({"type":"function","function":{"name":"f"}})"), R"("toolChoice":{"tool":{"name":"f"}})"));
  EXPECT_FALSE(has(with(R"("none")"), "toolConfig"));
  EXPECT_TRUE(has(body_of(to_converse(ctx(), base + "}")), R"("toolConfig":{"tools":[)" + spec + "]}"));
  EXPECT_EQ(error_of(to_converse(ctx(), base + R"(,"tool_choice":"sometimes"})")).status, 400);
  EXPECT_EQ(error_of(to_converse(ctx(), base + R"(,"tool_choice":{"type":"function"}})")).status, 400);
  auto web = to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]})");
  EXPECT_TRUE(has(error_of(web).message, "function"));
}

TEST(ToConverse, InferenceParameters) {
  auto body = body_of(to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],
      "max_tokens":10,"max_completion_tokens":20,"stop":["A","","B"],"temperature":1,"top_p":null})"));
  EXPECT_TRUE(has(body, R"("inferenceConfig":{"maxTokens":20,"temperature":1,"stopSequences":["A","B"]})")) << body;
  auto only_empty_stop = body_of(to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],"stop":""})"));
  EXPECT_FALSE(has(only_empty_stop, "inferenceConfig")) << only_empty_stop;
}

TEST(ToConverse, RefusesWhatConverseCannotDo) {
  auto e = error_of(to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],"n":2})"));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "'n' must be 1"));
  // json_object / json_schema are emulated with a tool (structured_output_test.cpp); a
  // json_schema without its schema is refused.
  e = error_of(to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})"));
  EXPECT_TRUE(has(e.message, "json_schema"));
  EXPECT_TRUE(to_converse(ctx(), R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})").request);
  e = error_of(to_converse(ctx(), R"({"messages":[{"role":"assistant","tool_calls":[
      {"id":"t","type":"function","function":{"name":"f","arguments":"{not json"}}]}]})"));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "messages[0].tool_calls[0].function.arguments")) << e.message;
  EXPECT_TRUE(has(e.message, "not valid JSON"));
}

TEST(ToConverse, InvalidJsonAndTypes) {
  struct tc {
    const char* body;
    const char* expect;
  } cases[] = {
      {R"({"messages":[)", "parse the JSON"},
      {R"([1,2])", "JSON object"},
      {R"({"model":"x"})", "'messages'"},
      {R"({"messages":{}})", "'messages': expected an array"},
      {R"({"messages":["hi"]})", "'messages[0]': expected an object"},
      {R"({"messages":[{"content":"x"}]})", "'messages[0].role'"},
      {R"({"messages":[{"role":"wizard","content":"x"}]})", "wizard"},
      {R"({"messages":[{"role":"function","content":"x","name":"f"}]})", "'function'"},
      {R"({"messages":[{"role":"user","content":42}]})", "'messages[0].content': expected an array"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "'temperature': expected a number"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "'max_tokens': expected an integer"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})", "at least 1"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "'stop[0]'"},
      {R"({"messages":[{"role":"tool","content":"x"}]})", "tool_call_id"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":[]}}]})",
       "parameters"},
  };
  for (auto& c : cases) {
    auto r = to_converse(ctx(), c.body);
    ASSERT_TRUE(r.error) << c.body;
    EXPECT_EQ(r.error->status, 400) << c.body;
    EXPECT_EQ(r.error->type, "invalid_request_error") << c.body;
    EXPECT_TRUE(has(r.error->message, c.expect)) << c.body << " -> " << r.error->message;
    EXPECT_TRUE(has(r.error->json(), R"("type":"invalid_request_error")"));
  }
}

// ------------------------------------------------------------------ response

TEST(FromConverse, TextAnswer) {
  auto r = from_converse(ctx(), 200,
                         R"({"output":{"message":{"role":"assistant","content":[{"text":"It's 14"},{"text":"°C."}]}},
      "stopReason":"end_turn","usage":{"inputTokens":120,"outputTokens":9,"totalTokens":129},
      "metrics":{"latencyMs":412},"p":"padding"})",
                         "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"claude",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"It's 14°C.","refusal":null},)"
            R"("logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":120,"completion_tokens":9,"total_tokens":129,"prompt_tokens_details":{"cached_tokens":0}}})");
  EXPECT_EQ(r.tokens.prompt_tokens, 120);
  EXPECT_EQ(r.tokens.completion_tokens, 9);
  EXPECT_EQ(r.tokens.total_tokens, 129);
}

TEST(FromConverse, ToolUseAnswerWithCacheUsage) {
  auto r = from_converse(ctx(), 200,
                         R"({"output":{"message":{"role":"assistant","content":[
        {"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city": "Paris", "n": [1, 2]}}},
        {"toolUse":{"toolUseId":"tooluse_2","name":"noop","input":{}}}]}},
      "stopReason":"tool_use",
      "usage":{"inputTokens":100,"outputTokens":20,"totalTokens":180,"cacheReadInputTokens":50,"cacheWriteInputTokens":10}})",
                         "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"claude",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[)"
            R"({"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"n\":[1,2]}"}},)"
            R"({"id":"tooluse_2","type":"function","function":{"name":"noop","arguments":"{}"}}],"refusal":null},)"
            R"("logprobs":null,"finish_reason":"tool_calls"}],)"
            R"("usage":{"prompt_tokens":160,"completion_tokens":20,"total_tokens":180,)"
            R"("prompt_tokens_details":{"cached_tokens":50},"cache_creation_input_tokens":10}})");
  EXPECT_EQ(r.tokens.prompt_tokens, 160);
  EXPECT_EQ(r.tokens.cached_tokens, 50);
  EXPECT_EQ(r.tokens.cache_creation_tokens, 10);
}

TEST(FromConverse, TextAndToolUseKeepsText) {
  auto r = from_converse(ctx(), 200,
                         R"({"output":{"message":{"role":"assistant","content":[{"text":"Let me check."},
        {"toolUse":{"toolUseId":"t","name":"f","input":{}}}]}},"stopReason":"tool_use"})",
                         "");
  EXPECT_TRUE(has(r.body, R"("content":"Let me check.","tool_calls":[)")) << r.body;
  EXPECT_FALSE(r.tokens.known());
}

TEST(FromConverse, FinishReasons) {
  std::pair<const char*, const char*> cases[] = {
      {"end_turn", "stop"},          {"stop_sequence", "stop"},          {"max_tokens", "length"},
      {"tool_use", "tool_calls"},    {"guardrail_intervened", "content_filter"},
      {"content_filtered", "content_filter"}, {"model_context_window_exceeded", "length"},
      {"malformed_model_output", "stop"},     {"something_new", "stop"},
  };
  for (auto [bedrock, openai] : cases) {
    auto r = from_converse(ctx(), 200,
                           std::string(R"({"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":")") +
                               bedrock + "\"}",
                           "");
    EXPECT_TRUE(has(r.body, std::string(R"("finish_reason":")") + openai + "\"")) << bedrock << ": " << r.body;
  }
}

TEST(FromConverse, UnreadableSuccessIs502) {
  for (const char* body : {"not json", "[]", R"({"output":{}})", R"({"stopReason":"end_turn"})"}) {
    auto r = from_converse(ctx(), 200, body, "");
    EXPECT_EQ(r.status, 502) << body;
    EXPECT_TRUE(has(r.body, R"("type":"api_error")")) << r.body;
  }
}

TEST(BedrockErrors, EveryExceptionMapping) {
  struct tc {
    int status;
    const char* header;
    const char* body;
    int want_status;
    const char* want_type;
    const char* want_code;
    const char* want_message;
  } cases[] = {
      {400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
       R"({"message":"Malformed input request"})", 400, "invalid_request_error", "invalid_request",
       "Bedrock ValidationException: Malformed input request"},
      {400, "ValidationException", R"({"message":"Input is too long for requested model."})", 400,
       "invalid_request_error", "context_length_exceeded", "Bedrock ValidationException: Input is too long"},
      {400, "ValidationException",
       R"({"message":"The model returned the following errors: prompt is too long: 250000 tokens > 200000 maximum"})",
       400, "invalid_request_error", "context_length_exceeded", "prompt is too long"},
      {400, "", R"({"__type":"com.amazon.coral.validate#ValidationException","message":"too many tokens, exceeds the context window"})",
       400, "invalid_request_error", "context_length_exceeded", "Bedrock ValidationException: "},
      {403, "AccessDeniedException", R"({"message":"You don't have access to the model"})", 403, "permission_error",
       "access_denied", "Bedrock AccessDeniedException: You don't have access"},
      {404, "ResourceNotFoundException", R"({"Message":"Model not found"})", 404, "not_found_error", "not_found",
       "Bedrock ResourceNotFoundException: Model not found"},
      {429, "ThrottlingException", R"({"message":"Too many requests, please wait before trying again."})", 429,
       "rate_limit_error", "throttling", "Bedrock ThrottlingException: Too many requests"},
      {429, "ServiceQuotaExceededException", R"({"message":"quota"})", 429, "rate_limit_error", "throttling",
       "Bedrock ServiceQuotaExceededException: quota"},
      {400, "ServiceQuotaExceededException", R"({"message":"quota"})", 400, "invalid_request_error",
       "service_quota_exceeded", "Bedrock ServiceQuotaExceededException"},
      {408, "ModelTimeoutException", R"({"message":"timed out"})", 408, "timeout_error", "timeout",
       "Bedrock ModelTimeoutException: timed out"},
      {429, "ModelNotReadyException", R"({"message":"not ready"})", 429, "rate_limit_error", "model_not_ready",
       "Bedrock ModelNotReadyException"},
      {424, "ModelErrorException", R"({"message":"boom","originalStatusCode":500})", 502, "api_error", "model_error",
       "Bedrock ModelErrorException: boom"},
      {500, "InternalServerException", R"({"message":"oops"})", 500, "api_error", "internal_error",
       "Bedrock InternalServerException: oops"},
      {503, "ServiceUnavailableException", R"({"message":"busy"})", 503, "api_error", "service_unavailable",
       "Bedrock ServiceUnavailableException: busy"},
      {403, "UnrecognizedClientException", R"({"message":"The security token included in the request is invalid."})",
       401, "authentication_error", "invalid_api_key", "Bedrock UnrecognizedClientException"},
      {403, "InvalidSignatureException", R"({"message":"Signature expired"})", 401, "authentication_error",
       "invalid_api_key", "Bedrock InvalidSignatureException: Signature expired"},
      {403, "ExpiredTokenException", R"({"message":"expired"})", 401, "authentication_error", "invalid_api_key",
       "Bedrock ExpiredTokenException"},
      // No type anywhere: the status decides.
      {429, "", R"({"message":"slow down"})", 429, "rate_limit_error", "throttling", "Bedrock HTTP 429: slow down"},
      {502, "", "<html>Bad Gateway</html>", 502, "api_error", "internal_error", "Bedrock HTTP 502: <html>Bad Gateway"},
      {418, "", "", 418, "invalid_request_error", "invalid_request", "Bedrock HTTP 418: (no message)"},
  };
  for (auto& c : cases) {
    auto e = bedrock_error(c.status, c.body, c.header);
    EXPECT_EQ(e.status, c.want_status) << c.header << " " << c.body;
    EXPECT_EQ(e.type, c.want_type) << c.header << " " << c.body;
    EXPECT_EQ(e.code, c.want_code) << c.header << " " << c.body;
    EXPECT_TRUE(has(e.message, c.want_message)) << e.message;
    auto r = from_converse(ctx(), c.status, c.body, c.header);
    EXPECT_EQ(r.status, c.want_status);
    EXPECT_EQ(r.body, e.json());
    EXPECT_FALSE(r.tokens.known());
  }
}

// ------------------------------------------------------------------ stream

std::string exception_frame(std::string_view type, std::string_view message) {
  return eventstream::encode_message(
      {{":exception-type", std::string(type)}, {":content-type", "application/json"}, {":message-type", "exception"}},
      std::string(R"({"message":")") + std::string(message) + "\"}");
}

std::string recorded_stream() {
  std::string s;
  s += event("messageStart", R"({"p":"abcdefghij","role":"assistant"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"abc"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"lo \"you\""}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":0})");
  s += event("contentBlockStart",
             R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_A","name":"get_weather"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":1})");
  s += event("contentBlockStart",
             R"({"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_B","name":"noop"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":2})");
  s += event("messageStop", R"({"stopReason":"tool_use"})");
  s += event("metadata",
             R"({"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":47,"cacheReadInputTokens":5},"metrics":{"latencyMs":99}})");
  return s;
}

const std::string k_head = R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"claude")";

std::string expected_chunk(std::string_view delta, std::string_view finish, bool usage_null) {
  return k_head + R"(,"choices":[{"index":0,"delta":)" + std::string(delta) + R"(,"logprobs":null,"finish_reason":)" +
         std::string(finish) + "}]" + (usage_null ? R"(,"usage":null)" : "") + "}\n\n";
}

std::string expected_stream(bool include_usage) {
  std::string s;
  s += expected_chunk(R"({"role":"assistant","content":""})", "null", include_usage);
  s += expected_chunk(R"({"content":"Hel"})", "null", include_usage);
  s += expected_chunk(R"({"content":"lo \"you\""})", "null", include_usage);
  s += expected_chunk(
      R"({"tool_calls":[{"index":0,"id":"tooluse_A","type":"function","function":{"name":"get_weather","arguments":""}}]})",
      "null", include_usage);
  s += expected_chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})", "null", include_usage);
  s += expected_chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})", "null", include_usage);
  s += expected_chunk(
      R"({"tool_calls":[{"index":1,"id":"tooluse_B","type":"function","function":{"name":"noop","arguments":""}}]})",
      "null", include_usage);
  s += expected_chunk(R"({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})", "null", include_usage);
  s += expected_chunk("{}", R"("tool_calls")", include_usage);
  if (include_usage)
    s += k_head +
         R"(,"choices":[],"usage":{"prompt_tokens":35,"completion_tokens":12,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":5}}})"
         "\n\n";
  s += "data: [DONE]\n\n";
  return s;
}

TEST(ConverseStream, TranslatesTextAndToolCalls) {
  for (bool include_usage : {false, true}) {
    auto c = ctx(true);
    c.include_usage = include_usage;
    auto t = converse_stream_translator(c);
    std::string out;
    auto e = t->feed(recorded_stream(), out);
    ASSERT_FALSE(e) << e->message;
    EXPECT_TRUE(t->tokens().known());
    e = t->finish(out);
    ASSERT_FALSE(e) << e->message;
    EXPECT_EQ(out, expected_stream(include_usage));
    EXPECT_EQ(t->tokens().prompt_tokens, 35);
    EXPECT_EQ(t->tokens().completion_tokens, 12);
    EXPECT_EQ(t->tokens().cached_tokens, 5);
  }
}

TEST(ConverseStream, AnySplitGivesTheSameOutput) {
  auto c = ctx(true);
  c.include_usage = true;
  std::string stream = recorded_stream();
  {
    auto t = converse_stream_translator(c);
    std::string out;
    for (char ch : stream) ASSERT_FALSE(t->feed(std::string_view(&ch, 1), out));
    ASSERT_FALSE(t->finish(out));
    EXPECT_EQ(out, expected_stream(true));
  }
  std::mt19937 rng(3);
  for (int round = 0; round < 30; ++round) {
    auto t = converse_stream_translator(c);
    std::string out;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(0, 97)(rng);
      ASSERT_FALSE(t->feed(std::string_view(stream).substr(pos, n), out));
      pos += n;
    }
    ASSERT_FALSE(t->finish(out));
    EXPECT_EQ(out, expected_stream(true));
  }
}

TEST(ConverseStream, FinishReasonAndNoUsageWithoutMetadata) {
  auto t = converse_stream_translator(ctx(true));
  std::string out;
  ASSERT_FALSE(t->feed(event("messageStart", R"({"role":"assistant"})") +
                           event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"x"}})") +
                           event("messageStop", R"({"stopReason":"max_tokens"})"),
                       out));
  ASSERT_FALSE(t->finish(out));
  EXPECT_TRUE(has(out, R"("delta":{},"logprobs":null,"finish_reason":"length"})")) << out;
  EXPECT_FALSE(has(out, R"("usage")"));
  EXPECT_FALSE(t->tokens().known());
  EXPECT_TRUE(out.ends_with("data: [DONE]\n\n"));
}

TEST(ConverseStream, CorruptFrameIsAnErrorNotACrash) {
  std::string stream = recorded_stream();
  std::string bad = stream;
  bad[40] = static_cast<char>(bad[40] ^ 0x20);  // inside the first frame (its headers)
  auto t = converse_stream_translator(ctx(true));
  std::string out;
  auto e = t->feed(bad, out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 502);
  EXPECT_EQ(e->code, "stream_error");
  EXPECT_TRUE(has(e->message, "CRC")) << e->message;
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(t->feed(event("messageStop", "{}"), out));  // stays failed
  EXPECT_TRUE(t->finish(out));

  // A frame whose payload is not JSON.
  auto t2 = converse_stream_translator(ctx(true));
  std::string out2;
  auto e2 = t2->feed(event("messageStart", R"({"role":"assistant"})") + event("contentBlockDelta", "{oops"), out2);
  ASSERT_TRUE(e2);
  EXPECT_TRUE(has(e2->message, "contentBlockDelta")) << e2->message;
  EXPECT_TRUE(has(out2, R"("role":"assistant")"));  // what came before is kept
}

TEST(ConverseStream, ExceptionFrames) {
  struct tc {
    const char* type;
    int status;
    const char* code;
    const char* name;
  } cases[] = {
      {"throttlingException", 429, "throttling", "Bedrock ThrottlingException: slow"},
      {"validationException", 400, "invalid_request", "Bedrock ValidationException: slow"},
      {"modelStreamErrorException", 502, "model_stream_error", "Bedrock ModelStreamErrorException: slow"},
      {"internalServerException", 500, "internal_error", "Bedrock InternalServerException: slow"},
      {"serviceUnavailableException", 503, "service_unavailable", "Bedrock ServiceUnavailableException: slow"},
      {"someNewException", 502, "stream_error", "Bedrock SomeNewException: slow"},
  };
  for (auto& c : cases) {
    auto t = converse_stream_translator(ctx(true));
    std::string out;
    auto e = t->feed(event("messageStart", R"({"role":"assistant"})") + exception_frame(c.type, "slow"), out);
    ASSERT_TRUE(e) << c.type;
    EXPECT_EQ(e->status, c.status) << c.type;
    EXPECT_EQ(e->code, c.code) << c.type;
    EXPECT_EQ(e->message, c.name) << c.type;
  }
  // :message-type error frames carry their code and message in headers.
  auto t = converse_stream_translator(ctx(true));
  std::string out;
  auto e = t->feed(eventstream::encode_message({{":message-type", "error"},
                                                {":error-code", "InternalFailure"},
                                                {":error-message", "it broke"}},
                                               ""),
                   out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 500);
  EXPECT_EQ(e->message, "Bedrock InternalFailure: it broke");
}

TEST(ConverseStream, EndedEarlyIsAnError) {
  std::string stream = recorded_stream();
  auto stop = stream.find("messageStop");
  ASSERT_NE(stop, std::string::npos);
  // Cut before the messageStop frame: every frame before it is whole.
  auto frame_start = stream.rfind(event("contentBlockStop", R"({"contentBlockIndex":2})"), stop);
  ASSERT_NE(frame_start, std::string::npos);
  auto cut = frame_start + event("contentBlockStop", R"({"contentBlockIndex":2})").size();
  auto t = converse_stream_translator(ctx(true));
  std::string out;
  ASSERT_FALSE(t->feed(std::string_view(stream).substr(0, cut), out));
  auto e = t->finish(out);
  ASSERT_TRUE(e);
  EXPECT_TRUE(has(e->message, "stream ended before the message was complete")) << e->message;
  EXPECT_FALSE(has(out, "[DONE]"));

  // Cut inside a frame.
  auto t2 = converse_stream_translator(ctx(true));
  std::string out2;
  ASSERT_FALSE(t2->feed(std::string_view(stream).substr(0, stream.size() - 3), out2));
  auto e2 = t2->finish(out2);
  ASSERT_TRUE(e2);
  EXPECT_TRUE(has(e2->message, "truncated")) << e2->message;
}

// ------------------------------------------------------------------ embeddings

translate_context embed_ctx(std::string model) {
  translate_context c;
  c.op = operation::embedding;
  c.upstream_model = std::move(model);
  c.response_model = "emb";
  return c;
}

TEST(BedrockEmbeddings, TitanRequest) {
  auto c = embed_ctx("amazon.titan-embed-text-v2:0");
  auto r = to_bedrock_embedding(c, R"({"model":"emb","input":"hello \"world\"","dimensions":256,"encoding_format":"float"})");
  ASSERT_TRUE(r.request) << r.error->message;
  EXPECT_EQ(r.request->path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
  EXPECT_EQ(r.request->body, R"({"inputText":"hello \"world\"","dimensions":256})");
  EXPECT_EQ(body_of(to_bedrock_embedding(c, R"({"input":["one"]})")), R"({"inputText":"one"})");
  auto e = error_of(to_bedrock_embedding(c, R"({"input":["one","two"]})"));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "Titan embeds one input per request")) << e.message;
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, R"({"input":[[1,2,3]]})")).message, "token-id"));
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, R"({"input":[]})")).message, "empty"));
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, R"({"input":5})")).message, "'input'"));
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, R"({"nope":1})")).message, "'input'"));
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, "{")).message, "parse"));
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(embed_ctx("meta.llama3"), R"({"input":"x"})")).message, "titan"));
}

TEST(BedrockEmbeddings, CohereRequest) {
  auto c = embed_ctx("us.cohere.embed-english-v3");
  auto r = to_bedrock_embedding(c, R"({"input":["a","b"]})");
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->path, "/model/us.cohere.embed-english-v3/invoke");
  EXPECT_EQ(r.request->body, R"({"texts":["a","b"],"input_type":"search_document"})");
  EXPECT_TRUE(has(error_of(to_bedrock_embedding(c, R"({"input":"a","dimensions":8})")).message, "dimensions"));
}

TEST(BedrockEmbeddings, TitanResponse) {
  auto r = from_bedrock_embedding(embed_ctx("amazon.titan-embed-text-v2:0"), 200,
                                  R"({"embedding":[0.5,-0.25,1e-3],"inputTextTokenCount":7,"embeddingsByType":{}})", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25,0.001]}],)"
            R"("model":"emb","usage":{"prompt_tokens":7,"total_tokens":7}})");
  EXPECT_EQ(r.tokens.prompt_tokens, 7);
}

TEST(BedrockEmbeddings, CohereResponses) {
  auto want = std::string(R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[1,2]},)") +
              R"({"object":"embedding","index":1,"embedding":[3,4]}],"model":"emb","usage":{"prompt_tokens":0,"total_tokens":0}})";
  auto c = embed_ctx("cohere.embed-english-v3");
  auto r = from_bedrock_embedding(c, 200, R"({"id":"x","embeddings":[[1,2],[3,4]],"texts":["a","b"],"response_type":"embeddings_floats"})", "");
  EXPECT_EQ(r.body, want);
  r = from_bedrock_embedding(c, 200, R"({"id":"x","embeddings":{"float":[[1,2],[3,4]]},"response_type":"embeddings_by_type"})", "");
  EXPECT_EQ(r.body, want);
}

TEST(BedrockEmbeddings, ErrorsAndBadBodies) {
  auto c = embed_ctx("amazon.titan-embed-text-v2:0");
  auto r = from_bedrock_embedding(c, 429, R"({"message":"Too many requests"})", "ThrottlingException");
  EXPECT_EQ(r.status, 429);
  EXPECT_TRUE(has(r.body, "Bedrock ThrottlingException: Too many requests"));
  for (const char* body : {"x", R"({"embedding":"no"})", R"({"embeddings":[1]})", R"({"embedding":["a"]})", "{}"}) {
    EXPECT_EQ(from_bedrock_embedding(c, 200, body, "").status, 502) << body;
  }
}

TEST(TitanMultiInput, OneRequestPerInput) {
  EXPECT_TRUE(is_titan_embedding("amazon.titan-embed-text-v2:0"));
  EXPECT_TRUE(is_titan_embedding("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v1"));
  EXPECT_FALSE(is_titan_embedding("cohere.embed-english-v3"));
  auto c = embed_ctx("amazon.titan-embed-text-v2:0");
  titan_inputs in;
  ASSERT_FALSE(read_titan_inputs(R"({"model":"emb","input":["one","two \"2\"","three"],"dimensions":256})", in));
  ASSERT_EQ(in.texts.size(), 3u);
  const char* want[] = {R"({"inputText":"one","dimensions":256})", R"({"inputText":"two \"2\"","dimensions":256})",
                        R"({"inputText":"three","dimensions":256})"};
  for (std::size_t i = 0; i < 3; ++i) {
    auto r = to_titan_embedding(c, in, i);
    ASSERT_TRUE(r.request) << i;
    EXPECT_EQ(r.request->path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    EXPECT_EQ(r.request->body, want[i]);
    EXPECT_EQ(header(*r.request, "accept"), "application/json");
  }
  auto out_of_range = error_of(to_titan_embedding(c, in, 3));
  EXPECT_EQ(out_of_range.status, 400);
  // One input (a string): one call, the body to_bedrock_embedding() sends.
  titan_inputs one;
  ASSERT_FALSE(read_titan_inputs(R"({"input":"hello"})", one));
  EXPECT_EQ(body_of(to_titan_embedding(c, one, 0)), body_of(to_bedrock_embedding(c, R"({"input":"hello"})")));
}

TEST(TitanMultiInput, InputErrorsAndTheLimit) {
  struct tc {
    std::string body;
    const char* says;
  } cases[] = {
      {"{", "parse"},
      {"[1]", "JSON object"},
      {R"({"nope":1})", "'input'"},
      {R"({"input":[]})", "empty"},
      {R"({"input":5})", "'input'"},
      {R"({"input":["a",[1,2]]})", "token-id"},
      {R"({"input":"a","dimensions":0})", "dimensions"},
  };
  for (const auto& c : cases) {
    titan_inputs in;
    auto e = read_titan_inputs(c.body, in);
    ASSERT_TRUE(e) << c.body;
    EXPECT_EQ(e->status, 400) << c.body;
    EXPECT_TRUE(has(e->message, c.says)) << c.body << ": " << e->message;
  }
  auto many = [](std::size_t n) {
    std::string b = R"({"input":[)";
    for (std::size_t i = 0; i < n; ++i) b += i ? R"(,"t")" : R"("t")";
    return b + "]}";
  };
  titan_inputs in;
  EXPECT_FALSE(read_titan_inputs(many(max_embedding_inputs), in));
  EXPECT_EQ(in.texts.size(), 2048u);
  titan_inputs over;
  auto e = read_titan_inputs(many(max_embedding_inputs + 1), over);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_TRUE(has(e->message, "at most 2048")) << e->message;
}

TEST(TitanMultiInput, CombinesAnswersInOrder) {
  auto c = embed_ctx("amazon.titan-embed-text-v2:0");
  titan_embeddings all;
  ASSERT_FALSE(all.add(R"({"embedding":[0.5,-0.25],"inputTextTokenCount":3})"));
  // A body that is not a Titan embedding: a 502, and nothing added.
  for (const char* bad : {"x", R"({"embedding":"no"})", R"({"embedding":[1,"a"]})", "{}"}) {
    auto e = all.add(bad);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->status, 502) << bad;
    EXPECT_EQ(all.size(), 1u) << bad;
  }
  ASSERT_FALSE(all.add(R"({"embedding":[1e-3,2],"inputTextTokenCount":4,"embeddingsByType":{}})"));
  ASSERT_FALSE(all.add(R"({"embedding":[3,4]})"));  // no count: adds no tokens
  EXPECT_EQ(all.size(), 3u);
  auto r = all.finish(c);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(
      r.body,
      R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]},)"
      R"({"object":"embedding","index":1,"embedding":[0.001,2]},{"object":"embedding","index":2,"embedding":[3,4]}],)"
      R"("model":"emb","usage":{"prompt_tokens":7,"total_tokens":7}})");
  EXPECT_EQ(r.tokens.prompt_tokens, 7);
  EXPECT_EQ(r.tokens.total_tokens, 7);
  EXPECT_EQ(r.tokens.completion_tokens, 0);
  EXPECT_EQ(all.size(), 0u);  // finish() leaves it empty
  // One answer combined is what from_bedrock_embedding() gives for it.
  const char* one = R"({"embedding":[0.5,-0.25,1e-3],"inputTextTokenCount":7})";
  titan_embeddings single;
  ASSERT_FALSE(single.add(one));
  EXPECT_EQ(single.finish(c).body, from_bedrock_embedding(c, 200, one, "").body);
}

}  // namespace
}  // namespace gw::providers
