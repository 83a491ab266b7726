#pragma once
// Helpers shared by the provider translation tests (tests/unit/providers) and the mock's
// route tests (tests/unit/mock). A target including this links simdjson::simdjson.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "gw/providers/adapter.hpp"
#include "gw/providers/eventstream.hpp"

#ifndef SIMDJSON_THREADS_ENABLED
#error "test_helpers.hpp needs simdjson::simdjson in the test target's DEPS"
#endif

namespace gw::test {

/// A parsed JSON document for assertions, read by JSON pointer (keeps its own parser alive).
class json_doc {
 public:
  explicit json_doc(std::string_view text) : text_(text) { ok_ = !parser_.parse(text_).get(root_); }
  /// True if the text parsed.
  bool ok() const { return ok_; }
  /// The string at `ptr`, or "<missing ptr>".
  std::string str(std::string_view ptr) const {
    std::string_view s;
    if (!ok_ || root_.at_pointer(ptr).get_string().get(s)) return "<missing " + std::string(ptr) + ">";
    return std::string(s);
  }
  /// The integer at `ptr`, or -999.
  std::int64_t num(std::string_view ptr) const {
    std::int64_t n = 0;
    if (!ok_ || root_.at_pointer(ptr).get_int64().get(n)) return -999;
    return n;
  }
  /// True if `ptr` names a value (null included).
  bool has(std::string_view ptr) const {
    simdjson::dom::element e;
    return ok_ && !root_.at_pointer(ptr).get(e);
  }
  /// True if the value at `ptr` is null.
  bool is_null(std::string_view ptr) const {
    simdjson::dom::element e;
    return ok_ && !root_.at_pointer(ptr).get(e) && e.is_null();
  }
  /// The value at `ptr` as compact JSON, or "<missing ptr>".
  std::string raw(std::string_view ptr) const {
    simdjson::dom::element e;
    if (!ok_ || root_.at_pointer(ptr).get(e)) return "<missing " + std::string(ptr) + ">";
    return simdjson::minify(e);
  }

 private:
  simdjson::padded_string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  bool ok_ = false;
};

/// A translation context for `upstream`, answered as `response_model` with id `response_id`,
/// created at 1700000000 (2023-11-14).
inline providers::translate_context make_context(std::string upstream, std::string response_model,
                                                 std::string response_id, bool stream = false,
                                                 bool include_usage = false) {
  providers::translate_context c;
  c.upstream_model = std::move(upstream);
  c.response_model = std::move(response_model);
  c.response_id = std::move(response_id);
  c.created = 1700000000;
  c.stream = stream;
  c.include_usage = include_usage;
  return c;
}

/// The translated request's body; a test failure when `r` is an error or has no request.
inline std::string body_of(const providers::request_result& r) {
  EXPECT_TRUE(r.request && !r.error) << (r.error ? "unexpected error: " + r.error->message : "no request");
  return r.request ? r.request->body : std::string();
}

/// The translation's error; a test failure when `r` has none or has a request as well.
inline providers::provider_error error_of(const providers::request_result& r) {
  EXPECT_TRUE(r.error) << "expected an error, got " << (r.request ? r.request->body : "nothing");
  EXPECT_FALSE(r.request);
  return r.error.value_or(providers::provider_error{});
}

/// The value of the first header `name` in `r.headers` (name/value pairs), or "<none>".
template <class Response>
std::string header(const Response& r, std::string_view name) {
  for (auto& [k, v] : r.headers)
    if (k == name) return v;
  return "<none>";
}

/// One Bedrock ConverseStream event frame (`:event-type` type, JSON payload).
inline std::string event(std::string_view type, std::string_view payload) {
  return providers::eventstream::encode_message(
      {{":event-type", std::string(type)}, {":content-type", "application/json"}, {":message-type", "event"}}, payload);
}

/// A recorded Anthropic Messages text stream ("Hello wörld\n!", 25 input and 15 output
/// tokens) ending with `stop_reason` (end_turn, max_tokens, ...).
inline std::string anthropic_text_stream(std::string_view stop_reason) {
  return std::string(
             "event: message_start\n"
             R"json(data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-opus-4-1","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})json"
             "\n\n"
             "event: content_block_start\n"
             R"json(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})json"
             "\n\n"
             "event: ping\n"
             R"json(data: {"type": "ping"})json"
             "\n\n"
             "event: content_block_delta\n"
             R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})json"
             "\n\n"
             "event: content_block_delta\n"
             R"json(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wörld\n!"}})json"
             "\n\n"
             "event: content_block_stop\n"
             R"json(data: {"type":"content_block_stop","index":0})json"
             "\n\n"
             "event: message_delta\n"
             R"json(data: {"type":"message_delta","delta":{"stop_reason":")json") +
         std::string(stop_reason) +
         R"json(","stop_sequence":null},"usage":{"output_tokens":15}})json"
         "\n\n"
         "event: message_stop\n"
         R"json(data: {"type":"message_stop"})json"
         "\n\n";
}

}  // namespace gw::test
