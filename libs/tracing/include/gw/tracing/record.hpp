#pragma once
/// What the gateway knows about one request when it ends, for the trace exporters
/// (OTLP, Langfuse, the trace store). Built on the io thread at the end of a request
/// only when tracing is on; everything expensive (parsing bodies, assembling a
/// stream's message, encoding) happens later, off the request path, in the exporters.
///
/// Also: W3C trace context (traceparent) parsing and formatting, and trace/span ids.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/tracing/content.hpp"

namespace gw::tracing {

using sys_time = std::chrono::system_clock::time_point;

/// 16-byte trace id and 8-byte span id; all zero is "none" (invalid in W3C).
using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

bool is_zero(const trace_id& t) noexcept;
bool is_zero(const span_id& s) noexcept;
/// Lower-case hex (32 and 16 characters).
std::string to_hex(const trace_id& t);
std::string to_hex(const span_id& s);
/// Parses lower- or upper-case hex of the exact length; nullopt otherwise.
std::optional<trace_id> trace_id_from_hex(std::string_view hex);
std::optional<span_id> span_id_from_hex(std::string_view hex);

/// Random ids from a per-thread generator seeded from the OS (never all zero).
trace_id new_trace_id() noexcept;
span_id new_span_id() noexcept;

/// An incoming W3C trace context.
struct trace_context {
  trace_id trace{};
  span_id parent{};
  std::uint8_t flags = 0;   ///< bit 0: sampled
  std::string tracestate;   ///< propagated unchanged
};

/// Parses a `traceparent` header value ("00-<32 hex>-<16 hex>-<2 hex>"). Version 00
/// must be exactly that; a higher version may carry more fields after the flags
/// ("-…"), as W3C asks receivers to accept. Version ff, all-zero ids, wrong lengths or
/// non-hex characters: nullopt (the request then starts a new trace).
std::optional<trace_context> parse_traceparent(std::string_view value);
/// "00-<trace>-<span>-<flags>".
std::string format_traceparent(const trace_id& t, const span_id& s, std::uint8_t flags);
/// The same, appended to `out` (no allocation of its own: the request path uses it).
void append_traceparent(std::string& out, const trace_id& t, const span_id& s, std::uint8_t flags);
/// Lower-case hex of an id, appended to `out` (no allocation of its own).
void append_hex(std::string& out, const trace_id& t);
void append_hex(std::string& out, const span_id& s);

/// One attempt on one deployment (a CLIENT span). A request has one per send,
/// retries and fallbacks included.
struct attempt_record {
  span_id span{};
  std::string model_group;        ///< the group this attempt served (a fallback's own)
  std::string deployment_id;      ///< model_info.id or the generated one
  std::string provider;           ///< gen_ai.provider.name: openai, azure.ai.openai, aws.bedrock, anthropic
  std::string upstream_model;     ///< the model name sent to the provider
  std::string server_address;     ///< provider host
  int server_port = 0;
  sys_time start{}, end{};
  std::optional<sys_time> first_chunk;  ///< first response byte of a stream
  int http_status = 0;            ///< 0: no response (transport failure)
  std::string error_type;         ///< empty on success; else "timeout", "connection_error", "429", ...
};

/// One guardrail or cache step of a request (an INTERNAL span, child of the server
/// span). The exporters encode them; the features that make them (caching, guardrails)
/// add one per step they run.
struct step_record {
  enum class kind : std::uint8_t { guardrail, cache };
  kind type = kind::guardrail;
  span_id span{};
  std::string name;        ///< the guardrail ("presidio", "pii") or the cache ("exact", "semantic")
  std::string outcome;     ///< guardrail: passed, masked, blocked; cache: hit, miss
  sys_time start{}, end{};
  std::string error_type;  ///< empty unless the step itself failed (a guardrail service down, ...)
  std::string error_message;
};

/// One request as the client saw it (the SERVER span, and the trace store's row).
struct trace_record {
  // identity
  trace_id trace{};
  span_id span{};                ///< the request's server span
  span_id parent{};              ///< the client's span from traceparent; zero: a root span
  std::uint8_t flags = 1;
  std::string tracestate;
  std::string request_id;        ///< the gateway's call id (x-litellm-call-id)
  std::string node_id;           ///< which gateway node served it

  // what was asked
  std::string operation;         ///< gen_ai.operation.name: chat, text_completion, embeddings
  std::string route;             ///< the path the client called, e.g. /v1/chat/completions
  bool anthropic_ingress = false;  ///< the client spoke Anthropic's Messages API
  std::string model_group;       ///< the model the client asked for (gen_ai.request.model)
  bool stream = false;

  // who asked (never the key itself: its SHA-256 token)
  std::string key_hash, key_alias, user_id, team_id;
  std::string end_user;          ///< the body's "user" field

  // what happened
  sys_time start{}, end{};
  std::optional<sys_time> first_token;  ///< first byte to the client (streams)
  int status = 0;                ///< HTTP status answered to the client
  std::string error_type;        ///< empty on success; else the OpenAI error type or code
  std::string error_message;
  std::string response_model;    ///< the deployment's model that answered (provider model)
  std::string deployment_id;     ///< the deployment that answered (last attempt)
  std::string provider;          ///< its gen_ai.provider.name
  /// Token usage; -1: unknown.
  std::int64_t input_tokens = -1, output_tokens = -1, cache_read_tokens = -1, cache_creation_tokens = -1,
               reasoning_tokens = -1;
  std::int64_t cost_pico = 0;    ///< cost in picodollars (1e-12 USD), exact
  std::string cache;             ///< "", "hit", "miss": the request's cache outcome
  std::string guardrail;         ///< "", "passed", "masked", "blocked": its guardrails' outcome

  /// Bodies as captured, already bounded by the capture limit (the encoder and the
  /// store decide what to show). The request body is the client's JSON; the response
  /// body is the JSON answered, or, for a stream, the SSE bytes relayed ("data: …\n\n"
  /// events, OpenAI chunks). Secrets are never in them: credentials travel in headers,
  /// and the gateway removes credential fields from the request body it captures.
  std::string request_body, response_body;
  bool request_truncated = false, response_truncated = false;
  /// A stream cut by the capture limit: its last events (4 to 8 KB, from an event
  /// boundary on), so that its finish reasons and id are still known.
  std::string response_tail;
  /// The request's "metadata" object as the client sent it (raw JSON, "" if none):
  /// trace_name, trace_id, session_id, trace_user_id, tags, generation_name, … as
  /// LiteLLM reads them for Langfuse.
  std::string metadata;

  /// Read on the request path when no consumer wants the bodies (then the bodies are not
  /// captured): the exporters use these instead of parsing bodies.
  std::optional<request_view> request_facts;
  std::optional<response_view> response_facts;

  std::vector<attempt_record> attempts;
  std::vector<step_record> steps;  ///< guardrail and cache steps, in the order they ran
};

}  // namespace gw::tracing
