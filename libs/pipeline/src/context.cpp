#include "gw/pipeline/context.hpp"

#include "dispatch/dispatch_call.hpp"
#include "gw/core/ids.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::pipeline {

chain::chain(std::vector<const stage*> stages) : stages_(std::move(stages)) {
  for (auto* s : stages_) events_ |= s->wants_events();
}

request_context::request_context(const services& s, const chain& c, http::session_ptr sess, providers::operation o,
                                 dialect d)
    : svc(s),
      ch(c),
      sink(sess),
      thread(sess->thread()),
      shard(sess->thread().index()),
      received(sess->received_at()),
      op(o),
      client_dialect(d),
      session_(std::move(sess)) {
  req_ = &session_->req();
  wall_start = std::chrono::system_clock::now() -
               std::chrono::duration_cast<std::chrono::system_clock::duration>(clock::now() - received);
  call_id = new_request_id();
  if (svc.tracing) begin_trace();
}

request_context::request_context(const services& s, const chain& c, http::io_thread& th, providers::operation o,
                                 std::string body, internal_callback done)
    : svc(s),
      ch(c),
      sink(th.io(), std::move(done)),
      thread(th),
      shard(th.index()),
      received(clock::now()),
      op(o),
      client_dialect(dialect::openai),
      own_req_(std::make_unique<http::request>()) {
  req_ = own_req_.get();
  req_->method(http::bhttp::verb::post);
  req_->target(providers::operation_path(o).data());
  body.reserve(body.size() + http::json_padding);
  req_->body() = std::move(body);
  wall_start = std::chrono::system_clock::now();
  call_id = new_request_id();
  if (svc.tracing) begin_trace();
}

request_context::~request_context() {
  // Never finished (shutdown): what it holds is given back by the stages.
  if (!finished_) {
    if (!settled_) {
      out.status = out.status ? out.status : 499;
      settled_ = true;
      for (std::size_t i = ran_; i-- > 0;) ch[i].on_settle(*this);
    }
    finished_ = true;
  }
}

std::string_view request_context::client_body() noexcept {
  if (!original_body.empty()) return original_body;
  return req_->body();
}

std::string_view request_context::route() noexcept {
  std::string_view target(req_->target().data(), req_->target().size());
  return target.substr(0, target.find('?'));
}

void request_context::start() {
  next_ = 0;
  run();
}

void request_context::resume() {
  passed_ = std::max(passed_, next_);
  run();
}

bool request_context::passed(const stage* s) const noexcept {
  for (std::size_t i = 0; i < passed_ && i < ch.size(); ++i)
    if (&ch[i] == s) return true;
  return false;
}

void request_context::rerun() {
  if (next_ > 0) --next_;
  run();
}

void request_context::run() {
  while (next_ < ch.size()) {
    current_ = next_++;
    ran_ = std::max(ran_, next_);
    switch (ch[current_].on_request(*this)) {
      case flow::next:
        passed_ = std::max(passed_, next_);
        continue;
      case flow::answered:
      case flow::pending:
        return;
    }
  }
}

void request_context::fail(const error& e, std::string_view headers) {
  if (!out.failure) out.failure = e;
  response r;
  r.status = http_status(e.code);
  r.body = to_openai_json(e);
  r.error = true;
  r.headers = "x-litellm-call-id: ";
  r.headers += call_id;
  r.headers += "\r\n";
  r.headers += headers;
  respond(std::move(r));
}

void request_context::respond(response r) {
  if (finished_) return;
  if (out.status == 0 || r.error) out.status = r.status;
  // Response stages: those before the one answering, in reverse order.
  for (std::size_t i = current_; i-- > 0;) ch[i].on_response(*this, r);
  settle();
  sink.respond(static_cast<unsigned>(r.status), r.content_type, std::move(r.body), r.headers);
  finish();
}

bool request_context::rewrites_events() const noexcept { return ch.rewrites_events(); }

std::string_view request_context::rewrite_events(std::string_view events, bool last) {
  if (!ch.rewrites_events()) return events;
  // Each stage (reverse order) reads the previous one's output: two buffers, alternating.
  std::string_view in = events;
  int which = 0;
  for (std::size_t i = current_; i-- > 0;) {
    const auto& s = ch[i];
    if (!s.wants_events()) continue;
    auto& o = events_out_[which];
    o.clear();
    s.on_events(*this, in, last, o);
    in = o;
    which ^= 1;
  }
  return in;
}

void request_context::settle() {
  if (settled_) return;
  settled_ = true;
  for (std::size_t i = ran_; i-- > 0;) ch[i].on_settle(*this);
}

void request_context::finish() {
  if (finished_) return;
  settle();
  finished_ = true;
  clear_deadline();
  for (std::size_t i = ran_; i-- > 0;) ch[i].on_finish(*this);
  // Refused before any attempt (or every attempt failed: each was observed on its
  // deployment when it failed).
  if (out.attempts == 0) svc.metrics->count_unrouted(shard, out.status);
  if (trace) emit_trace();
}

void request_context::reroute(const routing::model_group* g, std::function<void(bool)> done) {
  reroute_from_ = group;
  group = g;
  reroute_done_ = std::move(done);
  reroute_refusal.reset();
  reroute_headers.clear();
  reroute_next_ = 0;
  run_reroute();
}

void request_context::run_reroute() {
  // The group the request moves to is `group` while the stages check it; a refusal
  // puts the one it came from back.
  while (reroute_next_ < ran_) {
    auto& s = ch[reroute_next_++];
    switch (s.on_reroute(*this)) {
      case flow::next:
        continue;
      case flow::pending:
        return;
      case flow::answered: {
        group = reroute_from_;
        auto done = std::move(reroute_done_);
        return done(false);
      }
    }
  }
  auto done = std::move(reroute_done_);
  done(true);
}

void request_context::resume_reroute() { run_reroute(); }

void request_context::rerun_reroute() {
  if (reroute_next_ > 0) --reroute_next_;
  run_reroute();
}

void request_context::refuse_reroute(error e, std::string headers) {
  reroute_refusal = std::move(e);
  reroute_headers = std::move(headers);
  group = reroute_from_;
  auto done = std::move(reroute_done_);
  if (done) done(false);
}

void request_context::on_deadline() {
  if (dispatch) dispatch->on_deadline();
}

// ------------------------------------------------------------ tracing

void request_context::begin_trace() {
  trace = std::make_unique<tracing::trace_record>();
  auto& t = *trace;
  // The body as the client sent it (no stage has rewritten it yet): a trace can be
  // replayed later exactly as sent.
  trace_bodies = svc.tracing->settings().begin(t, *req_);
  t.request_id = call_id;
  t.node_id = svc.node_id;
  t.start = wall_start;
  t.anthropic_ingress = client_dialect == dialect::anthropic;
}

void request_context::emit_trace() {
  auto t = std::move(trace);
  t->end = std::chrono::system_clock::now();
  if (out.first_byte != clock::time_point{} && view.stream) t->first_token = wall(out.first_byte);
  t->stream = view.stream;
  t->status = out.status;
  t->operation = std::string(providers::operation_name(op));
  t->anthropic_ingress = client_dialect == dialect::anthropic;
  t->model_group = requested_group ? requested_group->name : requested_model;
  if (out.deployment) {
    t->deployment_id = out.deployment->cfg->id;
    if (out.deployment->adapter) t->provider = std::string(out.deployment->adapter->system_name());
    t->response_model = out.upstream_model;
  }
  if (entry) {
    t->key_hash = entry->token;
    t->key_alias = entry->key_alias;
    t->user_id = entry->user_id;
    t->team_id = entry->team_id;
  }
  const auto& u = out.usage;
  if (u.known()) {
    t->input_tokens = std::max<std::int64_t>(0, u.prompt_tokens);
    t->output_tokens = std::max<std::int64_t>(0, u.completion_tokens);
    t->cache_read_tokens = u.cached_tokens;
    if (u.cache_creation_tokens > 0) t->cache_creation_tokens = u.cache_creation_tokens;
  }
  t->cost_pico = cost;
  if (out.status / 100 != 2) {
    if (out.failure) {
      t->error_type = std::string(error_code_string(out.failure->code));
      t->error_message = out.failure->message;
    } else if (!out.error_type.empty()) {
      t->error_type = out.error_type;
      t->error_message = out.error_message;
    } else if (out.status == 499) {
      t->error_type = "client_closed";
      t->error_message = "the client closed the connection";
    } else {
      t->error_type = std::to_string(out.status);
      t->error_message = "upstream returned HTTP " + std::to_string(out.status);
    }
  }
  svc.tracing->add(shard, std::move(*t));
}

}  // namespace gw::pipeline
