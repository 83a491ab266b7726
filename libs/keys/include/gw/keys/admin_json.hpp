#pragma once
/// The admin API's JSON, LiteLLM-compatible: parsing request bodies into patches
/// (a field absent = unchanged; present with null = cleared) with clear errors, and
/// rendering records in LiteLLM's response shapes. Pure functions; no I/O.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/core/error.hpp"
#include "gw/keys/model.hpp"

namespace gw::keys {

template <class T>
using patch = std::optional<T>;  ///< nullopt: the field was not sent

/// /key/generate and /key/update bodies (update also needs `key`: the plain key or
/// its token). Fields LiteLLM has but we do not implement (aliases, config,
/// permissions, allowed_cache_controls, guardrails, tags, ...) are accepted and named
/// in `ignored`; unknown fields too (LiteLLM ignores them).
struct key_request {
  patch<std::string> key;  ///< caller-chosen key (generate) or the key to update
  patch<std::string> key_alias, user_id, team_id;  ///< "" or null clears
  patch<std::optional<std::string>> duration;      ///< null: never expires
  patch<std::vector<std::string>> models;
  patch<std::optional<money>> max_budget, soft_budget;
  patch<std::optional<std::string>> budget_duration;
  patch<std::optional<std::int64_t>> tpm_limit, rpm_limit, max_parallel_requests;
  patch<std::map<std::string, std::int64_t>> model_rpm_limit, model_tpm_limit;
  patch<std::map<std::string, model_budget>> model_max_budget;
  patch<std::string> metadata;  ///< a JSON object's text
  patch<bool> blocked;
  patch<money> spend;           ///< LiteLLM lets admins set spend (update)
  std::vector<std::string> ignored;
};

/// Rules (each failure is errc::invalid_request or invalid_type naming the field in
/// `param` and saying what is wrong): the body is a JSON object; strings are strings;
/// models is an array of strings; budgets are numbers >= 0 (or numeric strings);
/// limits are integers >= 0; durations parse with parse_duration; metadata is an
/// object; model_max_budget values are numbers or {"budget_limit": n, "time_period": d};
/// model_*_limit values are integers >= 0; key (if given) is a non-empty string of
/// printable ASCII without spaces.
///
/// Details (all parsers): `out` is reset first. Invalid JSON is errc::invalid_json; a
/// non-object body is invalid_request "request body must be a JSON object"; a value of
/// the wrong JSON type is invalid_type, a bad value of the right type (negative, bad
/// duration, bad role, out of range) invalid_request, a required field missing
/// missing_parameter; `param` is the field's path ("models[1]",
/// "model_max_budget.gpt-4o.budget_limit"). Money is exact: the number's decimal text
/// (exponents too, "1e-6") becomes picodollars, rounded to the nearest. Limits accept
/// integral numbers (5, 5.0, 5e3) and numeric strings. null on a field that cannot be
/// cleared (key, spend, user_id/team_id of users/teams, user_role) means "not sent";
/// null on blocked is false, on lists/maps empty, on metadata "{}". "" for a duration
/// means none, like null. Unknown fields are never an error: their names are listed
/// once each in `ignored` (nested ones of model_max_budget as "model_max_budget.m.f").
std::optional<error> parse_key_request(std::string_view body, key_request& out);

/// Applies a patch to a record: sets expires from duration (now + d; null clears),
/// budget_reset_at from budget_duration (now + d; null or "" clears), updated_at = now.
/// Does not touch token/key_name (the caller sets them).
void apply(const key_request& r, key_record& k, sys_time now);

struct user_request {
  patch<std::string> user_id, user_alias, user_email, user_role;
  patch<std::vector<std::string>> models, teams;
  patch<std::optional<money>> max_budget, soft_budget;
  patch<std::optional<std::string>> budget_duration;
  patch<std::optional<std::int64_t>> tpm_limit, rpm_limit, max_parallel_requests;
  patch<std::string> metadata;
  patch<money> spend;
  std::vector<std::string> ignored;
};
/// user_role must be one of proxy_admin, proxy_admin_viewer, internal_user,
/// internal_user_viewer.
std::optional<error> parse_user_request(std::string_view body, user_request& out);
void apply(const user_request& r, user_record& u, sys_time now);

struct team_request {
  patch<std::string> team_id, team_alias;
  patch<std::vector<team_member>> members_with_roles;
  patch<std::vector<std::string>> models;
  patch<std::optional<money>> max_budget, soft_budget;
  patch<std::optional<std::string>> budget_duration;
  patch<std::optional<std::int64_t>> tpm_limit, rpm_limit, max_parallel_requests;
  patch<std::string> metadata;
  patch<bool> blocked;
  patch<money> spend;
  std::vector<std::string> ignored;
};
std::optional<error> parse_team_request(std::string_view body, team_request& out);
void apply(const team_request& r, team_record& t, sys_time now);

/// /team/member_add: {"team_id": "...", "member": {"role","user_id","user_email"} or
/// [ ... ]}. /team/member_delete: {"team_id", "user_id" or "user_email"}.
struct member_request {
  std::string team_id;
  std::vector<team_member> members;  ///< add: the members; delete: one, role unused
};
std::optional<error> parse_member_add(std::string_view body, member_request& out);
std::optional<error> parse_member_delete(std::string_view body, member_request& out);

/// Bodies that name records: /key/delete {"keys": [...]} or {"key_aliases": [...]};
/// /key/block, /key/unblock, /key/regenerate {"key": "..."}; /user/delete
/// {"user_ids": [...]}; /team/delete {"team_ids": [...]}. `field` is the array field
/// (or "key" for a single one); at least one non-empty string is required.
std::optional<error> parse_name_list(std::string_view body, std::string_view field,
                                     std::vector<std::string>& out, bool single = false);

/// Money as a JSON number in USD, exactly (the decimal text of the picodollars with
/// trailing zeros dropped, one fractional digit kept): 0 -> 0.0, 10^11 -> 0.1,
/// 1234 -> 0.000000001234, -5*10^12 -> -5.0.
void append_money(std::string& out, money m);

/// Time as LiteLLM writes it: "2026-11-23T10:00:00.000000+00:00" (UTC, microseconds).
std::string iso_time(sys_time t);

/// Percent- and '+'-decoding of a URL component.
std::string url_decode(std::string_view s);
/// A URL query string ("a=1&b=x%20y") as name -> value, percent- and '+'-decoded.
std::map<std::string, std::string> parse_query(std::string_view q);
/// Parses "2026-11-01", "2026-11-01T10:00:00" or "2026-11-01 10:00:00" (UTC; a
/// trailing "Z" or fraction is ignored) into a time; nullopt if malformed.
std::optional<sys_time> parse_date(std::string_view s);

/// The record as a JSON object in LiteLLM's shape (spend and budgets in USD as JSON
/// numbers; times as iso_time or null; absent optionals as null; aliases, config,
/// permissions as {} and allowed_cache_controls as []). For a key: token, key_name,
/// key_alias, spend, max_budget, soft_budget, expires, models, aliases, config,
/// user_id, team_id, permissions, max_parallel_requests, metadata, blocked, tpm_limit,
/// rpm_limit, model_rpm_limit, model_tpm_limit, budget_duration, budget_reset_at,
/// allowed_cache_controls, model_spend, model_max_budget, created_at, updated_at,
/// created_by.
/// (Also "litellm_budget_table": null. created_at/updated_at at the zero time point,
/// i.e. never set, render as null. apply() sets created_at to `now` when it is zero.)
std::string to_json(const key_record& k);
std::string to_json(const user_record& u);
std::string to_json(const team_record& t);

/// The /key/generate response: to_json(k) with "key" (the plain key, shown once),
/// "key_name", "token" and "token_id" (both the hash), "duration" (as requested, or null).
std::string key_generate_response(const key_record& k, std::string_view plain_key,
                                  const std::optional<std::string>& duration);

}  // namespace gw::keys
