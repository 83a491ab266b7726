#pragma once
/// The deployment actors (CAF 0.17): one per deployment. Each learns from the outcomes
/// of the requests sent to its deployment and decides its health: after more than
/// `allowed_fails` failures in a minute it cools the deployment down for
/// `cooldown_time`, then lets one probe request through (half-open) and brings it back
/// when the probe succeeds. It publishes what it decides (health, cooldown end, latency
/// EWMA, recent token usage) in the deployment's atomics, which the io threads read
/// when they route. The request bytes never pass through an actor, and no request
/// waits for one.

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <cstdint>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/routing/registry.hpp"

namespace gw::routing {

/// What happened to one attempt on a deployment, reported by the io thread.
struct outcome {
  int status = 0;                    ///< HTTP status of the attempt (499: client left)
  bool upstream_ok = false;          ///< the provider answered 2xx and completed
  bool failure = false;              ///< counts towards cooldown (429, 408, 5xx, timeout, connection)
  bool probe = false;                ///< the half-open probe of a cooled-down deployment
  std::int8_t error_class = 7;       ///< config::error_class of a failure (7: none)
  std::int64_t tokens = -1;          ///< tokens the provider reported; -1 unknown
  double upstream_seconds = 0;
};

/// Outcomes of successful requests to one deployment, summed on one io thread over one
/// sweep interval (failures and probes are sent at once).
struct outcome_batch {
  std::uint64_t requests = 0;
  std::uint64_t upstream_ok = 0;
  std::int64_t tokens = 0;
  double upstream_seconds = 0;  ///< sum over the successful ones
};

/// Sums outcome batches per deployment on one io thread and sends them each tick.
/// io-thread owned.
class outcome_batcher {
 public:
  explicit outcome_batcher(const model_registry& r);
  /// Failures and probes go to the actor at once; the rest is batched.
  void add(const deployment_runtime& d, const outcome& o);
  /// One message per deployment that saw requests since the last flush.
  void flush();

 private:
  const model_registry& registry_;
  std::vector<outcome_batch> batches_;
};

using outcome_atom = caf::atom_constant<caf::atom("outcome")>;

/// Cooldown policy (router_settings).
struct cooldown_policy {
  int allowed_fails = 3;
  /// allowed_fails_policy: a class with a count has its own window and threshold.
  config::error_class_counts allowed_fails_policy;
  double cooldown_seconds = 5;
  bool disabled = false;
};

/// Spawns the actor of deployment `d` (which must outlive it). `group_size`: a group's
/// only deployment never cools down (there would be nothing left to route to, as in
/// LiteLLM).
caf::actor spawn_deployment(caf::actor_system& sys, deployment_runtime* d, cooldown_policy p, std::size_t group_size);

}  // namespace gw::routing

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::routing::outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::routing::outcome_batch)
