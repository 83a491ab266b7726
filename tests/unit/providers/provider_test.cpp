#include <gtest/gtest.h>

#include <cstdlib>

#include "gw/providers/provider.hpp"

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

TEST(ResolveTarget, OpenAIDefaultsAndEnvKey) {
  setenv("OPENAI_API_KEY", "sk-from-env", 1);
  auto t = resolve_target(dep("openai", "gpt-4o"));
  EXPECT_TRUE(t.problem.empty());
  EXPECT_EQ(t.format, wire_format::openai);
  EXPECT_EQ(t.base_url, "https://api.openai.com/v1");
  EXPECT_EQ(t.api_key, "sk-from-env");
  ASSERT_EQ(t.headers.size(), 1u);
  EXPECT_EQ(t.headers[0].second, "Bearer sk-from-env");
  auto explicit_key = resolve_target(dep("openai", "gpt-4o", "http://localhost:1/v1", "sk-x"));
  EXPECT_EQ(explicit_key.api_key, "sk-x");
  EXPECT_EQ(explicit_key.base_url, "http://localhost:1/v1");
  unsetenv("OPENAI_API_KEY");
}

TEST(ResolveTarget, LocalServersAndProblems) {
  auto ollama = resolve_target(dep("ollama_chat", "llama3", "http://localhost:11434"));
  EXPECT_EQ(ollama.base_url, "http://localhost:11434/v1");
  EXPECT_TRUE(ollama.headers.empty());
  auto vllm = resolve_target(dep("hosted_vllm", "m"));
  EXPECT_FALSE(vllm.problem.empty()) << "hosted_vllm needs an api_base";
  auto vertex = resolve_target(dep("vertex_ai", "gemini-pro"));
  EXPECT_EQ(vertex.format, wire_format::unsupported);
  EXPECT_NE(vertex.problem.find("not supported yet"), std::string::npos);
}

TEST(ResolveTarget, AzureKeyClassicAndV1) {
  unsetenv("AZURE_API_KEY");
  auto d = dep("azure", "my-gpt4o", "https://res.openai.azure.com/", "azkey");
  d.api_version = "2024-06-01";
  auto t = resolve_target(d);
  EXPECT_TRUE(t.problem.empty()) << t.problem;
  EXPECT_EQ(t.format, wire_format::azure);
  EXPECT_EQ(t.base_url, "https://res.openai.azure.com");
  EXPECT_EQ(azure_path(t, operation::chat, "my-gpt4o"), "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-06-01");
  EXPECT_EQ(azure_path(t, operation::embedding, "my-gpt4o"), "/openai/deployments/my-gpt4o/embeddings?api-version=2024-06-01");
  ASSERT_EQ(t.headers.size(), 1u);
  EXPECT_EQ(t.headers[0].first, "api-key");
  EXPECT_FALSE(t.entra);
  auto v1 = dep("azure", "my-gpt4o", "https://res.openai.azure.com/openai/v1/", "azkey");
  auto tv = resolve_target(v1);
  EXPECT_EQ(tv.base_url, "https://res.openai.azure.com");
  EXPECT_EQ(azure_path(tv, operation::chat, "my-gpt4o"), "/openai/v1/chat/completions");
}

TEST(ResolveTarget, AzureServicePrincipal) {
  unsetenv("AZURE_API_KEY");
  auto d = dep("azure", "dep1", "https://res.openai.azure.com");
  d.params["tenant_id"] = "t1";
  d.params["client_id"] = "c1";
  d.params["client_secret"] = "s1";
  auto t = resolve_target(d);
  EXPECT_TRUE(t.problem.empty()) << t.problem;
  ASSERT_TRUE(t.entra);
  EXPECT_EQ(t.entra->tenant_id, "t1");
  EXPECT_EQ(t.entra->authority, "https://login.microsoftonline.com");
  EXPECT_EQ(t.entra->scope, "https://cognitiveservices.azure.com/.default");
  EXPECT_TRUE(t.headers.empty()) << "one credential only: no api-key with a token";
  d.params.erase("client_secret");
  EXPECT_NE(resolve_target(d).problem.find("client_secret"), std::string::npos);
  auto none = resolve_target(dep("azure", "dep1", "https://res.openai.azure.com"));
  EXPECT_NE(none.problem.find("no credential"), std::string::npos);
}

TEST(ResolveTarget, BedrockAndAnthropic) {
  unsetenv("AWS_REGION");
  unsetenv("AWS_DEFAULT_REGION");
  unsetenv("AWS_BEARER_TOKEN_BEDROCK");
  auto b = dep("bedrock", "converse/anthropic.claude-3-5-sonnet-20240620-v1:0");
  EXPECT_NE(resolve_target(b).problem.find("aws_region_name"), std::string::npos);
  b.params["aws_region_name"] = "eu-west-1";
  auto t = resolve_target(b);
  EXPECT_TRUE(t.problem.empty()) << t.problem;
  EXPECT_EQ(t.format, wire_format::bedrock);
  EXPECT_EQ(t.bedrock_model, "anthropic.claude-3-5-sonnet-20240620-v1:0");
  EXPECT_EQ(t.base_url, "https://bedrock-runtime.eu-west-1.amazonaws.com");
  EXPECT_TRUE(t.aws.bearer_token.empty());
  b.params["aws_access_key_id"] = "AKID";
  EXPECT_NE(resolve_target(b).problem.find("go together"), std::string::npos);

  unsetenv("ANTHROPIC_API_KEY");
  EXPECT_FALSE(resolve_target(dep("anthropic", "claude-sonnet-4")).problem.empty());
  auto a = resolve_target(dep("anthropic", "claude-sonnet-4", "https://api.anthropic.com/v1", "sk-ant"));
  EXPECT_TRUE(a.problem.empty());
  EXPECT_EQ(a.format, wire_format::anthropic);
  EXPECT_EQ(a.base_url, "https://api.anthropic.com");
  ASSERT_EQ(a.headers.size(), 1u);
  EXPECT_EQ(a.headers[0].first, "x-api-key");
}

TEST(Wildcards, MatchAndUpstreamName) {
  EXPECT_TRUE(model_name_matches("*", "gpt-4o"));
  EXPECT_TRUE(model_name_matches("openai/*", "openai/gpt-4o"));
  EXPECT_FALSE(model_name_matches("openai/*", "anthropic/claude"));
  EXPECT_FALSE(model_name_matches("gpt-4o", "gpt-4o-mini"));
  EXPECT_EQ(upstream_model_for("openai/gpt-4o", "openai/*", "*"), "gpt-4o");
  EXPECT_EQ(upstream_model_for("gpt-4o", "*", "*"), "gpt-4o");
  EXPECT_EQ(upstream_model_for("anything", "alias", "real-model"), "real-model");
}

}  // namespace
}  // namespace gw::providers
