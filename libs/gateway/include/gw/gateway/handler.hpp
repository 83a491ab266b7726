#pragma once
/// The gateway's HTTP routes: OpenAI-compatible model routes (with and without /v1),
/// model listing, health and metrics. Runs on the io threads; holds no mutable state.

#include "gw/gateway/context.hpp"
#include "gw/http/server.hpp"

namespace gw::gateway {

class gateway_handler : public http::request_handler {
 public:
  explicit gateway_handler(const gateway_context& ctx) : ctx_(ctx) {}
  void on_request(const http::session_ptr& s) override;

 private:
  const gateway_context& ctx_;
};

/// The key a client presented, by LiteLLM's precedence: x-litellm-api-key,
/// Authorization (Bearer), api-key, x-api-key. Empty if none.
std::string_view presented_key(const http::request& req) noexcept;

/// The route a request path names, with the /v1 prefix removed. Azure-style paths
/// (/openai/deployments/{model}/chat/completions, /completions, /embeddings) map to
/// the same routes with `model_id` set to the model named in the path; Anthropic's
/// /v1/messages is `messages`.
enum class route {
  chat, completions, embeddings, messages, models, model_by_id, liveliness, readiness, metrics, root, unknown
};
route match_route(std::string_view path, std::string_view& model_id);

/// Worst-case cost of a request before it runs: the prompt (a generous token estimate
/// from its bytes) at the group's highest input price, plus max_tokens (or the model's
/// maximum output) at the highest output price, for every choice asked for.
keys::money worst_case_cost(const model_group& g, const providers::inspected_request& r, providers::operation op,
                            std::int64_t default_max_output);

}  // namespace gw::gateway
