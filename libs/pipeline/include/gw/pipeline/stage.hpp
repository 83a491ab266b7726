#pragma once
/// The contract of a pipeline stage (after Envoy's HTTP filters: each stage continues
/// the chain, stops it with an answer, or holds it while something asynchronous runs and
/// resumes it later on the same io thread).
///
/// A chain is built once per route from the config; stages are shared by every request
/// of the route and hold no per-request state (that lives in the request_context). All
/// calls happen on the request's io thread.
///
///   request side, in chain order:   on_request
///   a fallback to another group:    on_reroute (in chain order, for the stages that ran)
///   response side, reverse order:   on_response (a whole answer, success or error),
///                                   on_events (a stream's events, for stages that want them)
///   before the answer's last byte:  on_settle (reverse order: charge, limit releases)
///   after it (or the client left):  on_finish (reverse order: metrics, traces)

#include <string>
#include <string_view>

namespace gw::pipeline {

class request_context;

/// Base of a stage's per-request state (request_context::state_of).
struct stage_state {
  virtual ~stage_state() = default;
};

/// What a stage's on_request decided.
enum class flow {
  next,     ///< continue with the next stage
  answered, ///< the stage answered (ctx.fail() or ctx.respond()); the chain stops
  pending,  ///< the stage will call ctx.resume() (or answer) later, on this io thread
};

/// A whole answer on its way back to the client, in OpenAI's shape until a dialect stage
/// turns it into the client's.
struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string headers;  ///< whole "name: value\r\n" lines
  bool error = false;   ///< an error answer (ours or the provider's)
};

class stage {
 public:
  virtual ~stage() = default;
  virtual std::string_view name() const noexcept = 0;

  virtual flow on_request(request_context& ctx) const = 0;
  /// The request moves to another model group (a fallback): the stage checks it as it
  /// checked the first (model access, budget, limits). `answered` refuses the move with
  /// ctx.reroute_refusal set; `pending` resumes with ctx.resume_reroute().
  virtual flow on_reroute(request_context&) const { return flow::next; }
  virtual void on_response(request_context&, response&) const {}
  /// Only called when wants_events() is true. `events` are whole SSE events (one or
  /// more); what the client gets instead is appended to `out` (the events as they are,
  /// rewritten, or nothing: held back or dropped). `last`: the stream ends after them.
  virtual bool wants_events() const noexcept { return false; }
  virtual void on_events(request_context&, std::string_view events, bool /*last*/, std::string& out) const {
    out.append(events);
  }
  virtual void on_settle(request_context&) const {}
  virtual void on_finish(request_context&) const {}
};

}  // namespace gw::pipeline
