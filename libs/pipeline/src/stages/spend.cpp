// The spend stage: budget admission before the call, and the charge after it.
//
// Admission: a virtual key with a budget (its own, its user's, its team's, or a model
// budget) reserves the request's cost from its io thread's slice of each of them, on the
// thread (accounts/slices.cpp); without room the request is refused with 429 naming the
// budget. How much is reserved is the enforcement mode's choice (services::budgets): the
// estimate, admitted while anything is left (spend mode, LiteLLM's rule made exact
// across nodes), or the worst case, which must fit (strict). A fallback to another
// group reserves anew.
//
// Settle (before the answer's last byte): the request's cost from the usage read and
// the deployment's price comes off the slices instead of what was reserved, and goes to
// the ledger with a spend-log row; every request is charged, the master key's too.

#include <atomic>
#include <limits>

#include "gw/core/log.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

keys::money amount_for(const request_context& ctx, const routing::model_group& g) {
  if (ctx.svc.budgets == accounts::budget_mode::strict)
    return worst_case_cost(g, ctx.view, ctx.op, ctx.svc.accounts->config().default_max_output_tokens);
  return estimated_cost(g, ctx.view, ctx.op);
}

}  // namespace

keys::money response_cost(const request_context& ctx) {
  const auto* d = ctx.out.deployment;
  const auto& u = ctx.out.usage;
  if (!d || !d->price || !u.known()) return 0;
  pricing::token_usage t;
  t.prompt_tokens = std::max<std::int64_t>(0, u.prompt_tokens);
  t.completion_tokens = std::max<std::int64_t>(0, u.completion_tokens);
  // Cached parts are part of prompt_tokens; a provider reporting more is not trusted.
  t.cache_read_tokens = std::min(u.cached_tokens, t.prompt_tokens);
  t.cache_creation_tokens = std::min(u.cache_creation_tokens, t.prompt_tokens - t.cache_read_tokens);
  return pricing::cost_of(*d->price, t);
}

namespace {

constexpr std::int64_t k_tokens_per_image = 1500;  ///< more than OpenAI's largest (high detail)

std::int64_t mul_sat(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<std::int64_t>::max() : r;
}

/// The prompt's tokens, generously: every byte of the body counts (tools, response
/// formats, images and audio included), a token per 3 bytes, plus what images cost.
std::int64_t prompt_tokens(const providers::inspected_request& r) noexcept {
  auto bytes = static_cast<std::int64_t>(std::max(r.text_bytes, r.body_bytes));
  return bytes / 3 + 16 + mul_sat(static_cast<std::int64_t>(r.image_parts), k_tokens_per_image);
}

}  // namespace

keys::money worst_case_cost(const routing::model_group& g, const providers::inspected_request& r,
                            providers::operation op, std::int64_t default_max_output) {
  const auto& p = g.worst_price;
  std::int64_t out_tokens = 0;
  if (op != providers::operation::embedding) {
    out_tokens = r.max_tokens >= 0 ? r.max_tokens : (p.max_output_tokens > 0 ? p.max_output_tokens : default_max_output);
    out_tokens = mul_sat(out_tokens, std::max<std::int64_t>(1, r.n));  // max_tokens near 2^63 with n: 2
  }
  pricing::token_usage u;
  u.prompt_tokens = prompt_tokens(r);
  u.completion_tokens = out_tokens;
  return pricing::cost_of(p, u);  // saturating
}

keys::money estimated_cost(const routing::model_group& g, const providers::inspected_request& r,
                           providers::operation op) {
  const auto& p = g.worst_price;
  pricing::token_usage u;
  u.prompt_tokens = prompt_tokens(r);
  if (op != providers::operation::embedding && r.max_tokens >= 0)
    u.completion_tokens = mul_sat(r.max_tokens, std::max<std::int64_t>(1, r.n));
  return pricing::cost_of(p, u);
}

namespace {

/// Admission for group `g` from this io thread's budget slices. On a reroute the new
/// reservation replaces the old one.
flow admit(request_context& ctx, const routing::model_group& g, bool reroute) {
  auto& io = ctx.svc.accounts->io(ctx.shard);
  accounts::budget_hold hold;
  error refusal;
  auto wake = [c = ctx.shared_from_this(), reroute] {
    if (c->finished()) return;
    if (reroute)
      c->rerun_reroute();
    else
      c->rerun();
  };
  switch (io.admit(*ctx.entry, g.name, amount_for(ctx, g), ctx.svc.budgets, hold, refusal, std::move(wake))) {
    case accounts::admission::admitted:
      io.settle(ctx.budget, 0);
      ctx.budget = std::move(hold);
      return flow::next;
    case accounts::admission::waiting:
      return flow::pending;
    case accounts::admission::refused:
      break;
  }
  if (reroute) {
    ctx.reroute_refusal = std::move(refusal);
    ctx.reroute_headers.clear();
  } else {
    ctx.fail(refusal);
  }
  return flow::answered;
}

}  // namespace

flow spend_stage::on_request(request_context& ctx) const {
  const auto& g = *ctx.group;
  if (!ctx.entry || !ctx.svc.accounts || !ctx.entry->budgeted_for(g.name)) return flow::next;
  return admit(ctx, g, false);
}

flow spend_stage::on_reroute(request_context& ctx) const {
  const auto& g = *ctx.group;
  if (!ctx.entry || !ctx.svc.accounts || !ctx.entry->budgeted_for(g.name)) return flow::next;
  return admit(ctx, g, true);
}

void spend_stage::on_settle(request_context& ctx) const {
  if (ctx.charged || !ctx.svc.accounts || !ctx.group) return;
  auto& io = ctx.svc.accounts->io(ctx.shard);
  if (!ctx.passed(this)) {
    // Refused here: no spend, no spend-log row (and nothing reserved to give back).
    io.settle(ctx.budget, 0);
    return;
  }
  ctx.charged = true;
  auto& out = ctx.out;
  int status = out.status;
  if (ctx.view.stream && !out.usage.known() && out.stream_events > 0) {
    // No usage seen: a provider that ignored stream_options, or a stream that ended
    // early (the client hung up: 499; the provider broke it: 502). Charge what was
    // delivered rather than nothing: the prompt from its size, one token per content
    // chunk relayed (the role chunk and [DONE] are not tokens).
    out.usage.prompt_tokens = ctx.view.estimated_input_tokens();
    out.usage.completion_tokens = std::max<std::int64_t>(0, out.stream_events - 2);
    static std::atomic<bool> warned{false};
    if (status / 100 == 2 && !warned.exchange(true))
      log::warn("deployment '" + (out.deployment ? out.deployment->cfg->model_name : std::string("?")) +
                "' streamed without usage: its cost is estimated from the stream (once-only warning)");
  }
  accounts::charge c;
  c.cost = ctx.cost = response_cost(ctx);
  io.settle(ctx.budget, c.cost);
  if (ctx.entry && c.cost != 0) {
    c.entities = ctx.entry->spend_entities(ctx.group->name);
    for (const auto& soft : ctx.entry->soft_budgets)
      if (soft) c.soft = ctx.entry;
  }
  auto& l = c.log;
  l.request_id = ctx.call_id;
  l.call_type = providers::operation_name(ctx.op);
  if (ctx.entry) {
    l.api_key = ctx.entry->token;
    l.key_alias = ctx.entry->key_alias;
    l.user_id = ctx.entry->user_id;
    l.team_id = ctx.entry->team_id;
  }
  l.model_group = ctx.group->name;
  if (const auto* d = out.deployment) {
    l.model_id = d->cfg->id;
    l.model = d->cfg->model;
    l.api_base = d->target.base_url;
  }
  if (out.usage.known()) {
    l.prompt_tokens = std::max<std::int64_t>(0, out.usage.prompt_tokens);
    l.completion_tokens = std::max<std::int64_t>(0, out.usage.completion_tokens);
    l.total_tokens = out.usage.total_tokens >= 0 ? out.usage.total_tokens : l.prompt_tokens + l.completion_tokens;
  }
  l.spend = c.cost;
  l.start_time = ctx.wall_start;
  l.end_time = ctx.wall(request_context::clock::now());
  if (out.first_byte != request_context::clock::time_point{}) l.completion_start_time = ctx.wall(out.first_byte);
  l.status = status / 100 == 2 ? "success" : "failure";
  l.http_status = status;
  // What the client sent, as it sent it (before a dialect was translated or the
  // gateway's own fields were removed): a request can be replayed from its row.
  l.route = ctx.route();
  if (ctx.svc.store_prompts) l.request_body = ctx.client_body();
  io.add_charge(std::move(c));
}

}  // namespace gw::pipeline
