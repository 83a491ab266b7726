#include "gw/routing/deployment_actor.hpp"

#include <caf/all.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <cmath>

#include "gw/core/log.hpp"
#include "gw/limits/local.hpp"

namespace gw::routing {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

limits::window_settings minute() {
  limits::window_settings w;
  w.window_ms = 60'000;
  w.buckets = 60;
  return w;
}

struct deployment_state {
  deployment_runtime* d = nullptr;
  cooldown_policy policy;
  std::size_t group_size = 1;
  limits::sliding_window fails{minute()};
  /// Failures per error class, for the classes allowed_fails_policy names.
  std::array<std::optional<limits::sliding_window>, config::k_error_classes> class_fails;
  limits::sliding_window tokens{minute()};
  std::uint64_t successes = 0;
  double ewma_latency_s = 0;
  static inline const char* name = "gw.deployment";
};

using deployment_actor = caf::stateful_actor<deployment_state>;

void cool_down(deployment_state& s, std::int64_t now, const std::string& why) {
  auto until = now + static_cast<std::int64_t>(std::llround(s.policy.cooldown_seconds * 1000.0));
  s.d->cooldown_until_ms.store(until, std::memory_order_relaxed);
  s.d->health.store(static_cast<int>(deployment_health::cooling), std::memory_order_release);
  s.d->cooldowns.fetch_add(1, std::memory_order_relaxed);
  s.fails = limits::sliding_window{minute()};
  for (auto& w : s.class_fails)
    if (w) w.emplace(minute());
  log::warn("deployment '" + s.d->cfg->id + "' of model group '" + s.d->cfg->model_name + "' cools down for " +
            std::to_string(s.policy.cooldown_seconds) + " s (" + why + ")");
}

void learn_latency(deployment_state& s, double mean, std::uint64_t n) {
  s.successes += n;
  s.ewma_latency_s = s.successes == n ? mean : 0.9 * s.ewma_latency_s + 0.1 * mean;
  s.d->ewma_latency_us.store(static_cast<std::int64_t>(s.ewma_latency_s * 1e6), std::memory_order_relaxed);
}

void learn_tokens(deployment_state& s, std::int64_t now, std::int64_t n) {
  if (n > 0) s.tokens.add(now, n);
  s.d->tokens_last_minute.store(s.tokens.sum(now), std::memory_order_relaxed);
}

caf::behavior deployment_fn(deployment_actor* self, deployment_runtime* d, cooldown_policy p, std::size_t group_size) {
  self->set_default_handler(caf::drop);
  auto& st = self->state;
  st.d = d;
  st.policy = p;
  st.group_size = group_size;
  return {
      [=](outcome_atom, const outcome& o) {
        auto& s = self->state;
        auto now = now_ms();
        if (o.probe) {
          if (o.failure) {
            cool_down(s, now, "its probe failed with status " + std::to_string(o.status));
          } else {
            s.d->health.store(static_cast<int>(deployment_health::healthy), std::memory_order_release);
            log::info("deployment '" + s.d->cfg->id + "' of model group '" + s.d->cfg->model_name +
                      "' is healthy again (probe succeeded)");
          }
        } else if (o.failure) {
          // A class allowed_fails_policy names counts in its own window against its own
          // threshold; every other failure against allowed_fails.
          auto cls = static_cast<config::error_class>(o.error_class);
          auto own = s.policy.allowed_fails_policy.get(cls);
          limits::sliding_window* w = &s.fails;
          int allowed = s.policy.allowed_fails;
          std::string what = "failures";
          if (own) {
            auto& cw = s.class_fails[static_cast<std::size_t>(cls)];
            if (!cw) cw.emplace(minute());
            w = &*cw;
            allowed = *own;
            what = std::string(config::error_class_name(cls)) + " failures";
          }
          w->add(now, 1);
          auto h = static_cast<deployment_health>(s.d->health.load(std::memory_order_acquire));
          if (!s.policy.disabled && s.group_size > 1 && h == deployment_health::healthy && w->sum(now) > allowed)
            cool_down(s, now, "more than " + std::to_string(allowed) + " " + what + " in a minute");
        }
        if (o.upstream_ok) learn_latency(s, o.upstream_seconds, 1);
        learn_tokens(s, now, o.tokens);
      },
      [=](outcome_atom, const outcome_batch& b) {
        auto& s = self->state;
        if (b.upstream_ok > 0) learn_latency(s, b.upstream_seconds / static_cast<double>(b.upstream_ok), b.upstream_ok);
        learn_tokens(s, now_ms(), b.tokens);
      },
  };
}

}  // namespace

outcome_batcher::outcome_batcher(const model_registry& r) : registry_(r), batches_(r.deployments().size()) {}

void outcome_batcher::add(const deployment_runtime& d, const outcome& o) {
  if (o.failure || o.probe) {
    caf::anon_send(d.actor, outcome_atom::value, o);
    return;
  }
  auto& b = batches_[d.index];
  ++b.requests;
  if (o.upstream_ok) {
    ++b.upstream_ok;
    b.upstream_seconds += o.upstream_seconds;
  }
  if (o.tokens > 0) b.tokens += o.tokens;
}

void outcome_batcher::flush() {
  const auto& deps = registry_.deployments();
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    if (batches_[i].requests == 0) continue;
    caf::anon_send(deps[i]->actor, outcome_atom::value, batches_[i]);
    batches_[i] = outcome_batch{};
  }
}

caf::actor spawn_deployment(caf::actor_system& sys, deployment_runtime* d, cooldown_policy p, std::size_t group_size) {
  return sys.spawn(deployment_fn, d, p, group_size);
}

}  // namespace gw::routing
