// What every adapter shares: the head prefix, the generic error classification, and
// the choice of an adapter for a deployment.

#include "adapters.hpp"
#include "gw/providers/completion_bridge.hpp"
#include "gw/core/strings.hpp"

namespace gw::providers {
namespace {

bool contains_ci(std::string_view hay, std::string_view needle) noexcept {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

}  // namespace

std::string build_head_prefix(const endpoint_info& ep, const deployment_target& t, std::string_view path,
                              const std::vector<std::pair<std::string, std::string>>* extra) {
  std::string h;
  h.reserve(160 + path.size());
  h += "POST ";
  h += ep.base_path;
  h += path;
  h += " HTTP/1.1\r\nhost: ";
  h += ep.authority;
  h += "\r\ncontent-type: application/json\r\nuser-agent: llm-gateway/";
  h += GW_VERSION;
  h += "\r\n";
  auto add = [&](const std::vector<std::pair<std::string, std::string>>& hs) {
    for (auto& [k, v] : hs) {
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
  };
  add(t.headers);
  if (extra) add(*extra);
  return h;
}

failure_kind classify_openai_error(int status, std::string_view b) noexcept {
  if (status == 400 || status == 413 || status == 422) {
    if (contains_ci(b, "context_length_exceeded") || contains_ci(b, "maximum context length") ||
        contains_ci(b, "context window") || contains_ci(b, "prompt is too long") || contains_ci(b, "too many tokens"))
      return failure_kind::context_window;
    if (contains_ci(b, "content_policy_violation") || contains_ci(b, "content_filter") ||
        contains_ci(b, "ResponsibleAIPolicyViolation") || contains_ci(b, "content management policy"))
      return failure_kind::content_policy;
  }
  return failure_kind::status;
}

failure_kind provider_adapter::classify(int status, std::string_view body) const {
  return classify_openai_error(status, body);
}

std::unique_ptr<provider_adapter> make_adapter(const config::deployment& d, const deployment_target& t,
                                               const endpoint_info& ep) {
  switch (t.format) {
    case wire_format::openai:
      return detail::make_openai_adapter(d, t, ep);
    case wire_format::azure:
      return detail::make_azure_adapter(d, t, ep);
    case wire_format::bedrock:
      return detail::make_bedrock_adapter(d, t, ep);
    case wire_format::anthropic:
      return detail::make_anthropic_adapter(d, t, ep);
    case wire_format::unsupported:
      break;
  }
  return nullptr;
}

namespace detail {

translate_context translation_context(const call_input& in, const std::string& upstream_model) {
  translate_context c;
  bool completion = in.op == operation::completion;
  // Text completions go through chat (completion_bridge.hpp): the chat adapters see a chat call.
  c.op = completion ? operation::chat : in.op;
  c.upstream_model = upstream_model;
  // As for OpenAI-compatible providers, "model" names the model that answered.
  c.response_model = upstream_model;
  std::string id = in.op == operation::chat ? "chatcmpl-" : completion ? "cmpl-" : "emb-";
  id += in.call_id;
  c.response_id = std::move(id);
  c.created = in.created;
  c.stream = in.req->stream;
  c.include_usage = in.req->include_usage;
  c.default_max_tokens = in.default_max_tokens;
  return c;
}

provider_error unsupported_operation(std::string_view provider, operation op, std::string_view model_group) {
  provider_error e;
  e.status = 400;
  e.type = "invalid_request_error";
  e.code = "unsupported_operation";
  e.message = std::string(provider) + " deployments do not serve " + std::string(operation_path(op)) +
              " (model group '" + std::string(model_group) + "')";
  return e;
}

request_result translating_exchange::chat_request(std::string_view provider, to_provider to) const {
  if (in_.op == operation::chat) return to(ctx_, in_.body);
  request_result rr;
  if (in_.op != operation::completion) {
    rr.error = unsupported_operation(provider, in_.op, in_.model_group);
    return rr;
  }
  auto chat = completion_to_chat(in_.body, provider);
  if (chat.body) return to(ctx_, *chat.body);
  rr.error = std::move(chat.error);
  return rr;
}

void translating_exchange::answer(translated_response tr, int& status, std::string& body, usage& u) const {
  if (in_.op == operation::completion) tr = completion_from_chat(std::move(tr));
  status = tr.status;
  body = std::move(tr.body);
  if (tr.tokens.known()) u = tr.tokens;
}

std::unique_ptr<stream_translator> translating_exchange::for_operation(std::unique_ptr<stream_translator> chat) const {
  if (in_.op == operation::completion) return completion_stream_translator(std::move(chat));
  return chat;
}

}  // namespace detail
}  // namespace gw::providers
