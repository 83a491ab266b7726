// Loads LiteLLM's config.yaml into gateway_config: os.environ/ references, validation
// with file:line:column and YAML path, one warning per key not implemented yet.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "gw/config/config.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"

namespace gw::config {
namespace {

constexpr std::string_view k_env_prefix = "os.environ/";

using key_set = std::unordered_set<std::string_view>;

// Keys the gateway reads.
const key_set k_top_implemented{"model_list",          "litellm_settings",      "general_settings",
                                "router_settings",     "environment_variables", "gateway_settings"};
const key_set k_top_later{"guardrails",   "include",        "credential_list",    "mcp_servers",
                          "callback_settings", "vector_store_registry", "search_tools", "files_settings",
                          "finetune_settings", "assistant_settings", "prompts", "model_group_settings"};

const key_set k_params_implemented{"model",       "api_base",        "api_key", "api_version",
                                   "timeout",     "stream_timeout",  "rpm",     "tpm",
                                   "max_retries", "max_parallel_requests", "weight", "organization",
                                   "num_retries",
                                   // Azure (docs/providers.md)
                                   "tenant_id", "client_id", "client_secret", "azure_tenant_id",
                                   "azure_client_id", "azure_client_secret", "azure_ad_token",
                                   "azure_authority_host", "azure_scope",
                                   // Bedrock
                                   "aws_region_name", "aws_access_key_id", "aws_secret_access_key",
                                   "aws_session_token", "aws_profile_name", "aws_bearer_token",
                                   "aws_bedrock_runtime_endpoint", "aws_sts_endpoint", "aws_session_name"};

const key_set k_litellm_implemented{"request_timeout", "num_retries", "drop_params",
                                    "success_callback", "failure_callback", "callbacks",
                                    "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                                    "default_fallbacks", "turn_off_message_logging"};

const key_set k_general_implemented{"master_key", "database_url", "max_request_size_mb",
                                    "database_connection_pool_limit", "maximum_spend_logs_retention_period",
                                    "token_rate_limit_type", "dangerously_allow_mock_testing_request_params",
                                    "store_prompts_in_spend_logs"};
const key_set k_general_later{
    "completion_model", "disable_spend_logs", "disable_master_key_return",
    "disable_retry_on_max_parallel_request_limit_error", "disable_reset_budget",
    "disable_adding_master_key_hash_to_db", "enable_jwt_auth", "enforce_user_param", "allowed_routes",
    "key_management_system", "key_management_settings",
    "database_connection_timeout", "allow_requests_on_db_unavailable", "custom_auth", "custom_auth_settings",
    "max_parallel_requests", "global_max_parallel_requests", "infer_model_from_keys", "background_health_checks",
    "health_check_interval", "health_check_details", "alerting", "alerting_threshold", "alert_types",
    "alert_to_webhook_url", "alerting_args", "spend_report_frequency", "ui_access_mode", "litellm_jwtauth",
    "litellm_license", "oauth2_config_mappings", "outlier_threshold", "pass_through_endpoints",
    "store_model_in_db", "max_response_size_mb",
    "proxy_budget_rescheduler_min_time", "proxy_budget_rescheduler_max_time", "proxy_batch_write_at",
    "custom_key_generate", "custom_sso", "public_routes", "admin_only_routes", "use_redis_transaction_buffer",
    "maximum_spend_logs_retention_interval", "litellm_key_header_name",
    "user_header_name", "forward_client_headers_to_llm_api", "require_auth_for_metrics_endpoint",
    "user_api_key_cache_ttl", "service_account_settings", "key_generation_settings", "allowed_ips",
    "enforced_params", "use_client_credentials_pass_through_routes", "disable_prisma_schema_update",
    "default_team_disabled", "embedding_model", "moderation_model", "use_shared_health_check",
    "supported_db_objects", "user_mcp_management_mode", "reject_clientside_metadata_tags"};

const key_set k_router_later{
    "enable_pre_call_checks", "optional_pre_call_checks",
    "model_group_alias", "routing_strategy_args", "cache_responses", "cache_kwargs",
    "client_ttl", "default_litellm_params", "default_max_parallel_requests", "default_priority",
    "polling_interval", "provider_budget_config", "enable_tag_filtering", "tag_filtering_match_any",
    "debug_level", "set_verbose", "alerting_config", "assistants_config", "router_general_settings",
    "deployment_affinity"};

const key_set k_gateway_keys{"io_threads",        "actor_threads",           "max_connections",
                             "max_header_bytes",  "keepalive_timeout",       "request_read_timeout",
                             "connect_timeout",   "drain_timeout",           "upstream_max_idle_per_host",
                             "upstream_idle_timeout", "price_file",              "spend_flush_interval",
                             "budget_lease_ttl",  "budget_slice_fraction",   "spend_spool_path",
                             "budget_reset_calendar", "rate_limit_window", "rate_limit_buckets",
                             "redis_timeout", "rate_limit_local_share", "rate_limit_precheck",
                             "retry_backoff_base", "retry_backoff_max", "retry_after_max",
                             "fetch_image_urls", "image_fetch_allow_private", "budget_enforcement",
                             "allow_client_mock_params", "header_read_timeout", "max_request_bytes_in_flight"};

const std::set<std::string> k_routing_strategies{"simple-shuffle",        "least-busy",
                                                 "usage-based-routing",   "usage-based-routing-v2",
                                                 "latency-based-routing", "cost-based-routing"};

std::string fnv1a_hex(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex[h & 0xf];
    h >>= 4;
  }
  return out;
}

/// Thrown inside the loader only, turned into config_error at the API boundary.
struct invalid {
  std::string message;
};

class loader {
 public:
  explicit loader(std::string source) : source_(std::move(source)) { cfg_.source = source_; }

  gateway_config run(const YAML::Node& root) {
    if (!root || root.IsNull()) {
      warn("", "the config is empty: no models configured");
      finish();
      return std::move(cfg_);
    }
    if (!root.IsMap()) fail(root, "", "the config must be a YAML mapping of sections");
    // environment_variables first: later os.environ/ references may use them.
    if (auto env = root["environment_variables"]) read_environment(env);
    for (auto it = root.begin(); it != root.end(); ++it) {
      std::string key = it->first.as<std::string>();
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      if (key == "model_list") read_model_list(v);
      else if (key == "litellm_settings") read_litellm(v);
      else if (key == "general_settings") read_general(v);
      else if (key == "router_settings") read_router(v);
      else if (key == "gateway_settings") read_gateway(v);
      else if (key == "environment_variables") continue;
      else if (k_top_later.count(key)) warn_later(key);
      else warn_unknown(key);
    }
    finish();
    return std::move(cfg_);
  }

 private:
  // ------------------------------------------------------------------ helpers
  [[noreturn]] void fail(const YAML::Node& n, const std::string& path, const std::string& what) {
    std::ostringstream m;
    m << source_;
    if (n && n.Mark().line >= 0) m << ":" << n.Mark().line + 1 << ":" << n.Mark().column + 1;
    m << ": ";
    if (!path.empty()) m << path << ": ";
    m << what;
    throw invalid{m.str()};
  }

  void warn(const std::string& dedupe, const std::string& message) {
    if (!dedupe.empty() && !warned_.insert(dedupe).second) return;
    cfg_.warnings.push_back(message);
  }
  void warn_later(const std::string& pattern) {
    warn(pattern, pattern + ": accepted but not implemented yet (ignored)");
  }
  void warn_unknown(const std::string& pattern) { warn(pattern, pattern + ": unknown key (ignored)"); }

  void require_map(const YAML::Node& n, const std::string& path) {
    if (!n.IsMap() && !n.IsNull()) fail(n, path, "expected a mapping");
  }

  /// A scalar's text with os.environ/NAME resolved; nullopt for null or an unset variable.
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& path) {
    if (!n || n.IsNull()) return std::nullopt;
    if (!n.IsScalar()) fail(n, path, "expected a single value, not a list or mapping");
    std::string v = n.Scalar();
    if (v.rfind(k_env_prefix, 0) == 0) {
      std::string name = v.substr(k_env_prefix.size());
      const char* e = std::getenv(name.c_str());
      if (!e) {
        warn(path + "\x1f" + name, path + ": environment variable " + name + " is not set");
        return std::nullopt;
      }
      return std::string(e);
    }
    return v;
  }

  std::optional<std::int64_t> integer(const YAML::Node& n, const std::string& path, std::int64_t min = 0) {
    auto s = scalar(n, path);
    if (!s) return std::nullopt;
    auto v = parse_int(*s);
    if (!v) fail(n, path, "expected an integer, got '" + display(n, *s) + "'");
    if (*v < min) fail(n, path, "must be at least " + std::to_string(min) + ", got " + std::to_string(*v));
    return *v;
  }

  /// An integer that fits an int (counts, ports, retries): larger values are an error too.
  std::optional<int> int_value(const YAML::Node& n, const std::string& path, std::int64_t min = 0,
                               std::int64_t max = std::numeric_limits<int>::max()) {
    auto v = integer(n, path, min);
    if (!v) return std::nullopt;
    if (*v > max) fail(n, path, "must be at most " + std::to_string(max) + ", got " + std::to_string(*v));
    return static_cast<int>(*v);
  }

  std::optional<double> number(const YAML::Node& n, const std::string& path, bool positive = false) {
    auto s = scalar(n, path);
    if (!s) return std::nullopt;
    auto v = parse_double(*s);
    if (!v) fail(n, path, "expected a number, got '" + display(n, *s) + "'");
    if (*v < 0 || (positive && *v == 0)) fail(n, path, positive ? "must be greater than 0" : "must not be negative");
    return *v;
  }

  /// true/yes/on/1 or false/no/off/0, in any case; nullopt for anything else. The one
  /// spelling of a boolean for YAML values, URL query options and environment variables.
  static std::optional<bool> bool_word(std::string_view s) {
    if (iequals(s, "true") || iequals(s, "yes") || iequals(s, "on") || s == "1") return true;
    if (iequals(s, "false") || iequals(s, "no") || iequals(s, "off") || s == "0") return false;
    return std::nullopt;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& path) {
    auto s = scalar(n, path);
    if (!s) return std::nullopt;
    if (auto b = bool_word(*s)) return b;
    fail(n, path, "expected true or false, got '" + display(n, *s) + "'");
  }

  std::vector<std::string> string_list(const YAML::Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (!n || n.IsNull()) return out;
    if (n.IsScalar()) {
      if (auto s = scalar(n, path)) out.push_back(*s);
      return out;
    }
    if (!n.IsSequence()) fail(n, path, "expected a list of names");
    for (std::size_t i = 0; i < n.size(); ++i) {
      auto p = path + "[" + std::to_string(i) + "]";
      if (!n[i].IsScalar()) fail(n[i], p, "expected a name");
      if (auto s = scalar(n[i], p)) out.push_back(*s);
    }
    return out;
  }

  /// Values from the environment may be secrets: never echo them.
  static std::string display(const YAML::Node& n, const std::string& resolved) {
    return n.Scalar().rfind(k_env_prefix, 0) == 0 ? n.Scalar() + " (value hidden)" : resolved;
  }

  /// Compact JSON of a node, os.environ/ resolved (for lists and maps in params).
  void to_json(const YAML::Node& n, const std::string& path, std::string& out) {
    if (!n || n.IsNull()) {
      out += "null";
    } else if (n.IsScalar()) {
      auto s = scalar(n, path);
      if (s)
        append_json_string(out, *s);
      else
        out += "null";
    } else if (n.IsSequence()) {
      out += '[';
      for (std::size_t i = 0; i < n.size(); ++i) {
        if (i) out += ',';
        to_json(n[i], path + "[" + std::to_string(i) + "]", out);
      }
      out += ']';
    } else {
      out += '{';
      bool first = true;
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (!first) out += ',';
        first = false;
        auto k = it->first.Scalar();
        append_json_string(out, k);
        out += ':';
        to_json(it->second, path + "." + k, out);
      }
      out += '}';
    }
  }

  std::optional<std::string> text_or_json(const YAML::Node& n, const std::string& path) {
    if (!n || n.IsNull()) return std::nullopt;
    if (n.IsScalar()) return scalar(n, path);
    std::string j;
    to_json(n, path, j);
    return j;
  }

  // ----------------------------------------------------------------- sections
  void read_environment(const YAML::Node& n) {
    require_map(n, "environment_variables");
    if (n.IsNull()) return;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      auto v = scalar(it->second, "environment_variables." + k);
      if (!v) continue;
      setenv(k.c_str(), v->c_str(), 1);
      cfg_.environment_variables[k] = *v;
    }
  }

  void read_model_list(const YAML::Node& n) {
    if (n.IsNull()) return;
    if (!n.IsSequence()) fail(n, "model_list", "expected a list of models");
    std::unordered_map<std::string, int> id_lines;
    for (std::size_t i = 0; i < n.size(); ++i) {
      std::string path = "model_list[" + std::to_string(i) + "]";
      const YAML::Node& e = n[i];
      if (!e.IsMap()) fail(e, path, "expected a mapping with model_name and litellm_params");
      deployment d;
      d.where = {e.Mark().line + 1, e.Mark().column + 1};
      YAML::Node params, info;
      for (auto it = e.begin(); it != e.end(); ++it) {
        std::string k = it->first.as<std::string>();
        if (k == "model_name") {
          auto s = scalar(it->second, path + ".model_name");
          d.model_name = s.value_or("");
        } else if (k == "litellm_params") {
          params = it->second;
        } else if (k == "model_info") {
          info = it->second;
        } else {
          warn_unknown("model_list[]." + k);
        }
      }
      if (d.model_name.empty()) fail(e, path + ".model_name", "missing (every model needs a model_name)");
      if (!params || params.IsNull()) fail(e, path + ".litellm_params", "missing (every model needs litellm_params)");
      if (!params.IsMap()) fail(params, path + ".litellm_params", "expected a mapping");
      read_params(params, path + ".litellm_params", d);
      if (info && !info.IsNull()) {
        if (!info.IsMap()) fail(info, path + ".model_info", "expected a mapping");
        for (auto it = info.begin(); it != info.end(); ++it) {
          std::string k = it->first.as<std::string>();
          if (auto v = text_or_json(it->second, path + ".model_info." + k)) d.model_info[k] = *v;
        }
      }
      if (auto it = d.model_info.find("id"); it != d.model_info.end() && !it->second.empty()) {
        d.id = it->second;
        auto [pos, fresh] = id_lines.emplace(d.id, d.where.line);
        if (!fresh)
          fail(info["id"], path + ".model_info.id",
               "duplicate id '" + d.id + "' (also used by the model on line " + std::to_string(pos->second) + ")");
      }
      cfg_.model_list.push_back(std::move(d));
    }
    // Generated ids: stable across restarts, unique within the file.
    std::unordered_set<std::string> taken;
    for (auto& d : cfg_.model_list)
      if (!d.id.empty()) taken.insert(d.id);
    for (std::size_t i = 0; i < cfg_.model_list.size(); ++i) {
      auto& d = cfg_.model_list[i];
      if (!d.id.empty()) continue;
      std::string basis = d.model_name + "\n" + d.model + "\n" + d.api_base;
      std::string id = fnv1a_hex(basis);
      if (taken.count(id)) id = fnv1a_hex(basis + "\n" + std::to_string(i));
      taken.insert(id);
      d.id = id;
    }
  }

  void read_params(const YAML::Node& p, const std::string& path, deployment& d) {
    for (auto it = p.begin(); it != p.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = path + "." + k;
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      if (auto t = text_or_json(v, kp)) d.params[k] = *t;
      if (k == "model") d.model = scalar(v, kp).value_or("");
      else if (k == "api_base") d.api_base = scalar(v, kp).value_or("");
      else if (k == "api_key") d.api_key = scalar(v, kp).value_or("");
      else if (k == "api_version") d.api_version = scalar(v, kp).value_or("");
      else if (k == "timeout") d.timeout = number(v, kp, true);
      else if (k == "stream_timeout") d.stream_timeout = number(v, kp, true);
      else if (k == "rpm") d.rpm = integer(v, kp);
      else if (k == "tpm") d.tpm = integer(v, kp);
      else if (k == "num_retries") {
        d.num_retries = int_value(v, kp);
      } else if (k == "max_retries") {
        d.max_retries = int_value(v, kp);
      } else if (k == "max_parallel_requests") d.max_parallel_requests = integer(v, kp, 1);
      else if (k == "weight") d.weight = number(v, kp);
      else if (!k_params_implemented.count(k)) warn_later("model_list[].litellm_params." + k);
    }
    if (d.model.empty()) fail(p, path + ".model", "missing (e.g. model: openai/gpt-4o)");
    auto slash = d.model.find('/');
    if (slash == std::string::npos) {
      d.provider = "openai";
      d.upstream_model = d.model;
    } else {
      d.provider = to_lower(d.model.substr(0, slash));
      d.upstream_model = d.model.substr(slash + 1);
      if (d.provider.empty() || d.upstream_model.empty())
        fail(p["model"], path + ".model", "expected provider/model, got '" + d.model + "'");
    }
  }

  void read_litellm(const YAML::Node& n) {
    require_map(n, "litellm_settings");
    if (n.IsNull()) return;
    auto& s = cfg_.litellm;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = "litellm_settings." + k;
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      if (k == "request_timeout") {
        if (auto x = number(v, kp, true)) s.request_timeout = *x;
      } else if (k == "num_retries") {
        if (auto x = int_value(v, kp)) s.num_retries = *x;
      } else if (k == "drop_params") {
        if (auto x = boolean(v, kp)) s.drop_params = *x;
      } else if (k == "success_callback") {
        s.success_callback = string_list(v, kp);
      } else if (k == "failure_callback") {
        s.failure_callback = string_list(v, kp);
      } else if (k == "callbacks") {
        s.callbacks = string_list(v, kp);
      } else if (k == "turn_off_message_logging") {
        if (auto x = boolean(v, kp)) s.turn_off_message_logging = *x;
      } else if (k == "timezone") {
        s.timezone = scalar(v, kp).value_or("UTC");
        if (s.timezone.empty()) s.timezone = "UTC";
      } else if (k == "fallbacks" || k == "context_window_fallbacks" || k == "content_policy_fallbacks") {
        litellm_fallbacks_[k] = fallback_list(v, kp);
      } else if (k == "default_fallbacks") {
        litellm_fallbacks_[k] = default_fallback_list(v, kp);
      } else if (k == "cache_params") {
        read_cache_params(v, kp);
      } else {
        // litellm_settings takes any attribute of the litellm module: all are LiteLLM's.
        warn_later(kp);
      }
    }
  }

  void read_general(const YAML::Node& n) {
    require_map(n, "general_settings");
    if (n.IsNull()) return;
    auto& g = cfg_.general;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = "general_settings." + k;
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      if (k == "master_key") {
        g.master_key = scalar(v, kp).value_or("");
      } else if (k == "database_url") {
        g.database_url = scalar(v, kp).value_or("");
      } else if (k == "max_request_size_mb") {
        if (auto x = number(v, kp, true)) g.max_request_size_bytes = static_cast<std::size_t>(*x * 1024.0 * 1024.0);
      } else if (k == "database_connection_pool_limit") {
        if (auto x = int_value(v, kp, 1)) g.database_connection_pool_limit = *x;
      } else if (k == "maximum_spend_logs_retention_period") {
        // LiteLLM writes "30d", "7d", "12h"; whole days are kept (at least one).
        if (auto sv = scalar(v, kp)) {
          std::string t = *sv;
          int days = 0;
          bool ok = !t.empty();
          char unit = ok ? t.back() : 0;
          std::string num = (unit == 'd' || unit == 'h') ? t.substr(0, t.size() - 1) : t;
          ok = ok && !num.empty() && num.find_first_not_of("0123456789") == std::string::npos && num.size() < 7;
          if (ok) days = unit == 'h' ? std::max(1, (std::stoi(num) + 23) / 24) : std::stoi(num);
          if (!ok || days <= 0) fail(v, kp, "expected a retention such as '30d' or '12h', got '" + t + "'");
          g.spend_logs_retention_days = days;
        }
      } else if (k == "store_prompts_in_spend_logs") {
        if (auto x = boolean(v, kp)) g.store_prompts_in_spend_logs = *x;
      } else if (k == "dangerously_allow_mock_testing_request_params") {
        if (auto x = boolean(v, kp)) cfg_.gateway.allow_client_mock_params = *x;
      } else if (k == "token_rate_limit_type") {
        auto t = scalar(v, kp).value_or("output");
        if (t != "output" && t != "input" && t != "total")
          fail(v, kp, "expected output, input or total, got '" + t + "'");
        g.token_rate_limit_type = t;
      } else if (k_general_later.count(k)) {
        warn_later(kp);
      } else {
        warn_unknown(kp);
      }
    }
  }

  /// retry_policy / allowed_fails_policy: {BadRequestError<suffix>: n, …}, LiteLLM's names.
  error_class_counts error_counts(const YAML::Node& n, const std::string& path, const std::string& suffix) {
    static constexpr std::pair<std::string_view, error_class> names[] = {
        {"BadRequestError", error_class::bad_request},
        {"AuthenticationError", error_class::authentication},
        {"TimeoutError", error_class::timeout},
        {"RateLimitError", error_class::rate_limit},
        {"ContentPolicyViolationError", error_class::content_policy},
        {"InternalServerError", error_class::internal_server},
        {"ServiceUnavailableError", error_class::service_unavailable}};
    error_class_counts out;
    require_map(n, path);
    if (n.IsNull()) return out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = path + "." + k;
      const YAML::Node v = it->second;
      bool known = false;
      for (auto& [name, cls] : names) {
        if (k == std::string(name) + suffix) {
          if (v.IsNull()) {
            known = true;  // LiteLLM's "None": the default
            break;
          }
          out.n[static_cast<std::size_t>(cls)] = int_value(v, kp);
          known = true;
        }
      }
      if (!known) {
        std::string all;
        for (auto& [name, cls] : names) all += (all.empty() ? "" : ", ") + std::string(name) + suffix;
        fail(it->first, kp, "unknown error class '" + k + "' (one of " + all + ")");
      }
    }
    return out;
  }

  void read_router(const YAML::Node& n) {
    require_map(n, "router_settings");
    if (n.IsNull()) return;
    auto& r = cfg_.router;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = "router_settings." + k;
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      if (k == "routing_strategy") {
        if (auto s = scalar(v, kp)) {
          if (!k_routing_strategies.count(*s))
            fail(v, kp,
                 "unknown strategy '" + *s +
                     "' (one of simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, "
                     "latency-based-routing, cost-based-routing)");
          r.routing_strategy = *s;
        }
      } else if (k == "num_retries") {
        r.num_retries = int_value(v, kp);
      } else if (k == "timeout") {
        r.timeout = number(v, kp, true);
      } else if (k == "allowed_fails") {
        if (auto x = int_value(v, kp)) r.allowed_fails = *x;
      } else if (k == "cooldown_time") {
        if (auto x = number(v, kp)) r.cooldown_time = *x;
      } else if (k == "stream_timeout") {
        r.stream_timeout = number(v, kp, true);
      } else if (k == "disable_cooldowns") {
        if (auto x = boolean(v, kp)) r.disable_cooldowns = *x;
      } else if (k == "retry_after") {
        if (auto x = number(v, kp)) r.retry_after = *x;
      } else if (k == "max_fallbacks") {
        if (auto x = int_value(v, kp)) r.max_fallbacks = *x;
      } else if (k == "fallbacks" || k == "context_window_fallbacks" || k == "content_policy_fallbacks") {
        router_fallbacks_[k] = fallback_list(v, kp);
      } else if (k == "default_fallbacks") {
        router_fallbacks_[k] = default_fallback_list(v, kp);
      } else if (k == "retry_policy") {
        r.retry_policy = error_counts(v, kp, "Retries");
      } else if (k == "allowed_fails_policy") {
        r.allowed_fails_policy = error_counts(v, kp, "AllowedFails");
      } else if (k == "model_group_retry_policy") {
        require_map(v, kp);
        for (auto g = v.begin(); g != v.end(); ++g) {
          std::string name = g->first.as<std::string>();
          r.model_group_retry_policy.emplace_back(name, error_counts(g->second, kp + "." + name, "Retries"));
        }
      } else if (k == "redis_host") {
        router_redis_.host = scalar(v, kp).value_or("");
      } else if (k == "redis_port") {
        router_redis_.port = port_of(v, kp);
      } else if (k == "redis_password") {
        router_redis_.password = scalar(v, kp).value_or("");
      } else if (k == "redis_username") {
        router_redis_.username = scalar(v, kp).value_or("");
      } else if (k == "redis_db") {
        if (auto x = int_value(v, kp)) router_redis_.db = *x;
      } else if (k == "redis_url") {
        if (auto u = scalar(v, kp); u && !u->empty()) router_redis_url_ = {*u, v};
      } else if (k_router_later.count(k)) {
        warn_later(kp);
      } else {
        warn_unknown(kp);
      }
    }
  }

  void read_gateway(const YAML::Node& n) {
    require_map(n, "gateway_settings");
    if (n.IsNull()) return;
    auto& g = cfg_.gateway;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = "gateway_settings." + k;
      const YAML::Node v = it->second;  // a copy: it-> returns a temporary proxy
      auto size = [&](std::size_t& out, std::int64_t min) {
        if (auto x = integer(v, kp, min)) out = static_cast<std::size_t>(*x);
      };
      auto seconds = [&](double& out) {
        if (auto x = number(v, kp, true)) out = *x;
      };
      if (k == "io_threads") {
        if (auto x = int_value(v, kp, 0)) g.io_threads = *x;
      } else if (k == "actor_threads") {
        if (auto x = int_value(v, kp, 0)) g.actor_threads = *x;
      } else if (k == "max_connections") size(g.max_connections, 1);
      else if (k == "max_header_bytes") size(g.max_header_bytes, 1024);
      else if (k == "upstream_max_idle_per_host") size(g.upstream_max_idle_per_host, 0);
      else if (k == "keepalive_timeout") seconds(g.keepalive_timeout);
      else if (k == "request_read_timeout") seconds(g.request_read_timeout);
      else if (k == "header_read_timeout") seconds(g.header_read_timeout);
      else if (k == "max_request_bytes_in_flight") size(g.max_request_bytes_in_flight, 1 << 20);
      else if (k == "connect_timeout") seconds(g.connect_timeout);
      else if (k == "drain_timeout") seconds(g.drain_timeout);
      else if (k == "upstream_idle_timeout") seconds(g.upstream_idle_timeout);
      else if (k == "spend_flush_interval") seconds(g.spend_flush_interval);
      else if (k == "budget_lease_ttl") seconds(g.budget_lease_ttl);
      else if (k == "budget_slice_fraction") {
        if (auto x = number(v, kp, true)) {
          if (*x <= 0 || *x > 1) fail(v, kp, "expected a fraction in (0, 1]");
          g.budget_slice_fraction = *x;
        }
      } else if (k == "price_file") g.price_file = scalar(v, kp).value_or("");
      else if (k == "spend_spool_path") g.spend_spool_path = scalar(v, kp).value_or("");
      else if (k == "budget_reset_calendar") {
        if (auto x = boolean(v, kp)) g.budget_reset_calendar = *x;
      } else if (k == "rate_limit_window") seconds(g.rate_limit_window);
      else if (k == "rate_limit_buckets") {
        if (auto x = int_value(v, kp, 1, 3600)) g.rate_limit_buckets = *x;
      } else if (k == "redis_timeout") seconds(g.redis_timeout);
      else if (k == "rate_limit_local_share") {
        if (auto x = number(v, kp)) {
          if (*x > 1) fail(v, kp, "expected a fraction in [0, 1] (0: one over the live nodes)");
          g.rate_limit_local_share = *x;
        }
      } else if (k == "rate_limit_precheck") {
        if (auto x = boolean(v, kp)) g.rate_limit_precheck = *x;
      } else if (k == "fetch_image_urls") {
        if (auto x = boolean(v, kp)) g.fetch_image_urls = *x;
      } else if (k == "image_fetch_allow_private") {
        if (auto x = boolean(v, kp)) g.image_fetch_allow_private = *x;
      } else if (k == "allow_client_mock_params") {
        if (auto x = boolean(v, kp)) g.allow_client_mock_params = *x;
      } else if (k == "budget_enforcement") {
        auto x = scalar(v, kp).value_or("");
        if (x != "spend" && x != "strict") fail(v, kp, "expected spend or strict, got '" + x + "'");
        g.budget_enforcement = x;
      } else if (k == "retry_backoff_base") {
        if (auto x = number(v, kp)) g.retry_backoff_base = *x;
      } else if (k == "retry_backoff_max") {
        if (auto x = number(v, kp)) g.retry_backoff_max = *x;
      } else if (k == "retry_after_max") {
        if (auto x = number(v, kp)) g.retry_after_max = *x;
      } else if (k == "trace_store") {
        if (auto x = boolean(v, kp)) g.trace_store = *x;
      } else if (k == "trace_store_bodies") {
        auto x = scalar(v, kp).value_or("");
        if (x != "full" && x != "truncated" && x != "off") fail(v, kp, "expected full, truncated or off");
        g.trace_store_bodies = x;
      } else if (k == "trace_body_max_bytes") size(g.trace_body_max_bytes, 0);
      else if (k == "trace_retention_days") {
        if (auto x = int_value(v, kp, 0)) g.trace_retention_days = *x;
      } else if (k == "trace_memory_records") size(g.trace_memory_records, 0);
      else if (k == "otel_capture_content") {
        if (auto x = boolean(v, kp)) g.otel_capture_content = *x;
      } else if (k == "langfuse_capture_content") {
        if (auto x = boolean(v, kp)) g.langfuse_capture_content = *x;
      } else if (k == "trace_capture_max_bytes") size(g.trace_capture_max_bytes, 0);
      else if (k == "request_log") {
        if (auto x = boolean(v, kp)) g.request_log = *x;
      } else if (k == "request_log_content") {
        if (auto x = boolean(v, kp)) g.request_log_content = *x;
      } else if (k == "trace_batch_size") size(g.trace_batch_size, 1);
      else if (k == "trace_queue_size") size(g.trace_queue_size, 1);
      else if (k == "trace_flush_interval") seconds(g.trace_flush_interval);
      else if (k == "trace_export_timeout") seconds(g.trace_export_timeout);
      else if (k == "trace_export_max_attempts") {
        if (auto x = int_value(v, kp, 1, 100)) g.trace_export_max_attempts = *x;
      }
      else warn_unknown(kp);
    }
  }

  void finish() {
    if (cfg_.general.master_key.empty())
      if (const char* k = std::getenv("LITELLM_MASTER_KEY")) cfg_.general.master_key = k;
    if (cfg_.general.database_url.empty())
      if (const char* u = std::getenv("DATABASE_URL")) cfg_.general.database_url = u;
    if (!cfg_.general.master_key.empty() && cfg_.general.master_key.rfind("sk-", 0) != 0)
      warn("master_key_prefix", "general_settings.master_key: does not start with 'sk-' (LiteLLM requires it; "
                                "accepted here)");
    if (cfg_.model_list.empty()) warn("no_models", "model_list: no models configured");
    finish_fallbacks();
    finish_redis();
  }

  using fallback_map = std::vector<std::pair<std::string, std::vector<std::string>>>;

  /// One fallback list as written, with where each name sits (for errors and warnings).
  struct fallback_entry {
    std::string from;           ///< the model group ("" for default_fallbacks)
    std::string path;           ///< e.g. "router_settings.fallbacks[0].gpt-4o"
    YAML::Node from_node;       ///< the group's key
    std::vector<std::string> to;
    std::vector<std::pair<std::string, YAML::Node>> to_at;  ///< path and node of each of `to`
  };
  using fallback_entries = std::vector<fallback_entry>;

  /// The targets of one group: a list of names, or one name.
  void fallback_targets(const YAML::Node& n, const std::string& path, fallback_entry& e) {
    auto one = [&](const YAML::Node& t, const std::string& p) {
      if (!t.IsScalar()) fail(t, p, "expected a model group name");
      auto name = scalar(t, p);
      if (!name) return;  // os.environ/ not set: warned
      if (name->empty()) fail(t, p, "expected a model group name, got an empty string");
      e.to.push_back(*name);
      e.to_at.emplace_back(p, t);
    };
    if (!n || n.IsNull()) return;
    if (n.IsScalar()) return one(n, path);
    if (!n.IsSequence()) fail(n, path, "expected a list of model groups");
    for (std::size_t i = 0; i < n.size(); ++i) one(n[i], path + "[" + std::to_string(i) + "]");
  }

  /// LiteLLM's fallbacks: a list of single-key maps [{"gpt-4o": ["claude", "gpt-3.5"]}];
  /// a map {"gpt-4o": ["claude"]} and a single name as the value are accepted too.
  fallback_entries fallback_list(const YAML::Node& n, const std::string& path) {
    fallback_entries out;
    if (!n || n.IsNull()) return out;
    auto add_map = [&](const YAML::Node& m, const std::string& p) {
      for (auto it = m.begin(); it != m.end(); ++it) {
        fallback_entry e;
        e.from_node = it->first;
        if (!e.from_node.IsScalar() || e.from_node.Scalar().empty())
          fail(e.from_node, p, "expected a model group name as the key");
        e.from = e.from_node.Scalar();
        e.path = p + "." + e.from;
        fallback_targets(it->second, e.path, e);
        out.push_back(std::move(e));
      }
    };
    if (n.IsMap()) {
      add_map(n, path);
    } else if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) {
        auto p = path + "[" + std::to_string(i) + "]";
        if (!n[i].IsMap()) fail(n[i], p, "expected a mapping {model group: [fallback groups]}");
        add_map(n[i], p);
      }
    } else {
      fail(n, path, "expected a list of {model group: [fallback groups]}");
    }
    return out;
  }

  /// default_fallbacks: a list of model groups (or one name), for every group.
  fallback_entries default_fallback_list(const YAML::Node& n, const std::string& path) {
    fallback_entry e;
    e.path = path;
    fallback_targets(n, path, e);
    return {std::move(e)};
  }

  /// Whether `name` reaches a model group of model_list the way the gateway resolves a
  /// requested model: an exact model_name, else a model_name ending in '*' whose prefix
  /// `name` starts with (and is longer than).
  bool group_exists(const std::string& name) const {
    for (const auto& d : cfg_.model_list)
      if (d.model_name == name) return true;
    for (const auto& d : cfg_.model_list) {
      const auto& m = d.model_name;
      if (!m.empty() && m.back() == '*' && name.size() > m.size() - 1 &&
          name.compare(0, m.size() - 1, m, 0, m.size() - 1) == 0)
        return true;
    }
    return false;
  }

  /// Fallbacks from router_settings, else litellm_settings (per kind, as LiteLLM: the
  /// router's own setting wins); every target must be a model group, no group may fall
  /// back to itself; a source group that does not exist is only warned about.
  void finish_fallbacks() {
    auto& r = cfg_.router;
    auto chosen = [&](const char* key) -> const fallback_entries* {
      if (auto it = router_fallbacks_.find(key); it != router_fallbacks_.end()) return &it->second;
      if (auto it = litellm_fallbacks_.find(key); it != litellm_fallbacks_.end()) return &it->second;
      return nullptr;
    };
    auto check = [&](const fallback_entries& es) {
      for (const auto& e : es) {
        if (!e.from.empty() && !group_exists(e.from))
          warn(e.path, e.path + ": '" + e.from + "' is not a model group of model_list (its fallbacks never apply)");
        for (std::size_t i = 0; i < e.to.size(); ++i) {
          const auto& [p, node] = e.to_at[i];
          if (!e.from.empty() && e.to[i] == e.from)
            fail(node, p, "model group '" + e.from + "' cannot fall back to itself");
          if (!group_exists(e.to[i]))
            fail(node, p, "fallback target '" + e.to[i] + "' is not a model group of model_list");
        }
      }
    };
    auto take = [&](const char* key, fallback_map& dst) {
      const auto* es = chosen(key);
      if (!es) return;
      check(*es);
      dst.clear();
      for (const auto& e : *es) dst.emplace_back(e.from, e.to);
    };
    take("fallbacks", r.fallbacks);
    take("context_window_fallbacks", r.context_window_fallbacks);
    take("content_policy_fallbacks", r.content_policy_fallbacks);
    if (const auto* es = chosen("default_fallbacks")) {
      check(*es);
      r.default_fallbacks.clear();
      for (const auto& e : *es) r.default_fallbacks.insert(r.default_fallbacks.end(), e.to.begin(), e.to.end());
    }
  }

  /// A port: an integer from 1 to 65535 (also when it comes from os.environ/).
  int port_of(const YAML::Node& n, const std::string& path) {
    auto s = scalar(n, path);
    if (!s) return 6379;
    auto x = parse_int(*s);
    if (!x || *x < 1 || *x > 65535) fail(n, path, "expected a port from 1 to 65535, got '" + display(n, *s) + "'");
    return static_cast<int>(*x);
  }

  /// %XX escapes in the user and password of a URL (as redis-py unquotes them).
  static std::optional<std::string> percent_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '%') {
        out += s[i];
        continue;
      }
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        return std::nullopt;
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    }
    return out;
  }

  /// ssl_cert_reqs as redis-py takes it: none (no verification), optional or required.
  void cert_reqs(redis_settings& r, const std::string& v, const YAML::Node& n, const std::string& path) {
    std::string l = to_lower(v);
    if (l == "none" || l == "cert_none") r.tls_verify = false;
    else if (l == "required" || l == "optional" || l == "cert_required" || l == "cert_optional") r.tls_verify = true;
    else fail(n, path, "ssl_cert_reqs must be none, optional or required, got '" + v + "'");
  }

  /// redis[s]://[user[:password]@]host[:port][/db][?ssl_cert_reqs=..&ssl_ca_certs=..];
  /// the host may be an [IPv6] literal.
  /// `n` is the node it came from (a null node for $REDIS_URL); the URL is never echoed
  /// (it may hold a password).
  redis_settings parse_redis_url(const std::string& url, const YAML::Node& n, const std::string& path) {
    redis_settings r;
    std::string rest;
    if (url.rfind("rediss://", 0) == 0) {
      rest = url.substr(9);
      r.tls = true;
    } else if (url.rfind("redis://", 0) == 0) {
      rest = url.substr(8);
    } else {
      fail(n, path, "expected redis[s]://[user[:password]@]host[:port][/db]");
    }
    if (auto q = rest.find('?'); q != std::string::npos) {
      std::string query = rest.substr(q + 1);
      rest = rest.substr(0, q);
      std::size_t pos = 0;
      while (pos <= query.size()) {
        auto amp = query.find('&', pos);
        std::string pair = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        pos = amp == std::string::npos ? query.size() + 1 : amp + 1;
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        auto key = pair.substr(0, eq);
        auto val = percent_decode(eq == std::string::npos ? std::string() : pair.substr(eq + 1));
        if (!val) fail(n, path, "invalid %-escape in the Redis URL's query");
        if (key == "ssl_cert_reqs") cert_reqs(r, *val, n, path);
        else if (key == "ssl_ca_certs") r.tls_ca_file = *val;
        else if (key == "ssl") {
          auto b = bool_word(*val);
          if (!b) fail(n, path, "the Redis URL's ssl option must be true or false, got '" + *val + "'");
          r.tls = *b;
        }
        // Other redis-py options (timeouts, health checks) have their own settings here.
      }
    }
    auto at = rest.rfind('@');
    if (at != std::string::npos) {
      auto cred = rest.substr(0, at);
      rest = rest.substr(at + 1);
      auto colon = cred.find(':');
      auto user = colon == std::string::npos ? std::string() : cred.substr(0, colon);
      auto pass = colon == std::string::npos ? cred : cred.substr(colon + 1);
      auto u = percent_decode(user), pw = percent_decode(pass);
      if (!u || !pw) fail(n, path, "invalid %-escape in the Redis URL's user or password");
      r.username = *u;
      r.password = *pw;
    }
    auto slash = rest.find('/');
    if (slash != std::string::npos) {
      auto db = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
      if (!db.empty()) {
        auto v = parse_int(db);
        if (!v || *v < 0 || *v > std::numeric_limits<int>::max())
          fail(n, path, "invalid database number '" + db + "' in the Redis URL");
        r.db = static_cast<int>(*v);
      }
    }
    std::string port;
    if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
      auto close = rest.find(']');
      if (close == std::string::npos) fail(n, path, "unclosed [ in the Redis URL's host");
      if (close + 1 < rest.size()) {
        if (rest[close + 1] != ':') fail(n, path, "expected :port after the Redis URL's [host]");
        port = rest.substr(close + 2);
        if (port.empty()) fail(n, path, "invalid port in the Redis URL");
      }
      rest = rest.substr(1, close - 1);
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) fail(n, path, "invalid port in the Redis URL");
      rest = rest.substr(0, colon);
    }
    if (!port.empty()) {
      auto v = parse_int(port);
      if (!v || *v < 1 || *v > 65535) fail(n, path, "invalid port '" + port + "' in the Redis URL");
      r.port = static_cast<int>(*v);
    }
    if (rest.empty()) fail(n, path, "the Redis URL has no host");
    r.host = rest;
    return r;
  }

  /// litellm_settings.cache_params: the Redis part (type redis, or no type but a host or
  /// url) is a candidate for the shared Redis; the rest belongs to the response cache,
  /// which is not implemented yet (warned).
  void read_cache_params(const YAML::Node& n, const std::string& path) {
    require_map(n, path);
    if (n.IsNull()) return;
    std::string type;
    redis_settings r, tls_opts;
    std::optional<redis_settings> from_url;
    std::optional<bool> ssl;
    bool reqs_set = false;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.as<std::string>();
      std::string kp = path + "." + k;
      const YAML::Node v = it->second;
      if (k == "type") type = scalar(v, kp).value_or("");
      else if (k == "host") r.host = scalar(v, kp).value_or("");
      else if (k == "port") r.port = port_of(v, kp);
      else if (k == "password") r.password = scalar(v, kp).value_or("");
      else if (k == "username") r.username = scalar(v, kp).value_or("");
      else if (k == "db") {
        if (auto x = int_value(v, kp)) r.db = *x;
      } else if (k == "url" || k == "redis_url") {
        if (auto u = scalar(v, kp); u && !u->empty()) from_url = parse_redis_url(*u, v, kp);
      } else if (k == "ssl") {
        if (auto x = boolean(v, kp)) ssl = *x;
      } else if (k == "ssl_cert_reqs") {
        if (auto x = scalar(v, kp)) cert_reqs(tls_opts, *x, v, kp), reqs_set = true;
      } else if (k == "ssl_ca_certs") {
        tls_opts.tls_ca_file = scalar(v, kp).value_or("");
      } else {
        warn_later(kp);
      }
    }
    if (from_url) r = *from_url;  // a URL says it all (as redis-py's from_url), but for TLS options
    if (ssl) r.tls = *ssl;
    if (reqs_set) r.tls_verify = tls_opts.tls_verify;
    if (!tls_opts.tls_ca_file.empty()) r.tls_ca_file = tls_opts.tls_ca_file;
    if ((type == "redis" || type.empty()) && !r.host.empty()) {
      r.from = "litellm_settings.cache_params";
      cache_redis_ = r;
    }
  }

  void finish_redis() {
    finish_redis_source();
    auto& out = cfg_.router.redis;
    if (const char* v = std::getenv("REDIS_SSL"); v && *v) {
      auto b = bool_word(v);
      if (!b) throw invalid{source_ + ": $REDIS_SSL: expected true or false, got '" + std::string(v) + "'"};
      out.tls = *b;
    }
    if (const char* v = std::getenv("REDIS_SSL_CERT_REQS"); v && *v) cert_reqs(out, v, YAML::Node(), "$REDIS_SSL_CERT_REQS");
    if (const char* v = std::getenv("REDIS_SSL_CA_CERTS"); v && *v) out.tls_ca_file = v;
  }

  void finish_redis_source() {
    auto& out = cfg_.router.redis;
    if (router_redis_url_) {
      out = parse_redis_url(router_redis_url_->first, router_redis_url_->second, "router_settings.redis_url");
      out.from = "router_settings.redis_url";
      return;
    }
    if (!router_redis_.host.empty()) {
      out = router_redis_;
      out.from = "router_settings.redis_host";
      return;
    }
    if (cache_redis_) {
      out = *cache_redis_;
      return;
    }
    if (const char* u = std::getenv("REDIS_URL"); u && *u) {
      out = parse_redis_url(u, YAML::Node(), "$REDIS_URL");
      out.from = "$REDIS_URL";
      return;
    }
    if (const char* h = std::getenv("REDIS_HOST"); h && *h) {
      out.host = h;
      if (const char* p = std::getenv("REDIS_PORT"); p && *p) {
        auto v = parse_int(p);
        if (!v || *v < 1 || *v > 65535)
          throw invalid{source_ + ": $REDIS_PORT: expected a port from 1 to 65535, got '" + std::string(p) + "'"};
        out.port = static_cast<int>(*v);
      }
      if (const char* p = std::getenv("REDIS_PASSWORD")) out.password = p;
      if (const char* p = std::getenv("REDIS_USERNAME")) out.username = p;
      if (const char* p = std::getenv("REDIS_DB"); p && *p) {
        auto v = parse_int(p);
        if (!v || *v < 0 || *v > std::numeric_limits<int>::max())
          throw invalid{source_ + ": $REDIS_DB: expected a database number, got '" + std::string(p) + "'"};
        out.db = static_cast<int>(*v);
      }
      out.from = "$REDIS_HOST";
    }
  }

  std::string source_;
  gateway_config cfg_;
  std::set<std::string> warned_;
  /// Fallback lists by kind ("fallbacks", ..., "default_fallbacks") as each section wrote them.
  std::map<std::string, fallback_entries> router_fallbacks_;
  std::map<std::string, fallback_entries> litellm_fallbacks_;
  redis_settings router_redis_;
  std::optional<std::pair<std::string, YAML::Node>> router_redis_url_;
  std::optional<redis_settings> cache_redis_;
};

load_result load_node(const YAML::Node& root, std::string_view source) {
  try {
    loader l{std::string(source)};
    return l.run(root);
  } catch (const invalid& e) {
    return config_error{e.message};
  } catch (const YAML::Exception& e) {
    std::ostringstream m;
    m << source;
    if (e.mark.line >= 0) m << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    m << ": " << e.msg;
    return config_error{m.str()};
  }
}

}  // namespace

load_result load_string(std::string_view yaml, std::string_view source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    std::ostringstream m;
    m << source_name;
    if (e.mark.line >= 0) m << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    m << ": invalid YAML: " << e.msg;
    return config_error{m.str()};
  }
  return load_node(root, source_name);
}

load_result load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return config_error{path + ": cannot open the config file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), path);
}

}  // namespace gw::config
