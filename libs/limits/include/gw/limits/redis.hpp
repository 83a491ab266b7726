#pragma once
/// Cluster-wide limits in Redis: one Lua script per request checks and counts every
/// scope atomically (all-or-nothing), on Redis's own clock (TIME), with the same
/// conservative sliding window as local_limiter. One `redis_limiter` per io thread, on
/// that thread's io_context (a gw::redis::connection: commands pipelined on one
/// connection); every callback runs on that io thread. io-thread owned.
///
/// Keys (one Redis hash slot, so the multi-key script also runs on Redis Cluster):
///   <prefix>:w:<scope id>  hash: request and token counts per sub-bucket, plus totals
///   <prefix>:p:<scope id>  hash: in-flight count per "<node>/<thread>" (absolute values
///                          written by their owner, so a lost release heals itself)
///   <prefix>:nodes         sorted set: node id -> last heartbeat (ms, Redis time); a
///                          parallel count of a node silent for 10 s is dropped
/// Every key expires (PEXPIRE) after 2 windows without use.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>

#include "gw/limits/limits.hpp"
#include "gw/redis/settings.hpp"

namespace gw::limits {

/// The connection (host, port, AUTH, db, TLS, timeouts, backoff: gw::redis::settings;
/// `timeout`: a command not answered within it fails, the caller falls back to local
/// limits, and the connection is down until it answers again) and the limiter's own.
struct redis_settings : redis::settings {
  std::chrono::milliseconds heartbeat{1'000};
  std::string node_id;      ///< unique per process (required)
  std::size_t thread = 0;   ///< io thread index (the parallel field is "<node>/<thread>")
  std::string prefix = "{llm-gateway}";  ///< hash tag: every key in one slot
  window_settings window;
  /// The local pre-check: a scope refused by Redis is refused here until its retry time
  /// without a round trip. false only to measure what it saves.
  bool precheck = true;
};

/// Connection state as the gateway reports it.
struct redis_status {
  bool up = false;               ///< connected, script loaded, last command answered in time
  std::size_t live_nodes = 1;    ///< nodes with a heartbeat in the last 10 s (>= 1)
  std::uint64_t commands = 0, failures = 0, timeouts = 0, reconnects = 0, prechecked = 0;
};

class redis_limiter {
 public:
  redis_limiter(boost::asio::io_context& io, redis_settings s);
  ~redis_limiter();
  redis_limiter(const redis_limiter&) = delete;
  redis_limiter& operator=(const redis_limiter&) = delete;

  /// Connects (asynchronously; reconnects with backoff for ever) and starts the heartbeat.
  void start();
  /// Closes the connection; pending callbacks get std::nullopt. Call on the io thread.
  void stop();

  /// The local pre-check only: a refusal if some scope is known to be over its limit
  /// now (refused by Redis before, its retry time not reached), else nullopt.
  std::optional<decision> precheck(const std::vector<scope>& scopes);

  /// The cluster-wide acquire (local_limiter::acquire's semantics; `scopes` copied as
  /// needed). `cb` runs once on the io thread: the decision, or std::nullopt when Redis
  /// is down, slow (timeout) or answered an error: then the caller decides locally.
  /// When down, cb(nullopt) is posted at once, without a round trip.
  using callback = std::function<void(std::optional<decision>)>;
  void acquire(const std::vector<scope>& scopes, callback cb);

  /// A request admitted by acquire() finished: its in-flight counts drop, each scope's
  /// usage.of(scope.counts) is added to its tpm window. Fire and forget; returns false
  /// when Redis is down (nothing sent: the caller adds the tokens locally); the in-flight
  /// fields are rewritten when Redis returns.
  bool release(const std::vector<scope>& scopes, const token_usage& usage);

  bool up() const noexcept;
  redis_status status() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::limits
