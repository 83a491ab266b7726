#pragma once
/// simdjson DOM helpers shared by the translators (anthropic.cpp, anthropic_ingress.cpp,
/// bedrock.cpp) and the mock's dialects: per-thread parsers, parsing unpadded text,
/// null-aware member reads, and the small pieces of JSON and SSE text they all write.
/// Internal to the gateway's libraries. Include it only from a target that links
/// simdjson::simdjson: dom::parser's layout depends on SIMDJSON_THREADS_ENABLED, which
/// that target defines, and the parsers below are shared across translation units.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/providers/adapter.hpp"

#ifndef SIMDJSON_THREADS_ENABLED
#error "gw/providers/json_dom.hpp needs simdjson::simdjson in the target's link libraries"
#endif

namespace gw::providers::json_dom {

// ---- parsing -------------------------------------------------------------------------
// A DOM document stays valid until its parser parses again; strings are copied into the
// parser, so the text (and the padded copy) may go away right after parse_json().

/// This thread's parser for whole documents (requests, responses, stream events).
simdjson::dom::parser& outer_parser();
/// This thread's parser for JSON found inside an outer document still being read (tool arguments).
simdjson::dom::parser& inner_parser();
/// Parses `json` (no padding needed: copied into a padded thread-local buffer) with `p` into `out`.
simdjson::error_code parse_json(simdjson::dom::parser& p, std::string_view json, simdjson::dom::element& out);

// ---- reading -------------------------------------------------------------------------

/// The member `key` of `o` if present and not null.
std::optional<simdjson::dom::element> member(simdjson::dom::object o, std::string_view key);
/// The member `key` of `o` if it is a string.
std::optional<std::string_view> string_member(simdjson::dom::object o, std::string_view key);
/// The member `key` of `o` if it is an integer that fits in int64, else `fallback`.
std::int64_t int_member(simdjson::dom::object o, std::string_view key, std::int64_t fallback);
/// True if `e` is a number (signed, unsigned or floating point).
bool is_number(simdjson::dom::element e);

// ---- writing -------------------------------------------------------------------------

/// Appends a number element as JSON (integers exactly, doubles in shortest form).
void append_number(std::string& out, simdjson::dom::element e);
/// Appends the JSON array of `items`, each already JSON text: "[item,item,...]".
void append_json_array(std::string& out, const std::vector<std::string>& items);
/// Appends an OpenAI tool call {"id","type":"function","function":{"name","arguments"}}, the
/// arguments being `input` re-serialised compact as a JSON string ("{}" when absent).
void append_tool_call(std::string& out, std::string_view id, std::string_view name,
                      std::optional<simdjson::dom::element> input);

// ---- OpenAI responses and stream chunks ----------------------------------------------

/// Appends {"id":..,"object":<object>,"created":..,"model":.. (left open) from `ctx`; `object` is
/// "chat.completion" or "chat.completion.chunk".
void append_response_head(std::string& out, const translate_context& ctx, std::string_view object);
/// Appends a chat.completion's ,"choices":[..] with one assistant message: `content` (null when
/// nullopt), "reasoning_content" and "tool_calls":[<tool_calls>] when not empty, `finish_reason`.
void append_assistant_choice(std::string& out, std::optional<std::string_view> content, std::string_view reasoning,
                             std::string_view tool_calls, std::string_view finish_reason);
/// Appends "data: <head>,"choices":[{"index":0,"delta":<delta>,"logprobs":null,"finish_reason":
/// <finish_reason, null if empty>}]" then ,"usage":null when `usage_null`, then "}\n\n".
void append_chunk(std::string& out, std::string_view head, std::string_view delta, std::string_view finish_reason,
                  bool usage_null);
/// The delta opening tool call `index`:
/// {"tool_calls":[{"index","id","type":"function","function":{"name","arguments":""}}]}.
std::string tool_call_start_delta(std::int64_t index, std::string_view id, std::string_view name);
/// The delta adding `fragment` to tool call `index`'s arguments: {"tool_calls":[{"index","function":{"arguments"}}]}.
std::string tool_call_arguments_delta(std::int64_t index, std::string_view fragment);

// ---- SSE -------------------------------------------------------------------------------

/// Appends one named SSE event (Anthropic's stream format): "event: <name>\ndata: <json>\n\n".
void append_sse_event(std::string& out, std::string_view name, std::string_view json);

/// Appends `bytes` to `buf` and passes each complete line (without its "\n" or "\r\n") to
/// `on_line` until that returns false; what follows stays in `buf`. `scan` (0 at first)
/// remembers how far `buf` was searched, so a long line is not searched again.
template <class OnLine>
void split_lines(std::string& buf, std::size_t& scan, std::string_view bytes, OnLine&& on_line) {
  buf.append(bytes);
  std::size_t start = 0;
  bool more = true;
  while (more) {
    auto nl = buf.find('\n', scan);
    if (nl == std::string::npos) break;
    std::string_view line(buf.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    more = on_line(line);
    start = scan = nl + 1;
  }
  buf.erase(0, start);
  scan = more ? buf.size() : 0;  // stopped early: the rest is not searched yet
}
/// The unterminated last line left in `buf` by split_lines() (without a trailing '\r'), `buf`
/// emptied; nullopt when there is none.
std::optional<std::string> take_last_line(std::string& buf);

// ---- text ------------------------------------------------------------------------------

/// At most `max` bytes of `s` cut at a UTF-8 character boundary (then "..."), invalid bytes
/// as '?': safe to quote in a message when `s` may be HTML or binary.
std::string printable(std::string_view s, std::size_t max);
/// True if `haystack` contains `needle`, ASCII letters compared case-insensitively.
bool contains_ci(std::string_view haystack, std::string_view needle);

}  // namespace gw::providers::json_dom
