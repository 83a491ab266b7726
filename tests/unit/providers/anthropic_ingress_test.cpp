// Anthropic as an ingress: Messages request -> OpenAI request, OpenAI answers (whole,
// streamed, errors) -> Anthropic, and round trips through the provider direction.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gw/providers/anthropic.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "test_helpers.hpp"

namespace gw::providers {
namespace {

using namespace gw::test;

std::string to_openai(std::string_view body, anthropic_request_info* info_out = nullptr) {
  std::string out;
  anthropic_request_info info;
  auto e = anthropic_request_to_openai(body, out, info);
  EXPECT_FALSE(e) << e->message;
  if (info_out) *info_out = info;
  return out;
}

provider_error ingress_error(std::string_view body) {
  std::string out = "stale";
  anthropic_request_info info;
  auto e = anthropic_request_to_openai(body, out, info);
  EXPECT_TRUE(e) << body;
  EXPECT_EQ(out, "");
  return e.value_or(provider_error{});
}

/// An Anthropic SSE stream read back like the SDK accumulates it, with the event
/// grammar checked: message_start, then blocks one at a time (start, deltas of the
/// block's kind, stop), message_delta, message_stop; or an error event anywhere.
struct anthropic_stream {
  struct block {
    std::string type, text, id, name, json;
  };
  std::string id, model, stop_reason, error_type, error_message, problem;
  std::vector<block> blocks;
  std::int64_t input = -1, output = -1, cache_read = -1, cache_write = -1;
  bool stopped = false;
};

anthropic_stream read_anthropic(std::string_view sse) {
  anthropic_stream s;
  bool started = false, delta_seen = false, ended = false;
  std::string bad_input;
  int open = -1;
  auto bad = [&](std::string what) {
    if (s.problem.empty()) s.problem = std::move(what);
  };
  std::size_t pos = 0;
  while (pos < sse.size() && s.problem.empty()) {
    auto end = sse.find("\n\n", pos);
    if (end == std::string_view::npos) return bad("unterminated event"), s;
    std::string_view ev = sse.substr(pos, end - pos);
    pos = end + 2;
    auto nl = ev.find('\n');
    if (ev.substr(0, 7) != "event: " || nl == std::string_view::npos || ev.substr(nl + 1, 6) != "data: ")
      return bad("malformed event: " + std::string(ev)), s;
    std::string name(ev.substr(7, nl - 7));
    json_doc d(ev.substr(nl + 7));
    if (!d.ok() || d.str("/type") != name) return bad("data does not match event " + name), s;
    if (ended) return bad("event after the end: " + name), s;
    if (name == "error") {
      s.error_type = d.str("/error/type");
      s.error_message = d.str("/error/message");
      ended = true;
    } else if (name == "ping") {
    } else if (!started) {
      if (name != "message_start") return bad("first event is " + name), s;
      started = true;
      s.id = d.str("/message/id");
      s.model = d.str("/message/model");
      if (d.str("/message/type") != "message" || d.str("/message/role") != "assistant" || d.raw("/message/content") != "[]")
        bad("bad message_start");
    } else if (name == "content_block_start") {
      if (open >= 0 || delta_seen) return bad("block started while another is open or after message_delta"), s;
      if (d.num("/index") != static_cast<std::int64_t>(s.blocks.size())) return bad("block index out of order"), s;
      open = static_cast<int>(d.num("/index"));
      anthropic_stream::block b;
      b.type = d.str("/content_block/type");
      if (b.type == "tool_use") {
        b.id = d.str("/content_block/id");
        b.name = d.str("/content_block/name");
        if (d.raw("/content_block/input") != "{}") bad("tool_use start with input");
      } else if (b.type == "text") {
        b.text = d.str("/content_block/text");
      }
      s.blocks.push_back(b);
    } else if (name == "content_block_delta") {
      if (d.num("/index") != open) return bad("delta for a block that is not open"), s;
      auto& b = s.blocks[static_cast<std::size_t>(open)];
      std::string dt = d.str("/delta/type");
      if (dt == "text_delta" && b.type == "text") b.text += d.str("/delta/text");
      else if (dt == "input_json_delta" && b.type == "tool_use") b.json += d.str("/delta/partial_json");
      else return bad("delta " + dt + " in a " + b.type + " block"), s;
    } else if (name == "content_block_stop") {
      if (d.num("/index") != open) return bad("stop for a block that is not open"), s;
      auto& b = s.blocks[static_cast<std::size_t>(open)];
      // Partial input is expected only when an error event follows (checked at the end).
      if (b.type == "tool_use" && !b.json.empty() && !json_doc(b.json).ok()) bad_input = b.json;
      open = -1;
    } else if (name == "message_delta") {
      if (open >= 0 || delta_seen) return bad("message_delta with an open block or twice"), s;
      delta_seen = true;
      s.stop_reason = d.str("/delta/stop_reason");
      if (d.has("/usage/input_tokens")) s.input = d.num("/usage/input_tokens");
      if (d.has("/usage/cache_read_input_tokens")) s.cache_read = d.num("/usage/cache_read_input_tokens");
      if (d.has("/usage/cache_creation_input_tokens")) s.cache_write = d.num("/usage/cache_creation_input_tokens");
      s.output = d.num("/usage/output_tokens");
    } else if (name == "message_stop") {
      if (!delta_seen) return bad("message_stop before message_delta"), s;
      s.stopped = true;
      ended = true;
    } else {
      return bad("unknown event " + name), s;
    }
  }
  if (s.stopped && !bad_input.empty()) bad("tool input is not JSON: " + bad_input);
  return s;
}

// ---------------------------------------------------------------------------------
// Requests

const char* k_request = R"json({"model":"claude-sonnet-4-5","max_tokens":1024,
 "system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Use metric.","cache_control":{"type":"ephemeral"}}],
 "messages":[
  {"role":"user","content":[{"type":"text","text":"Weather in Paris?"},
    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
    {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]},
  {"role":"assistant","content":[{"type":"thinking","thinking":"...","signature":"x"},{"type":"text","text":"Checking."},
    {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"14C"},{"type":"text","text":"And Rome?"}]},
  {"role":"assistant","content":[{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},
  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"unknown city"}],"is_error":true}]}],
 "tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
 "tool_choice":{"type":"any","disable_parallel_tool_use":true},
 "stop_sequences":["END"],"temperature":0.5,"top_p":0.9,"top_k":40,"metadata":{"user_id":"u-1"},"stream":true,
 "thinking":{"type":"enabled","budget_tokens":1024}})json";

TEST(AnthropicIngressRequest, FullConversationMaps) {
  anthropic_request_info info;
  std::string body = to_openai(k_request, &info);
  EXPECT_EQ(body,
            R"json({"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"You are terse.\nUse metric."},)json"
            R"json({"role":"user","content":[{"type":"text","text":"Weather in Paris?"},)json"
            R"json({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},)json"
            R"json({"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]},)json"
            R"json({"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function",)json"
            R"json("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},)json"
            R"json({"role":"tool","tool_call_id":"toolu_1","content":"14C"},{"role":"user","content":"And Rome?"},)json"
            R"json({"role":"assistant","content":null,"tool_calls":[{"id":"toolu_2","type":"function",)json"
            R"json("function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},)json"
            R"json({"role":"tool","tool_call_id":"toolu_2","content":"Error: unknown city"}],)json"
            R"json("max_tokens":1024,"temperature":0.5,"top_p":0.9,"stop":["END"],"user":"u-1",)json"
            R"json("tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",)json"
            R"json("parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],)json"
            R"json("tool_choice":"required","parallel_tool_calls":false,"stream":true,"stream_options":{"include_usage":true}})json");
  EXPECT_EQ(info.model, "claude-sonnet-4-5");
  EXPECT_TRUE(info.stream);
  EXPECT_TRUE(info.has_tools);
  EXPECT_EQ(info.max_tokens, 1024);
  // system, user text, assistant text, tool results, user text
  EXPECT_EQ(info.text_bytes, std::string("You are terse.\nUse metric.").size() + 17 + 9 + 3 + 9 + 19);
}

TEST(AnthropicIngressRequest, SimpleFormsAndToolChoices) {
  anthropic_request_info info;
  json_doc d(to_openai(R"json({"model":"m","max_tokens":5,"system":"Be nice.",
    "messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":""}]})json", &info));
  EXPECT_EQ(d.raw("/messages"), R"json([{"role":"system","content":"Be nice."},{"role":"user","content":"Hi"}])json");
  EXPECT_FALSE(d.has("/stream"));
  EXPECT_FALSE(info.stream);
  EXPECT_FALSE(info.has_tools);

  const std::string base = R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
    "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":)json";
  std::pair<std::string, std::string> cases[] = {
      {R"json({"type":"auto"})json", R"json("auto")json"},
      {R"json({"type":"any"})json", R"json("required")json"},
      {R"json({"type":"none","disable_parallel_tool_use":true})json", R"json("none")json"},
      {R"json({"type":"tool","name":"f"})json", R"json({"type":"function","function":{"name":"f"}})json"},
  };
  for (auto& [in, want] : cases) {
    json_doc c(to_openai(base + in + "}"));
    EXPECT_EQ(c.raw("/tool_choice"), want) << in;
    EXPECT_FALSE(c.has("/parallel_tool_calls")) << in;
  }
  // tool_choice without tools: dropped (OpenAI refuses it).
  json_doc n(to_openai(R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"}})json"));
  EXPECT_FALSE(n.has("/tool_choice"));
  // Documents: PDF -> file part, plain text -> text part.
  json_doc doc(to_openai(R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"document","title":"a.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}},
    {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]})json"));
  EXPECT_EQ(doc.raw("/messages/0/content"),
            R"json([{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}},{"type":"text","text":"plain"}])json");
}

TEST(AnthropicIngressRequest, ValidationErrorsUseAnthropicWords) {
  std::pair<const char*, const char*> cases[] = {
      {R"json({"model":"m","messages":[{"role":"user","content":"x"}]})json", "max_tokens: Field required"},
      {R"json({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})json", "model: Field required"},
      {R"json({"model":"m","max_tokens":5})json", "messages: Field required"},
      {R"json({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})json", "greater than or equal to 1"},
      {R"json({"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]})json", "max_tokens: Input should be a valid integer"},
      {R"json({"model":"m","max_tokens":5,"messages":[]})json", "at least one message"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})json", "messages.0.role: Input should be 'user' or 'assistant'"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user"}]})json", "messages.0.content: Field required"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":""},{"role":"assistant","content":"y"}]})json", "messages.0: all messages must have non-empty content"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[]},{"role":"user","content":"y"}]})json", "messages.0: all messages"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]})json", "messages.0.content.0.type"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]})json", "messages.0.content.0.type"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]})json", "source.type"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"x"}}]}]})json", "media_type: Field required"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":[1]}]}]})json", "input: Input should be a valid dictionary"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]})json", "web_search_20250305"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f"}]})json", "tools.0.input_schema: Field required"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"maybe"}})json", "tool_choice.type"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"tool"}})json", "tool_choice.name: Field required"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stop_sequences":"END"})json", "stop_sequences"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":"warm"})json", "temperature"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":[{"type":"image"}]})json", "system.0"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":5}})json", "metadata.user_id"},
      {R"json({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]} trailing)json", "not valid JSON"},
      {R"json("just a string")json", "JSON object"},
  };
  for (auto& [body, says] : cases) {
    auto e = ingress_error(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_NE(e.message.find(says), std::string::npos) << body << " -> " << e.message;
    json_doc d(provider_error_to_anthropic(e));
    EXPECT_EQ(d.str("/type"), "error");
    EXPECT_EQ(d.str("/error/type"), "invalid_request_error");
    EXPECT_EQ(d.str("/error/message"), e.message);
  }
}

TEST(AnthropicIngressRequest, NeverCrashesOnTruncatedBodies) {
  std::string body = k_request;
  for (std::size_t n = 0; n < body.size(); ++n) {
    std::string out;
    anthropic_request_info info;
    auto e = anthropic_request_to_openai(std::string_view(body).substr(0, n), out, info);
    EXPECT_TRUE(e) << n;
  }
}

// ---------------------------------------------------------------------------------
// Responses and errors

TEST(AnthropicIngressResponse, ChatCompletionBecomesMessage) {
  anthropic_request_info info;
  info.model = "claude-sonnet-4-5";
  std::string out = openai_response_to_anthropic(
      R"json({"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,
      "model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.",
      "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}],
      "refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":119,"completion_tokens":10,"total_tokens":129,"prompt_tokens_details":{"cached_tokens":100,"audio_tokens":0}},
      "service_tier":"default"})json",
      info);
  EXPECT_EQ(out,
            R"json({"id":"msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT","type":"message","role":"assistant","model":"claude-sonnet-4-5",)json"
            R"json("content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"call_1","name":"get_weather",)json"
            R"json("input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,)json"
            R"json("usage":{"input_tokens":19,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":10}})json");
}

TEST(AnthropicIngressResponse, StopReasonsAndOddContent) {
  anthropic_request_info info;  // no model: the response's
  std::pair<const char*, const char*> cases[] = {{"stop", "end_turn"},      {"length", "max_tokens"},
                                                 {"tool_calls", "tool_use"}, {"content_filter", "refusal"},
                                                 {"function_call", "tool_use"}, {"whatever", "end_turn"}};
  for (auto [in, want] : cases) {
    json_doc d(openai_response_to_anthropic(std::string(R"json({"id":"x1","model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":")json") +
                                                in + "\"}]}",
                                            info));
    EXPECT_EQ(d.str("/stop_reason"), want) << in;
    EXPECT_EQ(d.str("/id"), "msg_x1");
    EXPECT_EQ(d.str("/model"), "gpt");
    EXPECT_EQ(d.num("/usage/input_tokens"), 0);
  }
  // Arguments that are not an object are kept, not lost; empty ones are {}; empty
  // text makes no block; a refusal is the text.
  json_doc d(openai_response_to_anthropic(R"json({"id":"","choices":[{"message":{"content":"","tool_calls":[
    {"id":"c1","function":{"name":"f","arguments":"{\"a\":"}},{"id":"c2","function":{"name":"g","arguments":""}}]},
    "finish_reason":"length"}]})json", info));
  EXPECT_EQ(d.str("/id"), "msg_gateway");
  EXPECT_EQ(d.raw("/content"),
            R"json([{"type":"tool_use","id":"c1","name":"f","input":{"raw_arguments":"{\"a\":"}},{"type":"tool_use","id":"c2","name":"g","input":{}}])json");
  EXPECT_EQ(d.str("/stop_reason"), "max_tokens");
  json_doc r(openai_response_to_anthropic(R"json({"id":"chatcmpl-1","choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"content_filter"}]})json", info));
  EXPECT_EQ(r.raw("/content"), R"json([{"type":"text","text":"I can't help with that."}])json");
  EXPECT_EQ(r.str("/stop_reason"), "refusal");
  // Not a completion: an Anthropic error body.
  json_doc bad(openai_response_to_anthropic("<html>", info));
  EXPECT_EQ(bad.str("/type"), "error");
  EXPECT_EQ(bad.str("/error/type"), "api_error");
}

TEST(AnthropicIngressErrors, StatusesMapToAnthropicTypes) {
  std::pair<int, const char*> cases[] = {{400, "invalid_request_error"}, {401, "authentication_error"},
                                         {403, "permission_error"},      {404, "not_found_error"},
                                         {413, "request_too_large"},     {429, "rate_limit_error"},
                                         {503, "overloaded_error"},      {529, "overloaded_error"},
                                         {500, "api_error"},             {502, "api_error"},
                                         {504, "api_error"},             {422, "invalid_request_error"}};
  for (auto [status, type] : cases) {
    EXPECT_EQ(anthropic_error_type(status), type) << status;
    json_doc d(openai_error_to_anthropic(
        status, R"json({"error":{"message":"Rate limit reached for gpt-4o-mini","type":"tokens","param":null,"code":"rate_limit_exceeded"}})json"));
    EXPECT_EQ(d.str("/type"), "error");
    EXPECT_EQ(d.str("/error/type"), type);
    EXPECT_EQ(d.str("/error/message"), "Rate limit reached for gpt-4o-mini");
  }
  EXPECT_EQ(json_doc(openai_error_to_anthropic(502, "upstream \xff down\n")).str("/error/message"), "upstream ? down");
  EXPECT_EQ(json_doc(openai_error_to_anthropic(500, "")).str("/error/message"), "HTTP 500");
  EXPECT_EQ(json_doc(openai_error_to_anthropic(400, R"json({"error":"plain"})json")).str("/error/message"), "plain");
  EXPECT_EQ(anthropic_error_json("api_error", "a \"b\""), R"json({"type":"error","error":{"type":"api_error","message":"a \"b\""}})json");
}

// ---------------------------------------------------------------------------------
// Stream writer

const std::string k_openai_text =
    R"json(data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" thère"},"logprobs":null,"finish_reason":null}],"usage":null})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":4}}})json"
    "\n\n"
    "data: [DONE]\n\n";

const std::string k_openai_tools =
    // Azure's first chunk: no choices, no id.
    R"json(data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me look."},"finish_reason":null}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":null}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})json"
    "\n\n"
    R"json(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}})json"
    "\n\n"
    "data: [DONE]\n\n";

std::string write_stream(const std::string& in, std::size_t step, const anthropic_request_info& info,
                         anthropic_stream_writer** keep = nullptr) {
  static thread_local std::unique_ptr<anthropic_stream_writer> w;
  w = std::make_unique<anthropic_stream_writer>(info);
  std::string out;
  if (step == 0) step = in.size() ? in.size() : 1;
  for (std::size_t i = 0; i < in.size(); i += step) w->feed(std::string_view(in).substr(i, step), out);
  w->finish(out);
  if (keep) *keep = w.get();
  return out;
}

anthropic_request_info info_for(std::string model) {
  anthropic_request_info i;
  i.model = std::move(model);
  i.stream = true;
  return i;
}

TEST(AnthropicStreamWriter, TextStreamExactEvents) {
  anthropic_stream_writer* w = nullptr;
  std::string out = write_stream(k_openai_text, 0, info_for("claude-x"), &w);
  EXPECT_EQ(out,
            "event: message_start\n"
            R"json(data: {"type":"message_start","message":{"id":"msg_123","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}})json"
            "\n\nevent: content_block_start\n"
            R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})json"
            "\n\nevent: content_block_delta\n"
            R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})json"
            "\n\nevent: content_block_delta\n"
            R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" thère"}})json"
            "\n\nevent: content_block_stop\n"
            R"json(data: {"type":"content_block_stop","index":0})json"
            "\n\nevent: message_delta\n"
            R"json(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":15,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":10}})json"
            "\n\nevent: message_stop\n"
            R"json(data: {"type":"message_stop"})json"
            "\n\n");
  EXPECT_TRUE(w->done());
  EXPECT_FALSE(w->failed());
  EXPECT_EQ(w->tokens().prompt_tokens, 19);
  EXPECT_EQ(w->tokens().cached_tokens, 4);
  // Any split, CRLF line ends included, gives the same events.
  EXPECT_EQ(write_stream(k_openai_text, 1, info_for("claude-x")), out);
  for (std::size_t cut = 1; cut < k_openai_text.size(); ++cut) {
    anthropic_stream_writer sw(info_for("claude-x"));
    std::string o;
    sw.feed(std::string_view(k_openai_text).substr(0, cut), o);
    sw.feed(std::string_view(k_openai_text).substr(cut), o);
    sw.finish(o);
    ASSERT_EQ(o, out) << cut;
  }
  std::string crlf;
  for (char c : k_openai_text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  EXPECT_EQ(write_stream(crlf, 3, info_for("claude-x")), out);
}

TEST(AnthropicStreamWriter, ToolCallsMakeToolUseBlocks) {
  std::string out = write_stream(k_openai_tools, 1, info_for(""));
  auto s = read_anthropic(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.id, "msg_9");
  EXPECT_EQ(s.model, "gpt-4o");  // the request named none
  ASSERT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(s.blocks[0].type, "text");
  EXPECT_EQ(s.blocks[0].text, "Let me look.");
  EXPECT_EQ(s.blocks[1].type, "tool_use");
  EXPECT_EQ(s.blocks[1].id, "call_1");
  EXPECT_EQ(s.blocks[1].name, "get_weather");
  EXPECT_EQ(s.blocks[1].json, R"json({"city":"Paris"})json");
  EXPECT_EQ(s.blocks[2].id, "call_2");
  EXPECT_EQ(s.blocks[2].json, "{}");
  EXPECT_EQ(s.stop_reason, "tool_use");
  EXPECT_EQ(s.input, 50);
  EXPECT_EQ(s.output, 20);
  EXPECT_EQ(write_stream(k_openai_tools, 0, info_for("")), out);
}

TEST(AnthropicStreamWriter, ErrorEventMidStream) {
  std::string in = k_openai_text.substr(0, k_openai_text.find("data: ", 10));  // role chunk
  in += k_openai_text.substr(in.size(), k_openai_text.find("data: ", in.size() + 1) - in.size());  // "Hello"
  in += R"json(data: {"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}})json"
        "\n\n";
  anthropic_stream_writer* w = nullptr;
  std::string out = write_stream(in + k_openai_text, 1, info_for("m"), &w);
  auto s = read_anthropic(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.error_type, "rate_limit_error");
  EXPECT_EQ(s.error_message, "Rate limit reached");
  EXPECT_FALSE(s.stopped);
  ASSERT_EQ(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].text, "Hello");
  EXPECT_TRUE(w->done());
  EXPECT_TRUE(w->failed());
  // The open text block was closed before the error; nothing after it.
  EXPECT_LT(out.find("content_block_stop"), out.find("event: error"));
  EXPECT_EQ(out.find("message_stop"), std::string::npos);

  std::pair<const char*, const char*> types[] = {
      {R"json({"error":{"message":"m","type":"server_error","code":"overloaded"}})json", "overloaded_error"},
      {R"json({"error":{"message":"m","type":"invalid_request_error","code":null}})json", "invalid_request_error"},
      {R"json({"error":{"message":"m","type":"api_error","code":"upstream_stream_error"}})json", "api_error"},
      {R"json({"error":"m"})json", "api_error"},
      {R"json({not json)json", "api_error"}};
  for (auto [chunk, type] : types) {
    auto e = read_anthropic(write_stream(std::string("data: ") + chunk + "\n\n", 0, info_for("m")));
    EXPECT_EQ(e.problem, "");
    EXPECT_EQ(e.error_type, type) << chunk;
  }
}

TEST(AnthropicStreamWriter, EndingWithoutDone) {
  // Cut before the finish reason: the open block is closed, then an error.
  std::string cut = k_openai_text.substr(0, k_openai_text.find(R"json("finish_reason":"stop")json") - 100);
  cut = cut.substr(0, cut.rfind("data: "));
  anthropic_stream_writer* w = nullptr;
  auto s = read_anthropic(write_stream(cut, 1, info_for("m"), &w));
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.error_type, "api_error");
  EXPECT_TRUE(w->failed());
  // Nothing at all: an error event alone.
  auto n = read_anthropic(write_stream("", 0, info_for("m")));
  EXPECT_EQ(n.problem, "");
  EXPECT_EQ(n.error_type, "api_error");
  // Finish reason and usage came, only [DONE] is missing: a whole message.
  std::string no_done = k_openai_text.substr(0, k_openai_text.find("data: [DONE]"));
  auto c = read_anthropic(write_stream(no_done, 0, info_for("m")));
  EXPECT_EQ(c.problem, "");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.output, 10);
  // A last chunk without its blank line is still read.
  auto l = read_anthropic(write_stream(k_openai_text.substr(0, k_openai_text.size() - 2), 0, info_for("m")));
  EXPECT_TRUE(l.stopped);
  EXPECT_EQ(l.problem, "");
}

TEST(AnthropicStreamWriter, DoneWithoutFinishReasonStillClosesTheBlock) {
  // Some OpenAI-compatible servers send [DONE] with no finish_reason chunk.
  std::string in =
      R"json(data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"Hi"}}]})json" "\n\n"
      R"json(data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{}"}}]}}]})json" "\n\n"
      "data: [DONE]\n\n";
  auto s = read_anthropic(write_stream(in, 0, info_for("m")));
  EXPECT_EQ(s.problem, "");
  EXPECT_TRUE(s.stopped);
  ASSERT_EQ(s.blocks.size(), 2u);
  EXPECT_EQ(s.stop_reason, "tool_use");
  EXPECT_EQ(s.output, 0);
}

TEST(AnthropicStreamWriter, EveryPrefixGivesAValidSequence) {
  for (const std::string* in : {&k_openai_text, &k_openai_tools}) {
    for (std::size_t n = 0; n <= in->size(); ++n) {
      auto s = read_anthropic(write_stream(in->substr(0, n), 0, info_for("m")));
      ASSERT_EQ(s.problem, "") << n;
      ASSERT_TRUE(s.stopped || !s.error_type.empty()) << n;
    }
  }
}

// ---------------------------------------------------------------------------------
// Round trips: Anthropic client -> gateway (OpenAI) -> Anthropic provider

translate_context provider_ctx(std::string upstream) {
  return make_context(std::move(upstream), "claude-sonnet-4-5", "chatcmpl-rt1", true, true);
}

TEST(AnthropicRoundTrip, RequestComesBackTheSame) {
  // In the provider's normal form (content as blocks, fields in its order), an
  // Anthropic request survives the trip through OpenAI byte for byte.
  const std::string original =
      R"json({"model":"claude-sonnet-4-5","max_tokens":512,"system":"You are terse.","messages":[)json"
      R"json({"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}},)json"
      R"json({"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]},)json"
      R"json({"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","days":[1,2]}}]},)json"
      R"json({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"14C"},{"type":"text","text":"Thanks"}]}],)json"
      R"json("stop_sequences":["END","STOP"],"temperature":0.5,"top_p":0.9,"metadata":{"user_id":"u-1"},)json"
      R"json("tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],)json"
      R"json("tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true},"stream":true})json";
  anthropic_request_info info;
  std::string openai = to_openai(original, &info);
  auto back = to_anthropic(provider_ctx(info.model), openai);
  ASSERT_TRUE(back.request) << back.error->message;
  EXPECT_EQ(back.request->body, original);
}

TEST(AnthropicRoundTrip, ResponseComesBackTheSame) {
  const std::string upstream =
      R"json({"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[)json"
      R"json({"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],)json"
      R"json("stop_reason":"tool_use","stop_sequence":null,)json"
      R"json("usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":7}})json";
  auto openai = from_anthropic(provider_ctx("claude-sonnet-4-5"), 200, upstream);
  ASSERT_EQ(openai.status, 200);
  anthropic_request_info info;
  info.model = "claude-sonnet-4-5";
  std::string back = openai_response_to_anthropic(openai.body, info);
  // Only the id differs: the gateway's.
  std::string want = upstream;
  want.replace(want.find("msg_01"), 6, "msg_rt1");
  EXPECT_EQ(back, want);
  // Errors too: a 529 becomes a 503 for OpenAI clients and overloaded_error again.
  auto err = from_anthropic(provider_ctx("m"), 529, R"json({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})json");
  json_doc e(openai_error_to_anthropic(err.status, err.body));
  EXPECT_EQ(e.str("/error/type"), "overloaded_error");
  EXPECT_EQ(e.str("/error/message"), "Anthropic overloaded_error: Overloaded");
}

TEST(AnthropicRoundTrip, StreamComesBackEquivalent) {
  const std::string upstream =
      "event: message_start\n"
      R"json(data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":30,"cache_creation_input_tokens":5,"cache_read_input_tokens":60,"output_tokens":1}}})json"
      "\n\nevent: content_block_start\n"
      R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})json"
      "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sure, "}})json"
      "\n\nevent: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"checking."}})json"
      "\n\nevent: content_block_stop\n"
      R"json(data: {"type":"content_block_stop","index":0})json"
      "\n\nevent: content_block_start\n"
      R"json(data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"lookup","input":{}}})json"
      "\n\nevent: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\": \"cats"}})json"
      "\n\nevent: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"}"}})json"
      "\n\nevent: content_block_stop\n"
      R"json(data: {"type":"content_block_stop","index":1})json"
      "\n\nevent: message_delta\n"
      R"json(data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})json"
      "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto original = read_anthropic(upstream);
  ASSERT_EQ(original.problem, "");

  auto t = anthropic_stream_translator(provider_ctx("claude-sonnet-4-5"));
  anthropic_stream_writer w(info_for("claude-sonnet-4-5"));
  std::string openai, back;
  for (char c : upstream) {
    std::string piece;
    ASSERT_FALSE(t->feed(std::string_view(&c, 1), piece));
    w.feed(piece, back);
  }
  std::string last;
  ASSERT_FALSE(t->finish(last));
  w.feed(last, back);
  w.finish(back);

  auto s = read_anthropic(back);
  EXPECT_EQ(s.problem, "");
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.id, "msg_rt1");
  EXPECT_EQ(s.model, original.model);
  ASSERT_EQ(s.blocks.size(), original.blocks.size());
  for (std::size_t i = 0; i < s.blocks.size(); ++i) {
    EXPECT_EQ(s.blocks[i].type, original.blocks[i].type);
    EXPECT_EQ(s.blocks[i].text, original.blocks[i].text);
    EXPECT_EQ(s.blocks[i].id, original.blocks[i].id);
    EXPECT_EQ(s.blocks[i].name, original.blocks[i].name);
    EXPECT_EQ(s.blocks[i].json, original.blocks[i].json);
  }
  EXPECT_EQ(s.stop_reason, "tool_use");
  EXPECT_EQ(s.input, 30);
  EXPECT_EQ(s.cache_read, 60);
  EXPECT_EQ(s.cache_write, 5);
  EXPECT_EQ(s.output, 42);
}

}  // namespace
}  // namespace gw::providers
