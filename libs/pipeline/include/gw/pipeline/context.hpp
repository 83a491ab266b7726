#pragma once
/// One request on its way through a chain of stages: what the client sent (the original
/// bytes and the normalized view), who is calling, which model group serves it, what it
/// holds (budget reservation, rate-limit slots), where the answer goes, and the outcome
/// the settle and finish stages read. io-thread owned: every method runs on the io
/// thread of the request (stages resume there after asynchronous steps).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/accounts/accounts.hpp"
#include "gw/core/error.hpp"
#include "gw/http/io_threads.hpp"
#include "gw/http/server.hpp"
#include "gw/limits/limits.hpp"
#include "gw/pipeline/services.hpp"
#include "gw/pipeline/sink.hpp"
#include "gw/pipeline/stage.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/openai.hpp"
#include "gw/routing/registry.hpp"
#include "gw/tracing/record.hpp"

namespace gw::pipeline {

class chain;
class dispatch_call;

/// The wire dialect the client speaks (its errors and answers come back in it).
enum class dialect { openai, anthropic };

/// Rate-limit scopes a request holds, and where they were counted.
struct limit_ticket {
  const std::vector<limits::scope>* scopes = nullptr;
  bool via_redis = false;
};

/// The request's own routing controls: the body's (inspected_request) with the
/// x-litellm-* headers applied, capped by the operator's settings.
struct routing_controls {
  double timeout_s = 0, stream_timeout_s = 0;  ///< 0: the deployment's
  int num_retries = -1;                        ///< -1: the configured count
  bool timeout_given = false;                  ///< x-litellm-timeout is returned on errors
};

/// What happened, filled by the dispatcher (or the stage that answered); the settle and
/// finish stages read it.
struct outcome {
  int status = 0;
  providers::usage usage;
  const routing::deployment_runtime* deployment = nullptr;  ///< the last one tried
  std::string upstream_model;                               ///< the model name it was sent
  std::int64_t stream_events = 0;                           ///< events relayed (fallback token count)
  std::chrono::steady_clock::time_point first_byte{};       ///< first stream byte
  std::optional<gw::error> failure;  ///< the failure when it was ours (not the provider's answer)
  std::string error_type;      ///< the error's code when it is not a gw::error (a provider_error refusal)
  std::string error_message;   ///< ... and its message
  int attempts = 0;            ///< upstream attempts made
  bool mocked = false;         ///< answered by mock_response, not a provider
};

class request_context final : public http::deadline_target, public std::enable_shared_from_this<request_context> {
 public:
  using clock = std::chrono::steady_clock;

  /// A client request read by `s`.
  request_context(const services& svc, const chain& ch, http::session_ptr s, providers::operation op, dialect d);
  /// An internal call: `body` (an OpenAI request) on io thread `th`; the answer goes to `done`.
  request_context(const services& svc, const chain& ch, http::io_thread& th, providers::operation op,
                  std::string body, internal_callback done);
  ~request_context() override;
  request_context(const request_context&) = delete;
  request_context& operator=(const request_context&) = delete;

  // ---- set at start ---------------------------------------------------------------
  const services& svc;
  const chain& ch;
  response_sink sink;
  http::io_thread& thread;
  const std::size_t shard;
  clock::time_point received;
  std::chrono::system_clock::time_point wall_start;
  std::string call_id;
  providers::operation op;
  dialect client_dialect;
  std::string_view path_model;  ///< Azure-style routes: the deployment named in the path
  /// The client's request (headers and body); the body is rewritten by dialect stages.
  http::request& req() noexcept { return *req_; }

  // ---- what the client sent ---------------------------------------------------------
  /// The client's body as it came, kept when a stage rewrote req().body() (traces and
  /// spend logs keep what the client sent).
  std::string original_body;
  /// The body as it came: original_body when a stage rewrote it, else req().body().
  std::string_view client_body() noexcept;
  /// The path the client called, without its query (its dialect: /v1/messages, Azure's...).
  std::string_view route() noexcept;
  /// The request in OpenAI's shape, with spans into req().body().
  providers::inspected_request view;
  routing_controls controls;
  std::shared_ptr<const providers::anthropic_request_info> anthropic;  ///< dialect::anthropic
  std::string requested_model;  ///< as the client named it (once read)

  // ---- who is calling ---------------------------------------------------------------
  bool master = false;            ///< the master key (or no master key configured)
  accounts::auth_entry_ptr entry; ///< a virtual key

  // ---- where it goes and what it holds ------------------------------------------------
  const routing::model_group* group = nullptr;            ///< serving now (a fallback's after a reroute)
  const routing::model_group* requested_group = nullptr;  ///< what the client asked for
  accounts::budget_hold budget;                           ///< what it reserved of its budgets
  limit_ticket client_limits;                             ///< key, user, team, key x model
  limits::decision client_decision;                       ///< for the x-ratelimit-* headers
  std::vector<limit_ticket> fallback_limits;              ///< key x model scopes of fallbacks

  // ---- the outcome --------------------------------------------------------------------
  outcome out;
  keys::money cost = 0;  ///< what was charged (set by the spend stage)
  bool charged = false;

  // ---- tracing (svc.tracing set) ----------------------------------------------------
  std::unique_ptr<tracing::trace_record> trace;
  bool trace_bodies = false;  ///< this record keeps bodies (a consumer wants them)

  // ---- flow ---------------------------------------------------------------------------
  /// Runs the chain from its first stage.
  void start();
  /// After a stage returned `pending`: continues with the next stage.
  void resume();
  /// After a stage returned `pending`: runs the same stage again (its wait is over).
  void rerun();
  /// Answers with our error (OpenAI's shape; dialect stages turn it into the client's).
  void fail(const error& e, std::string_view headers = {});
  /// Answers with a whole response: response stages (reverse), settle, write, finish.
  void respond(response r);

  /// Moves the request to model group `g` (a fallback): every stage that ran checks it
  /// (on_reroute). `done(true)` when all admit it, on this io thread; else
  /// reroute_refusal says why.
  void reroute(const routing::model_group* g, std::function<void(bool)> done);
  void resume_reroute();           ///< a stage's asynchronous reroute check admitted
  void rerun_reroute();            ///< ... or wants to check again (its wait is over)
  void refuse_reroute(error e, std::string headers = {});  ///< ... or refused
  std::optional<error> reroute_refusal;
  std::string reroute_headers;

  /// Stream answers: whether some stage rewrites events, and the rewrite of `events`
  /// (whole SSE events) by them (a view of `events` itself when none does).
  bool rewrites_events() const noexcept;
  std::string_view rewrite_events(std::string_view events, bool last);

  /// What the next request must see, done before the answer's last byte can reach the
  /// client (charge, limit releases): the stages' on_settle, once.
  void settle();
  /// The answer is written or the client left: the stages' on_finish, once.
  void finish();
  bool settled() const noexcept { return settled_; }
  /// True when stage `s` let the request through (returned `next`, or resumed it).
  bool passed(const stage* s) const noexcept;
  bool finished() const noexcept { return finished_; }

  /// For a stage calling something that answers either inside the call (then the stage
  /// returns the answer's flow) or later (then it resumes the chain): set `inside` around
  /// the call; the callback sets `done` and `result` when it runs inside.
  struct sync_probe {
    bool inside = false;
    bool done = false;
    flow result = flow::pending;
    /// Called first thing in the callback: true when it runs inside the call.
    bool now() noexcept {
      if (inside) done = true;
      return inside;
    }
  } probe;

  /// The dispatcher's per-request state (made when the request reaches it).
  std::unique_ptr<dispatch_call> dispatch;

  /// A stage's own per-request state (made on first use, dropped with the request).
  template <class T>
  T& state_of(const stage* s) {
    for (auto& [owner, st] : states_)
      if (owner == s) return static_cast<T&>(*st);
    states_.emplace_back(s, std::make_unique<T>());
    return static_cast<T&>(*states_.back().second);
  }

  // deadline_target: forwarded to the dispatcher
  void on_deadline() override;

  std::chrono::system_clock::time_point wall(clock::time_point t) const {
    return wall_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - received);
  }

 private:
  void run();
  void run_reroute();
  void begin_trace();
  void emit_trace();

  http::session_ptr session_;               ///< a client request
  std::unique_ptr<http::request> own_req_;  ///< an internal call's request
  http::request* req_ = nullptr;
  std::size_t next_ = 0;      ///< the next stage to run
  std::size_t current_ = 0;   ///< the stage that ran last (answering or pending)
  std::size_t ran_ = 0;       ///< stages whose on_request was called
  std::size_t passed_ = 0;    ///< stages that let the request through
  std::size_t reroute_next_ = 0;
  const routing::model_group* reroute_from_ = nullptr;
  std::function<void(bool)> reroute_done_;
  std::string events_out_[2];
  std::vector<std::pair<const stage*, std::unique_ptr<stage_state>>> states_;
  bool settled_ = false, finished_ = false;
};

/// An ordered list of stages, built once per route (the last one answers: the
/// dispatcher). Shared by every request of the route; thread-safe (immutable).
class chain {
 public:
  explicit chain(std::vector<const stage*> stages);
  const std::vector<const stage*>& stages() const noexcept { return stages_; }
  std::size_t size() const noexcept { return stages_.size(); }
  const stage& operator[](std::size_t i) const noexcept { return *stages_[i]; }
  bool rewrites_events() const noexcept { return events_; }

 private:
  std::vector<const stage*> stages_;
  bool events_ = false;
};

}  // namespace gw::pipeline
