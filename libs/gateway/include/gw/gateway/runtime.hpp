#pragma once
/// The model groups and deployments as the running gateway sees them: built once
/// from the config at start, then read-only (thread-safe) except through actors.

#include <caf/actor.hpp>

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
#include "gw/pricing/prices.hpp"
#include "gw/providers/openai.hpp"
#include "gw/providers/provider.hpp"
#include "gw/telemetry/metrics.hpp"

namespace gw::gateway {

/// One deployment, ready to be called. Immutable after start.
struct deployment_runtime {
  const config::deployment* cfg = nullptr;
  std::size_t index = 0;           ///< index within the registry
  std::size_t position = 0;        ///< index within its model group
  /// rpm, tpm or max_parallel_requests set: each request is admitted by the actor.
  bool admission_limited = false;
  double routing_weight = 1;       ///< simple-shuffle weight (weight, else rpm, else tpm, else 1)
  providers::deployment_target target;
  http::endpoint endpoint;
  bool usable = false;             ///< false: `target.problem` says why
  std::string problem;
  /// Per operation: request line and headers up to and including "content-length: ".
  std::string head_prefix[3];
  bool wildcard_model = false;     ///< upstream model depends on the requested one
  std::string upstream_model_json; ///< quoted upstream model (when not wildcard)
  std::chrono::milliseconds timeout{600'000};
  std::chrono::milliseconds stream_timeout{600'000};
  telemetry::deployment_probe* probe = nullptr;
  caf::actor actor;                ///< the deployment actor: admission, outcomes
  /// Prices (built-in table, price file, model_info); none: spend counts as 0.
  std::optional<pricing::model_price> price;
};

/// A model group: the deployments sharing a model_name. Immutable after start.
struct model_group {
  std::string name;
  bool wildcard = false;
  std::vector<deployment_runtime*> deployments;
  /// No deployment needs per-request admission: io threads pick a deployment
  /// themselves from the weights (no actor on the request path); outcomes reach the
  /// deployment actors in batches.
  bool local_routing = false;
  caf::actor router;
  /// The highest price of each kind among the group's deployments: a request's
  /// worst-case cost is reserved against budgets before the deployment is chosen.
  pricing::model_price worst_price;
};

/// simple-shuffle: a weighted random choice among the usable deployments not yet
/// tried (`tried` by position, may be null); `r01` uniform in [0,1). Returns the
/// position, or npos when none is left.
std::size_t pick_deployment(const model_group& g, const std::vector<bool>* tried, double r01) noexcept;

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

}  // namespace gw::gateway
