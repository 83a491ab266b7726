// Anthropic's Messages API: chat (and text completions through chat) translated both
// ways, streams included; no embeddings.

#include "adapters.hpp"
#include "gw/providers/anthropic.hpp"

namespace gw::providers::detail {
namespace {

class anthropic_adapter final : public provider_adapter {
 public:
  anthropic_adapter(const config::deployment& d, const deployment_target& t, const endpoint_info& ep)
      : d_(d), t_(t), ep_(ep) {}
  wire_format format() const noexcept override { return wire_format::anthropic; }
  std::string_view system_name() const noexcept override { return "anthropic"; }
  std::unique_ptr<exchange> begin(const call_input& in, const std::string& upstream_model) const override;

  const config::deployment& d_;
  const deployment_target& t_;
  endpoint_info ep_;
};

class anthropic_exchange final : public translating_exchange {
 public:
  anthropic_exchange(const anthropic_adapter& a, const call_input& in, const std::string& upstream_model)
      : translating_exchange(in, upstream_model), a_(a) {}

  std::optional<provider_error> next_request(upstream_request& out) override {
    auto rr = chat_request("Anthropic", &to_anthropic);
    if (!rr.request) return rr.error ? std::move(rr.error) : provider_error{};
    body_ = std::move(rr.request->body);
    head_ = build_head_prefix(a_.ep_, a_.t_, rr.request->path, &rr.request->headers);
    out = upstream_request{};
    out.head_prefix = head_;
    out.body[0] = body_;
    return std::nullopt;
  }
  std::string authorize(const credentials_view&, std::chrono::system_clock::time_point) override { return {}; }
  bool on_answer(int& status, std::string& body, std::string_view, usage& u, answer_info*, bool*) override {
    answer(from_anthropic(ctx_, status, body), status, body, u);
    return true;
  }
  std::unique_ptr<providers::stream_translator> make_stream_translator() override {
    return for_operation(anthropic_stream_translator(ctx_));
  }

 private:
  const anthropic_adapter& a_;
  std::string body_, head_;
};

std::unique_ptr<exchange> anthropic_adapter::begin(const call_input& in, const std::string& upstream_model) const {
  return std::make_unique<anthropic_exchange>(*this, in, upstream_model);
}

}  // namespace

std::unique_ptr<provider_adapter> make_anthropic_adapter(const config::deployment& d, const deployment_target& t,
                                                         const endpoint_info& ep) {
  return std::make_unique<anthropic_adapter>(d, t, ep);
}

}  // namespace gw::providers::detail
