#pragma once
/// One proxied model request on its io thread: route (via actors), call the
/// upstream over a pooled connection, relay the answer (whole, or SSE event by
/// event), then report the outcome. io-thread owned.

#include <chrono>
#include <memory>
#include <string>

#include "gw/accounts/accounts.hpp"
#include "gw/gateway/actors.hpp"
#include "gw/gateway/context.hpp"
#include "gw/http/server.hpp"
#include "gw/http/sse.hpp"
#include "gw/http/upstream.hpp"
#include "gw/providers/openai.hpp"

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

  /// Asks the group's router for a deployment; everything else follows from there.
  void start();

  void on_deadline() override;

 private:
  enum class phase { routing, connecting, sending, waiting_head, reading_body, streaming, writing_client, done };

  void on_routed(route_decision d);
  void begin_attempt();
  void on_connected(http::error_code ec);
  void write_request();
  void on_written(http::error_code ec);
  void on_head(http::error_code ec);
  bool retry_on_fresh_connection(http::error_code ec);

  void read_buffered();
  void on_buffered(http::error_code ec, std::size_t n, bool done);
  void respond_buffered();

  void start_stream();
  void send_head_alone();
  template <class Then>
  void forward(std::size_t n, Then&& then);
  void read_stream();
  void on_stream_read(http::error_code ec, std::size_t n, bool done);
  void stream_broke(std::string message);
  void client_gone(bool upstream_complete);

  void fail_before_response(http::error_code ec);
  void respond_error(const error& e);
  void finish(int status, bool upstream_ok);
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
  deployment_runtime* dep_ = nullptr;
  std::unique_ptr<http::upstream_connection> conn_;
  phase phase_ = phase::routing;
  int attempts_ = 0;
  bool timed_out_ = false;
  bool finished_ = false;
  bool admitted_by_actor_ = false;
  bool head_pending_ = false;  ///< stream head not sent yet (goes with the first events)
  std::string call_id_;
  accounts::auth_entry_ptr entry_;  ///< null: master key or no auth
  std::uint64_t reservation_ = 0;
  bool charged_ = false;
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
  std::size_t cut_begin_ = 0, cut_end_ = 0;  ///< the usage-only event to drop, in relay_
  bool cut_ = false, cut_open_ = false, cut_done_ = false;

  // timing
  clock::time_point t_received_, t_upstream_start_, t_first_byte_, t_upstream_done_;
};

}  // namespace gw::gateway
