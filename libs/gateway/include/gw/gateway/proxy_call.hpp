#pragma once
/// One proxied model request on its io thread: acquire the caller's rate limits, route
/// to a deployment (strategy, cooldowns, the deployment's own limits), call it over a
/// pooled connection, relay the answer (whole, or SSE event by event); on a failure
/// before the client got a byte, retry (backoff with jitter, retry-after honoured,
/// another deployment when there is one) and then fall back to other model groups;
/// finally report the outcome. io-thread owned.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "gw/accounts/accounts.hpp"
#include "gw/gateway/actors.hpp"
#include "gw/gateway/context.hpp"
#include "gw/http/server.hpp"
#include "gw/http/sse.hpp"
#include "gw/http/upstream.hpp"
#include "gw/providers/adapter.hpp"
#include "gw/providers/aws.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/bedrock.hpp"
#include "gw/providers/openai.hpp"
#include "gw/tracing/record.hpp"

namespace gw::gateway {

/// Cost as exact decimal USD without trailing zeros ("0.000123"), for headers.
std::string format_cost(keys::money m);

class proxy_call : public http::deadline_target, public std::enable_shared_from_this<proxy_call> {
 public:
  using clock = std::chrono::steady_clock;

  proxy_call(const gateway_context& ctx, http::session_ptr s, providers::operation op,
             providers::inspected_request req, const model_group* group,
             accounts::auth_entry_ptr entry = nullptr, std::uint64_t reservation = 0);
  ~proxy_call() override;

  /// Acquires the caller's rate limits, then routes; everything else follows.
  void start();
  /// The client spoke Anthropic's Messages API (/v1/messages): answers, stream events
  /// and errors go back in Anthropic's shape. Null: OpenAI's.
  void set_anthropic_ingress(std::shared_ptr<const providers::anthropic_request_info> info) {
    ingress_ = std::move(info);
  }

  void on_deadline() override;

 private:
  enum class phase { routing, connecting, sending, waiting_head, reading_body, streaming, writing_client, done };
  /// Why an attempt failed, for retries and fallbacks.
  enum class failure_kind {
    transport,       ///< connect error, timeout, broken or missing response: retryable
    status,          ///< an HTTP error status from the provider (429, 408, 5xx retryable)
    context_window,  ///< the prompt is too long for the model: context_window_fallbacks
    content_policy,  ///< the provider refused the content: content_policy_fallbacks
    unavailable,     ///< no deployment could take it (limits, cooldowns): fallbacks only
  };

  void on_client_limits(const limits::decision& d, bool via_redis);
  void route();
  void on_deployment_limits(const limits::decision& d, bool via_redis);
  void send_to_deployment();
  /// Providers whose API is not OpenAI's (Bedrock, Anthropic): translate, then send.
  void send_translated(const std::string& upstream_model);
  /// Bedrock takes images inline only: fetches the request's http(s) image URLs
  /// (gateway_settings.fetch_image_urls), then translates. Once per request.
  void fetch_images(std::vector<std::string> urls, const std::string& upstream_model);
  /// The request cannot be sent as the client wrote it: a 400, not retried.
  void refuse_request(providers::provider_error e);
  /// The request head: `prefix` (request line and static headers), dynamic auth
  /// headers, content-length, accept.
  void finish_head(const std::string& prefix, std::size_t length, std::string_view auth_headers);
  /// Translates the provider's whole answer (translated providers) into body_/status_.
  void translate_buffered();
  /// Titan embeddings, one call per input: keeps the answer just read; false when it was
  /// not the last (the next input's call is under way) or was unreadable (body_/status_
  /// say why).
  bool titan_answer_done();
  /// Sends the call for the next Titan input on this attempt.
  void send_titan_next();
  /// The provider's stream failed with its own error (translated providers).
  void stream_provider_error(const providers::provider_error& e);
  /// Gets the deployment's credentials (cached: at once; else waits for them), then
  /// sends with the auth headers they give (Entra bearer token, SigV4 signature).
  void authorize();
  void send_signed(const providers::aws_credentials& c);
  void send_authorized(std::string_view auth_headers);
  void credentials_failed(const std::string& why);
  void begin_attempt();
  void on_connected(http::error_code ec);
  void write_request();
  void on_written(http::error_code ec);
  void on_head(http::error_code ec);
  bool retry_on_fresh_connection(http::error_code ec);

  void read_buffered();
  void on_buffered(http::error_code ec, std::size_t n, bool done);
  void respond_buffered();
  void respond_buffered_error();
  /// This request's timeouts: its own (the body's timeout / stream_timeout), else the deployment's.
  std::chrono::milliseconds timeout() const;
  std::chrono::milliseconds stream_timeout() const;

  void start_stream();
  /// Sends relay_[0, n) to the client (the head first if still pending); `last`: the
  /// stream ends after it (Anthropic ingress: the writer closes its events).
  template <class Then>
  void forward(std::size_t n, Then&& then, bool last = false);
  void read_stream();
  void on_stream_read(http::error_code ec, std::size_t n, bool done);
  void stream_broke(std::string message);
  void client_gone(bool upstream_complete);

  void fail_before_response(http::error_code ec);
  /// The attempt failed before the client got anything: retry, fall back, or give up
  /// with the last failure (error_ when set, else the provider's response in body_).
  void attempt_failed(failure_kind k, std::int64_t retry_after_ms);
  /// Ends the current attempt: outcome to the deployment actor, its limits released.
  void end_attempt(int status, bool upstream_ok, bool failure);
  void retry_after_delay(std::chrono::milliseconds delay);
  /// Moves to the next fallback group for `k`; false when none is left.
  bool next_fallback(failure_kind k);
  void switch_group(const model_group* g);
  void give_up();
  void refuse_limited(const std::vector<limits::scope>& scopes, const limits::decision& d);
  void respond_error(const error& e, std::string_view extra = {});
  void finish(int status, bool upstream_ok);
  /// What the next request must see, done before the answer's last byte can reach the
  /// client: the charge (spend, reservation) and the tokens and parallel slots counted
  /// by the rate limiter. Once; finish() calls it if nothing did before.
  void settle(int status);
  /// Gives back the attempt's slot in its deployment's limits and counts its tokens. Once
  /// per attempt (end_attempt, or settle() before the answer's last byte).
  void release_deployment_limits();
  void build_client_headers();
  /// The request's cost from the usage read so far and the deployment's price.
  keys::money compute_cost() const;
  /// Reports the request to the ledger (spend, spend log, reservation release). Once.
  void charge(int status);
  std::string timing_headers();

  const gateway_context& ctx_;
  http::session_ptr session_;
  providers::operation op_;
  providers::inspected_request req_;
  const model_group* group_;
  const model_group* requested_group_;  ///< fallbacks are looked up by this one
  deployment_runtime* dep_ = nullptr;
  std::unique_ptr<http::upstream_connection> conn_;
  phase phase_ = phase::routing;
  int attempts_ = 0;        ///< sends of this attempt (a stale pooled connection is re-sent)
  bool timed_out_ = false;
  config::error_class failure_class_ = config::error_class::none;  ///< of the attempt failing now
  bool trace_bodies_ = false;  ///< this request's trace record keeps bodies (a consumer wants them)
  bool finished_ = false;

  // rate limits
  const std::vector<limits::scope>* client_scopes_ = nullptr;  ///< acquired (entry_ holds them)
  bool client_via_redis_ = false;
  limits::decision client_decision_;                            ///< for the x-ratelimit-* headers
  std::vector<std::pair<const std::vector<limits::scope>*, bool>> fallback_scopes_;  ///< key x model of fallbacks
  bool dep_acquired_ = false, dep_via_redis_ = false;
  bool dep_limit_refused_ = false;         ///< some deployment refused by its own limits
  std::string dep_limit_message_;
  std::int64_t dep_limit_retry_ms_ = 0;

  // routing, retries, fallbacks
  std::vector<bool> tried_;                ///< by position in group_
  bool probe_ = false;                     ///< this attempt is the deployment's half-open probe
  bool in_flight_counted_ = false;
  bool attempt_open_ = false;              ///< an attempt on dep_ has not been ended yet
  int attempts_total_ = 0;
  int retries_ = 0, group_retries_ = 0, fallbacks_ = 0;
  std::size_t fallback_index_ = 0;
  bool fallback_list_chosen_ = false;
  const std::vector<std::string>* fallback_list_ = nullptr;
  std::optional<error> error_;             ///< the last failure when it was ours (not the provider's)
  std::string error_headers_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  clock::time_point t_attempt_start_;
  bool head_pending_ = false;  ///< stream head not sent yet (goes with the first events)
  std::string call_id_;
  accounts::auth_entry_ptr entry_;  ///< null: master key or no auth
  std::uint64_t reservation_ = 0;
  bool charged_ = false;
  bool settled_ = false;
  keys::money cost_ = 0;  ///< what charge() computed (the trace record reuses it)
  std::chrono::system_clock::time_point wall_start_;

  // upstream request
  std::string head_;
  std::string model_json_;
  std::size_t body_prefix_ = 0, body_suffix_ = 0;
  /// Streams whose client set no stream_options: the gateway asks the provider for usage
  /// (inserted after the body's '{' at brace_) and drops the usage-only chunk again.
  static const std::string_view k_usage_option;
  bool inject_usage_ = false;
  std::size_t brace_ = 0;

  // Anthropic ingress
  std::shared_ptr<const providers::anthropic_request_info> ingress_;
  std::unique_ptr<providers::anthropic_stream_writer> writer_;
  std::string dialect_out_;

  // translated providers (Bedrock, Anthropic)
  bool translated_ = false;
  providers::translate_context tctx_;
  std::string upstream_body_;
  std::unique_ptr<providers::stream_translator> translator_;
  std::string raw_;             ///< provider stream bytes, before translation
  std::vector<std::pair<std::string, std::string>> images_;  ///< fetched image URL -> data: URL
  bool images_ready_ = false;
  std::size_t images_pending_ = 0;
  std::string images_error_;
  std::string translated_out_;  ///< OpenAI events from the last feed
  /// Bedrock Titan embeddings: one InvokeModel call per input, one after another on the
  /// attempt (set for the attempt when the deployment is a Titan model).
  std::optional<providers::titan_inputs> titan_;
  providers::titan_embeddings titan_answers_;  ///< the answers so far, in input order
  clock::time_point t_call_start_;             ///< the current Titan call's start (its deadline)

  std::string pending_prefix_;   ///< head without auth and length, while credentials are awaited
  std::string pending_path_;     ///< translated providers: path below the base URL
  std::size_t pending_length_ = 0;

  // upstream response
  int status_ = 0;
  std::string content_type_;
  std::string client_headers_;
  std::string body_;
  std::string relay_;
  std::size_t relay_len_ = 0;
  std::size_t scanned_ = 0;
  http::sse_scanner scanner_;
  std::string sse_scratch_;
  std::string event_out_;
  providers::usage usage_;
  std::int64_t data_events_ = 0;           ///< events relayed (a fallback token count)
  /// Events to drop from relay_ in this read ([begin, end)): the usage-only chunk the
  /// gateway asked for, Azure's prompt-filter chunk without choices.
  std::vector<std::pair<std::size_t, std::size_t>> cuts_;
  bool cut_open_ = false;
  bool usage_cut_ = false;  ///< the usage-only chunk was dropped (once per attempt)

  // timing
  clock::time_point t_received_, t_upstream_start_, t_first_byte_, t_upstream_done_;

  // tracing (ctx_.tracing set): the record this request becomes when it ends
  std::unique_ptr<tracing::trace_record> trace_;
  std::string trace_model_;  ///< the model name the current attempt sends
  /// Starts the record: ids (continuing the client's traceparent), the request body.
  void trace_begin();
  /// A new attempt span; its traceparent header goes upstream (appended to head_).
  void trace_attempt_head();
  void trace_attempt_end(int status, bool upstream_ok);
  /// Keeps (a bounded copy of) what the client gets, for the exporters.
  void trace_capture(std::string_view bytes);
  /// Completes the record and hands it to the io thread's trace buffer. Once.
  void trace_emit(int status);
  std::chrono::system_clock::time_point wall(clock::time_point t) const {
    return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - t_received_);
  }
};

}  // namespace gw::gateway
