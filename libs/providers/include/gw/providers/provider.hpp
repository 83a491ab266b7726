#pragma once
/// Which providers the gateway can call, and how a deployment's upstream request
/// is addressed and authenticated. Pure functions of the config; thread-safe.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/providers/openai.hpp"

namespace gw::providers {

enum class wire_format {
  openai,       ///< OpenAI's API as is (OpenAI and every OpenAI-compatible server)
  azure,        ///< OpenAI's API on Azure's paths (deployment in the path, api-version), api-key or Entra
  bedrock,      ///< AWS Bedrock Converse / InvokeModel, SigV4 or a Bedrock API key: translated
  anthropic,    ///< Anthropic Messages: translated
  unsupported,  ///< a provider not implemented (vertex_ai, ...)
};

/// Where AWS credentials come from for a Bedrock deployment (litellm_params), before
/// the SDK-style chain (environment, web identity, files, container, instance metadata).
struct aws_source {
  std::string access_key_id, secret_access_key, session_token;  ///< aws_access_key_id, ...
  std::string profile;       ///< aws_profile_name
  std::string bearer_token;  ///< a Bedrock API key: api_key, else $AWS_BEARER_TOKEN_BEDROCK
};

/// A Microsoft Entra ID service principal (client-credentials flow) for Azure.
struct entra_source {
  std::string tenant_id, client_id, client_secret;
  std::string authority;     ///< https://login.microsoftonline.com, or $AZURE_AUTHORITY_HOST
  std::string scope = "https://cognitiveservices.azure.com/.default";
};

/// How to reach one deployment, resolved from its config once at start.
struct deployment_target {
  wire_format format = wire_format::unsupported;
  std::string base_url;   ///< api_base, or the provider's default
  std::string api_key;    ///< api_key, or the provider's environment variable
  /// Extra request headers ("name: value" pairs), auth included when it is static.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string problem;    ///< why the deployment cannot serve (empty = it can)

  // Azure: requests go to <base><azure_prefix><operation path><azure_query>.
  std::string azure_prefix;   ///< "/openai/deployments/<deployment>" or "/openai/v1"
  std::string azure_query;    ///< "?api-version=2024-10-21" (classic) or "" (v1)
  bool azure_per_model = false;  ///< the deployment name comes from the request (azure/*)
  std::optional<entra_source> entra;  ///< bearer tokens from Entra ID instead of an api-key

  // Bedrock.
  std::string aws_region;
  aws_source aws;
  /// The Bedrock model id (litellm_params.model without "bedrock/" and a "converse/" route prefix).
  std::string bedrock_model;
};

/// Resolves `d` (provider defaults for api_base and the key's environment variable,
/// as LiteLLM does: e.g. openai -> https://api.openai.com/v1 and $OPENAI_API_KEY).
deployment_target resolve_target(const config::deployment& d);

/// Azure's path below the base URL for `op` and deployment `deployment` (query included).
std::string azure_path(const deployment_target& t, operation op, std::string_view deployment);

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
