// Anthropic as a provider: OpenAI request -> Messages request, Messages response and
// stream -> OpenAI, Anthropic errors -> provider_error. Payloads are shaped after
// Anthropic's documentation and recorded responses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gw/providers/anthropic.hpp"
#include "test_helpers.hpp"

namespace gw::providers {
namespace {

using namespace gw::test;

translate_context ctx(bool stream = false, bool include_usage = false) {
  translate_context c = make_context("claude-sonnet-4-5", "my-claude", "chatcmpl-abc", stream, include_usage);
  c.default_max_tokens = 1024;
  return c;
}

// ---------------------------------------------------------------------------------
// Requests

TEST(AnthropicRequest, SystemAndDeveloperBecomeSystemBlocksAndDefaultsApply) {
  auto r = to_anthropic(ctx(), R"json({"model":"my-claude","messages":[
    {"role":"system","content":"You are terse."},
    {"role":"developer","content":[{"type":"text","text":"Answer in French."}]},
    {"role":"user","content":"Hello"}]})json");
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->path, "/v1/messages");
  ASSERT_EQ(r.request->headers.size(), 1u);
  EXPECT_EQ(r.request->headers[0].first, "anthropic-version");
  EXPECT_EQ(r.request->headers[0].second, "2023-06-01");
  EXPECT_EQ(r.request->body,
            R"json({"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Answer in French."}],"messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]})json");
}

TEST(AnthropicRequest, OneSystemMessageIsAString) {
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":"Hi"},
    {"role":"system","content":"Late \"system\" text"}],"max_tokens":10})json"));
  json_doc d(body);
  EXPECT_EQ(d.str("/system"), "Late \"system\" text");
  EXPECT_EQ(d.num("/max_tokens"), 10);
  EXPECT_EQ(d.raw("/messages"), R"json([{"role":"user","content":[{"type":"text","text":"Hi"}]}])json");
}

TEST(AnthropicRequest, CacheControlOnSystemPartMakesBlocksAndIsKept) {
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[
    {"role":"system","content":[{"type":"text","text":"Long context","cache_control":{"type":"ephemeral"}}]},
    {"role":"user","content":[{"type":"text","text":"Q","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]})json"));
  json_doc d(body);
  EXPECT_EQ(d.raw("/system"), R"json([{"type":"text","text":"Long context","cache_control":{"type":"ephemeral"}}])json");
  EXPECT_EQ(d.raw("/messages/0/content/0/cache_control"), R"json({"type":"ephemeral","ttl":"1h"})json");
}

TEST(AnthropicRequest, ImagesFromDataAndHttpUrls) {
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":[
    {"type":"text","text":"What is in these?"},
    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},
    {"type":"image_url","image_url":"http://example.com/dog.webp"}]}]})json"));
  json_doc d(body);
  EXPECT_EQ(d.raw("/messages/0/content"),
            R"json([{"type":"text","text":"What is in these?"},)json"
            R"json({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},)json"
            R"json({"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},)json"
            R"json({"type":"image","source":{"type":"url","url":"http://example.com/dog.webp"}}])json");
}

TEST(AnthropicRequest, BadImageUrlsAreRefused) {
  for (const char* url : {"data:image/png,notbase64", "data:;base64,AAAA", "data:image/png;base64", "ftp://x/y.png", ""}) {
    std::string body = R"json({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":")json" +
                       std::string(url) + R"json("}}]}]})json";
    auto e = error_of(to_anthropic(ctx(), body));
    EXPECT_EQ(e.status, 400) << url;
    EXPECT_EQ(e.type, "invalid_request_error") << url;
    EXPECT_NE(e.message.find("messages[0].content[0]"), std::string::npos) << e.message;
  }
}

TEST(AnthropicRequest, PdfFileBecomesDocument) {
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":[
    {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}}]}]})json"));
  json_doc d(body);
  EXPECT_EQ(d.raw("/messages/0/content/0"),
            R"json({"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}})json");
  auto e = error_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":[
    {"type":"file","file":{"file_id":"file-123"}}]}]})json"));
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("file_data"), std::string::npos);
}

TEST(AnthropicRequest, ToolConversationMapsCallsResultsAndParameters) {
  auto body = body_of(to_anthropic(ctx(), R"json({"model":"x","messages":[
    {"role":"user","content":"Weather in Paris and Rome?"},
    {"role":"assistant","content":"Checking.","tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
      {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"14C"},
    {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"18C"}]},
    {"role":"user","content":"Thanks, and tomorrow?"}],
    "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
    "tool_choice":"required","parallel_tool_calls":false,"max_completion_tokens":300,"temperature":0.2,
    "top_p":0.9,"top_k":40,"stop":"END","user":"u-42","stream":true,"stream_options":{"include_usage":true},
    "presence_penalty":0.5,"seed":7})json"));
  EXPECT_EQ(body,
            R"json({"model":"claude-sonnet-4-5","max_tokens":300,"messages":[)json"
            R"json({"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},)json"
            R"json({"role":"assistant","content":[{"type":"text","text":"Checking."},)json"
            R"json({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},)json"
            R"json({"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},)json"
            R"json({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"14C"},)json"
            R"json({"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"18C"}]},)json"
            R"json({"type":"text","text":"Thanks, and tomorrow?"}]}],)json"
            R"json("stop_sequences":["END"],"temperature":0.2,"top_p":0.9,"top_k":40,"metadata":{"user_id":"u-42"},)json"
            R"json("tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object",)json"
            R"json("properties":{"city":{"type":"string"}},"required":["city"]}}],)json"
            R"json("tool_choice":{"type":"any","disable_parallel_tool_use":true},"stream":true})json");
}

TEST(AnthropicRequest, ToolResultsGoFirstInTheirUserTurn) {
  // A user message before the tool message: merged into one user turn, results first.
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[
    {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}}],"content":null},
    {"role":"user","content":"note"},
    {"role":"tool","tool_call_id":"c1","content":""}]})json"));
  json_doc d(body);
  EXPECT_EQ(d.raw("/messages/0/content/0/input"), "{}");  // empty arguments: an empty input
  EXPECT_EQ(d.raw("/messages/1"),
            R"json({"role":"user","content":[{"type":"tool_result","tool_use_id":"c1"},{"type":"text","text":"note"}]})json");
}

TEST(AnthropicRequest, ConsecutiveSameRoleTurnsMergeAndEmptyOnesVanish) {
  auto body = body_of(to_anthropic(ctx(), R"json({"messages":[
    {"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]},
    {"role":"assistant","content":""},{"role":"user","content":"c"},
    {"role":"assistant","content":"d"},{"role":"assistant","content":[{"type":"refusal","refusal":"e"}]}]})json"));
  json_doc d(body);
  EXPECT_EQ(d.raw("/messages"),
            R"json([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"c"}]},)json"
            R"json({"role":"assistant","content":[{"type":"text","text":"d"},{"type":"text","text":"e"}]}])json");
}

TEST(AnthropicRequest, ToolChoiceForms) {
  const std::string tools =
      R"json("messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}])json";
  struct tc {
    std::string extra, expected;
  } cases[] = {
      {R"json("tool_choice":"auto")json", R"json({"type":"auto"})json"},
      {R"json("tool_choice":"required")json", R"json({"type":"any"})json"},
      {R"json("tool_choice":"none")json", R"json({"type":"none"})json"},
      {R"json("tool_choice":{"type":"function","function":{"name":"f"}})json", R"json({"type":"tool","name":"f"})json"},
      {R"json("tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false)json",
       R"json({"type":"tool","name":"f","disable_parallel_tool_use":true})json"},
      {R"json("parallel_tool_calls":false)json", R"json({"type":"auto","disable_parallel_tool_use":true})json"},
      {R"json("tool_choice":"none","parallel_tool_calls":false)json", R"json({"type":"none"})json"},
      {R"json("parallel_tool_calls":true)json", "<missing /tool_choice>"},
  };
  for (auto& c : cases) {
    auto body = body_of(to_anthropic(ctx(), "{" + tools + "," + c.extra + "}"));
    json_doc d(body);
    EXPECT_EQ(d.raw("/tool_choice"), c.expected) << c.extra;
    // A tool without parameters still gets the schema Anthropic requires.
    EXPECT_EQ(d.raw("/tools/0"), R"json({"name":"f","input_schema":{"type":"object","properties":{}}})json");
  }
  // tool_choice without tools: dropped (Anthropic would refuse it).
  json_doc d(body_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})json")));
  EXPECT_FALSE(d.has("/tool_choice"));
  EXPECT_FALSE(d.has("/tools"));
}

TEST(AnthropicRequest, ParametersMap) {
  json_doc d(body_of(to_anthropic(ctx(), R"json({"messages":[{"role":"user","content":"x"}],
    "max_tokens":50,"max_completion_tokens":70,"temperature":1,"stop":["a","","b"],"safety_identifier":"s1",
    "stream":false,"n":1,"response_format":{"type":"text"}})json")));
  EXPECT_EQ(d.num("/max_tokens"), 70);  // max_completion_tokens wins
  EXPECT_EQ(d.raw("/temperature"), "1");
  EXPECT_EQ(d.raw("/stop_sequences"), R"json(["a","b"])json");
  EXPECT_EQ(d.str("/metadata/user_id"), "s1");
  EXPECT_FALSE(d.has("/stream"));
  EXPECT_EQ(d.str("/model"), "claude-sonnet-4-5");
  // stream from the context when the body says nothing.
  json_doc s(body_of(to_anthropic(ctx(true), R"json({"messages":[{"role":"user","content":"x"}]})json")));
  EXPECT_EQ(s.raw("/stream"), "true");
}

TEST(AnthropicRequest, InvalidRequestsAre400) {
  struct bad {
    const char* body;
    const char* says;
  } cases[] = {
      {R"json({"messages":[{"role":"user","content":"x"}])json", "parse"},
      {R"json([1,2])json", "JSON object"},
      {R"json({"model":"m"})json", "'messages'"},
      {R"json({"messages":{}})json", "'messages'"},
      {R"json({"messages":[]})json", "at least one"},
      {R"json({"messages":[{"role":"system","content":"only system"}]})json", "at least one"},
      {R"json({"messages":[{"content":"x"}]})json", "messages[0].role"},
      {R"json({"messages":[{"role":"wizard","content":"x"}]})json", "wizard"},
      {R"json({"messages":[{"role":"function","name":"f","content":"x"}]})json", "function"},
      {R"json({"messages":[{"role":"user","content":42}]})json", "messages[0].content"},
      {R"json({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})json", "input_audio"},
      {R"json({"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]})json", "image_url"},
      {R"json({"messages":[{"role":"user","content":"x"}],"n":2})json", "'n'"},
      {R"json({"messages":[{"role":"user","content":"x"}],"max_tokens":-1})json", "max_tokens"},
      {R"json({"messages":[{"role":"user","content":"x"}],"max_tokens":"9"})json", "max_tokens"},
      {R"json({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})json", "temperature"},
      {R"json({"messages":[{"role":"user","content":"x"}],"stop":[1]})json", "stop"},
      {R"json({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})json", "json_schema"},
      {R"json({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"g"}}]})json", "custom"},
      {R"json({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":[]}}]})json", "parameters"},
      {R"json({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"})json", "sometimes"},
      {R"json({"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{not json"}}]}]})json", "arguments"},
      {R"json({"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1,2]"}}]}]})json", "JSON object"},
      {R"json({"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]})json", ".id"},
      {R"json({"messages":[{"role":"tool","content":"r"}]})json", "tool_call_id"},
  };
  for (auto& c : cases) {
    auto e = error_of(to_anthropic(ctx(), c.body));
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.body << " -> " << e.message;
    // The error body is OpenAI's.
    json_doc d(e.json());
    EXPECT_EQ(d.str("/error/type"), "invalid_request_error");
  }
}

TEST(AnthropicRequest, NeverCrashesOnTruncatedOrMangledBodies) {
  const std::string body = R"json({"messages":[{"role":"user","content":[{"type":"text","text":"hé"},
    {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","tool_calls":[
    {"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2,{\"b\":null}]}"}}]},
    {"role":"tool","tool_call_id":"c","content":"ok"}],"tools":[{"type":"function","function":{"name":"f"}}]})json";
  ASSERT_TRUE(to_anthropic(ctx(), body).request);
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto r = to_anthropic(ctx(), body.substr(0, n));
    EXPECT_TRUE(r.error && !r.request && r.error->status == 400) << n;
  }
  // Every byte replaced by a quote, a brace or a NUL: an answer either way, never a crash.
  for (std::size_t n = 0; n < body.size(); ++n) {
    for (char c : {'"', '}', '\0'}) {
      std::string m = body;
      m[n] = c;
      auto r = to_anthropic(ctx(), m);
      EXPECT_NE(r.request.has_value(), r.error.has_value());
      if (r.request) {
        EXPECT_TRUE(json_doc(r.request->body).ok()) << m;
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Responses

TEST(AnthropicResponse, TextAndToolUse) {
  auto r = from_anthropic(ctx(), 200, R"json({"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",
    "model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Let me check."},
    {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"city":"Paris", "units":"c"}}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":89}})json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"json({"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"my-claude",)json"
            R"json("choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[)json"
            R"json({"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather",)json"
            R"json("arguments":"{\"city\":\"Paris\",\"units\":\"c\"}"}}],"refusal":null},"logprobs":null,)json"
            R"json("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,)json"
            R"json("prompt_tokens_details":{"cached_tokens":0},"cache_creation_input_tokens":0,"cache_read_input_tokens":0}})json");
  EXPECT_EQ(r.tokens.prompt_tokens, 472);
  EXPECT_EQ(r.tokens.completion_tokens, 89);
  EXPECT_EQ(r.tokens.total_tokens, 561);
}

TEST(AnthropicResponse, ToolOnlyHasNullContentAndTextsConcatenate) {
  auto r = from_anthropic(ctx(), 200, R"json({"type":"message","content":[
    {"type":"tool_use","id":"t1","name":"a","input":{}},{"type":"tool_use","id":"t2","name":"b","input":{"x":[1,2.5]}}],
    "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}})json");
  json_doc d(r.body);
  EXPECT_TRUE(d.is_null("/choices/0/message/content"));
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/1/function/arguments"), R"json({"x":[1,2.5]})json");
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/function/arguments"), "{}");

  auto t = from_anthropic(ctx(), 200, R"json({"type":"message","content":[{"type":"thinking","thinking":"hmm","signature":"s"},
    {"type":"text","text":"Hello "},{"type":"redacted_thinking","data":"x"},{"type":"text","text":"world"}],
    "stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}})json");
  json_doc e(t.body);
  EXPECT_EQ(e.str("/choices/0/message/content"), "Hello world");
  EXPECT_EQ(e.str("/choices/0/message/reasoning_content"), "hmm");
  EXPECT_FALSE(e.has("/choices/0/message/tool_calls"));
}

TEST(AnthropicResponse, CacheUsageAccounting) {
  auto r = from_anthropic(ctx(), 200, R"json({"type":"message","content":[{"type":"text","text":"ok"}],
    "stop_reason":"end_turn","usage":{"input_tokens":100,"cache_creation_input_tokens":20,
    "cache_read_input_tokens":300,"output_tokens":7}})json");
  EXPECT_EQ(r.tokens.prompt_tokens, 420);
  EXPECT_EQ(r.tokens.completion_tokens, 7);
  EXPECT_EQ(r.tokens.total_tokens, 427);
  EXPECT_EQ(r.tokens.cached_tokens, 300);
  EXPECT_EQ(r.tokens.cache_creation_tokens, 20);
  json_doc d(r.body);
  EXPECT_EQ(d.num("/usage/prompt_tokens"), 420);
  EXPECT_EQ(d.num("/usage/total_tokens"), 427);
  EXPECT_EQ(d.num("/usage/prompt_tokens_details/cached_tokens"), 300);
  EXPECT_EQ(d.num("/usage/cache_creation_input_tokens"), 20);
  // The gateway's generic reader agrees.
  usage u;
  ASSERT_TRUE(read_usage(r.body, u));
  EXPECT_EQ(u.prompt_tokens, 420);
  EXPECT_EQ(u.cached_tokens, 300);
  EXPECT_EQ(u.cache_creation_tokens, 20);
}

TEST(AnthropicResponse, StopReasons) {
  std::pair<const char*, const char*> cases[] = {
      {"end_turn", "stop"},         {"stop_sequence", "stop"},   {"max_tokens", "length"},
      {"tool_use", "tool_calls"},   {"refusal", "content_filter"}, {"pause_turn", "stop"},
      {"model_context_window_exceeded", "length"}, {"something_new", "stop"}};
  for (auto [in, out] : cases) {
    EXPECT_EQ(finish_reason_from_anthropic(in), out);
    auto r = from_anthropic(ctx(), 200, std::string(R"json({"type":"message","content":[],"stop_reason":")json") + in +
                                            R"json(","usage":{"input_tokens":1,"output_tokens":0}})json");
    EXPECT_EQ(json_doc(r.body).str("/choices/0/finish_reason"), out) << in;
  }
  auto r = from_anthropic(ctx(), 200, R"json({"type":"message","content":[],"stop_reason":null})json");
  EXPECT_EQ(json_doc(r.body).str("/choices/0/finish_reason"), "stop");
  EXPECT_EQ(json_doc(r.body).str("/choices/0/message/content"), "");
  EXPECT_FALSE(r.tokens.known());
}

TEST(AnthropicResponse, ErrorMapping) {
  struct ec {
    int status;
    const char* body;
    int want_status;
    const char* want_type;
    const char* want_code;
    const char* want_message;
  } cases[] = {
      {400, R"json({"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"},"request_id":"req_1"})json",
       400, "invalid_request_error", "", "Anthropic invalid_request_error: messages: roles must alternate"},
      {400, R"json({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}})json",
       400, "invalid_request_error", "context_length_exceeded", "Anthropic invalid_request_error: prompt is too long: 208310 tokens > 200000 maximum"},
      {400, R"json({"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 197626 + 8192 > 200000"}})json",
       400, "invalid_request_error", "context_length_exceeded", nullptr},
      {401, R"json({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})json",
       401, "authentication_error", "", "Anthropic authentication_error: invalid x-api-key"},
      {403, R"json({"type":"error","error":{"type":"permission_error","message":"no access"}})json",
       403, "permission_error", "", nullptr},
      {404, R"json({"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}})json",
       404, "not_found_error", "model_not_found", nullptr},
      {413, R"json({"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}})json",
       413, "invalid_request_error", "request_too_large", nullptr},
      {429, R"json({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}})json",
       429, "rate_limit_error", "rate_limit_exceeded", nullptr},
      {500, R"json({"type":"error","error":{"type":"api_error","message":"Internal server error"}})json",
       500, "api_error", "", "Anthropic api_error: Internal server error"},
      {529, R"json({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})json",
       503, "api_error", "overloaded", "Anthropic overloaded_error: Overloaded"},
      {502, "<html><body>Bad gateway</body></html>\n", 502, "api_error", "", "Anthropic api_error: <html><body>Bad gateway</body></html>"},
      {503, "", 503, "api_error", "", "Anthropic api_error: HTTP 503 with an empty body"},
      {429, "slow down", 429, "rate_limit_error", "rate_limit_exceeded", "Anthropic rate_limit_error: slow down"},
      {418, R"json({"message":"teapot"})json", 418, "invalid_request_error", "", "Anthropic invalid_request_error: teapot"},
      {302, "moved", 502, "api_error", "", nullptr},
  };
  for (auto& c : cases) {
    auto r = from_anthropic(ctx(), c.status, c.body);
    EXPECT_EQ(r.status, c.want_status) << c.body;
    EXPECT_FALSE(r.tokens.known());
    json_doc d(r.body);
    ASSERT_TRUE(d.ok()) << r.body;
    EXPECT_EQ(d.str("/error/type"), c.want_type) << c.body;
    EXPECT_EQ(d.str("/error/code"), c.want_code) << c.body;
    if (c.want_message) {
      EXPECT_EQ(d.str("/error/message"), c.want_message);
    }
    auto e = anthropic_error(c.status, c.body);
    EXPECT_EQ(e.status, c.want_status);
    EXPECT_EQ(e.code, c.want_code);
  }
}

TEST(AnthropicResponse, UnusableBodiesAre502AndBinaryStaysValidJson) {
  auto r = from_anthropic(ctx(), 200, "not json");
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(json_doc(r.body).str("/error/code"), "upstream_bad_response");
  EXPECT_EQ(from_anthropic(ctx(), 200, R"json({"content":{}})json").status, 502);
  // A 200 that carries an error: an error.
  auto o = from_anthropic(ctx(), 200, R"json({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})json");
  EXPECT_EQ(o.status, 503);
  // Invalid UTF-8 and control bytes in an error body: still a valid JSON answer.
  std::string junk = "\xff\xfe\x80oops\x01\xc3";
  auto j = from_anthropic(ctx(), 500, junk);
  json_doc d(j.body);
  ASSERT_TRUE(d.ok()) << j.body;
  EXPECT_EQ(d.str("/error/message"), "Anthropic api_error: ???oops\x01?");
  // A long body is cut.
  auto l = from_anthropic(ctx(), 500, std::string(5000, 'x'));
  EXPECT_LT(json_doc(l.body).str("/error/message").size(), 600u);
}

// ---------------------------------------------------------------------------------
// Streams

/// An OpenAI SSE stream read back like a client would.
struct openai_stream {
  struct call {
    std::string id, name, args;
  };
  std::string role, content, reasoning, finish;
  std::vector<call> calls;
  std::int64_t prompt = -1, completion = -1, cached = -1;
  bool done = false;
  int chunks = 0;
  std::string problem;  // first protocol violation seen
};

openai_stream read_openai(std::string_view sse) {
  openai_stream s;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    auto end = sse.find("\n\n", pos);
    if (end == std::string_view::npos) {
      s.problem = "unterminated event";
      break;
    }
    std::string_view ev = sse.substr(pos, end - pos);
    pos = end + 2;
    if (ev.substr(0, 6) != "data: ") {
      s.problem = "not a data line: " + std::string(ev);
      break;
    }
    std::string_view data = ev.substr(6);
    if (s.done) {
      s.problem = "event after [DONE]";
      break;
    }
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    ++s.chunks;
    json_doc d(data);
    if (!d.ok() || d.str("/object") != "chat.completion.chunk" || d.str("/id") != "chatcmpl-abc" ||
        d.num("/created") != 1700000000 || d.str("/model") != "my-claude") {
      s.problem = "bad chunk: " + std::string(data);
      break;
    }
    if (d.has("/usage") && !d.is_null("/usage")) {
      if (d.raw("/choices") != "[]") s.problem = "usage on a chunk with choices";
      s.prompt = d.num("/usage/prompt_tokens");
      s.completion = d.num("/usage/completion_tokens");
      s.cached = d.num("/usage/prompt_tokens_details/cached_tokens");
      if (d.num("/usage/total_tokens") != s.prompt + s.completion) s.problem = "bad total";
      continue;
    }
    if (d.has("/choices/0/delta/role")) s.role = d.str("/choices/0/delta/role");
    if (d.has("/choices/0/delta/content")) s.content += d.str("/choices/0/delta/content");
    if (d.has("/choices/0/delta/reasoning_content")) s.reasoning += d.str("/choices/0/delta/reasoning_content");
    for (int i = 0; d.has("/choices/0/delta/tool_calls/" + std::to_string(i)); ++i) {
      std::string p = "/choices/0/delta/tool_calls/" + std::to_string(i);
      auto idx = static_cast<std::size_t>(d.num(p + "/index"));
      if (d.has(p + "/id")) {
        if (idx != s.calls.size()) s.problem = "tool index out of order";
        s.calls.push_back({d.str(p + "/id"), d.str(p + "/function/name"), ""});
      }
      if (idx >= s.calls.size()) {
        s.problem = "arguments for an unknown tool";
        continue;
      }
      if (d.has(p + "/function/arguments")) s.calls[idx].args += d.str(p + "/function/arguments");
    }
    if (!d.is_null("/choices/0/finish_reason")) {
      if (!s.finish.empty()) s.problem = "two finish reasons";
      s.finish = d.str("/choices/0/finish_reason");
    }
  }
  return s;
}

const std::string k_text_stream = anthropic_text_stream("end_turn");

const std::string k_tool_stream =
    "event: message_start\n"
    R"json(data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":2},"content":[],"stop_reason":null}})json"
    "\n\n"
    "event: content_block_start\n"
    R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Need the weather."}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}})json"
    "\n\n"
    "event: content_block_stop\n"
    R"json(data: {"type":"content_block_stop","index":0})json"
    "\n\n"
    "event: content_block_start\n"
    R"json(data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let me check"}})json"
    "\n\n"
    "event: content_block_stop\n"
    R"json(data: {"type":"content_block_stop","index":1})json"
    "\n\n"
    "event: content_block_start\n"
    R"json(data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}})json"
    "\n\n"
    "event: content_block_stop\n"
    R"json(data: {"type":"content_block_stop","index":2})json"
    "\n\n"
    "event: content_block_start\n"
    R"json(data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"tz\":\"PST\"}"}})json"
    "\n\n"
    "event: content_block_stop\n"
    R"json(data: {"type":"content_block_stop","index":3})json"
    "\n\n"
    "event: message_delta\n"
    R"json(data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}})json"
    "\n\n"
    "event: message_stop\n"
    R"json(data: {"type":"message_stop"})json"
    "\n\n";

/// Feeds `in` in pieces of `step` bytes (0: whole), then finishes.
std::string translate_stream(const std::string& in, std::size_t step, bool include_usage,
                             std::optional<provider_error>* err = nullptr, usage* tokens = nullptr) {
  auto t = anthropic_stream_translator(ctx(true, include_usage));
  std::string out;
  std::optional<provider_error> e;
  if (step == 0) step = in.size();
  for (std::size_t i = 0; i < in.size() && !e; i += step) e = t->feed(std::string_view(in).substr(i, step), out);
  if (!e) e = t->finish(out);
  if (err) {
    *err = e;
  } else {
    EXPECT_FALSE(e) << e->message;
  }
  if (tokens) *tokens = t->tokens();
  return out;
}

TEST(AnthropicStream, TextStreamExactChunks) {
  usage u;
  std::string out = translate_stream(k_text_stream, 0, true, nullptr, &u);
  const std::string head =
      R"json(data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"my-claude","choices":[{"index":0,"delta":)json";
  const std::string tail = R"json(}],"usage":null})json" "\n\n";
  EXPECT_EQ(out,
            head + R"json({"role":"assistant","content":""},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({"content":"Hello"},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({"content":" wörld\n!"},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({},"logprobs":null,"finish_reason":"stop")json" + tail +
            R"json(data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"my-claude","choices":[],)json"
            R"json("usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0},)json"
            R"json("cache_creation_input_tokens":0,"cache_read_input_tokens":0}})json" "\n\n"
            "data: [DONE]\n\n");
  EXPECT_EQ(u.prompt_tokens, 25);
  EXPECT_EQ(u.completion_tokens, 15);
}

TEST(AnthropicStream, EverySplitGivesTheSameOutput) {
  for (const std::string* in : {&k_text_stream, &k_tool_stream}) {
    const std::string whole = translate_stream(*in, 0, true);
    EXPECT_EQ(translate_stream(*in, 1, true), whole);  // byte by byte
    EXPECT_EQ(translate_stream(*in, 7, true), whole);
    for (std::size_t cut = 1; cut < in->size(); ++cut) {
      auto t = anthropic_stream_translator(ctx(true, true));
      std::string out;
      ASSERT_FALSE(t->feed(std::string_view(*in).substr(0, cut), out));
      ASSERT_FALSE(t->feed(std::string_view(*in).substr(cut), out));
      ASSERT_FALSE(t->finish(out));
      ASSERT_EQ(out, whole) << "cut at " << cut;
    }
    // CRLF line ends, byte by byte.
    std::string crlf;
    for (char c : *in) {
      if (c == '\n') crlf += '\r';
      crlf += c;
    }
    EXPECT_EQ(translate_stream(crlf, 1, true), whole);
  }
}

TEST(AnthropicStream, ToolCallsThinkingAndCacheUsage) {
  usage u;
  std::string out = translate_stream(k_tool_stream, 1, true, nullptr, &u);
  auto s = read_openai(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.role, "assistant");
  EXPECT_EQ(s.content, "Okay, let me check");
  EXPECT_EQ(s.reasoning, "Need the weather.");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
  EXPECT_EQ(s.calls[0].name, "get_weather");
  EXPECT_EQ(s.calls[0].args, R"json({"location": "San Francisco, CA"})json");
  EXPECT_EQ(s.calls[1].id, "toolu_02");
  EXPECT_EQ(s.calls[1].args, R"json({"tz":"PST"})json");
  EXPECT_EQ(s.finish, "tool_calls");
  EXPECT_EQ(s.prompt, 582);
  EXPECT_EQ(s.completion, 89);
  EXPECT_EQ(s.cached, 100);
  EXPECT_EQ(u.prompt_tokens, 582);
  EXPECT_EQ(u.cache_creation_tokens, 10);
  EXPECT_EQ(u.cached_tokens, 100);
  // Tool headers say the call's index, id, type and name with empty arguments.
  EXPECT_NE(out.find(R"json("delta":{"tool_calls":[{"index":1,"id":"toolu_02","type":"function","function":{"name":"get_time","arguments":""}}]})json"),
            std::string::npos);
  // The empty first input_json_delta makes no chunk.
  EXPECT_EQ(out.find(R"json({"arguments":""}}]})json"), std::string::npos);
}

TEST(AnthropicStream, WithoutIncludeUsageNoUsageAnywhere) {
  std::string out = translate_stream(k_text_stream, 0, false);
  EXPECT_EQ(out.find("usage"), std::string::npos);
  auto s = read_openai(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.content, "Hello wörld\n!");
  EXPECT_EQ(s.finish, "stop");
  EXPECT_EQ(s.prompt, -1);
  EXPECT_TRUE(s.done);
}

TEST(AnthropicStream, ErrorEvents) {
  struct ec {
    const char* type;
    int status;
    const char* code;
  } cases[] = {{"overloaded_error", 503, "overloaded"},
               {"rate_limit_error", 429, "rate_limit_exceeded"},
               {"invalid_request_error", 400, ""},
               {"api_error", 500, ""},
               {"brand_new_error", 500, ""}};
  for (auto& c : cases) {
    std::string in = k_text_stream.substr(0, k_text_stream.find("event: content_block_stop"));
    in += std::string("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"") + c.type +
          "\",\"message\":\"Overloaded\"}}\n\n";
    auto t = anthropic_stream_translator(ctx(true, true));
    std::string out;
    std::optional<provider_error> e;
    for (std::size_t i = 0; i < in.size() && !e; ++i) e = t->feed(in.substr(i, 1), out);
    ASSERT_TRUE(e) << c.type;
    EXPECT_EQ(e->status, c.status) << c.type;
    EXPECT_EQ(e->code, c.code);
    EXPECT_EQ(e->message, std::string("Anthropic ") + c.type + ": Overloaded");
    // The text before the error was relayed; nothing after it.
    EXPECT_NE(out.find(R"json("content":" wörld\n!")json"), std::string::npos);
    EXPECT_EQ(out.find("[DONE]"), std::string::npos);
    std::string more;
    EXPECT_TRUE(t->feed("event: ping\ndata: {}\n\n", more));
    EXPECT_TRUE(t->finish(more));
    EXPECT_EQ(more, "");
  }
}

TEST(AnthropicStream, EndingEarlyIsAnError) {
  for (std::size_t cut : {std::size_t{0}, k_text_stream.find("event: message_delta"), k_text_stream.find("event: message_stop"),
                          k_text_stream.size() - 5}) {
    std::optional<provider_error> e;
    translate_stream(k_text_stream.substr(0, cut), 0, true, &e);
    ASSERT_TRUE(e) << cut;
    EXPECT_EQ(e->status, 502);
    EXPECT_EQ(e->type, "api_error");
  }
  // The last event without its blank line still counts.
  std::optional<provider_error> e;
  std::string out = translate_stream(k_text_stream.substr(0, k_text_stream.size() - 1), 0, false, &e);
  EXPECT_FALSE(e);
  EXPECT_TRUE(read_openai(out).done);
}

TEST(AnthropicStream, OddButValidInput) {
  // No event: lines (type from data), comments, a message_delta without stop_reason,
  // data split over two data: lines, unknown events.
  std::string in =
      ": keep-alive\n\n"
      "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
      "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":0,\"output_tokens\":2}}\n\n"
      "event: something_new\ndata: {\"type\":\"something_new\"}\n\n"
      "data: {\"type\":\"content_block_start\",\"index\":0,\n"
      "data: \"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n"
      "data: {\"type\":\"message_stop\"}\n\n";
  std::string out = translate_stream(in, 1, true);
  auto s = read_openai(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.content, "Hi");
  EXPECT_EQ(s.finish, "stop");
  EXPECT_EQ(s.prompt, 3);  // a message_delta repeating input_tokens as 0 does not erase it
  EXPECT_EQ(s.completion, 2);
}

TEST(AnthropicStream, GarbageIsAnErrorNotACrash) {
  for (std::string in : {std::string("data: {not json\n\n"), std::string("data: [1,2]\n\n"),
                         std::string("event: error\ndata: {\"type\":\"error\"}\n\n")}) {
    auto t = anthropic_stream_translator(ctx(true, true));
    std::string out;
    auto e = t->feed(in, out);
    ASSERT_TRUE(e) << in;
    EXPECT_GE(e->status, 500);
  }
  // Every prefix of a valid stream, finished: an error or a whole answer, never a crash.
  for (std::size_t n = 0; n <= k_tool_stream.size(); n += 3) {
    std::optional<provider_error> e;
    std::string out = translate_stream(k_tool_stream.substr(0, n), 0, true, &e);
    if (!e) {
      EXPECT_EQ(read_openai(out).problem, "");
    }
  }
}

}  // namespace
}  // namespace gw::providers
