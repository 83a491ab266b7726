// Provider adapters: the upstream request each wire format builds (head, gather pieces),
// how it is authorized, how answers come back and how errors are classified.

#include <gtest/gtest.h>

#include <cstdlib>

#include "gw/providers/provider_adapter.hpp"
#include "test_helpers.hpp"

namespace gw::providers {
namespace {

config::deployment dep(std::string provider, std::string model, std::string api_base = "", std::string key = "") {
  config::deployment d;
  d.model_name = "group";
  d.provider = std::move(provider);
  d.upstream_model = model;
  d.model = d.provider + "/" + model;
  d.api_base = std::move(api_base);
  d.api_key = std::move(key);
  return d;
}

std::string padded(std::string_view text) {
  std::string s;
  s.reserve(text.size() + 64);
  s.assign(text);
  return s;
}

std::string joined(const upstream_request& r) {
  std::string s;
  for (auto b : r.body) s += b;
  return s;
}

struct adapter_case {
  config::deployment d;
  deployment_target t;
  std::unique_ptr<provider_adapter> a;
  std::string body;
  inspected_request req;
  call_input in;
  adapter_case(config::deployment dd, std::string b, operation op = operation::chat) : d(std::move(dd)) {
    t = resolve_target(d);
    EXPECT_TRUE(t.problem.empty()) << t.problem;
    a = make_adapter(d, t, endpoint_info{"upstream.test:8443", "/v1"});
    body = padded(b);
    auto e = inspect_request(op, body, req);
    EXPECT_FALSE(e) << (e ? e->message : "");
    in.op = op;
    in.body = body;
    in.req = &req;
    in.model_group = "group";
    in.call_id = "call-1";
    in.created = 1700000000;
  }
};

TEST(OpenAIAdapter, SameModelGoesUpstreamByteForByte) {
  adapter_case c(dep("openai", "gpt-4o", "http://h/v1", "sk-x"), R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(c.a);
  EXPECT_EQ(c.a->system_name(), "openai");
  EXPECT_EQ(c.a->credentials(), credential_kind::none);
  auto ex = c.a->begin(c.in, "gpt-4o");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_EQ(joined(r), c.body);
  EXPECT_EQ(r.length(), c.body.size());
  // The body's pieces point into the client's buffer: nothing was copied.
  EXPECT_EQ(r.body[0].data(), c.body.data());
  std::string head(r.head_prefix);
  EXPECT_EQ(head.rfind("POST /v1/chat/completions HTTP/1.1\r\nhost: upstream.test:8443\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Bearer sk-x"), std::string::npos);
  EXPECT_FALSE(ex->injected_usage());
  EXPECT_EQ(ex->authorize({}, {}), "");
}

TEST(OpenAIAdapter, OtherModelNameIsReplacedOnly) {
  adapter_case c(dep("openai", "gpt-4o-2024", "http://h/v1"), R"({"model":"alias","messages":[{"role":"user","content":"hi"}],"n":1})");
  auto ex = c.a->begin(c.in, "gpt-4o-2024");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_EQ(joined(r), R"({"model":"gpt-4o-2024","messages":[{"role":"user","content":"hi"}],"n":1})");
  EXPECT_EQ(ex->upstream_model(), "gpt-4o-2024");
}

TEST(OpenAIAdapter, StreamsAskForUsageUnlessTheClientChose) {
  adapter_case c(dep("openai", "m", "http://h/v1"), R"({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]})");
  auto ex = c.a->begin(c.in, "m");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_TRUE(ex->injected_usage());
  EXPECT_EQ(joined(r), R"({"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.length(), joined(r).size());

  adapter_case own(dep("openai", "m", "http://h/v1"),
                   R"({"model":"m","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]})");
  auto ex2 = own.a->begin(own.in, "m");
  ASSERT_FALSE(ex2->next_request(r));
  EXPECT_FALSE(ex2->injected_usage());
  EXPECT_EQ(joined(r), own.body);
}

TEST(OpenAIAdapter, UsageIsReadFromTheAnswer) {
  adapter_case c(dep("openai", "m", "http://h/v1"), R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  auto ex = c.a->begin(c.in, "m");
  int status = 200;
  std::string body = R"({"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})";
  usage u;
  EXPECT_TRUE(ex->on_answer(status, body, "", u));
  EXPECT_EQ(u.prompt_tokens, 3);
  EXPECT_EQ(u.completion_tokens, 4);
  EXPECT_EQ(ex->make_stream_translator(), nullptr);
}

TEST(AzureAdapter, PathsPerModelBearerTokensAndThePromptFilterChunk) {
  unsetenv("AZURE_API_KEY");
  auto d = dep("azure", "*", "https://res.openai.azure.com/", "azkey");
  d.model_name = "azure/*";
  d.api_version = "2024-06-01";
  adapter_case c(d, R"({"model":"azure/dep-x","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(c.a->system_name(), "azure.ai.openai");
  auto ex = c.a->begin(c.in, "dep-x");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_NE(std::string(r.head_prefix).find("POST /v1/openai/deployments/dep-x/chat/completions?api-version=2024-06-01 "),
            std::string::npos)
      << r.head_prefix;
  EXPECT_TRUE(ex->drop_event(R"(data: {"choices":[],"prompt_filter_results":[]})", 1));
  EXPECT_FALSE(ex->drop_event(R"(data: {"choices":[],"prompt_filter_results":[]})", 5));
  EXPECT_FALSE(ex->drop_event(R"(data: {"choices":[{"delta":{}}]})", 1));
  credentials_view v;
  v.bearer = "tok";
  EXPECT_EQ(ex->authorize(v, {}), "authorization: Bearer tok\r\n");
}

TEST(BedrockAdapter, ConverseSignedWithSigV4) {
  unsetenv("AWS_BEARER_TOKEN_BEDROCK");
  auto d = dep("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0");
  d.params["aws_region_name"] = "us-east-1";
  adapter_case c(d, R"({"model":"group","messages":[{"role":"user","content":"hello"}],"max_tokens":5})");
  EXPECT_EQ(c.a->credentials(), credential_kind::aws);
  EXPECT_EQ(c.a->system_name(), "aws.bedrock");
  auto ex = c.a->begin(c.in, "anthropic.claude-3-5-sonnet-20240620-v1:0");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_EQ(r.signing_path, "/v1/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  test::json_doc body(joined(r));
  EXPECT_EQ(body.str("/messages/0/content/0/text"), "hello");
  EXPECT_EQ(body.num("/inferenceConfig/maxTokens"), 5);
  aws_credentials creds{"AKIDEXAMPLE", "secret", "", std::chrono::system_clock::time_point::max()};
  credentials_view v;
  v.aws = &creds;
  auto auth = ex->authorize(v, std::chrono::system_clock::time_point{std::chrono::seconds(1700000000)});
  EXPECT_NE(auth.find("x-amz-date: 20231114T221320Z\r\n"), std::string::npos) << auth;
  EXPECT_NE(auth.find("authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request"),
            std::string::npos)
      << auth;
}

TEST(BedrockAdapter, AnApiKeyIsAStaticBearer) {
  auto d = dep("bedrock", "amazon.nova-lite-v1:0", "", "bedrock-key");
  d.params["aws_region_name"] = "us-west-2";
  d.params["api_key"] = "bedrock-key";
  adapter_case c(d, R"({"model":"group","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(c.a->credentials(), credential_kind::none);
  auto ex = c.a->begin(c.in, "amazon.nova-lite-v1:0");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_EQ(ex->authorize({}, {}), "authorization: Bearer bedrock-key\r\n");
}

TEST(BedrockAdapter, TitanEmbedsOneInputPerCall) {
  auto d = dep("bedrock", "amazon.titan-embed-text-v2:0", "", "k");
  d.params["aws_region_name"] = "us-west-2";
  d.params["api_key"] = "k";
  adapter_case c(d, R"({"model":"group","input":["one","two"]})", operation::embedding);
  auto ex = c.a->begin(c.in, "amazon.titan-embed-text-v2:0");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_NE(joined(r).find("\"one\""), std::string::npos);
  int status = 200;
  std::string answer = R"({"embedding":[0.1,0.2],"inputTextTokenCount":2})";
  usage u;
  EXPECT_FALSE(ex->on_answer(status, answer, "", u)) << "a second call follows";
  ASSERT_FALSE(ex->next_request(r));
  EXPECT_NE(joined(r).find("\"two\""), std::string::npos);
  answer = R"({"embedding":[0.3,0.4],"inputTextTokenCount":3})";
  EXPECT_TRUE(ex->on_answer(status, answer, "", u));
  test::json_doc list(answer);
  EXPECT_EQ(list.raw("/data/1/embedding"), "[0.3,0.4]");
  EXPECT_EQ(u.prompt_tokens, 5);
}

TEST(AnthropicAdapter, MessagesBothWaysAndNoEmbeddings) {
  auto d = dep("anthropic", "claude-sonnet-4", "https://api.anthropic.com/v1", "sk-ant");
  adapter_case c(d, R"({"model":"group","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(c.a->system_name(), "anthropic");
  auto ex = c.a->begin(c.in, "claude-sonnet-4");
  upstream_request r;
  ASSERT_FALSE(ex->next_request(r));
  std::string head(r.head_prefix);
  EXPECT_EQ(head.rfind("POST /v1/v1/messages HTTP/1.1", 0), 0u) << head;  // the endpoint base path, then the API path
  EXPECT_NE(head.find("anthropic-version:"), std::string::npos) << head;
  EXPECT_NE(head.find("x-api-key: sk-ant"), std::string::npos) << head;
  test::json_doc body(joined(r));
  EXPECT_EQ(body.str("/model"), "claude-sonnet-4");
  EXPECT_EQ(body.num("/max_tokens"), 4096);
  int status = 200;
  std::string answer =
      R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[{"type":"text","text":"yo"}],)"
      R"("stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}})";
  usage u;
  EXPECT_TRUE(ex->on_answer(status, answer, "", u));
  test::json_doc out(answer);
  EXPECT_EQ(out.str("/choices/0/message/content"), "yo");
  EXPECT_EQ(out.str("/id"), "chatcmpl-call-1");
  EXPECT_EQ(u.completion_tokens, 1);
  EXPECT_NE(ex->make_stream_translator(), nullptr);

  adapter_case e(d, R"({"model":"group","input":"x"})", operation::embedding);
  auto ex2 = e.a->begin(e.in, "claude-sonnet-4");
  auto err = ex2->next_request(r);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
  EXPECT_NE(err->message.find("model group 'group'"), std::string::npos);
}

TEST(ProviderAdapter, ClassifiesErrorsForFallbacks) {
  EXPECT_EQ(classify_openai_error(400, R"({"error":{"code":"context_length_exceeded"}})"), failure_kind::context_window);
  EXPECT_EQ(classify_openai_error(400, R"({"error":{"message":"prompt is too long: 300000 tokens"}})"),
            failure_kind::context_window);
  EXPECT_EQ(classify_openai_error(400, R"({"error":{"code":"content_filter"}})"), failure_kind::content_policy);
  EXPECT_EQ(classify_openai_error(400, R"({"error":{"message":"bad temperature"}})"), failure_kind::status);
  EXPECT_EQ(classify_openai_error(500, R"({"error":{"message":"context window"}})"), failure_kind::status);
}

TEST(RequestControls, FallbackShapesAndTestingControls) {
  std::string body = padded(
      R"({"model":"a","messages":[{"role":"user","content":"x"}],"fallbacks":["b",{"model":"c","temperature":0.1},)"
      R"({"a":["d"]}],"mock_testing_fallbacks":true,"mock_response":"hello","num_retries":2,"max_fallbacks":3})");
  inspected_request r;
  ASSERT_FALSE(inspect_request(operation::chat, body, r));
  ASSERT_TRUE(r.controls);
  ASSERT_TRUE(r.controls->fallbacks);
  const auto& l = *r.controls->fallbacks;
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].first, "a");
  EXPECT_EQ(l[0].second[0].model, "d");
  EXPECT_EQ(l[1].first, "");
  ASSERT_EQ(l[1].second.size(), 2u);
  EXPECT_EQ(l[1].second[1].model, "c");
  EXPECT_EQ(l[1].second[1].overrides, R"({"temperature":0.1})");
  EXPECT_TRUE(r.controls->mock_testing_fallbacks);
  EXPECT_EQ(*r.controls->mock_response, "hello");
  EXPECT_EQ(*r.controls->max_fallbacks, 3);
  EXPECT_TRUE(r.has_gateway_fields);
  // None of them goes upstream.
  EXPECT_EQ(strip_gateway_fields(body), R"({"model":"a","messages":[{"role":"user","content":"x"}]})");
}

TEST(RequestControls, BadValuesNameTheField) {
  auto bad = [](std::string fields) {
    std::string body = padded(std::string(R"({"model":"a","messages":[{"role":"user","content":"x"}],)") + fields + "}");
    inspected_request r;
    auto e = inspect_request(operation::chat, body, r);
    return e ? e->param : std::string("<accepted>");
  };
  EXPECT_EQ(bad(R"("fallbacks":5)"), "fallbacks");
  EXPECT_EQ(bad(R"("fallbacks":[5])"), "fallbacks");
  EXPECT_EQ(bad(R"("fallbacks":[{"a":"b"}])"), "fallbacks");
  EXPECT_EQ(bad(R"("context_window_fallbacks":[""])"), "context_window_fallbacks");
  EXPECT_EQ(bad(R"("mock_testing_fallbacks":"yes")"), "mock_testing_fallbacks");
  EXPECT_EQ(bad(R"("mock_response":{"x":1})"), "mock_response");
  EXPECT_EQ(bad(R"("max_fallbacks":-1)"), "max_fallbacks");
  EXPECT_EQ(bad(R"("mock_timeout":"true")"), "<accepted>");
  EXPECT_EQ(bad(R"("fallbacks":null)"), "<accepted>");
}

TEST(RequestControls, OverridesReplaceTopLevelMembers) {
  EXPECT_EQ(with_overrides(R"({"model":"a","messages":[1],"n":1})", R"({"messages":[2],"temperature":0})"),
            R"({"model":"a","n":1,"messages":[2],"temperature":0})");
  EXPECT_EQ(with_overrides("not json", R"({"x":1})"), "not json");
}

}  // namespace
}  // namespace gw::providers
