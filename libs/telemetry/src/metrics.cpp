#include "gw/telemetry/metrics.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>

namespace gw::telemetry {
namespace {

// LiteLLM's latency buckets (seconds).
const std::vector<double> k_latency_buckets{0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0,
                                            3.5,   4.0,     4.5,    5.0,   5.5,  6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0,
                                            9.5,   10.0,    15.0,   20.0,  25.0, 30.0, 60.0, 120.0, 180.0, 240.0,
                                            300.0};
// The gateway's own overhead is measured in microseconds.
const std::vector<double> k_overhead_buckets{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                             0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   1.0};

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric::Label label(const char* n, const std::string& v) { return {n, v}; }

}  // namespace

// ------------------------------------------------------------------ histogram

histogram::histogram(std::vector<double> bounds, std::size_t shards) : bounds_(std::move(bounds)), shards_(shards) {
  for (auto& s : shards_) {
    s.buckets = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
    for (std::size_t i = 0; i <= bounds_.size(); ++i) s.buckets[i].store(0, std::memory_order_relaxed);
  }
}

void histogram::observe(std::size_t shard, double v) noexcept {
  auto& s = shards_[shard];
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  // One writer per shard: load + store is enough (and cheaper than a locked add).
  s.buckets[i].store(s.buckets[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s.sum.store(s.sum.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot out;
  out.cumulative.assign(bounds_.size() + 1, 0);
  for (auto& s : shards_) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) out.cumulative[i] += s.buckets[i].load(std::memory_order_relaxed);
    out.count += s.count.load(std::memory_order_relaxed);
    out.sum += s.sum.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 1; i < out.cumulative.size(); ++i) out.cumulative[i] += out.cumulative[i - 1];
  // Shards are read one after another: keep count consistent with the +Inf bucket.
  out.count = out.cumulative.back();
  return out;
}

// ------------------------------------------------------------ status_counter

void status_counter::add(std::size_t shard, int status) noexcept {
  auto& s = shards_[shard];
  for (std::size_t i = 0; i < k_slots; ++i) {
    int c = s.code[i].load(std::memory_order_relaxed);
    if (c == status) {
      s.count[i].store(s.count[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
    if (c == 0) {
      // Claim the slot: count first, then publish the code (readers skip code 0).
      s.count[i].store(1, std::memory_order_relaxed);
      s.code[i].store(status, std::memory_order_release);
      return;
    }
  }
  s.other.store(s.other.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::vector<std::pair<int, std::uint64_t>> status_counter::read() const {
  std::map<int, std::uint64_t> sum;
  for (auto& s : shards_) {
    for (std::size_t i = 0; i < k_slots; ++i) {
      int c = s.code[i].load(std::memory_order_acquire);
      if (c != 0) sum[c] += s.count[i].load(std::memory_order_relaxed);
    }
    if (auto o = s.other.load(std::memory_order_relaxed)) sum[0] += o;
  }
  return {sum.begin(), sum.end()};
}

std::int64_t sharded_sum::read() const noexcept {
  std::int64_t t = 0;
  for (auto& c : shards_) t += c.v.load(std::memory_order_relaxed);
  return t;
}

// ---------------------------------------------------------- deployment_probe

deployment_probe::deployment_probe(std::string model_group, std::string model, std::string model_id,
                                   std::size_t shards)
    : model_group_(std::move(model_group)),
      model_(std::move(model)),
      model_id_(std::move(model_id)),
      requests_(shards),
      total_(k_latency_buckets, shards),
      upstream_(k_latency_buckets, shards),
      overhead_(k_overhead_buckets, shards),
      ttft_(k_latency_buckets, shards),
      input_tokens_(shards),
      output_tokens_(shards) {}

void deployment_probe::observe(std::size_t shard, int status, double total_s, double upstream_s, double overhead_s,
                               double ttft_s) noexcept {
  requests_.add(shard, status);
  if (total_s >= 0) total_.observe(shard, total_s);
  if (upstream_s >= 0) upstream_.observe(shard, upstream_s);
  if (overhead_s >= 0) overhead_.observe(shard, overhead_s);
  if (ttft_s >= 0) ttft_.observe(shard, ttft_s);
}

void deployment_probe::add_tokens(std::size_t shard, std::int64_t input, std::int64_t output) noexcept {
  if (input > 0) input_tokens_.add(shard, input);
  if (output > 0) output_tokens_.add(shard, output);
}

// -------------------------------------------------------------------- metrics

metrics::metrics(std::size_t shards)
    : shards_(std::max<std::size_t>(1, shards)), unrouted_(shards_), in_flight_(shards_) {}

metrics::~metrics() = default;

deployment_probe& metrics::deployment(const std::string& model_group, const std::string& model,
                                      const std::string& model_id) {
  std::lock_guard lock(mutex_);
  probes_.push_back(std::make_unique<deployment_probe>(model_group, model, model_id, shards_));
  return *probes_.back();
}

void metrics::add_callback_gauge(const std::string& name, const std::string& help, std::function<double()> read) {
  std::lock_guard lock(mutex_);
  gauges_.push_back({name, help, std::move(read)});
}

std::string metrics::scrape() {
  std::vector<MetricFamily> fams;
  auto family = [&](std::string name, std::string help, MetricType type) -> MetricFamily& {
    fams.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return fams.back();
  };
  std::lock_guard lock(mutex_);

  auto& requests = family("litellm_proxy_total_requests_metric_total",
                          "Requests made to the proxy, by model group, deployment and HTTP status", MetricType::Counter);
  auto add_statuses = [&](const status_counter& c, const std::string& g, const std::string& m, const std::string& id) {
    for (auto [status, count] : c.read()) {
      ClientMetric cm;
      cm.label = {label("model", m), label("model_id", id), label("requested_model", g),
                  label("status_code", status ? std::to_string(status) : std::string("other"))};
      cm.counter.value = static_cast<double>(count);
      requests.metric.push_back(std::move(cm));
    }
  };
  add_statuses(unrouted_, "None", "None", "None");
  for (auto& p : probes_) add_statuses(p->requests_, p->model_group_, p->model_, p->model_id_);

  auto add_histograms = [&](const char* name, const char* help, histogram deployment_probe::*which) {
    auto& f = family(name, help, MetricType::Histogram);
    for (auto& p : probes_) {
      auto snap = ((*p).*which).read();
      ClientMetric cm;
      cm.label = {label("model", p->model_), label("model_id", p->model_id_), label("requested_model", p->model_group_)};
      cm.histogram.sample_count = snap.count;
      cm.histogram.sample_sum = snap.sum;
      const auto& bounds = ((*p).*which).bounds();
      for (std::size_t i = 0; i < bounds.size(); ++i) cm.histogram.bucket.push_back({snap.cumulative[i], bounds[i]});
      cm.histogram.bucket.push_back({snap.cumulative.back(), std::numeric_limits<double>::infinity()});
      f.metric.push_back(std::move(cm));
    }
  };
  add_histograms("litellm_request_total_latency_metric", "Total latency of a request through the gateway (seconds)",
                 &deployment_probe::total_);
  add_histograms("litellm_llm_api_latency_metric", "Latency of the upstream LLM API call (seconds)",
                 &deployment_probe::upstream_);
  add_histograms("litellm_overhead_latency_metric", "Latency added by the gateway: total minus upstream (seconds)",
                 &deployment_probe::overhead_);
  add_histograms("litellm_llm_api_time_to_first_token_metric",
                 "Time to the first streamed chunk from the upstream (seconds)", &deployment_probe::ttft_);

  auto add_sums = [&](const char* name, const char* help, sharded_sum deployment_probe::*which) {
    auto& f = family(name, help, MetricType::Counter);
    for (auto& p : probes_) {
      ClientMetric cm;
      cm.label = {label("model", p->model_), label("model_id", p->model_id_), label("requested_model", p->model_group_)};
      cm.counter.value = static_cast<double>(((*p).*which).read());
      f.metric.push_back(std::move(cm));
    }
  };
  add_sums("litellm_input_tokens_metric_total", "Input (prompt) tokens reported by the provider",
           &deployment_probe::input_tokens_);
  add_sums("litellm_output_tokens_metric_total", "Output (completion) tokens reported by the provider",
           &deployment_probe::output_tokens_);

  auto& inflight = family("litellm_in_flight_requests", "Requests being handled right now", MetricType::Gauge);
  ClientMetric cm;
  cm.gauge.value = static_cast<double>(in_flight_.read());
  inflight.metric.push_back(std::move(cm));

  for (auto& g : gauges_) {
    auto& f = family(g.name, g.help, MetricType::Gauge);
    ClientMetric gm;
    gm.gauge.value = g.read();
    f.metric.push_back(std::move(gm));
  }
  return prometheus::TextSerializer().Serialize(fams);
}

}  // namespace gw::telemetry
