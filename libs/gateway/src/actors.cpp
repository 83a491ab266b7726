#include "gw/gateway/actors.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <random>

#include "gw/gateway/admission.hpp"

namespace gw::gateway {
namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double routing_weight(const deployment_runtime& d) {
  // LiteLLM's simple-shuffle: `weight` if set, else rpm, else tpm, else uniform.
  if (d.cfg->weight && *d.cfg->weight > 0) return *d.cfg->weight;
  if (d.cfg->rpm && *d.cfg->rpm > 0) return static_cast<double>(*d.cfg->rpm);
  if (d.cfg->tpm && *d.cfg->tpm > 0) return static_cast<double>(*d.cfg->tpm);
  return 1.0;
}

// ------------------------------------------------------------------ router

struct router_state {
  const model_group* group = nullptr;
  std::vector<double> weights;
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "gw.router";
};

using router_actor = caf::stateful_actor<router_state>;

void route(router_actor* self, ticket_ptr& t) {
  auto& st = self->state;
  const auto& deps = st.group->deployments;
  if (t->tried.size() != deps.size()) t->tried.assign(deps.size(), false);
  double total = 0;
  bool any_usable = false;
  for (std::size_t i = 0; i < deps.size(); ++i) {
    if (!deps[i]->usable) continue;
    any_usable = true;
    if (!t->tried[i]) total += st.weights[i];
  }
  if (total <= 0) {
    route_decision d;
    if (!any_usable) {
      d.failure = error{errc::not_implemented, deps.empty() ? "model group has no deployments" : deps.front()->problem, "model"};
    } else {
      d.failure = error{errc::rate_limited,
                        "No deployment of model group '" + st.group->name +
                            "' can take the request now: every deployment is at its rpm, tpm or parallel-request limit.",
                        ""};
    }
    t->deliver(std::move(d));
    return;
  }
  double pick = std::uniform_real_distribution<double>(0, total)(st.rng);
  std::size_t chosen = deps.size();
  for (std::size_t i = 0; i < deps.size(); ++i) {
    if (!deps[i]->usable || t->tried[i]) continue;
    chosen = i;
    pick -= st.weights[i];
    if (pick < 0) break;
  }
  t->tried[chosen] = true;
  self->send(deps[chosen]->actor, admit_atom::value, std::move(t));
}

caf::behavior router_fn(router_actor* self, const model_group* group) {
  self->set_default_handler(caf::drop);
  self->state.group = group;
  for (auto* d : group->deployments) self->state.weights.push_back(routing_weight(*d));
  return {
      [=](route_atom, ticket_ptr& t) { route(self, t); },
      [=](busy_atom, ticket_ptr& t) { route(self, t); },
  };
}

// -------------------------------------------------------------- deployment

struct deployment_state {
  deployment_runtime* d = nullptr;
  caf::actor router;
  std::optional<admission_control> admission;
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  double ewma_latency_s = 0;  // learned from outcomes, for latency-based routing
  static inline const char* name = "gw.deployment";
};

using deployment_actor = caf::stateful_actor<deployment_state>;

caf::behavior deployment_fn(deployment_actor* self, deployment_runtime* d, caf::actor router) {
  self->set_default_handler(caf::drop);
  auto& st = self->state;
  st.d = d;
  st.router = std::move(router);
  st.admission.emplace(d->cfg->rpm, d->cfg->tpm, d->cfg->max_parallel_requests);
  return {
      [=](admit_atom, ticket_ptr& t) {
        auto& s = self->state;
        auto r = s.admission->try_admit(now_seconds(), t->estimated_tokens);
        if (r != admit_result::admitted) {
          self->send(s.router, busy_atom::value, std::move(t));
          return;
        }
        t->deliver(route_decision{s.d, std::nullopt});
      },
      [=](outcome_atom, const outcome& o) {
        auto& s = self->state;
        s.admission->release(now_seconds(), o.estimated_tokens, o.actual_tokens);
        if (o.upstream_ok) {
          ++s.successes;
          s.ewma_latency_s = s.successes == 1 ? o.upstream_seconds : 0.9 * s.ewma_latency_s + 0.1 * o.upstream_seconds;
        } else {
          ++s.failures;
        }
      },
  };
}

}  // namespace

caf::actor spawn_router(caf::actor_system& sys, const model_group* group) { return sys.spawn(router_fn, group); }

caf::actor spawn_deployment(caf::actor_system& sys, deployment_runtime* d, caf::actor router) {
  return sys.spawn(deployment_fn, d, std::move(router));
}

}  // namespace gw::gateway
