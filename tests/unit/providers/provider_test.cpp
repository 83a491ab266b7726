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
  auto bedrock = resolve_target(dep("bedrock", "anthropic.claude-3"));
  EXPECT_EQ(bedrock.format, wire_format::unsupported);
  EXPECT_NE(bedrock.problem.find("not supported yet"), std::string::npos);
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
