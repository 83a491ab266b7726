// The ingress stage: the client's dialect in. An Anthropic /v1/messages request becomes
// an OpenAI chat request, an Azure-style path names the model; then the one OpenAI view
// every later stage reads is made (validated in one pass), and the gateway's own fields
// (timeout, num_retries, fallbacks, the testing controls) and x-litellm-* headers are
// read and stripped, so the provider never sees them. The client's body as it came is
// kept (ctx.original_body) whenever it is rewritten.

#include <charconv>

#include "gw/core/strings.hpp"
#include "gw/http/padded_body.hpp"
#include "gw/pipeline/stages.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::pipeline {
namespace {

/// Room for simdjson's padding past the end (the body is parsed in place).
void pad(std::string& s) { s.reserve(s.size() + http::json_padding); }

std::string_view header(const http::request& req, std::string_view name) {
  auto it = req.find(boost::beast::string_view(name.data(), name.size()));
  return it == req.end() ? std::string_view{} : std::string_view(it->value().data(), it->value().size());
}

/// x-litellm-timeout / x-litellm-stream-timeout: seconds (> 0, at most a day).
std::optional<error> seconds_header(const http::request& req, std::string_view name, double& out) {
  auto v = trim(header(req, name));
  if (v.empty()) return std::nullopt;
  auto d = parse_double(v);
  if (!d || !(*d > 0) || *d > 86400)
    return error{errc::invalid_request,
                 "Invalid header '" + std::string(name) + "': expected a number of seconds > 0, got '" +
                     std::string(v) + "'.",
                 std::string(name)};
  out = *d;
  return std::nullopt;
}

}  // namespace

flow ingress_stage::on_request(request_context& ctx) const {
  auto& req = ctx.req();
  auto& body = req.body();
  if (ctx.client_dialect == dialect::anthropic) {
    // An Anthropic SDK client: the request becomes an OpenAI chat request; the answer
    // goes back in Anthropic's shape (dialect_egress_stage).
    std::string converted;
    auto info = std::make_shared<providers::anthropic_request_info>();
    if (auto pe = providers::anthropic_request_to_openai(body, converted, *info)) {
      ctx.out.error_type = pe->code.empty() ? pe->type : pe->code;
      ctx.out.error_message = pe->message;
      response r;
      r.status = pe->status;
      r.body = pe->json();
      r.error = true;
      r.headers = "x-litellm-call-id: " + ctx.call_id + "\r\n";
      ctx.respond(std::move(r));
      return flow::answered;
    }
    pad(converted);
    ctx.original_body = std::move(body);
    body = std::move(converted);
    ctx.anthropic = std::move(info);
  } else if (!ctx.path_model.empty()) {
    // Azure-style route: the model is the deployment named in the path.
    std::string b = providers::with_model(body, ctx.path_model);
    pad(b);
    ctx.original_body = std::move(body);
    body = std::move(b);
  }
  auto& ir = ctx.view;
  if (auto e = providers::inspect_request(ctx.op, body, ir)) {
    ctx.fail(*e);
    return flow::answered;
  }
  ctx.requested_model = ir.model;
  if (ir.has_gateway_fields) {
    // timeout, num_retries, fallbacks, mock_* are for the gateway, not the provider.
    auto kept = ir;
    std::string stripped = providers::strip_gateway_fields(body);
    pad(stripped);
    if (ctx.original_body.empty()) ctx.original_body = std::move(body);
    body = std::move(stripped);
    if (auto e = providers::inspect_request(ctx.op, body, ir)) {
      ctx.fail(*e);
      return flow::answered;
    }
    ir.timeout_s = kept.timeout_s;
    ir.stream_timeout_s = kept.stream_timeout_s;
    ir.num_retries = kept.num_retries;
    ir.controls = std::move(kept.controls);
  }
  if (ctx.trace && ctx.trace_bodies && ctx.svc.tracing->settings().facts) {
    // The span's request parameters, end user and metadata, read here: no copy of the body.
    auto& facts = ctx.trace->request_facts.emplace();
    tracing::read_request_facts(body.data(), body.size(), body.capacity(), facts, ctx.trace->end_user,
                                ctx.trace->metadata);
  }
  auto& c = ctx.controls;
  c.timeout_s = ir.timeout_s;
  c.stream_timeout_s = ir.stream_timeout_s;
  c.num_retries = ir.num_retries;
  // The headers win over the body (as in LiteLLM: they are what the Vercel AI SDK sends).
  if (auto e = seconds_header(req, "x-litellm-timeout", c.timeout_s)) {
    ctx.fail(*e);
    return flow::answered;
  }
  if (auto e = seconds_header(req, "x-litellm-stream-timeout", c.stream_timeout_s)) {
    ctx.fail(*e);
    return flow::answered;
  }
  if (auto v = trim(header(req, "x-litellm-num-retries")); !v.empty()) {
    int n = -1;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || p != v.data() + v.size() || n < 0 || n > 10) {
      ctx.fail(error{errc::invalid_request,
                     "Invalid header 'x-litellm-num-retries': expected an integer from 0 to 10, got '" +
                         std::string(v) + "'.",
                     "x-litellm-num-retries"});
      return flow::answered;
    }
    c.num_retries = n;
  }
  c.timeout_given = c.timeout_s > 0;
  if (ir.controls && ir.controls->any_mock() && !ctx.svc.allow_mock_params) {
    const auto& m = *ir.controls;
    std::string_view field = m.mock_response                           ? "mock_response"
                             : m.mock_testing_fallbacks                ? "mock_testing_fallbacks"
                             : m.mock_testing_context_fallbacks        ? "mock_testing_context_fallbacks"
                             : m.mock_testing_content_policy_fallbacks ? "mock_testing_content_policy_fallbacks"
                             : m.mock_testing_rate_limit_error         ? "mock_testing_rate_limit_error"
                                                                       : "mock_timeout";
    ctx.fail(error{errc::invalid_request,
                   "'" + std::string(field) +
                       "' is a testing control this gateway does not accept from clients "
                       "(gateway_settings.allow_client_mock_params: false).",
                   std::string(field)});
    return flow::answered;
  }
  return flow::next;
}

}  // namespace gw::pipeline
