/// pg_store: the trace store (llm_traces, one row per request with its captured bodies):
/// batched inserts, keyset-paged queries, lookups by request id and the maintenance of
/// its daily partitions.

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <stdexcept>

#include "gw/core/strings.hpp"
#include "codec.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/store/pg_store.hpp"
#include "partitions.hpp"
#include "store_impl.hpp"

namespace gw::store {

using namespace detail;

namespace {

constexpr const char* traces_table = "llm_traces";
constexpr std::size_t max_page = 1000;
/// Longer cursors are refused without looking further (request ids are short).
constexpr std::size_t max_cursor_size = 4096;

// ---- text PostgreSQL accepts ----

constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

/// The length (1..4) of the well-formed UTF-8 sequence at s[i], other than NUL; 0 if
/// there is none, with `bad` set to the length of the maximal ill-formed subpart to
/// replace by one U+FFFD (Unicode's "substitution of maximal subparts").
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    if (c != 0) return 1;
    bad = 1;  // PostgreSQL's text cannot hold NUL
    return 0;
  }
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c == 0xE0) {
    n = 3, lo = 0xA0;  // no overlong forms
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    n = 3;
  } else if (c == 0xED) {
    n = 3, hi = 0x9F;  // no surrogates
  } else if (c == 0xF0) {
    n = 4, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    n = 4;
  } else if (c == 0xF4) {
    n = 4, hi = 0x8F;  // nothing past U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (std::size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      bad = k;
      return 0;
    }
    const auto d = static_cast<unsigned char>(s[i + k]);
    if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) {
      bad = k;
      return 0;
    }
  }
  return n;
}

/// `s` as valid UTF-8 without NUL bytes: each NUL and each ill-formed sequence becomes
/// U+FFFD, so that no captured value can make PostgreSQL refuse the batch.
std::string clean_text(std::string_view s) {
  std::size_t i = 0, bad = 0;
  while (i < s.size()) {
    std::size_t n = utf8_sequence(s, i, bad);
    if (n == 0) break;
    i += n;
  }
  if (i == s.size()) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  out.append(s.substr(0, i));
  while (i < s.size()) {
    std::size_t n = utf8_sequence(s, i, bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += replacement_char;
      i += bad;
    }
  }
  return out;
}


/// The 4 hex digits at json[pos] as a code unit; -1 if they are not.
long hex4(std::string_view json, std::size_t pos) noexcept {
  if (pos + 4 > json.size()) return -1;
  long v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    int d = hex_value(json[pos + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/// Whether jsonb accepts the \u escapes of (valid) JSON text: not \u0000, and every
/// surrogate in a high-low pair.
bool jsonb_escapes_ok(std::string_view json) noexcept {
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] != '\\') continue;
    ++i;  // the escaped character (a backslash in valid JSON is always an escape)
    if (i >= json.size()) return false;
    if (json[i] != 'u') continue;
    long cp = hex4(json, i + 1);
    if (cp <= 0) return false;
    i += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate alone
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (i + 6 >= json.size() || json[i + 1] != '\\' || json[i + 2] != 'u') return false;
      long low = hex4(json, i + 3);
      if (low < 0xDC00 || low > 0xDFFF) return false;
      i += 6;
    }
  }
  return true;
}

/// metadata as jsonb will take it: a JSON object as is; empty as {}; anything else
/// (not JSON, not an object, escapes jsonb refuses) kept as the text of
/// {"invalid_metadata": "..."} rather than failing the batch.
std::string clean_metadata(std::string_view metadata, simdjson::dom::parser& parser) {
  if (metadata.empty()) return "{}";
  std::string text = clean_text(metadata);
  simdjson::dom::element doc;
  if (!parser.parse(text.data(), text.size(), true).get(doc) && doc.is_object() && jsonb_escapes_ok(text)) return text;
  std::string out = "{\"invalid_metadata\":";
  append_json_string(out, text);
  out += '}';
  return out;
}

// ---- columns ----

/// llm_traces' columns in the order of insert_traces' arrays (their element types).
struct column {
  const char* name;
  const char* type;
};
constexpr column trace_columns[] = {
    {"request_id", "text"},
    {"trace_id", "text"},
    {"span_id", "text"},
    {"call_type", "text"},
    {"route", "text"},
    {"api_key", "text"},
    {"key_alias", "text"},
    {"user_id", "text"},
    {"team_id", "text"},
    {"end_user", "text"},
    {"model_group", "text"},
    {"model_id", "text"},
    {"model", "text"},
    {"provider", "text"},
    {"status", "text"},
    {"http_status", "integer"},
    {"error_type", "text"},
    {"error_message", "text"},
    {"stream", "boolean"},
    {"prompt_tokens", "bigint"},
    {"completion_tokens", "bigint"},
    {"total_tokens", "bigint"},
    {"cached_tokens", "bigint"},
    {"spend", "bigint"},
    {"start_time", "timestamptz"},
    {"end_time", "timestamptz"},
    {"completion_start_time", "timestamptz"},
    {"cache", "text"},
    {"guardrail", "text"},
    {"attempts", "integer"},
    {"request_body", "text"},
    {"response_body", "text"},
    {"request_truncated", "boolean"},
    {"response_truncated", "boolean"},
    {"metadata", "jsonb"},
};
constexpr std::size_t column_count = std::size(trace_columns);

using column_values = std::vector<std::optional<std::string>>;

/// Appends one row's values to the per-column arrays, in trace_columns' order.
void append_row(const trace_row& t, std::vector<column_values>& cols, simdjson::dom::parser& parser) {
  std::size_t i = 0;
  auto put = [&](std::optional<std::string> v) { cols.at(i++).push_back(std::move(v)); };
  auto text = [&](const std::string& v) { put(clean_text(v)); };
  auto number = [&](std::int64_t v) { put(std::to_string(v)); };
  auto boolean = [&](bool v) { put(v ? "true" : "false"); };
  text(t.request_id);
  text(t.trace_id);
  text(t.span_id);
  text(t.call_type);
  text(t.route);
  text(t.api_key);
  text(t.key_alias);
  text(t.user_id);
  text(t.team_id);
  text(t.end_user);
  text(t.model_group);
  text(t.model_id);
  text(t.model);
  text(t.provider);
  text(t.status);
  number(t.http_status);
  text(t.error_type);
  text(t.error_message);
  boolean(t.stream);
  number(t.prompt_tokens);
  number(t.completion_tokens);
  number(t.total_tokens);
  number(t.cached_tokens);
  number(t.spend);
  put(timestamp_text(t.start_time));
  put(timestamp_text(t.end_time));
  put(t.completion_start_time ? std::optional(timestamp_text(*t.completion_start_time)) : std::nullopt);
  text(t.cache);
  text(t.guardrail);
  number(t.attempts);
  text(t.request_body);
  text(t.response_body);
  boolean(t.request_truncated);
  boolean(t.response_truncated);
  put(clean_metadata(t.metadata, parser));
  if (i != column_count) throw std::logic_error("insert_traces: a value per column");
}

std::string insert_sql() {
  std::string names, arrays;
  for (std::size_t i = 0; i < column_count; ++i) {
    if (i) {
      names += ", ";
      arrays += ", ";
    }
    names += trace_columns[i].name;
    arrays += "$" + std::to_string(i + 1) + "::" + trace_columns[i].type + "[]";
  }
  // One array per column, unnest()ed into rows: a single statement for any batch size.
  return "INSERT INTO llm_traces (" + names + ") SELECT * FROM unnest(" + arrays + ") ON CONFLICT DO NOTHING";
}

/// The select list; without bodies they read as empty text.
std::string select_list(bool with_bodies) {
  std::string out;
  for (const auto& c : trace_columns) {
    if (!out.empty()) out += ", ";
    std::string_view name = c.name;
    if (!with_bodies && (name == "request_body" || name == "response_body"))
      out += "''::text AS " + std::string(name);
    else
      out += name;
  }
  return out;
}

trace_row read_trace(const pqxx::row& r) {
  trace_row t;
  t.request_id = text_of(r["request_id"]);
  t.trace_id = text_of(r["trace_id"]);
  t.span_id = text_of(r["span_id"]);
  t.call_type = text_of(r["call_type"]);
  t.route = text_of(r["route"]);
  t.api_key = text_of(r["api_key"]);
  t.key_alias = text_of(r["key_alias"]);
  t.user_id = text_of(r["user_id"]);
  t.team_id = text_of(r["team_id"]);
  t.end_user = text_of(r["end_user"]);
  t.model_group = text_of(r["model_group"]);
  t.model_id = text_of(r["model_id"]);
  t.model = text_of(r["model"]);
  t.provider = text_of(r["provider"]);
  t.status = text_of(r["status"]);
  t.http_status = static_cast<int>(int_of(r["http_status"]));
  t.error_type = text_of(r["error_type"]);
  t.error_message = text_of(r["error_message"]);
  t.stream = bool_of(r["stream"]);
  t.prompt_tokens = int_of(r["prompt_tokens"]);
  t.completion_tokens = int_of(r["completion_tokens"]);
  t.total_tokens = int_of(r["total_tokens"]);
  t.cached_tokens = int_of(r["cached_tokens"]);
  t.spend = int_of(r["spend"]);
  t.start_time = time_of(r["start_time"]);
  t.end_time = time_of(r["end_time"]);
  t.completion_start_time = opt_time_of(r["completion_start_time"]);
  t.cache = text_of(r["cache"]);
  t.guardrail = text_of(r["guardrail"]);
  t.attempts = static_cast<int>(int_of(r["attempts"]));
  t.request_body = text_of(r["request_body"]);
  t.response_body = text_of(r["response_body"]);
  t.request_truncated = bool_of(r["request_truncated"]);
  t.response_truncated = bool_of(r["response_truncated"]);
  t.metadata = text_of(r["metadata"]);
  return t;
}

// ---- cursors ----

/// Where a page ended: the last row's (start_time, request_id).
struct page_key {
  keys::sys_time start_time;
  std::string request_id;
};

/// "<start_time in microseconds since the epoch>.<request_id as lower-case hex>"
std::string encode_cursor(const trace_row& last) {
  static constexpr char digits[] = "0123456789abcdef";
  auto us = std::chrono::floor<std::chrono::microseconds>(last.start_time).time_since_epoch().count();
  std::string out = std::to_string(us) + ".";
  for (unsigned char c : last.request_id) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

page_key decode_cursor(std::string_view cursor) {
  auto malformed = [&]() -> std::invalid_argument { return std::invalid_argument("malformed trace cursor"); };
  if (cursor.size() > max_cursor_size) throw malformed();
  auto dot = cursor.find('.');
  if (dot == std::string_view::npos || dot == 0) throw malformed();
  std::int64_t us = 0;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + dot, us);
  if (ec != std::errc() || end != cursor.data() + dot) throw malformed();
  // sys_time counts nanoseconds: the microseconds must fit.
  constexpr std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 1000;
  if (us > limit || us < -limit) throw malformed();
  std::string_view hex = cursor.substr(dot + 1);
  if (hex.size() % 2 != 0) throw malformed();
  page_key key;
  key.start_time = keys::sys_time{std::chrono::microseconds{us}};
  key.request_id.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) throw malformed();
    key.request_id += static_cast<char>(hi * 16 + lo);
  }
  return key;
}

}  // namespace

// ---- writes ----

std::size_t pg_store::insert_traces(const std::vector<trace_row>& rows) {
  if (rows.empty()) return 0;
  std::vector<std::string> arrays;
  {
    simdjson::dom::parser parser;
    std::vector<column_values> cols(column_count);
    for (auto& c : cols) c.reserve(rows.size());
    for (const auto& t : rows) append_row(t, cols, parser);
    arrays.reserve(column_count);
    for (auto& c : cols) {
      arrays.push_back(array_literal(c));
      column_values().swap(c);  // the array literal holds the values now
    }
  }
  static const std::string sql = insert_sql();
  return impl_->run("insert_traces", [&](pqxx::connection& c) {
    params p;
    for (const auto& a : arrays) p.text(a);
    pqxx::work tx(c);
    auto r = tx.exec_params(sql, p.dynamic());
    tx.commit();
    return static_cast<std::size_t>(r.affected_rows());
  });
}

// ---- reads ----

trace_page pg_store::traces(const trace_query& q) {
  // A bad cursor is the caller's error, not the database's: thrown before run(), which
  // turns every exception into store_error.
  std::optional<page_key> after;
  if (q.cursor) after = decode_cursor(*q.cursor);
  const std::size_t limit = std::clamp<std::size_t>(q.limit, 1, max_page);
  return impl_->run("traces", [&](pqxx::connection& c) {
    params p;
    std::string where;
    auto add = [&](const std::string& condition) { where += (where.empty() ? " WHERE " : " AND ") + condition; };
    auto arg = [&]() { return "$" + std::to_string(p.size()); };
    auto filter = [&](const char* column, const std::optional<std::string>& v) {
      if (!v) return;
      p.text(clean_text(*v));
      add(std::string(column) + " = " + arg());
    };
    filter("api_key", q.api_key);
    filter("user_id", q.user_id);
    filter("team_id", q.team_id);
    filter("model_group", q.model_group);
    filter("status", q.status);
    filter("trace_id", q.trace_id);
    if (q.start) {
      p.timestamp(*q.start);
      add("start_time >= " + arg() + "::timestamptz");
    }
    if (q.end) {
      p.timestamp(*q.end);
      add("start_time <= " + arg() + "::timestamptz");
    }
    if (after) {
      p.timestamp(after->start_time);
      std::string t = arg();
      p.text(after->request_id);
      add("(start_time, request_id) < (" + t + "::timestamptz, " + arg() + "::text)");
    }
    p.bigint(static_cast<std::int64_t>(limit + 1));  // one more: is there a next page?
    std::string sql = "SELECT " + select_list(q.with_bodies) + " FROM llm_traces" + where +
                      " ORDER BY start_time DESC, request_id DESC LIMIT " + arg();
    pqxx::read_transaction tx(c);
    trace_page page;
    auto result = tx.exec_params(sql, p.dynamic());
    for (const auto& r : result) {
      if (page.rows.size() == limit) {
        page.next_cursor = encode_cursor(page.rows.back());
        break;
      }
      page.rows.push_back(read_trace(r));
    }
    return page;
  });
}

std::optional<trace_row> pg_store::trace(const std::string& request_id) {
  return impl_->run("trace", [&](pqxx::connection& c) -> std::optional<trace_row> {
    pqxx::read_transaction tx(c);
    auto r = tx.exec_params("SELECT " + select_list(true) +
                                " FROM llm_traces WHERE request_id = $1 ORDER BY start_time DESC LIMIT 1",
                            clean_text(request_id));
    if (r.empty()) return std::nullopt;
    return read_trace(r[0]);
  });
}

// ---- maintenance ----

int pg_store::maintain_trace_partitions(int days_ahead, int retention_days) {
  return impl_->run("maintain_trace_partitions", [&](pqxx::connection& c) {
    return maintain_day_partitions(c, traces_table, days_ahead, retention_days);
  });
}

}  // namespace gw::store
