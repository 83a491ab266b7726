// The dispatcher against real upstreams on 127.0.0.1: the in-process mock provider
// (gw::mock::server, with per-model faults) or a scripted fake written here when a test
// needs exact control of the bytes (a stream cut after its first events, or before
// them, or one that goes on until the gateway hangs up). The gateway side is wired as
// app.cpp wires it: an http::server on one io thread running the model route's chain,
// the registry, one deployment actor per deployment, an outcome batcher flushed on the
// io thread's tick, and (where a test needs them) accounts and a trace pipeline,
// flushed on the tick too. Retry backoff is a few milliseconds (services::retry).

#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "gw/accounts/accounts.hpp"
#include "gw/config/config.hpp"
#include "gw/http/io_threads.hpp"
#include "gw/http/server.hpp"
#include "gw/keys/admin_json.hpp"
#include "gw/keys/model.hpp"
#include "gw/mock/mock_server.hpp"
#include "gw/pipeline/context.hpp"
#include "gw/pipeline/internal_call.hpp"
#include "gw/pipeline/services.hpp"
#include "gw/pipeline/stages.hpp"
#include "gw/routing/deployment_actor.hpp"
#include "gw/routing/registry.hpp"
#include "gw/telemetry/metrics.hpp"
#include "gw/trace_pipeline/pipeline.hpp"

namespace gw::pipeline {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using http_response = bhttp::response<bhttp::string_body>;
using header_list = std::vector<std::pair<std::string, std::string>>;

long long ms_since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count();
}

/// Polls `f` every 5 ms until it holds or `limit` passes.
template <class F>
bool eventually(F f, std::chrono::milliseconds limit = 1500ms) {
  auto end = steady::now() + limit;
  while (!f()) {
    if (steady::now() >= end) return f();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// The integer after "<key>": in a JSON text (the first occurrence), or -1.
long long json_int(const std::string& body, const std::string& key) {
  auto at = body.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::atoll(body.c_str() + at + key.size() + 3);
}

// ------------------------------------------------------------ a client with a timeout

/// One HTTP/1.1 exchange on a fresh connection; fails the test (status 0) when no whole
/// response comes within `limit`.
http_response http_call(std::uint16_t port, bhttp::verb method, const std::string& target, const std::string& body,
                        const header_list& headers = {}, std::chrono::milliseconds limit = 5000ms) {
  asio::io_context io;
  tcp::socket s(io);
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (method == bhttp::verb::post) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  beast::flat_buffer buf;
  http_response res;
  bool done = false;
  error_code err;
  s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), [&](error_code ec) {
    if (ec) {
      err = ec;
      done = true;
      return;
    }
    bhttp::async_write(s, req, [&](error_code ec, std::size_t) {
      if (ec) {
        err = ec;
        done = true;
        return;
      }
      bhttp::async_read(s, buf, res, [&](error_code ec, std::size_t) {
        err = ec;
        done = true;
      });
    });
  });
  io.run_for(limit);
  if (!done || err) {
    ADD_FAILURE() << method << " " << target << ": " << (done ? err.message() : "no whole answer in time");
    res.result(0);
  }
  return res;
}

// ------------------------------------------------------------ a scripted upstream

constexpr std::string_view k_sse_head =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

std::string chunk(std::string_view data) {
  char hex[20];
  int n = std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  std::string c(hex, static_cast<std::size_t>(n));
  c += data;
  c += "\r\n";
  return c;
}

std::string content_event(const std::string& text) {
  return R"(data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model",)"
         R"("choices":[{"index":0,"delta":{"content":")" +
         text + R"("},"finish_reason":null}]})" + "\n\n";
}

/// A whole stream: `words` content events, a finish event, [DONE], the last chunk.
std::string whole_stream(int words) {
  std::string s(k_sse_head);
  for (int i = 0; i < words; ++i) s += chunk(content_event("w" + std::to_string(i)));
  s += chunk(R"(data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model",)"
             R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
             "\n\n");
  s += chunk("data: [DONE]\n\n");
  s += "0\r\n\r\n";
  return s;
}

bool send_all(tcp::socket& s, std::string_view data) {
  error_code ec;
  asio::write(s, asio::buffer(data.data(), data.size()), ec);
  return !ec;
}

/// An upstream that serves each connection on its own thread with blocking I/O: every
/// request read is handed to the script with its number (0, 1, ... over all
/// connections), which writes what the test wants; false closes the connection.
class fake_upstream {
 public:
  using script = std::function<bool(int n, tcp::socket& s)>;

  explicit fake_upstream(script sc)
      : script_(std::move(sc)), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~fake_upstream() {
    stopping_ = true;
    {
      // Wakes the blocking accept.
      asio::io_context io;
      tcp::socket s(io);
      error_code ec;
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
      accept_thread_.join();
    }
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) {
        error_code ec;
        s->shutdown(tcp::socket::shutdown_both, ec);  // wakes a blocked read or write
      }
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  std::uint16_t port() const noexcept { return port_; }
  int requests() const noexcept { return requests_.load(); }

 private:
  void accept_loop() {
    for (;;) {
      auto s = std::make_shared<tcp::socket>(io_);
      error_code ec;
      acceptor_.accept(*s, ec);
      if (stopping_ || ec) return;
      std::lock_guard lock(mu_);
      sockets_.push_back(s);
      threads_.emplace_back([this, s] { serve(*s); });
    }
  }

  void serve(tcp::socket& s) {
    beast::flat_buffer buf;
    for (;;) {
      bhttp::request<bhttp::string_body> req;
      error_code ec;
      bhttp::read(s, buf, req, ec);
      if (ec) break;
      if (!script_(requests_++, s)) break;
    }
    error_code ec;
    s.shutdown(tcp::socket::shutdown_both, ec);
  }

  script script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
};

// ------------------------------------------------------------ the mock provider

class mock_provider {
 public:
  mock_provider() : server_(options()) { server_.start(); }
  std::uint16_t port() const { return server_.port(); }

  /// POST /_mock/faults: the next `count` requests for `model` (-1: all) behave as `x_mock`.
  void fault(const std::string& model, const std::string& x_mock, int count = -1) {
    auto r = http_call(port(), bhttp::verb::post, "/_mock/faults",
                       R"({"model":")" + model + R"(","count":)" + std::to_string(count) + R"(,"x_mock":)" + x_mock +
                           "}");
    ASSERT_EQ(r.result_int(), 200u) << r.body();
  }
  /// Requests the mock received for upstream model `model` (GET /_mock/stats).
  long long requests_for(const std::string& model) {
    auto r = http_call(port(), bhttp::verb::get, "/_mock/stats", "");
    auto n = json_int(r.body(), model);
    return n < 0 ? 0 : n;
  }

 private:
  static mock::options options() {
    mock::options o;
    o.port = 0;
    o.threads = 1;
    return o;
  }
  mock::server server_;
};

/// One model_list entry: group `group` served by `openai/<upstream>` at 127.0.0.1:port.
std::string deployment_yaml(const std::string& group, const std::string& upstream, std::uint16_t port,
                            const std::string& id, const std::string& extra = "") {
  return "  - model_name: " + group + "\n    litellm_params: {model: openai/" + upstream +
         ", api_base: \"http://127.0.0.1:" + std::to_string(port) + "/v1\", api_key: sk-test" + extra +
         "}\n    model_info: {id: " + id + "}\n";
}

// ------------------------------------------------------------ the gateway side

/// What the chain's first stage saw when a request finished (its on_finish).
struct finished_request {
  std::string call_id;
  int status = 0;
  int attempts = 0;
};

class recorder_stage final : public stage {
 public:
  std::string_view name() const noexcept override { return "recorder"; }
  flow on_request(request_context&) const override { return flow::next; }
  void on_finish(request_context& ctx) const override {
    std::lock_guard lock(mu_);
    done_.push_back(finished_request{ctx.call_id, ctx.out.status, ctx.out.attempts});
    cv_.notify_all();
  }
  /// The n-th request to finish (0-based), waiting up to `limit` for it.
  std::optional<finished_request> wait(std::size_t n, std::chrono::milliseconds limit = 2000ms) const {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, limit, [&] { return done_.size() > n; })) return std::nullopt;
    return done_[n];
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<finished_request> done_;
};

/// Runs each POST through the chain (OpenAI's chat route).
class chain_handler final : public http::request_handler {
 public:
  chain_handler(const services& svc, const chain& ch) : svc_(svc), ch_(ch) {}
  void on_request(const http::session_ptr& s) override {
    auto ctx = std::make_shared<request_context>(svc_, ch_, s, providers::operation::chat, dialect::openai);
    ctx->start();
  }

 private:
  const services& svc_;
  const chain& ch_;
};

struct rig_options {
  bool accounts = false;
  bool tracing = false;
  /// Runs before the io thread starts (e.g. to give deployments a price).
  std::function<void(routing::model_registry&)> prepare;
};

config::gateway_config load_config(const std::string& yaml) {
  auto r = config::load_string(yaml, "dispatch_test.yaml");
  if (auto* e = std::get_if<config::config_error>(&r)) {
    ADD_FAILURE() << e->message;
    return {};
  }
  return std::get<config::gateway_config>(std::move(r));
}

/// The gateway as app.cpp wires it, on one io thread (sweeping every 50 ms).
class gateway_rig {
 public:
  explicit gateway_rig(const std::string& yaml, rig_options o = {})
      : cfg_(load_config(yaml)),
        chain_({&recorder_, &auth_, &ingress_, &model_, &spend_, &limits_, &dispatch_}),
        handler_(svc_, chain_) {
    caf_cfg_.set("scheduler.max-threads", 2);
    caf_cfg_.set("scheduler.policy", caf::atom("sharing"));
    system_ = std::make_unique<caf::actor_system>(caf_cfg_);
    std::vector<std::string> warnings;
    registry_ = std::make_unique<routing::model_registry>(cfg_, metrics_, warnings);
    for (auto& w : warnings) ADD_FAILURE() << "config: " << w;
    routing::cooldown_policy cp;
    cp.allowed_fails = cfg_.router.allowed_fails;
    cp.allowed_fails_policy = cfg_.router.allowed_fails_policy;
    cp.cooldown_seconds = cfg_.router.cooldown_time;
    cp.disabled = cfg_.router.disable_cooldowns;
    for (auto& g : registry_->groups())
      for (auto* d : g->deployments) d->actor = routing::spawn_deployment(*system_, d, cp, g->deployments.size());
    if (o.prepare) o.prepare(*registry_);

    svc_.cfg = &cfg_;
    svc_.registry = registry_.get();
    svc_.metrics = &metrics_;
    svc_.connect_timeout = 1000ms;
    svc_.retry.backoff_base = 4ms;
    svc_.retry.backoff_max = 16ms;
    svc_.retry.retry_after_min = std::chrono::milliseconds(static_cast<std::int64_t>(cfg_.router.retry_after * 1000));
    svc_.retry.retry_after_max = 5000ms;
    svc_.retry.max_fallbacks = cfg_.router.max_fallbacks;
    svc_.retry.router = &cfg_.router;
    svc_.routing = &routing_;
    svc_.node_id = "dispatch-test";

    if (o.accounts) {
      spool_ = std::filesystem::temp_directory_path() /
               ("gw-dispatch-test-" + std::to_string(::getpid()) + "-" + std::to_string(++rigs_) + ".jsonl");
      accounts::settings as;
      as.node_id = "dispatch-test";
      as.flush_interval = 20ms;
      as.spool_path = spool_.string();
      auto* th = &threads_;
      accounts_ = std::make_unique<accounts::service>(
          *system_, as, threads_.size(),
          [th](std::size_t i, std::function<void()> job) { asio::post((*th)[i].io(), std::move(job)); });
      svc_.accounts = accounts_.get();
    }
    if (o.tracing) {
      tracing::trace_settings ts;
      ts.store = true;  // in memory: no database_url
      ts.memory_records = 100;
      ts.flush_interval = 20ms;
      tracing_ = std::make_unique<tracing::trace_pipeline>(*system_, std::move(ts), threads_.size());
      svc_.tracing = tracing_.get();
    }
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      batchers_.push_back(std::make_unique<routing::outcome_batcher>(*registry_));
      svc_.batchers.push_back(batchers_.back().get());
      threads_[i].add_tick_hook([b = batchers_.back().get(), a = accounts_ ? &accounts_->io(i) : nullptr,
                                 t = tracing_.get(), i] {
        b->flush();
        if (a) a->flush();
        if (t) t->flush(i);
      });
    }
    http::server_options so;
    so.host = "127.0.0.1";
    so.port = 0;
    server_ = std::make_unique<http::server>(threads_, so, handler_);
    svc_.server = server_.get();
    threads_.start();
    server_->start();
  }

  ~gateway_rig() {
    // As app.cpp's shutdown: the actors' users stop first, the io handlers go last.
    if (accounts_) accounts_->shutdown(500ms);
    if (tracing_) tracing_->shutdown(500ms);
    threads_.stop();
    server_->close();
    for (auto& d : registry_->deployments()) caf::anon_send_exit(d->actor, caf::exit_reason::user_shutdown);
    if (accounts_) accounts_->stop_actors();
    system_.reset();
    threads_.destroy();
    if (!spool_.empty()) {
      std::error_code ec;
      std::filesystem::remove(spool_, ec);
    }
  }

  std::uint16_t port() const { return server_->port(); }
  const services& svc() const { return svc_; }
  const recorder_stage& recorder() const { return recorder_; }
  const routing::model_group& group(const std::string& name) const {
    const auto* g = registry_->find(name);
    EXPECT_NE(g, nullptr) << name;
    return *g;
  }
  routing::deployment_runtime& deployment(const std::string& id) const {
    for (auto& d : registry_->deployments())
      if (d->cfg->id == id) return *d;
    ADD_FAILURE() << "no deployment " << id;
    return *registry_->deployments().front();
  }

  http_response chat(const std::string& body, const header_list& headers = {}) {
    return http_call(port(), bhttp::verb::post, "/v1/chat/completions", body, headers);
  }

  struct internal_result {
    std::string call_id;
    std::optional<internal_answer> answer;
  };
  /// pipeline::call_internal on the io thread, as a feature of the gateway calls it.
  internal_result internal(const std::string& body) {
    auto id = std::make_shared<std::promise<std::string>>();
    auto ans = std::make_shared<std::promise<internal_answer>>();
    auto idf = id->get_future();
    auto ansf = ans->get_future();
    asio::post(threads_[0].io(), [this, body, id, ans] {
      id->set_value(call_internal(svc_, chain_, threads_[0], providers::operation::chat, body, nullptr,
                                  [ans](internal_answer a) { ans->set_value(std::move(a)); }));
    });
    internal_result r;
    if (idf.wait_for(2s) == std::future_status::ready) r.call_id = idf.get();
    if (ansf.wait_for(2s) == std::future_status::ready) r.answer = ansf.get();
    return r;
  }

  /// An admin route of the accounts service (GET /spend/logs ...).
  std::pair<int, std::string> admin(const std::string& route, const std::string& query) {
    auto p = std::make_shared<std::promise<std::pair<int, std::string>>>();
    auto f = p->get_future();
    accounts_->admin(route, "", query, [p](int status, std::string body) { p->set_value({status, std::move(body)}); });
    if (f.wait_for(2s) != std::future_status::ready) return {0, "no answer"};
    return f.get();
  }
  /// GET /traces/... of the trace pipeline (the memory store).
  std::pair<int, std::string> traces(const std::string& path) {
    auto p = std::make_shared<std::promise<std::pair<int, std::string>>>();
    auto f = p->get_future();
    tracing_->query(path, "", [p](int status, std::string body) { p->set_value({status, std::move(body)}); });
    if (f.wait_for(2s) != std::future_status::ready) return {0, "no answer"};
    return f.get();
  }

 private:
  static inline std::atomic<int> rigs_{0};
  config::gateway_config cfg_;
  telemetry::metrics metrics_{1};
  http::io_threads threads_{1};
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<routing::model_registry> registry_;
  std::unique_ptr<accounts::service> accounts_;
  std::unique_ptr<tracing::trace_pipeline> tracing_;
  std::vector<std::unique_ptr<routing::outcome_batcher>> batchers_;
  routing_counters routing_;
  services svc_;
  recorder_stage recorder_;
  auth_stage auth_;
  ingress_stage ingress_;
  model_stage model_;
  spend_stage spend_;
  limits_stage limits_;
  dispatch_stage dispatch_;
  chain chain_;
  chain_handler handler_;
  std::unique_ptr<http::server> server_;
  std::filesystem::path spool_;
};

constexpr const char* k_chat = R"({"model":"%s","messages":[{"role":"user","content":"hello there"}]%s})";

/// A chat request body for `model`, with `extra` members (",\"stream\":true").
std::string chat_body(const std::string& model, const std::string& extra = "") {
  char buf[512];
  std::snprintf(buf, sizeof buf, k_chat, model.c_str(), extra.c_str());
  return buf;
}

// ------------------------------------------------------------ retries

TEST(Dispatch, ARetryAfterA500GoesToTheGroupsOtherDeployment) {
  mock_provider mock;
  mock.fault("bad-model", R"({"status":500})");
  // The failing deployment carries (nearly) all the weight: the first attempt goes there.
  gateway_rig gw("router_settings: {num_retries: 1}\nmodel_list:\n" +
                 deployment_yaml("g", "bad-model", mock.port(), "bad", ", weight: 1") +
                 deployment_yaml("g", "good-model", mock.port(), "good", ", weight: 0.000000001"));
  auto r = gw.chat(chat_body("g"));
  EXPECT_EQ(r.result_int(), 200u) << r.body();
  EXPECT_EQ(r["x-litellm-model-id"], "good");
  EXPECT_EQ(r["x-litellm-attempted-retries"], "1");
  EXPECT_EQ(r["x-litellm-attempted-fallbacks"], "0");
  EXPECT_NE(r.body().find(R"("model":"good-model")"), std::string::npos) << r.body();
  EXPECT_EQ(mock.requests_for("bad-model"), 1);
  EXPECT_EQ(mock.requests_for("good-model"), 1);
  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->attempts, 2);
  EXPECT_EQ(f->status, 200);
}

TEST(Dispatch, A429WithRetryAfterIsRetriedAfterWaitingThatLong) {
  mock_provider mock;
  // The group's only deployment: once 429 asking for 0.3 s, then fine.
  mock.fault("solo-model", R"({"status":429,"retry_after":"0.3"})", 1);
  gateway_rig gw("router_settings: {num_retries: 1}\nmodel_list:\n" +
                 deployment_yaml("solo", "solo-model", mock.port(), "solo"));
  auto t0 = steady::now();
  auto r = gw.chat(chat_body("solo"));
  auto elapsed = ms_since(t0);
  EXPECT_EQ(r.result_int(), 200u) << r.body();
  EXPECT_EQ(r["x-litellm-attempted-retries"], "1");
  EXPECT_GE(elapsed, 300) << "the retry did not wait for retry-after (backoff alone is <= 16 ms)";
  EXPECT_LT(elapsed, 1500);
  EXPECT_EQ(mock.requests_for("solo-model"), 2);
}

// ------------------------------------------------------------ fallbacks

TEST(Dispatch, AGroupWhoseOnlyDeploymentFailsFallsBackToTheNextGroup) {
  mock_provider mock;
  mock.fault("a-model", R"({"status":500})");
  gateway_rig gw("router_settings: {num_retries: 0, fallbacks: [{A: [B]}]}\nmodel_list:\n" +
                 deployment_yaml("A", "a-model", mock.port(), "a") + deployment_yaml("B", "b-model", mock.port(), "b"));
  auto r = gw.chat(chat_body("A"));
  EXPECT_EQ(r.result_int(), 200u) << r.body();
  EXPECT_EQ(r["x-litellm-attempted-fallbacks"], "1");
  EXPECT_EQ(r["x-litellm-attempted-retries"], "0");
  EXPECT_EQ(r["x-litellm-model-group"], "B");
  EXPECT_EQ(r["x-litellm-model-id"], "b");
  EXPECT_NE(r.body().find(R"("model":"b-model")"), std::string::npos) << r.body();
  EXPECT_EQ(mock.requests_for("a-model"), 1);
  EXPECT_EQ(mock.requests_for("b-model"), 1);
}

// ------------------------------------------------------------ cooldowns

TEST(Dispatch, ADeploymentFailingMoreThanAllowedFailsCoolsDownAndIsSkipped) {
  mock_provider mock;
  mock.fault("bad-model", R"({"status":500})");
  gateway_rig gw("router_settings: {num_retries: 1, allowed_fails: 1, cooldown_time: 30}\nmodel_list:\n" +
                 deployment_yaml("g", "bad-model", mock.port(), "bad", ", weight: 1") +
                 deployment_yaml("g", "good-model", mock.port(), "good", ", weight: 0.000000001"));
  const auto& g = gw.group("g");
  auto& bad = gw.deployment("bad");
  auto& good = gw.deployment("good");
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now().time_since_epoch()).count();
  };
  // Healthy, it is the one routed to (by weight).
  EXPECT_EQ(routing::pick_deployment(g, nullptr, 0.5, now_ms()).position, bad.position);

  // Two failures on it (each request then retries on the other): more than allowed_fails.
  for (int i = 0; i < 2; ++i) {
    auto r = gw.chat(chat_body("g"));
    EXPECT_EQ(r.result_int(), 200u) << r.body();
    EXPECT_EQ(r["x-litellm-attempted-retries"], "1");
  }
  ASSERT_TRUE(eventually([&] {
    return bad.health.load() == static_cast<int>(routing::deployment_health::cooling);
  })) << "the deployment actor never cooled the failing deployment down";
  EXPECT_EQ(good.health.load(), static_cast<int>(routing::deployment_health::healthy));
  EXPECT_EQ(bad.cooldowns.load(), 1u);
  EXPECT_GT(bad.cooldown_until_ms.load(), now_ms() + 20'000);

  // Routing skips it now, whatever the draw; without the other, nothing is left.
  for (double r01 : {0.0, 0.5, 0.999}) {
    auto p = routing::pick_deployment(g, nullptr, r01, now_ms());
    EXPECT_EQ(p.position, good.position) << r01;
    EXPECT_FALSE(p.probe);
  }
  std::vector<bool> tried(2, false);
  tried[good.position] = true;
  auto none = routing::pick_deployment(g, &tried, 0.5, now_ms());
  EXPECT_EQ(none.position, static_cast<std::size_t>(-1));
  EXPECT_TRUE(none.cooling);
  EXPECT_GT(none.cooldown_left_ms, 20'000);

  // And so does the dispatcher: the next request goes straight to the healthy one.
  auto r = gw.chat(chat_body("g"));
  EXPECT_EQ(r.result_int(), 200u) << r.body();
  EXPECT_EQ(r["x-litellm-model-id"], "good");
  EXPECT_EQ(r["x-litellm-attempted-retries"], "0");
  EXPECT_EQ(mock.requests_for("bad-model"), 2);
  EXPECT_EQ(mock.requests_for("good-model"), 3);
}

// ------------------------------------------------------------ streams

TEST(Dispatch, AStreamBrokenAfterItsFirstEventsEndsWithAnErrorEventAndIsNotRetried) {
  fake_upstream up([](int, tcp::socket& s) {
    send_all(s, std::string(k_sse_head) + chunk(content_event("one")) + chunk(content_event("two")));
    std::this_thread::sleep_for(50ms);  // the client has them by now
    return false;                       // closed mid-stream, without the last chunk
  });
  gateway_rig gw("router_settings: {num_retries: 2}\nmodel_list:\n" + deployment_yaml("s", "fake-model", up.port(), "s"));
  auto r = gw.chat(chat_body("s", R"(,"stream":true)"));
  EXPECT_EQ(r.result_int(), 200u) << "the head went out with the first events";
  EXPECT_EQ(r["x-litellm-attempted-retries"], "0");
  const auto& b = r.body();
  auto one = b.find(R"("content":"one")"), two = b.find(R"("content":"two")");
  auto err = b.find(R"(data: {"error":)");
  ASSERT_NE(one, std::string::npos) << b;
  ASSERT_NE(two, std::string::npos) << b;
  ASSERT_NE(err, std::string::npos) << "no error event at the end: " << b;
  EXPECT_LT(two, err);
  EXPECT_NE(b.find(R"("code":"upstream_stream_error")", err), std::string::npos) << b;
  EXPECT_EQ(b.find("[DONE]"), std::string::npos) << b;
  EXPECT_EQ(b.substr(b.size() - 2), "\n\n") << "the error event is whole";
  EXPECT_EQ(up.requests(), 1) << "a stream the client has seen part of is never retried";
  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 502);
  EXPECT_EQ(f->attempts, 1);
}

TEST(Dispatch, AStreamFailingBeforeItsFirstEventIsRetried) {
  fake_upstream up([](int n, tcp::socket& s) {
    if (n == 0) {
      // The head and half an event, then the connection drops.
      send_all(s, std::string(k_sse_head) + chunk("data: {\"id\":\"chatcmpl-fake\",\"obj"));
      return false;
    }
    send_all(s, whole_stream(3));
    return true;
  });
  gateway_rig gw("router_settings: {num_retries: 2}\nmodel_list:\n" + deployment_yaml("s", "fake-model", up.port(), "s"));
  auto r = gw.chat(chat_body("s", R"(,"stream":true)"));
  EXPECT_EQ(r.result_int(), 200u) << r.body();
  EXPECT_EQ(r["x-litellm-attempted-retries"], "1");
  const auto& b = r.body();
  EXPECT_NE(b.find(R"("content":"w2")"), std::string::npos) << b;
  EXPECT_NE(b.find("data: [DONE]"), std::string::npos) << b;
  EXPECT_EQ(b.find("\"error\""), std::string::npos) << b;
  // Nothing of the failed attempt reaches the client: the answer is the second one's five
  // whole events (three words, the finish, [DONE]).
  EXPECT_EQ(b.find("data: "), 0u) << b;
  std::size_t events = 0;
  for (auto at = b.find("data: "); at != std::string::npos; at = b.find("data: ", at + 1)) ++events;
  EXPECT_EQ(events, 5u) << b;
  EXPECT_EQ(up.requests(), 2);
  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 200);
  EXPECT_EQ(f->attempts, 2);
}

TEST(Dispatch, AClientLeavingMidStreamEndsTheRequestWith499AndClosesTheUpstream) {
  std::atomic<bool> upstream_closed{false};
  std::atomic<int> events_sent{0};
  fake_upstream up([&](int, tcp::socket& s) {
    if (!send_all(s, std::string(k_sse_head) + chunk(content_event("w0")))) return false;
    events_sent = 1;
    // One event every 10 ms for up to 3 s, until the gateway hangs up.
    for (int i = 1; i < 300; ++i) {
      std::this_thread::sleep_for(10ms);
      if (!send_all(s, chunk(content_event("w" + std::to_string(i))))) {
        upstream_closed = true;
        return false;
      }
      events_sent = i + 1;
    }
    send_all(s, "0\r\n\r\n");
    return false;
  });
  gateway_rig gw("model_list:\n" + deployment_yaml("s", "fake-model", up.port(), "s"));

  // A raw client: sends the request, reads until the first event arrives, and leaves.
  {
    asio::io_context io;
    tcp::socket c(io);
    c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), gw.port()));
    std::string body = chat_body("s", R"(,"stream":true)");
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
                      "content-length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(c, asio::buffer(req));
    std::string got;
    bool read = false;
    asio::async_read_until(c, asio::dynamic_buffer(got), "\n\n", [&](error_code ec, std::size_t) { read = !ec; });
    io.run_for(2s);
    ASSERT_TRUE(read) << "no first event: " << got;
    EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
    EXPECT_NE(got.find(R"("content":"w0")"), std::string::npos) << got;
  }  // closed here, mid-stream
  auto left = steady::now();

  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f) << "the request never finished";
  EXPECT_EQ(f->status, 499);
  EXPECT_TRUE(eventually([&] { return upstream_closed.load(); }))
      << "the upstream connection stayed open after the client left";
  EXPECT_LT(ms_since(left), 1000);
  EXPECT_LT(events_sent.load(), 100) << "the upstream was read on long after the client left";
}

// ------------------------------------------------------------ deadlines

TEST(Dispatch, AnUpstreamThatNeverAnswersTimesOutWith504AfterTheDeploymentsTimeout) {
  mock_provider mock;
  mock.fault("slow-model", R"({"hang":true})");
  gateway_rig gw("router_settings: {num_retries: 0}\nmodel_list:\n" +
                 deployment_yaml("slow", "slow-model", mock.port(), "slow", ", timeout: 0.4"));
  auto t0 = steady::now();
  auto r = gw.chat(chat_body("slow"));
  auto elapsed = ms_since(t0);
  EXPECT_EQ(r.result_int(), 504u) << r.body();
  EXPECT_NE(r.body().find(R"("code":"upstream_timeout")"), std::string::npos) << r.body();
  EXPECT_EQ(r["x-litellm-timeout"], "0.4");
  EXPECT_GE(elapsed, 400);
  EXPECT_LT(elapsed, 400 + 50 + 300) << "deadlines are swept every 50 ms";
}

TEST(Dispatch, ARequestsOwnTimeoutShortensTheDeployments) {
  mock_provider mock;
  mock.fault("slow-model", R"({"hang":true})");
  gateway_rig gw("router_settings: {num_retries: 0}\nmodel_list:\n" +
                 deployment_yaml("slow", "slow-model", mock.port(), "slow", ", timeout: 5"));
  auto t0 = steady::now();
  auto r = gw.chat(chat_body("slow", R"(,"timeout":0.2)"));
  auto elapsed = ms_since(t0);
  EXPECT_EQ(r.result_int(), 504u) << r.body();
  EXPECT_NE(r.body().find(R"("code":"upstream_timeout")"), std::string::npos) << r.body();
  EXPECT_EQ(r["x-litellm-timeout"], "0.2");
  EXPECT_GE(elapsed, 200);
  EXPECT_LT(elapsed, 200 + 50 + 300);
}

/// Blocks until the peer closes the connection (or the fake stops).
void wait_for_close(tcp::socket& s) {
  char buf[256];
  error_code ec;
  while (!ec) s.read_some(asio::buffer(buf), ec);
}

TEST(Dispatch, AStreamSilentAfterItsHeadTimesOutWith504AfterTheStreamTimeout) {
  std::atomic<bool> upstream_closed{false};
  fake_upstream up([&](int, tcp::socket& s) {
    send_all(s, k_sse_head);
    wait_for_close(s);
    upstream_closed = true;
    return false;
  });
  gateway_rig gw("router_settings: {num_retries: 0}\nmodel_list:\n" +
                 deployment_yaml("s", "fake-model", up.port(), "s", ", timeout: 5, stream_timeout: 0.3"));
  auto t0 = steady::now();
  auto r = gw.chat(chat_body("s", R"(,"stream":true)"));
  auto elapsed = ms_since(t0);
  EXPECT_EQ(r.result_int(), 504u) << "nothing reached the client: a plain error answer; " << r.body();
  EXPECT_NE(r.body().find(R"("code":"upstream_timeout")"), std::string::npos) << r.body();
  EXPECT_EQ(r["x-litellm-timeout"], "0.3");
  EXPECT_GE(elapsed, 300);
  EXPECT_LT(elapsed, 300 + 50 + 300);
  EXPECT_TRUE(eventually([&] { return upstream_closed.load(); })) << "the stalled upstream connection stayed open";
}

TEST(Dispatch, AStreamStallingAfterItsFirstEventsEndsWithAnErrorEventAfterTheStreamTimeout) {
  fake_upstream up([](int, tcp::socket& s) {
    send_all(s, std::string(k_sse_head) + chunk(content_event("one")));
    wait_for_close(s);
    return false;
  });
  gateway_rig gw("router_settings: {num_retries: 2}\nmodel_list:\n" +
                 deployment_yaml("s", "fake-model", up.port(), "s", ", timeout: 5, stream_timeout: 0.3"));
  auto t0 = steady::now();
  auto r = gw.chat(chat_body("s", R"(,"stream":true)"));
  auto elapsed = ms_since(t0);
  EXPECT_EQ(r.result_int(), 200u);
  const auto& b = r.body();
  auto one = b.find(R"("content":"one")"), err = b.find(R"(data: {"error":)");
  ASSERT_NE(one, std::string::npos) << b;
  ASSERT_NE(err, std::string::npos) << b;
  EXPECT_LT(one, err);
  EXPECT_NE(b.find("timed out", err), std::string::npos) << b;
  EXPECT_GE(elapsed, 300);
  EXPECT_LT(elapsed, 300 + 50 + 300);
  EXPECT_EQ(up.requests(), 1);
  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 502);
}

// ------------------------------------------------------------ internal calls

TEST(Dispatch, AnInternalCallIsChargedAndTracedLikeAClientCall) {
  mock_provider mock;
  constexpr keys::money in_price = 2'000'000, out_price = 5'000'000;  // $2e-6, $5e-6 per token
  rig_options o;
  o.accounts = true;
  o.tracing = true;
  o.prepare = [&](routing::model_registry& reg) {
    pricing::model_price p;
    p.input_per_token = in_price;
    p.output_per_token = out_price;
    for (auto& d : reg.deployments()) d->price = p;
  };
  gateway_rig gw("model_list:\n" + deployment_yaml("g", "priced-model", mock.port(), "priced"), o);

  auto res = gw.internal(chat_body("g", R"(,"x_mock":{"tokens":7})"));
  ASSERT_FALSE(res.call_id.empty());
  ASSERT_TRUE(res.answer) << "the internal call never answered";
  const auto& a = *res.answer;
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_TRUE(a.complete);
  EXPECT_NE(a.headers.find("x-litellm-call-id: " + res.call_id + "\r\n"), std::string::npos) << a.headers;
  auto prompt = json_int(a.body, "prompt_tokens"), completion = json_int(a.body, "completion_tokens");
  ASSERT_GT(prompt, 0) << a.body;
  ASSERT_EQ(completion, 7) << a.body;
  keys::money cost = prompt * in_price + completion * out_price;
  EXPECT_NE(a.headers.find("x-litellm-response-cost: " + format_cost(cost) + "\r\n"), std::string::npos) << a.headers;
  auto f = gw.recorder().wait(0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->call_id, res.call_id);

  // The spend log: the ledger writes what the io thread's tick flushed.
  std::string logs;
  EXPECT_TRUE(eventually([&] {
    auto [status, body] = gw.admin("GET /spend/logs", "request_id=" + res.call_id);
    logs = body;
    return status == 200 && body.find(res.call_id) != std::string::npos;
  })) << "no spend-log row for the internal call: " << logs;
  EXPECT_NE(logs.find(R"("spend_exact":")" + keys::to_decimal(cost) + "\""), std::string::npos)
      << "expected " << keys::to_decimal(cost) << " in " << logs;
  EXPECT_NE(logs.find(R"("model_group":"g")"), std::string::npos) << logs;
  EXPECT_NE(logs.find(R"("model_id":"priced")"), std::string::npos) << logs;
  EXPECT_EQ(json_int(logs, "prompt_tokens"), prompt);
  EXPECT_EQ(json_int(logs, "completion_tokens"), completion);
  EXPECT_EQ(json_int(logs, "http_status"), 200);

  // The trace: the shipper hands it to the memory store.
  std::string trace;
  EXPECT_TRUE(eventually([&] {
    auto [status, body] = gw.traces("/traces/" + res.call_id);
    trace = body;
    return status == 200;
  })) << "no trace for the internal call: " << trace;
  EXPECT_NE(trace.find(R"("request_id":")" + res.call_id + "\""), std::string::npos) << trace;
  EXPECT_NE(trace.find(R"("model_group":"g")"), std::string::npos) << trace;
  EXPECT_NE(trace.find(R"("model_id":"priced")"), std::string::npos) << trace;
  EXPECT_EQ(json_int(trace, "http_status"), 200);
  EXPECT_EQ(json_int(trace, "completion_tokens"), completion);
  std::string spend;
  keys::append_money(spend, cost);
  EXPECT_NE(trace.find(R"("spend":)" + spend), std::string::npos) << "expected " << spend << " in " << trace;
}

}  // namespace
}  // namespace gw::pipeline
