#include "gw/providers/provider.hpp"

#include <array>
#include <cstdlib>

namespace gw::providers {
namespace {

struct openai_like {
  std::string_view name;
  std::string_view default_base;  // empty: api_base required
  std::string_view key_env;       // empty: no key by default
};

// OpenAI-compatible providers LiteLLM knows, with its defaults.
constexpr std::array<openai_like, 22> k_openai_like{{
    {"openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"text-completion-openai", "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"custom_openai", "", ""},
    {"openai_like", "", ""},
    {"hosted_vllm", "", "HOSTED_VLLM_API_KEY"},
    {"vllm", "", ""},
    {"llamafile", "http://127.0.0.1:8080/v1", ""},
    {"lm_studio", "http://localhost:1234/v1", "LM_STUDIO_API_KEY"},
    {"ollama", "http://localhost:11434/v1", ""},
    {"ollama_chat", "http://localhost:11434/v1", ""},
    {"groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
    {"together_ai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"},
    {"deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"},
    {"fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"},
    {"mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"},
    {"perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"},
    {"xai", "https://api.x.ai/v1", "XAI_API_KEY"},
    {"deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
    {"openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
    {"nvidia_nim", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"},
    {"cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"},
    {"sambanova", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY"},
}};

const openai_like* find_openai_like(std::string_view provider) noexcept {
  for (auto& p : k_openai_like)
    if (p.name == provider) return &p;
  return nullptr;
}

std::string getenv_str(std::string_view name) {
  if (name.empty()) return {};
  const char* v = std::getenv(std::string(name).c_str());
  return v ? std::string(v) : std::string();
}

}  // namespace

bool is_openai_compatible(std::string_view provider) noexcept { return find_openai_like(provider) != nullptr; }

namespace {

std::string param(const config::deployment& d, std::string_view name) {
  auto it = d.params.find(std::string(name));
  return it == d.params.end() ? std::string() : it->second;
}

std::string first_of(std::initializer_list<std::string> v) {
  for (auto& s : v)
    if (!s.empty()) return s;
  return {};
}

std::string strip_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// azure/<deployment>: api-key or an Entra service principal; classic or v1 paths.
deployment_target resolve_azure(const config::deployment& d) {
  deployment_target t;
  t.format = wire_format::azure;
  std::string base = strip_trailing_slashes(first_of({d.api_base, getenv_str("AZURE_API_BASE"), getenv_str("AZURE_OPENAI_ENDPOINT")}));
  if (base.empty()) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model +
                ") needs litellm_params.api_base (https://<resource>.openai.azure.com) or $AZURE_API_BASE";
    return t;
  }
  std::string version = first_of({d.api_version, getenv_str("AZURE_API_VERSION"), "2024-10-21"});
  // The v1 API (GA 2025): /openai/v1/..., no dated api-version, model = deployment name.
  bool v1 = version == "v1" || version == "latest" || version == "preview" || ends_with(base, "/openai/v1");
  if (ends_with(base, "/openai/v1")) base.resize(base.size() - 10);
  else if (ends_with(base, "/openai")) base.resize(base.size() - 7);
  t.base_url = base;
  t.azure_per_model = d.upstream_model.find('*') != std::string::npos;
  if (v1) {
    t.azure_prefix = "/openai/v1";
    if (version == "preview") t.azure_query = "?api-version=preview";
  } else {
    t.azure_prefix = "/openai/deployments/" + d.upstream_model;
    t.azure_query = "?api-version=" + version;
  }
  // One credential only (Azure refuses two): an api-key, else a static AD token, else
  // a service principal. LiteLLM's names, then the Azure SDKs' environment variables.
  t.api_key = first_of({d.api_key, getenv_str("AZURE_API_KEY"), getenv_str("AZURE_OPENAI_API_KEY")});
  std::string tenant = first_of({param(d, "tenant_id"), param(d, "azure_tenant_id")});
  std::string client = first_of({param(d, "client_id"), param(d, "azure_client_id")});
  std::string secret = first_of({param(d, "client_secret"), param(d, "azure_client_secret")});
  bool explicit_sp = !tenant.empty() || !client.empty() || !secret.empty();
  std::string ad_token = first_of({param(d, "azure_ad_token"), getenv_str("AZURE_OPENAI_AD_TOKEN")});
  if (explicit_sp || (d.api_key.empty() && t.api_key.empty() && ad_token.empty())) {
    tenant = first_of({tenant, getenv_str("AZURE_TENANT_ID")});
    client = first_of({client, getenv_str("AZURE_CLIENT_ID")});
    secret = first_of({secret, getenv_str("AZURE_CLIENT_SECRET")});
  }
  if (!d.api_key.empty() || (!explicit_sp && !t.api_key.empty())) {
    t.headers.emplace_back("api-key", t.api_key);
  } else if (!tenant.empty() && !client.empty() && !secret.empty()) {
    entra_source e;
    e.tenant_id = tenant;
    e.client_id = client;
    e.client_secret = secret;
    e.authority = strip_trailing_slashes(first_of({param(d, "azure_authority_host"), getenv_str("AZURE_AUTHORITY_HOST"),
                                                   "https://login.microsoftonline.com"}));
    if (auto sc = param(d, "azure_scope"); !sc.empty()) e.scope = sc;
    t.entra = std::move(e);
    t.api_key.clear();
  } else if (!ad_token.empty()) {
    t.headers.emplace_back("authorization", "Bearer " + ad_token);
    t.api_key.clear();
  } else if (explicit_sp) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model +
                "): an Entra ID service principal needs tenant_id, client_id and client_secret (or $AZURE_TENANT_ID, "
                "$AZURE_CLIENT_ID, $AZURE_CLIENT_SECRET)";
  } else {
    t.problem = "deployment '" + d.model_name + "' (" + d.model +
                ") has no credential: set api_key (or $AZURE_API_KEY), or tenant_id/client_id/client_secret";
  }
  return t;
}

/// bedrock/<model id>: region, SigV4 credentials (resolved later, like the AWS SDKs)
/// or a Bedrock API key.
deployment_target resolve_bedrock(const config::deployment& d) {
  deployment_target t;
  t.format = wire_format::bedrock;
  std::string model = d.upstream_model;
  // LiteLLM's route prefixes: bedrock/converse/<id> (this is the Converse API anyway).
  if (model.rfind("converse/", 0) == 0) model.erase(0, 9);
  if (model.rfind("invoke/", 0) == 0) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model +
                "): the bedrock/invoke/ route is not supported; use bedrock/<model id> (Converse)";
    return t;
  }
  t.bedrock_model = model;
  t.aws_region = first_of({param(d, "aws_region_name"), getenv_str("AWS_REGION"), getenv_str("AWS_DEFAULT_REGION")});
  if (t.aws_region.empty()) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model + ") needs litellm_params.aws_region_name (or $AWS_REGION)";
    return t;
  }
  t.base_url = strip_trailing_slashes(first_of({d.api_base, param(d, "aws_bedrock_runtime_endpoint"),
                                                "https://bedrock-runtime." + t.aws_region + ".amazonaws.com"}));
  t.aws.access_key_id = param(d, "aws_access_key_id");
  t.aws.secret_access_key = param(d, "aws_secret_access_key");
  t.aws.session_token = param(d, "aws_session_token");
  t.aws.profile = param(d, "aws_profile_name");
  if (t.aws.access_key_id.empty() != t.aws.secret_access_key.empty()) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model +
                "): aws_access_key_id and aws_secret_access_key go together";
    return t;
  }
  // A Bedrock API key is a bearer token; explicit SigV4 keys win over the environment's.
  t.aws.bearer_token = first_of({d.api_key, param(d, "aws_bearer_token"),
                                 t.aws.access_key_id.empty() && t.aws.profile.empty()
                                     ? getenv_str("AWS_BEARER_TOKEN_BEDROCK")
                                     : std::string()});
  return t;
}

deployment_target resolve_anthropic(const config::deployment& d) {
  deployment_target t;
  t.format = wire_format::anthropic;
  std::string base = strip_trailing_slashes(first_of({d.api_base, getenv_str("ANTHROPIC_API_BASE"),
                                                      getenv_str("ANTHROPIC_BASE_URL"), "https://api.anthropic.com"}));
  // The adapter's path is /v1/messages: accept a base given with /v1 or the full path.
  if (ends_with(base, "/v1/messages")) base.resize(base.size() - 12);
  if (ends_with(base, "/v1")) base.resize(base.size() - 3);
  t.base_url = base;
  t.api_key = first_of({d.api_key, getenv_str("ANTHROPIC_API_KEY")});
  if (t.api_key.empty()) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model + ") has no api_key (or $ANTHROPIC_API_KEY)";
    return t;
  }
  t.headers.emplace_back("x-api-key", t.api_key);
  return t;
}

}  // namespace

std::string azure_path(const deployment_target& t, operation op, std::string_view deployment) {
  std::string p;
  if (t.azure_per_model && t.azure_prefix.rfind("/openai/deployments/", 0) == 0) {
    p = "/openai/deployments/";
    p += deployment;
  } else {
    p = t.azure_prefix;
  }
  p += operation_path(op);
  p += t.azure_query;
  return p;
}

deployment_target resolve_target(const config::deployment& d) {
  if (d.provider == "azure") return resolve_azure(d);
  if (d.provider == "bedrock") return resolve_bedrock(d);
  if (d.provider == "anthropic") return resolve_anthropic(d);
  deployment_target t;
  const openai_like* p = find_openai_like(d.provider);
  if (!p) {
    t.problem = "provider '" + d.provider + "' is not supported yet (deployment '" + d.model_name + "', model '" +
                d.model + "')";
    return t;
  }
  t.format = wire_format::openai;
  t.base_url = !d.api_base.empty() ? d.api_base : std::string(p->default_base);
  // Ollama's OpenAI-compatible API lives under /v1.
  if ((d.provider == "ollama" || d.provider == "ollama_chat") && !d.api_base.empty()) {
    std::string_view b = t.base_url;
    while (!b.empty() && b.back() == '/') b.remove_suffix(1);
    if (b.size() < 3 || b.substr(b.size() - 3) != "/v1") t.base_url = std::string(b) + "/v1";
  }
  if (t.base_url.empty()) {
    t.problem = "deployment '" + d.model_name + "' (" + d.model + ") needs litellm_params.api_base";
    return t;
  }
  t.api_key = !d.api_key.empty() ? d.api_key : getenv_str(p->key_env);
  if (!t.api_key.empty()) t.headers.emplace_back("authorization", "Bearer " + t.api_key);
  if (auto it = d.params.find("organization"); it != d.params.end() && !it->second.empty())
    t.headers.emplace_back("openai-organization", it->second);
  return t;
}

bool model_name_matches(std::string_view model_name, std::string_view requested) noexcept {
  if (!model_name.empty() && model_name.back() == '*') {
    auto prefix = model_name.substr(0, model_name.size() - 1);
    return requested.size() > prefix.size() && requested.substr(0, prefix.size()) == prefix;
  }
  return model_name == requested;
}

std::string upstream_model_for(std::string_view requested, std::string_view model_name,
                               std::string_view upstream_model) {
  auto star = upstream_model.find('*');
  if (star == std::string_view::npos) return std::string(upstream_model);
  std::string_view rest = requested;
  if (!model_name.empty() && model_name.back() == '*') {
    auto prefix = model_name.substr(0, model_name.size() - 1);
    if (rest.substr(0, prefix.size()) == prefix) rest.remove_prefix(prefix.size());
  }
  std::string out(upstream_model.substr(0, star));
  out.append(rest);
  out.append(upstream_model.substr(star + 1));
  return out;
}

}  // namespace gw::providers
