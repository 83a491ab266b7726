#pragma once
/// Rate limits as the request path sees them: one call to acquire a request's scopes,
/// one to release them. Without Redis every node counts on its own (local_limiter);
/// with Redis each io thread asks Redis (one pipelined script call), refuses at once
/// what its pre-check knows to be over, and decides locally with this node's share of
/// each limit while Redis is away or slow. Thread-safe by construction: io thread i
/// only ever touches redis(i).

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <utility>  // before Asio
#include <boost/asio/io_context.hpp>

#include "gw/config/config.hpp"
#include "gw/limits/limits.hpp"
#include "gw/limits/local.hpp"
#include "gw/limits/redis.hpp"

namespace gw::limits {

class rate_limiter {
 public:
  /// `ios[i]` is io thread i's context. Redis is used when cfg.router.redis is set.
  rate_limiter(const config::gateway_config& cfg, const std::vector<boost::asio::io_context*>& ios,
               std::string node_id);
  ~rate_limiter();

  /// On io thread i: connects its Redis connection (once the io threads run).
  void start_on(std::size_t i);
  /// On io thread i: closes its connection (shutdown).
  void stop(std::size_t i);

  /// `done(decision, via_redis)` runs on io thread `i`, possibly before acquire returns.
  using done_fn = std::function<void(const decision&, bool via_redis)>;
  void acquire(std::size_t i, const std::vector<scope>& scopes, done_fn done);
  /// Releases what acquire admitted (the same scopes, and where it was decided).
  void release(std::size_t i, const std::vector<scope>& scopes, const token_usage& usage,
               bool via_redis);

  bool redis_configured() const noexcept { return !redis_.empty(); }
  /// Every io thread's connection is up (false when not configured).
  bool redis_up() const;
  std::size_t live_nodes() const;
  const window_settings& window() const noexcept { return window_; }
  /// Prometheus text for the limiter's gauges and counters.
  std::string metrics_text() const;

  /// Requests refused, by kind (requests, tokens, parallel).
  std::atomic<std::uint64_t> refused[3] = {};
  /// Decisions made locally because Redis was away or slow.
  std::atomic<std::uint64_t> fallback_decisions{0};

 private:
  double local_share() const;
  window_settings window_;
  double configured_share_ = 0;
  local_limiter local_;
  std::vector<std::unique_ptr<redis_limiter>> redis_;
};

}  // namespace gw::limits
