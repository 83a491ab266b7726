#include "gw/gateway/proxy_call.hpp"

#include <caf/send.hpp>

#include <atomic>
#include <charconv>
#include <cstring>
#include <random>

#include <boost/asio/ssl/error.hpp>

#include "gw/core/ids.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"

namespace gw::gateway {
namespace {

using http::error_code;
namespace asio = boost::asio;

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

/// Uniform in [0,1) from a per-thread generator (io threads route on their own).
double random01() {
  thread_local std::uint64_t s = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ULL;
  }();
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
}

/// Milliseconds with three decimals ("12.345"), appended without printf.
void append_ms(std::string& out, std::chrono::steady_clock::duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 0) us = 0;
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, us / 1000);
  (void)ec;
  out.append(buf, end);
  int frac = static_cast<int>(us % 1000);
  char f[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
               static_cast<char>('0' + frac % 10)};
  out.append(f, 4);
}

std::string ms_string(std::chrono::steady_clock::duration d) {
  std::string s;
  append_ms(s, d);
  return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

/// Upstream response headers worth passing to the client (as LiteLLM does, prefixed
/// "llm_provider-"); cookies and hop-by-hop headers never pass.
bool passes_through(std::string_view name) {
  return starts_with_ci(name, "x-ratelimit-") || iequals(name, "x-request-id") || starts_with_ci(name, "openai-") ||
         iequals(name, "retry-after") || iequals(name, "retry-after-ms") || starts_with_ci(name, "anthropic-") ||
         iequals(name, "apim-request-id") || starts_with_ci(name, "azureml-") || starts_with_ci(name, "x-ms-");
}

}  // namespace

std::string format_cost(keys::money m) {
  // Exact decimal, trailing zeros removed: "0.000123", "0".
  std::string s = keys::to_decimal(m);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

proxy_call::proxy_call(const gateway_context& ctx, http::session_ptr s, providers::operation op,
                       providers::inspected_request req, const model_group* group,
                       accounts::auth_entry_ptr entry, std::uint64_t reservation)
    : ctx_(ctx),
      session_(std::move(s)),
      op_(op),
      req_(std::move(req)),
      group_(group),
      entry_(std::move(entry)),
      reservation_(reservation) {
  t_received_ = session_->received_at();
  wall_start_ = std::chrono::system_clock::now() -
                std::chrono::duration_cast<std::chrono::system_clock::duration>(clock::now() - t_received_);
  call_id_ = new_request_id();
  ctx_.metrics->in_flight_add(session_->thread().index(), 1);
}

proxy_call::~proxy_call() {
  if (!finished_) ctx_.metrics->in_flight_add(session_->thread().index(), -1);
  if (!charged_) charge(499);  // never finished (shutdown): still release the reservation
}

const std::string_view proxy_call::k_usage_option = R"("stream_options":{"include_usage":true},)";

keys::money proxy_call::compute_cost() const {
  if (!dep_ || !dep_->price || !usage_.known()) return 0;
  pricing::token_usage u;
  u.prompt_tokens = std::max<std::int64_t>(0, usage_.prompt_tokens);
  u.completion_tokens = std::max<std::int64_t>(0, usage_.completion_tokens);
  // Cached parts are part of prompt_tokens; a provider reporting more is not trusted.
  u.cache_read_tokens = std::min(usage_.cached_tokens, u.prompt_tokens);
  u.cache_creation_tokens = std::min(usage_.cache_creation_tokens, u.prompt_tokens - u.cache_read_tokens);
  return pricing::cost_of(*dep_->price, u);
}

void proxy_call::charge(int status) {
  if (charged_ || !ctx_.accounts) return;
  charged_ = true;
  if (req_.stream && !usage_.known() && data_events_ > 0 && status / 100 == 2) {
    // A provider that ignored stream_options: estimate rather than charge nothing
    // (prompt from its size, one token per content chunk; the role chunk and [DONE]
    // are not tokens).
    usage_.prompt_tokens = req_.estimated_input_tokens();
    usage_.completion_tokens = std::max<std::int64_t>(0, data_events_ - 2);
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      log::warn("deployment '" + (dep_ ? dep_->cfg->model_name : std::string("?")) +
                "' streamed without usage: its cost is estimated from the stream (once-only warning)");
  }
  accounts::charge c;
  c.reservation = reservation_;
  c.cost = compute_cost();
  if (entry_ && c.cost != 0) c.entities = entry_->spend_entities(group_->name);
  auto& l = c.log;
  l.request_id = call_id_;
  l.call_type = providers::operation_name(op_);
  if (entry_) {
    l.api_key = entry_->token;
    l.key_alias = entry_->key_alias;
    l.user_id = entry_->user_id;
    l.team_id = entry_->team_id;
  }
  l.model_group = group_->name;
  if (dep_) {
    l.model_id = dep_->cfg->id;
    l.model = dep_->cfg->model;
    l.api_base = dep_->target.base_url;
  }
  if (usage_.known()) {
    l.prompt_tokens = std::max<std::int64_t>(0, usage_.prompt_tokens);
    l.completion_tokens = std::max<std::int64_t>(0, usage_.completion_tokens);
    l.total_tokens = usage_.total_tokens >= 0 ? usage_.total_tokens : l.prompt_tokens + l.completion_tokens;
  }
  l.spend = c.cost;
  l.start_time = wall_start_;
  auto now = clock::now();
  l.end_time = wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(now - t_received_);
  if (t_first_byte_ != clock::time_point{})
    l.completion_start_time =
        wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(t_first_byte_ - t_received_);
  l.status = status / 100 == 2 ? "success" : "failure";
  l.http_status = status;
  ctx_.accounts->io(session_->thread().index()).add_charge(std::move(c));
}

void proxy_call::start() {
  session_->thread().watch(weak_from_this());
  if (group_->local_routing) {
    // Nothing to admit: choose on this thread, no actor on the request path.
    auto pos = pick_deployment(*group_, nullptr, random01());
    if (pos == static_cast<std::size_t>(-1)) {
      const auto& deps = group_->deployments;
      error e{errc::not_implemented, deps.empty() ? "model group has no deployments" : deps.front()->problem, "model"};
      respond_error(e);
      return finish(http_status(e.code), false);
    }
    return on_routed(route_decision{group_->deployments[pos], std::nullopt});
  }
  admitted_by_actor_ = true;
  auto ticket = std::make_shared<route_ticket>();
  ticket->estimated_tokens = req_.estimated_input_tokens();
  // Called once on an actor thread; hands the decision back to this io thread.
  ticket->deliver = [self = shared_from_this(), io = &session_->io()](route_decision d) mutable {
    asio::post(*io, [s = std::move(self), d = std::move(d)]() mutable { s->on_routed(std::move(d)); });
  };
  caf::anon_send(group_->router, route_atom::value, std::move(ticket));
}

void proxy_call::on_routed(route_decision d) {
  if (d.failure) {
    respond_error(*d.failure);
    finish(http_status(d.failure->code), false);
    return;
  }
  dep_ = d.deployment;
  // The upstream request: head + body with only "model" replaced.
  const auto& body = session_->req().body();
  std::string upstream_model;
  bool same_model;
  if (dep_->wildcard_model) {
    upstream_model = providers::upstream_model_for(req_.model, dep_->cfg->model_name, dep_->cfg->upstream_model);
    same_model = upstream_model == req_.model;
    if (!same_model) model_json_ = json_quote(upstream_model);
  } else {
    same_model = dep_->cfg->upstream_model == req_.model;
    if (!same_model) model_json_ = dep_->upstream_model_json;
  }
  if (same_model) {
    body_prefix_ = body.size();
    body_suffix_ = body.size();
  } else {
    body_prefix_ = req_.model_token_begin;
    body_suffix_ = req_.model_token_end;
  }
  std::size_t length = body_prefix_ + model_json_.size() + (body.size() - body_suffix_);
  // Spend needs the usage a provider sends in streams only when asked: ask, unless the
  // client set stream_options itself (then it is the client's choice, passed on as is).
  inject_usage_ = req_.stream && !req_.has_stream_options;
  if (inject_usage_) {
    const void* brace = std::memchr(body.data(), '{', body_prefix_);
    if (brace) {
      brace_ = static_cast<std::size_t>(static_cast<const char*>(brace) - body.data()) + 1;
      length += k_usage_option.size();
    } else {
      inject_usage_ = false;
    }
  }
  const auto& prefix = dep_->head_prefix[static_cast<int>(op_)];
  head_.reserve(prefix.size() + 64);
  head_.assign(prefix);
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, length);
  (void)ec;
  head_.append(num, end);
  head_ += "\r\n";
  if (req_.stream) head_ += "accept: text/event-stream\r\n";
  head_ += "\r\n";
  t_upstream_start_ = clock::now();
  begin_attempt();
}

void proxy_call::begin_attempt() {
  ++attempts_;
  conn_ = session_->thread().pool().acquire(dep_->endpoint);
  if (conn_->connected()) return write_request();
  phase_ = phase::connecting;
  set_timeout(ctx_.connect_timeout);
  conn_->async_connect([self = shared_from_this()](error_code ec) { self->on_connected(ec); });
}

void proxy_call::on_connected(error_code ec) {
  if (ec) return fail_before_response(ec);
  write_request();
}

void proxy_call::write_request() {
  phase_ = phase::sending;
  // Non-streamed: one deadline for the whole call. Streamed: an inactivity deadline.
  if (req_.stream)
    set_timeout(dep_->stream_timeout);
  else
    set_deadline(t_upstream_start_ + dep_->timeout);
  const auto& body = session_->req().body();
  std::string_view option = inject_usage_ ? k_usage_option : std::string_view{};
  std::size_t split = inject_usage_ ? brace_ : 0;
  std::array<asio::const_buffer, 6> bufs{asio::buffer(head_),
                                         asio::buffer(body.data(), split),
                                         asio::buffer(option.data(), option.size()),
                                         asio::buffer(body.data() + split, body_prefix_ - split),
                                         asio::buffer(model_json_),
                                         asio::buffer(body.data() + body_suffix_, body.size() - body_suffix_)};
  conn_->async_write(bufs, [self = shared_from_this()](error_code ec) { self->on_written(ec); });
}

void proxy_call::on_written(error_code ec) {
  if (ec) {
    if (retry_on_fresh_connection(ec)) return;
    return fail_before_response(ec);
  }
  phase_ = phase::waiting_head;
  conn_->async_read_head(ctx_.upstream_header_limit, [self = shared_from_this()](error_code ec) { self->on_head(ec); });
}

bool proxy_call::retry_on_fresh_connection(error_code ec) {
  // A pooled connection the upstream closed while idle fails at once, before any
  // response byte; the request did not reach the provider, so send it again.
  if (timed_out_ || !conn_ || conn_->uses() == 0 || attempts_ >= 4) return false;
  if (ec != asio::error::eof && ec != asio::error::connection_reset && ec != asio::error::broken_pipe &&
      ec != http::bhttp::error::end_of_stream && ec != http::bhttp::error::partial_message)
    return false;
  log::debug("upstream connection to " + dep_->endpoint.authority + " was stale (" + ec.message() + "); retrying");
  conn_->close();
  conn_.reset();
  begin_attempt();
  return true;
}

void proxy_call::on_head(error_code ec) {
  if (ec) {
    if (retry_on_fresh_connection(ec)) return;
    return fail_before_response(ec);
  }
  const auto& res = conn_->response().get();
  status_ = static_cast<int>(res.result_int());
  auto ct = res[http::bhttp::field::content_type];
  content_type_.assign(ct.data(), ct.size());
  build_client_headers();
  if (req_.stream && status_ / 100 == 2 && starts_with_ci(content_type_, "text/event-stream")) {
    start_stream();
  } else {
    read_buffered();
  }
}

void proxy_call::build_client_headers() {
  client_headers_.clear();
  client_headers_.reserve(384);
  client_headers_ += "x-litellm-call-id: ";
  client_headers_ += call_id_;
  client_headers_ += "\r\nx-litellm-model-group: ";
  client_headers_ += group_->name;
  client_headers_ += "\r\nx-litellm-model-id: ";
  client_headers_ += dep_->cfg->id;
  client_headers_ += "\r\nx-litellm-attempted-retries: 0\r\n";
  for (const auto& f : conn_->response().get()) {
    auto name = f.name_string();
    std::string_view n(name.data(), name.size());
    if (!passes_through(n)) continue;
    auto v = f.value();
    std::string_view value(v.data(), v.size());
    if (iequals(n, "retry-after")) {
      client_headers_ += "retry-after: ";
      client_headers_ += value;
      client_headers_ += "\r\n";
    }
    client_headers_ += "llm_provider-";
    client_headers_ += to_lower(n);
    client_headers_ += ": ";
    client_headers_ += value;
    client_headers_ += "\r\n";
  }
}

std::string proxy_call::timing_headers() {
  auto now = clock::now();
  std::string h;
  h.reserve(client_headers_.size() + 96);
  h += client_headers_;
  h += "x-litellm-response-duration-ms: ";
  append_ms(h, now - t_received_);
  h += "\r\nx-litellm-overhead-duration-ms: ";
  auto upstream = (t_upstream_done_ > t_upstream_start_ ? t_upstream_done_ : now) - t_upstream_start_;
  append_ms(h, (now - t_received_) - upstream);
  h += "\r\n";
  return h;
}

// ------------------------------------------------------------ buffered response

void proxy_call::read_buffered() {
  phase_ = phase::reading_body;
  const auto& parser = conn_->response();
  if (parser.is_done()) return on_buffered({}, 0, true);
  if (auto cl = parser.content_length()) {
    if (*cl > ctx_.max_response_bytes) {
      conn_->close();
      respond_error(error{errc::upstream_bad_response, "upstream response too large", ""});
      return finish(502, false);
    }
    body_.reserve(static_cast<std::size_t>(*cl) + http::json_padding);
  } else if (body_.capacity() < 16 * 1024) {
    body_.reserve(16 * 1024);
  }
  std::size_t used = body_.size();
  std::size_t room = body_.capacity() - http::json_padding - used;
  if (room == 0) {
    if (body_.size() >= ctx_.max_response_bytes) {
      conn_->close();
      respond_error(error{errc::upstream_bad_response, "upstream response too large", ""});
      return finish(502, false);
    }
    body_.reserve(body_.capacity() * 2);
    room = body_.capacity() - http::json_padding - used;
  }
  body_.resize(used + room);
  if (conn_->buffered() > 0) {
    // The body (or part of it) came with the head: take it without another read.
    bool done = false;
    std::size_t n = conn_->take_buffered_body(body_.data() + used, room, done);
    body_.resize(used + n);
    if (done) return on_buffered({}, n, true);
    if (n > 0) return read_buffered();
  }
  conn_->async_read_body(body_.data() + used, room, [self = shared_from_this(), used](error_code ec, std::size_t n, bool done) {
    self->body_.resize(used + n);
    self->on_buffered(ec, n, done);
  });
}

void proxy_call::on_buffered(error_code ec, std::size_t, bool done) {
  if (ec) return fail_before_response(ec);
  if (!done) return read_buffered();
  t_upstream_done_ = clock::now();
  clear_deadline();
  respond_buffered();
}

void proxy_call::respond_buffered() {
  phase_ = phase::writing_client;
  bool ok = status_ / 100 == 2;
  if (ok) providers::read_usage(body_, usage_);
  std::string headers = timing_headers();
  if (ok && dep_->price) {
    headers += "x-litellm-response-cost: ";
    headers += format_cost(compute_cost());
    headers += "\r\n";
  }
  if (ok || providers::is_openai_error(body_)) {
    session_->respond(static_cast<unsigned>(status_), content_type_.empty() ? "application/json" : content_type_,
                      std::move(body_), headers);
  } else {
    // A non-OpenAI error body (an HTML page from a proxy, say): keep the status,
    // wrap the text so OpenAI clients can read it.
    std::string snippet = body_.substr(0, 512);
    std::string msg = "upstream returned HTTP " + std::to_string(status_) + (snippet.empty() ? "" : ": " + snippet);
    auto type = status_ == 429 ? "rate_limit_error" : status_ / 100 == 4 ? "invalid_request_error" : "api_error";
    session_->respond(static_cast<unsigned>(status_), "application/json",
                      openai_error_json(msg, type, "", std::to_string(status_)), headers);
  }
  finish(status_, ok);
}

// ------------------------------------------------------------ streamed response

void proxy_call::start_stream() {
  relay_.resize(ctx_.relay_buffer_bytes);
  head_pending_ = true;
  // When the first events came with the head (a fast upstream), send our head with
  // them in one write; otherwise send the head now so the client is not kept waiting.
  if (conn_->buffered() > 0) {
    bool done = false;
    std::size_t n = conn_->take_buffered_body(relay_.data(), relay_.size(), done);
    return on_stream_read({}, n, done);
  }
  send_head_alone();
}

void proxy_call::send_head_alone() {
  head_pending_ = false;
  phase_ = phase::writing_client;
  clear_deadline();
  session_->begin_stream(static_cast<unsigned>(status_), content_type_, timing_headers(), {},
                         [self = shared_from_this()](error_code ec) {
                           if (ec) return self->client_gone(false);
                           self->read_stream();
                         });
}

template <class Then>
void proxy_call::forward(std::size_t n, Then&& then) {
  phase_ = phase::writing_client;
  auto data = asio::buffer(relay_.data(), n);
  if (head_pending_) {
    head_pending_ = false;
    session_->begin_stream(static_cast<unsigned>(status_), content_type_, timing_headers(), data,
                           std::forward<Then>(then));
  } else {
    session_->write_chunk(data, std::forward<Then>(then));
  }
}

void proxy_call::read_stream() {
  phase_ = phase::streaming;
  if (relay_len_ == relay_.size()) {
    // One event larger than the buffer: grow, within reason.
    if (relay_.size() >= ctx_.max_sse_event_bytes) return stream_broke("upstream sent an event larger than the limit");
    relay_.resize(std::min(relay_.size() * 2, ctx_.max_sse_event_bytes));
  }
  set_timeout(dep_->stream_timeout);
  conn_->async_read_body(relay_.data() + relay_len_, relay_.size() - relay_len_,
                         [self = shared_from_this()](error_code ec, std::size_t n, bool done) {
                           self->on_stream_read(ec, n, done);
                         });
}

void proxy_call::on_stream_read(error_code ec, std::size_t n, bool done) {
  clear_deadline();
  if (n > 0 && t_first_byte_ == clock::time_point{}) t_first_byte_ = clock::now();
  relay_len_ += n;
  std::string_view data(relay_.data(), relay_len_);
  std::size_t boundary = scanner_.scan(data, scanned_, [this, data](std::string_view event) {
    bool inside = event.data() >= data.data() && event.data() <= data.data() + data.size();
    std::size_t offset = inside ? static_cast<std::size_t>(event.data() - data.data()) : 0;
    if (cut_open_) {  // the dropped event ends where this one starts
      cut_end_ = offset;
      cut_open_ = false;
    }
    ++data_events_;
    // Usage comes in the last chunk; the others say "usage":null or nothing.
    if (!providers::may_carry_usage(event)) return;
    auto payload = http::sse_event_data(event, sse_scratch_);
    if (payload.empty() || payload.front() != '{') return;
    providers::read_usage(payload, usage_);
    // The client did not ask for usage: the chunk we asked for is not passed on.
    if (inject_usage_ && inside && !cut_ && providers::has_empty_choices(payload)) {
      cut_ = cut_open_ = true;
      cut_begin_ = offset;
    }
  });
  scanned_ = relay_len_;
  if (cut_ && !cut_done_) {
    cut_done_ = true;
    std::size_t end = cut_open_ ? boundary : cut_end_;
    cut_open_ = false;
    if (end > cut_begin_ && end <= relay_len_) {
      std::size_t gone = end - cut_begin_;
      std::memmove(relay_.data() + cut_begin_, relay_.data() + end, relay_len_ - end);
      relay_len_ -= gone;
      scanned_ -= gone;
      scanner_.shift(gone);
      boundary -= gone;
    }
  }
  if (ec) {
    if (timed_out_) return stream_broke("upstream stream timed out after " + ms_string(dep_->stream_timeout) + " ms without data");
    return stream_broke("upstream stream broke: " + ec.message());
  }
  if (done) {
    t_upstream_done_ = clock::now();
    // Forward the rest as is (a last event without its blank line included).
    if (relay_len_ == 0 && !head_pending_) {
      session_->end_stream();
      return finish(status_, true);
    }
    forward(relay_len_, [self = shared_from_this()](error_code ec) {
      if (ec) return self->client_gone(true);
      self->session_->end_stream();
      self->finish(self->status_, true);
    });
    return;
  }
  if (boundary == 0) {
    // No whole event yet: the head goes out now, the event when it is complete.
    if (head_pending_) return send_head_alone();
    return read_stream();
  }
  forward(boundary, [self = shared_from_this(), boundary](error_code ec) {
    if (ec) return self->client_gone(false);
    auto& s = *self;
    std::memmove(s.relay_.data(), s.relay_.data() + boundary, s.relay_len_ - boundary);
    s.relay_len_ -= boundary;
    s.scanned_ -= boundary;
    s.scanner_.shift(boundary);
    s.read_stream();
  });
}

void proxy_call::client_gone(bool upstream_complete) {
  // The client closed its connection mid-stream: stop reading the provider (the
  // connection cannot be reused half-read) and close the client side.
  if (!upstream_complete) conn_->close();
  session_->abort();
  finish(499, upstream_complete);
}

void proxy_call::stream_broke(std::string message) {
  t_upstream_done_ = clock::now();
  conn_->close();
  std::size_t boundary = scanner_.event_start();  // whole events not yet forwarded
  if (head_pending_ && boundary == 0) {
    // Nothing for the client yet: answer with a plain error instead of a stream.
    head_pending_ = false;
    error e{timed_out_ ? errc::upstream_timeout : errc::upstream_bad_response, message, ""};
    log::warn("model group '" + group_->name + "': " + message);
    respond_error(e);
    return finish(http_status(e.code), false);
  }
  // End the stream with the whole events we have, then an error event, at an event
  // boundary (a partial event is dropped), then the last chunk.
  log::warn("stream from " + dep_->endpoint.authority + " for model group '" + group_->name + "' broke: " + message);
  event_out_.assign(relay_.data(), boundary);
  event_out_ += "data: ";
  event_out_ += to_openai_json(error{errc::upstream_stream_error, message, ""});
  event_out_ += "\n\n";
  relay_.swap(event_out_);  // forward() sends from relay_
  forward(relay_.size(), [self = shared_from_this()](error_code ec) {
    if (ec)
      self->session_->abort();
    else
      self->session_->end_stream();
    self->finish(502, false);
  });
}

// ------------------------------------------------------------ errors, outcome

void proxy_call::fail_before_response(error_code ec) {
  t_upstream_done_ = clock::now();
  clear_deadline();
  const auto& authority = dep_->endpoint.authority;
  error e;
  if (timed_out_) {
    if (phase_ == phase::connecting) {
      e = error{errc::upstream_timeout,
                "connecting to " + authority + " timed out after " + ms_string(ctx_.connect_timeout) + " ms", ""};
    } else {
      auto limit = req_.stream ? dep_->stream_timeout : dep_->timeout;
      e = error{errc::upstream_timeout,
                "upstream " + authority + " did not answer within " + ms_string(limit) + " ms", ""};
    }
  } else if (phase_ == phase::connecting) {
    if (ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category())
      e = error{errc::upstream_connect_error, "TLS handshake with " + authority + " failed: " + ec.message(), ""};
    else
      e = error{errc::upstream_connect_error, "could not connect to " + authority + ": " + ec.message(), ""};
  } else if (phase_ == phase::reading_body) {
    e = error{errc::upstream_bad_response, "upstream " + authority + " broke off its response: " + ec.message(), ""};
  } else {
    e = error{errc::upstream_bad_response,
              "upstream " + authority + " closed the connection without a valid response: " + ec.message(), ""};
  }
  if (conn_) conn_->close();
  log::warn("model group '" + group_->name + "': " + e.message);
  respond_error(e);
  finish(http_status(e.code), false);
}

void proxy_call::respond_error(const error& e) {
  std::string headers = "x-litellm-call-id: " + call_id_ + "\r\n";
  session_->respond_error(static_cast<unsigned>(http_status(e.code)), to_openai_json(e), headers);
}

void proxy_call::on_deadline() {
  timed_out_ = true;
  if (conn_) conn_->close();  // the pending upstream operation fails with operation_aborted
}

void proxy_call::finish(int status, bool upstream_ok) {
  if (finished_) return;
  finished_ = true;
  phase_ = phase::done;
  clear_deadline();
  charge(status);
  auto now = clock::now();
  std::size_t shard = session_->thread().index();
  ctx_.metrics->in_flight_add(shard, -1);
  if (!dep_) {
    ctx_.metrics->count_unrouted(shard, status);
    return;
  }
  bool upstream_measured = t_upstream_start_ != clock::time_point{};
  if (t_upstream_done_ == clock::time_point{}) t_upstream_done_ = now;
  double total = seconds(now - t_received_);
  double upstream = upstream_measured ? seconds(t_upstream_done_ - t_upstream_start_) : -1;
  double overhead = upstream >= 0 ? total - upstream : -1;
  double ttft = (req_.stream && t_first_byte_ != clock::time_point{}) ? seconds(t_first_byte_ - t_upstream_start_) : -1;
  dep_->probe->observe(shard, status, total, upstream, overhead, ttft);
  if (usage_.known()) dep_->probe->add_tokens(shard, usage_.prompt_tokens, usage_.completion_tokens);
  std::int64_t actual = usage_.known() ? std::max<std::int64_t>(0, usage_.prompt_tokens) +
                                             std::max<std::int64_t>(0, usage_.completion_tokens)
                                       : -1;
  outcome o{status, upstream_ok, req_.estimated_input_tokens(), actual, upstream >= 0 ? upstream : 0};
  if (admitted_by_actor_)
    caf::anon_send(dep_->actor, outcome_atom::value, o);  // frees its admission slot now
  else
    ctx_.batchers[session_->thread().index()]->add(*dep_, o);
  if (conn_) {
    if (upstream_ok && conn_->reusable())
      session_->thread().pool().release(std::move(conn_));
    else
      conn_->close();
  }
}

}  // namespace gw::gateway
