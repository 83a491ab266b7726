#include <gtest/gtest.h>

#include "gw/providers/bedrock.hpp"
#include "gw/providers/eventstream.hpp"
#include "gw/providers/sigv4.hpp"
#include "provider_routes.hpp"
#include "test_helpers.hpp"

namespace gw::mock {
namespace {

namespace gp = gw::providers;
using namespace gw::test;
using namespace std::chrono;

constexpr std::int64_t k_now = 1700000000;
constexpr std::string_view k_model = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// A request and the storage its views point into.
struct http_request {
  std::string method = "POST";
  std::string path;
  std::string query;
  std::string target;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  route_request view() {
    target = query.empty() ? path : path + "?" + query;
    route_request r;
    r.method = method;
    r.target = target;
    r.path = path;
    r.query = query;
    r.headers = &headers;
    r.body = body;
    return r;
  }
};

gp::aws_credentials creds(std::string akid = "AKIDMOCK", std::string token = "") {
  gp::aws_credentials c;
  c.access_key_id = std::move(akid);
  c.secret_access_key = "mock-secret";
  c.session_token = std::move(token);
  return c;
}

http_request signed_request(std::string_view action, std::string body, const gp::aws_credentials& c,
                            std::int64_t at = k_now, std::string_view model = k_model) {
  http_request r;
  r.path = gp::bedrock_path(model, action);
  r.body = std::move(body);
  r.headers = {{"host", "127.0.0.1:8080"}, {"content-type", "application/json"}};
  gp::sigv4_input in;
  in.method = r.method;
  in.path = r.path;
  in.headers = r.headers;
  in.body = r.body;
  for (auto& h : gp::sigv4_sign(in, c, "us-east-1", "bedrock", system_clock::time_point(seconds(at))))
    r.headers.push_back(h);
  r.headers.emplace_back("user-agent", "test");
  return r;
}

http_request bearer_request(std::string_view action, std::string body, std::string token) {
  http_request r;
  r.path = gp::bedrock_path(k_model, action);
  r.body = std::move(body);
  r.headers = {{"host", "127.0.0.1"}, {"authorization", "Bearer " + token}};
  return r;
}

struct fixture {
  credential_store store;
  route_env env;
  std::vector<std::string> fault_models;
  std::optional<mock_request> next_fault;
  fixture() {
    credential_store::aws_credentials c;
    c.access_key_id = "AKIDMOCK";
    c.secret_access_key = "mock-secret";
    store.add_aws(c);
    credential_store::aws_credentials t;
    t.access_key_id = "ASIATEMP";
    t.secret_access_key = "mock-secret";
    t.session_token = "session-1";
    store.add_aws(t);
    store.add_bearer("bedrock-api-key-1");
    env.creds = &store;
    env.response_tokens = 4;
    env.embedding_dimensions = 8;
    env.sequence = 42;
    env.now_unix = k_now;
    env.take_fault = [this](std::string_view model) -> std::optional<mock_request> {
      fault_models.emplace_back(model);
      auto f = next_fault;
      next_fault.reset();
      return f;
    };
  }
  std::optional<route_response> call(http_request& r) { return bedrock_route(r.view(), env); }
};

std::string error_type(const route_response& r) {
  auto t = header(r, "x-amzn-ErrorType");
  return t.substr(0, t.find(':'));
}

const std::string k_chat = R"({"messages":[{"role":"user","content":[{"text":"hello there"}]}],"inferenceConfig":{"maxTokens":50}})";

gp::translate_context ctx() { return make_context(std::string(k_model), "claude", "chatcmpl-9"); }

TEST(BedrockRoute, SigV4SignedConverseIsAnswered) {
  fixture f;
  auto req = signed_request("converse", k_chat, creds());
  auto resp = f.call(req);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->status, 200) << resp->body;
  EXPECT_FALSE(resp->streamed);
  EXPECT_EQ(resp->body,
            R"({"output":{"message":{"role":"assistant","content":[{"text":"The quick brown fox"}]}},)"
            R"("stopReason":"end_turn","usage":{"inputTokens":2,"outputTokens":4,"totalTokens":6,)"
            R"("cacheReadInputTokens":0,"cacheWriteInputTokens":0},"metrics":{"latencyMs":0}})");
  // The fault (and /_mock/stats) key is the decoded model id.
  ASSERT_EQ(f.fault_models.size(), 1u);
  EXPECT_EQ(f.fault_models[0], k_model);
  // And the adapter reads it back.
  auto openai = gp::from_converse(ctx(), resp->status, resp->body, "");
  EXPECT_EQ(openai.status, 200);
  EXPECT_NE(openai.body.find(R"("content":"The quick brown fox")"), std::string::npos) << openai.body;
}

TEST(BedrockRoute, SessionTokenCredentials) {
  fixture f;
  auto ok = signed_request("converse", k_chat, creds("ASIATEMP", "session-1"));
  EXPECT_EQ(f.call(ok)->status, 200);
  auto wrong = signed_request("converse", k_chat, creds("ASIATEMP", "session-2"));
  auto resp = f.call(wrong);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "UnrecognizedClientException");
}

TEST(BedrockRoute, TamperedBodyIsRejected) {
  fixture f;
  auto req = signed_request("converse", k_chat, creds());
  req.body.back() = ' ';
  req.body += '}';
  auto resp = f.call(req);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "InvalidSignatureException");
  EXPECT_NE(resp->body.find("signature we calculated does not match"), std::string::npos) << resp->body;
  EXPECT_TRUE(f.fault_models.empty());  // a refused request takes no fault
  // The adapter turns it into an authentication error.
  auto openai = gp::from_converse(ctx(), resp->status, resp->body, header(*resp, "x-amzn-ErrorType"));
  EXPECT_EQ(openai.status, 401);
}

TEST(BedrockRoute, UnknownKeySkewAndMissingAuth) {
  fixture f;
  auto unknown = signed_request("converse", k_chat, creds("AKIDNOBODY"));
  auto resp = f.call(unknown);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "UnrecognizedClientException");

  auto old = signed_request("converse", k_chat, creds(), k_now - 600);
  resp = f.call(old);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "InvalidSignatureException");
  EXPECT_NE(resp->body.find("Signature expired"), std::string::npos) << resp->body;

  http_request none;
  none.path = gp::bedrock_path(k_model, "converse");
  none.body = k_chat;
  none.headers = {{"host", "x"}};
  resp = f.call(none);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "UnrecognizedClientException");

  auto wrong_service = signed_request("converse", k_chat, creds());
  for (auto& h : wrong_service.headers)
    if (h.first == "authorization") {
      auto pos = h.second.find("/bedrock/");
      h.second.replace(pos, 9, "/bedrock-runtime/");
    }
  resp = f.call(wrong_service);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "InvalidSignatureException");
}

TEST(BedrockRoute, BearerApiKey) {
  fixture f;
  auto good = bearer_request("converse", k_chat, "bedrock-api-key-1");
  EXPECT_EQ(f.call(good)->status, 200);
  auto bad = bearer_request("converse", k_chat, "nope");
  auto resp = f.call(bad);
  EXPECT_EQ(resp->status, 403);
  EXPECT_EQ(error_type(*resp), "UnrecognizedClientException");
}

std::vector<gp::eventstream::message> decode_chunks(const route_response& r) {
  gp::eventstream::decoder d;
  std::vector<gp::eventstream::message> out;
  for (auto& c : r.chunks) {
    auto e = d.feed(c, out);
    EXPECT_FALSE(e) << *e;
  }
  EXPECT_FALSE(d.finish());
  EXPECT_EQ(out.size(), r.chunks.size());  // one frame per chunk
  return out;
}

std::vector<std::string> event_types(const std::vector<gp::eventstream::message>& ms) {
  std::vector<std::string> t;
  for (auto& m : ms) {
    EXPECT_EQ(m.header_value(":message-type"), "event");
    EXPECT_EQ(m.header_value(":content-type"), "application/json");
    t.emplace_back(m.header_value(":event-type"));
  }
  return t;
}

TEST(BedrockRoute, ConverseStreamFramesDecode) {
  fixture f;
  auto req = signed_request("converse-stream", k_chat, creds());
  auto resp = f.call(req);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->status, 200) << resp->body;
  EXPECT_TRUE(resp->streamed);
  EXPECT_EQ(resp->content_type, "application/vnd.amazon.eventstream");
  EXPECT_EQ(resp->drop_after, -1);
  auto ms = decode_chunks(*resp);
  EXPECT_EQ(event_types(ms),
            (std::vector<std::string>{"messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
                                      "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}));
  EXPECT_EQ(ms[1].payload, R"({"contentBlockIndex":0,"delta":{"text":"The "}})");
  EXPECT_EQ(ms[4].payload, R"({"contentBlockIndex":0,"delta":{"text":"fox"}})");

  // Through the adapter's translator: an OpenAI stream with the same words.
  auto c = ctx();
  c.include_usage = true;
  auto t = gp::converse_stream_translator(c);
  std::string out;
  for (auto& chunk : resp->chunks) ASSERT_FALSE(t->feed(chunk, out));
  ASSERT_FALSE(t->finish(out));
  EXPECT_NE(out.find(R"("delta":{"content":"fox"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("finish_reason":"stop")"), std::string::npos);
  EXPECT_NE(out.find(R"("usage":{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6)"), std::string::npos);
  EXPECT_TRUE(out.ends_with("data: [DONE]\n\n"));
}

const std::string k_tools =
    R"({"messages":[{"role":"user","content":[{"text":"weather in Paris"}]}],)"
    R"("toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{"type":"object"}}}},)"
    R"({"toolSpec":{"name":"other","inputSchema":{"json":{}}}}]}})";

TEST(BedrockRoute, ToolCallWhenToolsAreOffered) {
  fixture f;
  auto req = signed_request("converse", k_tools, creds());
  auto resp = f.call(req);
  ASSERT_EQ(resp->status, 200) << resp->body;
  EXPECT_NE(resp->body.find(
                R"("content":[{"toolUse":{"toolUseId":"tooluse_mock_42","name":"get_weather","input":{"query":"weather in Paris"}}}])"),
            std::string::npos)
      << resp->body;
  EXPECT_NE(resp->body.find(R"("stopReason":"tool_use")"), std::string::npos);

  auto sreq = signed_request("converse-stream", k_tools, creds());
  auto sresp = f.call(sreq);
  auto ms = decode_chunks(*sresp);
  EXPECT_EQ(event_types(ms),
            (std::vector<std::string>{"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockDelta",
                                      "contentBlockStop", "messageStop", "metadata"}));
  EXPECT_EQ(ms[1].payload,
            R"({"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"tooluse_mock_42","name":"get_weather"}}})");
  auto t = gp::converse_stream_translator(ctx());
  std::string out;
  for (auto& chunk : sresp->chunks) ASSERT_FALSE(t->feed(chunk, out));
  ASSERT_FALSE(t->finish(out));
  EXPECT_NE(out.find(R"("name":"get_weather")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("finish_reason":"tool_calls")"), std::string::npos) << out;
}

TEST(BedrockRoute, AnswerAfterToolResult) {
  fixture f;
  std::string body =
      R"({"messages":[{"role":"user","content":[{"text":"weather?"}]},)"
      R"({"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"get_weather","input":{}}}]},)"
      R"({"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"sunny and 14C"}]}}]}],)"
      R"("toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{}}}}]}})";
  auto req = signed_request("converse", body, creds());
  auto resp = f.call(req);
  ASSERT_EQ(resp->status, 200) << resp->body;
  EXPECT_NE(resp->body.find(R"({"text":"Tool result: sunny and 14C"})"), std::string::npos) << resp->body;
  EXPECT_NE(resp->body.find(R"("stopReason":"end_turn")"), std::string::npos);
}

TEST(BedrockRoute, FaultsAnswerInBedrocksShape) {
  fixture f;
  mock_request fault;
  fault.status = 429;
  fault.retry_after = "2";
  f.next_fault = fault;
  auto req = signed_request("converse", k_chat, creds());
  auto resp = f.call(req);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 429);
  EXPECT_EQ(error_type(*resp), "ThrottlingException");
  EXPECT_EQ(header(*resp, "retry-after"), "2");
  EXPECT_EQ(resp->body, R"({"message":"Too many requests, please wait before trying again."})");
  auto openai = gp::from_converse(ctx(), resp->status, resp->body, header(*resp, "x-amzn-ErrorType"));
  EXPECT_EQ(openai.status, 429);
  EXPECT_NE(openai.body.find("Bedrock ThrottlingException"), std::string::npos);

  for (auto [status, type] : {std::pair{400, "ValidationException"}, {403, "AccessDeniedException"},
                              {500, "InternalServerException"}, {503, "ServiceUnavailableException"}}) {
    mock_request ff;
    ff.status = status;
    f.next_fault = ff;
    auto r2 = signed_request("converse-stream", k_chat, creds());
    auto e = f.call(r2);
    EXPECT_EQ(e->status, status);
    EXPECT_FALSE(e->streamed);
    EXPECT_EQ(error_type(*e), type);
  }
}

TEST(BedrockRoute, FaultTokensEchoAndDropAfter) {
  fixture f;
  mock_request fault;
  fault.tokens = 2;
  fault.drop_after = 1;
  f.next_fault = fault;
  auto req = signed_request("converse-stream", k_chat, creds());
  auto resp = f.call(req);
  ASSERT_EQ(resp->status, 200);
  EXPECT_EQ(resp->drop_after, 2);  // messageStart + one content chunk
  auto ms = decode_chunks(*resp);
  EXPECT_EQ(ms.size(), 6u);  // start, 2 deltas, block stop, message stop, metadata

  mock_request echo;
  echo.echo = true;
  f.next_fault = echo;
  auto req2 = signed_request("converse", k_chat, creds());
  auto resp2 = f.call(req2);
  EXPECT_NE(resp2->body.find(R"({"text":"hello there"})"), std::string::npos) << resp2->body;
}

TEST(BedrockRoute, MalformedBodies) {
  fixture f;
  for (const char* body : {"{not json", "[]", R"({"messages":"x"})", R"({"messages":[{"role":"user"}]})",
                           R"({"messages":[{"role":"system","content":[]}]})"}) {
    auto req = signed_request("converse", body, creds());
    auto resp = f.call(req);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status, 400) << body;
    EXPECT_EQ(error_type(*resp), "ValidationException") << body;
  }
}

TEST(BedrockRoute, OtherPathsAreNotBedrock) {
  fixture f;
  auto req = signed_request("converse", k_chat, creds());
  req.method = "GET";
  EXPECT_FALSE(f.call(req));
  for (const char* path : {"/v1/chat/completions", "/model/", "/model/x", "/model//converse", "/model/x/chat",
                           "/models/x/converse"}) {
    http_request r;
    r.path = path;
    EXPECT_FALSE(f.call(r)) << path;
  }
}

/// The "embedding" array of an OpenAI embeddings body, or of a Titan answer.
std::string first_vector(const std::string& body) {
  auto key = body.find(R"("embedding":[)");
  if (key == std::string::npos) key = body.find(R"("embeddings":[[)") + 1;
  auto open = body.find('[', key);
  return body.substr(open, body.find(']', open) - open + 1);
}

TEST(BedrockRoute, TitanEmbeddings) {
  fixture f;
  constexpr std::string_view model = "amazon.titan-embed-text-v2:0";
  auto req = signed_request("invoke", R"({"inputText":"hello world"})", creds(), k_now, model);
  auto resp = f.call(req);
  ASSERT_EQ(resp->status, 200) << resp->body;
  auto vec = first_vector(resp->body);
  EXPECT_EQ(std::count(vec.begin(), vec.end(), ','), 7);  // 8 dimensions
  EXPECT_NE(resp->body.find(R"("inputTextTokenCount":2)"), std::string::npos) << resp->body;
  // The same vector as the OpenAI dialect gives the same text.
  mock_request same;
  same.inputs = {"hello world"};
  EXPECT_EQ(vec, first_vector(embeddings_body(same, 8)));

  auto dims = signed_request("invoke", R"({"inputText":"hello world","dimensions":4})", creds(), k_now, model);
  auto v4 = first_vector(f.call(dims)->body);
  EXPECT_EQ(std::count(v4.begin(), v4.end(), ','), 3);

  // Through the adapter.
  auto c = ctx();
  c.upstream_model = std::string(model);
  auto to = gp::to_bedrock_embedding(c, R"({"input":"hello world"})");
  ASSERT_TRUE(to.request);
  auto viaAdapter = signed_request("invoke", to.request->body, creds(), k_now, model);
  ASSERT_EQ(viaAdapter.path, to.request->path);
  auto answer = f.call(viaAdapter);
  auto openai = gp::from_bedrock_embedding(c, answer->status, answer->body, "");
  EXPECT_EQ(openai.status, 200);
  EXPECT_EQ(openai.tokens.prompt_tokens, 2);

  auto missing = signed_request("invoke", R"({"texts":["x"]})", creds(), k_now, model);
  EXPECT_EQ(f.call(missing)->status, 400);
}

TEST(BedrockRoute, CohereEmbeddings) {
  fixture f;
  constexpr std::string_view model = "cohere.embed-english-v3";
  auto req = signed_request("invoke", R"({"texts":["a","b"],"input_type":"search_document"})", creds(), k_now, model);
  auto resp = f.call(req);
  ASSERT_EQ(resp->status, 200) << resp->body;
  auto c = ctx();
  c.upstream_model = std::string(model);
  auto openai = gp::from_bedrock_embedding(c, resp->status, resp->body, "");
  EXPECT_EQ(openai.status, 200) << openai.body;
  EXPECT_NE(openai.body.find(R"("index":1)"), std::string::npos);
  auto no_type = signed_request("invoke", R"({"texts":["a"]})", creds(), k_now, model);
  EXPECT_EQ(f.call(no_type)->status, 400);
  auto chat_model = signed_request("invoke", R"({"prompt":"x"})", creds());
  auto e = f.call(chat_model);
  EXPECT_EQ(e->status, 400);
  EXPECT_EQ(error_type(*e), "ValidationException");
}

}  // namespace
}  // namespace gw::mock
