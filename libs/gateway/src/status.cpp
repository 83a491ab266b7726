// The status routes: readiness (what the node depends on, and how each is doing) and
// the Prometheus text of every part of the gateway.

#include <chrono>

#include "gw/core/json_writer.hpp"
#include "gw/gateway/handler.hpp"
#include "gw/limits/rate_limiter.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::gateway {
namespace {

using routing::deployment_health;

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// The accounts service's health and counters in Prometheus text format.
std::string accounts_metrics_text(accounts::service* a) {
  if (!a) return {};
  const auto& h = a->state();
  std::string o;
  auto metric = [&](const char* name, const char* type, const char* help, std::int64_t v) {
    o += "# HELP ";
    o += name;
    o += ' ';
    o += help;
    o += "\n# TYPE ";
    o += name;
    o += ' ';
    o += type;
    o += '\n';
    o += name;
    o += ' ';
    o += std::to_string(v);
    o += '\n';
  };
  if (a->persistent())
    metric("llm_gateway_database_up", "gauge", "1 when PostgreSQL answers, 0 while it is away (degraded)",
           h.db_ok.load() ? 1 : 0);
  metric("llm_gateway_spend_spooled_batches", "gauge", "spend batches waiting in the local spool for the database",
         h.spooled_batches.load());
  metric("llm_gateway_spend_batches_written_total", "counter", "spend batches applied to the store",
         h.flushed_batches.load());
  metric("llm_gateway_spend_batch_failures_total", "counter", "spend batch writes that failed (then spooled)",
         h.flush_failures.load());
  metric("llm_gateway_budget_refusals_total", "counter", "requests refused because a budget would be exceeded",
         h.budget_refusals.load());
  metric("llm_gateway_soft_budget_crossings_total", "counter", "soft budgets crossed (logged once per period)",
         h.soft_budget_crossings.load());
  return o;
}

/// Routing: deployment health, retries and fallbacks, in Prometheus text format.
std::string routing_metrics_text(const pipeline::services& ctx) {
  std::string o;
  o += "# HELP llm_gateway_deployment_state 0 healthy, 1 cooling down, 2 probing after a cooldown\n"
       "# TYPE llm_gateway_deployment_state gauge\n";
  std::string cooldowns = "# HELP llm_gateway_deployment_cooldowns_total times a deployment was cooled down\n"
                          "# TYPE llm_gateway_deployment_cooldowns_total counter\n";
  for (auto& d : ctx.registry->deployments()) {
    std::string labels = "{model_group=";
    append_json_string(labels, d->cfg->model_name);
    labels += ",model_id=";
    append_json_string(labels, d->cfg->id);
    labels += "}";
    o += "llm_gateway_deployment_state" + labels + " " + std::to_string(d->health.load()) + "\n";
    cooldowns += "llm_gateway_deployment_cooldowns_total" + labels + " " + std::to_string(d->cooldowns.load()) + "\n";
  }
  o += cooldowns;
  if (ctx.routing) {
    o += "# HELP llm_gateway_retries_total upstream attempts retried\n# TYPE llm_gateway_retries_total counter\n"
         "llm_gateway_retries_total " + std::to_string(ctx.routing->retries.load()) + "\n";
    o += "# HELP llm_gateway_fallbacks_total fallbacks to another model group\n# TYPE llm_gateway_fallbacks_total counter\n"
         "llm_gateway_fallbacks_total " + std::to_string(ctx.routing->fallbacks.load()) + "\n";
    o += "# HELP llm_gateway_fallback_failures_total requests whose fallbacks failed too\n"
         "# TYPE llm_gateway_fallback_failures_total counter\n"
         "llm_gateway_fallback_failures_total " + std::to_string(ctx.routing->fallback_failures.load()) + "\n";
  }
  if (ctx.limiter) o += ctx.limiter->metrics_text();
  return o;
}

}  // namespace

std::string readiness_json(const pipeline::services& svc, bool& draining) {
  draining = svc.server && svc.server->draining();
  std::size_t usable = 0;
  for (auto& d : svc.registry->deployments()) usable += d->usable ? 1 : 0;
  bool persistent = svc.accounts && svc.accounts->persistent();
  bool db_ok = !svc.accounts || svc.accounts->state().db_ok.load();
  std::int64_t spooled = svc.accounts ? svc.accounts->state().spooled_batches.load() : 0;
  bool redis_configured = svc.limiter && svc.limiter->redis_configured();
  bool redis_ok = redis_configured && svc.limiter->redis_up();
  bool degraded = (persistent && (!db_ok || spooled > 0)) || (redis_configured && !redis_ok);
  std::string b = R"({"status":)";
  append_json_string(b, draining ? "draining" : degraded ? "degraded" : "healthy");
  b += R"(,"db":)";
  append_json_string(b, !persistent ? "Not connected" : db_ok ? "connected" : "disconnected");
  b += R"(,"cache":null,"litellm_version":)";
  append_json_string(b, std::string("llm-gateway ") + GW_VERSION);
  b += R"(,"success_callbacks":[],"last_updated":)";
  append_json_string(b, iso8601(svc.started_at));
  b += R"(,"dependencies":{"database":{"status":)";
  append_json_string(b, !persistent ? "in_memory" : db_ok ? "ok" : "unavailable");
  if (!persistent) b += R"(,"note":"no database_url: keys made through the API live in memory and are lost at restart")";
  b += R"(,"spooled_spend_batches":)";
  append_json_number(b, spooled);
  b += R"(},"redis":{"status":)";
  append_json_string(b, !redis_configured ? "not_configured" : redis_ok ? "ok" : "unavailable");
  if (redis_configured) {
    b += R"(,"live_nodes":)";
    append_json_number(b, static_cast<std::int64_t>(svc.limiter->live_nodes()));
    b += R"(,"rate_limits":)";
    append_json_string(b, redis_ok ? "cluster-wide" : "local share while Redis is away");
  } else {
    b += R"(,"rate_limits":"this node")";
  }
  b += "}}";
  b += R"(,"model_groups":)";
  append_json_number(b, static_cast<std::int64_t>(svc.registry->groups().size()));
  b += R"(,"deployments":{"total":)";
  append_json_number(b, static_cast<std::int64_t>(svc.registry->deployments().size()));
  b += R"(,"usable":)";
  append_json_number(b, static_cast<std::int64_t>(usable));
  b += R"(,"health":[)";
  {
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    bool first = true;
    for (auto& d : svc.registry->deployments()) {
      if (!first) b += ',';
      first = false;
      auto h = static_cast<deployment_health>(d->health.load());
      b += R"({"model_group":)";
      append_json_string(b, d->cfg->model_name);
      b += R"(,"model_id":)";
      append_json_string(b, d->cfg->id);
      b += R"(,"status":)";
      append_json_string(b, !d->usable                             ? "unusable"
                            : h == deployment_health::healthy       ? "healthy"
                            : h == deployment_health::probing       ? "probing"
                                                                    : "cooling_down");
      if (h == deployment_health::cooling) {
        b += R"(,"cooldown_remaining_ms":)";
        append_json_number(b, std::max<std::int64_t>(0, d->cooldown_until_ms.load() - now_ms));
      }
      b += R"(,"in_flight":)";
      append_json_number(b, d->in_flight.load());
      b += '}';
    }
  }
  b += "]}}";
  return b;
}

std::string metrics_text(const pipeline::services& svc) {
  return svc.metrics->scrape() + accounts_metrics_text(svc.accounts) + routing_metrics_text(svc) +
         (svc.tracing ? svc.tracing->metrics_text() : std::string());
}

}  // namespace gw::gateway
