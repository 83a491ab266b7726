#include <gtest/gtest.h>

#include "gw/gateway/handler.hpp"

namespace gw::gateway {
namespace {

TEST(MatchRoute, WithAndWithoutV1) {
  std::string_view id;
  EXPECT_EQ(match_route("/v1/chat/completions", id), route::chat);
  EXPECT_EQ(match_route("/chat/completions", id), route::chat);
  EXPECT_EQ(match_route("/chat/completions/", id), route::chat);
  EXPECT_EQ(match_route("/v1/completions", id), route::completions);
  EXPECT_EQ(match_route("/embeddings", id), route::embeddings);
  EXPECT_EQ(match_route("/v1/models", id), route::models);
  EXPECT_EQ(match_route("/v1/models/gpt-4o", id), route::model_by_id);
  EXPECT_EQ(id, "gpt-4o");
  EXPECT_EQ(match_route("/v1/models/openai/gpt-4o", id), route::model_by_id);
  EXPECT_EQ(id, "openai/gpt-4o");
  EXPECT_EQ(match_route("/health/liveliness", id), route::liveliness);
  EXPECT_EQ(match_route("/health/readiness", id), route::readiness);
  EXPECT_EQ(match_route("/metrics", id), route::metrics);
  EXPECT_EQ(match_route("/v1x/chat/completions", id), route::unknown);
  EXPECT_EQ(match_route("/v2/chat/completions", id), route::unknown);
  EXPECT_EQ(match_route("/", id), route::root);
}

TEST(MatchRoute, AzureAndAnthropicIngress) {
  std::string_view id;
  EXPECT_EQ(match_route("/openai/deployments/gpt-4o/chat/completions", id), route::chat);
  EXPECT_EQ(id, "gpt-4o");
  EXPECT_EQ(match_route("/openai/deployments/emb/embeddings", id), route::embeddings);
  EXPECT_EQ(id, "emb");
  EXPECT_EQ(match_route("/openai/deployments/x/completions", id), route::completions);
  id = {};
  EXPECT_EQ(match_route("/openai/deployments//chat/completions", id), route::unknown);
  EXPECT_EQ(match_route("/openai/deployments/x/images/generations", id), route::unknown);
  EXPECT_TRUE(id.empty());
  EXPECT_EQ(match_route("/v1/messages", id), route::messages);
  EXPECT_EQ(match_route("/messages", id), route::messages);
  EXPECT_EQ(match_route("/anthropic/v1/messages", id), route::messages);
}

http::request make(std::initializer_list<std::pair<std::string, std::string>> headers) {
  http::request r;
  for (auto& [k, v] : headers) r.set(k, v);
  return r;
}

TEST(PresentedKey, LiteLLMPrecedence) {
  EXPECT_EQ(presented_key(make({{"Authorization", "Bearer sk-a"}})), "sk-a");
  EXPECT_EQ(presented_key(make({{"Authorization", "bearer   sk-a "}})), "sk-a");
  EXPECT_EQ(presented_key(make({{"api-key", "sk-b"}})), "sk-b");
  EXPECT_EQ(presented_key(make({{"x-api-key", "sk-c"}})), "sk-c");
  EXPECT_EQ(presented_key(make({{"x-litellm-api-key", "Bearer sk-d"}})), "sk-d");
  EXPECT_EQ(presented_key(make({{"x-litellm-api-key", "sk-d"}, {"Authorization", "Bearer sk-a"}})), "sk-d");
  EXPECT_EQ(presented_key(make({{"Authorization", "Bearer sk-a"}, {"api-key", "sk-b"}})), "sk-a");
  EXPECT_EQ(presented_key(make({{"Authorization", "Basic dXNlcjpwdw=="}})), "");
  EXPECT_EQ(presented_key(make({})), "");
}

}  // namespace
}  // namespace gw::gateway
