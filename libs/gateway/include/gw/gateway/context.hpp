#pragma once
/// What the request path needs to know, built once at start and read-only after
/// (thread-safe).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "gw/accounts/accounts.hpp"
#include "gw/config/config.hpp"
#include "gw/gateway/runtime.hpp"
#include "gw/telemetry/metrics.hpp"

namespace gw::http {
class server;
}
namespace gw::limits {
class rate_limiter;
}
namespace gw::tracing {
class trace_pipeline;
}

namespace gw::gateway {

class outcome_batcher;

/// Counters of the routing layer (all io threads).
struct routing_counters {
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> fallbacks{0};
  std::atomic<std::uint64_t> fallback_failures{0};  ///< every fallback failed too
};

struct gateway_context {
  const config::gateway_config* cfg = nullptr;
  model_registry* registry = nullptr;
  telemetry::metrics* metrics = nullptr;
  http::server* server = nullptr;
  std::string master_key;  ///< empty: model routes are open
  std::chrono::milliseconds connect_timeout{10'000};
  std::size_t max_response_bytes = 256u * 1024u * 1024u;
  std::size_t max_sse_event_bytes = 16u * 1024u * 1024u;
  std::size_t relay_buffer_bytes = 8192;  ///< initial per-stream buffer; grows on demand
  std::size_t upstream_header_limit = 64 * 1024;
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  /// One per io thread (by io_thread::index()); each used only by its thread.
  std::vector<outcome_batcher*> batchers;
  /// Virtual keys, budgets and spend (always set in the running gateway).
  accounts::service* accounts = nullptr;
  /// Rate limits (always set in the running gateway; null in unit tests).
  limits::rate_limiter* limiter = nullptr;
  routing_counters* routing = nullptr;
  // Retries (gateway_settings / router_settings).
  std::chrono::milliseconds retry_backoff_base{250};
  std::chrono::milliseconds retry_backoff_max{8000};
  std::chrono::milliseconds retry_after_min{0};   ///< router_settings.retry_after
  std::chrono::milliseconds retry_after_max{30000};
  int max_fallbacks = 5;
  bool fetch_image_urls = false;           ///< gateway_settings.fetch_image_urls (Bedrock)
  bool image_fetch_allow_private = false;  ///< gateway_settings.image_fetch_allow_private
  /// token_rate_limit_type for key, user and team tpm: 0 total, 1 input, 2 output.
  int token_rate_limit_type = 2;
  /// Traces (null: tracing off; no record is built).
  tracing::trace_pipeline* tracing = nullptr;
  std::string node_id;
};

}  // namespace gw::gateway
