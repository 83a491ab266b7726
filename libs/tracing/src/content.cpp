#include "gw/core/json_parsers.hpp"
#include "gw/tracing/content.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "content_detail.hpp"
#include "gw/core/json_writer.hpp"

namespace gw::tracing {

namespace {

namespace dom = simdjson::dom;

bool parse(std::string_view json, dom::element& out) { return detail::parse_padded(json, out); }

bool parse_object(std::string_view json, dom::object& out) {
  dom::element root;
  return parse(json, root) && !root.get_object().get(out);
}

/// A member that is present and not null.
std::optional<dom::element> member(dom::object o, std::string_view key) {
  dom::element e;
  if (o.at_key(key).get(e) || e.is_null()) return std::nullopt;
  return e;
}

std::string_view string_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  std::string_view s;
  if (!e || e->get_string().get(s)) return {};
  return s;
}

std::optional<dom::object> object_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  dom::object r;
  if (!e || e->get_object().get(r)) return std::nullopt;
  return r;
}

std::optional<dom::array> array_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  dom::array r;
  if (!e || e->get_array().get(r)) return std::nullopt;
  return r;
}

std::optional<double> double_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  double d = 0;
  if (!e || !e->is_number() || e->get_double().get(d)) return std::nullopt;
  return d;
}

std::optional<std::int64_t> int_member(dom::object o, std::string_view key) {
  auto e = member(o, key);
  std::int64_t n = 0;
  if (!e || e->get_int64().get(n)) return std::nullopt;
  return n;
}

/// Text of a message "content" (or Anthropic "system"): a string, or the text parts of
/// an array of {"type":"text","text":…}, joined with "\n".
void append_text(std::string& out, dom::element content) {
  std::string_view s;
  if (!content.get_string().get(s)) {
    if (!out.empty()) out += '\n';
    out.append(s);
    return;
  }
  dom::array parts;
  if (content.get_array().get(parts)) return;
  for (dom::element part : parts) {
    dom::object po;
    if (part.get_object().get(po)) continue;
    if (string_member(po, "type") != "text") continue;
    auto e = member(po, "text");
    if (e && !e->get_string().get(s)) {
      if (!out.empty()) out += '\n';
      out.append(s);
    }
  }
}

void append_tool_call(std::string& out, std::string_view id, std::string_view type, std::string_view name,
                      std::string_view arguments) {
  out += R"({"id":)";
  append_json_string(out, id);
  out += R"(,"type":)";
  append_json_string(out, type.empty() ? std::string_view("function") : type);
  out += R"(,"function":{"name":)";
  append_json_string(out, name);
  out += R"(,"arguments":)";
  append_json_string(out, arguments);
  out += "}}";
}

// ---- streams -------------------------------------------------------------------------

struct tool_acc {
  std::string id, type, name, arguments;
};

struct choice_acc {
  std::string role;
  std::string content;
  bool has_content = false;
  std::map<std::int64_t, tool_acc> tools;
  std::string finish_reason;
};

/// Indexes beyond this are not choices or tool calls anyone sends; ignoring them bounds
/// the work a hostile stream can cause.
constexpr std::int64_t max_index = 1024;

struct stream_assembler {
  bool with_content;
  response_view out;
  std::map<std::int64_t, choice_acc> choices;
  /// Reading the tail of a cut stream: finish reasons and ids only (the content between
  /// the head and the tail is gone).
  bool tail = false;

  void take_id_model(dom::object o) {
    if (out.id.empty()) out.id = std::string(string_member(o, "id"));
    if (out.model.empty()) out.model = std::string(string_member(o, "model"));
  }

  void event(std::string_view data) {
    while (!data.empty() && (data.back() == ' ' || data.back() == '\r')) data.remove_suffix(1);
    if (data.empty() || data == "[DONE]") return;
    dom::object o;
    if (!parse_object(data, o)) return;  // not JSON (or an error text): nothing to assemble
    if (auto arr = array_member(o, "choices")) {
      take_id_model(o);
      openai_choices(*arr);
      return;
    }
    anthropic_event(o);  // error events ({"error":…}) fall through harmlessly
  }

  void openai_choices(dom::array arr) {
    std::int64_t pos = 0;
    for (dom::element ce : arr) {
      dom::object c;
      if (ce.get_object().get(c)) continue;
      std::int64_t idx = int_member(c, "index").value_or(pos);
      ++pos;
      if (idx < 0 || idx > max_index) continue;
      auto& acc = choices[idx];
      auto finish = string_member(c, "finish_reason");
      if (!finish.empty()) acc.finish_reason = std::string(finish);
      if (!with_content || tail) continue;
      if (auto d = object_member(c, "delta")) {
        auto role = string_member(*d, "role");
        if (!role.empty() && acc.role.empty()) acc.role = std::string(role);
        if (auto ct = member(*d, "content")) {
          std::string_view s;
          if (!ct->get_string().get(s)) {
            acc.content.append(s);
            acc.has_content = true;
          }
        }
        if (auto tcs = array_member(*d, "tool_calls")) tool_call_deltas(acc, *tcs);
      } else if (auto t = member(c, "text")) {  // text_completion chunks
        std::string_view s;
        if (!t->get_string().get(s)) {
          acc.content.append(s);
          acc.has_content = true;
        }
      }
    }
  }

  static void tool_call_deltas(choice_acc& acc, dom::array tcs) {
    std::int64_t pos = 0;
    for (dom::element te : tcs) {
      dom::object t;
      if (te.get_object().get(t)) continue;
      std::int64_t idx = int_member(t, "index").value_or(pos);
      ++pos;
      if (idx < 0 || idx > max_index) continue;
      auto& tc = acc.tools[idx];
      auto id = string_member(t, "id");
      if (!id.empty() && tc.id.empty()) tc.id = std::string(id);
      auto type = string_member(t, "type");
      if (!type.empty() && tc.type.empty()) tc.type = std::string(type);
      if (auto f = object_member(t, "function")) {
        auto name = string_member(*f, "name");
        if (!name.empty() && tc.name.empty()) tc.name = std::string(name);
        tc.arguments.append(string_member(*f, "arguments"));
      }
    }
  }

  /// Anthropic Messages stream events (the client spoke Anthropic's API): one choice.
  void anthropic_event(dom::object o) {
    auto type = string_member(o, "type");
    if (type.empty()) return;
    if (type == "message_start") {
      if (auto m = object_member(o, "message")) take_id_model(*m);
      choices[0].role = "assistant";
      return;
    }
    if (type == "message_delta") {
      if (auto d = object_member(o, "delta")) {
        auto stop = string_member(*d, "stop_reason");
        if (!stop.empty()) choices[0].finish_reason = std::string(stop);
      }
      return;
    }
    if (!with_content || tail) return;
    std::int64_t idx = int_member(o, "index").value_or(0);
    if (idx < 0 || idx > max_index) return;
    auto& acc = choices[0];
    if (type == "content_block_start") {
      auto b = object_member(o, "content_block");
      if (!b) return;
      auto bt = string_member(*b, "type");
      if (bt == "text") {
        acc.content.append(string_member(*b, "text"));
        acc.has_content = true;
      } else if (bt == "tool_use") {
        auto& tc = acc.tools[idx];
        tc.id = std::string(string_member(*b, "id"));
        tc.name = std::string(string_member(*b, "name"));
      }
    } else if (type == "content_block_delta") {
      auto d = object_member(o, "delta");
      if (!d) return;
      auto dt = string_member(*d, "type");
      if (dt == "text_delta") {
        acc.content.append(string_member(*d, "text"));
        acc.has_content = true;
      } else if (dt == "input_json_delta") {
        auto it = acc.tools.find(idx);
        if (it != acc.tools.end()) it->second.arguments.append(string_member(*d, "partial_json"));
      }
    }
  }

  response_view finish() {
    for (auto& [idx, c] : choices)
      if (!c.finish_reason.empty()) out.finish_reasons.push_back(c.finish_reason);
    if (!with_content || choices.empty()) return std::move(out);
    std::string& j = out.output_json;
    j += '[';
    bool first = true;
    for (auto& [idx, c] : choices) {
      if (!first) j += ',';
      first = false;
      j += R"({"role":)";
      append_json_string(j, c.role.empty() ? std::string_view("assistant") : std::string_view(c.role));
      j += R"(,"content":)";
      if (c.has_content)
        append_json_string(j, c.content);
      else
        j += "null";
      if (!c.tools.empty()) {
        j += R"(,"tool_calls":[)";
        bool tfirst = true;
        for (auto& [ti, t] : c.tools) {
          if (!tfirst) j += ',';
          tfirst = false;
          append_tool_call(j, t.id, t.type, t.name, t.arguments);
        }
        j += ']';
      }
      j += '}';
    }
    j += ']';
    return std::move(out);
  }
};

/// Feeds the complete events of `sse` to the assembler.
void feed_events(stream_assembler& a, std::string_view sse) {
  std::string data;
  bool has_data = false;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    auto nl = sse.find('\n', pos);
    // A last line without its newline, and any event not closed by a blank line, is
    // a partial event (the capture was cut): discarded, as an SSE reader does at EOF.
    if (nl == std::string_view::npos) break;
    std::string_view line = sse.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (has_data) a.event(data);
      data.clear();
      has_data = false;
      continue;
    }
    if (line.front() == ':') continue;  // comment
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    if (field != "data") continue;  // event:, id:, retry:
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data) data += '\n';
    data.append(value);
    has_data = true;
  }
}

response_view read_stream(std::string_view sse, bool with_content, std::string_view tail) {
  stream_assembler a{with_content, {}, {}};
  feed_events(a, sse);
  if (!tail.empty()) {
    // The tail starts at an event boundary or inside a cut event, whose rest is not a
    // "data:" line and is skipped.
    a.tail = true;
    feed_events(a, tail);
  }
  return a.finish();
}

// ---- whole bodies ----------------------------------------------------------------------

void append_chat_message(std::string& j, dom::object m) {
  auto role = string_member(m, "role");
  j += R"({"role":)";
  append_json_string(j, role.empty() ? std::string_view("assistant") : role);
  j += R"(,"content":)";
  if (auto c = member(m, "content"))
    j += simdjson::minify(*c);
  else
    j += "null";
  if (auto tc = member(m, "tool_calls")) {
    j += R"(,"tool_calls":)";
    j += simdjson::minify(*tc);
  }
  j += '}';
}

response_view read_body(std::string_view body, bool with_content) {
  response_view v;
  dom::object o;
  if (!parse_object(body, o)) return v;
  v.id = std::string(string_member(o, "id"));
  v.model = std::string(string_member(o, "model"));
  if (auto arr = array_member(o, "choices")) {
    // (index, message JSON, finish reason), put in index order.
    std::vector<std::tuple<std::int64_t, std::string, std::string>> cs;
    std::int64_t pos = 0;
    for (dom::element ce : *arr) {
      dom::object c;
      if (ce.get_object().get(c)) continue;
      std::int64_t idx = int_member(c, "index").value_or(pos);
      ++pos;
      std::string msg;
      if (with_content) {
        if (auto m = object_member(c, "message")) {
          append_chat_message(msg, *m);
        } else if (auto t = member(c, "text")) {
          msg = R"({"role":"assistant","content":)";
          msg += simdjson::minify(*t);
          msg += '}';
        }
      }
      cs.emplace_back(idx, std::move(msg), std::string(string_member(c, "finish_reason")));
    }
    std::stable_sort(cs.begin(), cs.end(),
                     [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
    bool first = true;
    for (auto& [idx, msg, finish] : cs) {
      if (!finish.empty()) v.finish_reasons.push_back(std::move(finish));
      if (msg.empty()) continue;
      v.output_json += first ? '[' : ',';
      first = false;
      v.output_json += msg;
    }
    if (!first) v.output_json += ']';
    return v;
  }
  // Anthropic Messages response (the client spoke Anthropic's API).
  if (string_member(o, "type") == "message") {
    auto stop = string_member(o, "stop_reason");
    if (!stop.empty()) v.finish_reasons.emplace_back(stop);
    if (!with_content) return v;
    std::string text, tools;
    bool has_text = false;
    if (auto blocks = array_member(o, "content")) {
      for (dom::element be : *blocks) {
        dom::object b;
        if (be.get_object().get(b)) continue;
        auto bt = string_member(b, "type");
        if (bt == "text") {
          text.append(string_member(b, "text"));
          has_text = true;
        } else if (bt == "tool_use") {
          if (!tools.empty()) tools += ',';
          auto input = member(b, "input");
          append_tool_call(tools, string_member(b, "id"), "function", string_member(b, "name"),
                           input ? simdjson::minify(*input) : std::string("{}"));
        }
      }
    }
    v.output_json = R"([{"role":"assistant","content":)";
    if (has_text)
      append_json_string(v.output_json, text);
    else
      v.output_json += "null";
    if (!tools.empty()) {
      v.output_json += R"(,"tool_calls":[)";
      v.output_json += tools;
      v.output_json += ']';
    }
    v.output_json += "}]";
  }
  // Embeddings ("object":"list") and anything else: no output content.
  return v;
}

}  // namespace

namespace detail {

bool parse_padded(std::string_view json, simdjson::dom::element& out) {
  thread_local simdjson::dom::parser parser;
  thread_local std::vector<char> buf;  // the bodies are not padded
  if (json.empty()) return false;
  fit_buffer(buf, json.size() + simdjson::SIMDJSON_PADDING);
  fit_parser(parser, json.size());
  if (buf.size() < json.size() + simdjson::SIMDJSON_PADDING) buf.resize(json.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(buf.data(), json.data(), json.size());
  return !parser.parse(buf.data(), json.size(), false).get(out);
}

request_view read_request(std::string_view body, bool with_content) {
  request_view v;
  dom::object o;
  if (!parse_object(body, o)) return v;
  if (with_content) {
    // Anthropic Messages requests carry the system prompt beside the messages.
    if (auto sys = member(o, "system")) append_text(v.system_instructions, *sys);
    if (auto msgs = array_member(o, "messages")) {
      v.input_json = simdjson::minify(*msgs);
      for (dom::element me : *msgs) {
        dom::object m;
        if (me.get_object().get(m)) continue;
        auto role = string_member(m, "role");
        if (role != "system" && role != "developer") continue;
        if (auto c = member(m, "content")) append_text(v.system_instructions, *c);
      }
    } else if (auto prompt = member(o, "prompt")) {
      v.input_json = R"([{"role":"user","content":)";
      v.input_json += simdjson::minify(*prompt);
      v.input_json += "}]";
    } else if (auto input = member(o, "input")) {
      v.input_json = simdjson::minify(*input);
    }
    if (auto tools = array_member(o, "tools")) v.tools_json = simdjson::minify(*tools);
  }
  v.temperature = double_member(o, "temperature");
  v.top_p = double_member(o, "top_p");
  v.frequency_penalty = double_member(o, "frequency_penalty");
  v.presence_penalty = double_member(o, "presence_penalty");
  v.max_tokens = int_member(o, "max_tokens");
  if (!v.max_tokens) v.max_tokens = int_member(o, "max_completion_tokens");
  v.seed = int_member(o, "seed");
  v.n = int_member(o, "n");
  auto stop = member(o, "stop");
  if (!stop) stop = member(o, "stop_sequences");
  if (stop) {
    std::string_view s;
    dom::array arr;
    if (!stop->get_string().get(s)) {
      v.stop.emplace_back(s);
    } else if (!stop->get_array().get(arr)) {
      for (dom::element e : arr)
        if (!e.get_string().get(s)) v.stop.emplace_back(s);
    }
  }
  return v;
}

response_view read_response(std::string_view body, bool stream, bool with_content, std::string_view tail) {
  return stream ? read_stream(body, with_content, tail) : read_body(body, with_content);
}

}  // namespace detail

request_view read_request(std::string_view body) { return detail::read_request(body, true); }

response_view read_response(std::string_view body, bool stream) { return detail::read_response(body, stream, true); }

trace_metadata read_metadata(std::string_view metadata_json) {
  trace_metadata m;
  dom::object o;
  if (!parse_object(metadata_json, o)) return m;
  m.trace_name = std::string(string_member(o, "trace_name"));
  m.generation_name = std::string(string_member(o, "generation_name"));
  m.session_id = std::string(string_member(o, "session_id"));
  m.trace_user_id = std::string(string_member(o, "trace_user_id"));
  m.trace_version = std::string(string_member(o, "trace_version"));
  m.trace_release = std::string(string_member(o, "trace_release"));
  if (auto tags = array_member(o, "tags")) {
    std::string_view s;
    for (dom::element e : *tags)
      if (!e.get_string().get(s)) m.tags.emplace_back(s);
  }
  if (auto tm = member(o, "trace_metadata"); tm && tm->is_object()) m.trace_metadata_json = simdjson::minify(*tm);
  return m;
}

bool truncate_utf8(std::string& s, std::size_t max) {
  if (s.size() <= max) return false;
  std::size_t cut = max;
  // Back off over continuation bytes to the start of the character that would be split
  // (at most 3: a longer run is not UTF-8, and cutting inside it breaks nothing more).
  for (int k = 0; k < 3 && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80; ++k) --cut;
  s.resize(cut);
  return true;
}

}  // namespace gw::tracing
