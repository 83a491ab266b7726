#pragma once
/// What the request path needs to know, built once at start and read-only after
/// (thread-safe).

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

namespace gw::gateway {

class outcome_batcher;

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
};

}  // namespace gw::gateway
