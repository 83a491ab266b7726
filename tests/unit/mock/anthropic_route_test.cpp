// The mock provider's Anthropic dialect (POST /v1/messages), and the gateway's
// Anthropic translation talking to it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gw/providers/anthropic.hpp"
#include "provider_routes.hpp"
#include "test_helpers.hpp"

namespace gw::mock {
namespace {

using namespace gw::test;

/// A request to the route with the headers an Anthropic client sends.
struct call {
  std::string method = "POST", path = "/v1/messages", body;
  std::vector<std::pair<std::string, std::string>> headers{{"anthropic-version", "2023-06-01"},
                                                           {"x-api-key", "sk-ant-test"},
                                                           {"content-type", "application/json"}};
  std::optional<mock_request> fault;
  std::vector<std::string> fault_models;  // what take_fault was asked
  std::string api_key = "sk-ant-test";

  std::optional<route_response> run() {
    route_request r;
    r.method = method;
    r.target = path;
    r.path = path;
    r.headers = &headers;
    r.body = body;
    route_env env;
    env.sequence = 42;
    env.now_unix = 1700000000;
    env.response_tokens = 5;
    env.take_fault = [this](std::string_view model) -> std::optional<mock_request> {
      fault_models.emplace_back(model);
      return fault;
    };
    return anthropic_route(r, env, api_key);
  }
};

const char* k_hello = R"json({"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"Hello there mock"}]})json";

TEST(AnthropicRoute, OnlyItsPath) {
  call c;
  c.body = k_hello;
  c.path = "/v1/chat/completions";
  EXPECT_FALSE(c.run());
  c.path = "/v1/messages/count_tokens";
  EXPECT_FALSE(c.run());
  c.path = "/v1/messages";
  c.method = "GET";
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_TRUE(c.fault_models.empty());
}

TEST(AnthropicRoute, HeadersAreChecked) {
  call c;
  c.body = k_hello;
  c.headers = {{"x-api-key", "sk-ant-test"}};
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  json_doc d(r->body);
  EXPECT_EQ(d.str("/type"), "error");
  EXPECT_EQ(d.str("/error/type"), "invalid_request_error");
  EXPECT_EQ(d.str("/error/message"), "anthropic-version: header is required");

  c.headers = {{"anthropic-version", "2023-06-01"}, {"x-api-key", "wrong"}};
  r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json_doc(r->body).str("/error/type"), "authentication_error");

  c.headers = {{"anthropic-version", "2023-06-01"}};
  EXPECT_EQ(c.run()->status, 401);
  c.headers = {{"anthropic-version", "2023-06-01"}, {"authorization", "Bearer sk-ant-test"}};
  EXPECT_EQ(c.run()->status, 200);
  c.api_key = "";  // any key, even none
  c.headers = {{"anthropic-version", "2023-06-01"}};
  EXPECT_EQ(c.run()->status, 200);
}

TEST(AnthropicRoute, TextAnswer) {
  call c;
  c.body = R"json({"model":"claude-x","max_tokens":100,"system":"Be brief.","messages":[
    {"role":"user","content":[{"type":"text","text":"Hello there"},{"type":"text","text":"mock"}]}],"temperature":0.3})json";
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->streamed);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(header(*r, "request-id"), "req_mock_42");
  ASSERT_EQ(c.fault_models, std::vector<std::string>{"claude-x"});
  // text bytes: "Be brief." + "Hello there mock" = 25 -> 6 prompt tokens
  EXPECT_EQ(r->body,
            R"json({"id":"msg_mock_42","type":"message","role":"assistant","model":"claude-x",)json"
            R"json("content":[{"type":"text","text":"The quick brown fox jumps"}],"stop_reason":"end_turn","stop_sequence":null,)json"
            R"json("usage":{"input_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}})json");
}

TEST(AnthropicRoute, MaxTokensCutsTheAnswer) {
  call c;
  c.body = R"json({"model":"m","max_tokens":3,"messages":[{"role":"user","content":"x"}]})json";
  json_doc d(c.run()->body);
  EXPECT_EQ(d.str("/content/0/text"), "The quick brown");
  EXPECT_EQ(d.str("/stop_reason"), "max_tokens");
  EXPECT_EQ(d.num("/usage/output_tokens"), 3);
}

TEST(AnthropicRoute, ToolCallAndToolResult) {
  call c;
  c.body = R"json({"model":"m","max_tokens":100,"messages":[{"role":"user","content":"weather in Paris"}],
    "tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object"}},{"name":"other","input_schema":{}}]})json";
  json_doc d(c.run()->body);
  EXPECT_EQ(d.raw("/content"),
            R"json([{"type":"tool_use","id":"toolu_mock_42","name":"get_weather","input":{"query":"weather in Paris"}}])json");
  EXPECT_EQ(d.str("/stop_reason"), "tool_use");
  EXPECT_EQ(d.num("/usage/output_tokens"), 9);

  // tool_choice none: text.
  c.body = R"json({"model":"m","max_tokens":100,"messages":[{"role":"user","content":"x"}],
    "tools":[{"name":"get_weather","input_schema":{}}],"tool_choice":{"type":"none"}})json";
  EXPECT_EQ(json_doc(c.run()->body).str("/stop_reason"), "end_turn");

  // After the tool's result: "Tool result: <its text>".
  c.body = R"json({"model":"m","max_tokens":100,"messages":[{"role":"user","content":"weather in Paris"},
    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"query":"weather in Paris"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"14 C and sunny"}]}]}],
    "tools":[{"name":"get_weather","input_schema":{}}]})json";
  json_doc t(c.run()->body);
  EXPECT_EQ(t.str("/content/0/text"), "Tool result: 14 C and sunny");
  EXPECT_EQ(t.str("/stop_reason"), "end_turn");
}

/// Event names of a streamed answer.
std::vector<std::string> names(const route_response& r) {
  std::vector<std::string> out;
  for (auto& c : r.chunks) {
    EXPECT_EQ(c.substr(0, 7), "event: ");
    EXPECT_EQ(c.substr(c.size() - 2), "\n\n");
    auto nl = c.find('\n');
    std::string name = c.substr(7, nl - 7);
    json_doc d(std::string_view(c).substr(nl + 7, c.size() - nl - 9));
    EXPECT_EQ(d.str("/type"), name) << c;
    out.push_back(name);
  }
  return out;
}

TEST(AnthropicRoute, StreamedText) {
  call c;
  c.body = R"json({"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hello there mock"}]})json";
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->streamed);
  EXPECT_EQ(r->content_type, "text/event-stream");
  EXPECT_EQ(r->drop_after, -1);
  EXPECT_EQ(names(*r), (std::vector<std::string>{"message_start", "content_block_start", "ping", "content_block_delta",
                                                  "content_block_delta", "content_block_delta", "content_block_delta",
                                                  "content_block_delta", "content_block_stop", "message_delta",
                                                  "message_stop"}));
  EXPECT_EQ(r->chunks[0],
            "event: message_start\n"
            R"json(data: {"type":"message_start","message":{"id":"msg_mock_42","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})json"
            "\n\n");
  EXPECT_EQ(r->chunks[3],
            "event: content_block_delta\n"
            R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The "}})json"
            "\n\n");
  EXPECT_EQ(r->chunks[9],
            "event: message_delta\n"
            R"json(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}})json"
            "\n\n");
}

TEST(AnthropicRoute, StreamedToolCallInTwoFragments) {
  call c;
  c.body = R"json({"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"cats"}],
    "tools":[{"name":"search","input_schema":{"type":"object"}}]})json";
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(names(*r), (std::vector<std::string>{"message_start", "content_block_start", "ping", "content_block_delta",
                                                  "content_block_delta", "content_block_stop", "message_delta",
                                                  "message_stop"}));
  json_doc start(r->chunks[1].substr(r->chunks[1].find("data: ") + 6));
  EXPECT_EQ(start.raw("/content_block"), R"json({"type":"tool_use","id":"toolu_mock_42","name":"search","input":{}})json");
  std::string input;
  for (int i : {3, 4}) input += json_doc(r->chunks[i].substr(r->chunks[i].find("data: ") + 6)).str("/delta/partial_json");
  EXPECT_EQ(input, R"json({"query":"cats"})json");
  EXPECT_NE(r->chunks[6].find(R"json("stop_reason":"tool_use")json"), std::string::npos);
}

TEST(AnthropicRoute, Faults) {
  struct fc {
    int status;
    const char* type;
  } cases[] = {{429, "rate_limit_error"}, {529, "overloaded_error"}, {500, "api_error"}, {400, "invalid_request_error"},
               {401, "authentication_error"}, {503, "api_error"}};
  for (auto& f : cases) {
    call c;
    c.body = k_hello;
    mock_request fault;
    fault.status = f.status;
    if (f.status == 429) fault.retry_after = "7";
    fault.headers.emplace_back("x-extra", "1");
    c.fault = fault;
    auto r = c.run();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, f.status);
    EXPECT_FALSE(r->streamed);
    json_doc d(r->body);
    EXPECT_EQ(d.str("/type"), "error");
    EXPECT_EQ(d.str("/error/type"), f.type) << f.status;
    EXPECT_EQ(header(*r, "retry-after"), f.status == 429 ? "7" : "<none>");
    EXPECT_EQ(header(*r, "x-extra"), "1");
    EXPECT_EQ(c.fault_models.size(), 1u);
  }
  // A raw body, as programmed.
  call c;
  c.body = k_hello;
  mock_request fault;
  fault.status = 502;
  fault.has_raw_body = true;
  fault.raw_body = "<html>bad gateway</html>";
  fault.content_type = "text/html";
  c.fault = fault;
  auto r = c.run();
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->body, "<html>bad gateway</html>");
  EXPECT_EQ(r->content_type, "text/html");
}

TEST(AnthropicRoute, FaultTokensEchoAndDrop) {
  call c;
  c.body = R"json({"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"one two three"}]})json";
  mock_request fault;
  fault.drop_after = 2;
  fault.echo = true;
  c.fault = fault;
  auto r = c.run();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->drop_after, 5);  // message_start, content_block_start, ping, then 2 deltas
  EXPECT_EQ(r->chunks.size(), 3u + 3u + 3u);
  EXPECT_NE(r->chunks[4].find(R"json("text":"two ")json"), std::string::npos);

  call t;
  t.body = k_hello;
  mock_request tokens;
  tokens.tokens = 2;
  t.fault = tokens;
  EXPECT_EQ(json_doc(t.run()->body).str("/content/0/text"), "The quick");
}

TEST(AnthropicRoute, RejectsWhatAnthropicRejects) {
  std::pair<const char*, const char*> cases[] = {
      {"{not json", "not valid JSON"},
      {"[]", "JSON object"},
      {R"json({"model":"m","messages":[{"role":"user","content":"x"}]})json", "max_tokens"},
      {R"json({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})json", "max_tokens"},
      {R"json({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})json", "model"},
      {R"json({"model":"m","max_tokens":5,"messages":[]})json", "messages"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})json", "messages.0.role"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"tool","content":"x"}]})json", "messages.0.role"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user"}]})json", "messages.0.content"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})json", "image_url"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]})json", "non-empty"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base65"}}]}]})json", "source"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":"{}"}]}]})json", "tool_use"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]})json", "tool_use_id"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":1.5})json", "temperature"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f"}]})json", "input_schema"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})json", "tool_choice"},
  };
  for (auto& [body, says] : cases) {
    call c;
    c.body = body;
    auto r = c.run();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    json_doc d(r->body);
    EXPECT_EQ(d.str("/error/type"), "invalid_request_error");
    EXPECT_NE(d.str("/error/message").find(says), std::string::npos) << body << " -> " << r->body;
    EXPECT_TRUE(c.fault_models.empty());
  }
}

// The gateway's translation against the mock: what to_anthropic sends is accepted,
// and what the mock answers translates back.
TEST(AnthropicRoute, GatewayTranslationRoundTrip) {
  auto ctx = make_context("claude-x", "alias", "chatcmpl-1", false, true);
  ctx.created = 1;
  auto req = providers::to_anthropic(ctx, R"json({"model":"alias","messages":[{"role":"system","content":"s"},
    {"role":"user","content":"weather in Paris"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"query\":\"weather in Paris\"}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get_weather"}}],
    "stream":true,"stream_options":{"include_usage":true}})json");
  ASSERT_TRUE(req.request);
  call c;
  c.body = req.request->body;
  auto r = c.run();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->streamed);
  auto t = providers::anthropic_stream_translator(ctx);
  std::string out;
  for (auto& chunk : r->chunks) ASSERT_FALSE(t->feed(chunk, out));
  ASSERT_FALSE(t->finish(out));
  EXPECT_NE(out.find(R"json({"content":"Tool "})json"), std::string::npos) << out;
  EXPECT_NE(out.find(R"json("finish_reason":"stop")json"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 14), "data: [DONE]\n\n");
  EXPECT_TRUE(t->tokens().known());
  EXPECT_EQ(t->tokens().completion_tokens, 3);  // "Tool result: sunny"

  // A programmed 529 becomes a retryable 503 for the gateway's clients.
  call o;
  o.body = req.request->body;
  mock_request fault;
  fault.status = 529;
  o.fault = fault;
  auto e = o.run();
  auto translated = providers::from_anthropic(ctx, e->status, e->body);
  EXPECT_EQ(translated.status, 503);
  EXPECT_EQ(json_doc(translated.body).str("/error/code"), "overloaded");
}

}  // namespace
}  // namespace gw::mock
