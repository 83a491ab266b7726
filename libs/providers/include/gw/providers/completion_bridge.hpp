#pragma once
/// OpenAI text completions (/v1/completions) served through chat, as LiteLLM does for
/// providers that have no completions API (Bedrock, Anthropic): the completions request
/// becomes a chat request whose one user message is the prompt, the chat adapter
/// (to_converse, to_anthropic, ...) does the provider's side, and its chat answer, whole
/// or streamed, becomes a text_completion. Pure translation (see adapter.hpp); thread-safe
/// (each thread parses with its own parser; a stream_translator is used by one thread at a time).

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gw/providers/adapter.hpp"

namespace gw::providers {

/// A completions request translated into a chat request, or why it cannot be.
struct chat_request_result {
  std::optional<std::string> body;  ///< the OpenAI chat request
  std::optional<provider_error> error;
};

/// An OpenAI completions request -> an OpenAI chat request: `prompt` (a string, or an
/// array of exactly one string) becomes {"messages":[{"role":"user","content":prompt}]};
/// every other member (model, max_tokens, temperature, top_p, stop, n, stream,
/// stream_options, user, metadata, seed, penalties, ...) is kept as it is (the chat
/// adapters decide about them). 400 errors with `param` set: invalid JSON, a missing or
/// wrongly typed `prompt`, and what chat cannot express, naming the parameter and
/// `provider` ("Bedrock", "Anthropic"): several prompts, token-id prompts, `suffix`,
/// `echo`, `best_of` > 1, `logprobs`, and chat-only members (messages, tools, ...).
chat_request_result completion_to_chat(std::string_view openai_completion_body, std::string_view provider);

/// A chat adapter's whole answer -> a text_completion {"id","object":"text_completion",
/// "created","model","choices":[{"text","index","logprobs":null,"finish_reason"}],"usage"}
/// (id, created, model and usage as the chat answer has them; text = message.content).
/// Errors (status not 2xx) pass unchanged; an unreadable chat answer -> 502.
translated_response completion_from_chat(translated_response chat);

/// Wraps the provider's stream translator (`chat`, emitting OpenAI chat chunks) so that
/// it emits completions chunks: "object":"text_completion", choices[i] =
/// {"text": delta.content,"index","logprobs":null,"finish_reason"}. Chunks with neither
/// text nor a finish_reason (the role chunk, reasoning) are dropped; the usage-only
/// chunk ("choices":[]) keeps its usage with "object":"text_completion"; [DONE], error
/// events and anything that is not a chat chunk pass unchanged. Usage and errors are
/// the wrapped translator's.
std::unique_ptr<stream_translator> completion_stream_translator(std::unique_ptr<stream_translator> chat);

}  // namespace gw::providers
