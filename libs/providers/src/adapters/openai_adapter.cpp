// OpenAI-compatible providers (OpenAI, vLLM, Ollama, Groq, ... any api_base) and Azure
// OpenAI: the client's body goes upstream byte for byte except the model name, gathered
// from the client's buffer around it (no copy); a stream whose client set no
// stream_options also asks for usage, so that spend is known, and the usage-only chunk
// is dropped again on the way back.

#include <cstring>

#include "adapters.hpp"
#include "gw/core/json_writer.hpp"

namespace gw::providers::detail {
namespace {

constexpr std::string_view k_usage_option = R"("stream_options":{"include_usage":true},)";

class openai_adapter;

class openai_exchange final : public exchange {
 public:
  openai_exchange(const openai_adapter& a, const call_input& in, const std::string& upstream_model);
  std::optional<provider_error> next_request(upstream_request& out) override;
  std::string authorize(const credentials_view& c, std::chrono::system_clock::time_point) override {
    if (c.bearer.empty()) return {};
    std::string h = "authorization: Bearer ";
    h += c.bearer;
    h += "\r\n";
    return h;
  }
  bool on_answer(int&, std::string& body, std::string_view, usage& u, answer_info* info, bool* info_read) override {
    if (body.empty()) return true;
    // One pass for the usage and, when a trace wants them, the id, model and finish reasons.
    read_answer(body, body.capacity(), u, info);
    if (info_read) *info_read = info != nullptr;
    return true;
  }
  bool drop_event(std::string_view event, std::int64_t index) const noexcept override;
  bool injected_usage() const noexcept override { return inject_usage_; }
  const std::string& upstream_model() const noexcept override { return upstream_model_; }

 private:
  const openai_adapter& a_;
  call_input in_;
  std::string upstream_model_;
  std::string model_json_;  ///< the quoted model when it is not the deployment's precomputed one
  std::string head_;        ///< azure/*: the head prefix with the model in the path
  bool inject_usage_ = false;
};

class openai_adapter : public provider_adapter {
 public:
  openai_adapter(const config::deployment& d, const deployment_target& t, const endpoint_info& ep)
      : d_(d), t_(t), ep_(ep) {
    wildcard_ = d.upstream_model.find('*') != std::string::npos;
    if (!wildcard_) upstream_model_json_ = json_quote(d.upstream_model);
    if (t.format != wire_format::azure || !t.azure_per_model)
      for (auto op : {operation::chat, operation::completion, operation::embedding})
        head_[static_cast<int>(op)] = build_head_prefix(ep, t, path(op, d.upstream_model));
    std::string_view m = d.model;
    auto slash = m.find('/');
    system_ = slash == std::string_view::npos ? std::string("openai") : std::string(m.substr(0, slash));
  }

  wire_format format() const noexcept override { return t_.format; }
  std::string_view system_name() const noexcept override { return system_; }
  std::unique_ptr<exchange> begin(const call_input& in, const std::string& upstream_model) const override {
    return std::make_unique<openai_exchange>(*this, in, upstream_model);
  }

  std::string path(operation op, std::string_view model) const {
    return t_.format == wire_format::azure ? azure_path(t_, op, model) : std::string(operation_path(op));
  }

  const config::deployment& d_;
  const deployment_target& t_;
  endpoint_info ep_;
  bool wildcard_ = false;
  std::string upstream_model_json_;
  std::string head_[3];
  std::string system_;
};

class azure_adapter final : public openai_adapter {
 public:
  using openai_adapter::openai_adapter;
  std::string_view system_name() const noexcept override { return "azure.ai.openai"; }
  credential_kind credentials() const noexcept override {
    return t_.entra ? credential_kind::bearer : credential_kind::none;
  }
};

openai_exchange::openai_exchange(const openai_adapter& a, const call_input& in, const std::string& upstream_model)
    : a_(a), in_(in), upstream_model_(upstream_model) {}

std::optional<provider_error> openai_exchange::next_request(upstream_request& out) {
  const auto& req = *in_.req;
  std::string_view body = in_.body;
  bool same_model = upstream_model_ == req.model;
  std::string_view model_json;
  if (!same_model) {
    if (a_.wildcard_) {
      model_json_ = json_quote(upstream_model_);
      model_json = model_json_;
    } else {
      model_json = a_.upstream_model_json_;
    }
  }
  std::size_t prefix = same_model ? body.size() : req.model_token_begin;
  std::size_t suffix = same_model ? body.size() : req.model_token_end;
  // Spend needs the usage a provider sends in streams only when asked: ask, unless the
  // client set stream_options itself (then it is the client's choice, passed on as is).
  std::size_t split = 0;
  inject_usage_ = req.stream && !req.has_stream_options;
  if (inject_usage_) {
    const void* brace = std::memchr(body.data(), '{', prefix);
    if (brace)
      split = static_cast<std::size_t>(static_cast<const char*>(brace) - body.data()) + 1;
    else
      inject_usage_ = false;
  }
  out.body = {body.substr(0, split), inject_usage_ ? k_usage_option : std::string_view{},
              body.substr(split, prefix - split), model_json, body.substr(suffix)};
  int op = static_cast<int>(in_.op);
  if (!a_.head_[op].empty()) {
    out.head_prefix = a_.head_[op];
  } else {
    // azure/*: the deployment in the path is the requested model.
    head_ = build_head_prefix(a_.ep_, a_.t_, a_.path(in_.op, upstream_model_));
    out.head_prefix = head_;
  }
  out.event_stream = false;
  return std::nullopt;
}

bool openai_exchange::drop_event(std::string_view event, std::int64_t index) const noexcept {
  // Azure's first chunk has no choices, only prompt_filter_results: clients that read
  // choices[0] break on it, so it is not passed on.
  return a_.t_.format == wire_format::azure && index <= 2 &&
         event.find("prompt_filter_results") != std::string_view::npos;
}

}  // namespace

std::unique_ptr<provider_adapter> make_openai_adapter(const config::deployment& d, const deployment_target& t,
                                                      const endpoint_info& ep) {
  return std::make_unique<openai_adapter>(d, t, ep);
}

std::unique_ptr<provider_adapter> make_azure_adapter(const config::deployment& d, const deployment_target& t,
                                                     const endpoint_info& ep) {
  return std::make_unique<azure_adapter>(d, t, ep);
}

}  // namespace gw::providers::detail
