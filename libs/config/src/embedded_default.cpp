#include "gw/config/config.hpp"

namespace gw::config {

std::string_view embedded_default_yaml() {
  return R"(# The embedded default: what llm-gateway serves when started without --config.
# Both model groups are answered by the built-in mock provider, which the gateway
# starts on a loopback port and names in GW_EMBEDDED_MOCK_BASE.
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: os.environ/GW_EMBEDDED_MOCK_BASE
    model_info:
      # Priced like gpt-4o-mini, so spend and budgets can be tried on the default.
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
  - model_name: mock-embed
    litellm_params:
      model: openai/mock-embed
      api_base: os.environ/GW_EMBEDDED_MOCK_BASE
    model_info:
      mode: embedding
      input_cost_per_token: 0.00000002
      output_cost_per_token: 0
)";
}

}  // namespace gw::config
