#pragma once
/// Provider adapters: one type per wire format (OpenAI-compatible, Azure OpenAI, Bedrock,
/// Anthropic), made once per deployment when the registry is built. An adapter knows
/// everything that differs between providers: how the upstream request is built (path,
/// headers, body), how it is authorized or signed, how a buffered answer and a stream are
/// translated into OpenAI's shapes, and how the provider's errors are classified. The
/// dispatcher that uses it knows none of this: adding a provider touches a new adapter and
/// `make_adapter`, nothing else.
///
/// Pure: no I/O, no clock of its own (signing takes the time), no randomness. Credentials
/// that need I/O (Entra tokens, AWS keys) are fetched by the caller and handed in. An
/// adapter is immutable after construction (thread-safe); an `exchange` (one attempt's
/// provider state) belongs to the io thread running the attempt.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/providers/adapter.hpp"
#include "gw/providers/aws.hpp"
#include "gw/providers/openai.hpp"
#include "gw/providers/provider.hpp"

namespace gw::providers {

/// The credentials a deployment needs fetched (by the caller, with I/O) before a call.
enum class credential_kind {
  none,    ///< static headers only (API keys)
  bearer,  ///< an OAuth bearer token (Azure Entra ID service principal)
  aws,     ///< AWS keys for SigV4 (Bedrock without an API key)
};

/// Credentials handed to `exchange::authorize`.
struct credentials_view {
  std::string_view bearer;                 ///< credential_kind::bearer: the access token
  const aws_credentials* aws = nullptr;    ///< credential_kind::aws
};

/// Why an upstream answer failed, in the router's terms (retries, fallbacks, cooldowns).
enum class failure_kind {
  transport,       ///< connect error, timeout, broken or missing response: retryable
  status,          ///< an HTTP error status from the provider (429, 408, 5xx retryable)
  context_window,  ///< the prompt is too long for the model: context_window_fallbacks
  content_policy,  ///< the provider refused the content: content_policy_fallbacks
  unavailable,     ///< no deployment could take it (limits, cooldowns): fallbacks only
};

/// One upstream HTTP request of an attempt, as bytes to gather-write: the head prefix
/// (request line and static headers, CRLF-terminated lines, no content-length), then the
/// body pieces in order. Views point into the adapter, the exchange or the client's
/// body; they stay valid until the exchange builds its next request.
struct upstream_request {
  std::string_view head_prefix;
  std::string_view signing_path;  ///< path and query as sent (SigV4 signs them)
  std::array<std::string_view, 5> body{};
  bool event_stream = false;      ///< a stream answer comes as AWS event-stream frames
  std::size_t length() const noexcept {
    std::size_t n = 0;
    for (auto b : body) n += b.size();
    return n;
  }
};

/// What one request asks of the provider, the same for every attempt.
struct call_input {
  operation op = operation::chat;
  /// The request body in OpenAI's shape (what the client sent, or its translation), with
  /// `req`'s spans pointing into it.
  std::string_view body;
  const inspected_request* req = nullptr;
  std::string_view model_group;   ///< the group the attempt serves (messages)
  std::string_view call_id;       ///< the gateway's request id (ids of translated answers)
  std::int64_t created = 0;       ///< unix seconds ("created" of translated answers)
  /// Providers that require max_tokens (Anthropic) get this when the client set none:
  /// the model's maximum output when known.
  std::int64_t default_max_tokens = 4096;
};

/// One attempt's provider-side state: made by `provider_adapter::begin`, used on the
/// attempt's io thread, dropped with the attempt (a retry makes a new one).
class exchange {
 public:
  virtual ~exchange() = default;

  /// http(s) image URLs the provider cannot fetch itself (Bedrock takes images inline
  /// only, gateway_settings.fetch_image_urls): the caller fetches them and hands them to
  /// `set_images` before the first `next_request`. Empty: none.
  virtual std::vector<std::string> image_urls() const { return {}; }
  /// URL -> data: URL.
  virtual void set_images(std::vector<std::pair<std::string, std::string>>) {}

  /// Builds the next upstream request of the attempt (the first, or the next of a
  /// multi-call attempt such as Titan embeddings). An error is the client's to fix (the
  /// request cannot be put in the provider's terms): a 400, not retried.
  virtual std::optional<provider_error> next_request(upstream_request& out) = 0;
  /// Authentication header lines ("name: value\r\n") for the request just built.
  virtual std::string authorize(const credentials_view& c, std::chrono::system_clock::time_point now) = 0;

  /// The provider's whole answer to the request just sent, translated in place into
  /// OpenAI's shape (status, body; `u` the usage reported). Returns false when the
  /// attempt needs another call (then `next_request` again; the answer is kept inside).
  /// `error_type`: the x-amzn-errortype header (Bedrock), else empty. `info`, when not
  /// null, may be filled with the answer's id, model and finish reasons if the adapter
  /// reads them anyway (`info_read` set then); the caller reads them otherwise.
  virtual bool on_answer(int& status, std::string& body, std::string_view error_type, usage& u,
                         answer_info* info = nullptr, bool* info_read = nullptr) = 0;

  /// For a streamed answer: the translator of the provider's stream into OpenAI events,
  /// or null when the provider streams OpenAI's events already (relayed as they are).
  virtual std::unique_ptr<stream_translator> make_stream_translator() { return nullptr; }
  /// OpenAI-format streams relayed as they are: true for an event the client must not
  /// get (Azure's first chunk without choices). `index` counts events from 1.
  virtual bool drop_event(std::string_view /*event*/, std::int64_t /*index*/) const noexcept { return false; }
  /// The gateway asked the provider for the stream's usage chunk (the client did not):
  /// the relay drops that chunk again.
  virtual bool injected_usage() const noexcept { return false; }
  /// The model name this attempt sends upstream (traces).
  virtual const std::string& upstream_model() const noexcept = 0;
};

/// How one deployment is called. Immutable after construction; thread-safe.
class provider_adapter {
 public:
  virtual ~provider_adapter() = default;

  virtual wire_format format() const noexcept = 0;
  /// gen_ai.system for traces ("openai", "azure.ai.openai", "aws.bedrock", "anthropic", ...).
  virtual std::string_view system_name() const noexcept = 0;
  /// What the caller must fetch before `exchange::authorize`.
  virtual credential_kind credentials() const noexcept { return credential_kind::none; }
  /// Starts an attempt of a request whose upstream model is `upstream_model` (the
  /// deployment's, or the requested one for wildcard deployments).
  virtual std::unique_ptr<exchange> begin(const call_input& in, const std::string& upstream_model) const = 0;
  /// What kind of failure a provider's error answer (already in OpenAI's shape) is.
  virtual failure_kind classify(int status, std::string_view openai_error_body) const;
};

/// Where a deployment is reached, as its adapter needs it.
struct endpoint_info {
  std::string authority;  ///< Host header value
  std::string base_path;  ///< "" or "/v1"
};

/// The adapter for a deployment (`t` resolved from `d`). Null when the wire format is
/// not supported (the deployment is unusable; `t.problem` says why).
std::unique_ptr<provider_adapter> make_adapter(const config::deployment& d, const deployment_target& t,
                                               const endpoint_info& ep);

/// "POST <base path><path> HTTP/1.1", host, content-type, user-agent, the target's
/// static headers and `extra`, each line ending in CRLF.
std::string build_head_prefix(const endpoint_info& ep, const deployment_target& t, std::string_view path,
                              const std::vector<std::pair<std::string, std::string>>* extra = nullptr);

/// The generic classification: a 400/413/422 whose body names a context-window or
/// content-policy failure, else `status`.
failure_kind classify_openai_error(int status, std::string_view body) noexcept;

}  // namespace gw::providers
