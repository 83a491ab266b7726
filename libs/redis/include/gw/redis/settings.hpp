#pragma once
/// What a gw::redis::connection connects to and how, and the counters it reports.

#include <chrono>
#include <cstdint>
#include <string>

namespace gw::redis {

struct settings {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string username;  ///< Redis 6 ACL user; empty: AUTH <password> only
  std::string password;  ///< empty: no AUTH
  int db = 0;            ///< SELECTed when not 0
  /// TLS through an in-process bridge: the certificate chain and `host` verified unless
  /// tls_verify is false.
  bool tls = false;
  bool tls_verify = true;
  std::string tls_ca_file;  ///< PEM CA bundle; empty: the system's
  /// A command not answered within this fails (std::nullopt) and drops the connection.
  std::chrono::milliseconds timeout{100};
  /// Connecting plus the handshake (AUTH, SELECT, the on_connect steps).
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds reconnect_min{100}, reconnect_max{5'000};  ///< backoff
  /// Appended to the log line of an outage, e.g. what the user does meanwhile.
  std::string outage_note;
};

/// Counters as the owner reports them (read from any thread).
struct connection_status {
  bool up = false;  ///< connected, handshake done, last command answered in time
  std::uint64_t commands = 0, failures = 0, timeouts = 0, reconnects = 0;
};

}  // namespace gw::redis
