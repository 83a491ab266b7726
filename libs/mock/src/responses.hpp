#pragma once
// The mock provider's request reading and response bodies: pure functions.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gw::mock {

enum class kind { chat, completion, embedding };

/// What the mock needs from a request, x_mock included.
struct mock_request {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::string last_text;          // last message's text (chat) or the prompt (completion)
  std::size_t text_bytes = 0;     // all prompt text, for prompt_tokens
  std::vector<std::string> inputs;  // embeddings: one text per input
  // Tools, answered alike by every dialect: when tools are offered (tool_choice not
  // "none") and the last message is not a tool result, the answer is one call of the
  // first tool with arguments {"query": <last_text>}; after a tool result (then
  // last_text is the result's text) the answer text is "Tool result: <last_text>".
  std::string tool_name;            // the first offered tool; empty: none
  bool after_tool_result = false;
  int dimensions = 0;
  bool base64 = false;
  // x_mock
  int status = 0;
  std::string retry_after;
  bool has_raw_body = false;
  std::string raw_body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  int latency_ms = -1;
  bool hang = false;
  int tokens = -1;
  double tokens_per_second = -1;
  int drop_after = -1;
  int corrupt_after = -1;  // Bedrock streams: the frame after this many content frames has a bad CRC
  bool echo = false;
};

/// A fault programmed through POST /_mock/faults: the x_mock fields in `behaviour` are
/// applied to the next `count` requests (-1: all) for `model` (empty: any model).
struct fault {
  std::string model;
  std::int64_t count = -1;
  mock_request behaviour;
};
/// Parses {"model": "...", "count": N, "x_mock": {...}}.
bool parse_fault(std::string_view body, fault& out, std::string& err);
/// Copies the fields `f` sets onto `r`.
void apply_fault(const mock_request& f, mock_request& r);

/// Parses `body` (no padding needed). False with `err` on invalid JSON or types.
bool parse_request(std::string_view body, kind k, mock_request& out, std::string& err);

/// True when the answer is a tool call (see mock_request::tool_name).
inline bool wants_tool_call(const mock_request& r) { return !r.tool_name.empty() && !r.after_tool_result; }
/// {"query": last_text} as JSON text: the arguments of the mock's tool call.
std::string tool_arguments(const mock_request& r);

/// The completion's words ("Tool result: ..." after a tool result).
std::vector<std::string> completion_words(const mock_request& r, int default_tokens);

std::int64_t prompt_tokens(const mock_request& r);

std::string chat_body(std::string_view id, std::int64_t created, std::string_view model, std::string_view content,
                      std::int64_t prompt, std::int64_t completion);
/// A chat completion that calls `tool` with `arguments` (finish_reason tool_calls).
std::string tool_call_body(std::string_view id, std::int64_t created, std::string_view model, std::string_view tool,
                           std::string_view arguments, std::int64_t prompt);
/// The same as stream events (role + tool header, arguments in two fragments, finish).
std::vector<std::string> tool_call_events(std::string_view id, std::int64_t created, std::string_view model,
                                          std::string_view tool, std::string_view arguments, bool include_usage,
                                          std::int64_t prompt);
std::string completion_body(std::string_view id, std::int64_t created, std::string_view model,
                            std::string_view text, std::int64_t prompt, std::int64_t completion);

/// Stream events ("data: ...\n\n"), in order, for a chat or completion stream.
std::vector<std::string> stream_events(kind k, std::string_view id, std::int64_t created, std::string_view model,
                                       const std::vector<std::string>& words, bool include_usage,
                                       std::int64_t prompt);

/// The deterministic unit vector the mock gives `text` (FNV-1a seed, xorshift), the
/// same in every dialect; and its JSON array form.
std::vector<float> embedding_vector(std::string_view text, int dims);
void append_float_array(std::string& out, const std::vector<float>& v);

std::string embeddings_body(const mock_request& r, int default_dims);
std::string models_body(const std::vector<std::string>& models);
std::string error_body(int status);
std::string error_body(std::string_view message, std::string_view type, std::string_view code);

}  // namespace gw::mock
