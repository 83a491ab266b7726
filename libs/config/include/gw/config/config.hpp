#pragma once
/// The gateway's configuration, read from LiteLLM's config.yaml format.
/// Immutable once loaded; shared read-only by every thread (thread-safe).

#include <cstddef>
#include <cstdint>
#include <map>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace gw::config {

/// Where a value sits in the YAML file (1-based; 0 = unknown, e.g. embedded default).
struct source_location {
  int line = 0;
  int column = 0;
};

/// One entry of `model_list`: a deployment of a model group.
struct deployment {
  std::string model_name;       ///< the model group clients ask for ("gpt-4o", or "*")
  std::string model;            ///< litellm_params.model as written, e.g. "openai/gpt-4o"
  std::string provider;         ///< part before the first '/', lower-case; "openai" if none
  std::string upstream_model;   ///< part after the first '/' (what the provider is sent)
  std::string api_base;         ///< resolved; empty = the provider's default
  std::string api_key;          ///< resolved; empty = none
  std::string api_version;
  std::optional<double> timeout;         ///< seconds, whole request
  std::optional<double> stream_timeout;  ///< seconds, between stream chunks
  std::optional<std::int64_t> rpm;
  std::optional<std::int64_t> tpm;
  std::optional<int> max_retries;
  std::optional<int> num_retries;        ///< litellm_params.num_retries: this deployment's retries
  std::optional<std::int64_t> max_parallel_requests;
  std::optional<double> weight;
  /// model_info.id if given, else a stable id derived from the entry's content.
  std::string id;
  /// Every scalar in litellm_params, resolved (os.environ/... replaced), as text,
  /// including the ones above; lists and maps as compact JSON text.
  std::map<std::string, std::string> params;
  /// Same for model_info (mode, base_model, input_cost_per_token, ...).
  std::map<std::string, std::string> model_info;
  source_location where;
};

/// general_settings: the parts the gateway reads.
struct general_settings {
  std::string master_key;     ///< general_settings.master_key, else $LITELLM_MASTER_KEY
  std::string database_url;   ///< general_settings.database_url, else $DATABASE_URL
  std::size_t max_request_size_bytes = 32u * 1024u * 1024u;  ///< max_request_size_mb
  int database_connection_pool_limit = 4;  ///< database connections for admin work
  int spend_logs_retention_days = 30;      ///< maximum_spend_logs_retention_period ("30d")
  /// token_rate_limit_type: which tokens count against tpm limits of keys, users and
  /// teams: "output" (LiteLLM's default when unset), "input" or "total".
  std::string token_rate_limit_type = "output";
  /// store_prompts_in_spend_logs: each spend-log row keeps the client's body as sent
  /// (LiteLLM's proxy_server_request).
  bool store_prompts_in_spend_logs = false;
};

/// Where the shared Redis is (rate-limit counters; later the cache). Taken from, in
/// order: router_settings.redis_url / redis_host (+ redis_port, redis_password,
/// redis_username, redis_db), litellm_settings.cache_params when its type is redis
/// (host, port, password, username, db, or url), then $REDIS_URL or $REDIS_HOST
/// (+ $REDIS_PORT, $REDIS_PASSWORD, $REDIS_USERNAME, $REDIS_DB). $REDIS_SSL,
/// $REDIS_SSL_CERT_REQS and $REDIS_SSL_CA_CERTS apply to whichever source won.
struct redis_settings {
  std::string host;  ///< empty: no Redis (limits count on this node only)
  int port = 6379;
  std::string username;
  std::string password;
  int db = 0;
  /// TLS (rediss://, cache_params ssl: true, or $REDIS_SSL): certificate and host name
  /// verified against the system's CAs or `tls_ca_file` unless ssl_cert_reqs is none.
  bool tls = false;
  bool tls_verify = true;
  std::string tls_ca_file;  ///< ssl_ca_certs / $REDIS_SSL_CA_CERTS
  std::string from;  ///< which of the above it came from, for the start-up log
  bool configured() const noexcept { return !host.empty(); }
};

/// litellm_settings: the parts the gateway reads.
struct litellm_settings {
  double request_timeout = 600;   ///< seconds; default for deployments without `timeout`
  int num_retries = 0;
  bool drop_params = false;
  std::vector<std::string> success_callback;
  std::vector<std::string> failure_callback;
  std::vector<std::string> callbacks;
  std::string timezone = "UTC";   ///< IANA zone budget periods align to (midnight, Monday, the 1st)
  /// No prompt or response content in any trace, log or stored record (LiteLLM's
  /// redaction switch for every callback).
  bool turn_off_message_logging = false;
};

/// LiteLLM's error classes for retry_policy and allowed_fails_policy. A failed attempt is
/// one of these (or none: 403, 404, connection errors and other statuses keep the
/// defaults): 400 bad_request (a context-length error too), 401 authentication,
/// 408/timeouts timeout, 429 rate_limit, a content-filter refusal content_policy,
/// 500 internal_server, 503 service_unavailable.
enum class error_class { bad_request, authentication, timeout, rate_limit, content_policy, internal_server,
                         service_unavailable, none };
inline constexpr std::size_t k_error_classes = 7;

/// LiteLLM's class name (BadRequestError, …) of an error class; "" for none.
constexpr const char* error_class_name(error_class c) {
  switch (c) {
    case error_class::bad_request: return "BadRequestError";
    case error_class::authentication: return "AuthenticationError";
    case error_class::timeout: return "TimeoutError";
    case error_class::rate_limit: return "RateLimitError";
    case error_class::content_policy: return "ContentPolicyViolationError";
    case error_class::internal_server: return "InternalServerError";
    case error_class::service_unavailable: return "ServiceUnavailableError";
    case error_class::none: break;
  }
  return "";
}

/// Per error class counts: `retry_policy` (BadRequestErrorRetries, …) or
/// `allowed_fails_policy` (BadRequestErrorAllowedFails, …). Unset classes keep the
/// default (num_retries / allowed_fails).
struct error_class_counts {
  std::array<std::optional<int>, k_error_classes> n{};
  bool any() const noexcept {
    for (auto& x : n)
      if (x) return true;
    return false;
  }
  std::optional<int> get(error_class c) const noexcept {
    return c == error_class::none ? std::nullopt : n[static_cast<std::size_t>(c)];
  }
};

/// router_settings: the parts the gateway reads.
struct router_settings {
  std::string routing_strategy = "simple-shuffle";
  std::optional<int> num_retries;
  std::optional<double> timeout;
  std::optional<double> stream_timeout;
  int allowed_fails = 3;
  /// retry_policy: retries per error class, instead of num_retries (and the request's
  /// own num_retries); a class with a count is retried even when it is a 400 or 401, as
  /// LiteLLM does. model_group_retry_policy: the same per model group (wins).
  error_class_counts retry_policy;
  std::vector<std::pair<std::string, error_class_counts>> model_group_retry_policy;
  /// allowed_fails_policy: failures per minute of one class before a cooldown,
  /// instead of allowed_fails, for that class.
  error_class_counts allowed_fails_policy;
  double cooldown_time = 5;
  bool disable_cooldowns = false;
  /// Minimum seconds before a retry (LiteLLM's retry_after); backoff grows from here.
  double retry_after = 0;
  int max_fallbacks = 5;
  /// Fallbacks, as LiteLLM reads them from router_settings or litellm_settings (the
  /// router's win when both set one): model group -> groups to try, in order.
  /// `fallbacks` after retries fail (429, 5xx, timeouts, connection errors);
  /// `context_window_fallbacks` on a context-length error; `content_policy_fallbacks`
  /// on a content-policy refusal; `default_fallbacks` for groups without their own.
  std::vector<std::pair<std::string, std::vector<std::string>>> fallbacks;
  std::vector<std::pair<std::string, std::vector<std::string>>> context_window_fallbacks;
  std::vector<std::pair<std::string, std::vector<std::string>>> content_policy_fallbacks;
  std::vector<std::string> default_fallbacks;
  redis_settings redis;
};

/// gateway_settings: our own section (LiteLLM has no equivalent keys); all optional.
struct gateway_settings {
  int io_threads = 0;                      ///< 0 = one per usable CPU (affinity, cgroup quota)
  int actor_threads = 0;                   ///< 0 = chosen from io_threads
  std::size_t max_connections = 20000;     ///< concurrent client connections
  std::size_t max_header_bytes = 64 * 1024;
  double keepalive_timeout = 75;           ///< idle keep-alive connection, seconds
  double request_read_timeout = 60;        ///< whole request (headers + body), seconds
  double header_read_timeout = 30;         ///< a request's head, once begun, seconds (then 408)
  /// Request bodies all connections may hold at once (then 503), bytes.
  std::size_t max_request_bytes_in_flight = std::size_t{1} << 30;
  double connect_timeout = 10;             ///< upstream TCP + TLS connect, seconds
  double drain_timeout = 30;               ///< SIGTERM: wait this long for in-flight work
  std::size_t upstream_max_idle_per_host = 256;  ///< per io thread
  double upstream_idle_timeout = 30;       ///< close idle upstream connections after, seconds
  std::string price_file;                  ///< LiteLLM-format price JSON merged over the built-in table
  double spend_flush_interval = 1;         ///< seconds between spend batches to the database
  double budget_lease_ttl = 60;            ///< seconds a node's unspent budget slice stays reserved
  double budget_slice_fraction = 0.05;     ///< a slice is this share of max_budget (at least $0.000001)
  std::string spend_spool_path;            ///< where unwritten spend waits; default in $TMPDIR
  bool budget_reset_calendar = true;       ///< day/week/month budgets end on calendar boundaries (LiteLLM's rule)
  double rate_limit_window = 60;           ///< seconds: what "per minute" means for rpm/tpm (tests shorten it)
  int rate_limit_buckets = 60;             ///< sub-buckets of the sliding window (1..3600)
  double redis_timeout = 0.1;              ///< seconds a limit check may wait for Redis before deciding locally
  /// This node's share of a cluster limit while Redis is away: 0 = 1 / live nodes
  /// (as last seen in Redis), else a fraction in (0, 1].
  double rate_limit_local_share = 0;
  bool rate_limit_precheck = true;         ///< refuse known-over scopes without asking Redis
  double retry_backoff_base = 0.25;        ///< seconds: first retry's backoff (doubles, with jitter)
  double retry_backoff_max = 8;            ///< seconds: backoff cap
  double retry_after_max = 30;             ///< seconds: an upstream retry-after longer than this is not waited for
  /// Bedrock takes images inline only: fetch http(s) image URLs of chat requests for
  /// it (off by default: the gateway would fetch URLs its clients choose).
  bool fetch_image_urls = false;
  /// Also fetch from loopback, private and link-local addresses named literally (off:
  /// such URLs are refused, so that a client cannot reach instance metadata or
  /// internal services through the gateway).
  bool image_fetch_allow_private = false;
  /// How budgets admit a request: "spend" (LiteLLM's rule made exact across the cluster:
  /// admitted while spend plus what is in flight, each request at its estimate, is below
  /// the budget) or "strict" (a hard ceiling: the request's worst case must fit).
  std::string budget_enforcement = "spend";
  /// Clients may send the testing controls (mock_response, mock_testing_*, mock_timeout);
  /// general_settings.dangerously_allow_mock_testing_request_params (LiteLLM's) sets it too.
  bool allow_client_mock_params = true;

  // Tracing (docs/tracing.md). Exporters come from litellm_settings callbacks and the
  // OTEL_* / LANGFUSE_* environment.
  /// GET /traces: in PostgreSQL (on by default with a database); true without a
  /// database keeps the last trace_memory_records requests in memory.
  std::optional<bool> trace_store;
  std::string trace_store_bodies = "truncated";  ///< full | truncated | off
  std::size_t trace_body_max_bytes = 16 * 1024;  ///< per body in truncated mode
  int trace_retention_days = 30;           ///< trace store partitions older are dropped (0: keep)
  std::size_t trace_memory_records = 1000; ///< without a database: the last N requests
  /// Prompt and response content on OTLP spans (also $OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT).
  bool otel_capture_content = false;
  /// Langfuse gets input and output (off: metadata only; turn_off_message_logging wins).
  bool langfuse_capture_content = true;
  std::size_t trace_capture_max_bytes = 1024 * 1024;  ///< per body, what the request path keeps for exporters
  bool request_log = false;                ///< one JSON line per request on stdout
  bool request_log_content = false;        ///< ... with the request and response bodies
  std::size_t trace_batch_size = 512;
  std::size_t trace_queue_size = 20000;    ///< records per exporter waiting; beyond, the oldest drop
  double trace_flush_interval = 1;         ///< seconds
  double trace_export_timeout = 10;        ///< seconds per export call
  int trace_export_max_attempts = 5;
};

/// A whole loaded configuration.
struct gateway_config {
  std::vector<deployment> model_list;
  general_settings general;
  litellm_settings litellm;
  router_settings router;
  gateway_settings gateway;
  std::map<std::string, std::string> environment_variables;
  /// One line per key that is accepted but not implemented (or unknown), and per
  /// os.environ/NAME that is not set. The caller logs them once at start.
  std::vector<std::string> warnings;
  std::string source;  ///< file path, or "<embedded default>"
};

/// An invalid config: `message` names the file, line, column and YAML path, e.g.
/// "conf.yaml:12:7: model_list[1].litellm_params.rpm: expected an integer, got 'ten'".
struct config_error {
  std::string message;
};

using load_result = std::variant<gateway_config, config_error>;

/// Loads a config file. Applies `environment_variables` to the process environment
/// (overriding), then resolves every `os.environ/NAME` scalar anywhere in the document.
load_result load_file(const std::string& path);
/// Same from text; `source_name` is used in messages and `gateway_config::source`.
load_result load_string(std::string_view yaml, std::string_view source_name);

/// The embedded default: one model group served by the built-in mock provider whose
/// base URL is read from $GW_EMBEDDED_MOCK_BASE (set by the gateway before loading).
std::string_view embedded_default_yaml();

/// Loads a .env file into the process environment without overriding variables
/// already set (python-dotenv's default). Accepts `KEY=VALUE`, `export KEY=VALUE`,
/// single/double quotes, `#` comments, blank lines. Returns false with `err` set
/// (file:line: reason) on a malformed line; a missing file is `missing=true`, not an error.
bool load_env_file(const std::string& path, std::string& err, bool& missing);

}  // namespace gw::config
