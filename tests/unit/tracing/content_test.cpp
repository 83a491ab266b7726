#include "gw/tracing/content.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace gw::tracing {
namespace {

namespace dom = simdjson::dom;

/// Parses `json` (must be valid) with a parser that outlives the returned element.
dom::element parse(dom::parser& p, const std::string& json) {
  dom::element e;
  auto err = p.parse(json).get(e);
  EXPECT_FALSE(err) << "invalid JSON: " << json;
  return e;
}

std::string str(dom::element e, std::string_view key) {
  std::string_view s;
  if (e[key].get_string().get(s)) return "<missing>";
  return std::string(s);
}

// ---- read_request ------------------------------------------------------------------------

TEST(ReadRequest, ChatMessagesSystemToolsAndParameters) {
  const std::string body = R"({"model":"gpt-4o","messages":[
    {"role":"system","content":"Be brief."},
    {"role":"developer","content":[{"type":"text","text":"Use metric."},{"type":"image_url","image_url":{}},{"type":"text","text":"No emoji."}]},
    {"role":"user","content":"Hello \"world\""}],
    "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],
    "temperature":0.2,"top_p":1,"max_tokens":50,"frequency_penalty":0.5,"presence_penalty":-0.5,
    "seed":42,"n":2,"stop":"END"})";
  auto v = read_request(body);
  dom::parser p;
  auto msgs = parse(p, v.input_json);
  ASSERT_TRUE(msgs.is_array());
  EXPECT_EQ(dom::array(msgs).size(), 3u);
  EXPECT_EQ(str(msgs.at(2).value(), "content"), "Hello \"world\"");
  EXPECT_EQ(v.system_instructions, "Be brief.\nUse metric.\nNo emoji.");
  dom::parser p2;
  auto tools = parse(p2, v.tools_json);
  EXPECT_EQ(str(tools.at(0)["function"].value(), "name"), "get_weather");
  ASSERT_TRUE(v.temperature && v.top_p && v.frequency_penalty && v.presence_penalty);
  EXPECT_DOUBLE_EQ(*v.temperature, 0.2);
  EXPECT_DOUBLE_EQ(*v.top_p, 1.0);  // an integer in JSON still reads as a double
  EXPECT_DOUBLE_EQ(*v.frequency_penalty, 0.5);
  EXPECT_DOUBLE_EQ(*v.presence_penalty, -0.5);
  EXPECT_EQ(v.max_tokens, 50);
  EXPECT_EQ(v.seed, 42);
  EXPECT_EQ(v.n, 2);
  ASSERT_EQ(v.stop.size(), 1u);
  EXPECT_EQ(v.stop[0], "END");
}

TEST(ReadRequest, MaxCompletionTokensAndStopList) {
  auto v = read_request(R"({"messages":[],"max_completion_tokens":77,"stop":["a",1,"b",null]})");
  EXPECT_EQ(v.max_tokens, 77);
  EXPECT_EQ(v.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(v.temperature);
  EXPECT_FALSE(v.seed);
  EXPECT_EQ(v.input_json, "[]");
  EXPECT_EQ(v.system_instructions, "");
  EXPECT_EQ(v.tools_json, "");
}

TEST(ReadRequest, CompletionPromptBecomesUserMessage) {
  auto v = read_request(R"({"model":"x","prompt":"Say hi"})");
  dom::parser p;
  auto msgs = parse(p, v.input_json);
  ASSERT_EQ(dom::array(msgs).size(), 1u);
  EXPECT_EQ(str(msgs.at(0).value(), "role"), "user");
  EXPECT_EQ(str(msgs.at(0).value(), "content"), "Say hi");
}

TEST(ReadRequest, EmbeddingsInput) {
  auto v = read_request(R"({"model":"e","input":["one","two"]})");
  EXPECT_EQ(v.input_json, R"(["one","two"])");
}

TEST(ReadRequest, AnthropicSystemField) {
  auto v = read_request(
      R"({"model":"claude","system":[{"type":"text","text":"Sys A"}],"max_tokens":9,"stop_sequences":["Z"],)"
      R"("messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(v.system_instructions, "Sys A");
  EXPECT_EQ(v.max_tokens, 9);
  EXPECT_EQ(v.stop, std::vector<std::string>{"Z"});
}

TEST(ReadRequest, InvalidOrTruncatedGivesEmpty) {
  for (std::string_view body : {std::string_view(R"({"messages":[{"role":"user","content":"hel)"),
                                std::string_view(""), std::string_view("[1,2]"), std::string_view("not json"),
                                std::string_view("{\"messages\":[{\"content\":\"\xff\xfe\"}]}")}) {
    auto v = read_request(body);
    EXPECT_EQ(v.input_json, "") << body;
    EXPECT_FALSE(v.temperature);
    EXPECT_TRUE(v.stop.empty());
  }
}

// ---- read_response: whole bodies ---------------------------------------------------------

TEST(ReadResponse, ChatCompletionChoicesInIndexOrder) {
  const std::string body = R"({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
    "choices":[
      {"index":1,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"f","arguments":"{\"x\":1}"}}],"refusal":null},"finish_reason":"tool_calls"},
      {"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],
    "usage":{"prompt_tokens":3,"completion_tokens":2}})";
  auto v = read_response(body, false);
  EXPECT_EQ(v.id, "chatcmpl-1");
  EXPECT_EQ(v.model, "gpt-4o-2024-08-06");
  EXPECT_EQ(v.finish_reasons, (std::vector<std::string>{"stop", "tool_calls"}));
  dom::parser p;
  auto out = parse(p, v.output_json);
  ASSERT_EQ(dom::array(out).size(), 2u);
  EXPECT_EQ(str(out.at(0).value(), "content"), "Hi there");
  EXPECT_TRUE(out.at(1)["content"].is_null());
  EXPECT_EQ(str(out.at(1)["tool_calls"].at(0)["function"].value(), "arguments"), "{\"x\":1}");
  EXPECT_TRUE(out.at(0)["refusal"].error());  // only role, content, tool_calls
}

TEST(ReadResponse, TextCompletion) {
  auto v = read_response(
      R"({"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"index":0,"text":"abc","finish_reason":"length"}]})",
      false);
  EXPECT_EQ(v.output_json, R"([{"role":"assistant","content":"abc"}])");
  EXPECT_EQ(v.finish_reasons, std::vector<std::string>{"length"});
}

TEST(ReadResponse, EmbeddingsGiveNoOutput) {
  auto v = read_response(
      R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"text-embedding-3-small"})",
      false);
  EXPECT_EQ(v.output_json, "");
  EXPECT_TRUE(v.finish_reasons.empty());
  EXPECT_EQ(v.model, "text-embedding-3-small");
}

TEST(ReadResponse, AnthropicMessage) {
  auto v = read_response(
      R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hi"},)"
      R"({"type":"tool_use","id":"tu_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use"})",
      false);
  EXPECT_EQ(v.id, "msg_1");
  EXPECT_EQ(v.finish_reasons, std::vector<std::string>{"tool_use"});
  dom::parser p;
  auto out = parse(p, v.output_json);
  EXPECT_EQ(str(out.at(0).value(), "content"), "Hi");
  EXPECT_EQ(str(out.at(0)["tool_calls"].at(0)["function"].value(), "arguments"), R"({"a":1})");
}

TEST(ReadResponse, ErrorOrTruncatedBodyGivesEmpty) {
  auto e = read_response(R"({"error":{"message":"bad","type":"invalid_request_error"}})", false);
  EXPECT_EQ(e.output_json, "");
  auto t = read_response(R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hel)", false);
  EXPECT_EQ(t.output_json, "");
  EXPECT_EQ(t.id, "");
}

// ---- read_response: streams --------------------------------------------------------------

TEST(ReadResponseStream, TwoChoicesAndToolCallsSplitOverChunks) {
  const std::string sse =
      ": keep-alive comment\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}},{\"index\":1,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "event: message\r\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\","
      "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\r\n\r\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
      "{\"arguments\":\"{\\\"city\\\":\"}},{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":"
      "{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
      "{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"},"
      "{\"index\":1,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n"
      "data: [DONE]\n\n";
  auto v = read_response(sse, true);
  EXPECT_EQ(v.id, "c1");
  EXPECT_EQ(v.model, "gpt-4o");
  EXPECT_EQ(v.finish_reasons, (std::vector<std::string>{"stop", "tool_calls"}));
  dom::parser p;
  auto out = parse(p, v.output_json);
  ASSERT_EQ(dom::array(out).size(), 2u);
  EXPECT_EQ(str(out.at(0).value(), "role"), "assistant");
  EXPECT_EQ(str(out.at(0).value(), "content"), "Hello \xc3\xa9");
  EXPECT_TRUE(out.at(1)["content"].is_null());
  auto calls = out.at(1)["tool_calls"];
  ASSERT_EQ(dom::array(calls.value()).size(), 2u);
  EXPECT_EQ(str(calls.at(0).value(), "id"), "call_a");
  EXPECT_EQ(str(calls.at(0)["function"].value(), "name"), "get_weather");
  EXPECT_EQ(str(calls.at(0)["function"].value(), "arguments"), R"({"city":"Paris"})");
  EXPECT_EQ(str(calls.at(1).value(), "id"), "call_b");
  EXPECT_EQ(str(calls.at(1)["function"].value(), "arguments"), "{}");
}

TEST(ReadResponseStream, PartialLastEventIgnored) {
  const std::string sse =
      "data: {\"id\":\"c2\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ab\"}}]}\n\n"
      "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cd\"}}]}\n\n"
      "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"XY\"},\"finish_reason\":\"stop\"}]}";
  auto v = read_response(sse, true);
  EXPECT_EQ(v.output_json, R"([{"role":"assistant","content":"abcd"}])");
  EXPECT_TRUE(v.finish_reasons.empty());
  // Cut in the middle of the JSON too.
  auto w = read_response(sse.substr(0, sse.size() - 20), true);
  EXPECT_EQ(w.output_json, R"([{"role":"assistant","content":"abcd"}])");
}

TEST(ReadResponseStream, IdAndModelFromFirstChunkThatHasThem) {
  const std::string sse =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
      "data: {\"id\":\"late\",\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
      "data: {\"id\":\"later\",\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}]}\n\n";
  auto v = read_response(sse, true);
  EXPECT_EQ(v.id, "late");
  EXPECT_EQ(v.model, "m1");
  EXPECT_EQ(v.output_json, R"([{"role":"assistant","content":"abc"}])");
}

TEST(ReadResponseStream, ErrorEventsAndGarbageAreSkipped) {
  const std::string sse =
      "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"
      "data: not json at all\n\n"
      "data: {\"error\":{\"message\":\"upstream died\",\"type\":\"server_error\"}}\n\n"
      "data:[DONE]\n\n";
  auto v = read_response(sse, true);
  EXPECT_EQ(v.output_json, R"([{"role":"assistant","content":"ok"}])");
  EXPECT_EQ(read_response("", true).output_json, "");
  EXPECT_EQ(read_response("data: [DONE]\n\n", true).output_json, "");
}

TEST(ReadResponseStream, AnthropicEvents) {
  const std::string sse =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"model\":\"claude-x\"}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu\",\"name\":\"f\",\"input\":{}}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"2}\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto v = read_response(sse, true);
  EXPECT_EQ(v.id, "msg_9");
  EXPECT_EQ(v.model, "claude-x");
  EXPECT_EQ(v.finish_reasons, std::vector<std::string>{"tool_use"});
  dom::parser p;
  auto out = parse(p, v.output_json);
  EXPECT_EQ(str(out.at(0).value(), "content"), "Hi ");
  EXPECT_EQ(str(out.at(0)["tool_calls"].at(0)["function"].value(), "arguments"), R"({"a":2})");
}

// ---- read_metadata ------------------------------------------------------------------------

TEST(ReadMetadata, Fields) {
  auto m = read_metadata(
      R"({"trace_name":"tn","generation_name":"gn","session_id":"s1","trace_user_id":"u9","trace_version":"v2",)"
      R"("trace_release":"r3","tags":["a",7,"b",null],"trace_metadata":{"env":"prod","n":1},"other":true})");
  EXPECT_EQ(m.trace_name, "tn");
  EXPECT_EQ(m.generation_name, "gn");
  EXPECT_EQ(m.session_id, "s1");
  EXPECT_EQ(m.trace_user_id, "u9");
  EXPECT_EQ(m.trace_version, "v2");
  EXPECT_EQ(m.trace_release, "r3");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(m.trace_metadata_json, R"({"env":"prod","n":1})");
}

TEST(ReadMetadata, InvalidOrWrongTypesGiveEmpty) {
  auto m = read_metadata(R"({"trace_name":5,"tags":"x","trace_metadata":[1]})");
  EXPECT_EQ(m.trace_name, "");
  EXPECT_TRUE(m.tags.empty());
  EXPECT_EQ(m.trace_metadata_json, "");
  auto n = read_metadata(R"({"trace_name":"cut)");
  EXPECT_EQ(n.trace_name, "");
  EXPECT_EQ(read_metadata("").session_id, "");
}

// ---- truncate_utf8 ------------------------------------------------------------------------

TEST(TruncateUtf8, CutsAtCharacterBoundary) {
  std::string a = "abcdef";
  EXPECT_FALSE(truncate_utf8(a, 6));
  EXPECT_EQ(a, "abcdef");
  EXPECT_TRUE(truncate_utf8(a, 4));
  EXPECT_EQ(a, "abcd");

  const std::string mixed = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";  // a é € 😀 (1+2+3+4 bytes)
  const std::pair<std::size_t, std::string_view> cases[] = {
      {0, ""}, {1, "a"}, {2, "a"}, {3, "a\xc3\xa9"}, {4, "a\xc3\xa9"}, {5, "a\xc3\xa9"},
      {6, "a\xc3\xa9\xe2\x82\xac"}, {7, "a\xc3\xa9\xe2\x82\xac"}, {9, "a\xc3\xa9\xe2\x82\xac"},
  };
  for (auto [max, want] : cases) {
    std::string s = mixed;
    EXPECT_TRUE(truncate_utf8(s, max));
    EXPECT_EQ(s, want) << "max " << max;
    EXPECT_TRUE(simdjson::validate_utf8(s.data(), s.size()));
  }
  std::string whole = mixed;
  EXPECT_FALSE(truncate_utf8(whole, 10));
  EXPECT_EQ(whole, mixed);
}

}  // namespace
}  // namespace gw::tracing
