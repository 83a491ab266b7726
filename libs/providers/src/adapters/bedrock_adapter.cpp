// AWS Bedrock: chat through Converse / ConverseStream (text completions through chat),
// embeddings through InvokeModel (Titan: one call per input), signed with SigV4 or a
// Bedrock API key.

#include "adapters.hpp"
#include "gw/providers/bedrock.hpp"
#include "gw/providers/sigv4.hpp"

namespace gw::providers::detail {
namespace {

class bedrock_adapter final : public provider_adapter {
 public:
  bedrock_adapter(const config::deployment& d, const deployment_target& t, const endpoint_info& ep)
      : d_(d), t_(t), ep_(ep) {
    wildcard_ = d.upstream_model.find('*') != std::string::npos;
    if (!t.aws.bearer_token.empty()) static_auth_ = "authorization: Bearer " + t.aws.bearer_token + "\r\n";
  }
  wire_format format() const noexcept override { return wire_format::bedrock; }
  std::string_view system_name() const noexcept override { return "aws.bedrock"; }
  credential_kind credentials() const noexcept override {
    return static_auth_.empty() ? credential_kind::aws : credential_kind::none;
  }
  std::unique_ptr<exchange> begin(const call_input& in, const std::string& upstream_model) const override;

  const config::deployment& d_;
  const deployment_target& t_;
  endpoint_info ep_;
  bool wildcard_ = false;
  std::string static_auth_;  ///< a Bedrock API key
};

class bedrock_exchange final : public translating_exchange {
 public:
  bedrock_exchange(const bedrock_adapter& a, const call_input& in, const std::string& upstream_model)
      : translating_exchange(in, a.wildcard_ ? upstream_model : a.t_.bedrock_model), a_(a) {}

  std::vector<std::string> image_urls() const override {
    return in_.op == operation::chat ? providers::image_urls(in_.body) : std::vector<std::string>{};
  }
  void set_images(std::vector<std::pair<std::string, std::string>> images) override { images_ = std::move(images); }

  std::optional<provider_error> next_request(upstream_request& out) override {
    request_result rr;
    ctx_.fetched_images = images_.empty() ? nullptr : &images_;
    if (titan_) {
      rr = to_titan_embedding(ctx_, *titan_, answers_.size());
    } else if (in_.op != operation::embedding) {
      rr = chat_request("Bedrock", &to_converse);
    } else if (is_titan_embedding(ctx_.upstream_model)) {
      // Titan embeds one text per call: N inputs are N calls on this attempt.
      titan_.emplace();
      if (auto e = read_titan_inputs(in_.body, *titan_))
        rr.error = std::move(e);
      else
        rr = to_titan_embedding(ctx_, *titan_, 0);
    } else {
      rr = to_bedrock_embedding(ctx_, in_.body);
    }
    if (!rr.request) return rr.error ? std::move(rr.error) : provider_error{};
    body_ = std::move(rr.request->body);
    path_ = std::move(rr.request->path);
    head_ = build_head_prefix(a_.ep_, a_.t_, path_, &rr.request->headers);
    wire_path_ = a_.ep_.base_path + path_;
    out = upstream_request{};
    out.head_prefix = head_;
    out.signing_path = wire_path_;
    out.body[0] = body_;
    out.event_stream = in_.req->stream;
    return std::nullopt;
  }

  std::string authorize(const credentials_view& c, std::chrono::system_clock::time_point now) override {
    if (!a_.static_auth_.empty()) return a_.static_auth_;
    if (!c.aws) return {};
    // SigV4 over the bytes that will be sent: host, content-type and the body.
    sigv4_input in;
    in.method = "POST";
    std::string_view wire(wire_path_);
    auto q = wire.find('?');
    in.path = wire.substr(0, q);
    in.query = q == std::string_view::npos ? std::string_view{} : wire.substr(q + 1);
    in.headers = {{"host", a_.ep_.authority}, {"content-type", "application/json"}};
    in.body = body_;
    std::string auth;
    for (auto& [k, v] : sigv4_sign(in, *c.aws, a_.t_.aws_region, "bedrock", now)) {
      auth += k;
      auth += ": ";
      auth += v;
      auth += "\r\n";
    }
    return auth;
  }

  bool on_answer(int& status, std::string& body, std::string_view error_type, usage& u, answer_info*,
                 bool*) override {
    if (titan_ && status / 100 == 2) {
      // A failing Titan call fails the attempt with its error; a retry starts again
      // from input 0 (a new exchange).
      if (auto e = answers_.add(body)) {
        status = e->status;
        body = e->json();
        return true;
      }
      if (answers_.size() < titan_->texts.size()) return false;
      auto tr = answers_.finish(ctx_);
      status = tr.status;
      body = std::move(tr.body);
      u = tr.tokens;
      return true;
    }
    answer(in_.op == operation::embedding ? from_bedrock_embedding(ctx_, status, body, error_type)
                                          : from_converse(ctx_, status, body, error_type),
           status, body, u);
    return true;
  }

  std::unique_ptr<providers::stream_translator> make_stream_translator() override {
    return for_operation(converse_stream_translator(ctx_));
  }

 private:
  const bedrock_adapter& a_;
  std::vector<std::pair<std::string, std::string>> images_;
  std::optional<titan_inputs> titan_;
  titan_embeddings answers_;
  std::string body_, path_, head_, wire_path_;
};

std::unique_ptr<exchange> bedrock_adapter::begin(const call_input& in, const std::string& upstream_model) const {
  return std::make_unique<bedrock_exchange>(*this, in, upstream_model);
}

}  // namespace

std::unique_ptr<provider_adapter> make_bedrock_adapter(const config::deployment& d, const deployment_target& t,
                                                       const endpoint_info& ep) {
  return std::make_unique<bedrock_adapter>(d, t, ep);
}

}  // namespace gw::providers::detail
