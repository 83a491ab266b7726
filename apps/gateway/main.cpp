// llm-gateway: loads the config, starts the gateway, waits for SIGTERM/SIGINT,
// drains in-flight requests and exits 0.

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <variant>

#include "cli.hpp"
#include "healthcheck.hpp"
#include "gw/config/config.hpp"
#include "gw/core/cpu.hpp"
#include "gw/core/files.hpp"
#include "gw/core/log.hpp"
#include "gw/gateway/app.hpp"
#include "gw/store/pg_store.hpp"
#include "gw/mock/embedded.hpp"

namespace {

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void apply_log_level(bool debug) {
  gw::log::level l = gw::log::level::info;
  if (const char* v = std::getenv("LITELLM_LOG")) {
    if (!gw::log::parse_level(v, l)) gw::log::warn(std::string("LITELLM_LOG='") + v + "' is not a log level; using INFO");
  }
  if (debug) l = gw::log::level::debug;
  gw::log::set_level(l);
}

}  // namespace

#ifdef GW_WITH_JEMALLOC
// jemalloc's settings: a background thread gives dirty pages back (idle RSS falls after
// load instead of waiting for the next allocations), within a second.
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#endif

int main(int argc, char** argv) {
  // Without jemalloc (sanitizer builds): glibc gives each thread that contends its own
  // arena (up to 8 per core). Spend-log rows are made on the io threads and freed on the ledger's: with many arenas, each
  // stays at its high-water mark (130 MB after a minute at 60k req/s, measured). One
  // arena, with the per-thread caches in front of it: malloc_trim() gives back free
  // pages of the main arena and its top, but never the top of a secondary arena, which
  // kept 8-16 MB after load with two arenas (idle RSS 27-39 MB against 23 MB with one,
  // throughput equal within the noise: docs/PERFORMANCE.md). MALLOC_ARENA_MAX in the
  // environment still decides.
#ifndef GW_WITH_JEMALLOC
  if (!std::getenv("MALLOC_ARENA_MAX")) ::mallopt(M_ARENA_MAX, 1);
#endif
  if (auto missing = gw::missing_cpu_features(); !missing.empty()) {
    std::cerr << "llm-gateway: this build needs CPU features this machine lacks (" << missing
              << "); rebuild with -DGW_MARCH= (see README)\n";
    return 1;
  }
  gw::app::cli_options opts;
  std::string err;
  if (!gw::app::parse_cli(std::vector<std::string>(argv + 1, argv + argc), opts, err)) {
    std::cerr << "llm-gateway: " << err << "\n";
    return 2;
  }
  if (opts.help) {
    std::cout << gw::app::usage_text();
    return 0;
  }
  if (opts.version) {
    std::cout << "llm-gateway " << GW_VERSION << "\n";
    return 0;
  }
  if (opts.healthcheck) {
    std::string why;
    std::string host = opts.host_given ? opts.host : "127.0.0.1";
    int status = gw::app::http_get_status(host, opts.port, opts.path, opts.timeout_ms, why);
    if (status == 200) return 0;
    if (status == 0)
      std::cerr << "llm-gateway healthcheck: " << why << "\n";
    else
      std::cerr << "llm-gateway healthcheck: " << opts.path << " answered " << status << "\n";
    return 1;
  }

  // Block the shutdown signals in every thread; main waits for them with sigwait.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  // .env first, as LiteLLM does; variables already set win.
  {
    std::string env_path = opts.env_file.value_or(".env");
    bool missing = false;
    if (!gw::config::load_env_file(env_path, err, missing)) {
      std::cerr << "llm-gateway: " << err << "\n";
      return 1;
    }
    if (missing && opts.env_file) {
      std::cerr << "llm-gateway: --env-file " << env_path << ": no such file\n";
      return 1;
    }
  }
  apply_log_level(opts.debug);

  // No --config: the embedded default, served by the built-in mock provider.
  std::unique_ptr<gw::mock::embedded_provider> embedded_mock;
  gw::config::load_result loaded;
  if (opts.config) {
    loaded = gw::config::load_file(*opts.config);
  } else {
    if (!opts.check_config && !opts.migrate) {
      try {
        embedded_mock = gw::mock::embedded_provider::start();
      } catch (const std::exception& e) {
        std::cerr << "llm-gateway: cannot start the embedded mock provider: " << e.what() << "\n";
        return 1;
      }
      setenv("GW_EMBEDDED_MOCK_BASE", ("http://127.0.0.1:" + std::to_string(embedded_mock->port()) + "/v1").c_str(), 1);
    } else {
      setenv("GW_EMBEDDED_MOCK_BASE", "http://127.0.0.1:1/v1", 0);
    }
    loaded = gw::config::load_string(gw::config::embedded_default_yaml(), "<embedded default>");
  }
  if (auto* e = std::get_if<gw::config::config_error>(&loaded)) {
    std::cerr << "llm-gateway: invalid config: " << e->message << "\n";
    return 1;
  }
  const auto& cfg = std::get<gw::config::gateway_config>(loaded);
  apply_log_level(opts.debug);  // environment_variables may have set LITELLM_LOG

  if (opts.migrate) {
    if (cfg.general.database_url.empty()) {
      std::cerr << "llm-gateway migrate: no database (set general_settings.database_url or DATABASE_URL)\n";
      return 1;
    }
    try {
      std::vector<std::string> log_lines;
      int version = gw::store::migrate(cfg.general.database_url, log_lines);
      for (auto& l : log_lines) std::cout << l << "\n";
      std::cout << "database schema at version " << version << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "llm-gateway migrate: " << e.what() << "\n";
      return 1;
    }
  }

  std::vector<std::string> warnings = cfg.warnings;
  gw::gateway::app_options ao;
  ao.host = opts.host;
  ao.port = opts.port;
  ao.io_threads = opts.num_workers;
  ao.offline = opts.check_config;  // --check-config does not touch the database
  std::unique_ptr<gw::gateway::app> gateway;
  try {
    gateway = std::make_unique<gw::gateway::app>(cfg, ao, warnings);
  } catch (const std::exception& e) {
    std::cerr << "llm-gateway: " << e.what() << "\n";
    return 1;
  }
  for (const auto& w : warnings) gw::log::warn("config " + cfg.source + ": " + w);
  if (opts.check_config) {
    std::cout << "config " << cfg.source << " is valid: " << cfg.model_list.size() << " deployment(s), "
              << warnings.size() << " warning(s)\n";
    return 0;
  }
  if (cfg.general.master_key.empty())
    gw::log::warn("no master key (general_settings.master_key or LITELLM_MASTER_KEY): model routes are open to "
                  "anyone who can reach the port");
  if (embedded_mock)
    gw::log::info("no --config: serving the embedded default config (models mock-gpt, mock-embed) from the "
                  "built-in mock provider on 127.0.0.1:" + std::to_string(embedded_mock->port()));

  try {
    gateway->start();
  } catch (const std::exception& e) {
    std::cerr << "llm-gateway: " << e.what() << "\n";
    return 1;
  }
  gw::log::info("llm-gateway " + std::string(GW_VERSION) + " listening on http://" + opts.host + ":" +
                std::to_string(gateway->port()) + " (" + std::to_string(gateway->io_thread_count()) +
                " io threads, " + std::to_string(gateway->actor_thread_count()) + " actor threads, " +
                std::to_string(cfg.model_list.size()) + " deployments)");
  if (opts.port_file && !gw::write_file_atomic(*opts.port_file, std::to_string(gateway->port()) + "\n")) {
    std::cerr << "llm-gateway: cannot write --port-file " << *opts.port_file << "\n";
    return 1;
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(cfg.gateway.drain_timeout * 1000));
  gw::log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                ": draining in-flight requests (up to " + std::to_string(timeout.count()) + " ms)");
  auto left = gateway->drain(timeout);
  if (left > 0) gw::log::warn(std::to_string(left) + " request(s) still running at the drain timeout; closing them");
  gateway->stop();
  if (embedded_mock) embedded_mock->stop();
  gw::log::info("stopped");
  return 0;
}
