#pragma once
/// Anthropic Messages API as a provider (gateway -> Anthropic): pure translation of an
/// OpenAI chat request into POST /v1/messages, of Anthropic's answer (whole or
/// streamed) back into OpenAI's shape, and of Anthropic's errors into provider_error.
/// No I/O, no clock, no randomness (see adapter.hpp). Thread-safe: each thread parses
/// with its own parsers; a stream_translator is used by one thread at a time.
///
/// Choices worth knowing (the rest follows wire-specs.md section 4):
/// - system/developer messages are hoisted to "system" wherever they appear.
/// - Consecutive same-role turns are merged (tool messages become user turns with
///   tool_result blocks, placed first in their turn as Anthropic requires).
/// - "cache_control" on content parts, system parts and tools is passed through
///   (prompt caching); usage reports cache reads and writes.
/// - Parameters Anthropic has no equivalent for (presence/frequency penalties,
///   logit_bias, seed, logprobs, ...) are dropped; n > 1 is refused with a 400 rather
///   than silently ignored.
/// - response_format json_object/json_schema (structured output) is emulated as LiteLLM
///   does: a tool "json_tool_call" whose input_schema is the schema, forced by tool_choice
///   unless the client set one (its "none" excepted). to_anthropic() sets
///   ctx.json_tool_call; from_anthropic() and the stream translator then make that tool's
///   input the message content (finish_reason "stop", no tool call for it).
/// - Thinking: "thinking" blocks become message.reasoning_content (non-streamed) and
///   thinking_delta becomes delta.reasoning_content (streamed), the convention of
///   DeepSeek and LiteLLM; OpenAI clients ignore the field. Signatures are dropped.
/// - Integers beyond 64 bits inside tool arguments cannot be parsed (400).

#include <memory>
#include <string>
#include <string_view>

#include "gw/providers/adapter.hpp"

namespace gw::providers {

/// The "anthropic-version" header value sent with every request.
inline constexpr std::string_view anthropic_api_version = "2023-06-01";

/// An OpenAI chat request -> POST /v1/messages: path "/v1/messages", headers
/// {"anthropic-version": "2023-06-01"} (authentication is the caller's), the Messages
/// body with model = ctx.upstream_model and max_tokens = ctx.default_max_tokens when
/// the client set none. "stream" comes from the body (or ctx.stream). Invalid JSON,
/// wrong types and what Anthropic cannot express give a 400 invalid_request_error.
request_result to_anthropic(const translate_context& ctx, std::string_view openai_chat_body);

/// Anthropic's whole answer (`status`, `body`) -> an OpenAI chat.completion (id
/// ctx.response_id, model ctx.response_model, created ctx.created) with usage, or an
/// OpenAI error body with the status for the client (see anthropic_error).
translated_response from_anthropic(const translate_context& ctx, int status, std::string_view body);

/// Anthropic's SSE stream -> OpenAI chunks, incrementally (bytes split anywhere).
std::unique_ptr<stream_translator> anthropic_stream_translator(const translate_context& ctx);

/// An Anthropic error response (`status`; body {"type":"error","error":{"type","message"}},
/// or anything else) as a provider_error: the status is kept except 529
/// (overloaded_error) -> 503 api_error code "overloaded", so that it is retried;
/// 429 -> rate_limit_error code "rate_limit_exceeded"; a 400 saying the prompt is too
/// long -> code "context_length_exceeded". Message: "Anthropic <type>: <message>".
provider_error anthropic_error(int status, std::string_view body);

/// OpenAI finish_reason for an Anthropic stop_reason (unknown or empty -> "stop").
std::string_view finish_reason_from_anthropic(std::string_view stop_reason) noexcept;

}  // namespace gw::providers
