#pragma once
/// The running gateway: io threads, the HTTP server, the actor system with one
/// actor per deployment, the rate limiter (and its Redis connections), and metrics. Built from a
/// loaded config; start() binds, drain() finishes in-flight work.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gw/config/config.hpp"

namespace gw::gateway {

struct app_options {
  std::string host = "0.0.0.0";
  std::uint16_t port = 4000;
  int io_threads = 0;     ///< 0: from the config, else one per core
  int actor_threads = 0;  ///< 0: from the config, else chosen from io_threads
  bool offline = false;   ///< validate only: keys in memory, no database connection
};

class app {
 public:
  /// `cfg` must outlive the app. Deployments that cannot serve add to `warnings`.
  app(const config::gateway_config& cfg, app_options opts, std::vector<std::string>& warnings);
  ~app();
  app(const app&) = delete;
  app& operator=(const app&) = delete;

  /// Binds and starts serving. Throws std::runtime_error (e.g. port in use).
  void start();
  std::uint16_t port() const noexcept;
  std::size_t io_thread_count() const noexcept;
  std::size_t actor_thread_count() const noexcept;

  /// Stops accepting, lets in-flight requests (streams included) finish, up to
  /// `timeout`; returns the number of requests still running when it gave up.
  std::int64_t drain(std::chrono::milliseconds timeout);
  /// Stops threads and actors. Called by the destructor too.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::gateway
