#pragma once
/// Anthropic Messages API as an ingress (Anthropic SDK clients -> the gateway's
/// POST /v1/messages): the gateway works in OpenAI's format, so the request is
/// translated to an OpenAI chat request and the answer (whole, streamed or an error)
/// back into Anthropic's shape. Pure functions, no I/O; thread-safe (one parser per
/// thread); an anthropic_stream_writer is used by one thread at a time.
///
/// Choices worth knowing:
/// - system (string or text blocks, joined with "\n") -> one leading system message.
/// - A user turn's tool_result blocks become "tool" messages placed before the rest of
///   the turn (OpenAI wants them right after the assistant's tool_calls); a result
///   with is_error is prefixed "Error: "; images inside tool results cannot be carried
///   by OpenAI tool messages and become "[image]".
/// - Dropped, as OpenAI has no equivalent: top_k, thinking, service_tier,
///   cache_control, container/mcp fields, and thinking blocks in assistant turns.
///   Server tools (web_search, bash, ...) are refused with a 400.
/// - stop_reason: stop -> end_turn (OpenAI does not say whether a stop sequence
///   matched), length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal.
/// - Usage: input_tokens = prompt_tokens - cached - cache writes (Anthropic counts
///   them apart), cache_read_input_tokens = cached.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/providers/adapter.hpp"

namespace gw::providers {

/// What the response translation needs to know about the request.
struct anthropic_request_info {
  std::string model;            ///< as the client named it; echoed in responses
  bool stream = false;
  bool has_tools = false;       ///< tools were offered
  std::int64_t max_tokens = 0;
  std::size_t text_bytes = 0;   ///< bytes of prompt text (system, text blocks, tool results)
};

/// An Anthropic Messages request -> an OpenAI chat request in `openai_body` (stream
/// requests get stream_options.include_usage, so that usage can be reported). The
/// Anthropic validation rules the gateway enforces (model, max_tokens, messages with
/// roles user/assistant, block shapes) give a 400 invalid_request_error with
/// Anthropic-style messages ("max_tokens: Field required").
std::optional<provider_error> anthropic_request_to_openai(std::string_view anthropic_body, std::string& openai_body,
                                                          anthropic_request_info& info);

/// An OpenAI chat.completion -> an Anthropic message ("id": "msg_" + the OpenAI id
/// without its "chatcmpl-" prefix; "model": info.model, or the response's when empty).
/// Text (or the refusal) becomes one text block, each tool call a tool_use block whose
/// input is the parsed arguments; arguments that are not a JSON object (cut by
/// max_tokens, a model's mistake) are kept as {"raw_arguments": "<text>"}. Input that
/// is not a chat completion, or an OpenAI error body, gives an Anthropic error body.
std::string openai_response_to_anthropic(std::string_view openai_json, const anthropic_request_info& info);

/// The Anthropic error type for an HTTP status: 400 invalid_request_error, 401
/// authentication_error, 403 permission_error, 404 not_found_error, 413
/// request_too_large, 429 rate_limit_error, 503/529 overloaded_error, other 4xx
/// invalid_request_error (as Anthropic documents), else api_error.
std::string_view anthropic_error_type(int status) noexcept;

/// {"type":"error","error":{"type":<type>,"message":<message>}}
std::string anthropic_error_json(std::string_view type, std::string_view message);

/// An OpenAI error body (or any text) with its status -> an Anthropic error body.
std::string openai_error_to_anthropic(int status, std::string_view openai_error_json);

/// A provider_error (e.g. from anthropic_request_to_openai) -> an Anthropic error body.
std::string provider_error_to_anthropic(const provider_error& e);

/// OpenAI SSE chunks -> Anthropic SSE events ("event: X\ndata: {...}\n\n"), fed
/// incrementally (bytes split anywhere, \n or \r\n line ends). Emits message_start
/// (at the first chunk with choices; usage 0, OpenAI reports it only at the end),
/// content_block_start/delta/stop for text and for each tool call (blocks one after
/// the other, as Anthropic sends them), then at [DONE] message_delta (stop_reason;
/// usage from the usage chunk, input_tokens included) and message_stop. An OpenAI
/// error event ({"error":...}) closes the open block and becomes `event: error`,
/// ending the stream. Only choice 0 is relayed. Reasoning deltas are dropped.
/// Rare case: a tool call's argument fragment arriving after another block started
/// is sent with its own (already stopped) block index; SDKs accumulate by index.
class anthropic_stream_writer {
 public:
  explicit anthropic_stream_writer(anthropic_request_info info);

  /// Consumes OpenAI SSE bytes; appends the Anthropic events that became complete.
  void feed(std::string_view openai_sse, std::string& out);
  /// The upstream stream ended. Without [DONE] or an error event: if a finish_reason
  /// came (only [DONE] is missing) the message is ended normally; otherwise the open
  /// block is closed and an error event (api_error) appended: the answer is incomplete.
  void finish(std::string& out);

  /// message_stop or an error event was written: nothing more will be.
  bool done() const noexcept { return done_; }
  /// The stream ended with an error event.
  bool failed() const noexcept { return failed_; }
  /// Usage read from the chunks (known() once the usage chunk came).
  const usage& tokens() const noexcept { return tokens_; }

 private:
  void on_line(std::string_view line, std::string& out);
  void dispatch(std::string& out);
  void on_chunk(std::string& out);
  void start(std::string& out);
  void open_block(std::string& out, std::string_view content_block_json);
  void close_block(std::string& out);
  void end(std::string& out);
  void error_event(std::string& out, std::string_view type, std::string_view message);

  anthropic_request_info info_;
  std::string buf_;        ///< bytes not yet ending a line
  std::size_t scan_ = 0;   ///< where to look for the next '\n' in buf_
  std::string data_;       ///< the current event's data lines
  std::string id_;         ///< "msg_..." from the first chunk id
  std::string model_;      ///< from the first chunk, when the request named none
  bool started_ = false, done_ = false, failed_ = false;
  int next_block_ = 0;     ///< next Anthropic content block index
  int open_block_ = -1;    ///< index of the open block, -1 = none
  bool open_is_text_ = false;
  std::vector<std::pair<std::int64_t, int>> tools_;  ///< OpenAI tool_calls index -> block index
  std::string stop_reason_;
  usage tokens_;
};

}  // namespace gw::providers
