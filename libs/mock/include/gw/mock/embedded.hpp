#pragma once
/// The built-in mock provider that serves the gateway's embedded default config (no
/// --config): all the production binary needs from libs/mock. Thread-safe.

#include <cstdint>
#include <memory>

namespace gw::mock {

class server;

class embedded_provider {
 public:
  /// Starts the mock provider on 127.0.0.1, an ephemeral port, one io thread. Throws
  /// std::runtime_error when it cannot.
  static std::unique_ptr<embedded_provider> start();
  ~embedded_provider();  ///< stops it
  embedded_provider(const embedded_provider&) = delete;
  embedded_provider& operator=(const embedded_provider&) = delete;

  /// The port it listens on.
  std::uint16_t port() const;
  /// Stops and joins; idempotent.
  void stop();

 private:
  explicit embedded_provider(std::unique_ptr<server> s);
  std::unique_ptr<server> server_;
};

}  // namespace gw::mock
