// retry_state: what a request does after a failed attempt, with a fixed random source so
// that backoff and jitter are exact.

#include <gtest/gtest.h>

#include <deque>
#include <memory>

#include "gw/routing/registry.hpp"
#include "gw/routing/retry_state.hpp"

namespace gw::routing {
namespace {

using providers::failure_kind;
using action = retry_state::action;

/// Returns the queued values in order, then 0.
class fixed_random final : public random_source {
 public:
  explicit fixed_random(std::deque<double> v = {}) : v_(std::move(v)) {}
  double next() noexcept override {
    if (v_.empty()) return 0;
    double x = v_.front();
    v_.pop_front();
    return x;
  }

 private:
  std::deque<double> v_;
};

struct fixture : ::testing::Test {
  config::router_settings router;
  retry_settings settings;
  std::vector<std::unique_ptr<deployment_runtime>> deps;
  model_group group;

  void SetUp() override {
    settings.router = &router;
    settings.backoff_base = std::chrono::milliseconds(100);
    settings.backoff_max = std::chrono::milliseconds(1000);
    settings.retry_after_max = std::chrono::milliseconds(5000);
    group.name = "a";
    set_retries(2);
  }
  void set_retries(int n) {
    deps.clear();
    group.deployments.clear();
    for (int i = 0; i < 2; ++i) {
      deps.push_back(std::make_unique<deployment_runtime>());
      deps.back()->num_retries = n;
      group.deployments.push_back(deps.back().get());
    }
  }
  static attempt_failure status(int s, std::int64_t retry_after = 0) {
    attempt_failure f;
    f.kind = failure_kind::status;
    f.status = f.provider_status = s;
    f.retry_after_ms = retry_after;
    return f;
  }
  static attempt_failure transport(bool timeout = false) {
    attempt_failure f;
    f.kind = failure_kind::transport;
    f.status = timeout ? 504 : 502;
    f.timeout = timeout;
    return f;
  }
  std::vector<std::string> drain_fallbacks(retry_state& r) {
    std::vector<std::string> out;
    while (auto* t = r.next_fallback()) {
      out.push_back(t->model);
      r.took_fallback();
    }
    return out;
  }
};

TEST_F(fixture, RetriesAnotherDeploymentWithJitteredBackoff) {
  fixed_random rnd({0.0, 1.0});
  retry_state r(settings, rnd, "a");
  auto d = r.on_failure(group, status(503), true);
  EXPECT_EQ(d.what, action::retry);
  EXPECT_EQ(d.delay.count(), 50);  // 100 * (0.5 + 0.5 * 0)
  EXPECT_FALSE(d.reset_tried);
  d = r.on_failure(group, status(503), true);
  EXPECT_EQ(d.what, action::retry);
  EXPECT_EQ(d.delay.count(), 200);  // 200 * (0.5 + 0.5 * 1): the second retry doubles
  EXPECT_EQ(r.retries(), 2);
  // num_retries is 2: the third failure gives up (no fallbacks configured).
  d = r.on_failure(group, status(503), true);
  EXPECT_EQ(d.what, action::give_up);
  EXPECT_EQ(r.retries(), 2);
}

TEST_F(fixture, BackoffIsCappedAndRetryAfterMinApplies) {
  set_retries(10);
  settings.retry_after_min = std::chrono::milliseconds(80);
  fixed_random rnd({0, 0, 0, 0, 0, 0, 0});
  retry_state r(settings, rnd, "a");
  std::vector<std::int64_t> delays;
  for (int i = 0; i < 6; ++i) delays.push_back(r.on_failure(group, transport(), true).delay.count());
  // base 100 * 2^n * 0.5, at least 80, the backoff itself capped at 1000.
  EXPECT_EQ(delays, (std::vector<std::int64_t>{80, 100, 200, 400, 500, 500}));
}

TEST_F(fixture, SameDeploymentsAgainHonourRetryAfter) {
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  auto d = r.on_failure(group, status(429, 1500), false);
  EXPECT_EQ(d.what, action::retry);
  EXPECT_TRUE(d.reset_tried);
  EXPECT_EQ(d.delay.count(), 1500);
  // A retry-after longer than retry_after_max is not waited for: no retry.
  d = r.on_failure(group, status(429, 60'000), false);
  EXPECT_EQ(d.what, action::give_up);
  EXPECT_EQ(r.retries(), 1);
}

TEST_F(fixture, ClientErrorsAreNotRetriedNorFallenBackFrom) {
  router.fallbacks = {{"a", {"b"}}};
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  auto d = r.on_failure(group, status(400), true);
  EXPECT_EQ(d.what, action::give_up);
  EXPECT_EQ(r.retries(), 0);
}

TEST_F(fixture, AuthErrorsFallBackWithoutRetrying) {
  router.fallbacks = {{"a", {"b", "c"}}};
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  auto d = r.on_failure(group, status(401), true);
  EXPECT_EQ(d.what, action::fallback);
  EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"b", "c"}));
}

TEST_F(fixture, FallbacksAfterRetriesInOrderUpToMaxFallbacks) {
  set_retries(0);
  router.fallbacks = {{"x", {"nope"}}, {"a", {"b", "c", "d"}}};
  settings.max_fallbacks = 2;
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  auto d = r.on_failure(group, status(500), true);
  EXPECT_EQ(d.what, action::fallback);
  EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(r.fallbacks(), 2);
}

TEST_F(fixture, EachFallbackGroupGetsItsOwnRetries) {
  set_retries(1);
  router.fallbacks = {{"a", {"b"}}};
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  EXPECT_EQ(r.on_failure(group, status(500), true).what, action::retry);
  EXPECT_EQ(r.on_failure(group, status(500), true).what, action::fallback);
  ASSERT_NE(r.next_fallback(), nullptr);
  r.took_fallback();
  // In group b: one retry again, then nothing is left.
  EXPECT_EQ(r.on_failure(group, status(500), true).what, action::retry);
  EXPECT_EQ(r.on_failure(group, status(500), true).what, action::give_up);
  EXPECT_EQ(r.retries(), 2);
}

TEST_F(fixture, DefaultFallbacksWhenTheGroupHasNone) {
  set_retries(0);
  router.default_fallbacks = {"z"};
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  EXPECT_EQ(r.on_failure(group, transport(true), true).what, action::fallback);
  EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"z"}));
}

TEST_F(fixture, ContextWindowAndContentPolicyHaveTheirOwnLists) {
  set_retries(0);
  router.fallbacks = {{"a", {"general"}}};
  router.context_window_fallbacks = {{"a", {"bigger"}}};
  router.content_policy_fallbacks = {{"a", {"lenient"}}};
  fixed_random rnd;
  {
    retry_state r(settings, rnd, "a");
    attempt_failure f = status(400);
    f.kind = failure_kind::context_window;
    EXPECT_EQ(r.on_failure(group, f, true).what, action::fallback);
    EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"bigger"}));
  }
  {
    retry_state r(settings, rnd, "a");
    attempt_failure f = status(400);
    f.kind = failure_kind::content_policy;
    EXPECT_EQ(r.on_failure(group, f, true).what, action::fallback);
    EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"lenient"}));
  }
}

TEST_F(fixture, TheRequestsListsReplaceTheRoutersAndApplyToAnyFailure) {
  set_retries(0);
  router.fallbacks = {{"a", {"router-choice"}}};
  providers::request_controls c;
  c.fallbacks = providers::keyed_fallbacks{{"", {{"mine-1", ""}, {"mine-2", R"({"temperature":0})"}}}};
  fixed_random rnd;
  retry_state r(settings, rnd, "a", &c);
  // Even a 400 goes to a client's own list (LiteLLM tries them on any exception).
  EXPECT_EQ(r.on_failure(group, status(400), true).what, action::fallback);
  auto* t = r.next_fallback();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->model, "mine-1");
  t = r.next_fallback();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->model, "mine-2");
  EXPECT_EQ(t->overrides, R"({"temperature":0})");
  EXPECT_EQ(r.next_fallback(), nullptr);
}

TEST_F(fixture, KeyedRequestListsAreLookedUpByTheRequestedGroup) {
  set_retries(0);
  providers::request_controls c;
  c.fallbacks = providers::keyed_fallbacks{{"other", {{"no", ""}}}, {"a", {{"yes", ""}}}};
  c.max_fallbacks = 1;
  fixed_random rnd;
  retry_state r(settings, rnd, "a", &c);
  EXPECT_EQ(r.on_failure(group, status(503), true).what, action::fallback);
  EXPECT_EQ(drain_fallbacks(r), (std::vector<std::string>{"yes"}));
}

TEST_F(fixture, DisableFallbacks) {
  set_retries(0);
  router.fallbacks = {{"a", {"b"}}};
  providers::request_controls c;
  c.disable_fallbacks = true;
  fixed_random rnd;
  retry_state r(settings, rnd, "a", &c);
  EXPECT_EQ(r.on_failure(group, status(503), true).what, action::give_up);
}

TEST_F(fixture, TheRequestsNumRetriesMayLowerNeverRaise) {
  set_retries(2);
  fixed_random rnd;
  {
    retry_state r(settings, rnd, "a", nullptr, 0);
    EXPECT_EQ(r.on_failure(group, status(503), true).what, action::give_up);
  }
  {
    retry_state r(settings, rnd, "a", nullptr, 5);
    EXPECT_EQ(r.on_failure(group, status(503), true).what, action::retry);
    EXPECT_EQ(r.on_failure(group, status(503), true).what, action::retry);
    EXPECT_EQ(r.on_failure(group, status(503), true).what, action::give_up);
  }
}

TEST_F(fixture, RetryPolicyNamesCountsPerClassEvenFor400) {
  set_retries(3);
  router.retry_policy.n[static_cast<std::size_t>(config::error_class::rate_limit)] = 0;
  router.model_group_retry_policy = {{"a", router.retry_policy}};
  router.model_group_retry_policy[0].second.n[static_cast<std::size_t>(config::error_class::bad_request)] = 1;
  fixed_random rnd;
  retry_state r(settings, rnd, "a");
  EXPECT_EQ(r.on_failure(group, status(429), true).what, action::give_up);
  retry_state r2(settings, rnd, "a");
  EXPECT_EQ(r2.on_failure(group, status(400), true).what, action::retry);
  EXPECT_EQ(r2.on_failure(group, status(400), true).what, action::give_up);
}

TEST_F(fixture, ErrorClasses) {
  EXPECT_EQ(error_class_of(status(429)), config::error_class::rate_limit);
  EXPECT_EQ(error_class_of(status(503)), config::error_class::service_unavailable);
  EXPECT_EQ(error_class_of(transport(true)), config::error_class::timeout);
  EXPECT_EQ(error_class_of(transport(false)), config::error_class::none);
  attempt_failure f = status(400);
  f.kind = failure_kind::content_policy;
  EXPECT_EQ(error_class_of(f), config::error_class::content_policy);
}

}  // namespace
}  // namespace gw::routing
