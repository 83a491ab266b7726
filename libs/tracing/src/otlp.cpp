#include "gw/tracing/otlp.hpp"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string_view>

#include "content_detail.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/tracing/content.hpp"

namespace gw::tracing {

namespace {

// ---- strings ---------------------------------------------------------------------------

/// `s` with every byte that is not part of a well-formed UTF-8 sequence (overlong forms,
/// surrogates and code points above U+10FFFF included) replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xc0) == 0x80;
      cp = cp << 6 | (b & 0x3f);
    }
    ok = ok && cp >= min && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

/// True if no byte of `s` needs attention in a JSON string: none below 0x20, none
/// 0x80 or above, no quote, no backslash. Eight bytes at a time (SWAR).
bool plain_ascii(std::string_view s) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  auto bad = [](std::uint64_t x) {
    auto zero_in = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
    return (x & highs) | zero_in(x & ~(ones * 0x1f)) |  // x < 0x20: no bit above 0x1f
           zero_in(x ^ (ones * '"')) | zero_in(x ^ (ones * '\\'));
  };
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    if (bad(x)) return false;
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

/// A JSON string of `s`, valid whatever the bytes: receivers reject a whole export for
/// one invalid string.
void append_str(std::string& out, std::string_view s) {
  // Most values are short ASCII with nothing to escape (ids, names, models): checked
  // eight bytes at a time, appended at once.
  if (plain_ascii(s)) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  if (simdjson::validate_utf8(s.data(), s.size()))
    append_json_string(out, s);
  else
    append_json_string(out, sanitize_utf8(s));
}

void append_dec(std::string& out, std::int64_t v) { append_json_number(out, v); }

std::int64_t unix_nanos(sys_time t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

double seconds_between(sys_time a, sys_time b) { return std::chrono::duration<double>(b - a).count(); }

/// "2026-01-01T00:00:00.123Z".
std::string iso8601_ms(sys_time t) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(t);
  auto day = floor<days>(ms);
  year_month_day ymd{day};
  hh_mm_ss<milliseconds> hms{ms - day};
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return buf;
}

/// Picodollars as an exact decimal USD string without trailing zeros: 147500000 ->
/// "0.0001475", 0 -> "0".
std::string exact_usd(std::int64_t pico) {
  constexpr std::uint64_t scale = 1'000'000'000'000ull;
  bool neg = pico < 0;
  std::uint64_t mag = neg ? 0ull - static_cast<std::uint64_t>(pico) : static_cast<std::uint64_t>(pico);
  std::string out = neg ? "-" : "";
  out += std::to_string(mag / scale);
  std::uint64_t frac = mag % scale;
  if (frac) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%012llu", static_cast<unsigned long long>(frac));
    std::string_view f(buf, 12);
    while (f.back() == '0') f.remove_suffix(1);
    out += '.';
    out += f;
  }
  return out;
}

std::string span_name(std::string_view operation, std::string_view model) {
  std::string n(operation);
  if (!model.empty()) {
    if (!n.empty()) n += ' ';
    n += model;
  }
  return n;
}

// ---- attributes ------------------------------------------------------------------------

/// A content attribute (a JSON text) cut to `max` bytes at a character boundary; sets
/// `cut`. A is json_attrs or pb_attrs.
template <class A>
void content_attr(A& a, std::string_view key, std::string_view v, std::size_t max, bool& cut) {
  if (v.empty()) return;
  if (v.size() <= max) {
    a.str(key, v);
    return;
  }
  std::string s(v.substr(0, max + 4));
  truncate_utf8(s, max);
  cut = true;
  a.str(key, s);
}

/// Writes the elements of one OTLP/JSON "attributes" array.
class json_attrs {
 public:
  explicit json_attrs(std::string& out) : out_(out) {}

  void str(std::string_view key, std::string_view v) {
    key_(key);
    out_ += R"("stringValue":)";
    append_str(out_, v);
    out_ += "}}";
  }
  /// A string attribute whose key is not one of this file's literals (the resource
  /// attributes from the environment): the key is escaped as needed.
  void str_any_key(std::string_view key, std::string_view v) {
    checked_key_(key);
    out_ += R"("stringValue":)";
    append_str(out_, v);
    out_ += "}}";
  }
  void str_if(std::string_view key, std::string_view v) {
    if (!v.empty()) str(key, v);
  }
  void i64(std::string_view key, std::int64_t v) {
    key_(key);
    out_ += R"("intValue":")";
    append_dec(out_, v);
    out_ += "\"}}";
  }
  void i64_if_known(std::string_view key, std::int64_t v) {
    if (v >= 0) i64(key, v);
  }
  void dbl(std::string_view key, double v) {
    if (!std::isfinite(v)) return;  // OTLP/JSON would need "NaN"-style strings; not worth it
    key_(key);
    out_ += R"("doubleValue":)";
    append_json_number(out_, v);
    out_ += "}}";
  }
  void boolean(std::string_view key, bool v) {
    key_(key);
    out_ += v ? R"("boolValue":true}})" : R"("boolValue":false}})";
  }
  void strings(std::string_view key, const std::vector<std::string>& vs) {
    if (vs.empty()) return;
    key_(key);
    out_ += R"("arrayValue":{"values":[)";
    for (std::size_t i = 0; i < vs.size(); ++i) {
      if (i) out_ += ',';
      out_ += R"({"stringValue":)";
      append_str(out_, vs[i]);
      out_ += '}';
    }
    out_ += "]}}}";
  }
  void content(std::string_view key, std::string_view v, std::size_t max, bool& cut) {
    content_attr(*this, key, v, max, cut);
  }

 private:
  /// Keys are this file's literals: plain ASCII, nothing to escape.
  void key_(std::string_view key) {
    out_ += first_ ? R"({"key":")" : R"(,{"key":")";
    first_ = false;
    out_ += key;
    out_ += R"(","value":{)";
  }
  void checked_key_(std::string_view key) {
    out_ += first_ ? R"({"key":)" : R"(,{"key":)";
    first_ = false;
    append_str(out_, key);
    out_ += R"(,"value":{)";
  }

  std::string& out_;
  bool first_ = true;
};

// ---- protobuf wire format -------------------------------------------------------------
//
// OTLP/HTTP protobuf (opentelemetry-proto's ExportTraceServiceRequest), written
// directly: the schema is fixed and small, so no generated code. Field numbers:
//   ExportTraceServiceRequest: resource_spans 1
//   ResourceSpans: resource 1, scope_spans 2        Resource: attributes 1
//   ScopeSpans: scope 1, spans 2                     InstrumentationScope: name 1, version 2
//   Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
//         start_time_unix_nano 7 (fixed64), end_time_unix_nano 8 (fixed64),
//         attributes 9, status 15                    Status: message 2, code 3
//   KeyValue: key 1, value 2                         ArrayValue: values 1
//   AnyValue: string_value 1, bool_value 2, int_value 3, double_value 4 (fixed64),
//             array_value 5

namespace pb {

enum wire : unsigned { varint_type = 0, fixed64_type = 1, len_type = 2 };

constexpr std::size_t varint_size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Every field number here is below 16: a tag is one byte.
constexpr char tag_byte(unsigned field, wire w) noexcept { return static_cast<char>((field << 3) | w); }

/// Size of a length-delimited field holding `n` bytes.
constexpr std::size_t len_field_size(std::size_t n) noexcept { return 1 + varint_size(n) + n; }

/// Writes into room already made (grow()): no capacity check per byte.
struct cursor {
  char* p;
  void byte(char c) noexcept { *p++ = c; }
  void varint(std::uint64_t v) noexcept {
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
  }
  void bytes(std::string_view s) noexcept {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void len_field(unsigned field, std::string_view s) noexcept {
    byte(tag_byte(field, len_type));
    varint(s.size());
    bytes(s);
  }
  void fixed64(unsigned field, std::uint64_t v) noexcept {
    byte(tag_byte(field, fixed64_type));
    for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(v >> (8 * i));
  }
};

/// Makes `n` more bytes at the end of `out` and points a cursor at them.
cursor grow(std::string& out, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  return cursor{out.data() + at};
}

void len_field(std::string& out, unsigned field, std::string_view s) {
  grow(out, len_field_size(s.size())).len_field(field, s);
}

/// Starts a length-delimited field whose size is known only at its end: one byte is
/// kept for the length; close() widens it when the message is 128 bytes or more.
std::size_t open(std::string& out, unsigned field) {
  out += tag_byte(field, len_type);
  out += '\0';
  return out.size();
}

void close(std::string& out, std::size_t start) {
  const std::size_t n = out.size() - start;
  const std::size_t w = varint_size(n);
  if (w > 1) out.insert(start, w - 1, '\0');
  cursor{out.data() + start - 1}.varint(n);
}

/// True if every byte is below 0x80. Eight bytes at a time.
bool ascii(std::string_view s) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    if (x & 0x8080808080808080ull) return false;
  }
  for (; i < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) >= 0x80) return false;
  return true;
}

/// Protobuf strings must be UTF-8 (receivers reject the export otherwise): `s` as it is
/// when valid, else a repaired copy in `scratch`.
std::string_view utf8(std::string_view s, std::string& scratch) {
  if (ascii(s) || simdjson::validate_utf8(s.data(), s.size())) return s;
  scratch = sanitize_utf8(s);
  return scratch;
}

}  // namespace pb

/// Writes repeated KeyValue fields (number `field` of the enclosing message): each
/// KeyValue{key 1, value 2: AnyValue} sized first, then written in one go.
class pb_attrs {
 public:
  pb_attrs(std::string& out, unsigned field) : out_(out), field_(field) {}

  void str(std::string_view key, std::string_view v) {
    v = pb::utf8(v, scratch_);
    auto c = head(key, pb::len_field_size(v.size()));
    c.len_field(1, v);
  }
  void str_any_key(std::string_view key, std::string_view v) {
    std::string key_scratch;
    str(pb::utf8(key, key_scratch), v);
  }
  void str_if(std::string_view key, std::string_view v) {
    if (!v.empty()) str(key, v);
  }
  void i64(std::string_view key, std::int64_t v) {
    const auto u = static_cast<std::uint64_t>(v);
    const std::size_t any = 1 + pb::varint_size(u);
    auto c = head(key, any);
    c.byte(pb::tag_byte(3, pb::varint_type));
    c.varint(u);
  }
  void i64_if_known(std::string_view key, std::int64_t v) {
    if (v >= 0) i64(key, v);
  }
  void dbl(std::string_view key, double v) {
    if (!std::isfinite(v)) return;  // as the JSON encoding does
    std::uint64_t bits;
    std::memcpy(&bits, &v, 8);
    head(key, 9).fixed64(4, bits);
  }
  void boolean(std::string_view key, bool v) {
    auto c = head(key, 2);
    c.byte(pb::tag_byte(2, pb::varint_type));
    c.byte(v ? '\1' : '\0');
  }
  void strings(std::string_view key, const std::vector<std::string>& vs) {
    if (vs.empty()) return;
    for (const auto& s : vs) {
      if (pb::ascii(s) || simdjson::validate_utf8(s.data(), s.size())) continue;
      // Rare: some value is not UTF-8; write repaired copies.
      std::vector<std::string> fixed;
      for (const auto& v : vs) fixed.emplace_back(pb::utf8(v, scratch_));
      return write_strings(key, fixed);
    }
    write_strings(key, vs);
  }
  void content(std::string_view key, std::string_view v, std::size_t max, bool& cut) {
    content_attr(*this, key, v, max, cut);
  }

 private:
  /// AnyValue{array_value 5: ArrayValue{values 1: AnyValue{string_value 1}...}} of
  /// valid UTF-8 strings.
  void write_strings(std::string_view key, const std::vector<std::string>& vs) {
    std::size_t array = 0;
    for (const auto& s : vs) array += pb::len_field_size(pb::len_field_size(s.size()));
    const std::size_t any = pb::len_field_size(array);
    auto c = head(key, any);
    c.byte(pb::tag_byte(5, pb::len_type));
    c.varint(array);
    for (const auto& s : vs) {
      c.byte(pb::tag_byte(1, pb::len_type));
      c.varint(pb::len_field_size(s.size()));
      c.len_field(1, s);
    }
  }

  /// Makes room for the whole KeyValue (its AnyValue is `any` bytes, which the caller
  /// writes through the cursor returned) and writes its head: the field's tag and
  /// length, the key, and the AnyValue's tag and length.
  pb::cursor head(std::string_view key, std::size_t any) {
    const std::size_t kv = pb::len_field_size(key.size()) + pb::len_field_size(any);
    auto c = pb::grow(out_, 1 + pb::varint_size(kv) + kv);
    c.byte(pb::tag_byte(field_, pb::len_type));
    c.varint(kv);
    c.len_field(1, key);
    c.byte(pb::tag_byte(2, pb::len_type));
    c.varint(any);
    return c;
  }

  std::string& out_;
  unsigned field_;
  std::string scratch_;
};

// ---- spans -----------------------------------------------------------------------------

enum span_kind { kind_internal = 1, kind_server = 2, kind_client = 3 };

/// OTLP/JSON framing of spans.
struct json_format {
  using attrs = json_attrs;
  static attrs span_attrs(std::string& out) { return attrs(out); }
  static void separator(std::string& out, bool first) {
    if (!first) out += ',';
  }
  static std::size_t begin_span(std::string& out, const trace_record& r, const span_id& span, const span_id& parent,
                                std::string_view name, span_kind kind, sys_time start, sys_time end) {
    out += R"({"traceId":")";
    append_hex(out, r.trace);
    out += R"(","spanId":")";
    append_hex(out, span);
    out += '"';
    if (!is_zero(parent)) {
      out += R"(,"parentSpanId":")";
      append_hex(out, parent);
      out += '"';
    }
    if (!r.tracestate.empty()) {
      out += R"(,"traceState":)";
      append_str(out, r.tracestate);
    }
    out += R"(,"name":)";
    append_str(out, name);
    out += R"(,"kind":)";
    out += static_cast<char>('0' + kind);
    out += R"(,"startTimeUnixNano":")";
    append_dec(out, unix_nanos(start));
    out += R"(","endTimeUnixNano":")";
    append_dec(out, unix_nanos(end));
    out += R"(","attributes":[)";
    return 0;
  }
  static void end_span(std::string& out, std::size_t, bool error, std::string_view message) {
    out += R"(],"status":{"code":)";
    if (error) {
      out += '2';
      if (!message.empty()) {
        out += R"(,"message":)";
        append_str(out, message);
      }
    } else {
      out += '0';
    }
    out += "}}";
  }
};

/// OTLP protobuf framing of spans (each a ScopeSpans.spans field).
struct pb_format {
  using attrs = pb_attrs;
  static attrs span_attrs(std::string& out) { return attrs(out, 9); }
  static void separator(std::string&, bool) {}
  static std::size_t begin_span(std::string& out, const trace_record& r, const span_id& span, const span_id& parent,
                                std::string_view name, span_kind kind, sys_time start, sys_time end) {
    const std::size_t mark = pb::open(out, 2);
    std::string scratch_state, scratch_name;
    auto state = pb::utf8(r.tracestate, scratch_state);
    auto nm = pb::utf8(name, scratch_name);
    const bool has_parent = !is_zero(parent);
    const std::size_t n = pb::len_field_size(r.trace.size()) + pb::len_field_size(span.size()) +
                          (state.empty() ? 0 : pb::len_field_size(state.size())) +
                          (has_parent ? pb::len_field_size(parent.size()) : 0) + pb::len_field_size(nm.size()) + 2 +
                          9 + 9;
    auto c = pb::grow(out, n);
    c.len_field(1, std::string_view(reinterpret_cast<const char*>(r.trace.data()), r.trace.size()));
    c.len_field(2, std::string_view(reinterpret_cast<const char*>(span.data()), span.size()));
    if (!state.empty()) c.len_field(3, state);
    if (has_parent) c.len_field(4, std::string_view(reinterpret_cast<const char*>(parent.data()), parent.size()));
    c.len_field(5, nm);
    c.byte(pb::tag_byte(6, pb::varint_type));
    c.byte(static_cast<char>(kind));
    c.fixed64(7, static_cast<std::uint64_t>(unix_nanos(start)));
    c.fixed64(8, static_cast<std::uint64_t>(unix_nanos(end)));
    return mark;
  }
  static void end_span(std::string& out, std::size_t mark, bool error, std::string_view message) {
    if (error) {
      // Status{message 2, code 3: STATUS_CODE_ERROR}; unset (0) is the default: no field.
      std::string scratch;
      auto m = pb::utf8(message, scratch);
      const std::size_t status = (m.empty() ? 0 : pb::len_field_size(m.size())) + 2;
      auto c = pb::grow(out, 1 + pb::varint_size(status) + status);
      c.byte(pb::tag_byte(15, pb::len_type));
      c.varint(status);
      if (!m.empty()) c.len_field(2, m);
      c.byte(pb::tag_byte(3, pb::varint_type));
      c.byte('\2');
    }
    pb::close(out, mark);
  }
};

/// Everything read from a record's bodies and metadata, once per record.
struct parsed_record {
  request_view req;
  response_view resp;
  trace_metadata meta;
};

template <class A>
void usage_attributes(A& a, const trace_record& r, const parsed_record& p) {
  a.str_if("gen_ai.response.model", r.response_model);
  a.i64_if_known("gen_ai.usage.input_tokens", r.input_tokens);
  a.i64_if_known("gen_ai.usage.output_tokens", r.output_tokens);
  a.i64_if_known("gen_ai.usage.cache_read.input_tokens", r.cache_read_tokens);
  a.i64_if_known("gen_ai.usage.cache_creation.input_tokens", r.cache_creation_tokens);
  a.i64_if_known("gen_ai.usage.reasoning.output_tokens", r.reasoning_tokens);
  a.strings("gen_ai.response.finish_reasons", p.resp.finish_reasons);
  a.str_if("gen_ai.response.id", p.resp.id);
}

std::string model_parameters_json(const trace_record& r, const request_view& q) {
  std::string j = "{";
  auto key = [&](std::string_view k) {
    if (j.size() > 1) j += ',';
    j += '"';
    j += k;
    j += "\":";
  };
  auto num = [&](std::string_view k, const auto& v) {
    if (!v) return;
    key(k);
    append_json_number(j, *v);
  };
  num("temperature", q.temperature);
  num("top_p", q.top_p);
  num("max_tokens", q.max_tokens);
  num("frequency_penalty", q.frequency_penalty);
  num("presence_penalty", q.presence_penalty);
  num("seed", q.seed);
  num("n", q.n);
  if (!q.stop.empty()) {
    key("stop");
    j += '[';
    for (std::size_t i = 0; i < q.stop.size(); ++i) {
      if (i) j += ',';
      append_str(j, q.stop[i]);
    }
    j += ']';
  }
  key("stream");
  j += r.stream ? "true" : "false";
  j += '}';
  return j;
}

std::string usage_details_json(const trace_record& r) {
  std::string j = "{";
  auto field = [&](std::string_view k, std::int64_t v) {
    if (v < 0) return;
    if (j.size() > 1) j += ',';
    j += '"';
    j += k;
    j += "\":";
    append_json_number(j, v);
  };
  field("input", r.input_tokens);
  field("output", r.output_tokens);
  if (r.input_tokens >= 0 || r.output_tokens >= 0)
    field("total", std::max<std::int64_t>(r.input_tokens, 0) + std::max<std::int64_t>(r.output_tokens, 0));
  field("cache_read_input_tokens", r.cache_read_tokens);
  if (j.size() == 1) return {};
  j += '}';
  return j;
}

/// langfuse.trace.metadata: the gateway's identity fields, then the client's
/// metadata.trace_metadata members (those not shadowing a gateway field).
std::string langfuse_trace_metadata(const trace_record& r, const trace_metadata& m) {
  std::string j = "{";
  static constexpr std::string_view own[] = {"key_alias", "user_id", "team_id", "model_group", "request_id",
                                             "deployment_id"};
  const std::string_view vals[] = {r.key_alias, r.user_id, r.team_id, r.model_group, r.request_id, r.deployment_id};
  for (std::size_t i = 0; i < std::size(own); ++i) {
    if (vals[i].empty()) continue;
    if (j.size() > 1) j += ',';
    append_json_string(j, own[i]);
    j += ':';
    append_str(j, vals[i]);
  }
  simdjson::dom::element root;
  simdjson::dom::object o;
  if (!m.trace_metadata_json.empty() && detail::parse_padded(m.trace_metadata_json, root) &&
      !root.get_object().get(o)) {
    for (auto field : o) {
      bool taken = false;
      for (auto k : own) taken = taken || field.key == k;
      if (taken) continue;
      if (j.size() > 1) j += ',';
      append_json_string(j, field.key);
      j += ':';
      j += simdjson::minify(field.value);
    }
  }
  j += '}';
  return j;
}

template <class F>
void server_span(std::string& out, const trace_record& r, const parsed_record& p, const otlp_options& opt) {
  const std::string name = span_name(r.operation, r.model_group);
  const bool failed = !r.error_type.empty();
  const auto mark = F::begin_span(out, r, r.span, r.parent, name, kind_server, r.start, r.end);
  auto a = F::span_attrs(out);
  a.str_if("gen_ai.operation.name", r.operation);
  a.str_if("gen_ai.provider.name", r.provider);
  a.str_if("gen_ai.request.model", r.model_group);
  a.boolean("gen_ai.request.stream", r.stream);
  usage_attributes(a, r, p);
  if (r.first_token) a.dbl("gen_ai.response.time_to_first_chunk", seconds_between(r.start, *r.first_token));
  const auto& q = p.req;
  if (q.temperature) a.dbl("gen_ai.request.temperature", *q.temperature);
  if (q.top_p) a.dbl("gen_ai.request.top_p", *q.top_p);
  if (q.max_tokens) a.i64("gen_ai.request.max_tokens", *q.max_tokens);
  if (q.frequency_penalty) a.dbl("gen_ai.request.frequency_penalty", *q.frequency_penalty);
  if (q.presence_penalty) a.dbl("gen_ai.request.presence_penalty", *q.presence_penalty);
  if (q.seed) a.i64("gen_ai.request.seed", *q.seed);
  if (q.n) a.i64("gen_ai.request.choice.count", *q.n);
  a.strings("gen_ai.request.stop_sequences", q.stop);
  a.str("http.request.method", "POST");
  a.str_if("http.route", r.route);
  if (r.status > 0) a.i64("http.response.status_code", r.status);
  a.str_if("error.type", r.error_type);

  a.str_if("llm_gateway.request_id", r.request_id);
  a.dbl("llm_gateway.cost_usd", static_cast<double>(r.cost_pico) / 1e12);
  a.str("llm_gateway.cost_usd_exact", exact_usd(r.cost_pico));
  a.str_if("llm_gateway.key_alias", r.key_alias);
  a.str_if("llm_gateway.team_id", r.team_id);
  a.str_if("llm_gateway.end_user", r.end_user);
  a.str_if("llm_gateway.deployment_id", r.deployment_id);
  a.str_if("llm_gateway.node_id", r.node_id);
  a.str_if("llm_gateway.cache", r.cache);
  a.str_if("llm_gateway.guardrail", r.guardrail);
  a.i64("llm_gateway.attempts", static_cast<std::int64_t>(r.attempts.size()));

  const auto& m = p.meta;
  if (opt.langfuse) {
    a.str("langfuse.trace.name", m.trace_name.empty() ? std::string_view(name) : std::string_view(m.trace_name));
    const std::string& user = !m.trace_user_id.empty() ? m.trace_user_id : !r.user_id.empty() ? r.user_id : r.end_user;
    a.str_if("user.id", user);
    a.str_if("session.id", m.session_id);
    a.strings("langfuse.trace.tags", m.tags);
    a.str("langfuse.trace.metadata", langfuse_trace_metadata(r, m));
    a.str_if("langfuse.version", m.trace_version);
    a.str_if("langfuse.environment", opt.environment);
    a.str_if("langfuse.release", m.trace_release.empty() ? std::string_view(opt.release) : m.trace_release);
  } else {
    a.str_if("user.id", r.user_id);
  }

  if (opt.capture_content) {
    bool cut = false;
    const std::size_t max = opt.max_content_bytes;
    a.content("gen_ai.input.messages", q.input_json, max, cut);
    a.content("gen_ai.system_instructions", q.system_instructions, max, cut);
    a.content("gen_ai.tool.definitions", q.tools_json, max, cut);
    a.content("gen_ai.output.messages", p.resp.output_json, max, cut);
    if (opt.langfuse) {
      a.content("langfuse.trace.input", q.input_json, max, cut);
      a.content("langfuse.trace.output", p.resp.output_json, max, cut);
    }
    if (cut || r.request_truncated || r.response_truncated) a.boolean("llm_gateway.content_truncated", true);
  }
  F::end_span(out, mark, failed, failed ? std::string_view(r.error_message) : std::string_view());
}

template <class F>
void client_span(std::string& out, const trace_record& r, const attempt_record& at, bool last,
                 const parsed_record& p, const otlp_options& opt) {
  const bool failed = !at.error_type.empty();
  const bool generation = opt.langfuse && last;
  std::string name = span_name(r.operation, at.upstream_model);
  if (generation && !p.meta.generation_name.empty()) name = p.meta.generation_name;
  const auto mark = F::begin_span(out, r, at.span, r.span, name, kind_client, at.start, at.end);
  auto a = F::span_attrs(out);
  a.str_if("gen_ai.operation.name", r.operation);
  a.str_if("gen_ai.provider.name", at.provider);
  a.str_if("gen_ai.request.model", at.upstream_model);
  a.str_if("server.address", at.server_address);
  if (at.server_port > 0) a.i64("server.port", at.server_port);
  if (at.http_status > 0) a.i64("http.response.status_code", at.http_status);
  a.str_if("error.type", at.error_type);
  a.str_if("llm_gateway.deployment_id", at.deployment_id);
  a.str_if("llm_gateway.model_group", at.model_group);
  if (at.first_chunk) a.dbl("gen_ai.response.time_to_first_chunk", seconds_between(at.start, *at.first_chunk));
  if (last && !failed) usage_attributes(a, r, p);

  if (generation) {
    const bool record_failed = !r.error_type.empty();
    a.str("langfuse.observation.type", "generation");
    a.str_if("langfuse.observation.model.name", r.response_model.empty() ? at.upstream_model : r.response_model);
    a.str("langfuse.observation.model.parameters", model_parameters_json(r, p.req));
    a.str_if("langfuse.observation.usage_details", usage_details_json(r));
    std::string cost = R"({"total":)";
    append_json_number(cost, static_cast<double>(r.cost_pico) / 1e12);
    cost += '}';
    a.str("langfuse.observation.cost_details", cost);
    auto first = at.first_chunk ? at.first_chunk : r.first_token;
    if (first) a.str("langfuse.observation.completion_start_time", iso8601_ms(*first));
    a.str("langfuse.observation.level", record_failed ? "ERROR" : "DEFAULT");
    if (record_failed)
      a.str("langfuse.observation.status_message", r.error_message.empty() ? r.error_type : r.error_message);
    if (opt.capture_content) {
      bool cut = false;
      a.content("langfuse.observation.input", p.req.input_json, opt.max_content_bytes, cut);
      a.content("langfuse.observation.output", p.resp.output_json, opt.max_content_bytes, cut);
    }
  } else if (opt.langfuse) {
    a.str("langfuse.observation.type", "span");
    if (failed) {
      a.str("langfuse.observation.level", "WARNING");
      a.str("langfuse.observation.status_message", at.error_type);
    }
  }
  F::end_span(out, mark, failed, at.error_type);
}

/// A guardrail or cache step: an INTERNAL span under the server span.
template <class F>
void step_span(std::string& out, const trace_record& r, const step_record& st, const otlp_options& opt) {
  const bool guardrail = st.type == step_record::kind::guardrail;
  const bool failed = !st.error_type.empty();
  std::string name = guardrail ? "guardrail" : "cache";
  if (!st.name.empty()) {
    name += ' ';
    name += st.name;
  }
  const auto mark = F::begin_span(out, r, st.span, r.span, name, kind_internal, st.start, st.end);
  auto a = F::span_attrs(out);
  a.str("llm_gateway.step", guardrail ? "guardrail" : "cache");
  if (guardrail) {
    a.str_if("llm_gateway.guardrail.name", st.name);
    a.str_if("llm_gateway.guardrail.outcome", st.outcome);
  } else {
    a.str_if("llm_gateway.cache.type", st.name);
    a.str_if("llm_gateway.cache.outcome", st.outcome);
  }
  a.str_if("error.type", st.error_type);
  if (opt.langfuse) {
    a.str("langfuse.observation.type", guardrail ? "guardrail" : "span");
    if (failed) {
      a.str("langfuse.observation.level", "WARNING");
      a.str("langfuse.observation.status_message", st.error_message.empty() ? st.error_type : st.error_message);
    }
  }
  F::end_span(out, mark, failed, st.error_message.empty() ? std::string_view(st.error_type) : st.error_message);
}

/// Appends the record's spans (each preceded by a comma unless `first`); false if the
/// record has no usable ids (receivers reject a whole export for one such span).
template <class F>
bool encode_record(std::string& out, const trace_record& r, const otlp_options& opt, bool first) {
  if (is_zero(r.trace) || is_zero(r.span)) return false;
  parsed_record p;
  p.req = r.request_facts ? *r.request_facts : detail::read_request(r.request_body, opt.capture_content);
  p.resp = r.response_facts ? *r.response_facts
                            : detail::read_response(r.response_body, r.stream, opt.capture_content, r.response_tail);
  if (opt.langfuse && !r.metadata.empty()) p.meta = read_metadata(r.metadata);

  F::separator(out, first);
  server_span<F>(out, r, p, opt);
  for (std::size_t i = 0; i < r.attempts.size(); ++i) {
    const auto& at = r.attempts[i];
    if (is_zero(at.span)) continue;
    F::separator(out, false);
    client_span<F>(out, r, at, i + 1 == r.attempts.size(), p, opt);
  }
  for (const auto& st : r.steps) {
    if (is_zero(st.span)) continue;
    F::separator(out, false);
    step_span<F>(out, r, st, opt);
  }
  return true;
}

template <class F>
void encode_records(std::string& out, const std::vector<const trace_record*>& records, const otlp_options& opt) {
  bool first = true;
  for (const auto* r : records) {
    if (!r) continue;
    const std::size_t mark = out.size();
    try {
      if (encode_record<F>(out, *r, opt, first)) first = false;
    } catch (...) {
      out.resize(mark);  // one record that cannot be encoded does not take the export down
    }
  }
}

/// Room for an export: `per_record` bytes of spans per record, plus its bodies when
/// content is shown.
std::size_t size_estimate(const std::vector<const trace_record*>& records, const otlp_options& opt,
                          std::size_t per_record) {
  std::size_t n = 512;
  for (const auto* r : records)
    if (r) n += per_record + (opt.capture_content ? 2 * (r->request_body.size() + r->response_body.size()) : 0);
  return n;
}

template <class A>
void resource_attributes(A& a, const otlp_options& opt) {
  a.str("service.name", opt.service_name);
  a.str_if("service.version", opt.service_version);
  a.str("telemetry.sdk.name", "llm-gateway");
  a.str("telemetry.sdk.language", "cpp");
  for (const auto& [k, v] : opt.resource_attributes)
    if (!k.empty()) a.str_any_key(k, v);
}

}  // namespace

std::string encode_otlp_json(const std::vector<const trace_record*>& records, const otlp_options& opt) {
  std::string out;
  out.reserve(size_estimate(records, opt, 3072));

  out += R"({"resourceSpans":[{"resource":{"attributes":[)";
  {
    json_attrs a(out);
    resource_attributes(a, opt);
  }
  out += R"(]},"scopeSpans":[{"scope":{"name":"llm-gateway")";
  if (!opt.service_version.empty()) {
    out += R"(,"version":)";
    append_str(out, opt.service_version);
  }
  out += R"(},"spans":[)";
  encode_records<json_format>(out, records, opt);
  out += "]}]}]}";
  return out;
}

std::string encode_otlp_protobuf(const std::vector<const trace_record*>& records, const otlp_options& opt) {
  std::string out;
  out.reserve(size_estimate(records, opt, 1280));
  const auto resource_spans = pb::open(out, 1);
  {
    const auto resource = pb::open(out, 1);
    pb_attrs a(out, 1);
    resource_attributes(a, opt);
    pb::close(out, resource);
  }
  const auto scope_spans = pb::open(out, 2);
  {
    const auto scope = pb::open(out, 1);
    pb::len_field(out, 1, "llm-gateway");
    std::string scratch;
    if (!opt.service_version.empty()) pb::len_field(out, 2, pb::utf8(opt.service_version, scratch));
    pb::close(out, scope);
  }
  encode_records<pb_format>(out, records, opt);
  pb::close(out, scope_spans);
  pb::close(out, resource_spans);
  return out;
}

std::string encode_otlp(const std::vector<const trace_record*>& records, const otlp_options& opt) {
  return opt.protobuf ? encode_otlp_protobuf(records, opt) : encode_otlp_json(records, opt);
}

std::int64_t otlp_rejected_spans(std::string_view body, bool protobuf) {
  if (body.empty()) return 0;
  if (!protobuf) {
    simdjson::dom::element root;
    if (!detail::parse_padded(body, root)) return -1;
    simdjson::dom::element n;
    if (root.at_pointer("/partialSuccess/rejectedSpans").get(n)) return 0;
    std::int64_t v = 0;
    std::string_view text;
    if (!n.get_int64().get(v)) return v;
    if (!n.get_string().get(text)) {
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      return ec == std::errc() && p == text.data() + text.size() ? v : -1;
    }
    return -1;
  }
  // ExportTraceServiceResponse{partial_success 1: {rejected_spans 1 (int64)}}
  auto read_varint = [](std::string_view& b, std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && !b.empty(); shift += 7) {
      auto c = static_cast<unsigned char>(b.front());
      b.remove_prefix(1);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  };
  auto find = [&](std::string_view b, unsigned want, std::string_view* len_out, std::uint64_t* int_out) -> int {
    while (!b.empty()) {
      std::uint64_t key = 0, v = 0;
      if (!read_varint(b, key)) return -1;
      const auto field = key >> 3;
      switch (key & 7) {
        case 0:
          if (!read_varint(b, v)) return -1;
          if (field == want && int_out) {
            *int_out = v;
            return 1;
          }
          break;
        case 1:
          if (b.size() < 8) return -1;
          b.remove_prefix(8);
          break;
        case 2:
          if (!read_varint(b, v) || v > b.size()) return -1;
          if (field == want && len_out) {
            *len_out = b.substr(0, v);
            return 1;
          }
          b.remove_prefix(v);
          break;
        case 5:
          if (b.size() < 4) return -1;
          b.remove_prefix(4);
          break;
        default:
          return -1;
      }
    }
    return 0;
  };
  std::string_view partial;
  int f = find(body, 1, &partial, nullptr);
  if (f <= 0) return f;
  std::uint64_t rejected = 0;
  f = find(partial, 1, nullptr, &rejected);
  if (f <= 0) return f;
  return static_cast<std::int64_t>(rejected);
}

}  // namespace gw::tracing
