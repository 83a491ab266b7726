#pragma once
/// Inside the trace pipeline: exporters (one per destination, run on its own detached
/// worker actor), the record -> trace-store row conversion, and the in-memory store.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gw/trace_pipeline/pipeline.hpp"
#include "gw/store/pg_store.hpp"
#include "gw/tracing/record.hpp"

namespace gw::tracing::trace_detail {

/// What an export call came to.
struct export_result {
  enum kind_t { ok, retry, fail } kind = ok;
  std::int64_t retry_after_ms = -1;  ///< the destination's Retry-After; -1 none
  std::string error;                 ///< for the log; never secrets
};

using record_list = std::vector<const tracing::trace_record*>;

/// One destination. Called on its worker's thread only; may block (bounded by its
/// own timeouts).
class exporter {
 public:
  virtual ~exporter() = default;
  virtual export_result send(const record_list& records) = 0;
};

std::unique_ptr<exporter> make_otlp_exporter(const otlp_exporter_settings& s, std::chrono::milliseconds timeout);
std::unique_ptr<exporter> make_pg_store_exporter(const trace_settings& s);
std::unique_ptr<exporter> make_log_exporter(const trace_settings& s);

/// Replaces the string values of credential-like fields ("api_key", "aws_secret_access_key",
/// "client_secret", "authorization", …) anywhere in `json` with "[redacted]". Works on
/// truncated JSON too (a textual pass, not a parse).
void redact_secrets(std::string& json);

/// Fills what the request path left out because it needs a parse: the request's
/// "user" (end_user) and "metadata" (raw JSON). Off the request path (the shipper).
void enrich(tracing::trace_record& r);

/// The trace-store row for a record (bodies per the settings, secrets redacted).
store::trace_row to_row(const tracing::trace_record& r, const trace_settings& s);

/// The row as the /traces API shows it.
void append_row_json(std::string& out, const store::trace_row& r, bool with_bodies);

/// The trace store without a database: the last `capacity` rows, newest last.
class memory_store {
 public:
  explicit memory_store(std::size_t capacity) : capacity_(capacity) {}
  void add(std::vector<store::trace_row> rows);
  /// Same semantics as pg_store::traces (filters, newest first, keyset cursor).
  store::trace_page query(const store::trace_query& q) const;
  std::optional<store::trace_row> get(const std::string& request_id) const;

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<store::trace_row> rows_;
};

/// The exporter for the memory store (the pipeline's reader shares the store).
std::unique_ptr<exporter> make_memory_store_exporter(std::shared_ptr<memory_store> m, const trace_settings& s);

/// GET /traces and /traces/{id} against a store: status and JSON body.
/// `fetch` runs the store query (may throw store_error, std::invalid_argument).
struct trace_reader {
  virtual ~trace_reader() = default;
  virtual store::trace_page traces(const store::trace_query& q) = 0;
  virtual std::optional<store::trace_row> trace(const std::string& id) = 0;
};
std::pair<int, std::string> serve_traces(trace_reader& r, const std::string& path, const std::string& query);

}  // namespace gw::tracing::trace_detail
