#pragma once
/// The stages of a model route, in chain order:
///
///   [dialect_egress]  the answer in the client's dialect (Anthropic /v1/messages)
///   auth              method, then the key (master key, virtual key; 401)
///   ingress           the client's dialect in: one normalized OpenAI view, validated (400);
///                     the gateway's own fields and x-litellm-* headers read and stripped
///   model             the model group (404) and the key's access to it (401)
///   spend             budget admission (429) and, at settle, the charge and spend log
///   limits            the caller's rate limits (429): key, user, team, key x model
///   (cache, guardrails: the next stages plug in here)
///   dispatch          routing, retries, fallbacks, the upstream call and the relay
///
/// Each is stateless (per-request state lives in the request_context) and const.

#include "gw/pipeline/context.hpp"
#include "gw/pipeline/stage.hpp"

namespace gw::pipeline {

class dialect_egress_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "dialect_egress"; }
  flow on_request(request_context&) const override { return flow::next; }
  void on_response(request_context& ctx, response& r) const override;
  bool wants_events() const noexcept override { return true; }
  void on_events(request_context& ctx, std::string_view events, bool last, std::string& out) const override;
};

class auth_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "auth"; }
  flow on_request(request_context& ctx) const override;
};

class ingress_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "ingress"; }
  flow on_request(request_context& ctx) const override;
};

class model_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "model"; }
  flow on_request(request_context& ctx) const override;
  flow on_reroute(request_context& ctx) const override;
};

class spend_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "spend"; }
  flow on_request(request_context& ctx) const override;
  flow on_reroute(request_context& ctx) const override;
  void on_settle(request_context& ctx) const override;
};

class limits_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "limits"; }
  flow on_request(request_context& ctx) const override;
  flow on_reroute(request_context& ctx) const override;
  void on_settle(request_context& ctx) const override;
};

class dispatch_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "dispatch"; }
  flow on_request(request_context& ctx) const override;
  void on_settle(request_context& ctx) const override;
  void on_finish(request_context& ctx) const override;
};

enum class auth_outcome { ok, refused, pending };
/// Who is calling on session `s`: the master key (or nobody when no master key is set:
/// `master`), a virtual key (`entry`), or a refusal (401 `refusal`). `pending`: an
/// unknown key is being looked up in the database; `retry` runs on the session's io
/// thread when the answer is in this thread's table (call again then).
auth_outcome authenticate(const services& svc, http::session& s, bool& master, accounts::auth_entry_ptr& entry,
                          error& refusal, std::function<void()> retry);

/// The key a client presented, by LiteLLM's precedence: x-litellm-api-key,
/// Authorization (Bearer), api-key, x-api-key. Empty if none.
std::string_view presented_key(const http::request& req) noexcept;

/// Worst-case cost of a request before it runs: the prompt (a generous token estimate
/// from its bytes) at the group's highest input price, plus max_tokens (or the model's
/// maximum output) at the highest output price, for every choice asked for.
keys::money worst_case_cost(const routing::model_group& g, const providers::inspected_request& r,
                            providers::operation op, std::int64_t default_max_output);

/// The estimate a request counts for while in flight under `budget_enforcement: spend`:
/// the prompt at the group's highest input price, plus max_tokens when the client set it.
keys::money estimated_cost(const routing::model_group& g, const providers::inspected_request& r,
                           providers::operation op);

/// The request's cost from the usage read so far and the deployment's price (0 when
/// either is unknown).
keys::money response_cost(const request_context& ctx);
/// Cost as exact decimal USD without trailing zeros ("0.000123"), for headers.
std::string format_cost(keys::money m);

/// x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the most constrained scope.
void append_ratelimit_headers(std::string& out, const limits::decision& d);

}  // namespace gw::pipeline
