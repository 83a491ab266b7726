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

deployment_target resolve_target(const config::deployment& d) {
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
