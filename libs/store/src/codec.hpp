#pragma once
/// Conversions between the records' C++ values and PostgreSQL's text format, and a
/// builder for statement parameters. Money travels as exact decimal text (NUMERIC),
/// timestamps as ISO text in UTC with microseconds (timestamptz's precision: finer
/// parts of a sys_time are truncated), text[] as array literals, maps as jsonb.
/// Everything that reads throws store_error on a value it cannot represent.

#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "gw/keys/model.hpp"
#include "gw/store/pg_store.hpp"

namespace gw::store::detail {

// ---- C++ -> PostgreSQL text ----

/// "YYYY-MM-DD HH:MM:SS.ffffff+00" (truncated to microseconds).
std::string timestamp_text(keys::sys_time t);
/// A text[] literal: {"a","b"}; nullopt elements are NULL.
std::string array_literal(const std::vector<std::string>& items);
std::string array_literal(const std::vector<std::optional<std::string>>& items);
/// {"model": 10, ...}
std::string int_map_json(const std::map<std::string, std::int64_t>& m);
/// {"model": "0.000000001234", ...}: money as decimal strings, so jsonb keeps it exact.
std::string money_map_json(const std::map<std::string, keys::money>& m);
/// [{"user_id": ..., "user_email": ..., "role": ...}, ...]
std::string members_json(const std::vector<keys::team_member>& members);

// ---- PostgreSQL text -> C++ ----

/// NUMERIC text to picodollars: exact up to 12 fractional digits (more are rounded);
/// beyond int64's range saturates. Throws on NaN or garbage.
keys::money parse_numeric(std::string_view text);
/// timestamptz text (any UTC offset); "infinity" and "-infinity" map to the clock's
/// ends.
keys::sys_time parse_timestamp(std::string_view text);
std::map<std::string, std::int64_t> parse_int_map(std::string_view json);
/// Values may be decimal strings or JSON numbers; both are read exactly.
std::map<std::string, keys::money> parse_money_map(std::string_view json);
std::vector<keys::team_member> parse_members(std::string_view json);

// ---- result fields (NULL reads as the empty or absent value) ----

std::string text_of(const pqxx::field& f);
keys::money money_of(const pqxx::field& f);
std::optional<keys::money> opt_money_of(const pqxx::field& f);
std::int64_t int_of(const pqxx::field& f);
std::optional<std::int64_t> opt_int_of(const pqxx::field& f);
bool bool_of(const pqxx::field& f);
keys::sys_time time_of(const pqxx::field& f);
std::optional<keys::sys_time> opt_time_of(const pqxx::field& f);
std::vector<std::string> text_array_of(const pqxx::field& f);

/// Statement parameters, in order ($1, $2, ...), all sent as text; nullopt is NULL.
class params {
 public:
  params& text(std::string_view v);
  /// An empty string is NULL (the records' "empty: none").
  params& text_or_null(std::string_view v);
  params& numeric(keys::money v);
  params& numeric(const std::optional<keys::money>& v);
  params& bigint(std::int64_t v);
  params& bigint(const std::optional<std::int64_t>& v);
  params& boolean(bool v);
  params& timestamp(keys::sys_time v);
  params& timestamp(const std::optional<keys::sys_time>& v);
  params& text_array(const std::vector<std::string>& v);
  params& null();

  std::size_t size() const noexcept { return values_.size(); }
  auto dynamic() const { return pqxx::prepare::make_dynamic_params(values_); }

 private:
  std::vector<std::optional<std::string>> values_;
};

/// One row's column values by name, for INSERT and UPDATE statements generated from
/// the names (so names and values cannot drift apart).
class row_writer {
 public:
  /// Adds a column; `add(name).text(v)` etc. (the returned params is the row's).
  params& add(std::string_view column);
  /// INSERT INTO table (c1, ...) VALUES ($1, ...)
  std::string insert_sql(std::string_view table) const;
  /// UPDATE table SET c2 = $2, ... WHERE c1 = $1 (the first column is the key).
  std::string update_sql(std::string_view table) const;
  const params& values() const noexcept { return values_; }

 private:
  void check() const;

  std::vector<std::string> columns_;
  params values_;
};

}  // namespace gw::store::detail
