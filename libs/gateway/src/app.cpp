#include "gw/gateway/app.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/all.hpp>

#include <sys/resource.h>

#include <functional>
#include <future>
#include <thread>

#include "gw/accounts/accounts.hpp"
#include "gw/core/cpu.hpp"
#include "gw/core/log.hpp"
#include "gw/keys/model.hpp"
#include "gw/pricing/prices.hpp"
#include "gw/gateway/handler.hpp"
#include "gw/http/client.hpp"
#include "gw/limits/rate_limiter.hpp"
#include "gw/pipeline/services.hpp"
#include "gw/routing/deployment_actor.hpp"
#include "gw/routing/registry.hpp"
#include "gw/trace_pipeline/pipeline.hpp"
#include "gw/credentials/aws.hpp"
#include "gw/credentials/entra.hpp"
#include "gw/http/io_threads.hpp"
#include "gw/http/server.hpp"
#include "gw/http/upstream.hpp"
#include "gw/telemetry/metrics.hpp"

namespace gw::gateway {
namespace {

namespace asio = boost::asio;

/// max_connections within the open-file limit: the soft limit is raised to the hard one,
/// and each client connection may need an upstream connection too, with some
/// descriptors kept for listeners, the database, Redis, files and the spare one the
/// acceptor keeps. Over it, new clients would hang in the backlog (EMFILE).
std::size_t connections_within_fd_limit(std::size_t wanted) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return wanted;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur == RLIM_INFINITY) return wanted;
  constexpr rlim_t reserved = 128;
  std::size_t fit = rl.rlim_cur > 2 * reserved ? static_cast<std::size_t>((rl.rlim_cur - reserved) / 2) : 64;
  if (wanted <= fit) return wanted;
  log::warn("max_connections " + std::to_string(wanted) + " lowered to " + std::to_string(fit) +
            ": the open-file limit is " + std::to_string(rl.rlim_cur) +
            " (a client connection and its upstream connection take one each); raise it (ulimit -n, "
            "LimitNOFILE=) to allow more");
  return fit;
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
}

std::size_t choose_io_threads(const app_options& o, const config::gateway_config& cfg) {
  if (o.io_threads > 0) return static_cast<std::size_t>(o.io_threads);
  if (cfg.gateway.io_threads > 0) return static_cast<std::size_t>(cfg.gateway.io_threads);
  return usable_cpus();  // the container's CPU quota, not the node's cores
}

std::size_t choose_actor_threads(const app_options& o, const config::gateway_config& cfg, std::size_t io) {
  if (o.actor_threads > 0) return static_cast<std::size_t>(o.actor_threads);
  if (cfg.gateway.actor_threads > 0) return static_cast<std::size_t>(cfg.gateway.actor_threads);
  // Actors only decide (a few microseconds per request); the io threads do the work.
  return std::max<std::size_t>(1, io / 4);
}

caf::actor_system_config& make_caf_config(caf::actor_system_config& c, std::size_t threads) {
  c.set("scheduler.max-threads", threads);
  // "sharing" wakes fast from foreign threads and idles at ~0 CPU (cpp-stack.md).
  c.set("scheduler.policy", caf::atom("sharing"));
  return c;
}

/// Each deployment's price: the built-in table (or price file) by model_info.base_model
/// or litellm_params.model, overridden by model_info's *_cost_per_token. A group's
/// worst price is the highest of its deployments'.
void assign_prices(routing::model_registry& reg, const pricing::price_table& table, std::vector<std::string>& warnings) {
  for (auto& d : reg.deployments()) {
    const auto& info = d->cfg->model_info;
    const pricing::model_price* base = nullptr;
    if (auto it = info.find("base_model"); it != info.end()) base = table.find(it->second);
    if (!base) base = table.find(d->cfg->model);
    bool ok = true;
    std::string err;
    d->price = pricing::with_overrides(base, info, ok, err);
    if (!ok) throw std::runtime_error("model '" + d->cfg->model_name + "': model_info: " + err);
    if (!d->price)
      warnings.push_back("model '" + d->cfg->model_name + "' (" + d->cfg->model +
                         "): no price known; its spend counts as 0 (set model_info.input_cost_per_token and "
                         "output_cost_per_token, or gateway_settings.price_file)");
  }
  for (auto& g : reg.groups()) {
    auto& w = g->worst_price;
    for (auto* d : g->deployments) {
      if (!d->price) continue;
      const auto& p = *d->price;
      w.input_per_token = std::max(w.input_per_token, p.input_per_token);
      w.output_per_token = std::max(w.output_per_token, p.output_per_token);
      w.max_output_tokens = std::max(w.max_output_tokens, p.max_output_tokens);
    }
  }
}

}  // namespace

struct app::impl {
  const config::gateway_config& cfg;
  app_options opts;
  std::size_t io_count, actor_count;
  telemetry::metrics metrics;
  // Order matters for destruction: actors (which may hold tickets referring to io
  // objects) go before the io threads.
  http::io_threads threads;
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  std::unique_ptr<routing::model_registry> registry;
  pricing::price_table prices;
  std::unique_ptr<accounts::service> accounts;
  pipeline::services ctx;
  std::vector<std::unique_ptr<routing::outcome_batcher>> batchers;
  std::unique_ptr<limits::rate_limiter> limiter;
  std::unique_ptr<tracing::trace_pipeline> tracing;  // after the actor system is gone: see shutdown()
  pipeline::routing_counters routing;
  std::unique_ptr<gateway_handler> handler;
  std::unique_ptr<http::server> server;
  bool stopped = false;
  bool started = false;  ///< io threads running (not with --check-config)

  impl(const config::gateway_config& c, app_options o, std::vector<std::string>& warnings)
      : cfg(c),
        opts(std::move(o)),
        io_count(choose_io_threads(opts, cfg)),
        actor_count(choose_actor_threads(opts, cfg, io_count)),
        metrics(io_count),
        threads(io_count) {
    {
      // Budget periods: process-wide, set before the actor threads run.
      std::string err;
      if (!keys::set_reset_calendar(cfg.gateway.budget_reset_calendar, cfg.litellm.timezone, err))
        throw std::runtime_error("litellm_settings.timezone: " + err);
    }
    system = std::make_unique<caf::actor_system>(make_caf_config(caf_cfg, actor_count));
    registry = std::make_unique<routing::model_registry>(cfg, metrics, warnings);
    if (!cfg.gateway.price_file.empty()) {
      std::string err;
      if (!prices.load_file(cfg.gateway.price_file, err))
        throw std::runtime_error("gateway_settings.price_file: " + err);
    }
    assign_prices(*registry, prices, warnings);
    // Cloud credentials: fetched on an io thread, cached, refreshed before they expire.
    for (auto& d : registry->deployments()) {
      if (!d->usable) continue;
      auto& io = threads[d->index % threads.size()].io();
      const auto& t = d->target;
      if (t.format == providers::wire_format::bedrock && t.aws.bearer_token.empty()) {
        auto c = credentials::aws_source_config::from_params(d->cfg->params);
        c.region = t.aws_region;
        d->aws = credentials::aws_credentials_provider::create(std::move(c), io);
      } else if (t.format == providers::wire_format::azure && t.entra) {
        credentials::entra_config c = credentials::entra_config::from_params(d->cfg->params);
        c.tenant_id = t.entra->tenant_id;
        c.client_id = t.entra->client_id;
        c.client_secret = t.entra->client_secret;
        c.authority_host = t.entra->authority;
        c.scope = t.entra->scope;
        d->entra = credentials::entra_token_provider::create(std::move(c), io);
      }
    }
    routing::cooldown_policy cp;
    cp.allowed_fails = cfg.router.allowed_fails;
    cp.allowed_fails_policy = cfg.router.allowed_fails_policy;
    cp.cooldown_seconds = cfg.router.cooldown_time;
    cp.disabled = cfg.router.disable_cooldowns;
    for (auto& g : registry->groups())
      for (auto* d : g->deployments) d->actor = routing::spawn_deployment(*system, d, cp, g->deployments.size());
    ctx.cfg = &cfg;
    ctx.registry = registry.get();
    ctx.metrics = &metrics;
    ctx.master_key = cfg.general.master_key;
    ctx.connect_timeout = ms(cfg.gateway.connect_timeout);
    ctx.retry.backoff_base = ms(cfg.gateway.retry_backoff_base);
    ctx.retry.backoff_max = ms(cfg.gateway.retry_backoff_max);
    ctx.retry.retry_after_min = ms(cfg.router.retry_after);
    ctx.retry.retry_after_max = ms(cfg.gateway.retry_after_max);
    ctx.retry.max_fallbacks = cfg.router.max_fallbacks;
    ctx.retry.router = &cfg.router;
    ctx.fetch_image_urls = cfg.gateway.fetch_image_urls;
    ctx.image_fetch_allow_private = cfg.gateway.image_fetch_allow_private;
    ctx.token_rate_limit_type = cfg.general.token_rate_limit_type == "total"   ? 0
                                : cfg.general.token_rate_limit_type == "input" ? 1
                                                                               : 2;
    ctx.routing = &routing;
    ctx.allow_mock_params = cfg.gateway.allow_client_mock_params;
    ctx.store_prompts = cfg.general.store_prompts_in_spend_logs;
    ctx.budgets = cfg.gateway.budget_enforcement == "strict" ? accounts::budget_mode::strict
                                                              : accounts::budget_mode::spend;

    accounts::settings as;
    as.database_url = opts.offline ? std::string() : cfg.general.database_url;
    as.flush_interval = ms(cfg.gateway.spend_flush_interval);
    as.lease_ttl = std::chrono::seconds(std::max<std::int64_t>(10, static_cast<std::int64_t>(cfg.gateway.budget_lease_ttl)));
    as.slice_fraction = cfg.gateway.budget_slice_fraction;
    as.spool_path = cfg.gateway.spend_spool_path;
    if (as.spool_path.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      as.spool_path = std::string(tmp && *tmp ? tmp : "/tmp") + "/llm-gateway-spend-spool-" +
                      std::to_string(opts.port) + ".jsonl";
    }
    as.spend_log_retention_days = cfg.general.spend_logs_retention_days;
    as.mode = cfg.gateway.budget_enforcement == "strict" ? accounts::budget_mode::strict : accounts::budget_mode::spend;
    as.db_pool_size = static_cast<std::size_t>(std::max(1, cfg.general.database_connection_pool_limit));
    auto* th = &threads;
    accounts = std::make_unique<accounts::service>(
        *system, as, threads.size(),
        [th](std::size_t i, std::function<void()> job) { asio::post((*th)[i].io(), std::move(job)); });
    ctx.accounts = accounts.get();
    {
      std::vector<asio::io_context*> ios;
      for (std::size_t i = 0; i < threads.size(); ++i) ios.push_back(&threads[i].io());
      limiter = std::make_unique<limits::rate_limiter>(cfg, ios, accounts->config().node_id);
      ctx.limiter = limiter.get();
      if (cfg.router.redis.configured())
        log::info("rate limits: cluster-wide through Redis at " + cfg.router.redis.host + ":" +
                  std::to_string(cfg.router.redis.port) + (cfg.router.redis.tls ? " over TLS" : "") +
                  (cfg.router.redis.tls && !cfg.router.redis.tls_verify ? " (certificate not verified)" : "") +
                  " (from " + cfg.router.redis.from + ")");
    }
    if (const char* k = std::getenv("LLM_GATEWAY_DEFAULT_VIRTUAL_KEY"); k && *k) {
      const char* alias = std::getenv("LLM_GATEWAY_DEFAULT_VIRTUAL_KEY_ALIAS");
      accounts->ensure_key(k, alias && *alias ? alias : "default");
    }
    {
      auto ts = tracing::make_trace_settings(cfg, as.database_url, [](const char* k) { return std::getenv(k); }, warnings);
      if (ts.any()) {
        tracing = std::make_unique<tracing::trace_pipeline>(*system, std::move(ts), threads.size());
        ctx.tracing = tracing.get();
        const auto& t = tracing->settings();
        for (const auto& e : t.otlp)
          log::info("tracing: " + e.name + " -> " + http::url_origin(e.url) +
                    (e.otlp.capture_content ? " (with content)" : " (no content)"));
        if (t.store)
          log::info(std::string("tracing: trace store in ") + (t.database_url.empty() ? "memory (last " +
                    std::to_string(t.memory_records) + " requests)" : std::string("PostgreSQL")));
      }
    }
    ctx.node_id = accounts->config().node_id;
    for (std::size_t i = 0; i < threads.size(); ++i) {
      batchers.push_back(std::make_unique<routing::outcome_batcher>(*registry));
      ctx.batchers.push_back(batchers.back().get());
      threads[i].add_tick_hook([b = batchers.back().get(), a = &accounts->io(i), t = tracing.get(), i] {
        b->flush();
        a->flush();
        if (t) t->flush(i);
      });
    }
    handler = std::make_unique<gateway_handler>(ctx);

    http::server_options so;
    so.host = opts.host;
    so.port = opts.port;
    so.max_connections = connections_within_fd_limit(cfg.gateway.max_connections);
    so.max_header_bytes = cfg.gateway.max_header_bytes;
    so.max_body_bytes = cfg.general.max_request_size_bytes;
    so.keepalive_timeout = ms(cfg.gateway.keepalive_timeout);
    so.request_read_timeout = ms(cfg.gateway.request_read_timeout);
    so.header_read_timeout = ms(cfg.gateway.header_read_timeout);
    so.max_body_bytes_in_flight = cfg.gateway.max_request_bytes_in_flight;
    server = std::make_unique<http::server>(threads, so, *handler);
    ctx.server = server.get();

    http::pool_options po;
    po.max_idle_per_key = cfg.gateway.upstream_max_idle_per_host;
    po.idle_timeout = ms(cfg.gateway.upstream_idle_timeout);
    for (std::size_t i = 0; i < threads.size(); ++i) threads[i].pool().configure(po);

    auto* srv = server.get();
    metrics.add_callback_gauge("llm_gateway_open_connections", "Client connections open now", [srv] {
      return static_cast<double>(srv->stats().open_connections.load(std::memory_order_relaxed));
    });
    metrics.add_callback_gauge("llm_gateway_rejected_connections", "Connections refused over max_connections (since start)", [srv] {
      return static_cast<double>(srv->stats().rejected_over_cap.load(std::memory_order_relaxed));
    });
    metrics.add_callback_gauge("llm_gateway_request_body_bytes_in_flight", "Request body bytes held now (declared lengths)", [srv] {
      return static_cast<double>(srv->stats().body_bytes_in_flight.load(std::memory_order_relaxed));
    });
    metrics.add_callback_gauge("llm_gateway_rejected_request_bodies", "Request bodies refused over max_request_bytes_in_flight (since start)", [srv] {
      return static_cast<double>(srv->stats().rejected_over_body_memory.load(std::memory_order_relaxed));
    });
    metrics.add_callback_gauge("llm_gateway_refused_before_body", "Requests refused on their headers, body unread (since start)", [srv] {
      return static_cast<double>(srv->stats().refused_at_head.load(std::memory_order_relaxed));
    });
  }

  /// Runs fn(i) on every io thread i and waits for all of them (2 s at most). Threads
  /// that never started (--check-config) run nothing: there is nothing to flush.
  void on_each_io_thread(const std::function<void(std::size_t)>& fn) {
    if (!started) return;
    std::vector<std::future<void>> done;
    for (std::size_t i = 0; i < threads.size(); ++i) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      asio::post(threads[i].io(), [p, fn, i] {  // a copy: the wait may give up first
        fn(i);
        p->set_value();
      });
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (auto& f : done) f.wait_until(deadline);
  }

  /// Sends every io thread's buffered charges to the ledger, then has the ledger write
  /// (or spool) all spend and return this node's leases.
  void flush_spend(std::chrono::milliseconds timeout) {
    if (!accounts) return;
    on_each_io_thread([a = accounts.get()](std::size_t i) { a->io(i).flush(); });
    accounts->shutdown(timeout);
  }

  /// Sends every io thread's trace records to the shipper and gives the exporters a
  /// few seconds to send them.
  void flush_traces(std::chrono::milliseconds timeout) {
    if (!tracing) return;
    on_each_io_thread([t = tracing.get()](std::size_t i) { t->flush(i); });
    tracing->shutdown(timeout);
  }

  void shutdown() {
    if (stopped) return;
    stopped = true;
    flush_spend(std::chrono::seconds(10));
    flush_traces(std::chrono::seconds(5));
    // Each io thread closes its own Redis connection (only running threads can).
    if (started && limiter && limiter->redis_configured())
      threads.run_on_each([this](http::io_thread& t) { limiter->stop(t.index()); });
    for (auto& d : registry->deployments()) {
      if (d->aws) d->aws->stop();
      if (d->entra) d->entra->stop();
    }
    threads.stop();
    server->close();
    for (auto& d : registry->deployments()) caf::anon_send_exit(d->actor, caf::exit_reason::user_shutdown);
    // The accounts actors get their exit messages here; the service object itself stays
    // until the queued io handlers (which may still report charges) are destroyed.
    accounts->stop_actors();
    system.reset();  // waits for the actors; tickets they held are released
    // Credential providers own timers on the io_contexts: let go of them first (a
    // handler still queued may hold the last reference; it goes with the io_context).
    for (auto& d : registry->deployments()) {
      d->aws.reset();
      d->entra.reset();
    }
    // The rate limiter's Redis timers, resolver and descriptors belong to the
    // io_contexts: they must go before them. Calls still queued (destroyed with the
    // io_contexts below) then release nothing: they see no limiter.
    ctx.limiter = nullptr;
    limiter.reset();
    // Queued handlers hold sessions and calls that refer to ctx, registry and metrics:
    // destroy them while those are alive.
    threads.destroy();
  }
};

app::app(const config::gateway_config& cfg, app_options opts, std::vector<std::string>& warnings)
    : impl_(std::make_unique<impl>(cfg, std::move(opts), warnings)) {}

app::~app() { stop(); }

void app::start() {
  impl_->threads.start();
  impl_->started = true;
  // Each io thread's Redis connection is made on that thread.
  if (impl_->limiter->redis_configured()) {
    auto* l = impl_->limiter.get();
    impl_->threads.run_on_each([l](http::io_thread& t) { l->start_on(t.index()); });
  }
  impl_->server->start();
  // Fetch cloud credentials now, so that the first requests need not wait for them.
  for (auto& d : impl_->registry->deployments()) {
    auto name = d->cfg->model_name;
    if (d->aws)
      d->aws->get([name](std::optional<providers::aws_credentials> c, std::string err) {
        if (!c) log::warn("deployment '" + name + "': AWS credentials not available yet: " + err);
      });
    if (d->entra)
      d->entra->get([name](std::optional<std::string> tok, std::string err) {
        if (!tok) log::warn("deployment '" + name + "': Entra ID token not available yet: " + err);
      });
  }
}

std::uint16_t app::port() const noexcept { return impl_->server->port(); }
std::size_t app::io_thread_count() const noexcept { return impl_->io_count; }
std::size_t app::actor_thread_count() const noexcept { return impl_->actor_count; }

std::int64_t app::drain(std::chrono::milliseconds timeout) {
  auto& srv = *impl_->server;
  srv.begin_drain();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (srv.stats().active_requests.load() == 0) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return srv.stats().active_requests.load();
}

void app::stop() {
  if (impl_) impl_->shutdown();
}

}  // namespace gw::gateway
