// Text completions through chat: completions request -> chat request (and what is
// refused), chat answer -> text_completion, and chat chunks -> completions chunks, fed
// through the real Converse and Anthropic stream translators with recorded payloads.
#include "gw/providers/completion_bridge.hpp"

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

translate_context ctx(bool stream = false, bool include_usage = false) {
  return make_context("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude", "cmpl-1", stream, include_usage);
}

// ------------------------------------------------------------------ request

TEST(CompletionToChat, PromptBecomesOneUserMessageAndTheRestIsKept) {
  auto r = completion_to_chat(
      R"({"model":"claude","prompt":"Say \"hi\"","max_tokens":7,"temperature":0.5,"top_p":1,"stop":["\n"],"n":1,)"
      R"("stream":true,"stream_options":{"include_usage":true},"user":"u1","metadata":{"k":"v"},"seed":42,)"
      R"("presence_penalty":0.1,"frequency_penalty":-0.5,"top_k":3})",
      "Bedrock");
  ASSERT_TRUE(r.body) << r.error->message;
  EXPECT_FALSE(r.error);
  EXPECT_EQ(*r.body,
            R"({"model":"claude","messages":[{"role":"user","content":"Say \"hi\""}],"max_tokens":7,"temperature":0.5,)"
            R"("top_p":1,"stop":["\n"],"n":1,"stream":true,"stream_options":{"include_usage":true},"user":"u1",)"
            R"("metadata":{"k":"v"},"seed":42,"presence_penalty":0.1,"frequency_penalty":-0.5,"top_k":3})");
}

TEST(CompletionToChat, ArrayOfOnePromptAndHarmlessCompletionsParameters) {
  auto r = completion_to_chat(
      R"({"prompt":["once"],"suffix":null,"echo":false,"best_of":1,"logprobs":null,"model":"m","tools":null})",
      "Anthropic");
  ASSERT_TRUE(r.body) << r.error->message;
  // The completions-only members are not passed on to chat ("logprobs" is a boolean there).
  EXPECT_EQ(*r.body, R"({"messages":[{"role":"user","content":"once"}],"model":"m"})");
  r = completion_to_chat(R"({"prompt":"x","suffix":"","logprobs":false})", "Bedrock");
  ASSERT_TRUE(r.body);
  EXPECT_EQ(*r.body, R"({"messages":[{"role":"user","content":"x"}]})");
}

TEST(CompletionToChat, ChatBodyTranslatesForBothProviders) {
  auto chat = completion_to_chat(R"({"model":"claude","prompt":"Hello","max_tokens":5,"stop":"END"})", "Bedrock");
  ASSERT_TRUE(chat.body);
  auto c = ctx();
  EXPECT_EQ(body_of(to_converse(c, *chat.body)), R"({"messages":[{"role":"user","content":[{"text":"Hello"}]}],)"
                                                 R"("inferenceConfig":{"maxTokens":5,"stopSequences":["END"]}})");
  auto a = body_of(to_anthropic(c, *chat.body));
  json_doc d(a);
  EXPECT_EQ(d.raw("/messages"), R"([{"role":"user","content":[{"type":"text","text":"Hello"}]}])") << a;
  EXPECT_EQ(d.num("/max_tokens"), 5);
}

TEST(CompletionToChat, RefusesWhatChatCannotTake) {
  struct tc {
    const char* body;
    const char* param;
    const char* says;
  } cases[] = {
      {R"({"prompt":["a","b"]})", "prompt", "one prompt per request"},
      {R"({"prompt":[1,2,3]})", "prompt", "token-id"},
      {R"({"prompt":[[1,2],[3]]})", "prompt", "token-id"},
      {R"({"prompt":["a",[1]]})", "prompt", "token-id"},
      {R"({"prompt":"x","suffix":"tail"})", "suffix", "'suffix'"},
      {R"({"prompt":"x","echo":true})", "echo", "'echo'"},
      {R"({"prompt":"x","best_of":3})", "best_of", "'best_of'"},
      {R"({"prompt":"x","logprobs":0})", "logprobs", "'logprobs'"},
      {R"({"prompt":"x","logprobs":5})", "logprobs", "'logprobs'"},
  };
  for (const auto& c : cases) {
    auto r = completion_to_chat(c.body, "Anthropic");
    ASSERT_TRUE(r.error) << c.body;
    EXPECT_FALSE(r.body) << c.body;
    EXPECT_EQ(r.error->status, 400) << c.body;
    EXPECT_EQ(r.error->type, "invalid_request_error") << c.body;
    EXPECT_EQ(r.error->code, "unsupported_parameter") << c.body;
    EXPECT_EQ(r.error->param, c.param) << c.body;
    EXPECT_TRUE(has(r.error->message, "Anthropic deployments")) << r.error->message;
    EXPECT_TRUE(has(r.error->message, c.says)) << r.error->message;
    EXPECT_TRUE(has(r.error->json(), std::string(R"("param":")") + c.param + "\"")) << r.error->json();
  }
  // Chat-only members: no tools, no conversation in a completion.
  for (const char* key : {"messages", "tools", "tool_choice", "functions", "function_call", "response_format"}) {
    auto r = completion_to_chat(std::string(R"({"prompt":"x",")") + key + R"(":[]})", "Bedrock");
    ASSERT_TRUE(r.error) << key;
    EXPECT_EQ(r.error->status, 400);
    EXPECT_EQ(r.error->param, key);
    EXPECT_TRUE(has(r.error->message, "/v1/chat/completions")) << r.error->message;
  }
}

TEST(CompletionToChat, InvalidBodiesAre400sWithParam) {
  struct tc {
    const char* body;
    const char* param;
    const char* says;
  } cases[] = {
      {"{", "", "parse the JSON"},
      {"[1]", "", "JSON object"},
      {"", "", "parse the JSON"},
      {R"({"model":"m"})", "prompt", "Missing required parameter: 'prompt'"},
      {R"({"prompt":null})", "prompt", "Missing required parameter: 'prompt'"},
      {R"({"prompt":5})", "prompt", "expected a string or an array of one string"},
      {R"({"prompt":{}})", "prompt", "expected a string or an array of one string"},
      {R"({"prompt":[]})", "prompt", "empty array"},
      {R"({"prompt":[null]})", "prompt", "expected a string or an array of one string"},
      {R"({"prompt":"a","prompt":"b"})", "prompt", "more than once"},
      {R"({"prompt":"x","echo":"yes"})", "echo", "expected a boolean"},
      {R"({"prompt":"x","best_of":"2"})", "best_of", "expected an integer"},
      {R"({"prompt":"x","best_of":0})", "best_of", ">= 1"},
  };
  for (const auto& c : cases) {
    auto r = completion_to_chat(c.body, "Bedrock");
    ASSERT_TRUE(r.error) << c.body;
    EXPECT_FALSE(r.body) << c.body;
    EXPECT_EQ(r.error->status, 400) << c.body;
    EXPECT_EQ(r.error->param, c.param) << c.body;
    EXPECT_TRUE(has(r.error->message, c.says)) << c.body << ": " << r.error->message;
    json_doc d(r.error->json());
    ASSERT_TRUE(d.ok());
    if (*c.param)
      EXPECT_EQ(d.str("/error/param"), c.param);
    else
      EXPECT_TRUE(d.is_null("/error/param"));
  }
}

// ------------------------------------------------------------------ answer

TEST(CompletionFromChat, ConverseAnswerBecomesTextCompletion) {
  auto chat = from_converse(ctx(), 200,
                            R"({"output":{"message":{"role":"assistant","content":[{"text":"It's 14"},{"text":"°C."}]}},
      "stopReason":"max_tokens","usage":{"inputTokens":120,"outputTokens":9,"totalTokens":129},"metrics":{"latencyMs":412}})",
                            "");
  ASSERT_EQ(chat.status, 200) << chat.body;
  auto r = completion_from_chat(chat);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(
      r.body,
      R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"claude",)"
      R"("choices":[{"text":"It's 14°C.","index":0,"logprobs":null,"finish_reason":"length"}],)"
      R"("usage":{"prompt_tokens":120,"completion_tokens":9,"total_tokens":129,"prompt_tokens_details":{"cached_tokens":0}}})");
  // The tokens the gateway charges stay the chat answer's.
  EXPECT_EQ(r.tokens.prompt_tokens, 120);
  EXPECT_EQ(r.tokens.completion_tokens, 9);
}

TEST(CompletionFromChat, AnthropicAnswerWithReasoningKeepsTextOnly) {
  auto c = ctx();
  c.response_model = "my-claude";
  auto chat =
      from_anthropic(c, 200, R"json({"type":"message","content":[{"type":"thinking","thinking":"hmm","signature":"s"},
    {"type":"text","text":"Hello "},{"type":"text","text":"world"}],
    "stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}})json");
  auto r = completion_from_chat(chat);
  json_doc d(r.body);
  ASSERT_TRUE(d.ok()) << r.body;
  EXPECT_EQ(d.str("/object"), "text_completion");
  EXPECT_EQ(d.str("/id"), "cmpl-1");
  EXPECT_EQ(d.str("/model"), "my-claude");
  EXPECT_EQ(d.str("/choices/0/text"), "Hello world");
  EXPECT_EQ(d.str("/choices/0/finish_reason"), "stop");
  EXPECT_TRUE(d.is_null("/choices/0/logprobs"));
  EXPECT_FALSE(d.has("/choices/0/message"));
  EXPECT_FALSE(has(r.body, "hmm"));
  EXPECT_EQ(d.num("/usage/prompt_tokens"), 3);
  EXPECT_EQ(d.num("/usage/completion_tokens"), 2);
  EXPECT_EQ(r.tokens.completion_tokens, 2);
}

TEST(CompletionFromChat, NullContentIsEmptyText) {
  translated_response chat;
  chat.body =
      R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]})";
  auto r = completion_from_chat(chat);
  EXPECT_EQ(
      r.body,
      R"({"id":"x","object":"text_completion","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]})");
}

TEST(CompletionFromChat, ErrorsPassUnchangedAndUnreadableIs502) {
  auto err = from_converse(ctx(), 429, R"({"message":"Too many requests"})", "ThrottlingException");
  ASSERT_EQ(err.status, 429);
  auto r = completion_from_chat(err);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.body, err.body);
  for (const char* body : {"nope", "[]", R"({"choices":{}})", R"({"choices":[1]})"}) {
    translated_response bad;
    bad.body = body;
    auto b = completion_from_chat(bad);
    EXPECT_EQ(b.status, 502) << body;
    EXPECT_TRUE(has(b.body, "text completion")) << b.body;
  }
}

// ------------------------------------------------------------------ stream

/// A ConverseStream answer as Bedrock sends it (recorded, paddings "p" included).
std::string converse_stream() {
  std::string s;
  s += event("messageStart", R"({"p":"abcdefghij","role":"assistant"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"abc"})");
  s += event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"lo \"you\""}})");
  s += event("contentBlockStop", R"({"contentBlockIndex":0})");
  s += event("messageStop", R"({"stopReason":"end_turn"})");
  s += event(
      "metadata",
      R"({"usage":{"inputTokens":30,"outputTokens":12,"totalTokens":47,"cacheReadInputTokens":5},"metrics":{"latencyMs":99}})");
  return s;
}

const std::string k_anthropic_stream = anthropic_text_stream("max_tokens");

/// Feeds `in` through the wrapped translator in pieces of `step` bytes, then finishes.
std::string run(std::unique_ptr<stream_translator> t, std::string_view in, std::size_t step, usage* tokens = nullptr) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += step) {
    auto e = t->feed(in.substr(i, step), out);
    EXPECT_FALSE(e) << e->message;
    if (e) return out;
  }
  auto e = t->finish(out);
  EXPECT_FALSE(e) << e->message;
  if (tokens) *tokens = t->tokens();
  return out;
}

const std::string k_cmpl_head =
    R"(data: {"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"claude")";

std::string text_chunk(std::string_view text, std::string_view finish, bool usage_null) {
  return k_cmpl_head + R"(,"choices":[{"text":)" + std::string(text) +
         R"(,"index":0,"logprobs":null,"finish_reason":)" + std::string(finish) + "}]" +
         (usage_null ? R"(,"usage":null)" : "") + "}\n\n";
}

TEST(CompletionStream, ConverseByteByByte) {
  for (bool include_usage : {false, true}) {
    auto c = ctx(true, include_usage);
    usage u;
    std::string out = run(completion_stream_translator(converse_stream_translator(c)), converse_stream(), 1, &u);
    std::string want = text_chunk(R"("Hel")", "null", include_usage) +
                       text_chunk(R"("lo \"you\"")", "null", include_usage) +
                       text_chunk(R"("")", R"("stop")", include_usage);
    if (include_usage)
      want +=
          k_cmpl_head +
          R"(,"choices":[],"usage":{"prompt_tokens":35,"completion_tokens":12,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":5}}})"
          "\n\n";
    want += "data: [DONE]\n\n";
    EXPECT_EQ(out, want) << "include_usage " << include_usage;
    // Usage is the wrapped translator's: the gateway charges what it would for chat.
    EXPECT_EQ(u.prompt_tokens, 35);
    EXPECT_EQ(u.completion_tokens, 12);
    EXPECT_EQ(u.cached_tokens, 5);
  }
}

TEST(CompletionStream, AnthropicByteByByteAndAnySplit) {
  auto c = ctx(true, true);
  c.response_model = "my-claude";
  usage u;
  std::string whole = run(completion_stream_translator(anthropic_stream_translator(c)), k_anthropic_stream,
                          k_anthropic_stream.size(), &u);
  EXPECT_EQ(run(completion_stream_translator(anthropic_stream_translator(c)), k_anthropic_stream, 1), whole);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    auto t = completion_stream_translator(anthropic_stream_translator(c));
    std::string out;
    std::size_t pos = 0;
    while (pos < k_anthropic_stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(0, 61)(rng);
      ASSERT_FALSE(t->feed(std::string_view(k_anthropic_stream).substr(pos, n), out));
      pos += n;
    }
    ASSERT_FALSE(t->finish(out));
    EXPECT_EQ(out, whole);
  }
  // What the client reads: the text, one finish_reason, the usage chunk, [DONE].
  std::vector<std::string> events;
  for (std::size_t at = 0, end; (end = whole.find("\n\n", at)) != std::string::npos; at = end + 2)
    events.push_back(whole.substr(at, end - at));
  ASSERT_EQ(events.size(), 5u) << whole;
  std::string text;
  for (std::size_t i = 0; i < 3; ++i) {
    json_doc d(std::string_view(events[i]).substr(6));
    ASSERT_TRUE(d.ok()) << events[i];
    EXPECT_EQ(d.str("/object"), "text_completion");
    EXPECT_EQ(d.str("/id"), "cmpl-1");
    EXPECT_EQ(d.str("/model"), "my-claude");
    EXPECT_TRUE(d.is_null("/choices/0/logprobs"));
    EXPECT_FALSE(d.has("/choices/0/delta"));
    text += d.str("/choices/0/text");
    EXPECT_EQ(d.is_null("/choices/0/finish_reason"), i < 2) << events[i];
  }
  EXPECT_EQ(text, "Hello wörld\n!");
  json_doc last(std::string_view(events[2]).substr(6));
  EXPECT_EQ(last.str("/choices/0/finish_reason"), "length");
  json_doc usage_chunk(std::string_view(events[3]).substr(6));
  EXPECT_EQ(usage_chunk.raw("/choices"), "[]");
  EXPECT_EQ(usage_chunk.str("/object"), "text_completion");
  EXPECT_EQ(usage_chunk.num("/usage/prompt_tokens"), 25);
  EXPECT_EQ(usage_chunk.num("/usage/completion_tokens"), 15);
  EXPECT_EQ(events[4], "data: [DONE]");
  EXPECT_EQ(u.prompt_tokens, 25);
  EXPECT_EQ(u.completion_tokens, 15);
}

TEST(CompletionStream, ProviderErrorPassesWithWhatCameBefore) {
  std::string s = event("messageStart", R"({"role":"assistant"})") +
                  event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})") +
                  eventstream::encode_message({{":exception-type", "throttlingException"},
                                               {":content-type", "application/json"},
                                               {":message-type", "exception"}},
                                              R"({"message":"slow down"})");
  auto t = completion_stream_translator(converse_stream_translator(ctx(true)));
  std::string out;
  auto e = t->feed(s, out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 429);
  EXPECT_EQ(e->message, "Bedrock ThrottlingException: slow down");
  EXPECT_EQ(out, text_chunk(R"("Hi")", "null", false));
}

/// A stand-in for a provider translator: emits what it is told, as it is told.
class scripted : public stream_translator {
 public:
  explicit scripted(std::vector<std::string> script) : script_(std::move(script)) {}
  std::optional<provider_error> feed(std::string_view, std::string& out) override {
    if (next_ < script_.size()) out += script_[next_++];
    return std::nullopt;
  }
  std::optional<provider_error> finish(std::string& out) override {
    while (next_ < script_.size()) out += script_[next_++];
    return std::nullopt;
  }
  const usage& tokens() const noexcept override { return tokens_; }

 private:
  std::vector<std::string> script_;
  std::size_t next_ = 0;
  usage tokens_;
};

TEST(CompletionStream, ErrorEventsPassAndSplitEventsAreJoined) {
  std::string chunk =
      R"(data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"ab"},"finish_reason":null}]})"
      "\n\n";
  std::string error_event = R"(data: {"error":{"message":"broke","type":"api_error"}})"
                            "\n\n";
  auto t = completion_stream_translator(std::make_unique<scripted>(std::vector<std::string>{
      chunk.substr(0, 20), chunk.substr(20) + ": keep-alive comment\n\n", error_event, "data: [DONE]\n\n"}));
  std::string out;
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(t->feed("x", out));
  ASSERT_FALSE(t->finish(out));
  EXPECT_EQ(
      out,
      R"(data: {"id":"c","object":"text_completion","choices":[{"text":"ab","index":0,"logprobs":null,"finish_reason":null}]})"
      "\n\n: keep-alive comment\n\n" +
          error_event + "data: [DONE]\n\n");
}

TEST(CompletionStream, RoleAndReasoningOnlyChunksAreDropped) {
  auto t = completion_stream_translator(std::make_unique<scripted>(std::vector<std::string>{
      R"(data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
      "\n\n",
      R"(data: {"choices":[{"index":0,"delta":{"reasoning_content":"think"},"finish_reason":null}]})"
      "\n\n",
      R"(data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
      "\n\n"}));
  std::string out;
  ASSERT_FALSE(t->finish(out));
  EXPECT_EQ(out, R"(data: {"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]})"
                 "\n\n");
}

}  // namespace
}  // namespace gw::providers
