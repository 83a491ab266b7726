#pragma once
/// Prometheus metrics. Names follow LiteLLM's where LiteLLM has the metric, so
/// dashboards built for LiteLLM keep working. Probes are resolved once (per
/// deployment, per status) so the request path never looks up a label set.
/// Thread-safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace gw::telemetry {

class metrics;

/// Everything measured per deployment. Thread-safe.
class deployment_probe {
 public:
  /// One finished request: its status and timings (seconds; negative = not measured).
  void observe(int status, double total_s, double upstream_s, double overhead_s, double ttft_s);
  void add_tokens(std::int64_t input, std::int64_t output);

 private:
  friend class metrics;
  prometheus::Counter& requests_for(int status);

  metrics* owner_ = nullptr;
  std::string model_group_, model_, model_id_;
  prometheus::Histogram* total_ = nullptr;
  prometheus::Histogram* upstream_ = nullptr;
  prometheus::Histogram* overhead_ = nullptr;
  prometheus::Histogram* ttft_ = nullptr;
  prometheus::Counter* input_tokens_ = nullptr;
  prometheus::Counter* output_tokens_ = nullptr;
  std::array<std::atomic<prometheus::Counter*>, 600> by_status_{};
};

class metrics {
 public:
  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  /// Resolves the probe of one deployment (call at start; the reference stays valid).
  deployment_probe& deployment(const std::string& model_group, const std::string& model,
                               const std::string& model_id);
  /// A request answered before it reached a deployment (auth, validation, 404, 429).
  void count_unrouted(int status);

  void in_flight_add(double d);
  /// Gauges read at scrape time (connections, pool sizes...).
  void add_callback_gauge(const std::string& name, const std::string& help, std::function<double()> read);

  /// The text exposition format (content-type text/plain; version=0.0.4).
  std::string scrape();

 private:
  friend class deployment_probe;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* total_latency_;
  prometheus::Family<prometheus::Histogram>* upstream_latency_;
  prometheus::Family<prometheus::Histogram>* overhead_latency_;
  prometheus::Family<prometheus::Histogram>* ttft_;
  prometheus::Family<prometheus::Counter>* input_tokens_;
  prometheus::Family<prometheus::Counter>* output_tokens_;
  prometheus::Gauge* in_flight_;
  deployment_probe unrouted_;
  std::mutex mutex_;  // guards probes_ and callbacks_
  std::vector<std::unique_ptr<deployment_probe>> probes_;
  struct callback_gauge {
    prometheus::Gauge* gauge;
    std::function<double()> read;
  };
  std::vector<callback_gauge> callbacks_;
};

}  // namespace gw::telemetry
