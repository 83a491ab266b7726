#include "gw/core/json_parsers.hpp"
#include "gw/providers/json_dom.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "gw/core/json_writer.hpp"

namespace gw::providers::json_dom {

namespace dom = simdjson::dom;

dom::parser& outer_parser() {
  thread_local dom::parser p;
  return p;
}

dom::parser& inner_parser() {
  thread_local dom::parser p;
  return p;
}

simdjson::error_code parse_json(dom::parser& p, std::string_view json, dom::element& out) {
  thread_local std::vector<char> buf;
  fit_buffer(buf, json.size() + simdjson::SIMDJSON_PADDING);
  fit_parser(p, json.size());
  if (buf.size() < json.size() + simdjson::SIMDJSON_PADDING) buf.resize(json.size() + simdjson::SIMDJSON_PADDING);
  if (!json.empty()) std::memcpy(buf.data(), json.data(), json.size());
  return p.parse(buf.data(), json.size(), false).get(out);
}

std::optional<dom::element> member(dom::object o, std::string_view key) {
  dom::element e;
  if (o.at_key(key).get(e) || e.is_null()) return std::nullopt;
  return e;
}

std::optional<std::string_view> string_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  std::string_view s;
  if (!e || e->get_string().get(s)) return std::nullopt;
  return s;
}

std::int64_t int_member(dom::object o, std::string_view key, std::int64_t fallback) {
  auto e = member(o, key);
  std::int64_t n = 0;
  if (!e || e->get_int64().get(n)) return fallback;
  return n;
}

bool is_number(dom::element e) {
  auto t = e.type();
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 || t == dom::element_type::DOUBLE;
}

void append_number(std::string& out, dom::element e) {
  switch (e.type()) {
    case dom::element_type::INT64:
      append_json_number(out, e.get_int64().value_unsafe());
      break;
    case dom::element_type::UINT64:
      out += std::to_string(e.get_uint64().value_unsafe());
      break;
    default:
      append_json_number(out, e.get_double().value_unsafe());
      break;
  }
}

void append_json_array(std::string& out, const std::vector<std::string>& items) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += items[i];
  }
  out += ']';
}

void append_tool_call(std::string& out, std::string_view id, std::string_view name, std::optional<dom::element> input) {
  out += R"({"id":)";
  append_json_string(out, id);
  out += R"(,"type":"function","function":{"name":)";
  append_json_string(out, name);
  out += R"(,"arguments":)";
  append_json_string(out, input ? simdjson::minify(*input) : std::string("{}"));
  out += "}}";
}

void append_sse_event(std::string& out, std::string_view name, std::string_view json) {
  out += "event: ";
  out += name;
  out += "\ndata: ";
  out += json;
  out += "\n\n";
}

void append_response_head(std::string& out, const translate_context& ctx, std::string_view object) {
  out += R"({"id":)";
  append_json_string(out, ctx.response_id);
  out += R"(,"object":")";
  out += object;
  out += R"(","created":)";
  append_json_number(out, ctx.created);
  out += R"(,"model":)";
  append_json_string(out, ctx.response_model);
}

void append_assistant_choice(std::string& out, std::optional<std::string_view> content, std::string_view reasoning,
                             std::string_view tool_calls, std::string_view finish_reason) {
  out += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
  if (content)
    append_json_string(out, *content);
  else
    out += "null";
  if (!reasoning.empty()) {
    out += R"(,"reasoning_content":)";
    append_json_string(out, reasoning);
  }
  if (!tool_calls.empty()) {
    out += R"(,"tool_calls":[)";
    out += tool_calls;
    out += ']';
  }
  out += R"(,"refusal":null},"logprobs":null,"finish_reason":")";
  out += finish_reason;
  out += "\"}]";
}

void append_chunk(std::string& out, std::string_view head, std::string_view delta, std::string_view finish_reason,
                  bool usage_null) {
  out += "data: ";
  out += head;
  out += R"(,"choices":[{"index":0,"delta":)";
  out += delta;
  out += R"(,"logprobs":null,"finish_reason":)";
  if (finish_reason.empty()) {
    out += "null";
  } else {
    out += '"';
    out += finish_reason;
    out += '"';
  }
  out += "}]";
  // OpenAI sends "usage":null on every chunk when the client asked for usage.
  if (usage_null) out += R"(,"usage":null)";
  out += "}\n\n";
}

std::string tool_call_start_delta(std::int64_t index, std::string_view id, std::string_view name) {
  std::string d = R"({"tool_calls":[{"index":)";
  append_json_number(d, index);
  d += R"(,"id":)";
  append_json_string(d, id);
  d += R"(,"type":"function","function":{"name":)";
  append_json_string(d, name);
  d += R"(,"arguments":""}}]})";
  return d;
}

std::string tool_call_arguments_delta(std::int64_t index, std::string_view fragment) {
  std::string d = R"({"tool_calls":[{"index":)";
  append_json_number(d, index);
  d += R"(,"function":{"arguments":)";
  append_json_string(d, fragment);
  d += "}}]}";
  return d;
}

std::optional<std::string> take_last_line(std::string& buf) {
  if (buf.empty()) return std::nullopt;
  std::string line = std::move(buf);
  buf.clear();
  if (line.back() == '\r') line.pop_back();
  return line;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (!ok) len = 1;
    if (out.size() + len > max) {
      out += "...";
      break;
    }
    if (ok)
      out.append(s.substr(i, len));
    else
      out += '?';
    i += len;
  }
  return out;
}

bool contains_ci(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != haystack.end();
}

}  // namespace gw::providers::json_dom
