// The limits stage: the caller's rate limits (key, user, team, key x model: rpm, tpm,
// max_parallel_requests), acquired all-or-nothing before the call (locally, or in
// Redis) and released at settle with the tokens used, before the answer's last byte, so
// that the client's next request sees them. A fallback acquires the key x model scope of
// its group too.

#include <charconv>

#include "gw/limits/rate_limiter.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

/// OpenAI's reset format: "20ms", "1s", "6m0s", "1.5s".
void append_reset(std::string& out, std::int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) {
    append_int(out, ms);
    out += "ms";
    return;
  }
  std::int64_t minutes = ms / 60000;
  std::int64_t rest = ms % 60000;
  if (minutes > 0) {
    append_int(out, minutes);
    out += 'm';
  }
  append_int(out, rest / 1000);
  if (int frac = static_cast<int>(rest % 1000)) {
    char f[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                 static_cast<char>('0' + frac % 10)};
    std::size_t n = 4;
    while (f[n - 1] == '0') --n;
    out.append(f, n);
  }
  out += 's';
}

std::string retry_after(const limits::decision& d) {
  return "retry-after: " + std::to_string(std::max<std::int64_t>(1, (d.retry_after_ms + 999) / 1000)) + "\r\n";
}

}  // namespace

void append_ratelimit_headers(std::string& out, const limits::decision& d) {
  const limits::scope_state* req = nullptr;
  const limits::scope_state* tok = nullptr;
  for (const auto& st : d.states) {
    if (st.limit_requests >= 0 && (!req || st.remaining_requests < req->remaining_requests)) req = &st;
    if (st.limit_tokens >= 0 && (!tok || st.remaining_tokens < tok->remaining_tokens)) tok = &st;
  }
  if (req) {
    out += "x-ratelimit-limit-requests: ";
    append_int(out, req->limit_requests);
    out += "\r\nx-ratelimit-remaining-requests: ";
    append_int(out, std::max<std::int64_t>(0, req->remaining_requests));
    out += "\r\nx-ratelimit-reset-requests: ";
    append_reset(out, req->reset_requests_ms);
    out += "\r\n";
  }
  if (tok) {
    out += "x-ratelimit-limit-tokens: ";
    append_int(out, tok->limit_tokens);
    out += "\r\nx-ratelimit-remaining-tokens: ";
    append_int(out, std::max<std::int64_t>(0, tok->remaining_tokens));
    out += "\r\nx-ratelimit-reset-tokens: ";
    append_reset(out, tok->reset_tokens_ms);
    out += "\r\n";
  }
}

flow limits_stage::on_request(request_context& ctx) const {
  const auto* scopes = ctx.entry ? ctx.entry->scopes_for(ctx.group->name) : nullptr;
  if (!scopes || !ctx.svc.limiter) return flow::next;
  // The limiter decides at once (locally) or later (Redis): both on this io thread.
  ctx.probe = {true, false, flow::pending};
  ctx.svc.limiter->acquire(ctx.shard, *scopes,
                           [c = ctx.shared_from_this(), scopes](const limits::decision& d, bool via_redis) {
                             bool now = c->probe.now();
                             if (!d.admitted) {
                               std::string h = retry_after(d);
                               append_ratelimit_headers(h, d);
                               c->fail(error{errc::rate_limited,
                                             limits::refusal_message(*scopes, d, c->svc.limiter->window()), ""},
                                       h);
                               if (now) c->probe.result = flow::answered;
                               return;
                             }
                             c->client_limits = limit_ticket{scopes, via_redis};
                             c->client_decision = d;
                             if (now)
                               c->probe.result = flow::next;
                             else
                               c->resume();
                           });
  ctx.probe.inside = false;
  return ctx.probe.done ? ctx.probe.result : flow::pending;
}

flow limits_stage::on_reroute(request_context& ctx) const {
  const auto* extra = ctx.entry ? ctx.entry->model_scope_for(ctx.group->name) : nullptr;
  if (!extra || !ctx.svc.limiter) return flow::next;
  ctx.probe = {true, false, flow::pending};
  ctx.svc.limiter->acquire(ctx.shard, *extra, [c = ctx.shared_from_this(), extra](const limits::decision& d, bool via_redis) {
    bool now = c->probe.now();
    if (!d.admitted) {
      error e{errc::rate_limited, limits::refusal_message(*extra, d, c->svc.limiter->window()), ""};
      if (now) {
        c->reroute_refusal = std::move(e);
        c->reroute_headers = retry_after(d);
        c->probe.result = flow::answered;
      } else {
        c->refuse_reroute(std::move(e), retry_after(d));
      }
      return;
    }
    c->fallback_limits.push_back(limit_ticket{extra, via_redis});
    if (now)
      c->probe.result = flow::next;
    else
      c->resume_reroute();
  });
  ctx.probe.inside = false;
  return ctx.probe.done ? ctx.probe.result : flow::pending;
}

void limits_stage::on_settle(request_context& ctx) const {
  if (!ctx.svc.limiter) return;
  limits::token_usage u;
  const auto& usage = ctx.out.usage;
  if (usage.known()) {
    if (ctx.svc.token_rate_limit_type != 2) u.input = std::max<std::int64_t>(0, usage.prompt_tokens);
    if (ctx.svc.token_rate_limit_type != 1) u.output = std::max<std::int64_t>(0, usage.completion_tokens);
  }
  if (ctx.client_limits.scopes)
    ctx.svc.limiter->release(ctx.shard, *ctx.client_limits.scopes, u, ctx.client_limits.via_redis);
  ctx.client_limits = {};
  for (auto& t : ctx.fallback_limits) ctx.svc.limiter->release(ctx.shard, *t.scopes, u, t.via_redis);
  ctx.fallback_limits.clear();
}

}  // namespace gw::pipeline
