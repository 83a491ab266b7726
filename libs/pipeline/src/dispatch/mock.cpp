// The testing controls (LiteLLM's), so that users can try their fallbacks and retries
// without a real outage. A mocked attempt never reaches the provider and never counts
// towards the deployment's health:
//   mock_response "text"                a normal answer with that content, usage 10/20/30,
//                                       costed at the deployment's price (as in LiteLLM);
//                                       "litellm.RateLimitError" and the like fail the
//                                       attempt that way instead (every attempt)
//   mock_testing_fallbacks              the first attempt fails with a 500 and goes
//                                       straight to the fallbacks (no retries)
//   mock_testing_context_fallbacks      ... as a context-window error
//   mock_testing_content_policy_fallbacks ... as a content-policy refusal
//   mock_testing_rate_limit_error       the first attempt fails with a 429 (retries follow)
//   mock_timeout                        every attempt in the requested group waits its
//                                       timeout, then fails with a 408

#include "dispatch_call.hpp"

#include "gw/core/json_writer.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

constexpr std::int64_t k_prompt_tokens = 10, k_completion_tokens = 20;

std::string fallbacks_text(const request_context& ctx, const config::router_settings& r) {
  // What LiteLLM's message shows: the fallbacks known for the requested group, or None.
  const auto& c = ctx.view.controls;
  if (c && c->fallbacks) {
    std::string s = "[";
    for (const auto& [from, targets] : *c->fallbacks)
      for (const auto& t : targets) s += (s.size() > 1 ? ", '" : "'") + t.model + "'";
    return s + "]";
  }
  for (const auto& [from, to] : r.fallbacks)
    if (from == ctx.requested_group->name) {
      std::string s = "[";
      for (const auto& m : to) s += (s.size() > 1 ? ", '" : "'") + m + "'";
      return s + "]";
    }
  return "None";
}

}  // namespace

bool dispatch_call::mocked_attempt() {
  const auto& c = ctx_.view.controls;
  if (!c || !c->any_mock()) return false;
  auto& a = *a_;
  const auto& g = ctx_.group->name;
  bool primary = ctx_.group == ctx_.requested_group;
  auto fail_as = [&](int status, std::string type, std::string code, std::string message, providers::failure_kind k) {
    a.mocked = true;
    a.status = status;
    a.content_type = "application/json";
    a.body = openai_error_json(message, type, "", code);
    a.t_done = t_upstream_done_ = clock::now();
    error_.reset();
    attempt_failed(k, 0);
    return true;
  };
  if (mock_fallbacks_pending_ && primary) {
    if (c->mock_testing_context_fallbacks)
      return fail_as(400, "invalid_request_error", "context_length_exceeded",
                     "litellm.ContextWindowExceededError: This is a mock exception for model=" + g +
                         ", to trigger a fallback. Context_Window_Fallbacks=" + fallbacks_text(ctx_, svc_.cfg->router),
                     providers::failure_kind::context_window);
    if (c->mock_testing_content_policy_fallbacks)
      return fail_as(400, "invalid_request_error", "content_policy_violation",
                     "litellm.ContentPolicyViolationError: This is a mock exception for model=" + g +
                         ", to trigger a fallback. Context_Policy_Fallbacks=" + fallbacks_text(ctx_, svc_.cfg->router),
                     providers::failure_kind::content_policy);
    return fail_as(500, "api_error", "500",
                   "litellm.InternalServerError: This is a mock exception for model=" + g +
                       ", to trigger a fallback. Fallbacks=" + fallbacks_text(ctx_, svc_.cfg->router),
                   providers::failure_kind::status);
  }
  mock_fallbacks_pending_ = false;
  if (mock_rate_limit_pending_) {
    mock_rate_limit_pending_ = false;
    return fail_as(429, "rate_limit_error", "429",
                   "litellm.RateLimitError: This is a mock exception for model=" + g +
                       ", to trigger a rate limit error.",
                   providers::failure_kind::status);
  }
  if (c->mock_timeout && primary) {
    a.mocked = true;
    auto wait = ctx_.view.stream ? stream_timeout() : timeout();
    if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(ctx_.thread.io());
    timer_->expires_after(wait);
    timer_->async_wait([cx = ctx_.shared_from_this(), id = a.id](http::error_code ec) {
      auto& self = *cx->dispatch;
      if (ec || cx->finished() || !self.a_ || self.a_->id != id) return;
      self.a_->t_done = self.t_upstream_done_ = clock::now();
      self.error_ = error{errc::upstream_timeout, "litellm.Timeout: This is a mock timeout error (mock_timeout).", ""};
      self.attempt_failed(providers::failure_kind::transport, 0);
    });
    return true;
  }
  if (!c->mock_response) return false;
  const auto& m = *c->mock_response;
  if (m == "litellm.RateLimitError")
    return fail_as(429, "throttling_error", "429", "litellm.RateLimitError: this is a mock rate limit error",
                   providers::failure_kind::status);
  if (m == "litellm.InternalServerError")
    return fail_as(500, "api_error", "500", "litellm.InternalServerError: this is a mock internal server error",
                   providers::failure_kind::status);
  if (m == "litellm.ContextWindowExceededError")
    return fail_as(400, "invalid_request_error", "context_length_exceeded",
                   "litellm.ContextWindowExceededError: this is a mock context window exceeded error",
                   providers::failure_kind::context_window);
  if (m.rfind("Exception: content_filter_policy", 0) == 0)
    return fail_as(400, "invalid_request_error", "content_filter", "litellm.ContentPolicyViolationError: " + m,
                   providers::failure_kind::content_policy);
  if (ctx_.op == providers::operation::embedding)
    return fail_as(400, "invalid_request_error", "invalid_value",
                   "mock_response answers chat and text completions, not embeddings.", providers::failure_kind::status);
  a.mocked = true;
  mock_answer(m);
  return true;
}

void dispatch_call::mock_answer(const std::string& content) {
  auto& a = *a_;
  auto& out = ctx_.out;
  out.mocked = true;
  out.usage.prompt_tokens = k_prompt_tokens;
  out.usage.completion_tokens = k_completion_tokens;
  out.usage.total_tokens = k_prompt_tokens + k_completion_tokens;
  bool chat = ctx_.op == providers::operation::chat;
  std::string id = (chat ? "chatcmpl-" : "cmpl-") + ctx_.call_id;
  std::string created = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(ctx_.wall_start.time_since_epoch()).count());
  std::string model = json_quote(out.upstream_model);
  std::string usage = R"({"prompt_tokens":10,"completion_tokens":20,"total_tokens":30})";
  a.status = 200;
  a.t_done = t_upstream_done_ = clock::now();
  build_client_headers();
  if (!ctx_.view.stream) {
    std::string b = R"({"id":)" + json_quote(id) + (chat ? R"(,"object":"chat.completion")" : R"(,"object":"text_completion")") +
                    R"(,"created":)" + created + R"(,"model":)" + model + R"(,"choices":[)";
    for (std::int64_t i = 0; i < std::max<std::int64_t>(1, ctx_.view.n); ++i) {
      if (i) b += ',';
      b += R"({"index":)" + std::to_string(i);
      if (chat)
        b += R"(,"message":{"role":"assistant","content":)" + json_quote(content) + "}";
      else
        b += R"(,"text":)" + json_quote(content) + R"(,"logprobs":null)";
      b += R"(,"finish_reason":"stop"})";
    }
    b += R"(],"usage":)" + usage + "}";
    a.content_type = "application/json";
    a.body = std::move(b);
    response r;
    r.status = 200;
    r.headers = timing_headers();
    if (a.dep->price) r.headers += "x-litellm-response-cost: " + format_cost(response_cost(ctx_)) + "\r\n";
    capture(a.body);
    r.body = std::move(a.body);
    upstream_ok_ = true;
    return ctx_.respond(std::move(r));
  }
  // A stream: a role chunk, the content in small pieces, the finish, the usage chunk when
  // the client asked for it, [DONE]; relayed like a provider's stream.
  std::string head = R"(data: {"id":)" + json_quote(id) +
                     (chat ? R"(,"object":"chat.completion.chunk")" : R"(,"object":"text_completion")") +
                     R"(,"created":)" + created + R"(,"model":)" + model + R"(,"choices":[{"index":0,)";
  std::string events;
  if (chat) events += head + R"("delta":{"role":"assistant","content":""},"finish_reason":null}]})" "\n\n";
  for (std::size_t i = 0; i < content.size();) {
    std::size_t n = std::min<std::size_t>(3, content.size() - i);
    // Whole UTF-8 characters only.
    while (i + n < content.size() && (static_cast<unsigned char>(content[i + n]) & 0xC0) == 0x80) ++n;
    std::string piece = json_quote(std::string_view(content).substr(i, n));
    events += head + (chat ? R"("delta":{"content":)" + piece + "}" : R"("text":)" + piece) +
              R"(,"finish_reason":null}]})" "\n\n";
    i += n;
  }
  events += head + (chat ? R"("delta":{})" : R"("text":"")") + R"(,"finish_reason":"stop"}]})" "\n\n";
  if (ctx_.view.include_usage)
    events += R"(data: {"id":)" + json_quote(id) + R"(,"object":"chat.completion.chunk","created":)" + created +
              R"(,"model":)" + model + R"(,"choices":[],"usage":)" + usage + "}\n\n";
  events += "data: [DONE]\n\n";
  a.content_type = "text/event-stream";
  a.relay = std::move(events);
  a.relay_len = a.relay.size();
  a.head_pending = true;
  out.first_byte = clock::now();
  on_stream_read({}, 0, true);
}

}  // namespace gw::pipeline
