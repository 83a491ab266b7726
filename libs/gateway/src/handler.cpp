#include "gw/gateway/handler.hpp"

#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"
#include "gw/gateway/proxy_call.hpp"
#include "gw/providers/openai.hpp"

namespace gw::gateway {
namespace {

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

void gateway_handler::on_request(const http::session_ptr& s) {
  auto& req = s->req();
  std::string_view target = sv(req.target());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view model_id;
  route r = match_route(path, model_id);
  auto method = req.method();
  std::size_t shard = s->thread().index();

  auto wrong_method = [&](std::string_view allowed) {
    ctx_.metrics->count_unrouted(shard, 405);
    respond_error(s,
                  error{errc::method_not_allowed,
                        "Method " + std::string(sv(req.method_string())) + " is not allowed on " + std::string(path) +
                            "; use " + std::string(allowed) + ".",
                        ""},
                  "allow: " + std::string(allowed) + "\r\n");
  };
  auto authorized = [&]() {
    if (ctx_.master_key.empty()) return true;
    auto key = presented_key(req);
    if (key.empty()) {
      ctx_.metrics->count_unrouted(shard, 401);
      respond_error(s, error{errc::auth_error,
                             "Authentication Error: no API key passed in. Send it as 'Authorization: Bearer <key>'.", ""});
      return false;
    }
    if (!secure_equals(key, ctx_.master_key)) {
      ctx_.metrics->count_unrouted(shard, 401);
      respond_error(s, error{errc::auth_error, "Authentication Error: invalid API key.", ""});
      return false;
    }
    return true;
  };

  switch (r) {
    case route::chat:
    case route::completions:
    case route::embeddings: {
      if (method != bhttp::verb::post) return wrong_method("POST");
      if (!authorized()) return;
      auto op = r == route::chat          ? providers::operation::chat
                : r == route::completions ? providers::operation::completion
                                          : providers::operation::embedding;
      providers::inspected_request ir;
      if (auto e = providers::inspect_request(op, req.body(), ir)) {
        ctx_.metrics->count_unrouted(shard, http_status(e->code));
        return respond_error(s, *e);
      }
      const model_group* g = ctx_.registry->find(ir.model);
      if (!g) {
        ctx_.metrics->count_unrouted(shard, 404);
        return respond_error(s, error{errc::model_not_found,
                                      "The model '" + ir.model +
                                          "' does not exist on this gateway. GET /v1/models lists the model groups.",
                                      "model"});
      }
      auto call = std::make_shared<proxy_call>(ctx_, s, op, std::move(ir), g);
      call->start();
      return;
    }
    case route::models:
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authorized()) return;
      return s->respond(200, "application/json", ctx_.registry->models_json());
    case route::model_by_id: {
      if (method != bhttp::verb::get) return wrong_method("GET");
      if (!authorized()) return;
      auto body = ctx_.registry->model_json(model_id);
      if (body.empty())
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
      std::string b = R"({"status":)";
      append_json_string(b, draining ? "draining" : "healthy");
      b += R"(,"db":"Not connected","cache":null,"litellm_version":)";
      append_json_string(b, std::string("llm-gateway ") + GW_VERSION);
      b += R"(,"success_callbacks":[],"last_updated":)";
      append_json_string(b, iso8601(ctx_.started_at));
      b += R"(,"dependencies":{"database":{"status":"not_configured"},"redis":{"status":"not_configured"}})";
      b += R"(,"model_groups":)";
      append_json_number(b, static_cast<std::int64_t>(ctx_.registry->groups().size()));
      b += R"(,"deployments":{"total":)";
      append_json_number(b, static_cast<std::int64_t>(ctx_.registry->deployments().size()));
      b += R"(,"usable":)";
      append_json_number(b, static_cast<std::int64_t>(usable));
      b += "}}";
      return s->respond(draining ? 503 : 200, "application/json", std::move(b));
    }
    case route::metrics:
      if (method != bhttp::verb::get) return wrong_method("GET");
      return s->respond(200, "text/plain; version=0.0.4; charset=utf-8", ctx_.metrics->scrape());
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
