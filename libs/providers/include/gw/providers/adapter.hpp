#pragma once
/// The contract of a translating provider adapter (Bedrock Converse, Anthropic
/// Messages, ...): pure translation between OpenAI's wire format, which clients speak
/// and the gateway works in, and a provider's. No I/O, no clock, no randomness of
/// its own: everything time- or call-dependent comes in `translate_context`, so each
/// adapter is unit-tested with recorded payloads. Authentication (API keys, SigV4,
/// Entra tokens) is added by the caller: signing needs the final bytes.
///
/// Errors: a provider's failure becomes a `provider_error`: an HTTP status that says
/// what happened (throttling -> 429, validation -> 400, access -> 403, not found -> 404,
/// the provider's own fault -> 5xx) and an OpenAI-shaped body. Messages keep the
/// provider's words so that context-window and content-policy refusals stay
/// recognisable ("context_length_exceeded", "content_filter" codes).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/providers/openai.hpp"

namespace gw::providers {

/// Everything about one call an adapter may need besides the bodies.
struct translate_context {
  operation op = operation::chat;
  std::string upstream_model;    ///< what the provider is sent (Bedrock model id, Anthropic model name)
  std::string response_model;    ///< "model" in the OpenAI answer (the model the client asked for)
  std::string response_id;       ///< "id" of the OpenAI answer and of every stream chunk ("chatcmpl-...")
  std::int64_t created = 0;      ///< unix seconds, "created"
  bool stream = false;
  /// Streams: end with the usage-only chunk ({"choices":[],"usage":{...}}) before
  /// [DONE], as OpenAI does when the client set stream_options.include_usage.
  bool include_usage = false;
  /// Providers that require max_tokens (Anthropic) get this when the client set none.
  std::int64_t default_max_tokens = 4096;
  /// Images the caller fetched for providers that take images inline only (Bedrock):
  /// http(s) URL -> data: URL ("data:image/png;base64,..."). An http(s) image URL
  /// without an entry is refused with a 400.
  const std::vector<std::pair<std::string, std::string>>* fetched_images = nullptr;
  /// Set by the chat request translation (to_anthropic, to_converse), read by the answer's
  /// (from_*, the stream translators): the client asked for response_format json_object
  /// or json_schema, sent as a forced tool named json_tool_call whose input becomes the
  /// message content. Mutable so that the one context the caller keeps for the call
  /// carries it from request to answer: pass the same object to both.
  mutable bool json_tool_call = false;
};

/// A provider's failure, in OpenAI's terms.
struct provider_error {
  int status = 502;        ///< for the client: 400 validation, 401, 403 access, 404, 408, 429 throttling, 5xx
  std::string type;        ///< OpenAI error type: invalid_request_error, authentication_error,
                           ///< permission_error, not_found_error, rate_limit_error, api_error, timeout_error
  std::string code;        ///< machine-readable: "throttling", "context_length_exceeded", "content_filter", ...
  std::string message;     ///< the provider's words, prefixed with what it was ("Bedrock ThrottlingException: ...")
  std::string param;       ///< the request parameter at fault, when one is (OpenAI's "param"); empty = null
  /// {"error":{"message","type","param","code"}}
  std::string json() const;
};

/// An OpenAI request translated for the provider.
struct translated_request {
  std::string path;   ///< below the deployment's base URL, query included ("/model/x%3A0/converse")
  std::string body;   ///< the provider's JSON
  /// Provider headers other than authentication ("anthropic-version", "accept", ...),
  /// lower-case names. content-type is always application/json.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// The outcome of translating a request: the request, or why it cannot be sent
/// (a 400 for the client: e.g. a parameter the provider cannot take).
struct request_result {
  std::optional<translated_request> request;
  std::optional<provider_error> error;
};

/// A provider's whole (non-streamed) answer in OpenAI's shape.
struct translated_response {
  int status = 200;     ///< for the client
  std::string body;     ///< an OpenAI response, or an OpenAI error body when status is not 2xx
  usage tokens;         ///< as reported (unknown on errors)
};

/// Translates a provider's stream into OpenAI chunks ("data: {...}\n\n" events,
/// "data: [DONE]\n\n" last), incrementally: bytes may arrive split anywhere.
class stream_translator {
 public:
  virtual ~stream_translator() = default;
  /// Consumes `bytes`; appends the OpenAI events that became complete to `out`.
  /// A broken stream (bad framing, CRC mismatch, an error event from the provider)
  /// returns the error; the caller stops feeding and ends the client's stream.
  virtual std::optional<provider_error> feed(std::string_view bytes, std::string& out) = 0;
  /// The provider ended its stream: appends the last events (usage chunk if asked,
  /// [DONE]). An error if it ended in the middle of a frame or before the end of the message.
  virtual std::optional<provider_error> finish(std::string& out) = 0;
  /// Usage the provider reported so far (known() once it has).
  virtual const usage& tokens() const noexcept = 0;
};

}  // namespace gw::providers
