// Config for rate limits, retries, fallbacks, routing and the shared Redis.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

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

int warnings_with(const gateway_config& c, std::string_view needle) {
  return static_cast<int>(std::count_if(c.warnings.begin(), c.warnings.end(),
                                        [&](const std::string& w) { return w.find(needle) != std::string::npos; }));
}

std::string all_warnings(const gateway_config& c) {
  std::string s;
  for (const auto& w : c.warnings) s += w + "\n";
  return s;
}

/// Unsets the Redis variables for the test's duration and restores them after (so the
/// tests neither see nor change the environment they run in).
class redis_env {
 public:
  redis_env() {
    for (const char* n : k_names) {
      if (const char* v = std::getenv(n)) saved_[n] = v;
      unsetenv(n);
    }
  }
  ~redis_env() {
    for (const char* n : k_names) {
      if (auto it = saved_.find(n); it != saved_.end())
        setenv(n, it->second.c_str(), 1);
      else
        unsetenv(n);
    }
  }
  redis_env(const redis_env&) = delete;
  redis_env& operator=(const redis_env&) = delete;

 private:
  static constexpr const char* k_names[] = {"REDIS_URL",      "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
                                            "REDIS_USERNAME", "REDIS_DB",   "GW_T_RHOST", "GW_T_RPORT",
                                            "GW_T_RPASS",     "REDIS_SSL",  "REDIS_SSL_CERT_REQS",
                                            "REDIS_SSL_CA_CERTS"};
  std::map<std::string, std::string> saved_;
};

// Line 2: gpt, line 3: claude, line 4: openai/*.
const std::string k_groups = R"(model_list:
  - {model_name: gpt, litellm_params: {model: openai/a, num_retries: 2, rpm: 10, tpm: 1000}}
  - {model_name: claude, litellm_params: {model: openai/c}}
  - {model_name: "openai/*", litellm_params: {model: "openai/*"}}
)";

gateway_config load_ok(const std::string& extra) { return ok(load_string(k_groups + extra, "t.yaml")); }
std::string load_err(const std::string& extra) { return err(load_string(k_groups + extra, "t.yaml")); }

// ------------------------------------------------------------------ model_list

TEST(ConfigLimits, DeploymentLimitsAndRetries) {
  auto c = ok(load_string(R"(model_list:
  - model_name: m
    litellm_params: {model: openai/m, rpm: 0, tpm: 250000, max_parallel_requests: 4, num_retries: 0, max_retries: 5}
  - model_name: m
    litellm_params: {model: openai/m2}
)", "t.yaml"));
  ASSERT_EQ(c.model_list.size(), 2u);
  const auto& d = c.model_list[0];
  EXPECT_EQ(d.rpm, 0);
  EXPECT_EQ(d.tpm, 250'000);
  EXPECT_EQ(d.max_parallel_requests, 4);
  EXPECT_EQ(d.num_retries, 0);
  EXPECT_EQ(d.max_retries, 5);
  EXPECT_EQ(warnings_with(c, "num_retries"), 0) << all_warnings(c);
  const auto& e = c.model_list[1];
  EXPECT_FALSE(e.rpm || e.tpm || e.max_parallel_requests || e.num_retries || e.max_retries);
}

struct bad_value {
  std::string yaml;   // appended to k_groups (or a whole document when it starts with "model_list")
  std::string where;  // "t.yaml:LINE:COL"
  std::string path;
  std::string what;
};

class ConfigLimitsErrors : public ::testing::TestWithParam<bad_value> {};

TEST_P(ConfigLimitsErrors, NameFileLineAndPath) {
  const auto& b = GetParam();
  auto doc = b.yaml.rfind("model_list", 0) == 0 ? b.yaml : k_groups + b.yaml;
  auto m = err(load_string(doc, "t.yaml"));
  EXPECT_NE(m.find(b.where + ": " + b.path + ": " + b.what), std::string::npos)
      << "got:      " << m << "\nexpected: " << b.where << ": " << b.path << ": " << b.what;
}

std::string deployment_with(const std::string& param) {
  return "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n      " + param + "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Deployments, ConfigLimitsErrors,
    ::testing::Values(
        bad_value{deployment_with("rpm: -1"), "t.yaml:5:12", "model_list[0].litellm_params.rpm",
                  "must be at least 0, got -1"},
        bad_value{deployment_with("rpm: 1.5"), "t.yaml:5:12", "model_list[0].litellm_params.rpm",
                  "expected an integer, got '1.5'"},
        bad_value{deployment_with("tpm: -100"), "t.yaml:5:12", "model_list[0].litellm_params.tpm",
                  "must be at least 0"},
        bad_value{deployment_with("tpm: lots"), "t.yaml:5:12", "model_list[0].litellm_params.tpm",
                  "expected an integer, got 'lots'"},
        bad_value{deployment_with("max_parallel_requests: -2"), "t.yaml:5:30",
                  "model_list[0].litellm_params.max_parallel_requests", "must be at least 1"},
        bad_value{deployment_with("max_parallel_requests: 2.5"), "t.yaml:5:30",
                  "model_list[0].litellm_params.max_parallel_requests", "expected an integer"},
        bad_value{deployment_with("num_retries: -2"), "t.yaml:5:20", "model_list[0].litellm_params.num_retries",
                  "must be at least 0, got -2"},
        bad_value{deployment_with("num_retries: three"), "t.yaml:5:20", "model_list[0].litellm_params.num_retries",
                  "expected an integer"},
        bad_value{deployment_with("num_retries: 99999999999"), "t.yaml:5:20",
                  "model_list[0].litellm_params.num_retries", "must be at most 2147483647"},
        bad_value{deployment_with("max_retries: -1"), "t.yaml:5:20", "model_list[0].litellm_params.max_retries",
                  "must be at least 0"}),
    [](const ::testing::TestParamInfo<bad_value>& info) { return "case" + std::to_string(info.index); });

// ------------------------------------------------------------- general_settings

TEST(ConfigLimits, TokenRateLimitType) {
  EXPECT_EQ(load_ok("").general.token_rate_limit_type, "output");  // LiteLLM's default
  for (const char* t : {"input", "output", "total"}) {
    auto c = load_ok(std::string("general_settings: {token_rate_limit_type: ") + t + "}\n");
    EXPECT_EQ(c.general.token_rate_limit_type, t);
    EXPECT_EQ(warnings_with(c, "token_rate_limit_type"), 0) << all_warnings(c);
  }
}

// --------------------------------------------------------------- router_settings

TEST(ConfigLimits, RouterSettings) {
  redis_env env;
  auto c = load_ok(R"(router_settings:
  routing_strategy: latency-based-routing
  num_retries: 4
  timeout: 30
  stream_timeout: 12.5
  allowed_fails: 0
  cooldown_time: 0
  disable_cooldowns: true
  retry_after: 0.5
  max_fallbacks: 0
)");
  const auto& r = c.router;
  EXPECT_EQ(r.routing_strategy, "latency-based-routing");
  EXPECT_EQ(r.num_retries, 4);
  EXPECT_EQ(r.timeout, 30.0);
  EXPECT_EQ(r.stream_timeout, 12.5);
  EXPECT_EQ(r.allowed_fails, 0);
  EXPECT_DOUBLE_EQ(r.cooldown_time, 0);
  EXPECT_TRUE(r.disable_cooldowns);
  EXPECT_DOUBLE_EQ(r.retry_after, 0.5);
  EXPECT_EQ(r.max_fallbacks, 0);
  EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);

  // Defaults.
  auto d = load_ok("").router;
  EXPECT_EQ(d.routing_strategy, "simple-shuffle");
  EXPECT_FALSE(d.num_retries);
  EXPECT_FALSE(d.stream_timeout);
  EXPECT_EQ(d.allowed_fails, 3);
  EXPECT_DOUBLE_EQ(d.cooldown_time, 5);
  EXPECT_FALSE(d.disable_cooldowns);
  EXPECT_DOUBLE_EQ(d.retry_after, 0);
  EXPECT_EQ(d.max_fallbacks, 5);
  EXPECT_FALSE(d.redis.configured());
}

TEST(ConfigLimits, RetryAndAllowedFailsPolicies) {
  auto c = load_ok(R"(router_settings:
  retry_policy: {BadRequestErrorRetries: 2, AuthenticationErrorRetries: 0, TimeoutErrorRetries: 4,
                 RateLimitErrorRetries: 3, ContentPolicyViolationErrorRetries: 1, InternalServerErrorRetries: 5,
                 ServiceUnavailableErrorRetries: null}
  allowed_fails_policy: {RateLimitErrorAllowedFails: 100, TimeoutErrorAllowedFails: 2}
  model_group_retry_policy:
    gpt-4o: {RateLimitErrorRetries: 7}
)");
  using config::error_class;
  const auto& r = c.router;
  EXPECT_EQ(r.retry_policy.get(error_class::bad_request), 2);
  EXPECT_EQ(r.retry_policy.get(error_class::authentication), 0);
  EXPECT_EQ(r.retry_policy.get(error_class::timeout), 4);
  EXPECT_EQ(r.retry_policy.get(error_class::rate_limit), 3);
  EXPECT_EQ(r.retry_policy.get(error_class::content_policy), 1);
  EXPECT_EQ(r.retry_policy.get(error_class::internal_server), 5);
  EXPECT_FALSE(r.retry_policy.get(error_class::service_unavailable));  // null: the default
  EXPECT_FALSE(r.retry_policy.get(error_class::none));
  EXPECT_EQ(r.allowed_fails_policy.get(error_class::rate_limit), 100);
  EXPECT_EQ(r.allowed_fails_policy.get(error_class::timeout), 2);
  EXPECT_FALSE(r.allowed_fails_policy.get(error_class::bad_request));
  ASSERT_EQ(r.model_group_retry_policy.size(), 1u);
  EXPECT_EQ(r.model_group_retry_policy[0].first, "gpt-4o");
  EXPECT_EQ(r.model_group_retry_policy[0].second.get(error_class::rate_limit), 7);
  EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);
  EXPECT_FALSE(load_ok("").router.retry_policy.any());

  // Wrong names and values are errors that say what is allowed.
  auto e = load_err("router_settings: {retry_policy: {BadRequestErrorAllowedFails: 2}}\n");
  EXPECT_NE(e.find("router_settings.retry_policy.BadRequestErrorAllowedFails"), std::string::npos) << e;
  EXPECT_NE(e.find("BadRequestErrorRetries"), std::string::npos) << e;
  e = load_err("router_settings: {allowed_fails_policy: {RateLimitErrorAllowedFails: -1}}\n");
  EXPECT_NE(e.find("allowed_fails_policy.RateLimitErrorAllowedFails"), std::string::npos) << e;
  e = load_err("router_settings: {retry_policy: [1, 2]}\n");
  EXPECT_NE(e.find("expected a mapping"), std::string::npos) << e;
}

TEST(ConfigLimits, EveryRoutingStrategyWithoutWarning) {
  for (const char* s : {"simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
                        "latency-based-routing", "cost-based-routing"}) {
    auto c = load_ok(std::string("router_settings: {routing_strategy: ") + s + "}\n");
    EXPECT_EQ(c.router.routing_strategy, s);
    EXPECT_TRUE(c.warnings.empty()) << s << ": " << all_warnings(c);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Router, ConfigLimitsErrors,
    ::testing::Values(
        bad_value{"router_settings:\n  stream_timeout: 0\n", "t.yaml:6:19", "router_settings.stream_timeout",
                  "must be greater than 0"},
        bad_value{"router_settings:\n  stream_timeout: soon\n", "t.yaml:6:19", "router_settings.stream_timeout",
                  "expected a number, got 'soon'"},
        bad_value{"router_settings:\n  disable_cooldowns: perhaps\n", "t.yaml:6:22",
                  "router_settings.disable_cooldowns", "expected true or false"},
        bad_value{"router_settings:\n  retry_after: -1\n", "t.yaml:6:16", "router_settings.retry_after",
                  "must not be negative"},
        bad_value{"router_settings:\n  max_fallbacks: -1\n", "t.yaml:6:18", "router_settings.max_fallbacks",
                  "must be at least 0"},
        bad_value{"router_settings:\n  max_fallbacks: 1.5\n", "t.yaml:6:18", "router_settings.max_fallbacks",
                  "expected an integer"},
        bad_value{"router_settings:\n  allowed_fails: x\n", "t.yaml:6:18", "router_settings.allowed_fails",
                  "expected an integer, got 'x'"},
        bad_value{"router_settings:\n  allowed_fails: -3\n", "t.yaml:6:18", "router_settings.allowed_fails",
                  "must be at least 0"},
        bad_value{"router_settings:\n  cooldown_time: -5\n", "t.yaml:6:18", "router_settings.cooldown_time",
                  "must not be negative"},
        bad_value{"router_settings:\n  num_retries: -1\n", "t.yaml:6:16", "router_settings.num_retries",
                  "must be at least 0"},
        bad_value{"router_settings:\n  routing_strategy: round-robin\n", "t.yaml:6:21",
                  "router_settings.routing_strategy", "unknown strategy 'round-robin'"},
        bad_value{"router_settings:\n  redis_port: 0\n", "t.yaml:6:15", "router_settings.redis_port",
                  "expected a port from 1 to 65535, got '0'"},
        bad_value{"router_settings:\n  redis_port: 65536\n", "t.yaml:6:15", "router_settings.redis_port",
                  "expected a port from 1 to 65535"},
        bad_value{"router_settings:\n  redis_port: six\n", "t.yaml:6:15", "router_settings.redis_port",
                  "expected a port from 1 to 65535, got 'six'"},
        bad_value{"router_settings:\n  redis_db: -1\n", "t.yaml:6:13", "router_settings.redis_db",
                  "must be at least 0"},
        bad_value{"router_settings:\n  redis_url: \"rediss://h:6380?ssl_cert_reqs=maybe\"\n", "t.yaml:6:14",
                  "router_settings.redis_url", "ssl_cert_reqs must be none, optional or required, got 'maybe'"},
        bad_value{"router_settings:\n  redis_url: \"http://h:6380\"\n", "t.yaml:6:14", "router_settings.redis_url",
                  "expected redis[s]://[user[:password]@]host[:port][/db]"},
        bad_value{"router_settings:\n  redis_url: \"redis://h:0\"\n", "t.yaml:6:14", "router_settings.redis_url",
                  "invalid port '0' in the Redis URL"},
        bad_value{"router_settings:\n  redis_url: \"redis://h/zero\"\n", "t.yaml:6:14", "router_settings.redis_url",
                  "invalid database number 'zero' in the Redis URL"},
        bad_value{"router_settings:\n  redis_url: \"redis://u:p@/1\"\n", "t.yaml:6:14", "router_settings.redis_url",
                  "the Redis URL has no host"},
        bad_value{"general_settings:\n  token_rate_limit_type: words\n", "t.yaml:6:26",
                  "general_settings.token_rate_limit_type", "expected output, input or total, got 'words'"}),
    [](const ::testing::TestParamInfo<bad_value>& info) { return "case" + std::to_string(info.index); });

// --------------------------------------------------------------------- fallbacks

using fallbacks = std::vector<std::pair<std::string, std::vector<std::string>>>;

TEST(ConfigFallbacks, LiteLLMFormatsAndAlternatives) {
  auto c = load_ok(R"(router_settings:
  fallbacks: [{"gpt": ["claude", "openai/gpt-5"]}, {"claude": ["gpt"]}]
  context_window_fallbacks: {"gpt": ["claude"], "claude": "gpt"}
  content_policy_fallbacks: [{"gpt": "claude", "claude": []}]
  default_fallbacks: ["claude", "gpt"]
)");
  EXPECT_EQ(c.router.fallbacks, (fallbacks{{"gpt", {"claude", "openai/gpt-5"}}, {"claude", {"gpt"}}}));
  EXPECT_EQ(c.router.context_window_fallbacks, (fallbacks{{"gpt", {"claude"}}, {"claude", {"gpt"}}}));
  EXPECT_EQ(c.router.content_policy_fallbacks, (fallbacks{{"gpt", {"claude"}}, {"claude", {}}}));
  EXPECT_EQ(c.router.default_fallbacks, (std::vector<std::string>{"claude", "gpt"}));
  EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);
  // A single name for default_fallbacks too.
  EXPECT_EQ(load_ok("litellm_settings: {default_fallbacks: claude}\n").router.default_fallbacks,
            std::vector<std::string>{"claude"});
  // Nothing set: nothing.
  auto n = load_ok("");
  EXPECT_TRUE(n.router.fallbacks.empty() && n.router.context_window_fallbacks.empty() &&
              n.router.content_policy_fallbacks.empty() && n.router.default_fallbacks.empty());
}

TEST(ConfigFallbacks, RouterSettingsWinPerKind) {
  auto c = load_ok(R"(litellm_settings:
  fallbacks: [{"gpt": ["claude"]}]
  context_window_fallbacks: [{"gpt": ["claude"]}]
  content_policy_fallbacks: [{"gpt": ["claude"]}]
  default_fallbacks: ["claude"]
router_settings:
  context_window_fallbacks: [{"claude": ["gpt"]}]
  default_fallbacks: ["gpt"]
  content_policy_fallbacks: []
)");
  EXPECT_EQ(c.router.fallbacks, (fallbacks{{"gpt", {"claude"}}}));                  // litellm_settings only
  EXPECT_EQ(c.router.context_window_fallbacks, (fallbacks{{"claude", {"gpt"}}}));   // router wins
  EXPECT_TRUE(c.router.content_policy_fallbacks.empty());                           // router's empty list wins
  EXPECT_EQ(c.router.default_fallbacks, std::vector<std::string>{"gpt"});
  EXPECT_EQ(warnings_with(c, "fallbacks"), 0) << all_warnings(c);
  // The list not used is not validated either.
  auto d = load_ok(R"(litellm_settings: {fallbacks: [{"gpt": ["nowhere"]}]}
router_settings: {fallbacks: [{"gpt": ["claude"]}]}
)");
  EXPECT_EQ(d.router.fallbacks, (fallbacks{{"gpt", {"claude"}}}));
}

TEST(ConfigFallbacks, TargetsResolveLikeTheGateway) {
  // Exact names, and names a wildcard group serves ("openai/*" serves "openai/<x>").
  auto c = load_ok("router_settings: {fallbacks: [{gpt: [\"openai/*\", \"openai/gpt-4o-mini\"]}]}\n");
  EXPECT_EQ(c.router.fallbacks, (fallbacks{{"gpt", {"openai/*", "openai/gpt-4o-mini"}}}));
  // "openai/" alone is not served by "openai/*".
  auto e = load_err("router_settings: {fallbacks: [{gpt: [\"openai/\"]}]}\n");
  EXPECT_NE(e.find("fallback target 'openai/' is not a model group of model_list"), std::string::npos) << e;
  // "*" serves every name.
  auto any = ok(load_string(R"(model_list:
  - {model_name: gpt, litellm_params: {model: openai/a}}
  - {model_name: "*", litellm_params: {model: "openai/*"}}
router_settings: {fallbacks: [{gpt: [anything-at-all]}]}
)", "t.yaml"));
  EXPECT_EQ(any.router.fallbacks, (fallbacks{{"gpt", {"anything-at-all"}}}));
}

INSTANTIATE_TEST_SUITE_P(
    Fallbacks, ConfigLimitsErrors,
    ::testing::Values(
        bad_value{"router_settings:\n  fallbacks: [{\"gpt\": [\"claude\", \"llama\"]}]\n", "t.yaml:6:34",
                  "router_settings.fallbacks[0].gpt[1]", "fallback target 'llama' is not a model group of model_list"},
        bad_value{"router_settings:\n  fallbacks:\n    - gpt: [claude]\n    - claude:\n        - gpt\n        - nope\n",
                  "t.yaml:10:11", "router_settings.fallbacks[1].claude[1]",
                  "fallback target 'nope' is not a model group of model_list"},
        bad_value{"litellm_settings:\n  context_window_fallbacks: {gpt: llama}\n", "t.yaml:6:35",
                  "litellm_settings.context_window_fallbacks.gpt", "fallback target 'llama' is not a model group"},
        bad_value{"litellm_settings:\n  default_fallbacks: [claude, llama]\n", "t.yaml:6:31",
                  "litellm_settings.default_fallbacks[1]", "fallback target 'llama' is not a model group"},
        bad_value{"router_settings:\n  default_fallbacks: llama\n", "t.yaml:6:22", "router_settings.default_fallbacks",
                  "fallback target 'llama' is not a model group"},
        bad_value{"router_settings:\n  fallbacks: [{gpt: [claude, gpt]}]\n", "t.yaml:6:30",
                  "router_settings.fallbacks[0].gpt[1]", "model group 'gpt' cannot fall back to itself"},
        bad_value{"router_settings:\n  fallbacks: [gpt, claude]\n", "t.yaml:6:15", "router_settings.fallbacks[0]",
                  "expected a mapping {model group: [fallback groups]}"},
        bad_value{"router_settings:\n  fallbacks: gpt\n", "t.yaml:6:14", "router_settings.fallbacks",
                  "expected a list of {model group: [fallback groups]}"},
        bad_value{"router_settings:\n  fallbacks: [{gpt: {claude: 1}}]\n", "t.yaml:6:21",
                  "router_settings.fallbacks[0].gpt", "expected a list of model groups"},
        bad_value{"router_settings:\n  fallbacks: [{gpt: [[claude]]}]\n", "t.yaml:6:22",
                  "router_settings.fallbacks[0].gpt[0]", "expected a model group name"},
        bad_value{"litellm_settings:\n  default_fallbacks: {a: b}\n", "t.yaml:6:22", "litellm_settings.default_fallbacks",
                  "expected a list of model groups"}),
    [](const ::testing::TestParamInfo<bad_value>& info) { return "case" + std::to_string(info.index); });

TEST(ConfigFallbacks, UnknownSourceGroupIsAWarning) {
  auto c = load_ok("router_settings: {fallbacks: [{nope: [gpt]}, {nope: [claude]}]}\n");
  EXPECT_EQ(c.router.fallbacks, (fallbacks{{"nope", {"gpt"}}, {"nope", {"claude"}}}));
  EXPECT_EQ(warnings_with(c, "router_settings.fallbacks[0].nope: 'nope' is not a model group of model_list"), 1)
      << all_warnings(c);
  EXPECT_EQ(warnings_with(c, "router_settings.fallbacks[1].nope"), 1) << all_warnings(c);
  // A source a wildcard group serves is a real group.
  EXPECT_TRUE(load_ok("router_settings: {fallbacks: [{\"openai/gpt-5\": [gpt]}]}\n").warnings.empty());
}

// --------------------------------------------------------------------------- Redis

TEST(ConfigRedis, NoneByDefault) {
  redis_env env;
  auto r = load_ok("").router.redis;
  EXPECT_FALSE(r.configured());
  EXPECT_EQ(r.from, "");
  EXPECT_EQ(r.port, 6379);
}

TEST(ConfigRedis, RouterSettingsHost) {
  redis_env env;
  auto c = load_ok(R"(router_settings:
  redis_host: r1
  redis_port: 6380
  redis_password: pw
  redis_username: me
  redis_db: 3
)");
  const auto& r = c.router.redis;
  EXPECT_EQ(r.host, "r1");
  EXPECT_EQ(r.port, 6380);
  EXPECT_EQ(r.password, "pw");
  EXPECT_EQ(r.username, "me");
  EXPECT_EQ(r.db, 3);
  EXPECT_EQ(r.from, "router_settings.redis_host");
  EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);
}

TEST(ConfigRedis, RouterSettingsFromTheEnvironment) {
  redis_env env;
  setenv("GW_T_RHOST", "envhost", 1);
  setenv("GW_T_RPORT", "6400", 1);
  setenv("GW_T_RPASS", "s3cret", 1);
  auto c = load_ok(R"(router_settings:
  redis_host: os.environ/GW_T_RHOST
  redis_port: os.environ/GW_T_RPORT
  redis_password: os.environ/GW_T_RPASS
)");
  EXPECT_EQ(c.router.redis.host, "envhost");
  EXPECT_EQ(c.router.redis.port, 6400);
  EXPECT_EQ(c.router.redis.password, "s3cret");
  // A port that is not a number: an error naming the path, not echoing the value.
  setenv("GW_T_RPORT", "sixty-four-hundred", 1);
  auto e = load_err("router_settings:\n  redis_host: h\n  redis_port: os.environ/GW_T_RPORT\n");
  EXPECT_NE(e.find("t.yaml:7:15: router_settings.redis_port: expected a port from 1 to 65535"), std::string::npos)
      << e;
  EXPECT_EQ(e.find("sixty-four-hundred"), std::string::npos) << e;
  // An unset variable for the host: warned, and the next source is used.
  unsetenv("GW_T_RHOST");
  setenv("REDIS_HOST", "fromenv", 1);
  c = load_ok("router_settings: {redis_host: os.environ/GW_T_RHOST}\n");
  EXPECT_EQ(warnings_with(c, "router_settings.redis_host: environment variable GW_T_RHOST is not set"), 1)
      << all_warnings(c);
  EXPECT_EQ(c.router.redis.host, "fromenv");
  EXPECT_EQ(c.router.redis.from, "$REDIS_HOST");
}

TEST(ConfigRedis, Urls) {
  redis_env env;
  struct want {
    const char* url;
    const char* host;
    int port;
    const char* user;
    const char* password;
    int db;
  };
  for (const auto& w : {want{"redis://h3", "h3", 6379, "", "", 0}, want{"redis://h3:7000", "h3", 7000, "", "", 0},
                        want{"redis://u:p@h3:7000/2", "h3", 7000, "u", "p", 2},
                        want{"redis://:only-pw@h3/5", "h3", 6379, "", "only-pw", 5},
                        want{"redis://only-pw@h3", "h3", 6379, "", "only-pw", 0},
                        want{"redis://u:p%40ss%3Aw@h3/", "h3", 6379, "u", "p@ss:w", 0},
                        want{"redis://u:p@ss@h3:1", "h3", 1, "u", "p@ss", 0},
                        want{"redis://[::1]:6380/1", "::1", 6380, "", "", 1},
                        want{"redis://[fe80::2]", "fe80::2", 6379, "", "", 0}}) {
    auto c = load_ok(std::string("router_settings: {redis_url: \"") + w.url + "\"}\n");
    const auto& r = c.router.redis;
    EXPECT_EQ(r.host, w.host) << w.url;
    EXPECT_EQ(r.port, w.port) << w.url;
    EXPECT_EQ(r.username, w.user) << w.url;
    EXPECT_EQ(r.password, w.password) << w.url;
    EXPECT_EQ(r.db, w.db) << w.url;
    EXPECT_EQ(r.from, "router_settings.redis_url") << w.url;
  }
  for (const char* bad : {"redis://", "redis://h:", "redis://h:x", "redis://[::1", "redis://[::1]x",
                          "redis://u:%zz@h", "redis://h/-1"}) {
    auto e = load_err(std::string("router_settings: {redis_url: \"") + bad + "\"}\n");
    EXPECT_NE(e.find("t.yaml:5:30: "), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find("router_settings.redis_url: "), std::string::npos) << bad << ": " << e;
  }
  // The password in a bad URL is never echoed.
  auto e = load_err("router_settings: {redis_url: \"redis://u:hunter2@h:99999\"}\n");
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

TEST(ConfigRedis, Tls) {
  redis_env env;
  // rediss:// turns TLS on; redis-py's query options set verification and the CA file.
  auto c = load_ok("router_settings: {redis_url: \"rediss://u:p@cache.example:6380/1\"}\n");
  EXPECT_TRUE(c.router.redis.tls);
  EXPECT_TRUE(c.router.redis.tls_verify);
  EXPECT_EQ(c.router.redis.tls_ca_file, "");
  EXPECT_EQ(c.router.redis.host, "cache.example");
  EXPECT_EQ(c.router.redis.port, 6380);
  EXPECT_EQ(c.router.redis.password, "p");
  EXPECT_EQ(c.router.redis.db, 1);
  c = load_ok("router_settings: {redis_url: \"rediss://h?ssl_cert_reqs=none&ssl_ca_certs=%2Fetc%2Fca.pem\"}\n");
  EXPECT_TRUE(c.router.redis.tls);
  EXPECT_FALSE(c.router.redis.tls_verify);
  EXPECT_EQ(c.router.redis.tls_ca_file, "/etc/ca.pem");
  EXPECT_EQ(c.router.redis.host, "h");
  c = load_ok("router_settings: {redis_url: \"redis://h:7000\"}\n");
  EXPECT_FALSE(c.router.redis.tls);
  // cache_params as LiteLLM passes them to redis-py: ssl, ssl_cert_reqs, ssl_ca_certs,
  // also next to a url.
  c = load_ok("litellm_settings:\n  cache_params: {type: redis, host: r2, ssl: true, ssl_cert_reqs: required, "
              "ssl_ca_certs: /ca.pem}\n");
  EXPECT_TRUE(c.router.redis.tls);
  EXPECT_TRUE(c.router.redis.tls_verify);
  EXPECT_EQ(c.router.redis.tls_ca_file, "/ca.pem");
  c = load_ok("litellm_settings:\n  cache_params: {url: \"redis://r3:1\", ssl: true, ssl_cert_reqs: none}\n");
  EXPECT_EQ(c.router.redis.host, "r3");
  EXPECT_TRUE(c.router.redis.tls);
  EXPECT_FALSE(c.router.redis.tls_verify);
  auto e = load_err("litellm_settings:\n  cache_params: {host: r2, ssl_cert_reqs: sometimes}\n");
  EXPECT_NE(e.find("litellm_settings.cache_params.ssl_cert_reqs: ssl_cert_reqs must be none"), std::string::npos) << e;
  // The environment's TLS settings apply to whichever source won.
  setenv("REDIS_SSL", "true", 1);
  setenv("REDIS_SSL_CA_CERTS", "/env/ca.pem", 1);
  c = load_ok("router_settings: {redis_host: h4}\n");
  EXPECT_TRUE(c.router.redis.tls);
  EXPECT_TRUE(c.router.redis.tls_verify);
  EXPECT_EQ(c.router.redis.tls_ca_file, "/env/ca.pem");
  setenv("REDIS_SSL_CERT_REQS", "none", 1);
  c = load_ok("router_settings: {redis_host: h4}\n");
  EXPECT_FALSE(c.router.redis.tls_verify);
  setenv("REDIS_SSL", "maybe", 1);
  e = load_err("router_settings: {redis_host: h4}\n");
  EXPECT_NE(e.find("$REDIS_SSL: expected true or false, got 'maybe'"), std::string::npos) << e;
}

TEST(ConfigRedis, CacheParams) {
  redis_env env;
  auto c = load_ok(R"(litellm_settings:
  cache: true
  cache_params: {type: redis, host: r2, port: 6381, password: pw2, username: u2, db: 1, ttl: 600, namespace: x}
)");
  const auto& r = c.router.redis;
  EXPECT_EQ(r.host, "r2");
  EXPECT_EQ(r.port, 6381);
  EXPECT_EQ(r.password, "pw2");
  EXPECT_EQ(r.username, "u2");
  EXPECT_EQ(r.db, 1);
  EXPECT_EQ(r.from, "litellm_settings.cache_params");
  // The response cache itself is not implemented yet: warned; the Redis part is not.
  EXPECT_EQ(warnings_with(c, "litellm_settings.cache: accepted but not implemented yet"), 1) << all_warnings(c);
  EXPECT_EQ(warnings_with(c, "litellm_settings.cache_params.ttl: accepted but not implemented yet"), 1);
  EXPECT_EQ(warnings_with(c, "litellm_settings.cache_params.namespace"), 1);
  for (const char* k : {"cache_params.type", "cache_params.host", "cache_params.port", "cache_params.password",
                        "cache_params.username", "cache_params.db"})
    EXPECT_EQ(warnings_with(c, k), 0) << k << "\n" << all_warnings(c);

  // No type but a host: Redis (LiteLLM's default cache type is redis... when a host is given).
  EXPECT_EQ(load_ok("litellm_settings: {cache_params: {host: r3}}\n").router.redis.host, "r3");
  // A URL; it wins over the separate fields, wherever it is written.
  auto u = load_ok("litellm_settings: {cache_params: {url: \"redis://:p@r4:7001/2\", host: other, port: 1}}\n");
  EXPECT_EQ(u.router.redis.host, "r4");
  EXPECT_EQ(u.router.redis.port, 7001);
  EXPECT_EQ(u.router.redis.password, "p");
  EXPECT_EQ(u.router.redis.db, 2);
  // Another cache type: not a Redis for limits.
  EXPECT_FALSE(load_ok("litellm_settings: {cache_params: {type: local, host: r5}}\n").router.redis.configured());
  EXPECT_FALSE(load_ok("litellm_settings: {cache_params: {type: s3, ttl: 5}}\n").router.redis.configured());
  // Bad values name their path.
  auto e = load_err("litellm_settings:\n  cache_params: {type: redis, host: h, port: 0}\n");
  EXPECT_NE(e.find("t.yaml:6:46: litellm_settings.cache_params.port: expected a port"), std::string::npos) << e;
  e = load_err("litellm_settings:\n  cache_params: {url: \"rediss://h?ssl_cert_reqs=x\"}\n");
  EXPECT_NE(e.find("litellm_settings.cache_params.url: ssl_cert_reqs must be"), std::string::npos) << e;
  e = load_err("litellm_settings:\n  cache_params: {url: \"redis://h?ssl=maybe\"}\n");
  EXPECT_NE(e.find("litellm_settings.cache_params.url: the Redis URL's ssl option must be true or false, got 'maybe'"),
            std::string::npos)
      << e;
  EXPECT_TRUE(load_ok("litellm_settings:\n  cache_params: {url: \"redis://h?ssl=True\"}\n").router.redis.tls);
  EXPECT_FALSE(load_ok("litellm_settings:\n  cache_params: {url: \"rediss://h?ssl=0\"}\n").router.redis.tls);
}

TEST(ConfigRedis, Precedence) {
  redis_env env;
  setenv("REDIS_URL", "redis://envurl:7100/4", 1);
  setenv("REDIS_HOST", "envhost", 1);
  setenv("REDIS_PORT", "7200", 1);
  setenv("REDIS_PASSWORD", "envpw", 1);
  setenv("REDIS_USERNAME", "envuser", 1);
  setenv("REDIS_DB", "6", 1);
  const std::string cache = "litellm_settings: {cache_params: {type: redis, host: cachehost, port: 7300}}\n";

  auto c = load_ok(cache + "router_settings: {redis_url: \"redis://urlhost:7400\", redis_host: routerhost}\n");
  EXPECT_EQ(c.router.redis.host, "urlhost");
  EXPECT_EQ(c.router.redis.from, "router_settings.redis_url");

  c = load_ok(cache + "router_settings: {redis_host: routerhost}\n");
  EXPECT_EQ(c.router.redis.host, "routerhost");
  EXPECT_EQ(c.router.redis.port, 6379);  // nothing mixed in from the other sources
  EXPECT_EQ(c.router.redis.password, "");
  EXPECT_EQ(c.router.redis.from, "router_settings.redis_host");

  c = load_ok(cache);
  EXPECT_EQ(c.router.redis.host, "cachehost");
  EXPECT_EQ(c.router.redis.port, 7300);
  EXPECT_EQ(c.router.redis.from, "litellm_settings.cache_params");

  c = load_ok("");
  EXPECT_EQ(c.router.redis.host, "envurl");
  EXPECT_EQ(c.router.redis.port, 7100);
  EXPECT_EQ(c.router.redis.db, 4);
  EXPECT_EQ(c.router.redis.from, "$REDIS_URL");

  unsetenv("REDIS_URL");
  c = load_ok("");
  EXPECT_EQ(c.router.redis.host, "envhost");
  EXPECT_EQ(c.router.redis.port, 7200);
  EXPECT_EQ(c.router.redis.password, "envpw");
  EXPECT_EQ(c.router.redis.username, "envuser");
  EXPECT_EQ(c.router.redis.db, 6);
  EXPECT_EQ(c.router.redis.from, "$REDIS_HOST");

  setenv("REDIS_PORT", "notaport", 1);
  auto e = load_err("");
  EXPECT_NE(e.find("t.yaml: $REDIS_PORT: expected a port from 1 to 65535, got 'notaport'"), std::string::npos) << e;
  setenv("REDIS_PORT", "7200", 1);
  setenv("REDIS_DB", "-1", 1);
  EXPECT_NE(load_err("").find("$REDIS_DB"), std::string::npos);
  setenv("REDIS_URL", "rediss://secure:6380?ssl_cert_reqs=bad", 1);
  e = load_err("");
  EXPECT_NE(e.find("$REDIS_URL: ssl_cert_reqs must be none"), std::string::npos) << e;
  // A source above the environment means the environment is not read at all.
  EXPECT_EQ(load_ok("router_settings: {redis_host: h}\n").router.redis.host, "h");
}

// ------------------------------------------------------------------ gateway_settings

TEST(ConfigLimits, GatewaySettings) {
  auto c = load_ok(R"(gateway_settings:
  rate_limit_window: 2.5
  rate_limit_buckets: 3600
  redis_timeout: 0.05
  rate_limit_local_share: 0
  rate_limit_precheck: false
  retry_backoff_base: 0
  retry_backoff_max: 2
  retry_after_max: 0
)");
  const auto& g = c.gateway;
  EXPECT_DOUBLE_EQ(g.rate_limit_window, 2.5);
  EXPECT_EQ(g.rate_limit_buckets, 3600);
  EXPECT_DOUBLE_EQ(g.redis_timeout, 0.05);
  EXPECT_DOUBLE_EQ(g.rate_limit_local_share, 0);
  EXPECT_FALSE(g.rate_limit_precheck);
  EXPECT_DOUBLE_EQ(g.retry_backoff_base, 0);
  EXPECT_DOUBLE_EQ(g.retry_backoff_max, 2);
  EXPECT_DOUBLE_EQ(g.retry_after_max, 0);
  EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);
  EXPECT_DOUBLE_EQ(load_ok("gateway_settings: {rate_limit_local_share: 1}\n").gateway.rate_limit_local_share, 1);
  EXPECT_EQ(load_ok("gateway_settings: {rate_limit_buckets: 1}\n").gateway.rate_limit_buckets, 1);
  // Defaults.
  auto d = load_ok("").gateway;
  EXPECT_DOUBLE_EQ(d.rate_limit_window, 60);
  EXPECT_EQ(d.rate_limit_buckets, 60);
  EXPECT_DOUBLE_EQ(d.redis_timeout, 0.1);
  EXPECT_DOUBLE_EQ(d.rate_limit_local_share, 0);
  EXPECT_TRUE(d.rate_limit_precheck);
}

INSTANTIATE_TEST_SUITE_P(
    Gateway, ConfigLimitsErrors,
    ::testing::Values(
        bad_value{"gateway_settings:\n  rate_limit_window: 0\n", "t.yaml:6:22", "gateway_settings.rate_limit_window",
                  "must be greater than 0"},
        bad_value{"gateway_settings:\n  rate_limit_window: -60\n", "t.yaml:6:22",
                  "gateway_settings.rate_limit_window", "must be greater than 0"},
        bad_value{"gateway_settings:\n  rate_limit_buckets: 0\n", "t.yaml:6:23", "gateway_settings.rate_limit_buckets",
                  "must be at least 1"},
        bad_value{"gateway_settings:\n  rate_limit_buckets: 3601\n", "t.yaml:6:23",
                  "gateway_settings.rate_limit_buckets", "must be at most 3600"},
        bad_value{"gateway_settings:\n  rate_limit_buckets: 2.5\n", "t.yaml:6:23",
                  "gateway_settings.rate_limit_buckets", "expected an integer"},
        bad_value{"gateway_settings:\n  redis_timeout: 0\n", "t.yaml:6:18", "gateway_settings.redis_timeout",
                  "must be greater than 0"},
        bad_value{"gateway_settings:\n  rate_limit_local_share: 1.5\n", "t.yaml:6:27",
                  "gateway_settings.rate_limit_local_share", "expected a fraction in [0, 1]"},
        bad_value{"gateway_settings:\n  rate_limit_local_share: -0.1\n", "t.yaml:6:27",
                  "gateway_settings.rate_limit_local_share", "must not be negative"},
        bad_value{"gateway_settings:\n  rate_limit_precheck: sometimes\n", "t.yaml:6:24",
                  "gateway_settings.rate_limit_precheck", "expected true or false"},
        bad_value{"gateway_settings:\n  retry_backoff_base: -1\n", "t.yaml:6:23", "gateway_settings.retry_backoff_base",
                  "must not be negative"},
        bad_value{"gateway_settings:\n  retry_backoff_max: -1\n", "t.yaml:6:22", "gateway_settings.retry_backoff_max",
                  "must not be negative"},
        bad_value{"gateway_settings:\n  retry_after_max: x\n", "t.yaml:6:20", "gateway_settings.retry_after_max",
                  "expected a number"}),
    [](const ::testing::TestParamInfo<bad_value>& info) { return "case" + std::to_string(info.index); });

}  // namespace
}  // namespace gw::config
