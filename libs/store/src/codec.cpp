#include "codec.hpp"

#include <simdjson.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "gw/core/json_writer.hpp"

namespace gw::store::detail {

namespace {

namespace od = simdjson::ondemand;

[[noreturn]] void bad_value(std::string_view what, std::string_view text) {
  throw store_error("unreadable " + std::string(what) + " from the database: '" + std::string(text) + "'");
}

/// Reads exactly `width` digits at `pos` (advancing it).
bool read_digits(std::string_view s, std::size_t& pos, std::size_t width, int& out) {
  if (pos + width > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < width; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  pos += width;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

/// Parses the JSON text with simdjson's on-demand parser and hands the document to `f`;
/// simdjson's errors become store_error naming `what`.
template <class F>
void with_json(std::string_view json, std::string_view what, F&& f) {
  try {
    simdjson::padded_string padded(json);
    od::parser parser;
    od::document doc = parser.iterate(padded);
    f(doc);
  } catch (const simdjson::simdjson_error& e) {
    throw store_error("unreadable " + std::string(what) + " from the database (" + e.what() +
                      "): " + std::string(json));
  }
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

// ---- C++ -> PostgreSQL text ----

std::string timestamp_text(keys::sys_time t) {
  using namespace std::chrono;
  auto us = floor<microseconds>(t);
  auto day = floor<days>(us);
  year_month_day ymd{day};
  hh_mm_ss<microseconds> tod{us - day};
  char buf[128];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d.%06lld+00", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                static_cast<int>(tod.seconds().count()), static_cast<long long>(tod.subseconds().count()));
  return buf;
}

std::string array_literal(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string array_literal(const std::vector<std::string>& items) {
  return array_literal(std::vector<std::optional<std::string>>(items.begin(), items.end()));
}

std::string int_map_json(const std::map<std::string, std::int64_t>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out += ',';
    append_json_string(out, k);
    out += ':';
    append_json_number(out, v);
  }
  out += '}';
  return out;
}

std::string money_map_json(const std::map<std::string, keys::money>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out += ',';
    append_json_string(out, k);
    out += ':';
    append_json_string(out, keys::to_decimal(v));
  }
  out += '}';
  return out;
}

std::string members_json(const std::vector<keys::team_member>& members) {
  std::string out = "[";
  for (const auto& m : members) {
    if (out.size() > 1) out += ',';
    out += "{\"user_id\":";
    append_json_string(out, m.user_id);
    out += ",\"user_email\":";
    append_json_string(out, m.user_email);
    out += ",\"role\":";
    append_json_string(out, m.role);
    out += '}';
  }
  out += ']';
  return out;
}

// ---- PostgreSQL text -> C++ ----

keys::money parse_numeric(std::string_view text) {
  keys::money m = 0;
  if (keys::parse_decimal(text, m)) return m;
  // parse_decimal refuses values beyond int64 picodollars: saturate those (a lifetime
  // total past 9.2 million USD), refuse anything that is not a plain decimal.
  bool plain = !text.empty();
  std::size_t digits = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9')
      ++digits;
    else if (!(c == '.' || (i == 0 && (c == '-' || c == '+'))))
      plain = false;
  }
  if (!plain || digits == 0) bad_value("numeric", text);
  return text[0] == '-' ? std::numeric_limits<keys::money>::min() : std::numeric_limits<keys::money>::max();
}

keys::sys_time parse_timestamp(std::string_view s) {
  using namespace std::chrono;
  if (s == "infinity") return keys::sys_time::max();
  if (s == "-infinity") return keys::sys_time::min();
  std::size_t pos = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  bool ok = read_digits(s, pos, 4, y) && expect(s, pos, '-') && read_digits(s, pos, 2, mo) && expect(s, pos, '-') &&
            read_digits(s, pos, 2, d) && (expect(s, pos, ' ') || expect(s, pos, 'T')) && read_digits(s, pos, 2, h) &&
            expect(s, pos, ':') && read_digits(s, pos, 2, mi) && expect(s, pos, ':') && read_digits(s, pos, 2, sec);
  if (!ok) bad_value("timestamp", s);
  long long micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n)
      if (n < 6) micros = micros * 10 + (s[pos] - '0');
    if (n == 0) bad_value("timestamp", s);
    for (; n < 6; ++n) micros *= 10;
  }
  // The UTC offset: +HH, +HH:MM or +HH:MM:SS (the session runs in UTC: normally +00).
  int offset_seconds = 0;
  if (pos < s.size()) {
    char sign = s[pos++];
    int oh = 0, om = 0, os = 0;
    if ((sign != '+' && sign != '-') || !read_digits(s, pos, 2, oh)) bad_value("timestamp", s);
    if (expect(s, pos, ':') && !read_digits(s, pos, 2, om)) bad_value("timestamp", s);
    if (expect(s, pos, ':') && !read_digits(s, pos, 2, os)) bad_value("timestamp", s);
    offset_seconds = (sign == '-' ? -1 : 1) * (oh * 3600 + om * 60 + os);
  }
  if (pos != s.size()) bad_value("timestamp", s);
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) bad_value("timestamp", s);
  auto utc = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + microseconds{micros} - seconds{offset_seconds};
  // sys_time counts nanoseconds (years 1677..2262): saturate beyond.
  if (utc >= floor<microseconds>(keys::sys_time::max())) return keys::sys_time::max();
  if (utc <= ceil<microseconds>(keys::sys_time::min())) return keys::sys_time::min();
  return time_point_cast<keys::sys_time::duration>(utc);
}

std::map<std::string, std::int64_t> parse_int_map(std::string_view json) {
  std::map<std::string, std::int64_t> out;
  with_json(json, "limit map", [&](od::document& doc) {
    for (auto field : doc.get_object()) {
      std::string key(std::string_view(field.unescaped_key()));
      out[std::move(key)] = field.value().get_int64();
    }
  });
  return out;
}

std::map<std::string, keys::money> parse_money_map(std::string_view json) {
  std::map<std::string, keys::money> out;
  with_json(json, "spend map", [&](od::document& doc) {
    for (auto field : doc.get_object()) {
      std::string key(std::string_view(field.unescaped_key()));
      od::value v = field.value();
      std::string_view text =
          v.type() == od::json_type::string ? std::string_view(v.get_string()) : trim_right(v.raw_json_token());
      out[std::move(key)] = parse_numeric(text);
    }
  });
  return out;
}

std::vector<keys::team_member> parse_members(std::string_view json) {
  std::vector<keys::team_member> out;
  with_json(json, "team members", [&](od::document& doc) {
    for (auto element : doc.get_array()) {
      keys::team_member m;
      for (auto field : element.get_object()) {
        std::string_view key = field.unescaped_key();
        od::value v = field.value();
        if (v.is_null()) continue;
        if (key == "user_id")
          m.user_id = std::string_view(v.get_string());
        else if (key == "user_email")
          m.user_email = std::string_view(v.get_string());
        else if (key == "role")
          m.role = std::string_view(v.get_string());
      }
      out.push_back(std::move(m));
    }
  });
  return out;
}

// ---- result fields ----

std::string text_of(const pqxx::field& f) { return f.is_null() ? std::string() : std::string(f.c_str(), f.size()); }

keys::money money_of(const pqxx::field& f) { return f.is_null() ? 0 : parse_numeric(f.c_str()); }

std::optional<keys::money> opt_money_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return parse_numeric(f.c_str());
}

std::int64_t int_of(const pqxx::field& f) { return f.is_null() ? 0 : f.as<long long>(); }

std::optional<std::int64_t> opt_int_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<long long>();
}

bool bool_of(const pqxx::field& f) { return !f.is_null() && f.as<bool>(); }

keys::sys_time time_of(const pqxx::field& f) { return f.is_null() ? keys::sys_time{} : parse_timestamp(f.c_str()); }

std::optional<keys::sys_time> opt_time_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return parse_timestamp(f.c_str());
}

std::vector<std::string> text_array_of(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  auto parser = f.as_array();
  for (;;) {
    auto [what, value] = parser.get_next();
    if (what == pqxx::array_parser::done) break;
    if (what == pqxx::array_parser::string_value) out.push_back(std::move(value));
  }
  return out;
}

// ---- params ----

params& params::text(std::string_view v) {
  values_.emplace_back(std::string(v));
  return *this;
}

params& params::text_or_null(std::string_view v) { return v.empty() ? null() : text(v); }

params& params::numeric(keys::money v) { return text(keys::to_decimal(v)); }

params& params::numeric(const std::optional<keys::money>& v) { return v ? numeric(*v) : null(); }

params& params::bigint(std::int64_t v) { return text(std::to_string(v)); }

params& params::bigint(const std::optional<std::int64_t>& v) { return v ? bigint(*v) : null(); }

params& params::boolean(bool v) { return text(v ? "true" : "false"); }

params& params::timestamp(keys::sys_time v) { return text(timestamp_text(v)); }

params& params::timestamp(const std::optional<keys::sys_time>& v) { return v ? timestamp(*v) : null(); }

params& params::text_array(const std::vector<std::string>& v) { return text(array_literal(v)); }

params& params::null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

// ---- row_writer ----

params& row_writer::add(std::string_view column) {
  columns_.emplace_back(column);
  return values_;
}

void row_writer::check() const {
  if (columns_.size() != values_.size() || columns_.empty())
    throw std::logic_error("row_writer: each column needs exactly one value");
}

std::string row_writer::insert_sql(std::string_view table) const {
  check();
  std::string cols, vals;
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    if (i) {
      cols += ", ";
      vals += ", ";
    }
    cols += columns_[i];
    vals += '$' + std::to_string(i + 1);
  }
  return "INSERT INTO " + std::string(table) + " (" + cols + ") VALUES (" + vals + ")";
}

std::string row_writer::update_sql(std::string_view table) const {
  check();
  std::string sql = "UPDATE " + std::string(table) + " SET ";
  for (std::size_t i = 1; i < columns_.size(); ++i) {
    if (i > 1) sql += ", ";
    sql += columns_[i] + " = $" + std::to_string(i + 1);
  }
  return sql + " WHERE " + columns_.at(0) + " = $1";
}

}  // namespace gw::store::detail
