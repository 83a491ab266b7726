// The dispatcher: routing, retries and fallbacks, and the end of attempts and requests.

#include "dispatch_call.hpp"

#include <caf/send.hpp>

#include "gw/core/log.hpp"
#include "gw/limits/rate_limiter.hpp"
#include "gw/pipeline/stages.hpp"
#include "gw/routing/deployment_actor.hpp"

namespace gw::pipeline {
namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// ------------------------------------------------------------ the stage

flow dispatch_stage::on_request(request_context& ctx) const {
  ctx.dispatch = std::make_unique<dispatch_call>(ctx);
  ctx.dispatch->start();
  return flow::pending;
}

void dispatch_stage::on_settle(request_context& ctx) const {
  if (ctx.dispatch) ctx.dispatch->release_deployment_limits();
}

void dispatch_stage::on_finish(request_context& ctx) const {
  if (ctx.dispatch) ctx.dispatch->finish();
}

// ------------------------------------------------------------ the call

dispatch_call::dispatch_call(request_context& ctx)
    : ctx_(ctx),
      svc_(ctx.svc),
      retry_(ctx.svc.retry, routing::random_source::thread_default(), ctx.requested_group->name,
             ctx.view.controls.get(), ctx.controls.num_retries) {
  svc_.metrics->in_flight_add(ctx_.shard, 1);
  in_flight_metric_ = true;
  if (const auto& c = ctx.view.controls) {
    mock_fallbacks_pending_ = c->mock_testing_fallbacks || c->mock_testing_context_fallbacks ||
                              c->mock_testing_content_policy_fallbacks;
    mock_rate_limit_pending_ = c->mock_testing_rate_limit_error;
  }
}

dispatch_call::~dispatch_call() {
  if (!finished_) {
    // Never finished (shutdown): give back what it holds.
    if (in_flight_metric_) svc_.metrics->in_flight_add(ctx_.shard, -1);
    if (a_ && a_->open) end_attempt(499, false, false);
  }
}

void dispatch_call::start() {
  ctx_.thread.watch(std::weak_ptr<http::deadline_target>(ctx_.shared_from_this()));
  route();
}

void dispatch_call::on_deadline() {
  if (!a_) return;
  a_->timed_out = true;
  if (a_->conn) a_->conn->close();  // the pending upstream operation fails with operation_aborted
}

void dispatch_call::route() {
  const auto& g = *ctx_.group;
  const auto& deps = g.deployments;
  if (tried_.size() != deps.size()) tried_.assign(deps.size(), false);
  auto p = routing::pick_deployment(g, &tried_, routing::random_source::thread_default().next(), steady_ms());
  if (p.position == static_cast<std::size_t>(-1)) {
    bool any_usable = false;
    for (auto* d : deps) any_usable |= d->usable;
    std::int64_t retry_ms = 0;
    if (!any_usable) {
      error_ = error{errc::not_implemented, deps.empty() ? "model group has no deployments" : deps.front()->problem,
                     "model"};
    } else if (dep_limit_refused_) {
      error_ = error{errc::rate_limited, dep_limit_message_, ""};
      retry_ms = dep_limit_retry_ms_;
    } else if (p.cooling) {
      error_ = error{errc::rate_limited,
                     "Every deployment of model group '" + g.name +
                         "' is cooling down after repeated failures; retry after " +
                         std::to_string((p.cooldown_left_ms + 999) / 1000) + " s.",
                     ""};
      retry_ms = p.cooldown_left_ms;
    } else {
      error_ = error{errc::upstream_bad_response, "No deployment of model group '" + g.name + "' is left to try.", ""};
    }
    error_headers_.clear();
    if (retry_ms > 0) error_headers_ = "retry-after: " + std::to_string((retry_ms + 999) / 1000) + "\r\n";
    a_.reset();
    return attempt_failed(any_usable ? providers::failure_kind::unavailable : providers::failure_kind::status, 0);
  }
  a_.emplace();
  auto& a = *a_;
  a.id = ++attempts_;
  a.dep = deps[p.position];
  a.probe = p.probe;
  tried_[p.position] = true;
  if (a.dep->limited && svc_.limiter) {
    svc_.limiter->acquire(ctx_.shard, a.dep->limit_scopes,
                          [c = ctx_.shared_from_this(), id = a.id](const limits::decision& d, bool via_redis) {
                            auto& self = *c->dispatch;
                            if (!self.a_ || self.a_->id != id || c->finished()) {
                              // Late (the request ended): give the slot back.
                              if (d.admitted && self.a_ && self.a_->dep)
                                c->svc.limiter->release(c->shard, self.a_->dep->limit_scopes, {}, via_redis);
                              return;
                            }
                            self.on_deployment_limits(d, via_redis);
                          });
    return;
  }
  begin_attempt();
}

void dispatch_call::on_deployment_limits(const limits::decision& d, bool via_redis) {
  auto& a = *a_;
  if (!d.admitted) {
    // This deployment is at its own rpm/tpm/parallel limit: try another one.
    dep_limit_refused_ = true;
    dep_limit_message_ = limits::refusal_message(a.dep->limit_scopes, d, svc_.limiter->window());
    if (dep_limit_retry_ms_ == 0 || d.retry_after_ms < dep_limit_retry_ms_) dep_limit_retry_ms_ = d.retry_after_ms;
    if (a.probe) {
      int probing = static_cast<int>(routing::deployment_health::probing);
      a.dep->health.compare_exchange_strong(probing, static_cast<int>(routing::deployment_health::cooling));
    }
    a_.reset();
    return route();
  }
  a.limits_held = true;
  a.limits_via_redis = via_redis;
  begin_attempt();
}

void dispatch_call::release_deployment_limits() {
  if (!a_ || !a_->limits_held) return;
  a_->limits_held = false;
  if (!svc_.limiter) return;
  // The deployment's own limits (the config's rpm/tpm) count every token.
  limits::token_usage used;
  const auto& u = ctx_.out.usage;
  if (u.known()) {
    used.input = std::max<std::int64_t>(0, u.prompt_tokens);
    used.output = std::max<std::int64_t>(0, u.completion_tokens);
  }
  svc_.limiter->release(ctx_.shard, a_->dep->limit_scopes, used, a_->limits_via_redis);
}

bool dispatch_call::other_deployment_available() const {
  const auto& deps = ctx_.group->deployments;
  for (std::size_t i = 0; i < deps.size(); ++i) {
    auto* d = deps[i];
    if (d->usable && !(i < tried_.size() && tried_[i]) &&
        d->health.load(std::memory_order_relaxed) == static_cast<int>(routing::deployment_health::healthy))
      return true;
  }
  return false;
}

void dispatch_call::end_attempt(int status, bool upstream_ok, bool failure) {
  if (!a_ || !a_->open) return;
  auto& a = *a_;
  a.open = false;
  if (ctx_.trace) trace_attempt_end(status, upstream_ok);
  release_deployment_limits();
  if (a.in_flight) a.dep->in_flight.fetch_sub(1, std::memory_order_relaxed);
  a.in_flight = false;
  auto done = a.t_done != clock::time_point{} ? a.t_done : clock::now();
  routing::outcome o;
  o.status = status;
  o.upstream_ok = upstream_ok;
  o.failure = failure;
  o.error_class = failure ? static_cast<std::int8_t>(a.failure_class) : static_cast<std::int8_t>(config::error_class::none);
  o.probe = a.probe;
  const auto& u = ctx_.out.usage;
  o.tokens = u.known() ? std::max<std::int64_t>(0, u.prompt_tokens) + std::max<std::int64_t>(0, u.completion_tokens) : -1;
  o.upstream_seconds = seconds(done - a.t_start);
  if (!svc_.batchers.empty() && !a.mocked) svc_.batchers[ctx_.shard]->add(*a.dep, o);
  if (a.conn) {
    if (upstream_ok && a.conn->reusable())
      ctx_.thread.pool().release(std::move(a.conn));
    else
      a.conn->close();
    a.conn.reset();
  }
}

void dispatch_call::attempt_failed(providers::failure_kind k, std::int64_t retry_after_ms) {
  ctx_.clear_deadline();
  int status = error_ ? http_status(error_->code) : (a_ ? a_->status : 0);
  routing::attempt_failure f;
  f.kind = k;
  f.status = status;
  f.provider_status = error_ ? 0 : (a_ ? a_->status : 0);
  f.timeout = error_ && error_->code == errc::upstream_timeout;
  f.retry_after_ms = retry_after_ms;
  if (a_ && a_->open) {
    const auto& router = svc_.cfg->router;
    auto cls = routing::error_class_of(f);
    bool counts = k == providers::failure_kind::transport ||
                  (k == providers::failure_kind::status && routing::retryable_status(status)) ||
                  router.allowed_fails_policy.get(cls).has_value();
    a_->failure_class = cls;
    // A failed attempt is seen on its deployment's metrics; the request's final outcome
    // is observed in finish().
    double attempt_s = seconds(clock::now() - a_->t_start);
    if (!a_->mocked) a_->dep->probe->observe(ctx_.shard, status, attempt_s, attempt_s, 0, -1);
    end_attempt(status, false, counts);
  }
  // mock_testing_fallbacks: straight to the fallbacks, without retries.
  if (mock_fallbacks_pending_) {
    mock_fallbacks_pending_ = false;
    retry_.prepare_fallbacks(f);
    return next_fallback();
  }
  auto d = retry_.on_failure(*ctx_.group, f, other_deployment_available());
  switch (d.what) {
    case routing::retry_state::action::retry:
      if (svc_.routing) svc_.routing->retries.fetch_add(1, std::memory_order_relaxed);
      if (d.reset_tried) std::fill(tried_.begin(), tried_.end(), false);
      return retry_after(d.delay);
    case routing::retry_state::action::fallback:
      return next_fallback();
    case routing::retry_state::action::give_up:
      return give_up();
  }
}

void dispatch_call::retry_after(std::chrono::milliseconds delay) {
  dep_limit_refused_ = false;
  if (delay.count() <= 0) return route();
  if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(ctx_.thread.io());
  timer_->expires_after(delay);
  timer_->async_wait([c = ctx_.shared_from_this()](http::error_code ec) {
    if (ec || c->finished()) return;
    c->dispatch->route();
  });
}

void dispatch_call::next_fallback() {
  while (const auto* t = retry_.next_fallback()) {
    const auto* g = svc_.registry->find(t->model);
    if (!g || g == ctx_.group) continue;
    ctx_.reroute(g, [c = ctx_.shared_from_this(), t](bool ok) {
      auto& self = *c->dispatch;
      if (c->finished()) return;
      if (!ok) {
        // Refused by the key's budget or limits there: that refusal is the answer unless
        // another fallback works (a group the key may not use is skipped silently).
        if (c->reroute_refusal) {
          self.error_ = *c->reroute_refusal;
          self.error_headers_ = c->reroute_headers;
        }
        return self.next_fallback();
      }
      self.retry_.took_fallback();
      if (c->svc.routing) c->svc.routing->fallbacks.fetch_add(1, std::memory_order_relaxed);
      self.tried_.clear();
      self.dep_limit_refused_ = false;
      if (!t->overrides.empty()) {
        // A client's fallback that replaces members of the request: its own body.
        self.fallback_body_ = providers::with_overrides(c->req().body(), t->overrides);
        self.fallback_body_.reserve(self.fallback_body_.size() + http::json_padding);
        if (auto e = providers::inspect_request(c->op, self.fallback_body_, self.fallback_view_)) {
          self.error_ = *e;
          self.error_headers_.clear();
          return self.give_up();
        }
      } else {
        self.fallback_body_.clear();
      }
      self.route();
    });
    return;
  }
  give_up();
}

void dispatch_call::give_up() {
  if (retry_.fallbacks() > 0 && svc_.routing) svc_.routing->fallback_failures.fetch_add(1, std::memory_order_relaxed);
  if (error_) {
    auto e = *error_;
    log::warn("model group '" + ctx_.group->name + "': " + e.message);
    return respond_error(e, error_headers_);
  }
  respond_buffered_error();
}

void dispatch_call::finish() {
  if (finished_) return;
  finished_ = true;
  if (timer_) timer_->cancel();
  auto now = clock::now();
  if (in_flight_metric_) svc_.metrics->in_flight_add(ctx_.shard, -1);
  in_flight_metric_ = false;
  int status = ctx_.out.status;
  if (!a_ || !a_->open) return;
  auto& a = *a_;
  if (t_upstream_done_ == clock::time_point{}) t_upstream_done_ = now;
  double total = seconds(now - ctx_.received);
  double upstream = seconds(t_upstream_done_ - a.t_start);
  double overhead = total - seconds(t_upstream_done_ - t_upstream_start_);
  double ttft = (ctx_.view.stream && ctx_.out.first_byte != clock::time_point{}) ? seconds(ctx_.out.first_byte - a.t_start)
                                                                                 : -1;
  const auto& u = ctx_.out.usage;
  if (!a.mocked) {
    a.dep->probe->observe(ctx_.shard, status, total, upstream, overhead, ttft);
    if (u.known()) a.dep->probe->add_tokens(ctx_.shard, u.prompt_tokens, u.completion_tokens);
  }
  bool failure = status != 499 && !upstream_ok_ && routing::retryable_status(status);
  end_attempt(status, upstream_ok_, failure);
}

}  // namespace gw::pipeline
