#pragma once
/// The decision-making actors (CAF 0.17): one router per model group picks a
/// deployment; one actor per deployment admits requests (in-flight cap, rpm, tpm)
/// and learns from their outcomes. The request bytes never pass through them: the
/// io thread sends a ticket, the chosen deployment actor calls the ticket's
/// `deliver`, which posts the decision back to the io thread.

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "gw/core/error.hpp"
#include "gw/gateway/runtime.hpp"

namespace gw::gateway {

struct route_decision {
  deployment_runtime* deployment = nullptr;  ///< set when admitted
  std::optional<error> failure;              ///< set when no deployment can take it
};

/// One request asking for a deployment. Created on an io thread, then owned by
/// whichever actor holds it; `deliver` is called exactly once.
struct route_ticket {
  std::function<void(route_decision)> deliver;
  std::int64_t estimated_tokens = 0;
  std::vector<bool> tried;  ///< by position in the group
};
using ticket_ptr = std::shared_ptr<route_ticket>;

/// What happened to an admitted request, reported by the io thread.
struct outcome {
  int status = 0;                    ///< HTTP status seen by the client (499: client left)
  bool upstream_ok = false;          ///< the provider answered 2xx and completed
  std::int64_t estimated_tokens = 0; ///< what admission reserved
  std::int64_t actual_tokens = -1;   ///< what the provider reported; -1 unknown
  double upstream_seconds = 0;
};

/// Outcomes of locally routed requests to one deployment, summed on one io thread
/// over one sweep interval.
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
  void add(const deployment_runtime& d, const outcome& o);
  /// One message per deployment that saw requests since the last flush.
  void flush();

 private:
  const model_registry& registry_;
  std::vector<outcome_batch> batches_;
};

using route_atom = caf::atom_constant<caf::atom("route")>;
using admit_atom = caf::atom_constant<caf::atom("admit")>;
using busy_atom = caf::atom_constant<caf::atom("busy")>;
using outcome_atom = caf::atom_constant<caf::atom("outcome")>;

/// Spawns the router of `group` (which must outlive it).
caf::actor spawn_router(caf::actor_system& sys, const model_group* group);
/// Spawns the actor of deployment `d`, which reports refusals back to `router`.
caf::actor spawn_deployment(caf::actor_system& sys, deployment_runtime* d, caf::actor router);

}  // namespace gw::gateway

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::gateway::ticket_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::gateway::outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::gateway::outcome_batch)
