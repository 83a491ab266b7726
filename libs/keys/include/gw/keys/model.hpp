#pragma once
/// Virtual keys, users and teams: the records the admin API edits, PostgreSQL stores
/// and the request path authenticates against. Plain values; no I/O.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gw::keys {

/// Money as an integer count of picodollars (1e-12 USD): prices per token are exact
/// (0.02 USD per million tokens = 20,000 pico per token) and sums never round.
/// int64 holds up to 9.2 million USD per counter; the database stores NUMERIC.
using money = std::int64_t;
inline constexpr money pico_per_dollar = 1'000'000'000'000;

/// Dollars (as LiteLLM's API writes them, a JSON number) to picodollars, rounded to the
/// nearest. Values beyond the int64 range saturate.
money from_dollars(double usd) noexcept;
double to_dollars(money m) noexcept;
/// Exact decimal text, e.g. 1234 -> "0.000000001234", -5e12 -> "-5.000000000000".
std::string to_decimal(money m);
/// Parses a decimal ("0.5", "12", "1e-6" is refused: only plain decimals), false if
/// malformed or more than 12 fractional digits would be lost (they are rounded).
bool parse_decimal(std::string_view text, money& out) noexcept;

using sys_time = std::chrono::system_clock::time_point;

/// One budget: a cap with its reset period.
struct budget {
  std::optional<money> max_budget;   ///< none: no cap
  std::optional<money> soft_budget;  ///< crossing it is logged and counted, never refused
  std::string budget_duration;       ///< "30s", "30m", "30h", "30d", "1w", "1mo"; empty: never resets
  std::optional<sys_time> budget_reset_at;  ///< when spend next returns to 0
  money spend = 0;                   ///< spend in the current period
};

/// Rate limits (enforced by the limits issue; stored and shown from now on).
struct limits {
  std::optional<std::int64_t> tpm_limit, rpm_limit, max_parallel_requests;
  std::map<std::string, std::int64_t> model_rpm_limit, model_tpm_limit;
};

/// A per-model budget on a key (LiteLLM's model_max_budget:
/// {"gpt-4o": {"budget_limit": 0.5, "time_period": "1d"}}).
struct model_budget {
  money budget_limit = 0;
  std::string time_period;  ///< empty: never resets
  std::optional<sys_time> reset_at;
  money spend = 0;
};

struct key_record {
  std::string token;      ///< SHA-256 hex of the plain key: the primary key
  std::string key_name;   ///< "sk-...XXXX": the plain key's last 4 characters, for display
  std::string key_alias;  ///< unique when set
  std::vector<std::string> models;  ///< empty: every model
  std::string user_id, team_id;     ///< empty: none
  keys::budget budget;
  keys::limits limits;
  std::map<std::string, model_budget> model_max_budget;
  std::map<std::string, money> model_spend;  ///< lifetime spend per model group
  money total_spend = 0;                     ///< lifetime, never reset
  std::optional<sys_time> expires;
  std::string metadata = "{}";  ///< a JSON object, as the caller sent it
  bool blocked = false;
  sys_time created_at{}, updated_at{};
  std::string created_by;
};

struct team_member {
  std::string user_id;
  std::string user_email;
  std::string role = "user";  ///< "admin" or "user"
};

struct user_record {
  std::string user_id;
  std::string user_alias, user_email;
  std::string user_role = "internal_user";
  std::vector<std::string> teams;
  std::vector<std::string> models;
  keys::budget budget;
  keys::limits limits;
  money total_spend = 0;
  std::string metadata = "{}";
  sys_time created_at{}, updated_at{};
};

struct team_record {
  std::string team_id;
  std::string team_alias;
  std::vector<team_member> members_with_roles;
  std::vector<std::string> models;
  keys::budget budget;
  keys::limits limits;
  money total_spend = 0;
  std::string metadata = "{}";
  bool blocked = false;
  sys_time created_at{}, updated_at{};
};

/// Parses a LiteLLM duration: <n>s, <n>m, <n>h, <n>d, <n>w, <n>mo (n a positive integer).
/// false if malformed.
struct duration_spec {
  enum class unit { seconds, minutes, hours, days, weeks, months } u = unit::seconds;
  std::int64_t n = 0;
};
bool parse_duration(std::string_view text, duration_spec& out) noexcept;
/// `from` + the duration (months are calendar months in UTC, clamped to the month's end).
sys_time add_duration(sys_time from, const duration_spec& d) noexcept;

/// When budget periods end. LiteLLM's rule: with calendar alignment (the default),
/// 1d/24h budgets reset at the next midnight, 7d/1w on Monday, 30d/1mo on the 1st of
/// the month, other day, week and month counts at the midnight (Monday, 1st) that many
/// units on, all in the configured time zone (`litellm_settings.timezone`, default UTC);
/// shorter durations (s, m, h) roll from the moment they are set. Without alignment
/// every period is the duration long.
///
/// Process-wide: set once at start, before other threads run (a zone other than UTC
/// sets TZ for the process; the gateway's own logs are in UTC regardless). false and
/// `err` when the zone is unknown.
bool set_reset_calendar(bool aligned, const std::string& time_zone, std::string& err);
/// The end of a period that starts at `now`.
sys_time first_reset(sys_time now, const duration_spec& d) noexcept;
/// The end of the period that contains `now`, for a budget whose period ended at
/// `reset_at` (<= now): whole periods on from reset_at when rolling, the next calendar
/// boundary after `now` when aligned.
sys_time next_reset(sys_time reset_at, sys_time now, const duration_spec& d) noexcept;

/// SHA-256 hex of a plain key (what is stored and looked up).
std::string hash_key(std::string_view plain);
/// A new random key "sk-" + 22 URL-safe characters (128 bits from the OS).
std::string generate_key();
/// "sk-...abcd" for display.
std::string abbreviate_key(std::string_view plain);

}  // namespace gw::keys
