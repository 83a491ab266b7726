// One upstream attempt: the provider's request from the deployment's adapter, images
// fetched first where the provider takes them inline only, credentials (cached: at once;
// else awaited), a pooled connection, the request written (a gather of the client's
// body around the model name for OpenAI-compatible providers), the response head read.

#include "dispatch_call.hpp"

#include <charconv>

#include <boost/asio/ssl/error.hpp>
#include <openssl/evp.h>

#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "gw/credentials/aws.hpp"
#include "gw/credentials/entra.hpp"
#include "gw/http/client.hpp"

namespace gw::pipeline {
namespace {

namespace asio = boost::asio;
using http::error_code;

std::string ms_string(std::chrono::milliseconds d) {
  auto us = d.count() * 1000;
  std::string s = std::to_string(us / 1000);
  int frac = static_cast<int>(us % 1000);
  s += '.';
  s += static_cast<char>('0' + frac / 100);
  s += static_cast<char>('0' + frac / 10 % 10);
  s += static_cast<char>('0' + frac % 10);
  return s;
}

/// Loopback, unspecified, multicast, private (RFC 1918, unique-local), link-local
/// (instance metadata) or carrier-grade NAT: not for the gateway to fetch from.
bool private_address(const asio::ip::address& a) {
  if (a.is_loopback() || a.is_unspecified() || a.is_multicast()) return true;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
           (b[0] == 169 && b[1] == 254) || b[0] == 0 || (b[0] == 100 && (b[1] & 0xc0) == 64);
  }
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return private_address(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
  auto b = v6.to_bytes();
  return v6.is_link_local() || v6.is_site_local() || (b[0] & 0xfe) == 0xfc;
}

/// A URL host that is a private address or a localhost name. Other names are checked
/// after resolution (fetch_request::allow_address), on the addresses dialled.
bool private_host(const std::string& host) {
  std::string h = to_lower(host);
  if (h == "localhost" || (h.size() > 10 && h.substr(h.size() - 10) == ".localhost")) return true;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(h, ec);
  return !ec && private_address(a);
}

/// The image's type from its first bytes (what servers say is often wrong).
std::string_view sniff_image(std::string_view d) {
  if (d.size() >= 8 && d.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (d.size() >= 3 && d.substr(0, 3) == "\xff\xd8\xff") return "image/jpeg";
  if (d.size() >= 6 && (d.substr(0, 6) == "GIF87a" || d.substr(0, 6) == "GIF89a")) return "image/gif";
  if (d.size() >= 12 && d.substr(0, 4) == "RIFF" && d.substr(8, 4) == "WEBP") return "image/webp";
  return {};
}

providers::provider_error image_error(std::string msg) {
  providers::provider_error e;
  e.status = 400;
  e.type = "invalid_request_error";
  e.code = "invalid_image_url";
  e.message = std::move(msg);
  return e;
}

}  // namespace

std::chrono::milliseconds dispatch_call::timeout() const {
  // The request's own timeout may shorten the deployment's, never lengthen it.
  auto own = a_->dep->timeout;
  if (ctx_.controls.timeout_s > 0)
    own = std::min(own, std::chrono::milliseconds(static_cast<std::int64_t>(ctx_.controls.timeout_s * 1000.0)));
  return own;
}

std::chrono::milliseconds dispatch_call::stream_timeout() const {
  auto own = a_->dep->stream_timeout;
  double s = ctx_.controls.stream_timeout_s > 0 ? ctx_.controls.stream_timeout_s : ctx_.controls.timeout_s;
  if (s > 0) own = std::min(own, std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0)));
  return own;
}

void dispatch_call::begin_attempt() {
  auto& a = *a_;
  a.dep->in_flight.fetch_add(1, std::memory_order_relaxed);
  a.in_flight = true;
  ++ctx_.out.attempts;
  ctx_.out.deployment = a.dep;
  ctx_.out.usage = providers::usage{};
  ctx_.out.stream_events = 0;
  ctx_.out.first_byte = {};
  if (ctx_.trace) ctx_.trace->response_facts.reset();  // an earlier attempt's answer is not this one's
  error_.reset();
  error_headers_.clear();
  t_upstream_done_ = {};
  a.t_start = a.t_call_start = clock::now();
  if (t_upstream_start_ == clock::time_point{}) t_upstream_start_ = a.t_start;
  const auto& view = fallback_body_.empty() ? ctx_.view : fallback_view_;
  std::string upstream = routing::upstream_model(*a.dep, view.model);
  providers::call_input in;
  in.op = ctx_.op;
  in.body = fallback_body_.empty() ? std::string_view(ctx_.req().body()) : std::string_view(fallback_body_);
  in.req = &view;
  in.model_group = ctx_.group->name;
  in.call_id = ctx_.call_id;
  in.created = std::chrono::duration_cast<std::chrono::seconds>(ctx_.wall_start.time_since_epoch()).count();
  if (a.dep->price && a.dep->price->max_output_tokens > 0) in.default_max_tokens = a.dep->price->max_output_tokens;
  a.ex = a.dep->adapter->begin(in, upstream);
  ctx_.out.upstream_model = a.ex->upstream_model();
  if (mocked_attempt()) return;
  if (svc_.fetch_image_urls && a.dep->target.format == providers::wire_format::bedrock) {
    auto urls = a.ex->image_urls();
    if (!urls.empty()) return fetch_images(std::move(urls));
  }
  build_call();
}

void dispatch_call::refuse_request(providers::provider_error e) {
  // The request cannot be sent as the client wrote it: the client's to fix (a 400,
  // not retried unless a retry_policy says so).
  auto& a = *a_;
  a.status = e.status;
  a.body = e.json();
  a.content_type = "application/json";
  error_.reset();
  attempt_failed(providers::failure_kind::status, 0);
}

void dispatch_call::fetch_images(std::vector<std::string> urls) {
  constexpr std::size_t max_images = 20;      // Bedrock's limit per request
  constexpr std::size_t max_bytes = 3932160;  // 3.75 MB, Bedrock's limit per image
  if (urls.size() > max_images) return refuse_request(image_error("Bedrock takes at most 20 images per request."));
  for (const auto& u : urls) {
    http::endpoint ep;
    std::string err;
    if (!http::parse_url(u, ep, err)) return refuse_request(image_error("Invalid image URL '" + u + "': " + err));
    if (!svc_.image_fetch_allow_private && private_host(ep.host))
      return refuse_request(image_error("The image URL '" + u +
                                        "' names a loopback, private or link-local address; the gateway does not "
                                        "fetch those (gateway_settings.image_fetch_allow_private)."));
  }
  auto& a = *a_;
  a.images_pending = urls.size();
  for (auto& u : urls) {
    http::fetch_request fr;
    fr.method = "GET";
    fr.url = u;
    fr.timeout = std::chrono::seconds(10);
    fr.max_body_bytes = max_bytes;
    if (!svc_.image_fetch_allow_private) {
      fr.allow_address = [](const asio::ip::address& ad) { return !private_address(ad); };
      fr.refused_what = "loopback, private or link-local addresses, which the gateway does not fetch from "
                        "(gateway_settings.image_fetch_allow_private)";
    }
    http::fetch(ctx_.thread.io(), std::move(fr), [c = ctx_.shared_from_this(), u, id = a.id](http::fetch_result r) {
      auto& self = *c->dispatch;
      if (c->finished() || !self.a_ || self.a_->id != id) return;
      auto& a = *self.a_;
      std::string_view type = sniff_image(r.body);
      if (!r.error.empty())
        a.images_error = "could not fetch image URL '" + u + "': " + r.error;
      else if (r.status / 100 != 2)
        a.images_error = "image URL '" + u + "' answered HTTP " + std::to_string(r.status);
      else if (type.empty())
        a.images_error = "image URL '" + u + "' is not a png, jpeg, gif or webp image";
      else {
        std::string data = "data:";
        data += type;
        data += ";base64,";
        std::size_t at = data.size();
        data.resize(at + 4 * ((r.body.size() + 2) / 3) + 1);
        int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(data.data() + at),
                                reinterpret_cast<const unsigned char*>(r.body.data()), static_cast<int>(r.body.size()));
        data.resize(at + static_cast<std::size_t>(std::max(0, n)));
        a.images.emplace_back(u, std::move(data));
      }
      if (--a.images_pending > 0) return;
      if (!a.images_error.empty())
        return self.refuse_request(image_error("Bedrock needs images inline and the gateway " + a.images_error));
      a.ex->set_images(std::move(a.images));
      self.build_call();
    });
  }
}

void dispatch_call::build_call() {
  auto& a = *a_;
  if (auto e = a.ex->next_request(a.upstream)) return refuse_request(std::move(*e));
  authorize();
}

void dispatch_call::authorize() {
  auto& a = *a_;
  auto resume = [c = ctx_.shared_from_this(), id = a.id](auto&& next) {
    // Credentials not cached yet (the first requests after start): continue on this
    // request's io thread when they come.
    asio::post(c->thread.io(), [c, id, next = std::forward<decltype(next)>(next)]() mutable {
      auto& self = *c->dispatch;
      if (c->finished() || !self.a_ || self.a_->id != id) return;
      next();
    });
  };
  auto now = std::chrono::system_clock::now();
  switch (a.dep->adapter->credentials()) {
    case providers::credential_kind::none:
      return send_authorized(a.ex->authorize({}, now));
    case providers::credential_kind::bearer:
      if (!a.dep->entra) return credentials_failed("no Entra ID credentials configured");
      if (auto tok = a.dep->entra->current_token()) {
        providers::credentials_view v;
        v.bearer = tok->access_token;
        return send_authorized(a.ex->authorize(v, now));
      }
      a.dep->entra->get([resume, c = ctx_.shared_from_this()](std::optional<std::string> tok, std::string err) {
        resume([c, tok = std::move(tok), err = std::move(err)] {
          auto& self = *c->dispatch;
          if (!tok) return self.credentials_failed("no Entra ID token: " + err);
          providers::credentials_view v;
          v.bearer = *tok;
          self.send_authorized(self.a_->ex->authorize(v, std::chrono::system_clock::now()));
        });
      });
      return;
    case providers::credential_kind::aws:
      if (!a.dep->aws) return credentials_failed("no AWS credentials configured");
      if (auto cr = a.dep->aws->current_ptr()) {
        providers::credentials_view v;
        v.aws = cr.get();
        return send_authorized(a.ex->authorize(v, now));
      }
      a.dep->aws->get([resume, c = ctx_.shared_from_this()](std::optional<providers::aws_credentials> cr, std::string err) {
        resume([c, cr = std::move(cr), err = std::move(err)] {
          auto& self = *c->dispatch;
          if (!cr) return self.credentials_failed("no AWS credentials: " + err);
          providers::credentials_view v;
          v.aws = &*cr;
          self.send_authorized(self.a_->ex->authorize(v, std::chrono::system_clock::now()));
        });
      });
      return;
  }
}

void dispatch_call::credentials_failed(const std::string& why) {
  log::warn("deployment '" + a_->dep->cfg->id + "' of model group '" + ctx_.group->name + "': " + why);
  error_ = error{errc::upstream_connect_error,
                 "The gateway could not authenticate to the provider of model group '" + ctx_.group->name + "': " + why,
                 ""};
  error_headers_.clear();
  attempt_failed(providers::failure_kind::transport, 0);
}

void dispatch_call::send_authorized(std::string_view auth_headers) {
  auto& a = *a_;
  const auto& up = a.upstream;
  a.head.reserve(up.head_prefix.size() + auth_headers.size() + 160);
  a.head.assign(up.head_prefix);
  a.head += auth_headers;
  if (ctx_.trace) trace_attempt_head();
  a.head += "content-length: ";
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, up.length());
  (void)ec;
  a.head.append(num, end);
  a.head += "\r\n";
  if (ctx_.view.stream)
    a.head += up.event_stream ? "accept: application/vnd.amazon.eventstream\r\n" : "accept: text/event-stream\r\n";
  a.head += "\r\n";
  a.sends = 0;
  connect();
}

void dispatch_call::connect() {
  auto& a = *a_;
  ++a.sends;
  a.conn = ctx_.thread.pool().acquire(a.dep->endpoint);
  if (a.conn->connected()) return write_request();
  a.at = attempt::phase::connecting;
  ctx_.set_timeout(svc_.connect_timeout);
  a.conn->async_connect([c = ctx_.shared_from_this()](error_code ec) { c->dispatch->on_connected(ec); });
}

void dispatch_call::on_connected(error_code ec) {
  if (ec) return fail_before_response(ec);
  write_request();
}

void dispatch_call::write_request() {
  auto& a = *a_;
  a.at = attempt::phase::sending;
  // Non-streamed: one deadline for the whole call (each call of a multi-call attempt
  // has its own). Streamed: an inactivity deadline.
  if (ctx_.view.stream)
    ctx_.set_timeout(stream_timeout());
  else
    ctx_.set_deadline(a.t_call_start + timeout());
  const auto& b = a.upstream.body;
  std::array<asio::const_buffer, 6> bufs{asio::buffer(a.head),
                                         asio::buffer(b[0].data(), b[0].size()),
                                         asio::buffer(b[1].data(), b[1].size()),
                                         asio::buffer(b[2].data(), b[2].size()),
                                         asio::buffer(b[3].data(), b[3].size()),
                                         asio::buffer(b[4].data(), b[4].size())};
  a.conn->async_write(bufs, [c = ctx_.shared_from_this()](error_code ec) { c->dispatch->on_written(ec); });
}

void dispatch_call::on_written(error_code ec) {
  if (ec) {
    if (retry_on_fresh_connection(ec)) return;
    return fail_before_response(ec);
  }
  a_->at = attempt::phase::waiting_head;
  a_->conn->async_read_head(svc_.upstream_header_limit,
                            [c = ctx_.shared_from_this()](error_code ec) { c->dispatch->on_head(ec); });
}

bool dispatch_call::retry_on_fresh_connection(error_code ec) {
  // A pooled connection the upstream closed while idle fails at once, before any
  // response byte; the request did not reach the provider, so send it again.
  auto& a = *a_;
  if (a.timed_out || !a.conn || a.conn->uses() == 0 || a.sends >= 4) return false;
  if (ec != asio::error::eof && ec != asio::error::connection_reset && ec != asio::error::broken_pipe &&
      ec != http::bhttp::error::end_of_stream && ec != http::bhttp::error::partial_message)
    return false;
  log::debug("upstream connection to " + a.dep->endpoint.authority + " was stale (" + ec.message() + "); retrying");
  a.conn->close();
  a.conn.reset();
  connect();
  return true;
}

void dispatch_call::on_head(error_code ec) {
  if (ec) {
    if (retry_on_fresh_connection(ec)) return;
    return fail_before_response(ec);
  }
  auto& a = *a_;
  const auto& res = a.conn->response().get();
  a.status = static_cast<int>(res.result_int());
  auto ct = res[http::bhttp::field::content_type];
  a.content_type.assign(ct.data(), ct.size());
  build_client_headers();
  bool stream_type = starts_with_ci(a.content_type, "text/event-stream") ||
                     (a.upstream.event_stream && starts_with_ci(a.content_type, "application/vnd.amazon.eventstream"));
  if (ctx_.view.stream && a.status / 100 == 2 && stream_type) {
    a.translator = a.ex->make_stream_translator();
    if (a.translator) a.content_type = "text/event-stream";
    return start_stream();
  }
  read_buffered();
}

void dispatch_call::fail_before_response(error_code ec) {
  auto& a = *a_;
  a.t_done = t_upstream_done_ = clock::now();
  ctx_.clear_deadline();
  const auto& authority = a.dep->endpoint.authority;
  error e;
  if (a.timed_out) {
    if (a.at == attempt::phase::connecting) {
      e = error{errc::upstream_timeout,
                "connecting to " + authority + " timed out after " + ms_string(svc_.connect_timeout) + " ms", ""};
    } else {
      auto limit = ctx_.view.stream ? stream_timeout() : timeout();
      e = error{errc::upstream_timeout, "upstream " + authority + " did not answer within " + ms_string(limit) + " ms",
                ""};
    }
  } else if (a.at == attempt::phase::connecting) {
    if (ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category())
      e = error{errc::upstream_connect_error, "TLS handshake with " + authority + " failed: " + ec.message(), ""};
    else
      e = error{errc::upstream_connect_error, "could not connect to " + authority + ": " + ec.message(), ""};
  } else if (a.at == attempt::phase::reading_body) {
    e = error{errc::upstream_bad_response, "upstream " + authority + " broke off its response: " + ec.message(), ""};
  } else {
    e = error{errc::upstream_bad_response,
              "upstream " + authority + " closed the connection without a valid response: " + ec.message(), ""};
  }
  if (a.conn) a.conn->close();
  log::warn("model group '" + ctx_.group->name + "': " + e.message);
  error_ = std::move(e);
  attempt_failed(providers::failure_kind::transport, 0);
}

}  // namespace gw::pipeline
