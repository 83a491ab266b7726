// The attempts' spans in the request's trace record: one CLIENT span per attempt (a
// multi-call attempt has one), whose traceparent goes upstream with the client's
// tracestate.

#include "dispatch_call.hpp"

namespace gw::pipeline {

void dispatch_call::trace_attempt_head() {
  auto& a = *a_;
  auto& t = *ctx_.trace;
  if (!a.span || t.attempts.empty()) {
    a.span = true;
    auto& r = t.attempts.emplace_back();
    r.span = tracing::new_span_id();
    r.start = std::chrono::system_clock::now();
    r.model_group = ctx_.group->name;
    r.deployment_id = a.dep->cfg->id;
    r.provider = std::string(a.dep->adapter->system_name());
    r.upstream_model = a.ex->upstream_model();
    r.server_address = a.dep->endpoint.host;
    r.server_port = a.dep->endpoint.port;
  }
  a.head += "traceparent: ";
  tracing::append_traceparent(a.head, t.trace, t.attempts.back().span, t.flags);
  a.head += "\r\n";
  if (!t.tracestate.empty() && t.tracestate.find_first_of("\r\n") == std::string::npos) {
    a.head += "tracestate: ";
    a.head += t.tracestate;
    a.head += "\r\n";
  }
}

void dispatch_call::trace_attempt_end(int status, bool upstream_ok) {
  auto& t = *ctx_.trace;
  if (!a_ || !a_->span || t.attempts.empty()) return;
  auto& r = t.attempts.back();
  if (r.end != std::chrono::system_clock::time_point{}) return;
  r.end = std::chrono::system_clock::now();
  r.http_status = status;
  if (ctx_.out.first_byte != clock::time_point{} && ctx_.view.stream) r.first_chunk = ctx_.wall(ctx_.out.first_byte);
  if (!upstream_ok) {
    if (error_)
      r.error_type = std::string(error_code_string(error_->code));
    else if (status == 499)
      r.error_type = "client_closed";
    else if (status >= 400)
      r.error_type = std::to_string(status);
    else
      r.error_type = "error";
    if (error_ && status == 0) r.http_status = 0;
  }
}

}  // namespace gw::pipeline
