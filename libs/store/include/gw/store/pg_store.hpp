#pragma once
/// PostgreSQL persistence for keys, users, teams, budgets (leases), spend and traces.
/// Synchronous libpqxx calls: the gateway runs them only on detached actors, never on
/// an io thread. One pg_store = one connection; not thread-safe (one owner at a time).
/// Every method throws store_error on a database failure (connection lost, SQL error);
/// the connection is re-opened on the next call after a failure.
/// Stored precision: money exact to the picodollar (NUMERIC), timestamps to the
/// microsecond (timestamptz), JSON fields (metadata) in jsonb's normalized form.
/// created_at / updated_at left at the epoch are written as the current time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gw/keys/model.hpp"

namespace gw::store {

struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Applies the versioned migrations (libs/store/migrations/NNNN_name.sql, compiled in)
/// under a PostgreSQL advisory lock: one node migrates, concurrent callers wait and
/// then find nothing to do. Returns the schema version after; appends what it did to
/// `log` (one line per migration applied). Throws store_error.
int migrate(const std::string& database_url, std::vector<std::string>& log);
/// The newest schema version this build carries (its last migration's); migrate()
/// returns it on a database this build or an older one set up.
int schema_version() noexcept;

/// The kinds of budgeted entity. A key's per-model budget is key_model with
/// id = token and model set.
enum class entity_kind { key, user, team, key_model };
struct entity_ref {
  entity_kind kind = entity_kind::key;
  std::string id;     ///< token (key, key_model), user_id or team_id
  std::string model;  ///< key_model only
  auto operator<=>(const entity_ref&) const = default;
};

/// What a lease request found and granted.
struct lease_grant {
  keys::money granted = 0;                ///< added to this node's lease (0..want)
  std::optional<keys::money> max_budget;  ///< none: the entity has no cap (granted = want)
  keys::money spend = 0;                  ///< the entity's spend in the current period, after reset
  keys::money leased_by_others = 0;       ///< unexpired leases of other nodes
  keys::money own_lease = 0;              ///< this node's lease after the grant
  std::optional<keys::sys_time> budget_reset_at;
  bool exists = true;  ///< false: no such entity (deleted)
};

/// One spend-log row (one per request).
struct spend_log_row {
  std::string request_id;
  std::string call_type;  ///< "chat", "completion", "embedding"
  std::string api_key;    ///< key token (SHA-256 hex); empty for the master key
  std::string key_alias;
  std::string user_id, team_id;
  std::string model_group, model_id, model;  ///< group asked for, deployment id, provider model
  std::string api_base;
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
  keys::money spend = 0;
  keys::sys_time start_time{}, end_time{};
  std::optional<keys::sys_time> completion_start_time;  ///< first byte of a stream
  std::string status;                                   ///< "success" or "failure"
  int http_status = 0;
  bool cache_hit = false;
  std::string metadata = "{}";  ///< JSON object
  std::string route;             ///< the path the client called (its dialect)
  /// The client's body as sent (JSON), with general_settings.store_prompts_in_spend_logs;
  /// empty otherwise.
  std::string request_body;
};

/// Spend deltas from one node for one flush: applied in one transaction.
struct spend_batch {
  std::string node_id;
  /// Spend per budgeted entity since the last flush. Added to the entity's period spend
  /// and lifetime spend, and subtracted from this node's lease on it (not below 0).
  std::map<entity_ref, keys::money> entity_spend;
  /// Per key, per model group (key_record::model_spend), and per model group totals.
  std::map<std::pair<std::string, std::string>, keys::money> key_model_spend;
  std::vector<spend_log_row> logs;
  /// Unused lease this node gives back (subtracted from its lease, not below 0).
  std::map<entity_ref, keys::money> lease_returns;
};

/// Filters for spend-log queries (all optional).
struct spend_query {
  std::optional<std::string> request_id, api_key, user_id, team_id, model_group;
  std::optional<keys::sys_time> start, end;
  std::size_t limit = 100, offset = 0;
};

/// One aggregate row of /global/spend/keys or /global/spend/models.
struct spend_total {
  std::string name;  ///< key token (with alias in `label`) or model group
  std::string label;
  keys::money spend = 0;
  std::int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0;
};

struct all_records {
  std::vector<keys::key_record> keys;
  std::vector<keys::user_record> users;
  std::vector<keys::team_record> teams;
};

/// One request in the trace store (one row per request).
struct trace_row {
  std::string request_id;          ///< the gateway's call id; with start_time, unique
  std::string trace_id, span_id;   ///< W3C ids as lower-case hex (32 and 16 chars)
  std::string call_type;           ///< "chat", "text_completion", "embeddings"
  std::string route;               ///< path the client called
  std::string api_key;             ///< key token (SHA-256 hex); empty for the master key
  std::string key_alias, user_id, team_id, end_user;
  std::string model_group, model_id, model, provider;  ///< asked-for group; deployment id; provider model; gen_ai provider name
  std::string status;              ///< "success" | "failure"
  int http_status = 0;
  std::string error_type, error_message;
  bool stream = false;
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0, cached_tokens = 0;
  keys::money spend = 0;
  keys::sys_time start_time{}, end_time{};
  std::optional<keys::sys_time> completion_start_time;  ///< first token to the client
  std::string cache;               ///< "", "hit", "miss"
  std::string guardrail;           ///< "", "passed", "masked", "blocked"
  int attempts = 0;
  std::string request_body, response_body;  ///< as captured (maybe truncated, maybe empty)
  bool request_truncated = false, response_truncated = false;
  std::string metadata = "{}";     ///< JSON object
};
/// Filters for trace queries (all optional). Newest first.
struct trace_query {
  std::optional<keys::sys_time> start, end;   ///< bound start_time, inclusive
  std::optional<std::string> api_key, user_id, team_id, model_group, status, trace_id;
  std::size_t limit = 50;                     ///< 1..1000 (callers clamp)
  /// Keyset paging: the next_cursor of the previous page (opaque text); a malformed
  /// cursor throws std::invalid_argument.
  std::optional<std::string> cursor;
  bool with_bodies = false;                   ///< list pages omit bodies unless asked
};
struct trace_page {
  std::vector<trace_row> rows;
  std::optional<std::string> next_cursor;     ///< set when there may be more rows
};

class pg_store {
 public:
  /// Does not connect yet (the first call does).
  explicit pg_store(std::string database_url);
  ~pg_store();
  pg_store(const pg_store&) = delete;
  pg_store& operator=(const pg_store&) = delete;

  bool connected() const noexcept;
  /// Cheap round trip (SELECT 1); throws store_error.
  void ping();

  // ---- records (admin API and the in-memory auth table) ----
  all_records load_all();
  std::optional<keys::key_record> load_key(const std::string& token);
  std::optional<keys::user_record> load_user(const std::string& user_id);
  std::optional<keys::team_record> load_team(const std::string& team_id);
  /// Inserts; false if the token (or a non-empty key_alias) already exists.
  bool insert_key(const keys::key_record& k);
  /// Replaces every editable column (not spend, total_spend, model_spend); false if absent
  /// (or if the new key_alias is another key's). model_max_budget entries that remain
  /// keep their spend.
  bool update_key(const keys::key_record& k);
  bool delete_key(const std::string& token);
  /// Changes a key's token (regenerate), keeping everything else; false if absent (or if
  /// new_token exists). Leases on the old token are dropped.
  bool rename_key(const std::string& old_token, const std::string& new_token, const std::string& key_name);
  bool insert_user(const keys::user_record& u);
  bool update_user(const keys::user_record& u);
  bool delete_user(const std::string& user_id);
  bool insert_team(const keys::team_record& t);
  bool update_team(const keys::team_record& t);
  bool delete_team(const std::string& team_id);

  // ---- budgets ----
  /// In one transaction, with the entity's row locked: resets its period spend to 0
  /// (and moves budget_reset_at forward by whole periods) when budget_reset_at has
  /// passed; computes available = max_budget - spend - all unexpired leases (every
  /// node, this one included); grants min(want, max(available, 0)); adds it to this
  /// node's lease and sets that lease's expiry to now + ttl.
  lease_grant lease(const entity_ref& e, const std::string& node_id, keys::money want, std::chrono::seconds ttl);
  /// Applies a batch (spend, lease decrements, logs, returns) in one transaction and
  /// renews every lease of batch.node_id to now + ttl. Idempotent per batch_id: a batch
  /// whose id was already applied (e.g. re-sent from the spool after a timeout that in
  /// fact committed) is skipped and returns false.
  bool apply(const spend_batch& b, const std::string& batch_id, std::chrono::seconds ttl);
  /// Drops this node's leases (clean shutdown, after its last apply()).
  void release_leases(const std::string& node_id);

  // ---- spend reads ----
  /// Newest first (by start_time); start and end bound start_time, both inclusive.
  std::vector<spend_log_row> spend_logs(const spend_query& q);
  /// Sum of every spend log ever applied (the per-model-group totals).
  keys::money global_spend();
  /// Keys by lifetime spend (total_spend), label = key_alias; requests and tokens count
  /// the spend logs still retained.
  std::vector<spend_total> spend_by_key(std::size_t limit);
  /// Model groups by spend, with requests and tokens, from every spend log applied.
  std::vector<spend_total> spend_by_model(std::size_t limit);

  // ---- maintenance ----
  /// Creates the daily spend-log partitions from yesterday to `days_ahead` days ahead
  /// and drops partitions older than `retention_days` (0 = keep everything). Returns
  /// how many partitions were dropped.
  int maintain_partitions(int days_ahead, int retention_days);

  // ---- trace store ----
  /// Inserts the rows in one transaction (one statement); a row whose
  /// (request_id, start_time) exists is skipped. Text is stored as valid UTF-8 without
  /// NUL bytes (each NUL and each invalid sequence becomes U+FFFD); metadata that is not
  /// a JSON object jsonb accepts is stored as {"invalid_metadata": "<the text>"}.
  /// Returns how many rows were new.
  std::size_t insert_traces(const std::vector<trace_row>& rows);
  /// Newest first (start_time DESC, request_id DESC), keyset-paged by cursor; limit is
  /// clamped to 1..1000. Throws std::invalid_argument for a malformed cursor.
  trace_page traces(const trace_query& q);
  /// The request's row with its bodies; nullopt if absent.
  std::optional<trace_row> trace(const std::string& request_id);
  /// Like maintain_partitions, for llm_traces (its own retention). Returns partitions dropped.
  int maintain_trace_partitions(int days_ahead, int retention_days);

  // ---- change notifications ----
  /// NOTIFY llm_gateway_changes, payload "key:<token>", "user:<id>", "team:<id>".
  void notify(const std::string& payload);
  /// LISTEN on llm_gateway_changes (this connection becomes the listener).
  void listen();
  /// The socket to wait on for notifications (after listen()); -1 if not connected.
  int socket() const noexcept;
  /// Payloads received since the last call (non-blocking).
  std::vector<std::string> take_notifications();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::store
