#include "migrations.hpp"

#include <cstdint>
#include <cstdio>
#include <pqxx/pqxx>
#include <set>

#include "gw/store/pg_store.hpp"

namespace gw::store {

namespace detail {

namespace {
constexpr migration all_migrations[] = {
#include "migrations.inc"
};
}  // namespace

std::span<const migration> migrations() noexcept { return all_migrations; }

}  // namespace detail

namespace {

/// pg_advisory_lock key that serializes migrations across nodes ("llm_migr").
constexpr std::int64_t migration_lock_key = 0x6c6c6d5f6d696772;

std::string migration_label(const detail::migration& m) {
  char version[16];
  std::snprintf(version, sizeof version, "%04d", m.version);
  return std::string(version) + "_" + std::string(m.name);
}

/// Holds the session-level advisory lock; unlocks on every way out (if the connection
/// is gone the server has released it already).
class migration_lock {
 public:
  explicit migration_lock(pqxx::connection& c) : c_(c) {
    pqxx::nontransaction tx(c_);
    tx.exec_params("SELECT pg_advisory_lock($1)", migration_lock_key);
  }
  ~migration_lock() {
    try {
      pqxx::nontransaction tx(c_);
      tx.exec_params("SELECT pg_advisory_unlock($1)", migration_lock_key);
    } catch (const std::exception&) {
      // The connection is closing with the lock: the server releases it.
    }
  }
  migration_lock(const migration_lock&) = delete;
  migration_lock& operator=(const migration_lock&) = delete;

 private:
  pqxx::connection& c_;
};

}  // namespace

int schema_version() noexcept { return detail::migrations().empty() ? 0 : detail::migrations().back().version; }

int migrate(const std::string& database_url, std::vector<std::string>& log) {
  try {
    pqxx::connection c(database_url);
    migration_lock lock(c);
    {
      pqxx::work tx(c);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    std::set<int> applied;
    {
      pqxx::read_transaction tx(c);
      for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) applied.insert(row[0].as<int>());
    }
    for (const auto& m : detail::migrations()) {
      if (applied.count(m.version)) continue;
      try {
        pqxx::work tx(c);
        tx.exec(std::string(m.sql));
        tx.exec_params("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())", m.version,
                       std::string(m.name));
        tx.commit();
      } catch (const std::exception& e) {
        throw store_error("migrate: migration " + migration_label(m) + " failed: " + e.what());
      }
      log.push_back("applied migration " + migration_label(m));
    }
    pqxx::read_transaction tx(c);
    return tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
  } catch (const store_error&) {
    throw;
  } catch (const std::exception& e) {
    throw store_error(std::string("migrate: ") + e.what());
  }
}

}  // namespace gw::store
