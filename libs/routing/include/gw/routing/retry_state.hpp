#pragma once
/// What a request does after an upstream attempt failed before the client got a byte:
/// retry (another deployment of the group, or the same after a backoff), fall back to
/// another model group, or give up. Pure decisions (no I/O, no clock); the random
/// source is injected so that backoff and jitter are exact in tests. One per request,
/// io-thread owned.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/providers/provider_adapter.hpp"

namespace gw::routing {

struct model_group;

/// Uniform doubles in [0, 1).
class random_source {
 public:
  virtual ~random_source() = default;
  virtual double next() noexcept = 0;
  /// The calling thread's generator (xorshift, seeded from std::random_device).
  static random_source& thread_default() noexcept;
};

using providers::fallback_target;

/// Router-wide settings (gateway_settings / router_settings).
struct retry_settings {
  std::chrono::milliseconds backoff_base{250};
  std::chrono::milliseconds backoff_max{8000};
  std::chrono::milliseconds retry_after_min{0};  ///< router_settings.retry_after
  std::chrono::milliseconds retry_after_max{30000};
  int max_fallbacks = 5;
  const config::router_settings* router = nullptr;  ///< must be set
};

/// One failed attempt, as the dispatcher saw it.
struct attempt_failure {
  providers::failure_kind kind = providers::failure_kind::transport;
  int status = 0;             ///< what the client would get: our error's status, or the provider's
  int provider_status = 0;    ///< the provider's HTTP status; 0 when the failure is ours
  bool timeout = false;       ///< ours, and a timeout
  std::int64_t retry_after_ms = 0;  ///< what the provider asked (retry-after), 0 if nothing
};

/// LiteLLM's error class of a failure (retry_policy, allowed_fails_policy).
config::error_class error_class_of(const attempt_failure& f) noexcept;
/// 429, 408 and 5xx are worth another try.
bool retryable_status(int status) noexcept;

class retry_state {
 public:
  /// `requested_group`: the group the client asked for (fallback lists are looked up by
  /// it). `req` (may be null: none) and `req_num_retries` (-1: not given) are the
  /// request's own controls; `req` must outlive this object. Its fallback lists replace
  /// the router's, kind by kind (as in LiteLLM).
  retry_state(const retry_settings& s, random_source& rnd, std::string_view requested_group,
              const providers::request_controls* req = nullptr, int req_num_retries = -1);

  enum class action { retry, fallback, give_up };
  struct decision {
    action what = action::give_up;
    std::chrono::milliseconds delay{0};  ///< retry: wait this long first
    bool reset_tried = false;            ///< retry: every deployment may be tried again
  };

  /// After an attempt on group `g` failed with `f`. `other_deployment`: some healthy
  /// deployment of `g` has not been tried yet. Counts the retry when it decides one.
  /// `fallback`: call next_fallback() for the candidates.
  decision on_failure(const model_group& g, const attempt_failure& f, bool other_deployment);

  /// Chooses the fallback list for failure `f` without retrying first (a failure that
  /// goes straight to the fallbacks); the candidates come from next_fallback().
  void prepare_fallbacks(const attempt_failure& f) { choose_list(f); }

  /// The next fallback candidate (nullptr: none left, or max_fallbacks reached). The
  /// caller checks it (known group, not the current one, the key's access, budget and
  /// limits) and calls took_fallback() when it goes there.
  const fallback_target* next_fallback();
  void took_fallback() noexcept;

  int retries() const noexcept { return retries_; }
  int fallbacks() const noexcept { return fallbacks_; }
  /// The retries allowed for group `g` and failure class `cls` (num_retries, the
  /// request's own capped by it, retry_policy).
  int allowed_retries(const model_group& g, config::error_class cls, bool& policy_named) const;

 private:
  void choose_list(const attempt_failure& f);

  const retry_settings& s_;
  random_source& rnd_;
  std::string requested_;
  const providers::request_controls* req_;
  int req_num_retries_;
  int retries_ = 0, group_retries_ = 0, fallbacks_ = 0;
  bool list_chosen_ = false;
  std::size_t index_ = 0;
  const std::vector<fallback_target>* list_ = nullptr;
  std::vector<fallback_target> router_list_;  ///< the router's names, as targets
};

}  // namespace gw::routing
