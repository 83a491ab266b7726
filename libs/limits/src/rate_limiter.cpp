#include "gw/limits/rate_limiter.hpp"

#include <boost/asio/post.hpp>

#include <cmath>

namespace gw::limits {

namespace {
window_settings window_of(const config::gateway_config& cfg) {
  window_settings w;
  w.window_ms = std::max<std::int64_t>(1, std::llround(cfg.gateway.rate_limit_window * 1000.0));
  w.buckets = std::max(1, cfg.gateway.rate_limit_buckets);
  return w;
}
}  // namespace

rate_limiter::rate_limiter(const config::gateway_config& cfg, const std::vector<boost::asio::io_context*>& ios,
                           std::string node_id)
    : window_(window_of(cfg)), configured_share_(cfg.gateway.rate_limit_local_share), local_(window_) {
  const auto& r = cfg.router.redis;
  if (!r.configured()) return;
  for (std::size_t i = 0; i < ios.size(); ++i) {
    redis_settings s;
    s.host = r.host;
    s.port = r.port;
    s.username = r.username;
    s.password = r.password;
    s.db = r.db;
    s.tls = r.tls;
    s.tls_verify = r.tls_verify;
    s.tls_ca_file = r.tls_ca_file;
    s.timeout = std::chrono::milliseconds(std::max<std::int64_t>(1, std::llround(cfg.gateway.redis_timeout * 1000.0)));
    s.node_id = node_id;
    s.thread = i;
    s.window = window_;
    s.precheck = cfg.gateway.rate_limit_precheck;
    redis_.push_back(std::make_unique<redis_limiter>(*ios[i], std::move(s)));
  }
}

rate_limiter::~rate_limiter() = default;

void rate_limiter::start_on(std::size_t i) {
  if (i < redis_.size()) redis_[i]->start();
}

void rate_limiter::stop(std::size_t i) {
  if (i < redis_.size()) redis_[i]->stop();
}

double rate_limiter::local_share() const {
  if (redis_.empty()) return 1.0;
  if (configured_share_ > 0) return configured_share_;
  return 1.0 / static_cast<double>(std::max<std::size_t>(1, live_nodes()));
}

void rate_limiter::acquire(std::size_t i, const std::vector<scope>& scopes, done_fn done) {
  auto local = [this, &scopes, &done](bool fallback) {
    if (fallback) fallback_decisions.fetch_add(1, std::memory_order_relaxed);
    auto d = local_.acquire(scopes, local_share());
    if (!d.admitted) refused[static_cast<int>(d.refused_kind)].fetch_add(1, std::memory_order_relaxed);
    done(d, false);
  };
  if (redis_.empty()) return local(false);
  auto& r = *redis_[i];
  if (auto d = r.precheck(scopes)) {
    refused[static_cast<int>(d->refused_kind)].fetch_add(1, std::memory_order_relaxed);
    return done(*d, true);
  }
  if (!r.up()) return local(true);
  // The scopes belong to an auth entry or a deployment that outlives the request (the
  // caller holds them), so the callback may refer to them.
  r.acquire(scopes, [this, &scopes, done = std::move(done)](std::optional<decision> d) mutable {
    if (!d) {
      fallback_decisions.fetch_add(1, std::memory_order_relaxed);
      auto ld = local_.acquire(scopes, local_share());
      if (!ld.admitted) refused[static_cast<int>(ld.refused_kind)].fetch_add(1, std::memory_order_relaxed);
      return done(ld, false);
    }
    if (!d->admitted) refused[static_cast<int>(d->refused_kind)].fetch_add(1, std::memory_order_relaxed);
    done(*d, true);
  });
}

void rate_limiter::release(std::size_t i, const std::vector<scope>& scopes, const token_usage& usage,
                           bool via_redis) {
  if (!via_redis) return local_.release(scopes, usage);
  if (i < redis_.size() && redis_[i]->release(scopes, usage)) return;
  // Admitted by Redis, which is away now: keep the tokens in the local view at least.
  local_.add_tokens_at(scopes, usage, local_limiter::now_ms());
}

bool rate_limiter::redis_up() const {
  if (redis_.empty()) return false;
  for (auto& r : redis_)
    if (!r->up()) return false;
  return true;
}

std::size_t rate_limiter::live_nodes() const {
  std::size_t n = 1;
  for (auto& r : redis_) n = std::max(n, r->status().live_nodes);
  return n;
}

std::string rate_limiter::metrics_text() const {
  std::string o;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& labels, double v) {
    if (!labels.empty() && o.find(std::string("# TYPE ") + name + " ") != std::string::npos) {
      // further sample of a metric already introduced
    } else {
      o += "# HELP ";
      o += name;
      o += ' ';
      o += help;
      o += "\n# TYPE ";
      o += name;
      o += ' ';
      o += type;
      o += '\n';
    }
    o += name;
    o += labels;
    o += ' ';
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    o += buf;
    o += '\n';
  };
  const char* kinds[3] = {"requests", "tokens", "parallel"};
  for (int k = 0; k < 3; ++k)
    metric("llm_gateway_rate_limited_total", "counter", "requests refused by a rate limit, by what was exceeded",
           std::string("{limit=\"") + kinds[k] + "\"}", static_cast<double>(refused[k].load()));
  metric("llm_gateway_rate_limit_local_decisions_total", "counter",
         "limit decisions made on this node because Redis was away or slow", "",
         static_cast<double>(fallback_decisions.load()));
  if (!redis_.empty()) {
    std::uint64_t commands = 0, failures = 0, timeouts = 0, reconnects = 0, prechecked = 0;
    for (auto& r : redis_) {
      auto s = r->status();
      commands += s.commands;
      failures += s.failures;
      timeouts += s.timeouts;
      reconnects += s.reconnects;
      prechecked += s.prechecked;
    }
    metric("llm_gateway_redis_up", "gauge", "1 when every io thread's Redis connection answers", "", redis_up() ? 1 : 0);
    metric("llm_gateway_redis_live_nodes", "gauge", "gateway nodes seen in Redis in the last 10 s", "",
           static_cast<double>(live_nodes()));
    metric("llm_gateway_redis_commands_total", "counter", "limit commands sent to Redis", "", static_cast<double>(commands));
    metric("llm_gateway_redis_failures_total", "counter", "Redis commands that failed", "", static_cast<double>(failures));
    metric("llm_gateway_redis_timeouts_total", "counter", "Redis commands not answered within redis_timeout", "",
           static_cast<double>(timeouts));
    metric("llm_gateway_redis_reconnects_total", "counter", "Redis reconnections", "", static_cast<double>(reconnects));
    metric("llm_gateway_rate_limit_prechecked_total", "counter",
           "requests refused by the local pre-check without a Redis round trip", "", static_cast<double>(prechecked));
  }
  return o;
}

}  // namespace gw::limits
