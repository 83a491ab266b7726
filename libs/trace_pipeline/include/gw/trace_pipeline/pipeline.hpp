#pragma once
/// The trace pipeline: what the gateway does with a finished request's trace record.
///
/// io thread i keeps the records of its finished requests in its own buffer (no lock)
/// and, every sweep tick, sends them as one batch to the trace shipper (a CAF actor).
/// The shipper keeps one bounded queue per exporter and hands each exporter's detached
/// worker actor one batch at a time; a worker exports synchronously (OTLP/HTTP POST,
/// a PostgreSQL transaction, log lines) and says whether the batch went, must be
/// retried (429, 502-504, transport errors, database errors: backoff with jitter,
/// retry-after honoured, up to max_attempts) or failed for good (dropped). A full
/// queue drops its oldest records. Every drop is counted per exporter. Nothing here
/// ever makes a request wait.

#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gw/config/config.hpp"
#include "gw/http/padded_body.hpp"
#include "gw/tracing/otlp.hpp"
#include "gw/tracing/record.hpp"

namespace gw::tracing {

/// OpenTelemetry's sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG): which requests
/// are sampled, decided once per request from its trace id and the client's traceparent,
/// so every node agrees. The decision is the sampled flag sent upstream in traceparent
/// and decides what the OTLP exporter sends. Default: parentbased_always_on.
struct trace_sampler {
  enum class kind { always_on, always_off, ratio };
  kind root = kind::always_on;  ///< for a request without a traceparent
  bool parent_based = true;     ///< with a traceparent: the client's sampled flag decides
  double ratio = 1.0;           ///< kind::ratio: the share of trace ids sampled
  bool sample(const tracing::trace_id& id, bool has_parent, bool parent_sampled) const noexcept;
};

/// Trace-id based: the same id gives the same answer everywhere (the lower 8 bytes,
/// big-endian, against ratio * 2^63, as OpenTelemetry's SDKs do).
bool trace_id_ratio_sampled(const tracing::trace_id& id, double ratio) noexcept;

/// One OTLP/HTTP destination (an OpenTelemetry collector, or Langfuse's OTLP endpoint).
struct otlp_exporter_settings {
  std::string name;  ///< "otlp" or "langfuse" (the metrics' exporter label)
  std::string url;   ///< the full traces URL
  std::vector<std::pair<std::string, std::string>> headers;  ///< auth etc.; never logged
  tracing::otlp_options otlp;
  bool successes = true, failures = true;  ///< which records it gets (success_callback / failure_callback)
  /// OTLP: only sampled requests (the record's sampled flag). Langfuse ignores the
  /// OpenTelemetry sampler and keeps its own rate (LANGFUSE_SAMPLE_RATE, by trace id).
  bool sampled_only = true;
  double sample_rate = 1.0;
  bool takes(const tracing::trace_record& r) const noexcept {
    if (sampled_only && !(r.flags & 1)) return false;
    return sample_rate >= 1.0 || trace_id_ratio_sampled(r.trace, sample_rate);
  }
};

enum class body_mode { off, truncated, full };

struct trace_settings {
  std::vector<otlp_exporter_settings> otlp;
  /// The trace store: PostgreSQL when database_url is set, else the last
  /// memory_records requests in memory (GET /traces works either way). Off by
  /// default without a database.
  bool store = false;
  std::string database_url;
  body_mode store_bodies = body_mode::truncated;
  std::size_t store_body_bytes = 16 * 1024;  ///< per body, in truncated mode
  int store_retention_days = 30;             ///< 0: keep
  std::size_t memory_records = 1000;
  /// One JSON line per request on stdout; with content, the request and response too.
  bool request_log = false;
  bool request_log_content = false;

  std::size_t batch_size = 512;       ///< records per export call at most
  std::size_t queue_records = 20000;  ///< per exporter; beyond, the oldest are dropped
  std::chrono::milliseconds flush_interval{1000};
  std::chrono::milliseconds export_timeout{10000};
  std::chrono::milliseconds backoff_base{500}, backoff_max{30000};
  int max_attempts = 5;

  /// What the request path captures for the exporters (bounded).
  bool capture_request = false, capture_response = false;
  /// No consumer shows content but OTLP spans show parameters, ids and finish reasons:
  /// the request path reads them into the record (trace_record::request_facts,
  /// response_facts; a stream keeps its last events) instead of copying bodies.
  bool facts = false;
  std::size_t capture_bytes = 0;
  /// Bodies are wanted for every record (the store keeps them, the log shows them);
  /// otherwise only for a record an OTLP exporter takes.
  bool bodies_for_all = false;
  trace_sampler sampler;

  /// Starts a request's record from what the client sent: its W3C traceparent continued
  /// (a new trace without a valid one) with its tracestate, a new server span, the
  /// sampler's decision as the sampled flag, the route (the target without its query),
  /// and a bounded copy of the request body when a consumer keeps this record's bodies.
  /// Returns whether it does (then the response is worth capturing too).
  bool begin(tracing::trace_record& r, const http::request& req) const;

  /// Sets the record's sampled flag from the sampler (`has_parent`: the client sent a
  /// valid traceparent, whose flags are in r.flags) and says whether its bodies must be
  /// captured.
  bool decide(tracing::trace_record& r, bool has_parent) const noexcept {
    bool sampled = sampler.sample(r.trace, has_parent, (r.flags & 1) != 0);
    r.flags = static_cast<std::uint8_t>((r.flags & ~1u) | (sampled ? 1u : 0u));
    if (bodies_for_all) return true;
    for (const auto& e : otlp)
      if (e.takes(r)) return true;
    return false;
  }

  bool any() const noexcept { return !otlp.empty() || store || request_log; }
};

using env_lookup = std::function<const char*(const char*)>;

/// From the config (litellm_settings callbacks, gateway_settings.trace_*) and the
/// environment (OTEL_*, LANGFUSE_*). Problems (Langfuse without keys, an unknown
/// protocol) become warnings, never a refusal to start.
trace_settings make_trace_settings(const config::gateway_config& cfg, const std::string& database_url,
                                   const env_lookup& env, std::vector<std::string>& warnings);

/// Per-exporter counters (metrics).
struct exporter_counters {
  std::string name;
  std::atomic<std::uint64_t> exported{0}, dropped{0};
  std::atomic<std::uint64_t> batches_ok{0}, batches_retried{0}, batches_failed{0};
  std::atomic<std::int64_t> queued{0};
};

class trace_pipeline {
 public:
  trace_pipeline(caf::actor_system& sys, trace_settings s, std::size_t io_threads);
  ~trace_pipeline();
  trace_pipeline(const trace_pipeline&) = delete;
  trace_pipeline& operator=(const trace_pipeline&) = delete;

  const trace_settings& settings() const noexcept { return settings_; }

  /// io thread `io` only: a finished request.
  void add(std::size_t io, tracing::trace_record&& r);
  /// io thread `io` only (its tick): sends the buffered records to the shipper.
  void flush(std::size_t io);

  /// GET /traces (filters, paging) and GET /traces/{id} (master key). `cb` gets the
  /// status and the JSON body, on any thread.
  void query(std::string path, std::string query, std::function<void(int, std::string)> cb);

  /// Prometheus text for the exporter counters.
  std::string metrics_text() const;

  /// Sends what the io threads still hold (call on each io thread first via flush),
  /// then gives the exporters until `timeout` to export their queues (no retries),
  /// and stops the actors.
  void shutdown(std::chrono::milliseconds timeout);

  struct impl;

 private:
  trace_settings settings_;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::tracing
