// The gateway's routes. Model routes run their chain of pipeline stages; the others
// (model listing, the admin API, /traces, health, metrics) are answered here.

#include "gw/gateway/handler.hpp"

#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"
#include "gw/http/asio.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::gateway {
namespace {

namespace asio = boost::asio;
namespace bhttp = http::bhttp;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool is_admin_path(std::string_view p) {
  auto starts = [&](std::string_view x) { return p.substr(0, x.size()) == x; };
  return starts("/key/") || starts("/user/") || starts("/team/") || starts("/spend/") || p == "/global/spend" ||
         starts("/global/spend/");
}

bool is_traces_path(std::string_view p) { return p == "/traces" || p.rfind("/traces/", 0) == 0; }

/// Admin routes without a master key: refused, not open to whoever reaches the port.
error no_master_key(std::string_view path) {
  return error{errc::auth_error,
               "The admin API (" + std::string(path) +
                   ") needs a master key: set general_settings.master_key in the config, or LITELLM_MASTER_KEY, "
                   "and send it as 'Authorization: Bearer <master key>'.",
               ""};
}

}  // namespace

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

model_routes::model_routes()
    : openai_({&auth_, &ingress_, &model_, &spend_, &limits_, &dispatch_}),
      anthropic_({&egress_, &auth_, &ingress_, &model_, &spend_, &limits_, &dispatch_}) {}

http::head_verdict gateway_handler::on_head(const http::session_ptr& s) {
  auto& req = s->req();
  std::string_view target = sv(req.target());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view model_id;
  route r = match_route(path, model_id);
  auto refuse = [&](const error& e) {
    svc_.metrics->count_unrouted(s->thread().index(), http_status(e.code));
    s->respond_error(static_cast<unsigned>(http_status(e.code)), to_openai_json(e));
    return http::head_verdict::answered;
  };
  bool admin = r == route::unknown && (is_admin_path(path) || is_traces_path(path));
  bool model_route = r == route::chat || r == route::completions || r == route::embeddings || r == route::messages;
  switch (r) {
    case route::chat:
    case route::completions:
    case route::embeddings:
    case route::messages:
    case route::models:
    case route::model_by_id:
      break;
    case route::unknown:
      if (admin) break;
      // Nothing here takes a body: the 404 goes out without reading it.
      return refuse(error{errc::route_not_found,
                          "Unknown route: " + std::string(sv(req.method_string())) + " " + std::string(path), ""});
    default:
      return http::head_verdict::read_body;  // health, metrics: small, answered at once
  }
  if (admin && svc_.master_key.empty()) return refuse(no_master_key(path));
  bool master = false;
  accounts::auth_entry_ptr entry;
  error refusal;
  switch (pipeline::authenticate(svc_, *s, master, entry, refusal, [this, s] { resume_head(s); })) {
    case pipeline::auth_outcome::ok:
      if (admin && !master) break;  // a virtual key on an admin route: 403 below
      return http::head_verdict::read_body;
    case pipeline::auth_outcome::pending:
      return http::head_verdict::pending;
    case pipeline::auth_outcome::refused:
      if (model_route) {
        // The route's chain answers (its dialect, its metrics, its trace): its auth
        // stage refuses again, from the cache, before anything reads the body.
        on_request(s);
        return http::head_verdict::answered;
      }
      return refuse(refusal);
  }
  return refuse(error{errc::forbidden, "Only the master key may call " + std::string(path) + ".", ""});
}

void gateway_handler::resume_head(const http::session_ptr& s) {
  if (on_head(s) == http::head_verdict::read_body) s->continue_body();
}

void gateway_handler::on_request(const http::session_ptr& s) {
  auto& req = s->req();
  std::string_view target = sv(req.target());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
  std::string_view model_id;
  route r = match_route(path, model_id);
  auto method = req.method();

  switch (r) {
    case route::chat:
    case route::completions:
    case route::embeddings:
    case route::messages: {
      auto op = r == route::chat || r == route::messages ? providers::operation::chat
                : r == route::completions                ? providers::operation::completion
                                                         : providers::operation::embedding;
      bool anthropic = r == route::messages;
      auto ctx = std::make_shared<pipeline::request_context>(
          svc_, anthropic ? routes_.anthropic() : routes_.openai(), s, op,
          anthropic ? pipeline::dialect::anthropic : pipeline::dialect::openai);
      ctx->path_model = model_id;
      ctx->start();
      return;
    }
    default:
      break;
  }

  auto fail = [&](const error& e, std::string_view extra = {}) {
    int status = http_status(e.code);
    svc_.metrics->count_unrouted(s->thread().index(), status);
    s->respond_error(static_cast<unsigned>(status), to_openai_json(e), extra);
  };
  auto wrong_method = [&](std::string_view allowed) {
    fail(error{errc::method_not_allowed,
               "Method " + std::string(sv(req.method_string())) + " is not allowed on " + std::string(path) +
                   "; use " + std::string(allowed) + ".",
               ""},
         "allow: " + std::string(allowed) + "\r\n");
  };
  bool master = false;
  accounts::auth_entry_ptr entry;
  // Routes that need a caller: false when answered (refused) or waiting for a key look-up
  // (then the request is handled again).
  auto authenticate = [&]() -> bool {
    error refusal;
    switch (pipeline::authenticate(svc_, *s, master, entry, refusal, [this, s] { on_request(s); })) {
      case pipeline::auth_outcome::ok:
        return true;
      case pipeline::auth_outcome::pending:
        return false;
      case pipeline::auth_outcome::refused:
        break;
    }
    fail(refusal);
    return false;
  };

  if (r == route::unknown && (is_admin_path(path) || is_traces_path(path)) && svc_.master_key.empty())
    return fail(no_master_key(path));

  if (r == route::unknown && is_traces_path(path)) {
    if (method != bhttp::verb::get) return wrong_method("GET");
    if (!authenticate()) return;
    if (!master) return fail(error{errc::forbidden, "Only the master key may read traces.", ""});
    if (!svc_.tracing)
      return fail(error{errc::not_found, "Tracing is off: no trace store (gateway_settings.trace_store).", ""});
    svc_.tracing->query(std::string(path), std::string(query), [s](int status, std::string body) {
      asio::post(s->io(), [s, status, body = std::move(body)]() mutable {
        s->respond(static_cast<unsigned>(status), "application/json", std::move(body));
      });
    });
    return;
  }

  if (r == route::unknown && is_admin_path(path)) {
    if (!authenticate()) return;
    if (!master) return fail(error{errc::forbidden, "Only the master key may call " + std::string(path) + ".", ""});
    if (!svc_.accounts) return fail(error{errc::service_unavailable, "The admin API is not available.", ""});
    svc_.accounts->admin(std::string(sv(req.method_string())) + " " + std::string(path), req.body(),
                         std::string(query), [s](int status, std::string body) {
                           asio::post(s->io(), [s, status, body = std::move(body)]() mutable {
                             s->respond(static_cast<unsigned>(status), "application/json", std::move(body));
                           });
                         });
    return;
  }

  switch (r) {
    case route::models:
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authenticate()) return;
      if (entry && (!entry->models.empty() || !entry->team_models.empty()))
        return s->respond(200, "application/json",
                          svc_.registry->models_json_for([&](std::string_view m) { return entry->allows(m); }));
      return s->respond(200, "application/json", svc_.registry->models_json());
    case route::model_by_id: {
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authenticate()) return;
      auto body = svc_.registry->model_json(model_id);
      if (body.empty() || (entry && !entry->allows(model_id)))
        return s->respond_error(
            static_cast<unsigned>(http_status(errc::model_not_found)), to_openai_json(error{errc::model_not_found,
                                      "The model '" + std::string(model_id) + "' does not exist.", "model"}));
      return s->respond(200, "application/json", std::move(body));
    }
    case route::liveliness:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "application/json", "\"I'm alive!\"");
    case route::readiness: {
      if (method != bhttp::verb::get) return wrong_method("GET");
      bool draining = false;
      auto body = readiness_json(svc_, draining);
      return s->respond(draining ? 503 : 200, "application/json", std::move(body));
    }
    case route::metrics:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(svc_));
    case route::root:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "application/json",
                        std::string(R"({"name":"llm-gateway","version":")") + GW_VERSION +
                            R"(","docs":"OpenAI-compatible API under /v1"})");
    default:
      break;
  }
  svc_.metrics->count_unrouted(s->thread().index(), http_status(errc::route_not_found));
  s->respond_error(static_cast<unsigned>(http_status(errc::route_not_found)), to_openai_json(error{errc::route_not_found, "Unknown route: " + std::string(sv(req.method_string())) +
                                                                        " " + std::string(path),
                                             ""}));
}

}  // namespace gw::gateway
