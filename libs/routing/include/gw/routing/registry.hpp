#pragma once
/// The model groups and deployments as the running gateway sees them: built once
/// from the config at start, then read-only (thread-safe) except through actors.

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/http/upstream.hpp"
#include "gw/limits/limits.hpp"
#include "gw/pricing/prices.hpp"
#include "gw/providers/openai.hpp"
#include "gw/providers/provider.hpp"
#include "gw/providers/provider_adapter.hpp"
#include "gw/telemetry/metrics.hpp"

namespace gw::credentials {
class aws_credentials_provider;
class entra_token_provider;
}  // namespace gw::credentials

namespace gw::routing {

/// A deployment's health as its actor decides it.
enum class deployment_health : int {
  healthy = 0,
  cooling = 1,  ///< no traffic until cooldown_until_ms; then one probe
  probing = 2,  ///< the one probe request is out
};

/// One deployment, ready to be called. Immutable after start, except the atomics its
/// actor publishes (health, latency, usage) and the io threads' in-flight count.
struct deployment_runtime {
  const config::deployment* cfg = nullptr;
  std::size_t index = 0;           ///< index within the registry
  std::size_t position = 0;        ///< index within its model group
  double routing_weight = 1;       ///< simple-shuffle weight (weight, else rpm, else tpm, else 1)
  /// rpm, tpm, max_parallel_requests of the config as a rate-limit scope (cluster-wide
  /// with Redis); `limit_scopes` holds it alone, for the limiter's API.
  std::vector<limits::scope> limit_scopes;
  bool limited = false;
  int num_retries = 0;             ///< litellm_params.num_retries (or max_retries), else the router's, else litellm_settings' 
  providers::deployment_target target;
  http::endpoint endpoint;
  bool usable = false;             ///< false: `target.problem` says why
  std::string problem;
  /// How the deployment's provider is called (chosen once, by wire format); null when
  /// the deployment is not usable.
  std::unique_ptr<providers::provider_adapter> adapter;
  bool wildcard_model = false;     ///< upstream model depends on the requested one
  std::chrono::milliseconds timeout{600'000};
  std::chrono::milliseconds stream_timeout{600'000};
  /// Credentials fetched and refreshed in the background: SigV4 keys for Bedrock
  /// deployments without an API key, Entra ID tokens for Azure service principals.
  std::shared_ptr<credentials::aws_credentials_provider> aws;
  std::shared_ptr<credentials::entra_token_provider> entra;
  telemetry::deployment_probe* probe = nullptr;
  caf::actor actor;                ///< the deployment actor: health, learning from outcomes
  /// Prices (built-in table, price file, model_info); none: spend counts as 0.
  std::optional<pricing::model_price> price;

  // Published by the deployment actor, read by io threads when routing.
  std::atomic<int> health{0};                      ///< deployment_health
  std::atomic<std::int64_t> cooldown_until_ms{0};  ///< steady clock
  std::atomic<std::uint64_t> cooldowns{0};         ///< times cooled down (metrics)
  std::atomic<std::int64_t> ewma_latency_us{0};    ///< latency-based-routing
  std::atomic<std::int64_t> tokens_last_minute{0}; ///< usage-based-routing
  // Kept by the io threads.
  std::atomic<std::int64_t> in_flight{0};          ///< least-busy
};

/// The model name a deployment is sent for a request that asked for `requested`.
std::string upstream_model(const deployment_runtime& d, std::string_view requested);

enum class routing_strategy { simple_shuffle, least_busy, latency_based, usage_based, cost_based };
routing_strategy parse_strategy(std::string_view name) noexcept;

/// A model group: the deployments sharing a model_name. Immutable after start.
struct model_group {
  std::string name;
  bool wildcard = false;
  std::vector<deployment_runtime*> deployments;
  routing_strategy strategy = routing_strategy::simple_shuffle;
  /// The highest price of each kind among the group's deployments: a request's
  /// worst-case cost is reserved against budgets before the deployment is chosen.
  pricing::model_price worst_price;
};

/// The result of routing one attempt.
struct pick_result {
  std::size_t position = static_cast<std::size_t>(-1);  ///< npos: none
  bool probe = false;        ///< the chosen deployment was cooling: this is its probe
  bool cooling = false;      ///< none chosen, and some candidate is cooling down
  std::int64_t cooldown_left_ms = 0;  ///< then: the soonest end of a cooldown
};

/// Chooses a deployment of `g` by its strategy among the usable ones not `tried` (by
/// position; may be null) and not cooling down; a deployment whose cooldown is over is
/// chosen as its probe by at most one request (compare-and-swap). `r01` uniform in
/// [0,1) breaks ties (simple-shuffle: the weighted choice). io threads call it.
pick_result pick_deployment(const model_group& g, const std::vector<bool>* tried, double r01,
                            std::int64_t now_ms) noexcept;

class model_registry {
 public:
  /// Builds groups and deployments from `cfg` (which must outlive the registry).
  /// Problems that make a deployment unusable are appended to `warnings`.
  model_registry(const config::gateway_config& cfg, telemetry::metrics& m, std::vector<std::string>& warnings);

  /// The group serving `requested`: an exact name first, then the longest wildcard.
  const model_group* find(std::string_view requested) const;
  const std::vector<std::unique_ptr<model_group>>& groups() const noexcept { return groups_; }
  const std::vector<std::unique_ptr<deployment_runtime>>& deployments() const noexcept { return deployments_; }
  /// The body of GET /v1/models, rendered once.
  const std::string& models_json() const noexcept { return models_json_; }
  /// The same, listing only the groups `allowed` accepts (a virtual key's models).
  std::string models_json_for(const std::function<bool(std::string_view)>& allowed) const;
  /// The body of GET /v1/models/{id}, or empty if unknown.
  std::string model_json(std::string_view id) const;

 private:
  std::vector<std::unique_ptr<deployment_runtime>> deployments_;
  std::vector<std::unique_ptr<model_group>> groups_;
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, const model_group*, string_hash, std::equal_to<>> exact_;
  std::vector<const model_group*> wildcards_;  // longest prefix first
  std::string models_json_;
};

}  // namespace gw::routing
