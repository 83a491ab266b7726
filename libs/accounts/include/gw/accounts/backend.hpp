#pragma once
/// Where keys, users, teams, budgets and spend live: PostgreSQL (shared by every node
/// of a cluster) or process memory (the embedded default: one node, lost at restart).
/// One interface, so the request path, the ledger and the admin API run the same code
/// in both modes. A backend object is used by one actor at a time; the memory
/// backend's objects share one state behind a mutex.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gw/store/pg_store.hpp"

namespace gw::accounts {

using store::all_records;
using store::entity_kind;
using store::entity_ref;
using store::lease_grant;
using store::spend_batch;
using store::spend_log_row;
using store::spend_query;
using store::spend_total;

class backend {
 public:
  virtual ~backend() = default;
  virtual bool persistent() const noexcept = 0;
  virtual void ping() = 0;
  virtual all_records load_all() = 0;
  virtual std::optional<keys::key_record> load_key(const std::string& token) = 0;
  virtual std::optional<keys::user_record> load_user(const std::string& id) = 0;
  virtual std::optional<keys::team_record> load_team(const std::string& id) = 0;
  virtual bool insert_key(const keys::key_record& k) = 0;
  virtual bool update_key(const keys::key_record& k) = 0;
  virtual bool delete_key(const std::string& token) = 0;
  virtual bool rename_key(const std::string& old_token, const std::string& new_token, const std::string& key_name) = 0;
  virtual bool insert_user(const keys::user_record& u) = 0;
  virtual bool update_user(const keys::user_record& u) = 0;
  virtual bool delete_user(const std::string& id) = 0;
  virtual bool insert_team(const keys::team_record& t) = 0;
  virtual bool update_team(const keys::team_record& t) = 0;
  virtual bool delete_team(const std::string& id) = 0;
  virtual lease_grant lease(const entity_ref& e, const std::string& node, keys::money want, std::chrono::seconds ttl) = 0;
  virtual bool apply(const spend_batch& b, const std::string& batch_id, std::chrono::seconds ttl) = 0;
  /// The same, for a batch the caller shares: a backend that keeps rows (the in-memory
  /// one) keeps the batch instead of copying them.
  virtual bool apply_shared(std::shared_ptr<const spend_batch> b, const std::string& batch_id,
                            std::chrono::seconds ttl) {
    return apply(*b, batch_id, ttl);
  }
  virtual void release_leases(const std::string& node) = 0;
  virtual std::vector<spend_log_row> spend_logs(const spend_query& q) = 0;
  virtual keys::money global_spend() = 0;
  virtual std::vector<spend_total> spend_by_key(std::size_t limit) = 0;
  virtual std::vector<spend_total> spend_by_model(std::size_t limit) = 0;
  virtual int maintain_partitions(int days_ahead, int retention_days) = 0;
  /// Tells the other nodes a record changed ("key:<token>", "user:<id>", "team:<id>").
  virtual void notify(const std::string& payload) = 0;
};

/// A PostgreSQL backend: one connection, opened on first use.
std::unique_ptr<backend> make_pg_backend(const std::string& database_url);

/// The shared state of in-memory backends (one per process).
struct memory_db;
std::shared_ptr<memory_db> make_memory_db();
std::unique_ptr<backend> make_memory_backend(std::shared_ptr<memory_db> db);

}  // namespace gw::accounts
