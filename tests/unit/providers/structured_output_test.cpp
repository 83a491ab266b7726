// Structured output (response_format json_object / json_schema) on Anthropic and Bedrock
// Converse, emulated as LiteLLM does with a forced tool named json_tool_call: the
// request gets the tool (and tool_choice), the answer's tool input becomes the content
// (plain and streamed) with finish_reason "stop". Payloads are shaped after what the
// OpenAI SDK's parse() sends and what Anthropic and Bedrock answer to forced tool use.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "gw/providers/anthropic.hpp"
#include "gw/providers/bedrock.hpp"
#include "gw/providers/eventstream.hpp"
#include "test_helpers.hpp"

namespace gw::providers {
namespace {

using namespace gw::test;

bool has(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// What openai-python's client.beta.chat.completions.parse(response_format=CalendarEvent) sends.
const std::string k_schema =
    R"json({"properties":{"name":{"title":"Name","type":"string"},"date":{"title":"Date","type":"string"},)json"
    R"json("participants":{"items":{"type":"string"},"title":"Participants","type":"array"}},)json"
    R"json("required":["name","date","participants"],"title":"CalendarEvent","type":"object","additionalProperties":false})json";

std::string parse_request(std::string extra = "") {
  return R"json({"model":"claude","messages":[{"role":"system","content":"Extract the event information."},)json"
         R"json({"role":"user","content":"Alice and Bob are going to a science fair on Friday."}],)json"
         R"json("response_format":{"type":"json_schema","json_schema":{"name":"CalendarEvent","strict":true,"schema":)json" +
         k_schema + "}}" + extra + "}";
}

const std::string k_weather_tool =
    R"json({"type":"function","function":{"name":"get_weather","description":"Weather of a city",)json"
    R"json("parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}})json";

const std::string k_default_description = "Respond with a JSON object that follows the input schema.";

/// The chunks of an OpenAI SSE stream, reassembled.
struct openai_stream {
  std::string content, finish, problem;
  int tool_deltas = 0, chunks = 0;
  bool done = false;
};

openai_stream read_stream(std::string_view sse) {
  openai_stream s;
  while (!sse.empty()) {
    auto end = sse.find("\n\n");
    if (end == std::string_view::npos) {
      s.problem = "unterminated event";
      break;
    }
    std::string_view ev = sse.substr(0, end);
    sse.remove_prefix(end + 2);
    if (ev.substr(0, 6) != "data: ") {
      s.problem = "not a data line";
      break;
    }
    ev.remove_prefix(6);
    if (ev == "[DONE]") {
      s.done = true;
      continue;
    }
    json_doc d(ev);
    if (!d.ok()) {
      s.problem = "bad JSON chunk";
      break;
    }
    ++s.chunks;
    if (!d.has("/choices/0")) continue;
    if (d.has("/choices/0/delta/content") && !d.is_null("/choices/0/delta/content"))
      s.content += d.str("/choices/0/delta/content");
    if (d.has("/choices/0/delta/tool_calls")) ++s.tool_deltas;
    if (!d.is_null("/choices/0/finish_reason")) s.finish = d.str("/choices/0/finish_reason");
  }
  return s;
}

// =================================================================== Anthropic

translate_context actx(bool stream = false) {
  translate_context c = make_context("claude-sonnet-4-5", "my-claude", "chatcmpl-so", stream, true);
  c.default_max_tokens = 1024;
  return c;
}

TEST(AnthropicStructuredOutput, JsonSchemaBecomesForcedToolWithTheSchemaCopied) {
  auto c = actx();
  auto r = to_anthropic(c, parse_request());
  ASSERT_TRUE(r.request) << r.error->message;
  EXPECT_TRUE(c.json_tool_call);
  EXPECT_EQ(r.request->body,
            R"json({"model":"claude-sonnet-4-5","max_tokens":1024,"system":"Extract the event information.",)json"
            R"json("messages":[{"role":"user","content":[{"type":"text","text":"Alice and Bob are going to a science fair on Friday."}]}],)json"
            R"json("tools":[{"name":"json_tool_call","description":")json" + k_default_description +
            R"json(","input_schema":)json" + k_schema + "}]," +
            R"json("tool_choice":{"type":"tool","name":"json_tool_call"}})json");
}

TEST(AnthropicStructuredOutput, JsonObjectTextDescriptionAndSchemaWithoutType) {
  auto c = actx();
  json_doc o(body_of(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})json")));
  EXPECT_TRUE(c.json_tool_call);
  EXPECT_EQ(o.raw("/tools"),
            R"json([{"name":"json_tool_call","description":")json" + k_default_description +
                R"json(","input_schema":{"type":"object","additionalProperties":true,"properties":{}}}])json");
  EXPECT_EQ(o.raw("/tool_choice"), R"json({"type":"tool","name":"json_tool_call"})json");

  // text: nothing added, and a context reused from a JSON request is reset.
  json_doc t(body_of(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})json")));
  EXPECT_FALSE(c.json_tool_call);
  EXPECT_FALSE(t.has("/tools"));
  EXPECT_FALSE(t.has("/tool_choice"));

  // The schema's description describes the tool; a schema without "type" gets "object".
  json_doc d(body_of(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",
    "json_schema":{"name":"R","description":"A rating.","schema":{"properties":{"stars":{"type":"integer"}}}}}})json")));
  EXPECT_EQ(d.str("/tools/0/description"), "A rating.");
  EXPECT_EQ(d.raw("/tools/0/input_schema"), R"json({"type":"object","properties":{"stars":{"type":"integer"}}})json");
  json_doc e(body_of(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"E","schema":{}}}})json")));
  EXPECT_EQ(e.raw("/tools/0/input_schema"), R"json({"type":"object"})json");
}

TEST(AnthropicStructuredOutput, ClientToolsAreKeptAndItsToolChoiceWins) {
  struct tc {
    std::string extra;
    const char* choice;
  } cases[] = {
      // No tool_choice: the JSON tool is forced (LiteLLM).
      {",\"tools\":[" + k_weather_tool + "]", R"json({"type":"tool","name":"json_tool_call"})json"},
      // The client's own choice is kept, as LiteLLM applies tool_choice after response_format.
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"auto\"", R"json({"type":"auto"})json"},
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"required\"", R"json({"type":"any"})json"},
      {",\"tools\":[" + k_weather_tool + R"json(],"tool_choice":{"type":"function","function":{"name":"get_weather"}})json",
       R"json({"type":"tool","name":"get_weather"})json"},
      // "none": none of the client's tools; the answer still comes through the JSON tool.
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"none\"", R"json({"type":"tool","name":"json_tool_call"})json"},
      {",\"tool_choice\":\"none\"", R"json({"type":"tool","name":"json_tool_call"})json"},
      {",\"tools\":[" + k_weather_tool + "],\"parallel_tool_calls\":false",
       R"json({"type":"tool","name":"json_tool_call","disable_parallel_tool_use":true})json"},
  };
  for (auto& k : cases) {
    auto c = actx();
    json_doc d(body_of(to_anthropic(c, parse_request(k.extra))));
    EXPECT_TRUE(c.json_tool_call);
    EXPECT_EQ(d.raw("/tool_choice"), k.choice) << k.extra;
    bool client_tools = has(k.extra, "get_weather");
    EXPECT_EQ(d.str(client_tools ? "/tools/1/name" : "/tools/0/name"), "json_tool_call") << k.extra;
    EXPECT_EQ(d.raw(client_tools ? "/tools/1/input_schema" : "/tools/0/input_schema"), k_schema) << k.extra;
    if (client_tools) {
      EXPECT_EQ(d.str("/tools/0/name"), "get_weather");
      EXPECT_EQ(d.raw("/tools/0/input_schema"),
                R"json({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})json");
    }
    EXPECT_FALSE(d.has(client_tools ? "/tools/2" : "/tools/1")) << k.extra;
  }
}

TEST(AnthropicStructuredOutput, BadResponseFormatsAre400) {
  struct bad {
    std::string rf;
    const char* says;
  } cases[] = {
      {R"json("json")json", "'response_format'"},
      {R"json({"type":"json_schema"})json", "'response_format.json_schema'"},
      {R"json({"type":"json_schema","json_schema":"x"})json", "'response_format.json_schema'"},
      {R"json({"type":"json_schema","json_schema":{"name":"N"}})json", "'response_format.json_schema.schema'"},
      {R"json({"type":"json_schema","json_schema":{"name":"N","schema":[1]}})json", "'response_format.json_schema.schema'"},
      {R"json({"type":"json_schema","json_schema":{"name":"N","schema":{"type":"array","items":{"type":"string"}}}})json",
       "JSON object"},
      {R"json({"type":"json_schema","json_schema":{"name":"N","schema":{"type":["object","null"]}}})json", "JSON object"},
      {R"json({"type":"yaml"})json", "'yaml'"},
      {R"json({"type":7})json", "response_format.type"},
  };
  for (auto& k : cases) {
    auto c = actx();
    auto e = error_of(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],"response_format":)json" + k.rf + "}"));
    EXPECT_EQ(e.status, 400) << k.rf;
    EXPECT_EQ(e.type, "invalid_request_error") << k.rf;
    EXPECT_TRUE(has(e.message, k.says)) << k.rf << " -> " << e.message;
    EXPECT_FALSE(c.json_tool_call);
    json_doc d(e.json());
    EXPECT_EQ(d.str("/error/type"), "invalid_request_error");
  }
  // A client tool named like the emulation's would be ambiguous.
  auto e = error_of(to_anthropic(actx(), parse_request(
      R"json(,"tools":[{"type":"function","function":{"name":"json_tool_call","parameters":{"type":"object"}}}])json")));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "json_tool_call")) << e.message;
}

const char* k_anthropic_json_answer =
    R"json({"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
    "content":[{"type":"tool_use","id":"toolu_01D7FLrfh4GYq7yT1ULFeyMV","name":"json_tool_call",
      "input":{"name":"Science Fair","date":"Friday","participants":["Alice","Bob"]}}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":512,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":68}})json";

TEST(AnthropicStructuredOutput, AnswerToolInputBecomesContent) {
  auto c = actx();
  ASSERT_TRUE(to_anthropic(c, parse_request()).request);
  auto r = from_anthropic(c, 200, k_anthropic_json_answer);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"json({"id":"chatcmpl-so","object":"chat.completion","created":1700000000,"model":"my-claude",)json"
            R"json("choices":[{"index":0,"message":{"role":"assistant",)json"
            R"json("content":"{\"name\":\"Science Fair\",\"date\":\"Friday\",\"participants\":[\"Alice\",\"Bob\"]}",)json"
            R"json("refusal":null},"logprobs":null,"finish_reason":"stop"}],)json"
            R"json("usage":{"prompt_tokens":512,"completion_tokens":68,"total_tokens":580,)json"
            R"json("prompt_tokens_details":{"cached_tokens":0},"cache_creation_input_tokens":0,"cache_read_input_tokens":0}})json");
  EXPECT_EQ(r.tokens.prompt_tokens, 512);
  EXPECT_EQ(r.tokens.completion_tokens, 68);
  // The content is the JSON the schema describes.
  json_doc d(r.body);
  json_doc content(d.str("/choices/0/message/content"));
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(content.str("/participants/1"), "Bob");
}

TEST(AnthropicStructuredOutput, AnswerWithClientToolCallKeepsItAndTruncationStaysLength) {
  auto c = actx();
  ASSERT_TRUE(to_anthropic(c, parse_request(",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"required\"")).request);
  auto r = from_anthropic(c, 200, R"json({"type":"message","content":[{"type":"text","text":"Let me look."},
    {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
    {"type":"tool_use","id":"toolu_2","name":"json_tool_call","input":{"name":"x","date":"y","participants":[]}}],
    "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}})json");
  json_doc d(r.body);
  EXPECT_EQ(d.str("/choices/0/message/content"), R"json({"name":"x","date":"y","participants":[]})json");
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/function/name"), "get_weather");
  EXPECT_FALSE(d.has("/choices/0/message/tool_calls/1"));
  EXPECT_EQ(d.str("/choices/0/finish_reason"), "tool_calls");

  auto t = from_anthropic(c, 200, R"json({"type":"message","content":[{"type":"tool_use","id":"toolu_3",
    "name":"json_tool_call","input":{"name":"Sci"}}],"stop_reason":"max_tokens","usage":{"input_tokens":10,"output_tokens":5}})json");
  json_doc e(t.body);
  EXPECT_EQ(e.str("/choices/0/finish_reason"), "length");
  EXPECT_EQ(e.str("/choices/0/message/content"), R"json({"name":"Sci"})json");
}

TEST(AnthropicStructuredOutput, WithoutTheRequestAToolNamedSoStaysAToolCall) {
  // The same answer to a request that did not ask for JSON: an ordinary tool call.
  auto c = actx();
  ASSERT_TRUE(to_anthropic(c, R"json({"messages":[{"role":"user","content":"x"}],"tools":[)json" + k_weather_tool + "]}").request);
  EXPECT_FALSE(c.json_tool_call);
  json_doc d(from_anthropic(c, 200, k_anthropic_json_answer).body);
  EXPECT_TRUE(d.is_null("/choices/0/message/content"));
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/function/name"), "json_tool_call");
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/function/arguments"),
            R"json({"name":"Science Fair","date":"Friday","participants":["Alice","Bob"]})json");
  EXPECT_EQ(d.str("/choices/0/finish_reason"), "tool_calls");
}

const std::string k_anthropic_json_stream =
    "event: message_start\n"
    R"json(data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":512,"output_tokens":1},"content":[],"stop_reason":null}})json"
    "\n\n"
    "event: content_block_start\n"
    R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"json_tool_call","input":{}}})json"
    "\n\n"
    "event: ping\n"
    R"json(data: {"type": "ping"})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"name\": \"Science"}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":" Fair\", \"date\": \"Friday\", \"par"}})json"
    "\n\n"
    "event: content_block_delta\n"
    R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"ticipants\": [\"Alice\", \"Bob\"]}"}})json"
    "\n\n"
    "event: content_block_stop\n"
    R"json(data: {"type":"content_block_stop","index":0})json"
    "\n\n"
    "event: message_delta\n"
    R"json(data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":68}})json"
    "\n\n"
    "event: message_stop\n"
    R"json(data: {"type":"message_stop"})json"
    "\n\n";

TEST(AnthropicStructuredOutput, StreamedToolInputBecomesContentDeltas) {
  auto c = actx(true);
  ASSERT_TRUE(to_anthropic(c, parse_request(",\"stream\":true")).request);
  auto t = anthropic_stream_translator(c);
  std::string out;
  ASSERT_FALSE(t->feed(k_anthropic_json_stream, out));
  ASSERT_FALSE(t->finish(out));
  const std::string head =
      R"json(data: {"id":"chatcmpl-so","object":"chat.completion.chunk","created":1700000000,"model":"my-claude","choices":[{"index":0,"delta":)json";
  const std::string tail = R"json(}],"usage":null})json" "\n\n";
  EXPECT_EQ(out,
            head + R"json({"role":"assistant","content":""},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({"content":"{\"name\": \"Science"},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({"content":" Fair\", \"date\": \"Friday\", \"par"},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({"content":"ticipants\": [\"Alice\", \"Bob\"]}"},"logprobs":null,"finish_reason":null)json" + tail +
            head + R"json({},"logprobs":null,"finish_reason":"stop")json" + tail +
            R"json(data: {"id":"chatcmpl-so","object":"chat.completion.chunk","created":1700000000,"model":"my-claude","choices":[],)json"
            R"json("usage":{"prompt_tokens":512,"completion_tokens":68,"total_tokens":580,"prompt_tokens_details":{"cached_tokens":0},)json"
            R"json("cache_creation_input_tokens":0,"cache_read_input_tokens":0}})json" "\n\n"
            "data: [DONE]\n\n");
  auto s = read_stream(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.tool_deltas, 0);
  json_doc content(s.content);
  ASSERT_TRUE(content.ok()) << s.content;
  EXPECT_EQ(content.str("/name"), "Science Fair");
  EXPECT_EQ(t->tokens().completion_tokens, 68);

  // Byte by byte: the same.
  auto t1 = anthropic_stream_translator(c);
  std::string out1;
  for (char ch : k_anthropic_json_stream) ASSERT_FALSE(t1->feed(std::string_view(&ch, 1), out1));
  ASSERT_FALSE(t1->finish(out1));
  EXPECT_EQ(out1, out);
}

TEST(AnthropicStructuredOutput, StreamKeepsClientToolCallsAndPlainStreamsAreUnchanged) {
  // The model calls the client's tool first, then the JSON tool.
  const std::string mixed =
      "event: message_start\n"
      R"json(data: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":9,"output_tokens":1}}})json"
      "\n\n"
      "event: content_block_start\n"
      R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_w","name":"get_weather","input":{}}})json"
      "\n\n"
      "event: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Paris\"}"}})json"
      "\n\n"
      "event: content_block_start\n"
      R"json(data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_j","name":"json_tool_call","input":{}}})json"
      "\n\n"
      "event: content_block_delta\n"
      R"json(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}})json"
      "\n\n"
      "event: message_delta\n"
      R"json(data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}})json"
      "\n\n"
      "event: message_stop\n"
      R"json(data: {"type":"message_stop"})json"
      "\n\n";
  auto c = actx(true);
  ASSERT_TRUE(to_anthropic(c, parse_request(",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"required\"")).request);
  auto t = anthropic_stream_translator(c);
  std::string out;
  ASSERT_FALSE(t->feed(mixed, out));
  ASSERT_FALSE(t->finish(out));
  auto s = read_stream(out);
  EXPECT_EQ(s.content, R"json({"a":1})json");
  EXPECT_EQ(s.tool_deltas, 2);  // get_weather's start and arguments
  EXPECT_FALSE(has(out, "json_tool_call"));
  EXPECT_TRUE(has(out, R"json("function":{"name":"get_weather","arguments":""})json"));
  EXPECT_EQ(s.finish, "tool_calls");

  // The JSON stream for a request that did not ask for JSON: tool call deltas as before.
  auto plain = actx(true);
  auto u = anthropic_stream_translator(plain);
  std::string pout;
  ASSERT_FALSE(u->feed(k_anthropic_json_stream, pout));
  ASSERT_FALSE(u->finish(pout));
  auto p = read_stream(pout);
  EXPECT_EQ(p.content, "");
  EXPECT_EQ(p.tool_deltas, 4);  // the start, then three argument fragments
  EXPECT_EQ(p.finish, "tool_calls");
  EXPECT_TRUE(has(pout, R"json("function":{"name":"json_tool_call","arguments":""})json"));
}

// =================================================================== Bedrock Converse

translate_context bctx(std::string model = "anthropic.claude-3-5-sonnet-20240620-v1:0", bool stream = false) {
  return make_context(std::move(model), "claude", "chatcmpl-so", stream, true);
}

TEST(ConverseStructuredOutput, JsonSchemaBecomesForcedToolWithTheSchemaCopied) {
  auto c = bctx();
  auto r = to_converse(c, parse_request());
  ASSERT_TRUE(r.request) << r.error->message;
  EXPECT_TRUE(c.json_tool_call);
  EXPECT_EQ(r.request->body,
            R"({"messages":[{"role":"user","content":[{"text":"Alice and Bob are going to a science fair on Friday."}]}],)"
            R"("system":[{"text":"Extract the event information."}],)"
            R"("toolConfig":{"tools":[{"toolSpec":{"name":"json_tool_call","description":")" + k_default_description +
            R"(","inputSchema":{"json":)" + k_schema + "}}}]," +
            R"("toolChoice":{"tool":{"name":"json_tool_call"}}}})");
}

TEST(ConverseStructuredOutput, SpecificToolChoiceOnlyForModelsThatTakeIt) {
  struct m {
    const char* model;
    bool forced;
  } cases[] = {
      {"anthropic.claude-3-5-sonnet-20240620-v1:0", true},
      {"us.anthropic.claude-sonnet-4-20250514-v1:0", true},
      {"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", true},
      {"amazon.nova-pro-v1:0", true},
      {"mistral.mistral-large-2407-v1:0", true},
      {"meta.llama3-1-70b-instruct-v1:0", false},
      {"cohere.command-r-plus-v1:0", false},
      {"mistral.mistral-small-2402-v1:0", false},
      {"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", false},
  };
  for (auto& k : cases) {
    auto c = bctx(k.model);
    json_doc d(body_of(to_converse(c, parse_request())));
    EXPECT_TRUE(c.json_tool_call);
    EXPECT_EQ(d.str("/toolConfig/tools/0/toolSpec/name"), "json_tool_call") << k.model;
    EXPECT_EQ(d.raw("/toolConfig/tools/0/toolSpec/inputSchema/json"), k_schema) << k.model;
    if (k.forced) {
      EXPECT_EQ(d.raw("/toolConfig/toolChoice"), R"({"tool":{"name":"json_tool_call"}})") << k.model;
    } else {
      EXPECT_FALSE(d.has("/toolConfig/toolChoice")) << k.model;
    }
  }
}

TEST(ConverseStructuredOutput, JsonObjectTextAndClientTools) {
  auto c = bctx();
  json_doc o(body_of(to_converse(c, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})")));
  EXPECT_TRUE(c.json_tool_call);
  EXPECT_EQ(o.raw("/toolConfig/tools/0/toolSpec/inputSchema/json"),
            R"({"type":"object","additionalProperties":true,"properties":{}})");
  json_doc t(body_of(to_converse(c, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})")));
  EXPECT_FALSE(c.json_tool_call);
  EXPECT_FALSE(t.has("/toolConfig"));

  struct tc {
    std::string extra;
    const char* choice;  // nullptr: none
    bool client_tool;
  } cases[] = {
      {",\"tools\":[" + k_weather_tool + "]", R"({"tool":{"name":"json_tool_call"}})", true},
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"auto\"", R"({"auto":{}})", true},
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"required\"", R"({"any":{}})", true},
      {",\"tools\":[" + k_weather_tool + R"(],"tool_choice":{"type":"function","function":{"name":"get_weather"}})",
       R"({"tool":{"name":"get_weather"}})", true},
      // "none" drops the client's tools (as without response_format); the JSON tool is forced.
      {",\"tools\":[" + k_weather_tool + "],\"tool_choice\":\"none\"", R"({"tool":{"name":"json_tool_call"}})", false},
  };
  for (auto& k : cases) {
    auto cc = bctx();
    json_doc d(body_of(to_converse(cc, parse_request(k.extra))));
    EXPECT_EQ(d.raw("/toolConfig/toolChoice"), k.choice) << k.extra;
    const char* json_at = k.client_tool ? "/toolConfig/tools/1/toolSpec" : "/toolConfig/tools/0/toolSpec";
    EXPECT_EQ(d.str(std::string(json_at) + "/name"), "json_tool_call") << k.extra;
    EXPECT_EQ(d.raw(std::string(json_at) + "/inputSchema/json"), k_schema) << k.extra;
    if (k.client_tool) {
      EXPECT_EQ(d.str("/toolConfig/tools/0/toolSpec/name"), "get_weather") << k.extra;
    }
    EXPECT_FALSE(d.has(k.client_tool ? "/toolConfig/tools/2" : "/toolConfig/tools/1")) << k.extra;
  }
  // Llama: the client's tools stay, no toolChoice when the client set none.
  auto l = bctx("meta.llama3-1-70b-instruct-v1:0");
  json_doc d(body_of(to_converse(l, parse_request(",\"tools\":[" + k_weather_tool + "]"))));
  EXPECT_FALSE(d.has("/toolConfig/toolChoice"));
  EXPECT_EQ(d.str("/toolConfig/tools/1/toolSpec/name"), "json_tool_call");
}

TEST(ConverseStructuredOutput, BadResponseFormatsAre400) {
  struct bad {
    std::string rf;
    const char* says;
  } cases[] = {
      {R"("json")", "'response_format'"},
      {R"({"type":"json_schema"})", "'response_format.json_schema'"},
      {R"({"type":"json_schema","json_schema":{"name":"N"}})", "'response_format.json_schema.schema'"},
      {R"({"type":"json_schema","json_schema":{"name":"N","schema":"{}"}})", "'response_format.json_schema.schema'"},
      {R"({"type":"json_schema","json_schema":{"name":"N","schema":{"type":"string"}}})", "JSON object"},
      {R"({"type":"regex"})", "'regex'"},
  };
  for (auto& k : cases) {
    auto c = bctx();
    auto e = error_of(to_converse(c, R"({"messages":[{"role":"user","content":"x"}],"response_format":)" + k.rf + "}"));
    EXPECT_EQ(e.status, 400) << k.rf;
    EXPECT_EQ(e.type, "invalid_request_error") << k.rf;
    EXPECT_TRUE(has(e.message, k.says)) << k.rf << " -> " << e.message;
    EXPECT_FALSE(c.json_tool_call);
  }
  auto e = error_of(to_converse(bctx(), parse_request(
      R"(,"tools":[{"type":"function","function":{"name":"json_tool_call","parameters":{"type":"object"}}}])")));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(has(e.message, "json_tool_call")) << e.message;
}

const char* k_converse_json_answer =
    R"({"metrics":{"latencyMs":1830},"output":{"message":{"content":[{"toolUse":{
      "input":{"name":"Science Fair","date":"Friday","participants":["Alice","Bob"]},
      "name":"json_tool_call","toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"}}],"role":"assistant"}},
      "stopReason":"tool_use","usage":{"inputTokens":412,"outputTokens":64,"totalTokens":476}})";

TEST(ConverseStructuredOutput, AnswerToolInputBecomesContent) {
  auto c = bctx();
  ASSERT_TRUE(to_converse(c, parse_request()).request);
  auto r = from_converse(c, 200, k_converse_json_answer, "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"id":"chatcmpl-so","object":"chat.completion","created":1700000000,"model":"claude",)"
            R"("choices":[{"index":0,"message":{"role":"assistant",)"
            R"("content":"{\"name\":\"Science Fair\",\"date\":\"Friday\",\"participants\":[\"Alice\",\"Bob\"]}",)"
            R"("refusal":null},"logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":412,"completion_tokens":64,"total_tokens":476,"prompt_tokens_details":{"cached_tokens":0}}})");
  EXPECT_EQ(r.tokens.prompt_tokens, 412);
  EXPECT_EQ(r.tokens.completion_tokens, 64);

  // Not asked for: an ordinary tool call, as before.
  auto plain = bctx();
  json_doc d(from_converse(plain, 200, k_converse_json_answer, "").body);
  EXPECT_TRUE(d.is_null("/choices/0/message/content"));
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/id"), "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
  EXPECT_EQ(d.str("/choices/0/message/tool_calls/0/function/name"), "json_tool_call");
  EXPECT_EQ(d.str("/choices/0/finish_reason"), "tool_calls");

  // With a client tool call beside it: that call stays, finish_reason tool_calls.
  auto m = from_converse(c, 200, R"({"output":{"message":{"role":"assistant","content":[
      {"toolUse":{"toolUseId":"t1","name":"get_weather","input":{"city":"Paris"}}},
      {"toolUse":{"toolUseId":"t2","name":"json_tool_call","input":{"a":1}}}]}},"stopReason":"tool_use"})", "");
  json_doc md(m.body);
  EXPECT_EQ(md.str("/choices/0/message/content"), R"({"a":1})");
  EXPECT_EQ(md.str("/choices/0/message/tool_calls/0/function/name"), "get_weather");
  EXPECT_FALSE(md.has("/choices/0/message/tool_calls/1"));
  EXPECT_EQ(md.str("/choices/0/finish_reason"), "tool_calls");
}

std::string converse_json_stream() {
  std::string s;
  s += event("messageStart", R"({"p":"abcdefghijklmnopqrstuvwxyzABCDEF","role":"assistant"})");
  s += event("contentBlockStart",
             R"({"contentBlockIndex":0,"p":"abcdefghijklmnop","start":{"toolUse":{"name":"json_tool_call","toolUseId":"tooluse_S5dbBEdWTFmpoX3ZSXXcXw"}}})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":""}},"p":"abcdefgh"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"name\": \"Science Fair\""}},"p":"abc"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":", \"date\": \"Friday\", \"participants\": [\"Alice\", \"Bob\"]}"}},"p":"ab"})");
  s += event("contentBlockStop", R"({"contentBlockIndex":0,"p":"abcdefghijklmnopq"})");
  s += event("messageStop", R"({"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS","stopReason":"tool_use"})");
  s += event("metadata",
             R"({"metrics":{"latencyMs":1622},"p":"abcdefghijkl","usage":{"inputTokens":412,"outputTokens":64,"totalTokens":476}})");
  return s;
}

TEST(ConverseStructuredOutput, StreamedToolInputBecomesContentDeltas) {
  auto c = bctx("anthropic.claude-3-5-sonnet-20240620-v1:0", true);
  ASSERT_TRUE(to_converse(c, parse_request(",\"stream\":true")).request);
  auto t = converse_stream_translator(c);
  std::string out;
  ASSERT_FALSE(t->feed(converse_json_stream(), out));
  ASSERT_FALSE(t->finish(out));
  const std::string head =
      R"(data: {"id":"chatcmpl-so","object":"chat.completion.chunk","created":1700000000,"model":"claude","choices":[{"index":0,"delta":)";
  const std::string tail = R"(}],"usage":null})" "\n\n";
  EXPECT_EQ(out,
            head + R"({"role":"assistant","content":""},"logprobs":null,"finish_reason":null)" + tail +
            head + R"({"content":"{\"name\": \"Science Fair\""},"logprobs":null,"finish_reason":null)" + tail +
            head + R"({"content":", \"date\": \"Friday\", \"participants\": [\"Alice\", \"Bob\"]}"},"logprobs":null,"finish_reason":null)" + tail +
            head + R"({},"logprobs":null,"finish_reason":"stop")" + tail +
            R"(data: {"id":"chatcmpl-so","object":"chat.completion.chunk","created":1700000000,"model":"claude","choices":[],)"
            R"("usage":{"prompt_tokens":412,"completion_tokens":64,"total_tokens":476,"prompt_tokens_details":{"cached_tokens":0}}})" "\n\n"
            "data: [DONE]\n\n");
  auto s = read_stream(out);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.tool_deltas, 0);
  json_doc content(s.content);
  ASSERT_TRUE(content.ok()) << s.content;
  EXPECT_EQ(content.str("/participants/0"), "Alice");

  // Any split gives the same.
  std::string stream = converse_json_stream();
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    auto u = converse_stream_translator(c);
    std::string o;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(0, 41)(rng);
      ASSERT_FALSE(u->feed(std::string_view(stream).substr(pos, n), o));
      pos += n;
    }
    ASSERT_FALSE(u->finish(o));
    EXPECT_EQ(o, out);
  }
}

TEST(ConverseStructuredOutput, StreamWithoutTheRequestKeepsToolCallDeltas) {
  auto c = bctx("anthropic.claude-3-5-sonnet-20240620-v1:0", true);
  auto t = converse_stream_translator(c);
  std::string out;
  ASSERT_FALSE(t->feed(converse_json_stream(), out));
  ASSERT_FALSE(t->finish(out));
  auto s = read_stream(out);
  EXPECT_EQ(s.content, "");
  EXPECT_EQ(s.tool_deltas, 4);  // the start, then the three argument fragments (the first empty)
  EXPECT_EQ(s.finish, "tool_calls");
  EXPECT_TRUE(has(out, R"("id":"tooluse_S5dbBEdWTFmpoX3ZSXXcXw","type":"function","function":{"name":"json_tool_call")"));
}

}  // namespace
}  // namespace gw::providers
