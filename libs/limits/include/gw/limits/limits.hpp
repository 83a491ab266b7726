#pragma once
/// Rate limits: requests per window, tokens per window and requests in flight, for any
/// number of scopes at once (key, user, team, key x model, deployment), checked and
/// counted all-or-nothing.
///
/// Two implementations share these types and the same window semantics:
/// - `local_limiter` (local.hpp): one per process, thread-safe; the embedded default and
///   the fallback while Redis is away;
/// - `redis_limiter` (redis.hpp): one per io thread, cluster-wide through one Lua script
///   per request on a pipelined hiredis connection driven by that io thread's io_context.
///
/// Window: a *conservative sliding window*. The window (default 60 s) is cut into
/// `buckets` sub-buckets (default 60, so 1 s); a request at time t counts the bucket
/// holding t plus the `buckets` buckets before it. So at most `limit` requests are admitted
/// in ANY window-long interval (never more, unlike a fixed window or the two-window
/// estimate), and a refused caller may wait at most one bucket longer than strictly needed.

#include <cstdint>
#include <string>
#include <vector>

namespace gw::limits {

/// What a limit counts.
enum class kind : std::uint8_t { requests, tokens, parallel };

/// Which tokens a scope's tpm counts (general_settings.token_rate_limit_type for keys,
/// users and teams; deployments count all, as LiteLLM's router does).
enum class token_count : std::uint8_t { total, input, output };

/// A finished request's usage.
struct token_usage {
  std::int64_t input = 0, output = 0;
  std::int64_t of(token_count c) const noexcept {
    return c == token_count::input ? input : c == token_count::output ? output : input + output;
  }
};
const char* kind_name(kind k) noexcept;  ///< "requests", "tokens", "parallel requests"

/// One scope a request counts against, with its limits. A negative limit = none;
/// 0 = nothing allowed (LiteLLM's semantics: a set limit is enforced, even 0).
struct scope {
  /// Unique and stable across nodes, e.g. "key:<sha256>", "user:<id>", "team:<id>",
  /// "keymodel:<sha256>:<group>", "deployment:<model id>". Only [A-Za-z0-9:._/@-] and
  /// spaces are expected; the Redis key is derived from it.
  std::string id;
  /// For messages: "api_key 'my-alias'", "user 'u1'", "team 't1'", "deployment 'gpt4o-eu'".
  std::string label;
  std::int64_t rpm = -1;           ///< requests per window
  std::int64_t tpm = -1;           ///< tokens per window (usage known after the response)
  std::int64_t max_parallel = -1;  ///< requests in flight
  token_count counts = token_count::total;  ///< what the tpm window adds on release
  bool limited() const noexcept { return rpm >= 0 || tpm >= 0 || max_parallel >= 0; }
};

/// Where a scope stands after a decision (for the x-ratelimit-* headers). -1 = no limit.
struct scope_state {
  std::int64_t limit_requests = -1, remaining_requests = -1;
  std::int64_t reset_requests_ms = 0;  ///< until the oldest counted request leaves the window
  std::int64_t limit_tokens = -1, remaining_tokens = -1;
  std::int64_t reset_tokens_ms = 0;
};

struct decision {
  bool admitted = false;
  /// Which scope refused (index into the scopes passed), by which limit, the limit, what
  /// was counted, and when a retry could succeed (>= 1 ms for windows; for `parallel`
  /// a short fixed hint, since it depends on other requests finishing).
  int refused = -1;
  kind refused_kind = kind::requests;
  std::int64_t limit = 0;
  std::int64_t current = 0;
  std::int64_t retry_after_ms = 0;
  /// Parallel to the scopes passed (filled when admitted, and best effort when refused).
  std::vector<scope_state> states;
};

struct window_settings {
  std::int64_t window_ms = 60'000;  ///< gateway_settings.rate_limit_window (seconds in YAML)
  int buckets = 60;                 ///< sub-buckets per window (>= 1)
  /// Rounded up, so that `buckets` whole buckets always cover the window.
  std::int64_t bucket_ms() const noexcept {
    auto b = buckets > 0 ? buckets : 1;
    auto ms = (window_ms + b - 1) / b;
    return ms > 0 ? ms : 1;
  }
};

/// Refusal text naming the scope and the limit, e.g. "Rate limit exceeded for api_key
/// 'my-alias': limit type requests, limit 100 per 60s, current 100. Retry after 12.3 s."
std::string refusal_message(const std::vector<scope>& scopes, const decision& d, const window_settings& w);

}  // namespace gw::limits
