#pragma once
/// OpenAI wire format: reading a client request once (validation, model, stream flags,
/// size estimate) and reading usage from responses and stream chunks. Pure functions;
/// thread-safe (each thread uses its own parser).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/core/error.hpp"

namespace gw::providers {

/// The OpenAI operations the gateway proxies.
enum class operation { chat, completion, embedding };

std::string_view operation_name(operation op) noexcept;  // "chat", "text_completion", "embeddings"
std::string_view operation_path(operation op) noexcept;  // "/chat/completions", ...

/// A fallback named in a request (LiteLLM's client-side fallbacks): a model group, and
/// top-level body members to replace for it (`{"model": "b", "messages": [...]}`).
struct fallback_target {
  std::string model;
  std::string overrides;  ///< a JSON object without "model"; empty: none
};

/// Fallback lists, keyed by the model group they apply to: "" for a plain list (any
/// group), else the name from the `[{"group": ["b", "c"]}]` form ("*": every group).
using keyed_fallbacks = std::vector<std::pair<std::string, std::vector<fallback_target>>>;

/// The gateway's own per-request controls (LiteLLM's), read from the body. None of them
/// reaches the provider: strip_gateway_fields() removes them.
struct request_controls {
  std::optional<keyed_fallbacks> fallbacks, context_window_fallbacks, content_policy_fallbacks;
  std::optional<int> max_fallbacks;
  bool disable_fallbacks = false;
  /// mock_response: answered by the gateway, not the provider ("litellm.RateLimitError"
  /// and the like stand for that failure).
  std::optional<std::string> mock_response;
  bool mock_testing_fallbacks = false;                 ///< fail as a 500, straight to fallbacks
  bool mock_testing_context_fallbacks = false;         ///< fail as a context-window error
  bool mock_testing_content_policy_fallbacks = false;  ///< fail as a content-policy refusal
  bool mock_testing_rate_limit_error = false;          ///< the first attempt fails with a 429
  bool mock_timeout = false;                           ///< wait the timeout, then fail with a 408
  bool any_mock() const noexcept {
    return mock_response || mock_testing_fallbacks || mock_testing_context_fallbacks ||
           mock_testing_content_policy_fallbacks || mock_testing_rate_limit_error || mock_timeout;
  }
};

/// What the gateway needs from a request body, found in one pass.
struct inspected_request {
  std::string model;                 ///< unescaped
  std::size_t model_token_begin = 0; ///< byte span of the model's JSON string token,
  std::size_t model_token_end = 0;   ///< quotes included, in the body
  bool stream = false;
  bool include_usage = false;        ///< stream_options.include_usage
  bool has_stream_options = false;   ///< "stream_options" present (null included)
  std::size_t text_bytes = 0;        ///< bytes of prompt text (messages/prompt/input)
  std::size_t body_bytes = 0;        ///< the whole body (tools, response_format, images, audio included)
  std::size_t image_parts = 0;       ///< "image_url" parts (billed beyond their URL's bytes)
  std::int64_t max_tokens = -1;      ///< max_tokens / max_completion_tokens; -1 = not given
  std::int64_t n = 1;                ///< choices asked for
  /// Per-request gateway controls (LiteLLM's): seconds, 0 = not given; num_retries -1 =
  /// not given. They are not OpenAI parameters: strip_gateway_fields() removes them
  /// before the body goes upstream.
  double timeout_s = 0, stream_timeout_s = 0;
  int num_retries = -1;
  bool has_gateway_fields = false;
  /// Fallbacks and testing controls; null when the request has none (the common case).
  std::shared_ptr<const request_controls> controls;
  std::int64_t estimated_input_tokens() const noexcept {
    return static_cast<std::int64_t>(text_bytes / 4 + 1);
  }
};

/// Validates `body` (which must have 64 bytes of spare capacity past its size) as
/// a request for `op`. On failure returns the error to send (400, with `param`).
std::optional<error> inspect_request(operation op, const std::string& body, inspected_request& out);

/// The top-level members that are the gateway's, not the provider's: timeout,
/// stream_timeout, num_retries and the request_controls.
bool is_gateway_field(std::string_view key) noexcept;

/// `body` (a JSON object) without its top-level gateway fields (is_gateway_field); the
/// rest byte for byte (whitespace between members aside).
std::string strip_gateway_fields(std::string_view body);

/// `body` (a JSON object) with the members of `overrides` (a JSON object) replacing or
/// added to its top-level members. Returns `body` unchanged if either is not an object.
std::string with_overrides(std::string_view body, std::string_view overrides);

/// `body` (a JSON object) with its top-level "model" set to `model` (replaced, or
/// added first when absent): Azure-style routes name the model in the path. Returns
/// `body` unchanged if it is not a JSON object (validation reports that later).
std::string with_model(std::string_view body, std::string_view model);

/// Token usage as the provider reported it; -1 = not reported.
struct usage {
  std::int64_t prompt_tokens = -1;
  std::int64_t completion_tokens = -1;
  std::int64_t total_tokens = -1;
  std::int64_t cached_tokens = 0;          ///< of prompt_tokens, read from the provider's cache
  std::int64_t cache_creation_tokens = 0;  ///< of prompt_tokens, written to it (Anthropic)
  bool known() const noexcept { return prompt_tokens >= 0 || completion_tokens >= 0; }
};

/// Reads the top-level "usage" object (and "model") of a JSON response or stream chunk:
/// prompt/completion/total tokens, `prompt_tokens_details.cached_tokens` (or
/// `cache_read_input_tokens`) and `cache_creation_input_tokens`.
/// `json` needs no padding (copied into a padded thread-local buffer when needed).
/// Returns false if the text is not a JSON object; `out` is untouched if no usage.
bool read_usage(std::string_view json, usage& out, std::string* response_model = nullptr);

/// What a trace shows of a whole answer: its id, model and per-choice finish reasons.
struct answer_info {
  std::string id, model;
  std::vector<std::string> finish_reasons;
};

/// read_usage() for a whole answer, and with `info` its id, model and finish reasons, in
/// one pass; in place when `capacity` leaves simdjson's padding past the body.
bool read_answer(std::string_view json, std::size_t capacity, usage& out, answer_info* info);

/// Cheap pre-check for stream chunks: true if the text has a "usage" key whose value
/// is an object (not null), so that only those chunks are parsed.
bool may_carry_usage(std::string_view text) noexcept;

/// True if a stream chunk has `"choices": []` (the usage-only chunk that
/// stream_options.include_usage adds at the end).
bool has_empty_choices(std::string_view json) noexcept;

/// An upstream's OpenAI-style error body made exact: "error" with a string "message"
/// and "type" (Azure sends "type": null; derived from `status` then), "param" and
/// "code" present; other members (Azure's "innererror" with its content-filter
/// results) kept. Returns `body` unchanged when it needs nothing or is not an error.
std::string normalize_error_body(std::string_view body, int status);

/// True if `json` is an object with a top-level "error" member (an OpenAI error body).
bool is_openai_error(std::string_view json);

}  // namespace gw::providers
