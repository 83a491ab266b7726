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

// ------------------------------------------------------------------ router

struct router_state {
  const model_group* group = nullptr;
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "gw.router";
};

using router_actor = caf::stateful_actor<router_state>;

void route(router_actor* self, ticket_ptr& t) {
  auto& st = self->state;
  const auto& deps = st.group->deployments;
  if (t->tried.size() != deps.size()) t->tried.assign(deps.size(), false);
  auto chosen = pick_deployment(*st.group, &t->tried, std::uniform_real_distribution<double>(0, 1)(st.rng));
  if (chosen == static_cast<std::size_t>(-1)) {
    bool any_usable = false;
    for (auto* d : deps) any_usable |= d->usable;
    route_decision d;
    if (!any_usable) {
      d.failure = error{errc::not_implemented, deps.empty() ? "model group has no deployments" : deps.front()->problem,
                        "model"};
    } else {
      d.failure = error{errc::rate_limited,
                        "No deployment of model group '" + st.group->name +
                            "' can take the request now: every deployment is at its rpm, tpm or parallel-request limit.",
                        ""};
    }
    t->deliver(std::move(d));
    return;
  }
  t->tried[chosen] = true;
  self->send(deps[chosen]->actor, admit_atom::value, std::move(t));
}

caf::behavior router_fn(router_actor* self, const model_group* group) {
  self->set_default_handler(caf::drop);
  self->state.group = group;
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
      [=](outcome_atom, const outcome_batch& b) {
        // Locally routed requests: counted, never admitted here (no limits to keep).
        auto& s = self->state;
        s.successes += b.upstream_ok;
        s.failures += b.requests - b.upstream_ok;
        if (b.upstream_ok > 0) {
          double mean = b.upstream_seconds / static_cast<double>(b.upstream_ok);
          s.ewma_latency_s = s.successes == b.upstream_ok ? mean : 0.9 * s.ewma_latency_s + 0.1 * mean;
        }
      },
  };
}

}  // namespace

caf::actor spawn_router(caf::actor_system& sys, const model_group* group) { return sys.spawn(router_fn, group); }

outcome_batcher::outcome_batcher(const model_registry& r) : registry_(r), batches_(r.deployments().size()) {}

void outcome_batcher::add(const deployment_runtime& d, const outcome& o) {
  auto& b = batches_[d.index];
  ++b.requests;
  if (o.upstream_ok) {
    ++b.upstream_ok;
    b.upstream_seconds += o.upstream_seconds;
  }
  if (o.actual_tokens > 0) b.tokens += o.actual_tokens;
}

void outcome_batcher::flush() {
  const auto& deps = registry_.deployments();
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    if (batches_[i].requests == 0) continue;
    caf::anon_send(deps[i]->actor, outcome_atom::value, batches_[i]);
    batches_[i] = outcome_batch{};
  }
}

caf::actor spawn_deployment(caf::actor_system& sys, deployment_runtime* d, caf::actor router) {
  return sys.spawn(deployment_fn, d, std::move(router));
}

}  // namespace gw::gateway
