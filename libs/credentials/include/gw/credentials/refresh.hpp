#pragma once
/// What the credential providers share: when to refresh, how to retry, what to report.

#include <chrono>
#include <cstdint>
#include <string>

namespace gw::credentials {

/// When cached temporary credentials are refreshed and how failures are retried.
struct refresh_policy {
  /// Refresh this long before expiry ...
  std::chrono::seconds refresh_before{300};
  /// ... or, for lifetimes too short for that, at this fraction of the lifetime
  /// (the earlier of the two).
  double refresh_at_fraction = 0.8;
  /// current() stops handing out credentials this long before they expire (or 10% of
  /// the lifetime when shorter), so a request signed now is not sent expired.
  std::chrono::seconds expiry_margin{30};
  /// Background retries after a failed refresh: exponential from retry_min to
  /// retry_max, while the source has ever produced credentials.
  std::chrono::milliseconds retry_min{1000};
  std::chrono::milliseconds retry_max{60000};
  /// After a failure, get() calls fail at once with the last error for the same
  /// backoff, capped at this (so a broken source is not hammered by every request).
  std::chrono::milliseconds failure_cooldown_max{10000};
};

/// Counters and state for logs, health and metrics. Never holds secrets.
struct provider_stats {
  std::uint64_t requests = 0;    ///< resolutions started (each one or more network calls)
  std::uint64_t failures = 0;    ///< resolutions that failed
  std::uint64_t refreshes = 0;   ///< background refreshes started
  std::string source;            ///< where the cached value came from ("" = none yet)
  std::string last_error;        ///< of the last failed resolution ("" after a success)
  /// Expiry of the cached value (max() = never or none).
  std::chrono::system_clock::time_point expiration = std::chrono::system_clock::time_point::max();
  bool valid = false;            ///< current() would return a value
};

}  // namespace gw::credentials
