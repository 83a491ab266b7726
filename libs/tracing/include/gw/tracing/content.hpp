#pragma once
/// Reading what a trace shows from the captured bodies, off the request path: the
/// request's messages and parameters, the answer's message(s), finish reasons and id,
/// a stream's chunks assembled into one message, and LiteLLM-style trace metadata.
/// Pure functions over (possibly truncated) bytes: truncated or invalid JSON gives
/// empty results, never an exception.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gw::tracing {

/// From the client's request body (OpenAI chat/completions/embeddings JSON).
struct request_view {
  /// The chat "messages" array as JSON (system messages included), or for completions
  /// [{"role":"user","content":<prompt>}], for embeddings the "input" value; "" if none.
  std::string input_json;
  /// The system messages' text joined with "\n" (gen_ai.system_instructions); "" if none.
  std::string system_instructions;
  /// The "tools" array as JSON; "" if none.
  std::string tools_json;
  std::optional<double> temperature, top_p, frequency_penalty, presence_penalty;
  std::optional<std::int64_t> max_tokens;  ///< max_tokens or max_completion_tokens
  std::optional<std::int64_t> seed, n;
  std::vector<std::string> stop;           ///< "stop" as a list
};
request_view read_request(std::string_view body);

/// From the answer: a chat.completion / text_completion JSON body, or the SSE bytes of
/// a stream (chunks assembled: content and tool-call arguments concatenated per
/// choice index, role and finish_reason kept; "data: [DONE]" and error events handled).
struct response_view {
  std::string id;
  std::string model;
  /// The output messages as a JSON array of {"role","content"[,"tool_calls"]} objects
  /// in choice order (completions: {"role":"assistant","content":<text>}); "" if none.
  /// Embeddings: "" (vectors are not content worth tracing).
  std::string output_json;
  std::vector<std::string> finish_reasons;  ///< per choice, in order
};
response_view read_response(std::string_view body, bool stream);

/// The request's parameters (no content), "user" and "metadata" (raw JSON), from an
/// OpenAI request held with simdjson's padding past `size` (`capacity` bytes in all):
/// read on the request path when no consumer wants the bodies.
bool read_request_facts(const char* data, std::size_t size, std::size_t capacity, request_view& out,
                        std::string& user, std::string& metadata);
/// A whole answer's id, model and finish reasons (no content), likewise.
bool read_answer_facts(const char* data, std::size_t size, std::size_t capacity, response_view& out);

/// LiteLLM's request-metadata fields for Langfuse (metadata.trace_name, …). Absent
/// fields are empty.
struct trace_metadata {
  std::string trace_name, generation_name, session_id, trace_user_id, trace_version, trace_release;
  std::vector<std::string> tags;
  /// metadata.trace_metadata as JSON (object), "" if none.
  std::string trace_metadata_json;
};
trace_metadata read_metadata(std::string_view metadata_json);

/// Cuts `s` to at most `max` bytes at a UTF-8 character boundary; true if it cut.
bool truncate_utf8(std::string& s, std::size_t max);

}  // namespace gw::tracing
