// The answer: read whole (then translated, costed, passed through the response stages)
// or relayed as a stream (SSE events as they arrive: each read is scanned for event
// boundaries and its whole events forwarded as one chunk; the head goes with the first
// events, so that a failure before them can still be retried). Errors the provider
// answers are made OpenAI-shaped; ours carry the dispatcher's headers.

#include "dispatch_call.hpp"

#include <charconv>
#include <cstring>

#include "gw/core/json_writer.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "gw/pipeline/stages.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::pipeline {
namespace {

namespace asio = boost::asio;
using http::error_code;

/// Upstream response headers worth passing to the client (as LiteLLM does, prefixed
/// "llm_provider-"); cookies and hop-by-hop headers never pass.
bool passes_through(std::string_view name) {
  return starts_with_ci(name, "x-ratelimit-") || iequals(name, "x-request-id") || starts_with_ci(name, "openai-") ||
         iequals(name, "retry-after") || iequals(name, "retry-after-ms") || starts_with_ci(name, "anthropic-") ||
         iequals(name, "apim-request-id") || starts_with_ci(name, "azureml-") || starts_with_ci(name, "x-ms-");
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

/// retry-after (seconds; an HTTP date is not parsed) or retry-after-ms.
std::int64_t retry_after_ms_of(const http::bhttp::fields& h) {
  auto ms = h["retry-after-ms"];
  if (!ms.empty()) {
    double v = std::atof(std::string(ms.data(), ms.size()).c_str());
    if (v > 0) return static_cast<std::int64_t>(v);
  }
  auto s = h[http::bhttp::field::retry_after];
  if (!s.empty()) {
    double v = std::atof(std::string(s.data(), s.size()).c_str());
    if (v > 0) return static_cast<std::int64_t>(v * 1000.0);
  }
  return 0;
}

/// Seconds as Python prints a float ("1.0", "0.3", "600.0"): LiteLLM's x-litellm-timeout.
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", s);
  std::string t(buf);
  if (t.find_first_of(".e") == std::string::npos) t += ".0";
  return t;
}

}  // namespace

std::string format_cost(keys::money m) {
  std::string s = keys::to_decimal(m);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// ------------------------------------------------------------ headers

std::string dispatch_call::dispatcher_headers() const {
  std::string h = "x-litellm-call-id: ";
  h += ctx_.call_id;
  h += "\r\nx-litellm-model-group: ";
  h += ctx_.group->name;
  h += "\r\nx-litellm-attempted-retries: ";
  h += std::to_string(retry_.retries());
  h += "\r\nx-litellm-attempted-fallbacks: ";
  h += std::to_string(retry_.fallbacks());
  h += "\r\n";
  return h;
}

void dispatch_call::build_client_headers() {
  auto& a = *a_;
  client_headers_.clear();
  client_headers_.reserve(384);
  client_headers_ += dispatcher_headers();
  client_headers_ += "x-litellm-model-id: ";
  client_headers_ += a.dep->cfg->id;
  client_headers_ += "\r\n";
  if (retry_.retries() > 0) {
    bool named = false;
    client_headers_ += "x-litellm-max-retries: ";
    client_headers_ += std::to_string(retry_.allowed_retries(*ctx_.group, config::error_class::none, named));
    client_headers_ += "\r\n";
  }
  if (ctx_.client_limits.scopes) append_ratelimit_headers(client_headers_, ctx_.client_decision);
  if (!a.conn) return;
  for (const auto& f : a.conn->response().get()) {
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

std::string dispatch_call::timing_headers() {
  auto now = clock::now();
  std::string h;
  h.reserve(client_headers_.size() + 96);
  h += client_headers_;
  h += "x-litellm-response-duration-ms: ";
  append_ms(h, now - ctx_.received);
  h += "\r\nx-litellm-overhead-duration-ms: ";
  auto upstream = (t_upstream_done_ > t_upstream_start_ ? t_upstream_done_ : now) - t_upstream_start_;
  append_ms(h, (now - ctx_.received) - upstream);
  h += "\r\n";
  return h;
}

void dispatch_call::capture(std::string_view bytes) {
  if (!ctx_.trace || !ctx_.trace_bodies) return;
  const auto& s = svc_.tracing->settings();
  auto& t = *ctx_.trace;
  std::size_t room = 0;
  if (s.capture_response) {
    auto& out = t.response_body;
    room = s.capture_bytes > out.size() ? s.capture_bytes - out.size() : 0;
    out.append(bytes.data(), std::min(room, bytes.size()));
    if (bytes.size() <= room) return;
    t.response_truncated = true;
  } else if (!s.facts) {
    return;
  } else if (!ctx_.view.stream) {
    if (t.response_facts) return;  // read with the usage already
    // A whole answer: its id, model and finish reasons, read in place (padded).
    auto& f = t.response_facts.emplace();
    if (!tracing::read_answer_facts(bytes.data(), bytes.size(), a_->body.capacity(), f)) {
      thread_local std::string padded;
      padded.assign(bytes);
      padded.reserve(bytes.size() + http::json_padding);
      tracing::read_answer_facts(padded.data(), padded.size(), padded.capacity(), f);
    }
    return;
  }
  if (!ctx_.view.stream) return;
  // Past the limit (or without capture) a stream keeps its last events: the finish
  // reasons and the id come at the end.
  constexpr std::size_t k_tail = 4096;
  auto& tail = t.response_tail;
  tail.append(bytes.substr(room));
  if (tail.size() > 2 * k_tail) {
    auto cut = tail.find("\n\n", tail.size() - k_tail);
    tail.erase(0, cut == std::string::npos ? tail.size() - k_tail : cut + 2);
  }
}

// ------------------------------------------------------------ errors

void dispatch_call::respond_error(const error& e, std::string_view extra) {
  ctx_.out.failure = e;
  response r;
  r.status = http_status(e.code);
  r.body = to_openai_json(e);
  r.error = true;
  r.headers = dispatcher_headers();
  if (ctx_.controls.timeout_given || e.code == errc::upstream_timeout) {
    // LiteLLM's x-litellm-timeout: the timeout that applied, on error answers.
    double s = a_ && a_->dep ? static_cast<double>((ctx_.view.stream ? stream_timeout() : timeout()).count()) / 1000.0
                             : ctx_.controls.timeout_s;
    if (s > 0) r.headers += "x-litellm-timeout: " + seconds_text(s) + "\r\n";
  }
  r.headers += extra;
  upstream_ok_ = false;
  ctx_.respond(std::move(r));
}

void dispatch_call::respond_buffered_error() {
  auto& a = *a_;
  a.at = attempt::phase::writing_client;
  capture(a.body);
  response r;
  r.status = a.status;
  r.error = true;
  r.headers = timing_headers();
  if (ctx_.controls.timeout_given) {
    r.headers += "x-litellm-timeout: " +
                 seconds_text(static_cast<double>((ctx_.view.stream ? stream_timeout() : timeout()).count()) / 1000.0) +
                 "\r\n";
  }
  if (providers::is_openai_error(a.body)) {
    r.body = providers::normalize_error_body(a.body, a.status);
  } else {
    // A non-OpenAI error body (an HTML page from a proxy, say): keep the status, wrap the
    // text so OpenAI clients can read it.
    std::string snippet = a.body.substr(0, 512);
    std::string msg = "upstream returned HTTP " + std::to_string(a.status) + (snippet.empty() ? "" : ": " + snippet);
    auto type = a.status == 429 ? "rate_limit_error" : a.status / 100 == 4 ? "invalid_request_error" : "api_error";
    r.body = openai_error_json(msg, type, "", std::to_string(a.status));
  }
  upstream_ok_ = false;
  ctx_.respond(std::move(r));
}

// ------------------------------------------------------------ buffered answers

void dispatch_call::read_buffered() {
  auto& a = *a_;
  a.at = attempt::phase::reading_body;
  const auto& parser = a.conn->response();
  if (parser.is_done()) return on_buffered({}, true);
  auto too_large = [&] {
    a.conn->close();
    respond_error(error{errc::upstream_bad_response, "upstream response too large", ""});
  };
  if (auto cl = parser.content_length()) {
    if (*cl > svc_.max_response_bytes) return too_large();
    a.body.reserve(static_cast<std::size_t>(*cl) + http::json_padding);
  } else if (a.body.capacity() < 16 * 1024) {
    a.body.reserve(16 * 1024);
  }
  std::size_t used = a.body.size();
  std::size_t room = a.body.capacity() - http::json_padding - used;
  if (room == 0) {
    if (a.body.size() >= svc_.max_response_bytes) return too_large();
    a.body.reserve(a.body.capacity() * 2);
    room = a.body.capacity() - http::json_padding - used;
  }
  a.body.resize(used + room);
  if (a.conn->buffered() > 0) {
    // The body (or part of it) came with the head: take it without another read.
    bool done = false;
    std::size_t n = a.conn->take_buffered_body(a.body.data() + used, room, done);
    a.body.resize(used + n);
    if (done) return on_buffered({}, true);
    if (n > 0) return read_buffered();
  }
  a.conn->async_read_body(a.body.data() + used, room,
                          [c = ctx_.shared_from_this(), used](error_code ec, std::size_t n, bool done) {
                            auto& self = *c->dispatch;
                            self.a_->body.resize(used + n);
                            self.on_buffered(ec, done);
                          });
}

void dispatch_call::on_buffered(error_code ec, bool done) {
  if (ec) return fail_before_response(ec);
  if (!done) return read_buffered();
  a_->t_done = t_upstream_done_ = clock::now();
  ctx_.clear_deadline();
  respond_buffered();
}

void dispatch_call::respond_buffered() {
  auto& a = *a_;
  std::string_view error_type;
  if (a.conn) {
    auto h = a.conn->response().get()["x-amzn-errortype"];
    error_type = std::string_view(h.data(), h.size());
  }
  // A trace without content wants the answer's id, model and finish reasons: read in
  // the same pass as the usage when the adapter reads the body anyway.
  bool facts = ctx_.trace && ctx_.trace_bodies && svc_.tracing->settings().facts;
  providers::answer_info info;
  bool info_read = false;
  if (!a.ex->on_answer(a.status, a.body, error_type, ctx_.out.usage, facts ? &info : nullptr, &info_read)) {
    // Another call on this attempt (Titan embeds one input per call): the answer was
    // read whole, so its connection can carry the next call.
    if (a.conn) {
      if (a.conn->reusable())
        ctx_.thread.pool().release(std::move(a.conn));
      else
        a.conn->close();
      a.conn.reset();
    }
    a.status = 0;
    a.body.clear();
    a.t_call_start = clock::now();
    return build_call();
  }
  if (info_read) {
    auto& f = ctx_.trace->response_facts.emplace();
    f.id = std::move(info.id);
    f.model = std::move(info.model);
    f.finish_reasons = std::move(info.finish_reasons);
  }
  if (a.status / 100 != 2) {
    // Nothing reached the client yet: a retry or a fallback may still answer.
    auto k = a.dep->adapter->classify(a.status, a.body);
    error_.reset();
    return attempt_failed(k, a.conn ? retry_after_ms_of(a.conn->response().get()) : 0);
  }
  a.at = attempt::phase::writing_client;
  response r;
  r.status = a.status;
  r.content_type = a.content_type.empty() ? "application/json" : a.content_type;
  r.headers = timing_headers();
  if (a.dep->price) {
    r.headers += "x-litellm-response-cost: ";
    r.headers += format_cost(response_cost(ctx_));
    r.headers += "\r\n";
  }
  capture(a.body);
  r.body = std::move(a.body);
  upstream_ok_ = true;
  ctx_.respond(std::move(r));
}

// ------------------------------------------------------------ streamed answers

void dispatch_call::start_stream() {
  auto& a = *a_;
  a.relay.resize(svc_.relay_buffer_bytes);
  a.head_pending = true;
  // When the first events came with the head (a fast upstream), send our head with them
  // in one write; otherwise read on: the head goes out with the first whole events, so
  // until then a failure can still be retried or fall back, the client having seen nothing.
  if (a.conn->buffered() > 0) {
    bool done = false;
    if (a.translator) a.raw.resize(std::max<std::size_t>(a.raw.size(), 16 * 1024));
    std::size_t n = a.translator ? a.conn->take_buffered_body(a.raw.data(), a.raw.size(), done)
                                 : a.conn->take_buffered_body(a.relay.data(), a.relay.size(), done);
    return on_stream_read({}, n, done);
  }
  read_stream();
}

template <class Then>
void dispatch_call::forward(std::size_t n, Then&& then, bool last) {
  auto& a = *a_;
  a.at = attempt::phase::writing_client;
  std::string_view events(a.relay.data(), n);
  capture(events);
  auto out = ctx_.rewrite_events(events, last);
  auto data = asio::buffer(out.data(), out.size());
  if (a.head_pending) {
    a.head_pending = false;
    ctx_.sink.begin_stream(static_cast<unsigned>(a.status), a.content_type, timing_headers(), data,
                           std::forward<Then>(then));
  } else {
    ctx_.sink.write_chunk(data, std::forward<Then>(then));
  }
}

void dispatch_call::read_stream() {
  auto& a = *a_;
  a.at = attempt::phase::streaming;
  if (a.translator) {
    // Provider bytes go to raw; on_stream_read puts their translation into relay.
    if (a.raw.size() < 16 * 1024) a.raw.resize(16 * 1024);
    ctx_.set_timeout(stream_timeout());
    a.conn->async_read_body(a.raw.data(), a.raw.size(),
                            [c = ctx_.shared_from_this()](error_code ec, std::size_t n, bool done) {
                              c->dispatch->on_stream_read(ec, n, done);
                            });
    return;
  }
  if (a.relay_len == a.relay.size()) {
    // One event larger than the buffer: grow, within reason.
    if (a.relay.size() >= svc_.max_sse_event_bytes) return stream_broke("upstream sent an event larger than the limit");
    a.relay.resize(std::min(a.relay.size() * 2, svc_.max_sse_event_bytes));
  }
  ctx_.set_timeout(stream_timeout());
  a.conn->async_read_body(a.relay.data() + a.relay_len, a.relay.size() - a.relay_len,
                          [c = ctx_.shared_from_this()](error_code ec, std::size_t n, bool done) {
                            c->dispatch->on_stream_read(ec, n, done);
                          });
}

void dispatch_call::on_stream_read(error_code ec, std::size_t n, bool done) {
  ctx_.clear_deadline();
  auto& a = *a_;
  auto& out = ctx_.out;
  if (n > 0 && out.first_byte == clock::time_point{}) out.first_byte = clock::now();
  if (a.translator) {
    // Provider frames in raw -> OpenAI events appended to relay.
    a.translated.clear();
    std::optional<providers::provider_error> perr;
    if (n > 0) perr = a.translator->feed(std::string_view(a.raw.data(), n), a.translated);
    if (!perr && done && !ec) perr = a.translator->finish(a.translated);
    if (a.translator->tokens().known()) out.usage = a.translator->tokens();
    if (a.relay.size() < a.relay_len + a.translated.size()) a.relay.resize(a.relay_len + a.translated.size());
    std::memcpy(a.relay.data() + a.relay_len, a.translated.data(), a.translated.size());
    n = a.translated.size();
    if (perr) {
      a.relay_len += n;
      a.scanned = a.scanner.scan(std::string_view(a.relay.data(), a.relay_len), a.scanned, [](std::string_view) {});
      a.scanned = a.relay_len;
      return stream_provider_error(*perr);
    }
  }
  a.relay_len += n;
  std::string_view data(a.relay.data(), a.relay_len);
  a.cuts.clear();
  bool injected = a.ex->injected_usage();
  std::size_t boundary = a.scanner.scan(data, a.scanned, [this, &a, &out, data, injected](std::string_view event) {
    bool inside = event.data() >= data.data() && event.data() <= data.data() + data.size();
    std::size_t offset = inside ? static_cast<std::size_t>(event.data() - data.data()) : 0;
    if (a.cut_open) {  // the dropped event ends where this one starts
      a.cuts.back().second = offset;
      a.cut_open = false;
    }
    ++out.stream_events;
    // Usage comes in the last chunk; the others say "usage":null or nothing.
    bool usage = providers::may_carry_usage(event);
    bool filter = a.ex->drop_event(event, out.stream_events);
    if (!usage && !filter) return;
    auto payload = http::sse_event_data(event, a.sse_scratch);
    if (payload.empty() || payload.front() != '{') return;
    if (usage) providers::read_usage(payload, out.usage);
    if (!inside || !providers::has_empty_choices(payload)) return;
    // The client did not ask for usage: the chunk we asked for is not passed on.
    bool drop_usage = usage && injected && !a.usage_cut;
    if (drop_usage || (filter && !usage)) {
      a.usage_cut |= drop_usage;
      a.cuts.emplace_back(offset, offset);
      a.cut_open = true;
    }
  });
  a.scanned = a.relay_len;
  if (a.cut_open) {
    a.cuts.back().second = boundary;
    a.cut_open = false;
  }
  if (!a.cuts.empty()) {
    // Remove the dropped events (all before `boundary`), compacting relay.
    std::size_t write = a.cuts.front().first, gone = 0;
    for (std::size_t i = 0; i < a.cuts.size(); ++i) {
      auto [b, e] = a.cuts[i];
      if (e <= b || e > a.relay_len) continue;
      gone += e - b;
      std::size_t next = i + 1 < a.cuts.size() ? a.cuts[i + 1].first : a.relay_len;
      std::memmove(a.relay.data() + write, a.relay.data() + e, next - e);
      write += next - e;
    }
    a.relay_len -= gone;
    a.scanned -= gone;
    a.scanner.shift(gone);
    boundary -= gone;
    a.cuts.clear();
  }
  if (ec) {
    if (a.timed_out)
      return stream_broke("upstream stream timed out after " + std::to_string(stream_timeout().count()) +
                          ".000 ms without data");
    return stream_broke("upstream stream broke: " + ec.message());
  }
  if (done) {
    a.t_done = t_upstream_done_ = clock::now();
    out.status = a.status;
    upstream_ok_ = true;
    ctx_.settle();
    // Forward the rest as is (a last event without its blank line included).
    if (a.relay_len == 0 && !a.head_pending && !ctx_.rewrites_events()) {
      ctx_.sink.end_stream();
      return ctx_.finish();
    }
    forward(
        a.relay_len,
        [c = ctx_.shared_from_this()](error_code ec) {
          if (ec) return c->dispatch->client_gone(true);
          c->sink.end_stream();
          c->finish();
        },
        true);
    return;
  }
  if (boundary == 0) return read_stream();  // no whole event yet
  forward(boundary, [c = ctx_.shared_from_this(), boundary](error_code ec) {
    auto& self = *c->dispatch;
    if (ec) return self.client_gone(false);
    auto& a = *self.a_;
    std::memmove(a.relay.data(), a.relay.data() + boundary, a.relay_len - boundary);
    a.relay_len -= boundary;
    a.scanned -= boundary;
    a.scanner.shift(boundary);
    self.read_stream();
  });
}

void dispatch_call::stream_provider_error(const providers::provider_error& e) {
  auto& a = *a_;
  a.t_done = t_upstream_done_ = clock::now();
  if (a.conn) a.conn->close();
  if (a.head_pending) {
    // Nothing reached the client: the provider's error is the attempt's outcome (a
    // throttling error is retried like a 429).
    a.head_pending = false;
    a.status = e.status;
    a.body = e.json();
    a.content_type = "application/json";
    error_.reset();
    log::warn("stream from " + a.dep->endpoint.authority + " for model group '" + ctx_.group->name +
              "' failed before its first event: " + e.message);
    return attempt_failed(providers::failure_kind::status, 0);
  }
  stream_broke(e.message);
}

void dispatch_call::client_gone(bool upstream_complete) {
  // The client closed its connection mid-stream: stop reading the provider (the
  // connection cannot be reused half-read) and close the client side.
  if (!upstream_complete && a_->conn) a_->conn->close();
  ctx_.sink.abort();
  ctx_.out.status = 499;
  upstream_ok_ = upstream_complete;
  ctx_.finish();
}

void dispatch_call::stream_broke(std::string message) {
  auto& a = *a_;
  a.t_done = t_upstream_done_ = clock::now();
  if (a.conn) a.conn->close();
  std::size_t boundary = a.scanner.event_start();  // whole events not yet forwarded
  if (a.head_pending && boundary == 0) {
    // Nothing for the client yet: retry, fall back, or answer with a plain error.
    a.head_pending = false;
    log::warn("stream from " + a.dep->endpoint.authority + " for model group '" + ctx_.group->name +
              "' failed before its first event: " + message);
    error_ = error{a.timed_out ? errc::upstream_timeout : errc::upstream_bad_response, message, ""};
    return attempt_failed(providers::failure_kind::transport, 0);
  }
  // End the stream with the whole events we have, then an error event, at an event
  // boundary (a partial event is dropped), then the last chunk.
  log::warn("stream from " + a.dep->endpoint.authority + " for model group '" + ctx_.group->name + "' broke: " + message);
  std::string tail(a.relay.data(), boundary);
  tail += "data: ";
  error e{errc::upstream_stream_error, message, ""};
  tail += to_openai_json(e);
  tail += "\n\n";
  a.relay.swap(tail);  // forward() sends from relay
  ctx_.out.status = 502;
  ctx_.out.failure = e;
  upstream_ok_ = false;
  ctx_.settle();
  forward(
      a.relay.size(),
      [c = ctx_.shared_from_this()](error_code ec) {
        if (ec)
          c->sink.abort();
        else
          c->sink.end_stream();
        c->finish();
      },
      true);
}

}  // namespace gw::pipeline
