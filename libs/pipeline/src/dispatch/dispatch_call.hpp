#pragma once
// The dispatcher's state for one request (private to the library). The dispatcher is the
// terminal stage: it routes to a deployment of the request's group (strategy, cooldowns,
// the deployment's own limits), runs one upstream attempt at a time through the
// deployment's provider adapter, relays the answer (whole, or SSE event by event) through
// the response stages, and on a failure before the client got a byte asks the retry
// state what next: another attempt, a fallback group (every stage checks it again), or
// the last failure as the answer. Split by part:
//   dispatcher.cpp  routing, retries, fallbacks, the end of attempts and of the request
//   attempt.cpp     one upstream attempt: images, credentials, connect, send, response head
//   relay.cpp       the answer: buffered or streamed, usage, headers, errors
//   mock.cpp        the testing controls (mock_response, mock_testing_*, mock_timeout)
// io-thread owned.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "gw/http/sse.hpp"
#include "gw/http/upstream.hpp"
#include "gw/pipeline/context.hpp"
#include "gw/providers/provider_adapter.hpp"
#include "gw/routing/retry_state.hpp"

namespace gw::pipeline {

/// One upstream attempt: everything in it is new for each attempt (Envoy's upstream
/// request), so nothing is reset by hand.
struct attempt {
  enum class phase { connecting, sending, waiting_head, reading_body, streaming, writing_client };

  std::uint64_t id = 0;  ///< the dispatcher's attempt count when it began (stale callbacks check it)
  routing::deployment_runtime* dep = nullptr;
  bool probe = false;           ///< the deployment's half-open probe after a cooldown
  bool limits_held = false;     ///< the deployment's own rpm/tpm/parallel slot
  bool limits_via_redis = false;
  bool in_flight = false;       ///< counted in dep->in_flight (least-busy)
  bool open = true;             ///< not ended yet (end_attempt)
  bool span = false;            ///< its trace span is open (a multi-call attempt has one)
  bool mocked = false;          ///< answered or failed by a testing control: no provider, no outcome
  config::error_class failure_class = config::error_class::none;

  std::unique_ptr<providers::exchange> ex;
  providers::upstream_request upstream;
  std::string head;
  std::unique_ptr<http::upstream_connection> conn;
  phase at = phase::connecting;
  int sends = 0;          ///< sends of the current call (a stale pooled connection is re-sent)
  bool timed_out = false;

  // images fetched for providers that take them inline only (Bedrock)
  std::vector<std::pair<std::string, std::string>> images;
  std::size_t images_pending = 0;
  std::string images_error;

  // the answer
  int status = 0;
  std::string content_type;
  std::string body;

  // the stream relay
  bool head_pending = false;   ///< the client's stream head not sent yet (goes with the first events)
  std::string relay;           ///< OpenAI events not yet forwarded
  std::size_t relay_len = 0, scanned = 0;
  http::sse_scanner scanner;
  std::string sse_scratch;
  std::unique_ptr<providers::stream_translator> translator;  ///< translated providers
  std::string raw;             ///< provider stream bytes, before translation
  std::string translated;      ///< OpenAI events from the last feed
  std::vector<std::pair<std::size_t, std::size_t>> cuts;  ///< events to drop in this read
  bool cut_open = false;
  bool usage_cut = false;      ///< the usage-only chunk the gateway asked for was dropped

  using clock = std::chrono::steady_clock;
  clock::time_point t_start{}, t_call_start{}, t_done{};
};

class dispatch_call {
 public:
  using clock = std::chrono::steady_clock;
  explicit dispatch_call(request_context& ctx);
  ~dispatch_call();

  void start();
  void on_deadline();
  /// Gives back the attempt's slot in its deployment's limits and counts its tokens.
  void release_deployment_limits();
  /// The request's end on the dispatcher's side: metrics, the outcome to the deployment.
  void finish();

 private:
  friend struct relay_ops;

  // dispatcher.cpp
  void route();
  void on_deployment_limits(const limits::decision& d, bool via_redis);
  void attempt_failed(providers::failure_kind k, std::int64_t retry_after_ms);
  void end_attempt(int status, bool upstream_ok, bool failure);
  void retry_after(std::chrono::milliseconds delay);
  void next_fallback();
  void give_up();
  bool other_deployment_available() const;

  // attempt.cpp
  void begin_attempt();
  void fetch_images(std::vector<std::string> urls);
  void build_call();
  void authorize();
  void send_authorized(std::string_view auth_headers);
  void credentials_failed(const std::string& why);
  void refuse_request(providers::provider_error e);
  void connect();
  void on_connected(http::error_code ec);
  void write_request();
  void on_written(http::error_code ec);
  void on_head(http::error_code ec);
  bool retry_on_fresh_connection(http::error_code ec);
  void fail_before_response(http::error_code ec);
  std::chrono::milliseconds timeout() const;
  std::chrono::milliseconds stream_timeout() const;

  // relay.cpp
  void read_buffered();
  void on_buffered(http::error_code ec, bool done);
  void respond_buffered();
  void respond_buffered_error();
  void respond_error(const error& e, std::string_view extra = {});
  void start_stream();
  template <class Then>
  void forward(std::size_t n, Then&& then, bool last = false);
  void read_stream();
  void on_stream_read(http::error_code ec, std::size_t n, bool done);
  void stream_broke(std::string message);
  void stream_provider_error(const providers::provider_error& e);
  void client_gone(bool upstream_complete);
  void build_client_headers();
  std::string dispatcher_headers() const;
  std::string timing_headers();
  void capture(std::string_view bytes);
  void finish_stream(int status, bool upstream_ok);

  // mock.cpp
  /// The testing controls: true when this attempt is answered (or failed) by them.
  bool mocked_attempt();
  void mock_answer(const std::string& content);

  // tracing of attempts (relay.cpp)
  void trace_attempt_head();
  void trace_attempt_end(int status, bool upstream_ok);

  request_context& ctx_;
  const services& svc_;
  routing::retry_state retry_;
  std::optional<attempt> a_;
  std::uint64_t attempts_ = 0;     ///< attempts begun (ids)
  std::vector<bool> tried_;        ///< by position in the group
  bool in_flight_metric_ = false;
  bool finished_ = false;
  bool upstream_ok_ = false;  ///< the answer came whole from the provider (set before the request finishes)
  // the last failure, when it was ours (not a provider's answer)
  std::optional<error> error_;
  std::string error_headers_;
  // the deployments' own limits
  bool dep_limit_refused_ = false;
  std::string dep_limit_message_;
  std::int64_t dep_limit_retry_ms_ = 0;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::string client_headers_;
  clock::time_point t_upstream_start_{}, t_upstream_done_{};
  // testing controls still to apply
  bool mock_fallbacks_pending_ = false, mock_rate_limit_pending_ = false;
  /// A fallback's body when its target replaced members of the request (else empty).
  std::string fallback_body_;
  providers::inspected_request fallback_view_;
};

}  // namespace gw::pipeline
