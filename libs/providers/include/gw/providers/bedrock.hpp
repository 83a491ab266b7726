#pragma once
/// AWS Bedrock Runtime adapter: OpenAI chat completions <-> Converse / ConverseStream,
/// OpenAI embeddings <-> InvokeModel (Titan, Cohere). Pure translation (see
/// adapter.hpp): the caller signs the translated request (sigv4.hpp, service "bedrock",
/// or "Authorization: Bearer <Bedrock API key>") and does the I/O.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/providers/adapter.hpp"

namespace gw::providers {

/// "/model/<model id percent-encoded>/<action>", action "converse", "converse-stream"
/// or "invoke". Every byte of the id but A-Za-z0-9-_.~ is encoded (':' -> %3A,
/// '/' -> %2F), so ARNs and inference-profile ids stay one path segment.
std::string bedrock_path(std::string_view model_id, std::string_view action);

/// An OpenAI chat request -> a Converse request for ctx.upstream_model (path converse
/// or converse-stream by ctx.stream). 400 errors (invalid_request_error) for invalid
/// JSON, wrong types, and what Converse cannot take (n > 1, http(s) image URLs without
/// a fetched copy, tool call arguments that are not JSON, a json_schema that is not an
/// object's). response_format json_object / json_schema is emulated with a tool named
/// json_tool_call (toolChoice {"tool"} for Claude, Nova and Mistral Large, unless the
/// client set tool_choice) and sets ctx.json_tool_call, by which from_converse() and
/// converse_stream_translator() turn that tool's input into the content. Fields
/// Converse has no use for (stream, stream_options, user, seed, n = 1, ...) are
/// ignored; top_k goes to additionalModelRequestFields.
/// The distinct http(s) image URLs of an OpenAI chat body's messages (Bedrock takes
/// images inline only: the gateway fetches these and passes them in
/// translate_context::fetched_images). Empty when there are none or the body is not JSON.
std::vector<std::string> image_urls(std::string_view openai_chat_body);

request_result to_converse(const translate_context& ctx, std::string_view openai_chat_body);

/// A Converse answer -> an OpenAI chat.completion (2xx) or error (otherwise).
/// `amzn_error_type` is the x-amzn-ErrorType response header (may be empty).
translated_response from_converse(const translate_context& ctx, int status, std::string_view body,
                                  std::string_view amzn_error_type);

/// A Bedrock failure -> an OpenAI error (status, type, code, "Bedrock <Type>: <message>").
/// The type comes from `amzn_error_type` (the part before ':'), else from a "__type"
/// member of the body, else from the status. Exposed for the stream translator and tests.
provider_error bedrock_error(int status, std::string_view body, std::string_view amzn_error_type);

/// Translates a ConverseStream response body (event-stream frames) into OpenAI
/// chat.completion.chunk events.
std::unique_ptr<stream_translator> converse_stream_translator(const translate_context& ctx);

/// An OpenAI embeddings request -> an InvokeModel request. Titan ("amazon.titan-embed"
/// in the model id): exactly one input, {"inputText", "dimensions"?} (several: see
/// to_titan_embedding() below). Cohere
/// ("cohere.embed"): {"texts", "input_type":"search_document"}.
request_result to_bedrock_embedding(const translate_context& ctx, std::string_view openai_embeddings_body);

/// An InvokeModel embeddings answer (Titan or Cohere) -> an OpenAI embeddings list.
translated_response from_bedrock_embedding(const translate_context& ctx, int status, std::string_view body,
                                           std::string_view amzn_error_type);

// Titan's InvokeModel embeds one text per call. A request with several inputs is sent,
// as LiteLLM does, as one call per input: the functions below translate one input at a
// time and combine the single answers; the calls themselves are the caller's.

/// True for a Titan embedding model ("amazon.titan-embed" in the id, inference profiles
/// and ARNs included).
bool is_titan_embedding(std::string_view model_id) noexcept;

/// At most this many inputs per embeddings request (OpenAI's limit).
inline constexpr std::size_t max_embedding_inputs = 2048;

/// The texts of an OpenAI embeddings request for Titan, read once for its N calls.
struct titan_inputs {
  std::vector<std::string> texts;  ///< `input`: a string, or an array of 1..2048 strings
  std::optional<std::int64_t> dimensions;
};

/// Reads `input` and `dimensions` of an OpenAI embeddings request into `out`; the 400 of
/// to_bedrock_embedding() for what Titan cannot take (token ids, an empty input, ...),
/// and for more than max_embedding_inputs inputs.
std::optional<provider_error> read_titan_inputs(std::string_view openai_embeddings_body, titan_inputs& out);

/// The InvokeModel request embedding input `index` of `in` alone, for ctx.upstream_model.
/// An index out of range is a 400 (never a crash).
request_result to_titan_embedding(const translate_context& ctx, const titan_inputs& in, std::size_t index);

/// Combines Titan's single answers, added in input order as they come, into one OpenAI
/// embeddings list (so the caller keeps only the list being built). Not thread-safe.
class titan_embeddings {
 public:
  /// Adds the (2xx) answer for the next input; a body that is not a Titan embedding is a
  /// 502 error and adds nothing.
  std::optional<provider_error> add(std::string_view titan_body);
  /// Answers added so far.
  std::size_t size() const noexcept { return count_; }
  /// {"object":"list","data":[...],"model":ctx.response_model,"usage"}: data[i].index = i,
  /// usage = the sum of the answers' inputTextTokenCount. Leaves this object empty.
  translated_response finish(const translate_context& ctx);

 private:
  std::string data_;  ///< the embedding objects so far, comma-separated
  std::size_t count_ = 0;
  std::int64_t tokens_ = 0;
};

}  // namespace gw::providers
