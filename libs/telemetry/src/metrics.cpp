#include "gw/telemetry/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace gw::telemetry {
namespace {

// LiteLLM's latency buckets (seconds).
const prometheus::Histogram::BucketBoundaries k_latency_buckets{
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0,
    6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0};
// The gateway's own overhead is measured in microseconds.
const prometheus::Histogram::BucketBoundaries k_overhead_buckets{
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};

}  // namespace

metrics::metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("litellm_proxy_total_requests_metric_total")
                   .Help("Requests made to the proxy, by model group, deployment and HTTP status")
                   .Register(*registry_);
  total_latency_ = &prometheus::BuildHistogram()
                        .Name("litellm_request_total_latency_metric")
                        .Help("Total latency of a request through the gateway (seconds)")
                        .Register(*registry_);
  upstream_latency_ = &prometheus::BuildHistogram()
                           .Name("litellm_llm_api_latency_metric")
                           .Help("Latency of the upstream LLM API call (seconds)")
                           .Register(*registry_);
  overhead_latency_ = &prometheus::BuildHistogram()
                           .Name("litellm_overhead_latency_metric")
                           .Help("Latency added by the gateway: total minus upstream (seconds)")
                           .Register(*registry_);
  ttft_ = &prometheus::BuildHistogram()
               .Name("litellm_llm_api_time_to_first_token_metric")
               .Help("Time to the first streamed chunk from the upstream (seconds)")
               .Register(*registry_);
  input_tokens_ = &prometheus::BuildCounter()
                       .Name("litellm_input_tokens_metric_total")
                       .Help("Input (prompt) tokens reported by the provider")
                       .Register(*registry_);
  output_tokens_ = &prometheus::BuildCounter()
                        .Name("litellm_output_tokens_metric_total")
                        .Help("Output (completion) tokens reported by the provider")
                        .Register(*registry_);
  in_flight_ = &prometheus::BuildGauge()
                    .Name("litellm_in_flight_requests")
                    .Help("Requests being handled right now")
                    .Register(*registry_)
                    .Add({});
  unrouted_.owner_ = this;
  unrouted_.model_group_ = "None";
  unrouted_.model_ = "None";
  unrouted_.model_id_ = "None";
}

metrics::~metrics() = default;

deployment_probe& metrics::deployment(const std::string& model_group, const std::string& model,
                                      const std::string& model_id) {
  auto p = std::make_unique<deployment_probe>();
  p->owner_ = this;
  p->model_group_ = model_group;
  p->model_ = model;
  p->model_id_ = model_id;
  prometheus::Labels labels{{"requested_model", model_group}, {"model", model}, {"model_id", model_id}};
  p->total_ = &total_latency_->Add(labels, k_latency_buckets);
  p->upstream_ = &upstream_latency_->Add(labels, k_latency_buckets);
  p->overhead_ = &overhead_latency_->Add(labels, k_overhead_buckets);
  p->ttft_ = &ttft_->Add(labels, k_latency_buckets);
  p->input_tokens_ = &input_tokens_->Add(labels);
  p->output_tokens_ = &output_tokens_->Add(labels);
  std::lock_guard lock(mutex_);
  probes_.push_back(std::move(p));
  return *probes_.back();
}

void metrics::count_unrouted(int status) { unrouted_.requests_for(status).Increment(); }

void metrics::in_flight_add(double d) { in_flight_->Increment(d); }

void metrics::add_callback_gauge(const std::string& name, const std::string& help, std::function<double()> read) {
  auto& g = prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  std::lock_guard lock(mutex_);
  callbacks_.push_back({&g, std::move(read)});
}

std::string metrics::scrape() {
  {
    std::lock_guard lock(mutex_);
    for (auto& c : callbacks_) c.gauge->Set(c.read());
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

prometheus::Counter& deployment_probe::requests_for(int status) {
  std::size_t idx = (status >= 100 && status < 600) ? static_cast<std::size_t>(status) : 0;
  if (auto* c = by_status_[idx].load(std::memory_order_acquire)) return *c;
  auto& c = owner_->requests_->Add({{"requested_model", model_group_},
                                    {"model", model_},
                                    {"model_id", model_id_},
                                    {"status_code", idx ? std::to_string(status) : std::string("other")}});
  // Add() returns the same child for the same labels, so racing threads agree.
  by_status_[idx].store(&c, std::memory_order_release);
  return c;
}

void deployment_probe::observe(int status, double total_s, double upstream_s, double overhead_s, double ttft_s) {
  requests_for(status).Increment();
  if (total_s >= 0 && total_) total_->Observe(total_s);
  if (upstream_s >= 0 && upstream_) upstream_->Observe(upstream_s);
  if (overhead_s >= 0 && overhead_) overhead_->Observe(overhead_s);
  if (ttft_s >= 0 && ttft_) ttft_->Observe(ttft_s);
}

void deployment_probe::add_tokens(std::int64_t input, std::int64_t output) {
  if (input > 0 && input_tokens_) input_tokens_->Increment(static_cast<double>(input));
  if (output > 0 && output_tokens_) output_tokens_->Increment(static_cast<double>(output));
}

}  // namespace gw::telemetry
