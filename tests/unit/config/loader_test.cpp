#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "gw/config/config.hpp"

namespace gw::config {
namespace {

gateway_config ok(const load_result& r) {
  if (auto* e = std::get_if<config_error>(&r)) ADD_FAILURE() << e->message;
  return std::holds_alternative<gateway_config>(r) ? std::get<gateway_config>(r) : gateway_config{};
}

std::string err(const load_result& r) {
  if (auto* e = std::get_if<config_error>(&r)) return e->message;
  ADD_FAILURE() << "expected an error";
  return {};
}

bool has_warning(const gateway_config& c, std::string_view needle) {
  return std::any_of(c.warnings.begin(), c.warnings.end(),
                     [&](const std::string& w) { return w.find(needle) != std::string::npos; });
}

TEST(Loader, EveryStarterConfigLoads) {
  int n = 0;
  for (auto& f : std::filesystem::directory_iterator("configs")) {
    if (f.path().extension() != ".yaml") continue;
    ++n;
    auto r = load_file(f.path().string());
    EXPECT_TRUE(std::holds_alternative<gateway_config>(r))
        << f.path() << ": " << (std::holds_alternative<config_error>(r) ? std::get<config_error>(r).message : "");
    if (auto* c = std::get_if<gateway_config>(&r)) {
      EXPECT_FALSE(c->model_list.empty()) << f.path();
    }
  }
  EXPECT_GE(n, 4) << "configs/ holds the starter set";
}

TEST(Loader, EmbeddedDefault) {
  setenv("GW_EMBEDDED_MOCK_BASE", "http://127.0.0.1:9/v1", 1);
  const auto c = ok(load_string(embedded_default_yaml(), "<embedded default>"));
  ASSERT_EQ(c.model_list.size(), 2u);
  EXPECT_EQ(c.model_list[0].model_name, "mock-gpt");
  EXPECT_EQ(c.model_list[0].api_base, "http://127.0.0.1:9/v1");
  EXPECT_EQ(c.model_list[1].model_info.at("mode"), "embedding");
}

TEST(Loader, FullDeployment) {
  setenv("GW_TEST_KEY", "sk-secret-value", 1);
  auto r = load_string(R"(
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: https://eu.openai.azure.com/
      api_key: os.environ/GW_TEST_KEY
      api_version: "2024-02-15-preview"
      rpm: 600
      tpm: "100000"
      timeout: 300
      stream_timeout: 12.5
      max_retries: 2
      max_parallel_requests: 10
      weight: 3
    model_info: {id: gpt4o-eu, base_model: gpt-4o, input_cost_per_token: 2.5e-6}
)", "t.yaml");
  const auto c = ok(r);
  ASSERT_EQ(c.model_list.size(), 1u);
  const auto& d = c.model_list[0];
  EXPECT_EQ(d.provider, "azure");
  EXPECT_EQ(d.upstream_model, "gpt-4o-eu");
  EXPECT_EQ(d.api_key, "sk-secret-value");
  EXPECT_EQ(d.api_version, "2024-02-15-preview");
  EXPECT_EQ(d.rpm, 600);
  EXPECT_EQ(d.tpm, 100000);
  EXPECT_DOUBLE_EQ(*d.timeout, 300);
  EXPECT_DOUBLE_EQ(*d.stream_timeout, 12.5);
  EXPECT_EQ(d.max_retries, 2);
  EXPECT_EQ(d.max_parallel_requests, 10);
  EXPECT_DOUBLE_EQ(*d.weight, 3);
  EXPECT_EQ(d.id, "gpt4o-eu");
  EXPECT_EQ(d.model_info.at("base_model"), "gpt-4o");
  EXPECT_EQ(d.params.at("api_key"), "sk-secret-value");
  EXPECT_EQ(d.where.line, 3);
  for (auto& w : c.warnings) EXPECT_EQ(w.find("sk-secret-value"), std::string::npos) << w;
}

TEST(Loader, ProviderSplit) {
  const auto c = ok(load_string(R"(
model_list:
  - {model_name: a, litellm_params: {model: gpt-4o}}
  - {model_name: b, litellm_params: {model: openai/meta-llama/Llama-3-8B}}
  - {model_name: "*", litellm_params: {model: "OpenAI/*"}}
)", "t"));
  ASSERT_EQ(c.model_list.size(), 3u);
  EXPECT_EQ(c.model_list[0].provider, "openai");
  EXPECT_EQ(c.model_list[0].upstream_model, "gpt-4o");
  EXPECT_EQ(c.model_list[1].upstream_model, "meta-llama/Llama-3-8B");
  EXPECT_EQ(c.model_list[2].provider, "openai");
  EXPECT_EQ(c.model_list[2].upstream_model, "*");
}

TEST(Loader, EnvResolutionEverywhereAndMissingVariables) {
  setenv("GW_T_MASTER", "sk-master", 1);
  setenv("GW_T_RPM", "42", 1);
  unsetenv("GW_T_MISSING");
  const auto c = ok(load_string(R"(
model_list:
  - model_name: a
    litellm_params:
      model: openai/a
      api_key: os.environ/GW_T_MISSING
      rpm: os.environ/GW_T_RPM
      extra_headers: {x-team: os.environ/GW_T_MASTER}
general_settings:
  master_key: os.environ/GW_T_MASTER
litellm_settings:
  success_callback: [os.environ/GW_T_MISSING, langfuse]
)", "t"));
  EXPECT_EQ(c.general.master_key, "sk-master");
  EXPECT_EQ(c.model_list[0].rpm, 42);
  EXPECT_EQ(c.model_list[0].api_key, "");
  EXPECT_EQ(c.model_list[0].params.at("extra_headers"), R"({"x-team":"sk-master"})");
  EXPECT_EQ(c.litellm.success_callback, std::vector<std::string>{"langfuse"});
  EXPECT_TRUE(has_warning(c, "model_list[0].litellm_params.api_key: environment variable GW_T_MISSING is not set"));
}

TEST(Loader, EnvironmentVariablesApplyBeforeResolution) {
  unsetenv("GW_T_FROM_SECTION");
  const auto c = ok(load_string(R"(
model_list:
  - {model_name: a, litellm_params: {model: openai/a, api_base: os.environ/GW_T_FROM_SECTION}}
environment_variables:
  GW_T_FROM_SECTION: http://10.0.0.1:8000/v1
)", "t"));
  EXPECT_EQ(c.model_list[0].api_base, "http://10.0.0.1:8000/v1");
  EXPECT_STREQ(std::getenv("GW_T_FROM_SECTION"), "http://10.0.0.1:8000/v1");
  EXPECT_EQ(c.environment_variables.at("GW_T_FROM_SECTION"), "http://10.0.0.1:8000/v1");
}

TEST(Loader, MasterKeyFromEnvironmentFallback) {
  setenv("LITELLM_MASTER_KEY", "sk-env-master", 1);
  const auto c = ok(load_string("model_list: []\n", "t"));
  EXPECT_EQ(c.general.master_key, "sk-env-master");
  unsetenv("LITELLM_MASTER_KEY");
  const auto d = ok(load_string("general_settings: {master_key: plain}\n", "t"));
  EXPECT_TRUE(has_warning(d, "does not start with 'sk-'"));
}

TEST(Loader, SettingsSections) {
  const auto c = ok(load_string(R"(
model_list: []
litellm_settings: {request_timeout: 30, num_retries: 3, drop_params: True, callbacks: prometheus}
general_settings: {max_request_size_mb: 0.5, database_url: "postgresql://x"}
router_settings: {routing_strategy: simple-shuffle, num_retries: 2, timeout: 45, allowed_fails: 5, cooldown_time: 7.5}
gateway_settings: {io_threads: 3, max_connections: 100, keepalive_timeout: 5, drain_timeout: 2}
)", "t"));
  EXPECT_DOUBLE_EQ(c.litellm.request_timeout, 30);
  EXPECT_EQ(c.litellm.num_retries, 3);
  EXPECT_TRUE(c.litellm.drop_params);
  EXPECT_EQ(c.litellm.callbacks, std::vector<std::string>{"prometheus"});
  EXPECT_EQ(c.general.max_request_size_bytes, 512u * 1024u);
  EXPECT_EQ(c.general.database_url, "postgresql://x");
  EXPECT_EQ(c.router.num_retries, 2);
  EXPECT_DOUBLE_EQ(*c.router.timeout, 45);
  EXPECT_EQ(c.router.allowed_fails, 5);
  EXPECT_DOUBLE_EQ(c.router.cooldown_time, 7.5);
  EXPECT_EQ(c.gateway.io_threads, 3);
  EXPECT_EQ(c.gateway.max_connections, 100u);
  EXPECT_DOUBLE_EQ(c.gateway.keepalive_timeout, 5);
}

TEST(Loader, WarningsOncePerKeyPattern) {
  const auto c = ok(load_string(R"(
model_list:
  - {model_name: a, litellm_params: {model: vertex_ai/a, vertex_project: p1, aws_region_name: us-east-1}}
  - {model_name: b, litellm_params: {model: vertex_ai/b, vertex_project: p2}}
litellm_settings: {cache: true, fallbacks: [{a: [b]}]}
general_settings: {alerting: [slack], made_up_key: 1}
router_settings: {redis_host: localhost, routing_strategy: least-busy}
guardrails: []
totally_unknown: 1
)", "t"));
  auto count = [&](std::string_view needle) {
    return std::count_if(c.warnings.begin(), c.warnings.end(),
                         [&](const std::string& w) { return w.find(needle) != std::string::npos; });
  };
  EXPECT_EQ(count("model_list[].litellm_params.vertex_project: accepted but not implemented yet"), 1);
  EXPECT_EQ(count("aws_region_name"), 0);  // implemented (Bedrock)
  EXPECT_EQ(count("litellm_settings.cache: accepted but not implemented yet"), 1);
  EXPECT_EQ(count("litellm_settings.fallbacks"), 0);  // implemented
  EXPECT_EQ(count("general_settings.alerting: accepted but not implemented yet"), 1);
  EXPECT_EQ(count("general_settings.made_up_key: unknown key"), 1);
  EXPECT_EQ(count("router_settings.redis_host"), 0);  // implemented
  EXPECT_EQ(count("routing_strategy"), 0);
  EXPECT_EQ(count("guardrails: accepted but not implemented yet"), 1);
  EXPECT_EQ(count("totally_unknown: unknown key"), 1);
}

TEST(Loader, GeneratedIdsAreStableAndUnique) {
  const char* yaml = R"(
model_list:
  - {model_name: a, litellm_params: {model: openai/a, api_base: "http://x/v1"}}
  - {model_name: a, litellm_params: {model: openai/a, api_base: "http://x/v1"}}
  - {model_name: a, litellm_params: {model: openai/a, api_base: "http://y/v1"}}
)";
  const auto c1 = ok(load_string(yaml, "t"));
  auto c2 = std::get<gateway_config>(load_string(yaml, "t"));
  ASSERT_EQ(c1.model_list.size(), 3u);
  EXPECT_EQ(c1.model_list[0].id.size(), 16u);
  EXPECT_NE(c1.model_list[0].id, c1.model_list[1].id);
  EXPECT_NE(c1.model_list[0].id, c1.model_list[2].id);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c1.model_list[i].id, c2.model_list[i].id);
}

struct bad {
  const char* yaml;
  const char* where;   // "t.yaml:LINE"
  const char* path;
  const char* what;
};

class LoaderErrors : public ::testing::TestWithParam<bad> {};

TEST_P(LoaderErrors, NameFileLineAndPath) {
  const auto& b = GetParam();
  auto m = err(load_string(b.yaml, "t.yaml"));
  EXPECT_NE(m.find(b.where), std::string::npos) << m;
  EXPECT_NE(m.find(b.path), std::string::npos) << m;
  EXPECT_NE(m.find(b.what), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LoaderErrors,
    ::testing::Values(
        bad{"model_list:\n  - model_name: a\n    litellm_params: {model: openai/a\n", "t.yaml:", "", "invalid YAML"},
        bad{"model_list: {a: 1}\n", "t.yaml:1:", "model_list", "expected a list"},
        bad{"model_list:\n  - just-a-string\n", "t.yaml:2:", "model_list[0]", "expected a mapping"},
        bad{"model_list:\n  - litellm_params: {model: openai/a}\n", "t.yaml:2:", "model_list[0].model_name", "missing"},
        bad{"model_list:\n  - model_name: a\n", "t.yaml:2:", "model_list[0].litellm_params", "missing"},
        bad{"model_list:\n  - model_name: a\n    litellm_params: {api_base: x}\n", "t.yaml:3:",
            "model_list[0].litellm_params.model", "missing"},
        bad{"model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      rpm: ten\n",
            "t.yaml:5:", "model_list[0].litellm_params.rpm", "expected an integer, got 'ten'"},
        bad{"model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      tpm: 1.5\n",
            "t.yaml:5:", "model_list[0].litellm_params.tpm", "expected an integer"},
        bad{"model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      timeout: -1\n",
            "t.yaml:5:", "model_list[0].litellm_params.timeout", "greater than 0"},
        bad{"model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      max_parallel_requests: 0\n",
            "t.yaml:5:", "max_parallel_requests", "at least 1"},
        bad{"model_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n    model_info: {id: x}\n"
            "  - model_name: b\n    litellm_params: {model: openai/b}\n    model_info: {id: x}\n",
            "t.yaml:7:", "model_list[1].model_info.id", "duplicate id 'x'"},
        bad{"general_settings: [1]\n", "t.yaml:1:", "general_settings", "expected a mapping"},
        bad{"general_settings:\n  max_request_size_mb: big\n", "t.yaml:2:", "general_settings.max_request_size_mb",
            "expected a number"},
        bad{"litellm_settings:\n  drop_params: maybe\n", "t.yaml:2:", "litellm_settings.drop_params", "true or false"},
        bad{"litellm_settings:\n  success_callback: {a: 1}\n", "t.yaml:2:", "litellm_settings.success_callback",
            "list of names"},
        bad{"router_settings:\n  routing_strategy: fastest\n", "t.yaml:2:", "router_settings.routing_strategy",
            "simple-shuffle"},
        bad{"gateway_settings:\n  io_threads: many\n", "t.yaml:2:", "gateway_settings.io_threads", "integer"},
        bad{"- a\n- b\n", "t.yaml:1:", "", "mapping of sections"}),
    [](const ::testing::TestParamInfo<bad>& info) { return "case" + std::to_string(info.index); });

TEST(Loader, EnvValueInErrorIsHidden) {
  setenv("GW_T_SECRET_RPM", "sk-looks-secret", 1);
  auto m = err(load_string("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n"
                           "      rpm: os.environ/GW_T_SECRET_RPM\n",
                           "t.yaml"));
  EXPECT_EQ(m.find("sk-looks-secret"), std::string::npos) << m;
  EXPECT_NE(m.find("os.environ/GW_T_SECRET_RPM"), std::string::npos) << m;
}

TEST(Loader, MissingFile) {
  auto m = err(load_file("/nonexistent/config.yaml"));
  EXPECT_NE(m.find("/nonexistent/config.yaml"), std::string::npos);
}

TEST(Loader, EmptyDocumentLoadsWithWarning) {
  const auto c = ok(load_string("", "t"));
  EXPECT_TRUE(c.model_list.empty());
  EXPECT_TRUE(has_warning(c, "no models"));
}

}  // namespace
}  // namespace gw::config
