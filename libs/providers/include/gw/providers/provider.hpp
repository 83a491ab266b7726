#pragma once
/// Which providers the gateway can call, and how a deployment's upstream request
/// is addressed and authenticated. Pure functions of the config; thread-safe.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/providers/openai.hpp"

namespace gw::providers {

enum class wire_format {
  openai,       ///< OpenAI's API as is (OpenAI and every OpenAI-compatible server)
  unsupported,  ///< a provider not implemented yet (azure, bedrock, anthropic, ...)
};

/// How to reach one deployment, resolved from its config once at start.
struct deployment_target {
  wire_format format = wire_format::unsupported;
  std::string base_url;   ///< api_base, or the provider's default
  std::string api_key;    ///< api_key, or the provider's environment variable
  /// Extra request headers ("name: value" pairs), auth included.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string problem;    ///< why the deployment cannot serve (empty = it can)
};

/// Resolves `d` (provider defaults for api_base and the key's environment variable,
/// as LiteLLM does: e.g. openai -> https://api.openai.com/v1 and $OPENAI_API_KEY).
deployment_target resolve_target(const config::deployment& d);

/// True for providers whose API is OpenAI's (openai, hosted_vllm, ollama_chat, groq, ...).
bool is_openai_compatible(std::string_view provider) noexcept;

/// The model name sent upstream for a client's `requested` model, given the group's
/// `model_name` and the deployment's `upstream_model`; both may be wildcards
/// ("*", "openai/*"): model_name "openai/*" + model "openai/*" sends "gpt-4o" for
/// a request for "openai/gpt-4o".
std::string upstream_model_for(std::string_view requested, std::string_view model_name,
                               std::string_view upstream_model);

/// True if a group named `model_name` (possibly ending in '*') serves `requested`.
bool model_name_matches(std::string_view model_name, std::string_view requested) noexcept;

}  // namespace gw::providers
