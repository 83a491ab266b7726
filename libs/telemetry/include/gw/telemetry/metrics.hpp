#pragma once
/// Prometheus metrics. Names follow LiteLLM's where LiteLLM has the metric, so
/// dashboards built for it keep working.
///
/// The request path only touches per-io-thread shards (one writer each, relaxed
/// atomics, no locks, no shared cache lines); a scrape sums the shards and renders
/// the text format with prometheus-cpp's serializer. Probes are resolved once per
/// deployment at start. Thread-safe as documented per method.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gw::telemetry {

/// Fixed-bucket histogram, one shard per writer thread.
class histogram {
 public:
  explicit histogram(std::vector<double> bounds, std::size_t shards);
  /// Writer: only the thread owning `shard`.
  void observe(std::size_t shard, double v) noexcept;
  struct snapshot {
    std::vector<std::uint64_t> cumulative;  ///< per bound, then +Inf
    std::uint64_t count = 0;
    double sum = 0;
  };
  snapshot read() const;  ///< any thread
  const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  struct alignas(64) shard_data {
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;  // bounds + 1 (+Inf)
    std::atomic<std::uint64_t> count{0};
    std::atomic<double> sum{0};
  };
  std::vector<double> bounds_;
  std::vector<shard_data> shards_;
};

/// Counts per HTTP status, one shard per writer thread.
class status_counter {
 public:
  explicit status_counter(std::size_t shards) : shards_(shards) {}
  void add(std::size_t shard, int status) noexcept;  ///< writer: the shard's thread
  /// (status, count) summed over shards; status 0 = "other" (more distinct codes than slots).
  std::vector<std::pair<int, std::uint64_t>> read() const;

 private:
  static constexpr std::size_t k_slots = 24;
  struct alignas(64) shard_data {
    std::array<std::atomic<int>, k_slots> code{};
    std::array<std::atomic<std::uint64_t>, k_slots> count{};
    std::atomic<std::uint64_t> other{0};
  };
  std::vector<shard_data> shards_;
};

/// A sum per writer thread (counters and up/down gauges).
class sharded_sum {
 public:
  explicit sharded_sum(std::size_t shards) : shards_(shards) {}
  void add(std::size_t shard, std::int64_t d) noexcept {
    auto& v = shards_[shard].v;
    v.store(v.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  std::int64_t read() const noexcept;

 private:
  struct alignas(64) cell {
    std::atomic<std::int64_t> v{0};
  };
  std::vector<cell> shards_;
};

/// Everything measured per deployment. Writers pass their io thread's shard index.
class deployment_probe {
 public:
  deployment_probe(std::string model_group, std::string model, std::string model_id, std::size_t shards);
  /// One finished request: status and timings in seconds (negative = not measured).
  void observe(std::size_t shard, int status, double total_s, double upstream_s, double overhead_s,
               double ttft_s) noexcept;
  void add_tokens(std::size_t shard, std::int64_t input, std::int64_t output) noexcept;

 private:
  friend class metrics;
  std::string model_group_, model_, model_id_;
  status_counter requests_;
  histogram total_, upstream_, overhead_, ttft_;
  sharded_sum input_tokens_, output_tokens_;
};

class metrics {
 public:
  /// `shards`: the number of writer threads (io threads).
  explicit metrics(std::size_t shards);
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  std::size_t shards() const noexcept { return shards_; }
  /// Resolves the probe of one deployment (at start; the reference stays valid).
  deployment_probe& deployment(const std::string& model_group, const std::string& model, const std::string& model_id);
  /// A request answered before it reached a deployment (auth, validation, 404, 429).
  void count_unrouted(std::size_t shard, int status) noexcept { unrouted_.add(shard, status); }
  void in_flight_add(std::size_t shard, std::int64_t d) noexcept { in_flight_.add(shard, d); }
  /// A gauge read at scrape time (connections, pool sizes...). At start.
  void add_callback_gauge(const std::string& name, const std::string& help, std::function<double()> read);

  /// The text exposition format (content-type text/plain; version=0.0.4). Any thread.
  std::string scrape();

 private:
  std::size_t shards_;
  status_counter unrouted_;
  sharded_sum in_flight_;
  std::mutex mutex_;  // guards probes_ and gauges_ (changed at start only; scrapes read)
  std::vector<std::unique_ptr<deployment_probe>> probes_;
  struct callback_gauge {
    std::string name, help;
    std::function<double()> read;
  };
  std::vector<callback_gauge> gauges_;
};

}  // namespace gw::telemetry
