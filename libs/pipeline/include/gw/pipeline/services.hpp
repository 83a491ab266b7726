#pragma once
/// What every stage of the request pipeline may use: the config, the model registry,
/// metrics, accounts, limits, tracing. Built once at start and read-only after
/// (thread-safe); the services themselves are thread-safe or per io thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "gw/accounts/accounts.hpp"
#include "gw/config/config.hpp"
#include "gw/routing/registry.hpp"
#include "gw/routing/retry_state.hpp"
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
namespace gw::routing {
class outcome_batcher;
}

namespace gw::pipeline {

/// Counters of the routing layer (all io threads).
struct routing_counters {
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> fallbacks{0};
  std::atomic<std::uint64_t> fallback_failures{0};  ///< every fallback failed too
};

struct services {
  const config::gateway_config* cfg = nullptr;
  routing::model_registry* registry = nullptr;
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
  std::vector<routing::outcome_batcher*> batchers;
  /// Virtual keys, budgets and spend (always set in the running gateway).
  accounts::service* accounts = nullptr;
  /// Rate limits (always set in the running gateway; null in unit tests).
  limits::rate_limiter* limiter = nullptr;
  routing_counters* routing = nullptr;
  routing::retry_settings retry;
  bool fetch_image_urls = false;           ///< gateway_settings.fetch_image_urls (Bedrock)
  bool image_fetch_allow_private = false;  ///< gateway_settings.image_fetch_allow_private
  /// Clients may send the testing controls (mock_response, mock_testing_*, mock_timeout).
  bool allow_mock_params = true;
  /// Spend-log rows keep the client's body as sent (store_prompts_in_spend_logs).
  bool store_prompts = false;
  /// How budgets admit a request (gateway_settings.budget_enforcement).
  accounts::budget_mode budgets = accounts::budget_mode::spend;
  /// token_rate_limit_type for key, user and team tpm: 0 total, 1 input, 2 output.
  int token_rate_limit_type = 2;
  /// Traces (null: tracing off; no record is built).
  tracing::trace_pipeline* tracing = nullptr;
  std::string node_id;
};

}  // namespace gw::pipeline
