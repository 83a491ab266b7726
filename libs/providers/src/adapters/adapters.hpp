#pragma once
// The adapters of each wire format (private to the library; make_adapter picks one).

#include "gw/providers/provider_adapter.hpp"

namespace gw::providers::detail {

std::unique_ptr<provider_adapter> make_openai_adapter(const config::deployment& d, const deployment_target& t,
                                                      const endpoint_info& ep);
std::unique_ptr<provider_adapter> make_azure_adapter(const config::deployment& d, const deployment_target& t,
                                                     const endpoint_info& ep);
std::unique_ptr<provider_adapter> make_bedrock_adapter(const config::deployment& d, const deployment_target& t,
                                                       const endpoint_info& ep);
std::unique_ptr<provider_adapter> make_anthropic_adapter(const config::deployment& d, const deployment_target& t,
                                                         const endpoint_info& ep);

/// Translated providers (Bedrock, Anthropic): the translate context of one attempt.
translate_context translation_context(const call_input& in, const std::string& upstream_model);

/// A 400 for an operation a provider does not serve.
provider_error unsupported_operation(std::string_view provider, operation op, std::string_view model_group);

/// What the translating providers' exchanges share: chat requests (text completions
/// through chat), answers and streams translated back (completions from chat again).
class translating_exchange : public exchange {
 public:
  translating_exchange(const call_input& in, std::string upstream)
      : in_(in), upstream_(std::move(upstream)), ctx_(translation_context(in_, upstream_)) {}
  const std::string& upstream_model() const noexcept override { return upstream_; }

 protected:
  using to_provider = request_result (*)(const translate_context&, std::string_view);
  /// A chat request, or a text completion as one, put in the provider's terms by `to`.
  request_result chat_request(std::string_view provider, to_provider to) const;
  /// The provider's answer, translated: the status, body and usage the client gets.
  void answer(translated_response tr, int& status, std::string& body, usage& u) const;
  /// A completion's stream is a chat stream turned back into completion chunks.
  std::unique_ptr<stream_translator> for_operation(std::unique_ptr<stream_translator> chat) const;

  call_input in_;
  std::string upstream_;
  translate_context ctx_;
};

}  // namespace gw::providers::detail
