#include "gw/gateway/proxy_call.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

#include <caf/send.hpp>

#include <atomic>
#include <charconv>
#include <cstring>
#include <random>

#include <boost/asio/ssl/error.hpp>
#include <openssl/evp.h>

#include "gw/core/ids.hpp"
#include "gw/core/json_writer.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "gw/providers/anthropic.hpp"
#include "gw/providers/bedrock.hpp"
#include "gw/providers/completion_bridge.hpp"
#include "gw/providers/sigv4.hpp"
#include "gw/credentials/aws.hpp"
#include "gw/credentials/entra.hpp"
#include "gw/http/client.hpp"
#include "gw/gateway/handler.hpp"
#include "gw/limits/rate_limiter.hpp"

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

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// OpenAI's reset format: "20ms", "1s", "6m0s", "1.5s".
void append_reset(std::string& out, std::int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) {
    out += std::to_string(ms);
    out += "ms";
    return;
  }
  std::int64_t minutes = ms / 60000;
  std::int64_t rest = ms % 60000;
  if (minutes > 0) {
    out += std::to_string(minutes);
    out += 'm';
  }
  out += std::to_string(rest / 1000);
  if (rest % 1000) {
    char f[8];
    std::snprintf(f, sizeof f, ".%03d", static_cast<int>(rest % 1000));
    std::string frac(f);
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  out += 's';
}

/// x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the most constrained scope.
void append_ratelimit_headers(std::string& out, const limits::decision& d) {
  const limits::scope_state* req = nullptr;
  const limits::scope_state* tok = nullptr;
  for (const auto& st : d.states) {
    if (st.limit_requests >= 0 && (!req || st.remaining_requests < req->remaining_requests)) req = &st;
    if (st.limit_tokens >= 0 && (!tok || st.remaining_tokens < tok->remaining_tokens)) tok = &st;
  }
  if (req) {
    out += "x-ratelimit-limit-requests: " + std::to_string(req->limit_requests) +
           "\r\nx-ratelimit-remaining-requests: " + std::to_string(std::max<std::int64_t>(0, req->remaining_requests)) +
           "\r\nx-ratelimit-reset-requests: ";
    append_reset(out, req->reset_requests_ms);
    out += "\r\n";
  }
  if (tok) {
    out += "x-ratelimit-limit-tokens: " + std::to_string(tok->limit_tokens) +
           "\r\nx-ratelimit-remaining-tokens: " + std::to_string(std::max<std::int64_t>(0, tok->remaining_tokens)) +
           "\r\nx-ratelimit-reset-tokens: ";
    append_reset(out, tok->reset_tokens_ms);
    out += "\r\n";
  }
}

/// retry-after (seconds or an HTTP date is not parsed: seconds only) or retry-after-ms.
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

bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

bool retryable_status(int status) { return status == 429 || status == 408 || status >= 500; }

/// The LiteLLM error class of an HTTP status from a provider.
config::error_class class_of_status(int status) {
  using config::error_class;
  switch (status) {
    case 400: return error_class::bad_request;
    case 401: return error_class::authentication;
    case 408: return error_class::timeout;
    case 429: return error_class::rate_limit;
    case 500: return error_class::internal_server;
    case 503: return error_class::service_unavailable;
    default: return error_class::none;
  }
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
      requested_group_(group),
      entry_(std::move(entry)),
      reservation_(reservation) {
  t_received_ = session_->received_at();
  wall_start_ = std::chrono::system_clock::now() -
                std::chrono::duration_cast<std::chrono::system_clock::duration>(clock::now() - t_received_);
  call_id_ = new_request_id();
  ctx_.metrics->in_flight_add(session_->thread().index(), 1);
  if (ctx_.tracing) trace_begin();
}

proxy_call::~proxy_call() {
  if (!finished_) {
    // Never finished (shutdown): give back what it holds.
    ctx_.metrics->in_flight_add(session_->thread().index(), -1);
    if (dep_) end_attempt(499, false, false);
    if (ctx_.limiter) {
      auto shard = session_->thread().index();
      if (client_scopes_) ctx_.limiter->release(shard, *client_scopes_, {}, client_via_redis_);
      for (auto& [sc, via] : fallback_scopes_) ctx_.limiter->release(shard, *sc, {}, via);
    }
  }
  if (!charged_) charge(499);  // still release the reservation
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
  c.cost = cost_ = compute_cost();
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
  client_scopes_ = entry_ ? entry_->scopes_for(group_->name) : nullptr;
  if (client_scopes_ && ctx_.limiter) {
    ctx_.limiter->acquire(session_->thread().index(), *client_scopes_,
                          [self = shared_from_this()](const limits::decision& d, bool via_redis) {
                            self->on_client_limits(d, via_redis);
                          });
    return;
  }
  client_scopes_ = nullptr;
  route();
}

void proxy_call::on_client_limits(const limits::decision& d, bool via_redis) {
  if (!d.admitted) {
    auto scopes = client_scopes_;
    client_scopes_ = nullptr;  // nothing was counted: nothing to release
    return refuse_limited(*scopes, d);
  }
  client_via_redis_ = via_redis;
  client_decision_ = d;
  route();
}

void proxy_call::refuse_limited(const std::vector<limits::scope>& scopes, const limits::decision& d) {
  error e{errc::rate_limited, limits::refusal_message(scopes, d, ctx_.limiter->window()), ""};
  std::string h = "retry-after: " + std::to_string(std::max<std::int64_t>(1, (d.retry_after_ms + 999) / 1000)) + "\r\n";
  append_ratelimit_headers(h, d);
  respond_error(e, h);
  finish(429, false);
}

void proxy_call::route() {
  phase_ = phase::routing;
  const auto& deps = group_->deployments;
  if (tried_.size() != deps.size()) tried_.assign(deps.size(), false);
  auto p = pick_deployment(*group_, &tried_, random01(), steady_ms());
  if (p.position == static_cast<std::size_t>(-1)) {
    bool any_usable = false;
    for (auto* d : deps) any_usable |= d->usable;
    std::int64_t retry_ms = 0;
    if (!any_usable) {
      error_ = error{errc::not_implemented, deps.empty() ? "model group has no deployments" : deps.front()->problem,
                     "model"};
    } else if (dep_limit_refused_) {
      error_ = error{errc::rate_limited, dep_limit_message_, ""};
      retry_ms = dep_limit_retry_ms_;
    } else if (p.cooling) {
      error_ = error{errc::rate_limited,
                     "Every deployment of model group '" + group_->name +
                         "' is cooling down after repeated failures; retry after " +
                         std::to_string((p.cooldown_left_ms + 999) / 1000) + " s.",
                     ""};
      retry_ms = p.cooldown_left_ms;
    } else {
      error_ = error{errc::upstream_bad_response, "No deployment of model group '" + group_->name + "' is left to try.", ""};
    }
    error_headers_.clear();
    if (retry_ms > 0) error_headers_ = "retry-after: " + std::to_string((retry_ms + 999) / 1000) + "\r\n";
    dep_ = nullptr;
    return attempt_failed(any_usable ? failure_kind::unavailable : failure_kind::status, 0);
  }
  dep_ = deps[p.position];
  probe_ = p.probe;
  tried_[p.position] = true;
  if (dep_->limited && ctx_.limiter) {
    ctx_.limiter->acquire(session_->thread().index(), dep_->limit_scopes,
                          [self = shared_from_this()](const limits::decision& d, bool via_redis) {
                            self->on_deployment_limits(d, via_redis);
                          });
    return;
  }
  send_to_deployment();
}

void proxy_call::on_deployment_limits(const limits::decision& d, bool via_redis) {
  if (!d.admitted) {
    // This deployment is at its own rpm/tpm/parallel limit: try another one.
    dep_limit_refused_ = true;
    dep_limit_message_ = limits::refusal_message(dep_->limit_scopes, d, ctx_.limiter->window());
    if (dep_limit_retry_ms_ == 0 || d.retry_after_ms < dep_limit_retry_ms_) dep_limit_retry_ms_ = d.retry_after_ms;
    if (probe_) {
      int probing = static_cast<int>(deployment_health::probing);
      dep_->health.compare_exchange_strong(probing, static_cast<int>(deployment_health::cooling));
      probe_ = false;
    }
    dep_ = nullptr;
    return route();
  }
  dep_acquired_ = true;
  dep_via_redis_ = via_redis;
  send_to_deployment();
}

void proxy_call::send_to_deployment() {
  dep_->in_flight.fetch_add(1, std::memory_order_relaxed);
  in_flight_counted_ = true;
  // Fresh state for this attempt.
  attempts_ = 0;
  timed_out_ = false;
  status_ = 0;
  body_.clear();
  usage_ = providers::usage{};
  model_json_.clear();
  error_.reset();
  error_headers_.clear();
  t_first_byte_ = t_upstream_done_ = clock::time_point{};
  relay_len_ = scanned_ = 0;
  scanner_ = http::sse_scanner{};
  data_events_ = 0;
  cuts_.clear();
  cut_open_ = usage_cut_ = false;
  translator_.reset();
  translated_ = false;
  titan_.reset();
  titan_answers_ = providers::titan_embeddings{};
  head_pending_ = false;
  attempt_open_ = true;
  ++attempts_total_;
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
  if (trace_) trace_model_ = dep_->wildcard_model ? upstream_model : dep_->cfg->upstream_model;
  auto format = dep_->target.format;
  if (format == providers::wire_format::bedrock || format == providers::wire_format::anthropic)
    return send_translated(dep_->wildcard_model ? upstream_model : dep_->cfg->upstream_model);
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
  t_attempt_start_ = clock::now();
  if (t_upstream_start_ == clock::time_point{}) t_upstream_start_ = t_attempt_start_;
  bool per_model = format == providers::wire_format::azure && dep_->target.azure_per_model;
  if (!per_model && !dep_->entra) {
    // The common case: everything static, no allocation beyond the head itself.
    finish_head(dep_->head_prefix[static_cast<int>(op_)], length, {});
    return begin_attempt();
  }
  // azure/*: the deployment in the path is the requested model.
  pending_prefix_ = per_model ? build_head_prefix(*dep_, providers::azure_path(dep_->target, op_, upstream_model))
                              : dep_->head_prefix[static_cast<int>(op_)];
  pending_length_ = length;
  authorize();
}

void proxy_call::refuse_request(providers::provider_error e) {
  status_ = e.status;
  body_ = e.json();
  content_type_ = "application/json";
  error_.reset();
  attempt_failed(failure_kind::status, 0);
}

namespace {

/// Loopback, private, link-local, unspecified or multicast: a URL naming one literally
/// (or "localhost") would let a client reach instance metadata or internal services.
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

}  // namespace

void proxy_call::fetch_images(std::vector<std::string> urls, const std::string& upstream_model) {
  constexpr std::size_t max_images = 20;             // Bedrock's limit per request
  constexpr std::size_t max_bytes = 3932160;         // 3.75 MB, Bedrock's limit per image
  auto bad = [&](std::string msg) {
    providers::provider_error e;
    e.status = 400;
    e.type = "invalid_request_error";
    e.code = "invalid_image_url";
    e.message = std::move(msg);
    refuse_request(std::move(e));
  };
  if (urls.size() > max_images) return bad("Bedrock takes at most 20 images per request.");
  for (const auto& u : urls) {
    http::endpoint ep;
    std::string err;
    if (!http::parse_url(u, ep, err)) return bad("Invalid image URL '" + u + "': " + err);
    if (!ctx_.image_fetch_allow_private && private_host(ep.host))
      return bad("The image URL '" + u + "' names a loopback, private or link-local address; the gateway does not "
                 "fetch those (gateway_settings.image_fetch_allow_private).");
  }
  images_.clear();
  images_error_.clear();
  images_pending_ = urls.size();
  auto attempt = attempts_total_;
  for (auto& u : urls) {
    http::fetch_request fr;
    fr.method = "GET";
    fr.url = u;
    fr.timeout = std::chrono::seconds(10);
    fr.max_body_bytes = max_bytes;
    if (!ctx_.image_fetch_allow_private) {
      fr.allow_address = [](const asio::ip::address& a) { return !private_address(a); };
      fr.refused_what = "loopback, private or link-local addresses, which the gateway does not fetch from "
                        "(gateway_settings.image_fetch_allow_private)";
    }
    http::fetch(session_->io(), std::move(fr),
                       [self = shared_from_this(), u, attempt, upstream_model](http::fetch_result r) {
                         auto& s = *self;
                         if (s.finished_ || attempt != s.attempts_total_) return;
                         std::string_view type = sniff_image(r.body);
                         if (!r.error.empty())
                           s.images_error_ = "could not fetch image URL '" + u + "': " + r.error;
                         else if (r.status / 100 != 2)
                           s.images_error_ = "image URL '" + u + "' answered HTTP " + std::to_string(r.status);
                         else if (type.empty())
                           s.images_error_ = "image URL '" + u + "' is not a png, jpeg, gif or webp image";
                         else {
                           std::string data = "data:";
                           data += type;
                           data += ";base64,";
                           std::size_t at = data.size();
                           data.resize(at + 4 * ((r.body.size() + 2) / 3) + 1);
                           int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(data.data() + at),
                                                   reinterpret_cast<const unsigned char*>(r.body.data()),
                                                   static_cast<int>(r.body.size()));
                           data.resize(at + static_cast<std::size_t>(std::max(0, n)));
                           s.images_.emplace_back(u, std::move(data));
                         }
                         if (--s.images_pending_ > 0) return;
                         if (!s.images_error_.empty()) {
                           providers::provider_error e;
                           e.status = 400;
                           e.type = "invalid_request_error";
                           e.code = "invalid_image_url";
                           e.message = "Bedrock needs images inline and the gateway " + s.images_error_;
                           return s.refuse_request(std::move(e));
                         }
                         s.send_translated(upstream_model);
                       });
  }
}

void proxy_call::authorize() {
  auto attempt = attempts_total_;
  auto resume = [self = shared_from_this(), attempt](auto&& next) {
    // Credentials not cached yet (the first requests after start): continue on this
    // request's io thread when they come.
    asio::post(self->session_->io(), [self, attempt, next = std::forward<decltype(next)>(next)]() mutable {
      if (self->finished_ || attempt != self->attempts_total_ || !self->dep_) return;
      next();
    });
  };
  if (dep_->entra) {
    if (auto tok = dep_->entra->current_token()) return send_authorized("authorization: Bearer " + tok->access_token + "\r\n");
    dep_->entra->get([resume, self = shared_from_this()](std::optional<std::string> tok, std::string err) {
      resume([self, tok = std::move(tok), err = std::move(err)] {
        if (!tok) return self->credentials_failed("no Entra ID token: " + err);
        self->send_authorized("authorization: Bearer " + *tok + "\r\n");
      });
    });
    return;
  }
  if (dep_->aws) {
    if (auto c = dep_->aws->current_ptr()) return send_signed(*c);
    dep_->aws->get([resume, self = shared_from_this()](std::optional<providers::aws_credentials> c, std::string err) {
      resume([self, c = std::move(c), err = std::move(err)] {
        if (!c) return self->credentials_failed("no AWS credentials: " + err);
        self->send_signed(*c);
      });
    });
    return;
  }
  send_authorized({});
}

void proxy_call::send_signed(const providers::aws_credentials& c) {
  // SigV4 over the bytes that will be sent: host, content-type and the body.
  providers::sigv4_input in;
  in.method = "POST";
  std::string wire = dep_->endpoint.base_path + pending_path_;
  auto q = wire.find('?');
  std::string_view wire_sv(wire);
  in.path = wire_sv.substr(0, q);
  in.query = q == std::string::npos ? std::string_view{} : wire_sv.substr(q + 1);
  in.headers = {{"host", dep_->endpoint.authority}, {"content-type", "application/json"}};
  in.body = upstream_body_;
  auto signed_headers = providers::sigv4_sign(in, c, dep_->target.aws_region, "bedrock", std::chrono::system_clock::now());
  std::string auth;
  for (auto& [k, v] : signed_headers) {
    auth += k;
    auth += ": ";
    auth += v;
    auth += "\r\n";
  }
  send_authorized(auth);
}

void proxy_call::send_authorized(std::string_view auth_headers) {
  finish_head(pending_prefix_, pending_length_, auth_headers);
  begin_attempt();
}

void proxy_call::credentials_failed(const std::string& why) {
  log::warn("deployment '" + dep_->cfg->id + "' of model group '" + group_->name + "': " + why);
  error_ = error{errc::upstream_connect_error,
                 "The gateway could not authenticate to the provider of model group '" + group_->name + "': " + why, ""};
  error_headers_.clear();
  attempt_failed(failure_kind::transport, 0);
}

void proxy_call::finish_head(const std::string& prefix, std::size_t length, std::string_view auth_headers) {
  head_.reserve(prefix.size() + auth_headers.size() + 96);
  head_.assign(prefix);
  head_ += auth_headers;
  if (trace_) trace_attempt_head();
  head_ += "content-length: ";
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, length);
  (void)ec;
  head_.append(num, end);
  head_ += "\r\n";
  if (req_.stream)
    head_ += dep_->target.format == providers::wire_format::bedrock ? "accept: application/vnd.amazon.eventstream\r\n"
                                                                      : "accept: text/event-stream\r\n";
  head_ += "\r\n";
}

void proxy_call::send_translated(const std::string& upstream_model) {
  translated_ = true;
  inject_usage_ = false;  // the translator reports usage; the client's choice decides the usage chunk
  const auto& t = dep_->target;
  tctx_ = providers::translate_context{};
  // Text completions go through chat (completion_bridge.hpp): the chat adapters see a chat call.
  bool completion = op_ == providers::operation::completion;
  tctx_.op = completion ? providers::operation::chat : op_;
  tctx_.upstream_model = t.format == providers::wire_format::bedrock && !dep_->wildcard_model ? t.bedrock_model
                                                                                              : upstream_model;
  // As for OpenAI-compatible providers, "model" names the model that answered.
  tctx_.response_model = tctx_.upstream_model;
  tctx_.response_id = (op_ == providers::operation::chat ? "chatcmpl-" : completion ? "cmpl-" : "emb-") + call_id_;
  tctx_.created = std::chrono::duration_cast<std::chrono::seconds>(wall_start_.time_since_epoch()).count();
  tctx_.stream = req_.stream;
  tctx_.include_usage = req_.include_usage;
  if (dep_->price && dep_->price->max_output_tokens > 0) tctx_.default_max_tokens = dep_->price->max_output_tokens;
  const auto& body = session_->req().body();
  providers::request_result rr;
  bool bedrock = t.format == providers::wire_format::bedrock;
  if (bedrock && op_ == providers::operation::chat && !images_ready_) {
    images_ready_ = true;
    if (ctx_.fetch_image_urls) {
      auto urls = providers::image_urls(body);
      if (!urls.empty()) return fetch_images(std::move(urls), upstream_model);
    }
  }
  tctx_.fetched_images = images_.empty() ? nullptr : &images_;
  if (op_ == providers::operation::chat) {
    rr = bedrock ? providers::to_converse(tctx_, body) : providers::to_anthropic(tctx_, body);
  } else if (completion) {
    auto chat = providers::completion_to_chat(body, bedrock ? "Bedrock" : "Anthropic");
    if (chat.body)
      rr = bedrock ? providers::to_converse(tctx_, *chat.body) : providers::to_anthropic(tctx_, *chat.body);
    else
      rr.error = std::move(chat.error);
  } else if (op_ == providers::operation::embedding && bedrock && providers::is_titan_embedding(tctx_.upstream_model)) {
    // Titan embeds one text per call: N inputs are N calls on this attempt, the first
    // sent here, the others from respond_buffered() as the answers come.
    titan_.emplace();
    if (auto e = providers::read_titan_inputs(body, *titan_))
      rr.error = std::move(e);
    else
      rr = providers::to_titan_embedding(tctx_, *titan_, 0);
  } else if (op_ == providers::operation::embedding && bedrock) {
    rr = providers::to_bedrock_embedding(tctx_, body);
  } else {
    providers::provider_error e;
    e.status = 400;
    e.type = "invalid_request_error";
    e.code = "unsupported_operation";
    e.message = std::string(bedrock ? "Bedrock" : "Anthropic") + " deployments do not serve " +
                std::string(providers::operation_path(op_)) + " (model group '" + group_->name + "')";
    rr.error = std::move(e);
  }
  t_attempt_start_ = t_call_start_ = clock::now();
  if (t_upstream_start_ == clock::time_point{}) t_upstream_start_ = t_attempt_start_;
  // The request cannot be put in the provider's terms: the client's to fix.
  if (!rr.request) return refuse_request(rr.error ? *rr.error : providers::provider_error{});
  upstream_body_ = std::move(rr.request->body);
  pending_path_ = std::move(rr.request->path);
  pending_prefix_ = build_head_prefix(*dep_, pending_path_, &rr.request->headers);
  pending_length_ = upstream_body_.size();
  if (bedrock && !t.aws.bearer_token.empty())
    return send_authorized("authorization: Bearer " + t.aws.bearer_token + "\r\n");
  authorize();
}

std::chrono::milliseconds proxy_call::timeout() const {
  if (req_.timeout_s > 0) return std::chrono::milliseconds(static_cast<std::int64_t>(req_.timeout_s * 1000.0));
  return dep_->timeout;
}

std::chrono::milliseconds proxy_call::stream_timeout() const {
  if (req_.stream_timeout_s > 0)
    return std::chrono::milliseconds(static_cast<std::int64_t>(req_.stream_timeout_s * 1000.0));
  if (req_.timeout_s > 0) return std::chrono::milliseconds(static_cast<std::int64_t>(req_.timeout_s * 1000.0));
  return dep_->stream_timeout;
}

// ------------------------------------------------------------ retries, fallbacks

void proxy_call::end_attempt(int status, bool upstream_ok, bool failure) {
  if (!dep_ || !attempt_open_) return;
  attempt_open_ = false;
  if (trace_) trace_attempt_end(status, upstream_ok);
  std::size_t shard = session_->thread().index();
  release_deployment_limits();
  if (in_flight_counted_) dep_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  in_flight_counted_ = false;
  auto now = clock::now();
  auto done = t_upstream_done_ != clock::time_point{} ? t_upstream_done_ : now;
  outcome o;
  o.status = status;
  o.upstream_ok = upstream_ok;
  o.failure = failure;
  o.error_class = failure ? static_cast<std::int8_t>(failure_class_) : static_cast<std::int8_t>(config::error_class::none);
  failure_class_ = config::error_class::none;
  o.probe = probe_;
  o.tokens = usage_.known() ? std::max<std::int64_t>(0, usage_.prompt_tokens) +
                                  std::max<std::int64_t>(0, usage_.completion_tokens)
                            : -1;
  o.upstream_seconds = seconds(done - t_attempt_start_);
  probe_ = false;
  if (!ctx_.batchers.empty())
    ctx_.batchers[shard]->add(*dep_, o);
  if (conn_) {
    if (upstream_ok && conn_->reusable())
      session_->thread().pool().release(std::move(conn_));
    else
      conn_->close();
    conn_.reset();
  }
}

void proxy_call::attempt_failed(failure_kind k, std::int64_t retry_after_ms) {
  clear_deadline();
  int status = error_ ? http_status(error_->code) : status_;
  const auto& router = ctx_.cfg->router;
  auto cls = k == failure_kind::content_policy   ? config::error_class::content_policy
             : k == failure_kind::context_window ? config::error_class::bad_request
             : k == failure_kind::status         ? class_of_status(status)
             : k == failure_kind::transport && error_ && error_->code == errc::upstream_timeout
                 ? config::error_class::timeout
                 : config::error_class::none;
  if (dep_) {
    bool counts = k == failure_kind::transport || (k == failure_kind::status && retryable_status(status)) ||
                  router.allowed_fails_policy.get(cls).has_value();
    failure_class_ = cls;
    // A failed attempt is seen on its deployment's metrics; the request's final
    // outcome is observed in finish().
    double attempt_s = seconds(clock::now() - t_attempt_start_);
    dep_->probe->observe(session_->thread().index(), status, attempt_s, attempt_s, 0, -1);
    end_attempt(status, false, counts);
  }
  bool retryable = k == failure_kind::transport || (k == failure_kind::status && retryable_status(status));
  // A deployment's num_retries (they are the same across a group unless set per deployment).
  int allowed = 0;
  for (auto* d : group_->deployments) allowed = std::max(allowed, d->num_retries);
  if (req_.num_retries >= 0) allowed = req_.num_retries;
  // retry_policy (the group's own first) decides for the classes it names, as LiteLLM's
  // does: that many retries, whatever the class (a 400 too).
  if (cls != config::error_class::none) {
    const config::error_class_counts* policy = &router.retry_policy;
    for (const auto& [name, p] : router.model_group_retry_policy)
      if (name == group_->name) policy = &p;
    if (auto n = policy->get(cls)) {
      allowed = *n;
      retryable = k != failure_kind::unavailable;
    }
  }
  if (retryable && group_retries_ < allowed) {
    ++group_retries_;
    ++retries_;
    if (ctx_.routing) ctx_.routing->retries.fetch_add(1, std::memory_order_relaxed);
    // Exponential backoff with jitter: base * 2^(n-1), capped, times [0.5, 1).
    double base = static_cast<double>(ctx_.retry_backoff_base.count());
    double backoff = std::min(base * static_cast<double>(1u << std::min(group_retries_ - 1, 16)),
                              static_cast<double>(ctx_.retry_backoff_max.count()));
    auto delay = static_cast<std::int64_t>(backoff * (0.5 + 0.5 * random01()));
    delay = std::max<std::int64_t>(delay, ctx_.retry_after_min.count());
    // Another healthy deployment not tried yet: go there. Otherwise the same ones again,
    // waiting what the provider asked (retry-after) if it is not too long.
    bool other = false;
    for (std::size_t i = 0; i < group_->deployments.size(); ++i) {
      auto* d = group_->deployments[i];
      if (d->usable && !(i < tried_.size() && tried_[i]) &&
          d->health.load(std::memory_order_relaxed) == static_cast<int>(deployment_health::healthy))
        other = true;
    }
    if (!other) {
      if (retry_after_ms > ctx_.retry_after_max.count()) {
        log::warn("model group '" + group_->name + "': the provider asked to retry after " +
                  std::to_string(retry_after_ms / 1000) + " s, longer than retry_after_max; not retrying");
      } else {
        delay = std::max(delay, retry_after_ms);
        std::fill(tried_.begin(), tried_.end(), false);
        return retry_after_delay(std::chrono::milliseconds(delay));
      }
    } else {
      return retry_after_delay(std::chrono::milliseconds(delay));
    }
  }
  if (next_fallback(k)) return;
  give_up();
}

void proxy_call::retry_after_delay(std::chrono::milliseconds delay) {
  phase_ = phase::routing;
  dep_ = nullptr;
  dep_limit_refused_ = false;
  if (delay.count() <= 0) return route();
  if (!timer_) timer_ = std::make_unique<asio::steady_timer>(session_->io());
  timer_->expires_after(delay);
  timer_->async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->finished_) return;
    self->route();
  });
}

bool proxy_call::next_fallback(failure_kind k) {
  if (!fallback_list_chosen_) {
    fallback_list_chosen_ = true;
    const auto& r = ctx_.cfg->router;
    auto find = [&](const std::vector<std::pair<std::string, std::vector<std::string>>>& l)
        -> const std::vector<std::string>* {
      for (const auto& [from, to] : l)
        if (from == requested_group_->name) return &to;
      return nullptr;
    };
    if (k == failure_kind::context_window) fallback_list_ = find(r.context_window_fallbacks);
    else if (k == failure_kind::content_policy) fallback_list_ = find(r.content_policy_fallbacks);
    if (!fallback_list_ && (k != failure_kind::status || retryable_status(error_ ? http_status(error_->code) : status_) ||
                            status_ == 401 || status_ == 403 || status_ == 404 || k == failure_kind::context_window ||
                            k == failure_kind::content_policy)) {
      fallback_list_ = find(r.fallbacks);
      if (!fallback_list_ && !r.default_fallbacks.empty()) fallback_list_ = &r.default_fallbacks;
    }
  }
  while (fallback_list_ && fallback_index_ < fallback_list_->size() && fallbacks_ < ctx_.max_fallbacks) {
    const auto& name = (*fallback_list_)[fallback_index_++];
    const model_group* g = ctx_.registry->find(name);
    if (!g || g == group_) continue;
    // The fallback is a new request as far as access, budget and limits go (LiteLLM
    // skips these checks: its PR #41379).
    if (entry_ && !entry_->allows(g->name)) {
      log::info("fallback to model group '" + g->name + "' skipped: the key may not use it");
      continue;
    }
    ++fallbacks_;
    if (ctx_.routing) ctx_.routing->fallbacks.fetch_add(1, std::memory_order_relaxed);
    if (entry_ && ctx_.accounts && entry_->budgeted_for(g->name)) {
      auto amount = worst_case_cost(*g, req_, op_, ctx_.accounts->config().default_max_output_tokens);
      ctx_.accounts->reserve(entry_, g->name, amount,
                             [self = shared_from_this(), g, k](accounts::reserve_result res) {
                               auto* io = &self->session_->io();
                               asio::post(*io, [self, g, k, res = std::move(res)]() mutable {
                                 if (self->finished_) return;
                                 if (res.refusal) {
                                   self->error_ = *res.refusal;
                                   self->error_headers_.clear();
                                   if (!self->next_fallback(k)) self->give_up();
                                   return;
                                 }
                                 if (self->reservation_ != 0) {
                                   accounts::charge back;
                                   back.reservation = self->reservation_;
                                   self->ctx_.accounts->io(self->session_->thread().index()).add_charge(std::move(back));
                                 }
                                 self->reservation_ = res.reservation;
                                 self->switch_group(g);
                               });
                             });
      return true;
    }
    switch_group(g);
    return true;
  }
  return false;
}

void proxy_call::switch_group(const model_group* g) {
  auto go = [this, g] {
    group_ = g;
    tried_.clear();
    group_retries_ = 0;
    dep_limit_refused_ = false;
    dep_ = nullptr;
    route();
  };
  const auto* extra = entry_ ? entry_->model_scope_for(g->name) : nullptr;
  if (!extra || !ctx_.limiter) return go();
  ctx_.limiter->acquire(session_->thread().index(), *extra,
                        [self = shared_from_this(), extra, g, go](const limits::decision& d, bool via_redis) {
                          if (!d.admitted) {
                            self->error_ = error{errc::rate_limited,
                                                 limits::refusal_message(*extra, d, self->ctx_.limiter->window()), ""};
                            self->error_headers_ = "retry-after: " +
                                                   std::to_string(std::max<std::int64_t>(1, (d.retry_after_ms + 999) / 1000)) +
                                                   "\r\n";
                            self->group_ = g;
                            if (!self->next_fallback(failure_kind::unavailable)) self->give_up();
                            return;
                          }
                          self->fallback_scopes_.emplace_back(extra, via_redis);
                          go();
                        });
}

void proxy_call::give_up() {
  if (fallbacks_ > 0 && ctx_.routing) ctx_.routing->fallback_failures.fetch_add(1, std::memory_order_relaxed);
  if (error_) {
    auto e = *error_;
    log::warn("model group '" + group_->name + "': " + e.message);
    respond_error(e, error_headers_);
    return finish(http_status(e.code), false);
  }
  respond_buffered_error();
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
  // Titan's calls, one per input, have a deadline each (as LiteLLM's calls do).
  if (req_.stream)
    set_timeout(stream_timeout());
  else
    set_deadline((titan_ ? t_call_start_ : t_attempt_start_) + timeout());
  if (translated_) {
    std::array<asio::const_buffer, 2> tb{asio::buffer(head_), asio::buffer(upstream_body_)};
    conn_->async_write(tb, [self = shared_from_this()](error_code ec) { self->on_written(ec); });
    return;
  }
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
  bool stream_type = starts_with_ci(content_type_, "text/event-stream") ||
                     (translated_ && starts_with_ci(content_type_, "application/vnd.amazon.eventstream"));
  if (req_.stream && status_ / 100 == 2 && stream_type) {
    if (translated_) {
      translator_ = dep_->target.format == providers::wire_format::bedrock
                        ? providers::converse_stream_translator(tctx_)
                        : providers::anthropic_stream_translator(tctx_);
      if (op_ == providers::operation::completion)
        translator_ = providers::completion_stream_translator(std::move(translator_));
      content_type_ = "text/event-stream";
    }
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
  client_headers_ += "\r\nx-litellm-attempted-retries: ";
  client_headers_ += std::to_string(retries_);
  client_headers_ += "\r\nx-litellm-attempted-fallbacks: ";
  client_headers_ += std::to_string(fallbacks_);
  client_headers_ += "\r\n";
  if (client_scopes_) append_ratelimit_headers(client_headers_, client_decision_);
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

void proxy_call::translate_buffered() {
  std::string_view error_type;
  auto h = conn_ ? conn_->response().get()["x-amzn-errortype"] : boost::beast::string_view{};
  error_type = std::string_view(h.data(), h.size());
  providers::translated_response tr;
  if (dep_->target.format == providers::wire_format::bedrock)
    tr = op_ == providers::operation::embedding ? providers::from_bedrock_embedding(tctx_, status_, body_, error_type)
                                                : providers::from_converse(tctx_, status_, body_, error_type);
  else
    tr = providers::from_anthropic(tctx_, status_, body_);
  if (op_ == providers::operation::completion) tr = providers::completion_from_chat(std::move(tr));
  status_ = tr.status;
  body_ = std::move(tr.body);
  content_type_ = "application/json";
  if (tr.tokens.known()) usage_ = tr.tokens;
}

bool proxy_call::titan_answer_done() {
  if (auto e = titan_answers_.add(body_)) {
    status_ = e->status;
    body_ = e->json();
    content_type_ = "application/json";
    return true;
  }
  if (titan_answers_.size() < titan_->texts.size()) {
    send_titan_next();
    return false;
  }
  auto tr = titan_answers_.finish(tctx_);
  status_ = tr.status;
  body_ = std::move(tr.body);
  content_type_ = "application/json";
  usage_ = tr.tokens;
  return true;
}

void proxy_call::send_titan_next() {
  // The answer was read whole: its connection can carry the next call.
  if (conn_) {
    if (conn_->reusable())
      session_->thread().pool().release(std::move(conn_));
    else
      conn_->close();
    conn_.reset();
  }
  auto rr = providers::to_titan_embedding(tctx_, *titan_, titan_answers_.size());
  if (!rr.request) return refuse_request(rr.error ? *rr.error : providers::provider_error{});
  upstream_body_ = std::move(rr.request->body);
  pending_length_ = upstream_body_.size();  // same path and head prefix as the first call
  attempts_ = 0;
  status_ = 0;
  body_.clear();
  t_call_start_ = clock::now();
  const auto& t = dep_->target;
  if (!t.aws.bearer_token.empty()) return send_authorized("authorization: Bearer " + t.aws.bearer_token + "\r\n");
  authorize();  // signs this call's body
}

void proxy_call::respond_buffered() {
  // A failing Titan call fails the attempt with its error (translate_buffered()); a
  // retry starts again from input 0 (send_translated()), as a new attempt does.
  if (titan_ && status_ / 100 == 2) {
    if (!titan_answer_done()) return;
  } else if (translated_) {
    translate_buffered();
  }
  bool ok = status_ / 100 == 2;
  if (!ok) {
    // Nothing reached the client yet: a retry or a fallback may still answer.
    failure_kind k = failure_kind::status;
    if (status_ == 400 || status_ == 413 || status_ == 422) {
      std::string_view b(body_);
      if (contains_ci(b, "context_length_exceeded") || contains_ci(b, "maximum context length") ||
          contains_ci(b, "context window") || contains_ci(b, "prompt is too long") ||
          contains_ci(b, "too many tokens"))
        k = failure_kind::context_window;
      else if (contains_ci(b, "content_policy_violation") || contains_ci(b, "content_filter") ||
               contains_ci(b, "ResponsibleAIPolicyViolation") || contains_ci(b, "content management policy"))
        k = failure_kind::content_policy;
    }
    error_.reset();
    return attempt_failed(k, retry_after_ms_of(conn_->response().get()));
  }
  phase_ = phase::writing_client;
  if (!translated_) providers::read_usage(body_, usage_);
  std::string headers = timing_headers();
  if (ok && dep_->price) {
    headers += "x-litellm-response-cost: ";
    headers += format_cost(compute_cost());
    headers += "\r\n";
  }
  if (trace_) trace_capture(body_);
  settle(status_);
  if (ingress_) {
    body_ = providers::openai_response_to_anthropic(body_, *ingress_);
    content_type_ = "application/json";
  }
  session_->respond(static_cast<unsigned>(status_), content_type_.empty() ? "application/json" : content_type_,
                    std::move(body_), headers);
  finish(status_, true);
}

void proxy_call::respond_buffered_error() {
  phase_ = phase::writing_client;
  if (trace_) trace_capture(body_);
  settle(status_);
  std::string headers = timing_headers();
  if (ingress_) {
    std::string openai = body_;
    if (!providers::is_openai_error(body_)) {
      std::string snippet = body_.substr(0, 512);
      openai = openai_error_json("upstream returned HTTP " + std::to_string(status_) + (snippet.empty() ? "" : ": " + snippet),
                                 "api_error", "", std::to_string(status_));
    }
    session_->respond(static_cast<unsigned>(status_), "application/json",
                      providers::openai_error_to_anthropic(status_, openai), headers);
  } else if (providers::is_openai_error(body_)) {
    session_->respond(static_cast<unsigned>(status_), "application/json",
                      providers::normalize_error_body(body_, status_), headers);
  } else {
    // A non-OpenAI error body (an HTML page from a proxy, say): keep the status,
    // wrap the text so OpenAI clients can read it.
    std::string snippet = body_.substr(0, 512);
    std::string msg = "upstream returned HTTP " + std::to_string(status_) + (snippet.empty() ? "" : ": " + snippet);
    auto type = status_ == 429 ? "rate_limit_error" : status_ / 100 == 4 ? "invalid_request_error" : "api_error";
    session_->respond(static_cast<unsigned>(status_), "application/json",
                      openai_error_json(msg, type, "", std::to_string(status_)), headers);
  }
  finish(status_, false);
}

// ------------------------------------------------------------ streamed response

void proxy_call::start_stream() {
  relay_.resize(ctx_.relay_buffer_bytes);
  head_pending_ = true;
  // When the first events came with the head (a fast upstream), send our head with
  // them in one write; otherwise send the head now so the client is not kept waiting.
  if (conn_->buffered() > 0) {
    bool done = false;
    if (translated_) raw_.resize(std::max<std::size_t>(raw_.size(), 16 * 1024));
    std::size_t n = translated_ ? conn_->take_buffered_body(raw_.data(), raw_.size(), done)
                                : conn_->take_buffered_body(relay_.data(), relay_.size(), done);
    return on_stream_read({}, n, done);
  }
  // The head goes out with the first events: until then a failure can still be
  // retried or fall back, the client having seen nothing.
  read_stream();
}

template <class Then>
void proxy_call::forward(std::size_t n, Then&& then, bool last) {
  phase_ = phase::writing_client;
  auto data = asio::buffer(relay_.data(), n);
  if (trace_) trace_capture(std::string_view(relay_.data(), n));
  if (ingress_) {
    // OpenAI events -> Anthropic's message_start / content_block_* / message_delta / message_stop.
    if (!writer_) writer_ = std::make_unique<providers::anthropic_stream_writer>(*ingress_);
    dialect_out_.clear();
    writer_->feed(std::string_view(relay_.data(), n), dialect_out_);
    if (last) writer_->finish(dialect_out_);
    data = asio::buffer(dialect_out_);
  }
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
  if (translated_) {
    // Provider bytes go to raw_; on_stream_read puts their translation into relay_.
    if (raw_.size() < 16 * 1024) raw_.resize(16 * 1024);
    set_timeout(stream_timeout());
    conn_->async_read_body(raw_.data(), raw_.size(), [self = shared_from_this()](error_code ec, std::size_t n, bool done) {
      self->on_stream_read(ec, n, done);
    });
    return;
  }
  if (relay_len_ == relay_.size()) {
    // One event larger than the buffer: grow, within reason.
    if (relay_.size() >= ctx_.max_sse_event_bytes) return stream_broke("upstream sent an event larger than the limit");
    relay_.resize(std::min(relay_.size() * 2, ctx_.max_sse_event_bytes));
  }
  set_timeout(stream_timeout());
  conn_->async_read_body(relay_.data() + relay_len_, relay_.size() - relay_len_,
                         [self = shared_from_this()](error_code ec, std::size_t n, bool done) {
                           self->on_stream_read(ec, n, done);
                         });
}

void proxy_call::on_stream_read(error_code ec, std::size_t n, bool done) {
  clear_deadline();
  if (n > 0 && t_first_byte_ == clock::time_point{}) t_first_byte_ = clock::now();
  if (translated_) {
    // Provider frames in raw_ -> OpenAI events appended to relay_.
    translated_out_.clear();
    std::optional<providers::provider_error> perr;
    if (n > 0) perr = translator_->feed(std::string_view(raw_.data(), n), translated_out_);
    if (!perr && done && !ec) perr = translator_->finish(translated_out_);
    if (translator_->tokens().known()) usage_ = translator_->tokens();
    if (relay_.size() < relay_len_ + translated_out_.size()) relay_.resize(relay_len_ + translated_out_.size());
    std::memcpy(relay_.data() + relay_len_, translated_out_.data(), translated_out_.size());
    n = translated_out_.size();
    if (perr) {
      relay_len_ += n;
      scanned_ = scanner_.scan(std::string_view(relay_.data(), relay_len_), scanned_, [](std::string_view) {});
      scanned_ = relay_len_;
      return stream_provider_error(*perr);
    }
  }
  relay_len_ += n;
  std::string_view data(relay_.data(), relay_len_);
  bool azure = dep_->target.format == providers::wire_format::azure;
  cuts_.clear();
  std::size_t boundary = scanner_.scan(data, scanned_, [this, data, azure](std::string_view event) {
    bool inside = event.data() >= data.data() && event.data() <= data.data() + data.size();
    std::size_t offset = inside ? static_cast<std::size_t>(event.data() - data.data()) : 0;
    if (cut_open_) {  // the dropped event ends where this one starts
      cuts_.back().second = offset;
      cut_open_ = false;
    }
    ++data_events_;
    // Usage comes in the last chunk; the others say "usage":null or nothing.
    bool usage = providers::may_carry_usage(event);
    // Azure's first chunk has no choices, only prompt_filter_results: clients that
    // read choices[0] break on it, so it is not passed on.
    bool filter = azure && data_events_ <= 2 && event.find("prompt_filter_results") != std::string_view::npos;
    if (!usage && !filter) return;
    auto payload = http::sse_event_data(event, sse_scratch_);
    if (payload.empty() || payload.front() != '{') return;
    if (usage) providers::read_usage(payload, usage_);
    if (!inside || !providers::has_empty_choices(payload)) return;
    // The client did not ask for usage: the chunk we asked for is not passed on.
    bool drop_usage = usage && inject_usage_ && !usage_cut_;
    if (drop_usage || (filter && !usage)) {
      usage_cut_ |= drop_usage;
      cuts_.emplace_back(offset, offset);
      cut_open_ = true;
    }
  });
  scanned_ = relay_len_;
  if (cut_open_) {
    cuts_.back().second = boundary;
    cut_open_ = false;
  }
  if (!cuts_.empty()) {
    // Remove the dropped events (all before `boundary`), compacting relay_.
    std::size_t write = cuts_.front().first, gone = 0;
    for (std::size_t i = 0; i < cuts_.size(); ++i) {
      auto [b, e] = cuts_[i];
      if (e <= b || e > relay_len_) continue;
      gone += e - b;
      std::size_t next = i + 1 < cuts_.size() ? cuts_[i + 1].first : relay_len_;
      std::memmove(relay_.data() + write, relay_.data() + e, next - e);
      write += next - e;
    }
    relay_len_ -= gone;
    scanned_ -= gone;
    scanner_.shift(gone);
    boundary -= gone;
    cuts_.clear();
  }
  if (ec) {
    if (timed_out_) return stream_broke("upstream stream timed out after " + ms_string(stream_timeout()) + " ms without data");
    return stream_broke("upstream stream broke: " + ec.message());
  }
  if (done) {
    t_upstream_done_ = clock::now();
    settle(status_);
    // Forward the rest as is (a last event without its blank line included).
    if (relay_len_ == 0 && !head_pending_ && !ingress_) {
      session_->end_stream();
      return finish(status_, true);
    }
    forward(
        relay_len_,
        [self = shared_from_this()](error_code ec) {
          if (ec) return self->client_gone(true);
          self->session_->end_stream();
          self->finish(self->status_, true);
        },
        true);
    return;
  }
  if (boundary == 0) return read_stream();  // no whole event yet
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

void proxy_call::stream_provider_error(const providers::provider_error& e) {
  t_upstream_done_ = clock::now();
  conn_->close();
  if (head_pending_) {
    // Nothing reached the client: the provider's error is the attempt's outcome
    // (a throttling error is retried like a 429).
    head_pending_ = false;
    status_ = e.status;
    body_ = e.json();
    content_type_ = "application/json";
    error_.reset();
    log::warn("stream from " + dep_->endpoint.authority + " for model group '" + group_->name +
              "' failed before its first event: " + e.message);
    return attempt_failed(failure_kind::status, 0);
  }
  stream_broke(e.message);
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
    // Nothing for the client yet: retry, fall back, or answer with a plain error.
    head_pending_ = false;
    log::warn("stream from " + dep_->endpoint.authority + " for model group '" + group_->name +
              "' failed before its first event: " + message);
    error_ = error{timed_out_ ? errc::upstream_timeout : errc::upstream_bad_response, message, ""};
    return attempt_failed(failure_kind::transport, 0);
  }
  // End the stream with the whole events we have, then an error event, at an event
  // boundary (a partial event is dropped), then the last chunk.
  log::warn("stream from " + dep_->endpoint.authority + " for model group '" + group_->name + "' broke: " + message);
  event_out_.assign(relay_.data(), boundary);
  event_out_ += "data: ";
  event_out_ += to_openai_json(error{errc::upstream_stream_error, message, ""});
  event_out_ += "\n\n";
  relay_.swap(event_out_);  // forward() sends from relay_
  settle(502);
  forward(
      relay_.size(),
      [self = shared_from_this()](error_code ec) {
        if (ec)
          self->session_->abort();
        else
          self->session_->end_stream();
        self->finish(502, false);
      },
      true);
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
      auto limit = req_.stream ? stream_timeout() : timeout();
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
  error_ = std::move(e);
  attempt_failed(failure_kind::transport, 0);
}

void proxy_call::respond_error(const error& e, std::string_view extra) {
  std::string headers = "x-litellm-call-id: " + call_id_ + "\r\nx-litellm-model-group: " + group_->name +
                        "\r\nx-litellm-attempted-retries: " + std::to_string(retries_) +
                        "\r\nx-litellm-attempted-fallbacks: " + std::to_string(fallbacks_) + "\r\n";
  headers += extra;
  int status = http_status(e.code);
  settle(status);
  if (ingress_)
    return session_->respond_error(static_cast<unsigned>(status),
                                   providers::openai_error_to_anthropic(status, to_openai_json(e)), headers);
  session_->respond_error(static_cast<unsigned>(status), to_openai_json(e), headers);
}

void proxy_call::on_deadline() {
  timed_out_ = true;
  if (conn_) conn_->close();  // the pending upstream operation fails with operation_aborted
}

void proxy_call::release_deployment_limits() {
  if (!dep_acquired_) return;
  dep_acquired_ = false;
  if (!ctx_.limiter) return;
  // The deployment's own limits (the config's rpm/tpm) count every token.
  limits::token_usage used;
  if (usage_.known()) {
    used.input = std::max<std::int64_t>(0, usage_.prompt_tokens);
    used.output = std::max<std::int64_t>(0, usage_.completion_tokens);
  }
  ctx_.limiter->release(session_->thread().index(), dep_->limit_scopes, used, dep_via_redis_);
}

void proxy_call::settle(int status) {
  if (settled_) return;
  settled_ = true;
  charge(status);
  if (!ctx_.limiter) return;
  std::size_t shard = session_->thread().index();
  release_deployment_limits();
  limits::token_usage u;
  if (usage_.known()) {
    if (ctx_.token_rate_limit_type != 2) u.input = std::max<std::int64_t>(0, usage_.prompt_tokens);
    if (ctx_.token_rate_limit_type != 1) u.output = std::max<std::int64_t>(0, usage_.completion_tokens);
  }
  if (client_scopes_) ctx_.limiter->release(shard, *client_scopes_, u, client_via_redis_);
  client_scopes_ = nullptr;
  for (auto& [sc, via] : fallback_scopes_) ctx_.limiter->release(shard, *sc, u, via);
  fallback_scopes_.clear();
}

void proxy_call::finish(int status, bool upstream_ok) {
  if (finished_) return;
  finished_ = true;
  phase_ = phase::done;
  clear_deadline();
  if (timer_) timer_->cancel();
  settle(status);
  auto now = clock::now();
  std::size_t shard = session_->thread().index();
  ctx_.metrics->in_flight_add(shard, -1);
  if (!attempt_open_) {
    // Refused before any attempt, or every attempt failed (each was observed on its
    // deployment when it failed).
    if (attempts_total_ == 0) ctx_.metrics->count_unrouted(shard, status);
    if (trace_) trace_emit(status);
    return;
  }
  if (t_upstream_done_ == clock::time_point{}) t_upstream_done_ = now;
  double total = seconds(now - t_received_);
  double upstream = seconds(t_upstream_done_ - t_attempt_start_);
  double overhead = total - seconds(t_upstream_done_ - t_upstream_start_);
  double ttft = (req_.stream && t_first_byte_ != clock::time_point{}) ? seconds(t_first_byte_ - t_attempt_start_) : -1;
  dep_->probe->observe(shard, status, total, upstream, overhead, ttft);
  if (usage_.known()) dep_->probe->add_tokens(shard, usage_.prompt_tokens, usage_.completion_tokens);
  bool failure = status != 499 && !upstream_ok && retryable_status(status);
  end_attempt(status, upstream_ok, failure);
  if (trace_) trace_emit(status);
}

// ------------------------------------------------------------ tracing

namespace {

std::string_view provider_name(const deployment_runtime& d) {
  switch (d.target.format) {
    case providers::wire_format::azure:
      return "azure.ai.openai";
    case providers::wire_format::bedrock:
      return "aws.bedrock";
    case providers::wire_format::anthropic:
      return "anthropic";
    default:
      break;
  }
  // OpenAI-compatible: the LiteLLM provider prefix names it (openai, groq, mistral, ...).
  std::string_view m = d.cfg->model;
  auto slash = m.find('/');
  return slash == std::string_view::npos ? std::string_view("openai") : m.substr(0, slash);
}

}  // namespace

void proxy_call::trace_begin() {
  trace_ = std::make_unique<tracing::trace_record>();
  auto& t = *trace_;
  trace_bodies_ = ctx_.tracing->settings().begin(t, session_->req());
  t.request_id = call_id_;
  t.node_id = ctx_.node_id;
  t.start = wall_start_;
  t.stream = req_.stream;
  t.anthropic_ingress = false;
}

void proxy_call::trace_attempt_head() {
  // A later Titan call of an attempt belongs to the attempt's span (one span per attempt).
  bool same_attempt = titan_ && titan_answers_.size() > 0 && !trace_->attempts.empty();
  if (!same_attempt) {
    auto& a = trace_->attempts.emplace_back();
    a.span = tracing::new_span_id();
    a.start = std::chrono::system_clock::now();
    a.model_group = group_->name;
    a.deployment_id = dep_->cfg->id;
    a.provider = provider_name(*dep_);
    a.upstream_model = trace_model_;
    a.server_address = dep_->endpoint.host;
    a.server_port = dep_->endpoint.port;
  }
  head_ += "traceparent: ";
  tracing::append_traceparent(head_, trace_->trace, trace_->attempts.back().span, trace_->flags);
  head_ += "\r\n";
  if (!trace_->tracestate.empty() && trace_->tracestate.find_first_of("\r\n") == std::string::npos) {
    head_ += "tracestate: ";
    head_ += trace_->tracestate;
    head_ += "\r\n";
  }
}

void proxy_call::trace_attempt_end(int status, bool upstream_ok) {
  if (trace_->attempts.empty()) return;
  auto& a = trace_->attempts.back();
  if (a.end != std::chrono::system_clock::time_point{}) return;
  a.end = std::chrono::system_clock::now();
  a.http_status = status;
  if (t_first_byte_ != clock::time_point{} && req_.stream) a.first_chunk = wall(t_first_byte_);
  if (!upstream_ok) {
    if (error_) a.error_type = std::string(error_code_string(error_->code));
    else if (status == 499) a.error_type = "client_closed";
    else if (status >= 400) a.error_type = std::to_string(status);
    else a.error_type = "error";
    if (error_ && status == 0) a.http_status = 0;
  }
}

void proxy_call::trace_capture(std::string_view bytes) {
  const auto& s = ctx_.tracing->settings();
  if (!s.capture_response || !trace_bodies_) return;
  auto& out = trace_->response_body;
  std::size_t room = s.capture_bytes > out.size() ? s.capture_bytes - out.size() : 0;
  out.append(bytes.data(), std::min(room, bytes.size()));
  if (bytes.size() <= room) return;
  trace_->response_truncated = true;
  if (!req_.stream) return;
  // Past the limit a stream keeps its last events: the finish reasons come at the end.
  constexpr std::size_t k_tail = 4096;
  auto& tail = trace_->response_tail;
  tail.append(bytes.substr(room));
  if (tail.size() > 2 * k_tail) {
    auto cut = tail.find("\n\n", tail.size() - k_tail);
    tail.erase(0, cut == std::string::npos ? tail.size() - k_tail : cut + 2);
  }
}

void proxy_call::trace_emit(int status) {
  auto t = std::move(trace_);
  t->end = std::chrono::system_clock::now();
  if (t_first_byte_ != clock::time_point{} && req_.stream) t->first_token = wall(t_first_byte_);
  t->status = status;
  t->operation = std::string(providers::operation_name(op_));
  t->anthropic_ingress = ingress_ != nullptr;
  t->model_group = requested_group_->name;
  if (dep_) {
    t->deployment_id = dep_->cfg->id;
    t->provider = provider_name(*dep_);
    t->response_model = trace_model_;
  }
  if (entry_) {
    t->key_hash = entry_->token;
    t->key_alias = entry_->key_alias;
    t->user_id = entry_->user_id;
    t->team_id = entry_->team_id;
  }
  if (usage_.known()) {
    t->input_tokens = std::max<std::int64_t>(0, usage_.prompt_tokens);
    t->output_tokens = std::max<std::int64_t>(0, usage_.completion_tokens);
    t->cache_read_tokens = usage_.cached_tokens;
    if (usage_.cache_creation_tokens > 0) t->cache_creation_tokens = usage_.cache_creation_tokens;
  }
  t->cost_pico = charged_ ? cost_ : dep_ ? compute_cost() : 0;
  if (status / 100 != 2) {
    if (error_) {
      t->error_type = std::string(error_code_string(error_->code));
      t->error_message = error_->message;
    } else if (status == 499) {
      t->error_type = "client_closed";
      t->error_message = "the client closed the connection";
    } else {
      t->error_type = std::to_string(status);
      t->error_message = "upstream returned HTTP " + std::to_string(status);
    }
  }
  ctx_.tracing->add(session_->thread().index(), std::move(*t));
}

}  // namespace gw::gateway
