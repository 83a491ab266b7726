// The model stage: the model group serving the request (an exact name, then the
// longest wildcard), and the key's access to it. Fallback groups a client names in its
// request must exist and be open to its key too; a fallback the router takes later is
// checked again when the request moves there (on_reroute).

#include "gw/core/log.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

std::string allowed_list(const accounts::auth_entry& e) {
  std::string allowed;
  for (auto& m : e.models) allowed += (allowed.empty() ? "'" : ", '") + m + "'";
  for (auto& m : e.team_models) allowed += (allowed.empty() ? "team: '" : ", team: '") + m + "'";
  return allowed;
}

error access_error(const accounts::auth_entry& e, std::string_view model, std::string_view param) {
  return error{errc::auth_error,
               "key not allowed to access model. This key can only access models=[" + allowed_list(e) +
                   "]. Tried to access " + std::string(model),
               std::string(param)};
}

/// The fallbacks a client named: each must be a model group of this gateway that its key
/// may use (LiteLLM checks them at admission too).
std::optional<error> check_request_fallbacks(const request_context& ctx) {
  const auto& c = ctx.view.controls;
  if (!c) return std::nullopt;
  for (const auto* l : {&c->fallbacks, &c->context_window_fallbacks, &c->content_policy_fallbacks}) {
    if (!*l) continue;
    std::string_view field = l == &c->fallbacks                  ? "fallbacks"
                             : l == &c->context_window_fallbacks ? "context_window_fallbacks"
                                                                 : "content_policy_fallbacks";
    for (const auto& [from, targets] : **l)
      for (const auto& t : targets) {
        const auto* g = ctx.svc.registry->find(t.model);
        if (!g)
          return error{errc::invalid_request,
                       "Invalid '" + std::string(field) + "': the model group '" + t.model +
                           "' does not exist on this gateway. GET /v1/models lists the model groups.",
                       std::string(field)};
        if (ctx.entry && !ctx.entry->allows(g->name)) return access_error(*ctx.entry, t.model, field);
      }
  }
  return std::nullopt;
}

}  // namespace

flow model_stage::on_request(request_context& ctx) const {
  const auto* g = ctx.svc.registry->find(ctx.view.model);
  if (!g) {
    ctx.fail(error{errc::model_not_found,
                   "The model '" + ctx.view.model +
                       "' does not exist on this gateway. GET /v1/models lists the model groups.",
                   "model"});
    return flow::answered;
  }
  if (ctx.entry && !ctx.entry->allows(g->name)) {
    ctx.fail(access_error(*ctx.entry, ctx.view.model, "model"));
    return flow::answered;
  }
  if (auto e = check_request_fallbacks(ctx)) {
    ctx.fail(*e);
    return flow::answered;
  }
  ctx.group = ctx.requested_group = g;
  return flow::next;
}

flow model_stage::on_reroute(request_context& ctx) const {
  // The fallback is a new request as far as access goes (LiteLLM skips this check for
  // the router's fallbacks).
  if (ctx.entry && !ctx.entry->allows(ctx.group->name)) {
    log::info("fallback to model group '" + ctx.group->name + "' skipped: the key may not use it");
    ctx.reroute_refusal.reset();  // skipped: the answer stays the last failure
    return flow::answered;
  }
  return flow::next;
}

}  // namespace gw::pipeline
