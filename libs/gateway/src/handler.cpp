#include "gw/gateway/handler.hpp"

#include "gw/core/ids.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"
#include "gw/limits/rate_limiter.hpp"
#include "gw/gateway/proxy_call.hpp"
#include "gw/http/asio.hpp"
#include "gw/keys/admin_json.hpp"
#include "gw/trace_pipeline/pipeline.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/openai.hpp"

namespace gw::gateway {
namespace {

namespace asio = boost::asio;

namespace bhttp = http::bhttp;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string_view strip_bearer(std::string_view v) {
  v = trim(v);
  if (v.size() >= 7 && iequals(v.substr(0, 7), "bearer ")) return trim(v.substr(7));
  return v;
}

void respond_error(const http::session_ptr& s, const error& e, std::string_view extra = {}) {
  s->respond_error(static_cast<unsigned>(http_status(e.code)), to_openai_json(e), extra);
}

/// A model-route request refused before it reached a deployment (authentication, bad
/// input, unknown model, model access, budget) still gets its trace: a server span with
/// the status and error, no attempt. Returns the header that names its call id, so the
/// client can look it up (GET /traces/{id}).
std::string trace_refusal(const gateway_context& ctx, const http::session_ptr& s, std::string_view operation,
                          std::string_view model, const accounts::auth_entry_ptr& entry, int status,
                          std::string_view error_type, std::string_view message) {
  tracing::trace_record t;
  ctx.tracing->settings().begin(t, s->req());
  t.request_id = new_request_id();
  t.node_id = ctx.node_id;
  t.end = std::chrono::system_clock::now();
  t.start = t.end - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::steady_clock::now() - s->received_at());
  t.operation = std::string(operation);
  t.model_group = std::string(model);
  if (entry) {
    t.key_hash = entry->token;
    t.key_alias = entry->key_alias;
    t.user_id = entry->user_id;
    t.team_id = entry->team_id;
  }
  t.status = status;
  t.error_type = std::string(error_type);
  t.error_message = std::string(message);
  std::string header = "x-litellm-call-id: " + t.request_id + "\r\n";
  ctx.tracing->add(s->thread().index(), std::move(t));
  return header;
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string_view presented_key(const http::request& req) noexcept {
  if (auto v = req["x-litellm-api-key"]; !v.empty()) return strip_bearer(sv(v));
  if (auto v = req[bhttp::field::authorization]; !v.empty()) {
    auto t = trim(sv(v));
    if (t.size() >= 7 && iequals(t.substr(0, 7), "bearer ")) return trim(t.substr(7));
    // Anything else (Basic, a bare key) is not a key, as in LiteLLM.
  }
  if (auto v = req["api-key"]; !v.empty()) return trim(sv(v));
  if (auto v = req["x-api-key"]; !v.empty()) return trim(sv(v));
  return {};
}

route match_route(std::string_view path, std::string_view& model_id) {
  if (path.size() >= 3 && path.substr(0, 3) == "/v1" && (path.size() == 3 || path[3] == '/')) path.remove_prefix(3);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path.substr(0, 20) == "/openai/deployments/") {
    // Azure OpenAI's paths, so Azure SDK clients can point at the gateway.
    std::string_view rest = path.substr(20);
    auto slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos) return route::unknown;
    model_id = rest.substr(0, slash);
    rest.remove_prefix(slash);
    if (rest == "/chat/completions") return route::chat;
    if (rest == "/completions") return route::completions;
    if (rest == "/embeddings") return route::embeddings;
    model_id = {};
    return route::unknown;
  }
  if (path == "/messages" || path == "/anthropic/v1/messages") return route::messages;
  if (path == "/chat/completions") return route::chat;
  if (path == "/completions") return route::completions;
  if (path == "/embeddings") return route::embeddings;
  if (path == "/models") return route::models;
  if (path.size() > 8 && path.substr(0, 8) == "/models/") {
    model_id = path.substr(8);
    return route::model_by_id;
  }
  if (path == "/health/liveliness" || path == "/health/liveness") return route::liveliness;
  if (path == "/health/readiness") return route::readiness;
  if (path == "/metrics") return route::metrics;
  if (path == "/" || path.empty()) return route::root;
  return route::unknown;
}

keys::money worst_case_cost(const model_group& g, const providers::inspected_request& r, providers::operation op,
                            std::int64_t default_max_output) {
  const auto& p = g.worst_price;
  std::int64_t in_tokens = static_cast<std::int64_t>(r.text_bytes / 3) + 16;
  std::int64_t out_tokens = 0;
  if (op != providers::operation::embedding) {
    out_tokens = r.max_tokens >= 0 ? r.max_tokens : (p.max_output_tokens > 0 ? p.max_output_tokens : default_max_output);
    out_tokens *= std::max<std::int64_t>(1, r.n);
  }
  pricing::token_usage u;
  u.prompt_tokens = in_tokens;
  u.completion_tokens = out_tokens;
  return pricing::cost_of(p, u);
}

namespace {

bool is_admin_path(std::string_view p) {
  auto starts = [&](std::string_view x) { return p.substr(0, x.size()) == x; };
  return starts("/key/") || starts("/user/") || starts("/team/") || starts("/spend/") || p == "/global/spend" ||
         starts("/global/spend/");
}

std::string expiry_message(keys::sys_time expires, keys::sys_time now) {
  return "Authentication Error - Expired Key. Key Expiry time " + keys::iso_time(expires) + " and current time " +
         keys::iso_time(now);
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
std::string routing_metrics_text(const gateway_context& ctx) {
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

void gateway_handler::on_request(const http::session_ptr& s) {
  auto& req = s->req();
  std::string_view target = sv(req.target());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
  std::string_view model_id;
  route r = match_route(path, model_id);
  auto method = req.method();
  std::size_t shard = s->thread().index();

  // Who is calling. `master`: the master key (or no master key configured: open).
  // `entry`: a virtual key. Unknown keys may need one database look-up (then the
  // request is handled again, the answer being in this thread's table).
  bool master = false;
  accounts::auth_entry_ptr entry;
  // Model routes trace their refusals (operation name, the model asked for once known).
  std::string_view traced_op = r == route::chat || r == route::messages ? providers::operation_name(providers::operation::chat)
                               : r == route::completions ? providers::operation_name(providers::operation::completion)
                               : r == route::embeddings  ? providers::operation_name(providers::operation::embedding)
                                                         : std::string_view{};
  std::string traced_model;

  // Anthropic's /v1/messages answers errors in Anthropic's shape.
  bool anthropic = r == route::messages;
  auto fail = [&, anthropic](const error& e, std::string_view extra = {}) {
    int status = http_status(e.code);
    ctx_.metrics->count_unrouted(shard, status);
    std::string headers;
    if (ctx_.tracing && !traced_op.empty()) {
      headers = trace_refusal(ctx_, s, traced_op, traced_model, entry, status, error_code_string(e.code), e.message);
      headers += extra;
      extra = headers;
    }
    if (anthropic)
      return s->respond_error(static_cast<unsigned>(status),
                              providers::openai_error_to_anthropic(status, to_openai_json(e)), extra);
    respond_error(s, e, extra);
  };
  auto wrong_method = [&](std::string_view allowed) {
    fail(error{errc::method_not_allowed,
               "Method " + std::string(sv(req.method_string())) + " is not allowed on " + std::string(path) +
                   "; use " + std::string(allowed) + ".",
               ""},
         "allow: " + std::string(allowed) + "\r\n");
  };
  auto refuse = [&](errc code, std::string msg) { fail(error{code, std::move(msg), ""}); };

  auto authenticate = [&]() -> bool {
    auto key = presented_key(req);
    if (!ctx_.master_key.empty() && !key.empty() && secure_equals(key, ctx_.master_key)) {
      master = true;
      return true;
    }
    if (key.empty()) {
      if (ctx_.master_key.empty()) {
        master = true;
        return true;
      }
      refuse(errc::auth_error, "Authentication Error: no API key passed in. Send it as 'Authorization: Bearer <key>'.");
      return false;
    }
    if (!ctx_.accounts) {
      if (ctx_.master_key.empty()) {
        master = true;
        return true;
      }
      refuse(errc::auth_error, "Authentication Error: invalid API key.");
      return false;
    }
    auto& io = ctx_.accounts->io(shard);
    // The key's SHA-256, once per connection (a keep-alive client repeats its key).
    auto& memo = s->memo();
    if (memo.presented.empty() || !secure_equals(key, memo.presented)) {
      memo.wipe();
      memo.derived = keys::hash_key(key);
      memo.presented.assign(key);
    }
    const std::string& token = memo.derived;
    switch (io.find(token, entry)) {
      case accounts::io_accounts::lookup_status::found: {
        if (entry->expires) {
          auto now = std::chrono::system_clock::now();
          if (*entry->expires <= now) {
            refuse(errc::auth_error, expiry_message(*entry->expires, now));
            return false;
          }
        }
        if (entry->blocked) {
          refuse(errc::auth_error, "Authentication Error, " + entry->blocked_reason);
          return false;
        }
        return true;
      }
      case accounts::io_accounts::lookup_status::unknown:
        if (ctx_.master_key.empty()) {
          master = true;
          return true;
        }
        refuse(errc::auth_error, "Authentication Error: invalid API key.");
        return false;
      case accounts::io_accounts::lookup_status::ask:
        io.ask(token, [this, s, token = std::string(token), &io](accounts::auth_entry_ptr e) {
          asio::post(s->io(), [this, s, token, e = std::move(e), &io] {
            if (e) io.upsert(e);
            else io.remember_miss(token);
            on_request(s);  // found or negatively cached now: no second look-up
          });
        });
        return false;
    }
    return false;
  };

  if (r == route::unknown && (path == "/traces" || path.rfind("/traces/", 0) == 0)) {
    if (method != bhttp::verb::get) return wrong_method("GET");
    if (!authenticate()) return;
    if (!master) return refuse(errc::forbidden, "Only the master key may read traces.");
    if (!ctx_.tracing)
      return refuse(errc::not_found, "Tracing is off: no trace store (gateway_settings.trace_store).");
    ctx_.tracing->query(std::string(path), std::string(query), [s](int status, std::string body) {
      asio::post(s->io(), [s, status, body = std::move(body)]() mutable {
        s->respond(static_cast<unsigned>(status), "application/json", std::move(body));
      });
    });
    return;
  }

  if (r == route::unknown && is_admin_path(path)) {
    if (!authenticate()) return;
    if (!master)
      return refuse(errc::forbidden, "Only the master key may call " + std::string(path) + ".");
    if (!ctx_.accounts) return refuse(errc::service_unavailable, "The admin API is not available.");
    ctx_.accounts->admin(std::string(sv(req.method_string())) + " " + std::string(path), req.body(),
                         std::string(query), [s](int status, std::string body) {
                           asio::post(s->io(), [s, status, body = std::move(body)]() mutable {
                             s->respond(static_cast<unsigned>(status), "application/json", std::move(body));
                           });
                         });
    return;
  }

  switch (r) {
    case route::chat:
    case route::completions:
    case route::embeddings:
    case route::messages: {
      if (method != bhttp::verb::post) return wrong_method("POST");
      if (!authenticate()) return;
      auto op = r == route::chat || r == route::messages ? providers::operation::chat
                : r == route::completions                ? providers::operation::completion
                                                         : providers::operation::embedding;
      std::shared_ptr<const providers::anthropic_request_info> ingress;
      if (anthropic) {
        // An Anthropic SDK client: the request becomes an OpenAI chat request, the
        // answer goes back in Anthropic's shape (proxy_call translates it).
        std::string converted;
        auto info = std::make_shared<providers::anthropic_request_info>();
        if (auto pe = providers::anthropic_request_to_openai(req.body(), converted, *info)) {
          ctx_.metrics->count_unrouted(shard, pe->status);
          std::string headers;
          if (ctx_.tracing)
            headers = trace_refusal(ctx_, s, traced_op, "", entry, pe->status, pe->code.empty() ? pe->type : pe->code,
                                    pe->message);
          return s->respond_error(static_cast<unsigned>(pe->status),
                                  providers::openai_error_to_anthropic(pe->status, pe->json()), headers);
        }
        converted.reserve(converted.size() + http::json_padding);
        req.body() = std::move(converted);
        ingress = std::move(info);
      } else if (!model_id.empty()) {
        // Azure-style route: the model is the deployment named in the path.
        std::string b = providers::with_model(req.body(), model_id);
        b.reserve(b.size() + http::json_padding);
        req.body() = std::move(b);
      }
      providers::inspected_request ir;
      if (auto e = providers::inspect_request(op, req.body(), ir)) return fail(*e);
      if (ctx_.tracing) traced_model = ir.model;
      if (ir.has_gateway_fields) {
        // timeout, stream_timeout, num_retries are for the gateway, not the provider.
        auto kept = ir;
        std::string stripped = providers::strip_gateway_fields(req.body());
        stripped.reserve(stripped.size() + http::json_padding);
        req.body() = std::move(stripped);
        if (auto e = providers::inspect_request(op, req.body(), ir)) return fail(*e);
        ir.timeout_s = kept.timeout_s;
        ir.stream_timeout_s = kept.stream_timeout_s;
        ir.num_retries = kept.num_retries;
      }
      const model_group* g = ctx_.registry->find(ir.model);
      if (!g)
        return fail(error{errc::model_not_found,
                          "The model '" + ir.model +
                              "' does not exist on this gateway. GET /v1/models lists the model groups.",
                          "model"});
      if (entry && !entry->allows(g->name)) {
        std::string allowed;
        for (auto& m : entry->models) allowed += (allowed.empty() ? "'" : ", '") + m + "'";
        for (auto& m : entry->team_models) allowed += (allowed.empty() ? "team: '" : ", team: '") + m + "'";
        return fail(error{errc::auth_error,
                          "key not allowed to access model. This key can only access models=[" + allowed +
                              "]. Tried to access " + ir.model,
                          "model"});
      }
      if (entry && entry->budgeted_for(g->name)) {
        auto amount = worst_case_cost(*g, ir, op, ctx_.accounts->config().default_max_output_tokens);
        auto ir_shared = std::make_shared<providers::inspected_request>(std::move(ir));
        ctx_.accounts->reserve(entry, g->name, amount,
                               [this, s, op, g, entry, ir_shared, ingress](accounts::reserve_result res) mutable {
                                 asio::post(s->io(), [this, s, op, g, entry, ir_shared, ingress,
                                                      res = std::move(res)]() mutable {
                                   if (res.refusal) {
                                     int status = http_status(res.refusal->code);
                                     ctx_.metrics->count_unrouted(s->thread().index(), status);
                                     std::string headers;
                                     if (ctx_.tracing)
                                       headers = trace_refusal(ctx_, s, providers::operation_name(op),
                                                               g->name, entry, status,
                                                               error_code_string(res.refusal->code),
                                                               res.refusal->message);
                                     if (ingress)
                                       return s->respond_error(static_cast<unsigned>(status),
                                                               providers::openai_error_to_anthropic(
                                                                   status, to_openai_json(*res.refusal)),
                                                               headers);
                                     return respond_error(s, *res.refusal, headers);
                                   }
                                   auto call = std::make_shared<proxy_call>(ctx_, s, op, std::move(*ir_shared), g,
                                                                            entry, res.reservation);
                                   call->set_anthropic_ingress(std::move(ingress));
                                   call->start();
                                 });
                               });
        return;
      }
      auto call = std::make_shared<proxy_call>(ctx_, s, op, std::move(ir), g, entry);
      call->set_anthropic_ingress(std::move(ingress));
      call->start();
      return;
    }
    case route::models:
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authenticate()) return;
      if (entry && (!entry->models.empty() || !entry->team_models.empty()))
        return s->respond(200, "application/json",
                          ctx_.registry->models_json_for([&](std::string_view m) { return entry->allows(m); }));
      return s->respond(200, "application/json", ctx_.registry->models_json());
    case route::model_by_id: {
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authenticate()) return;
      auto body = ctx_.registry->model_json(model_id);
      if (body.empty() || (entry && !entry->allows(model_id)))
        return respond_error(s, error{errc::model_not_found, "The model '" + std::string(model_id) + "' does not exist.", "model"});
      return s->respond(200, "application/json", std::move(body));
    }
    case route::liveliness:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "application/json", "\"I'm alive!\"");
    case route::readiness: {
      if (method != bhttp::verb::get) return wrong_method("GET");
      bool draining = ctx_.server && ctx_.server->draining();
      std::size_t usable = 0;
      for (auto& d : ctx_.registry->deployments()) usable += d->usable ? 1 : 0;
      bool persistent = ctx_.accounts && ctx_.accounts->persistent();
      bool db_ok = !ctx_.accounts || ctx_.accounts->state().db_ok.load();
      std::int64_t spooled = ctx_.accounts ? ctx_.accounts->state().spooled_batches.load() : 0;
      bool redis_configured = ctx_.limiter && ctx_.limiter->redis_configured();
      bool redis_ok = redis_configured && ctx_.limiter->redis_up();
      bool degraded = (persistent && (!db_ok || spooled > 0)) || (redis_configured && !redis_ok);
      std::string b = R"({"status":)";
      append_json_string(b, draining ? "draining" : degraded ? "degraded" : "healthy");
      b += R"(,"db":)";
      append_json_string(b, !persistent ? "Not connected" : db_ok ? "connected" : "disconnected");
      b += R"(,"cache":null,"litellm_version":)";
      append_json_string(b, std::string("llm-gateway ") + GW_VERSION);
      b += R"(,"success_callbacks":[],"last_updated":)";
      append_json_string(b, iso8601(ctx_.started_at));
      b += R"(,"dependencies":{"database":{"status":)";
      append_json_string(b, !persistent ? "in_memory" : db_ok ? "ok" : "unavailable");
      if (!persistent) b += R"(,"note":"no database_url: keys made through the API live in memory and are lost at restart")";
      b += R"(,"spooled_spend_batches":)";
      append_json_number(b, spooled);
      b += R"(},"redis":{"status":)";
      append_json_string(b, !redis_configured ? "not_configured" : redis_ok ? "ok" : "unavailable");
      if (redis_configured) {
        b += R"(,"live_nodes":)";
        append_json_number(b, static_cast<std::int64_t>(ctx_.limiter->live_nodes()));
        b += R"(,"rate_limits":)";
        append_json_string(b, redis_ok ? "cluster-wide" : "local share while Redis is away");
      } else {
        b += R"(,"rate_limits":"this node")";
      }
      b += "}}";
      b += R"(,"model_groups":)";
      append_json_number(b, static_cast<std::int64_t>(ctx_.registry->groups().size()));
      b += R"(,"deployments":{"total":)";
      append_json_number(b, static_cast<std::int64_t>(ctx_.registry->deployments().size()));
      b += R"(,"usable":)";
      append_json_number(b, static_cast<std::int64_t>(usable));
      b += R"(,"health":[)";
      {
        auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
        bool first = true;
        for (auto& d : ctx_.registry->deployments()) {
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
      return s->respond(draining ? 503 : 200, "application/json", std::move(b));
    }
    case route::metrics:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "text/plain; version=0.0.4; charset=utf-8", ctx_.metrics->scrape() + accounts_metrics_text(ctx_.accounts) + routing_metrics_text(ctx_) +
                                                                          (ctx_.tracing ? ctx_.tracing->metrics_text() : std::string()));
    case route::root:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "application/json",
                        std::string(R"({"name":"llm-gateway","version":")") + GW_VERSION +
                            R"(","docs":"OpenAI-compatible API under /v1"})");
    case route::unknown:
      break;
  }
  ctx_.metrics->count_unrouted(shard, 404);
  respond_error(s, error{errc::route_not_found, "Unknown route: " + std::string(sv(req.method_string())) + " " +
                                                    std::string(path),
                         ""});
}

}  // namespace gw::gateway
