#pragma once
/// The gateway's HTTP routes: the model routes (OpenAI's, Azure's paths, Anthropic's
/// /v1/messages), each run as a chain of pipeline stages; model listing, the admin API,
/// /traces, health and metrics. Runs on the io threads; holds no mutable state.

#include "gw/http/server.hpp"
#include "gw/pipeline/context.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::gateway {

using pipeline::presented_key;

/// The route a request path names, with the /v1 prefix removed. Azure-style paths
/// (/openai/deployments/{model}/chat/completions, /completions, /embeddings) map to
/// the same routes with `model_id` set to the model named in the path; Anthropic's
/// /v1/messages is `messages`.
enum class route {
  chat, completions, embeddings, messages, models, model_by_id, liveliness, readiness, metrics, root, unknown
};
route match_route(std::string_view path, std::string_view& model_id);

/// The stages of the model routes and their chains, built once from the config.
/// Immutable after construction (thread-safe).
class model_routes {
 public:
  model_routes();
  /// OpenAI's dialect (and Azure's paths).
  const pipeline::chain& openai() const noexcept { return openai_; }
  /// Anthropic's Messages API.
  const pipeline::chain& anthropic() const noexcept { return anthropic_; }

 private:
  pipeline::dialect_egress_stage egress_;
  pipeline::auth_stage auth_;
  pipeline::ingress_stage ingress_;
  pipeline::model_stage model_;
  pipeline::spend_stage spend_;
  pipeline::limits_stage limits_;
  pipeline::dispatch_stage dispatch_;
  pipeline::chain openai_, anthropic_;
};

class gateway_handler : public http::request_handler {
 public:
  explicit gateway_handler(const pipeline::services& svc) : svc_(svc) {}
  void on_request(const http::session_ptr& s) override;
  /// A request whose body has not arrived: the caller is authenticated on its headers
  /// first, so nobody without a valid key makes the gateway hold a body.
  http::head_verdict on_head(const http::session_ptr& s) override;
  const model_routes& routes() const noexcept { return routes_; }

 private:
  void resume_head(const http::session_ptr& s);
  void respond_status(const http::session_ptr& s, route r);
  const pipeline::services& svc_;
  model_routes routes_;
};

/// GET /health/readiness's body and whether the node is ready (200) or draining (503).
std::string readiness_json(const pipeline::services& svc, bool& draining);
/// GET /metrics: every renderer's Prometheus text.
std::string metrics_text(const pipeline::services& svc);

}  // namespace gw::gateway
