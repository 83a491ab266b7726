// The trace pipeline's exporters (OTLP/HTTP, the PostgreSQL trace store, the memory
// store, request log lines) and the /traces read API.

#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "gw/core/json_parsers.hpp"
#include "gw/core/error.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "gw/http/client.hpp"
#include "gw/keys/admin_json.hpp"
#include "gw/keys/model.hpp"
#include "gw/tracing/content.hpp"
#include "internal.hpp"

namespace gw::tracing::trace_detail {
namespace {

using namespace std::chrono;

// ------------------------------------------------------------------ OTLP/HTTP

class otlp_exporter final : public exporter {
 public:
  otlp_exporter(otlp_exporter_settings s, milliseconds timeout) : s_(std::move(s)), timeout_(timeout) {}

  export_result send(const record_list& records) override {
    http::fetch_request req;
    req.method = "POST";
    req.url = s_.url;
    req.headers = s_.headers;
    req.headers.emplace_back("Content-Type", s_.otlp.protobuf ? "application/x-protobuf" : "application/json");
    req.body = tracing::encode_otlp(records, s_.otlp);
    req.timeout = timeout_;
    req.max_body_bytes = 64 * 1024;
    boost::asio::io_context io;
    http::fetch_result res;
    http::fetch(io, std::move(req), [&](http::fetch_result r) { res = std::move(r); });
    io.run();
    export_result out;
    if (!res.error.empty()) {
      out.kind = export_result::retry;
      out.error = res.error;
    } else if (res.status / 100 == 2) {
      out.kind = export_result::ok;
      // A partial success: the collector says how many spans it rejected (the reply is
      // in the request's encoding).
      bool pb_reply = s_.otlp.protobuf && res.header("content-type").find("json") == std::string_view::npos;
      if (auto rejected = tracing::otlp_rejected_spans(res.body, pb_reply); rejected > 0)
        log::warn("trace export '" + s_.name + "': the collector rejected " + std::to_string(rejected) +
                  " spans" + (pb_reply ? std::string() : ": " + res.body.substr(0, 300)));
    } else {
      bool retryable = res.status == 429 || res.status == 502 || res.status == 503 || res.status == 504;
      out.kind = retryable ? export_result::retry : export_result::fail;
      out.error = "HTTP " + std::to_string(res.status) + ": " + res.body.substr(0, 300);
      auto ra = res.header("retry-after");
      std::int64_t secs = 0;
      if (!ra.empty()) {
        auto [p, ec] = std::from_chars(ra.data(), ra.data() + ra.size(), secs);
        if (ec == std::errc() && secs >= 0) out.retry_after_ms = secs * 1000;
      }
    }
    return out;
  }

 private:
  otlp_exporter_settings s_;
  milliseconds timeout_;
};

// ------------------------------------------------------------------ trace store

std::vector<store::trace_row> rows_of(const record_list& records, const trace_settings& s) {
  std::vector<store::trace_row> rows;
  rows.reserve(records.size());
  for (auto* r : records) rows.push_back(to_row(*r, s));
  return rows;
}

class pg_store_exporter final : public exporter {
 public:
  explicit pg_store_exporter(const trace_settings& s) : s_(s), db_(s.database_url) {}

  export_result send(const record_list& records) override {
    export_result out;
    try {
      auto now = steady_clock::now();
      if (now >= next_maintenance_) {
        int dropped = db_.maintain_trace_partitions(3, s_.store_retention_days);
        if (dropped > 0) log::info("trace store: dropped " + std::to_string(dropped) + " expired partition(s)");
        next_maintenance_ = now + hours(1);
      }
      db_.insert_traces(rows_of(records, s_));
    } catch (const std::exception& e) {
      out.kind = export_result::retry;
      out.error = e.what();
    }
    return out;
  }

 private:
  const trace_settings& s_;
  store::pg_store db_;
  steady_clock::time_point next_maintenance_{};
};

class memory_store_exporter final : public exporter {
 public:
  memory_store_exporter(std::shared_ptr<memory_store> m, const trace_settings& s) : m_(std::move(m)), s_(s) {}
  export_result send(const record_list& records) override {
    m_->add(rows_of(records, s_));
    return {};
  }

 private:
  std::shared_ptr<memory_store> m_;
  const trace_settings& s_;
};

// ------------------------------------------------------------------ request log

std::string iso_ms(tracing::sys_time t) { return keys::iso_time(t); }

double ms_between(tracing::sys_time a, tracing::sys_time b) {
  return duration_cast<microseconds>(b - a).count() / 1000.0;
}

class log_exporter final : public exporter {
 public:
  explicit log_exporter(const trace_settings& s) : s_(s) {}
  export_result send(const record_list& records) override {
    std::string out;
    for (auto* r : records) {
      // String fields are written when set (a request refused before routing has no
      // deployment, provider or response model).
      auto field = [&](const char* name, const std::string& v) {
        if (v.empty()) return;
        out += ",\"";
        out += name;
        out += "\":";
        append_json_string(out, v);
      };
      out += "{\"ts\":";
      append_json_string(out, iso_ms(r->end));
      out += ",\"level\":\"info\",\"msg\":\"request\"";
      field("request_id", r->request_id);
      field("trace_id", tracing::to_hex(r->trace));
      field("route", r->route);
      field("operation", r->operation);
      field("model", r->model_group);
      field("deployment", r->deployment_id);
      field("provider", r->provider);
      field("response_model", r->response_model);
      out += ",\"stream\":";
      out += r->stream ? "true" : "false";
      out += ",\"status\":" + std::to_string(r->status);
      out += ",\"latency_ms\":";
      append_json_number(out, ms_between(r->start, r->end));
      if (r->first_token) {
        out += ",\"ttft_ms\":";
        append_json_number(out, ms_between(r->start, *r->first_token));
      }
      if (r->input_tokens >= 0) out += ",\"input_tokens\":" + std::to_string(r->input_tokens);
      if (r->output_tokens >= 0) out += ",\"output_tokens\":" + std::to_string(r->output_tokens);
      out += ",\"cost_usd\":";
      out += keys::to_decimal(r->cost_pico);
      out += ",\"attempts\":" + std::to_string(r->attempts.size());
      field("key_alias", r->key_alias);
      field("user_id", r->user_id);
      field("team_id", r->team_id);
      field("end_user", r->end_user);
      field("error_type", r->error_type);
      field("error", r->error_message);
      if (s_.request_log_content) {
        std::string req = r->request_body;  // a copy: credentials are redacted from it
        redact_secrets(req);
        field("request", req);
        field("response", r->response_body);
      }
      out += "}\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return {};
  }

 private:
  const trace_settings& s_;
};

// ------------------------------------------------------------------ helpers

constexpr std::string_view k_secret_fields[] = {
    "api_key",        "apikey",         "x-api-key",          "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "aws_bearer_token", "azure_ad_token", "client_secret",     "authorization",
    "password",       "secret_key",     "master_key",         "access_token",      "refresh_token",
};

bool body_cut(std::string& body, const trace_settings& s) {
  switch (s.store_bodies) {
    case body_mode::off:
      body.clear();
      return false;
    case body_mode::truncated:
      return tracing::truncate_utf8(body, s.store_body_bytes);
    case body_mode::full:
      return false;
  }
  return false;
}

}  // namespace

std::unique_ptr<exporter> make_otlp_exporter(const otlp_exporter_settings& s, milliseconds timeout) {
  return std::make_unique<otlp_exporter>(s, timeout);
}
std::unique_ptr<exporter> make_pg_store_exporter(const trace_settings& s) { return std::make_unique<pg_store_exporter>(s); }
std::unique_ptr<exporter> make_log_exporter(const trace_settings& s) { return std::make_unique<log_exporter>(s); }
std::unique_ptr<exporter> make_memory_store_exporter(std::shared_ptr<memory_store> m, const trace_settings& s) {
  return std::make_unique<memory_store_exporter>(std::move(m), s);
}

namespace {

/// The closing quote of the JSON string whose contents start at `from` (npos if it is
/// cut off). memchr for each quote, then the backslashes before it decide whether it is
/// escaped (an odd run) or closes the string.
std::size_t string_end(const std::string& json, std::size_t from) noexcept {
  const char* d = json.data();
  std::size_t n = json.size();
  while (from < n) {
    auto* q = static_cast<const char*>(std::memchr(d + from, '"', n - from));
    if (!q) return std::string::npos;
    std::size_t pos = static_cast<std::size_t>(q - d), b = pos;
    while (b > from && d[b - 1] == '\\') --b;
    if ((pos - b) % 2 == 0) return pos;
    from = pos + 1;
  }
  return std::string::npos;
}

bool json_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

void redact_secrets(std::string& json) {
  // "name" <ws> : <ws> "value" -> the value becomes [redacted]. Names compared without
  // case; the scan skips over string contents so a secret-looking word inside a
  // prompt is not a field name unless it is followed by ':'. Strings are skipped with
  // memchr: a 100 KB prompt costs a few thousand instructions, not one loop per byte.
  std::size_t n = json.size();
  auto* first = static_cast<const char*>(std::memchr(json.data(), '"', n));
  std::size_t i = first ? static_cast<std::size_t>(first - json.data()) : n;
  while (i < n) {
    std::size_t start = i + 1;
    std::size_t j = string_end(json, start);
    if (j == std::string::npos) return;
    std::string_view name(json.data() + start, j - start);
    std::size_t k = j + 1;
    while (k < n && json_space(json[k])) ++k;
    bool secret = false;
    if (k < n && json[k] == ':' && name.size() >= 6 && name.size() <= 21)
      for (auto f : k_secret_fields)
        if (iequals(name, f)) secret = true;
    if (secret) {
      ++k;
      while (k < n && json_space(json[k])) ++k;
      if (k < n && json[k] == '"') {
        std::size_t vs = k + 1;
        std::size_t ve = std::min(string_end(json, vs), n);
        static constexpr std::string_view mark = "[redacted]";
        json.replace(vs, ve - vs, mark);
        n = json.size();
        j = vs + mark.size();  // the value's closing quote (or the end, if it was cut)
      } else {
        j = k - 1;  // not a string value: go on from there
      }
    }
    if (j + 1 >= n) return;
    auto* q = static_cast<const char*>(std::memchr(json.data() + j + 1, '"', n - j - 1));
    i = q ? static_cast<std::size_t>(q - json.data()) : n;
  }
}

void enrich(tracing::trace_record& r) {
  if (r.request_body.empty() || r.request_truncated) return;
  // One parser and one padded buffer per thread, reused: a parser made per record
  // allocated its index buffers (several times the body's size) every time.
  thread_local simdjson::ondemand::parser parser;
  thread_local std::string padded;
  fit_buffer(padded, r.request_body.size() + simdjson::SIMDJSON_PADDING);
  fit_parser(parser, r.request_body.size());
  padded.assign(r.request_body);
  padded.reserve(padded.size() + simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (parser.iterate(simdjson::padded_string_view(padded.data(), padded.size(), padded.capacity())).get(doc)) return;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return;
    if (key == "user" && r.end_user.empty()) {
      std::string_view v;
      if (!field.value().get_string().get(v)) r.end_user = std::string(v);
    } else if (key == "metadata" && r.metadata.empty()) {
      simdjson::ondemand::object m;
      if (!field.value().get_object().get(m)) {
        std::string_view raw;
        if (!m.raw_json().get(raw)) r.metadata = std::string(raw);
      }
    }
  }
}

store::trace_row to_row(const tracing::trace_record& r, const trace_settings& s) {
  store::trace_row w;
  w.request_id = r.request_id;
  w.trace_id = tracing::to_hex(r.trace);
  w.span_id = tracing::to_hex(r.span);
  w.call_type = r.operation;
  w.route = r.route;
  w.api_key = r.key_hash;
  w.key_alias = r.key_alias;
  w.user_id = r.user_id;
  w.team_id = r.team_id;
  w.end_user = r.end_user;
  w.model_group = r.model_group;
  w.model_id = r.deployment_id;
  w.model = r.response_model;
  w.provider = r.provider;
  w.status = r.status / 100 == 2 ? "success" : "failure";
  w.http_status = r.status;
  w.error_type = r.error_type;
  w.error_message = r.error_message;
  w.stream = r.stream;
  w.prompt_tokens = std::max<std::int64_t>(0, r.input_tokens);
  w.completion_tokens = std::max<std::int64_t>(0, r.output_tokens);
  w.total_tokens = w.prompt_tokens + w.completion_tokens;
  w.cached_tokens = std::max<std::int64_t>(0, r.cache_read_tokens);
  w.spend = r.cost_pico;
  w.start_time = r.start;
  w.end_time = r.end;
  w.completion_start_time = r.first_token;
  w.cache = r.cache;
  w.guardrail = r.guardrail;
  w.attempts = static_cast<int>(r.attempts.size());
  if (s.store_bodies != body_mode::off) {
    w.request_body = r.request_body;
    redact_secrets(w.request_body);
    w.request_truncated = body_cut(w.request_body, s) || r.request_truncated;
    w.response_body = r.response_body;
    w.response_truncated = body_cut(w.response_body, s) || r.response_truncated;
  }
  w.metadata = r.metadata.empty() ? "{}" : r.metadata;
  redact_secrets(w.metadata);
  return w;
}

void append_row_json(std::string& o, const store::trace_row& r, bool with_bodies) {
  auto str = [&](const char* name, const std::string& v, bool first = false) {
    if (!first) o += ',';
    o += '"';
    o += name;
    o += "\":";
    append_json_string(o, v);
  };
  auto num = [&](const char* name, std::int64_t v) {
    o += ",\"";
    o += name;
    o += "\":";
    append_json_number(o, v);
  };
  o += '{';
  str("request_id", r.request_id, true);
  str("trace_id", r.trace_id);
  str("span_id", r.span_id);
  str("call_type", r.call_type);
  str("route", r.route);
  str("api_key", r.api_key);
  str("key_alias", r.key_alias);
  str("user_id", r.user_id);
  str("team_id", r.team_id);
  str("end_user", r.end_user);
  str("model_group", r.model_group);
  str("model_id", r.model_id);
  str("model", r.model);
  str("provider", r.provider);
  str("status", r.status);
  num("http_status", r.http_status);
  str("error_type", r.error_type);
  str("error_message", r.error_message);
  o += ",\"stream\":";
  o += r.stream ? "true" : "false";
  num("prompt_tokens", r.prompt_tokens);
  num("completion_tokens", r.completion_tokens);
  num("total_tokens", r.total_tokens);
  num("cached_tokens", r.cached_tokens);
  o += ",\"spend\":";
  keys::append_money(o, r.spend);
  str("spend_exact", keys::to_decimal(r.spend));
  str("start_time", keys::iso_time(r.start_time));
  str("end_time", keys::iso_time(r.end_time));
  o += ",\"completion_start_time\":";
  if (r.completion_start_time) append_json_string(o, keys::iso_time(*r.completion_start_time));
  else o += "null";
  o += ",\"latency_ms\":";
  append_json_number(o, duration_cast<microseconds>(r.end_time - r.start_time).count() / 1000.0);
  o += ",\"time_to_first_token_ms\":";
  if (r.completion_start_time) append_json_number(o, duration_cast<microseconds>(*r.completion_start_time - r.start_time).count() / 1000.0);
  else o += "null";
  str("cache", r.cache);
  str("guardrail", r.guardrail);
  num("attempts", r.attempts);
  o += ",\"metadata\":";
  o += r.metadata.empty() ? "{}" : r.metadata;
  if (with_bodies) {
    str("request_body", r.request_body);
    str("response_body", r.response_body);
    o += ",\"request_truncated\":";
    o += r.request_truncated ? "true" : "false";
    o += ",\"response_truncated\":";
    o += r.response_truncated ? "true" : "false";
  }
  o += '}';
}

// ------------------------------------------------------------------ memory store

namespace {

/// Cursor of the memory store: "<start time in µs>.<request id>".
std::string memory_cursor(const store::trace_row& r) {
  return std::to_string(duration_cast<microseconds>(r.start_time.time_since_epoch()).count()) + "." + r.request_id;
}

/// Newer-first order: start time, then request id, both descending.
bool newer(const store::trace_row& a, std::int64_t us, const std::string& id) {
  auto aus = duration_cast<microseconds>(a.start_time.time_since_epoch()).count();
  return aus != us ? aus > us : a.request_id > id;
}

}  // namespace

void memory_store::add(std::vector<store::trace_row> rows) {
  std::lock_guard lk(mutex_);
  for (auto& r : rows) {
    rows_.push_back(std::move(r));
    if (rows_.size() > capacity_) rows_.pop_front();
  }
}

store::trace_page memory_store::query(const store::trace_query& q) const {
  std::optional<std::pair<std::int64_t, std::string>> after;
  if (q.cursor) {
    auto dot = q.cursor->find('.');
    std::int64_t us = 0;
    auto [p, ec] = std::from_chars(q.cursor->data(), q.cursor->data() + (dot == std::string::npos ? 0 : dot), us);
    if (dot == std::string::npos || ec != std::errc() || p != q.cursor->data() + dot)
      throw std::invalid_argument("malformed cursor");
    after.emplace(us, q.cursor->substr(dot + 1));
  }
  std::vector<const store::trace_row*> hits;
  {
    std::lock_guard lk(mutex_);
    for (const auto& r : rows_) {
      if (q.start && r.start_time < *q.start) continue;
      if (q.end && r.start_time > *q.end) continue;
      if (q.api_key && r.api_key != *q.api_key) continue;
      if (q.user_id && r.user_id != *q.user_id) continue;
      if (q.team_id && r.team_id != *q.team_id) continue;
      if (q.model_group && r.model_group != *q.model_group) continue;
      if (q.status && r.status != *q.status) continue;
      if (q.trace_id && r.trace_id != *q.trace_id) continue;
      if (after && newer(r, after->first, after->second)) continue;
      if (after && duration_cast<microseconds>(r.start_time.time_since_epoch()).count() == after->first &&
          r.request_id == after->second)
        continue;
      hits.push_back(&r);
    }
    std::sort(hits.begin(), hits.end(), [](auto* a, auto* b) {
      return newer(*a, duration_cast<microseconds>(b->start_time.time_since_epoch()).count(), b->request_id);
    });
    store::trace_page page;
    std::size_t limit = std::max<std::size_t>(1, q.limit);
    for (std::size_t i = 0; i < hits.size() && i < limit; ++i) {
      page.rows.push_back(*hits[i]);
      if (!q.with_bodies) {
        page.rows.back().request_body.clear();
        page.rows.back().response_body.clear();
      }
    }
    if (hits.size() > limit) page.next_cursor = memory_cursor(page.rows.back());
    return page;
  }
}

std::optional<store::trace_row> memory_store::get(const std::string& request_id) const {
  std::lock_guard lk(mutex_);
  for (auto it = rows_.rbegin(); it != rows_.rend(); ++it)
    if (it->request_id == request_id) return *it;
  return std::nullopt;
}

// ------------------------------------------------------------------ /traces

std::pair<int, std::string> serve_traces(trace_reader& reader, const std::string& path, const std::string& query) {
  auto fail = [](errc c, std::string msg, std::string param = "") {
    error e{c, std::move(msg), std::move(param)};
    return std::pair<int, std::string>{http_status(c), to_openai_json(e)};
  };
  try {
    if (path.size() > 8 && path.rfind("/traces/", 0) == 0) {
      auto row = reader.trace(path.substr(8));
      if (!row) return fail(errc::not_found, "No trace with request id '" + path.substr(8) + "'.", "id");
      std::string o;
      append_row_json(o, *row, true);
      return {200, std::move(o)};
    }
    auto q = keys::parse_query(query);
    auto get = [&](const char* k) -> std::optional<std::string> {
      auto it = q.find(k);
      if (it == q.end() || it->second.empty()) return std::nullopt;
      return it->second;
    };
    store::trace_query tq;
    for (const char* k : {"start_time", "start_date"})
      if (auto v = get(k)) {
        tq.start = keys::parse_date(*v);
        if (!tq.start) return fail(errc::invalid_request, std::string(k) + " must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", k);
      }
    for (const char* k : {"end_time", "end_date"})
      if (auto v = get(k)) {
        auto e = keys::parse_date(*v);
        if (!e) return fail(errc::invalid_request, std::string(k) + " must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", k);
        tq.end = v->size() <= 10 ? *e + hours(24) : *e;  // a bare date: the whole day
      }
    if (auto k = get("api_key")) {
      bool is_token = k->size() == 64 && k->find_first_not_of("0123456789abcdef") == std::string::npos;
      tq.api_key = is_token ? *k : keys::hash_key(*k);
    }
    tq.user_id = get("user_id");
    tq.team_id = get("team_id");
    tq.model_group = get("model");
    if (!tq.model_group) tq.model_group = get("model_group");
    tq.trace_id = get("trace_id");
    if (auto st = get("status")) {
      if (*st != "success" && *st != "failure") return fail(errc::invalid_request, "status must be success or failure", "status");
      tq.status = st;
    }
    if (auto l = get("limit")) {
      auto v = parse_int(*l);
      if (!v || *v < 1 || *v > 1000) return fail(errc::invalid_request, "limit must be an integer in 1..1000", "limit");
      tq.limit = static_cast<std::size_t>(*v);
    }
    tq.cursor = get("cursor");
    if (auto b = get("include_bodies")) tq.with_bodies = *b == "true" || *b == "1";
    store::trace_page page;
    try {
      page = reader.traces(tq);
    } catch (const std::invalid_argument&) {
      return fail(errc::invalid_request, "cursor is not one this API returned", "cursor");
    }
    std::string o = "{\"data\":[";
    for (std::size_t i = 0; i < page.rows.size(); ++i) {
      if (i) o += ',';
      append_row_json(o, page.rows[i], tq.with_bodies);
    }
    o += "],\"next_cursor\":";
    if (page.next_cursor) append_json_string(o, *page.next_cursor);
    else o += "null";
    o += '}';
    return {200, std::move(o)};
  } catch (const std::exception& e) {
    return fail(errc::service_unavailable, std::string("The trace store is unavailable: ") + e.what());
  }
}

}  // namespace gw::tracing::trace_detail
