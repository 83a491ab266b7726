/// Daily partitions of llm_spend_logs and llm_traces: creation (moving rows out of the
/// default partition) and retention.

#include "partitions.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "codec.hpp"
#include "gw/core/log.hpp"

namespace gw::store::detail {

namespace {

/// pg_advisory_xact_lock key that serializes partition maintenance ("llm_part"), for
/// every partitioned table.
constexpr std::int64_t partition_lock_key = 0x6c6c6d5f70617274;

std::string default_partition(std::string_view parent) { return std::string(parent) + "_default"; }

}  // namespace

std::string day_partition_name(std::string_view parent, std::chrono::sys_days day) {
  std::chrono::year_month_day ymd{day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "_%04d%02u%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return std::string(parent) + buf;
}

std::optional<std::chrono::sys_days> day_partition_day(std::string_view parent, std::string_view name) {
  const std::size_t prefix = parent.size() + 1;  // "<parent>_"
  if (name.size() != prefix + 8 || name.substr(0, parent.size()) != parent || name[parent.size()] != '_')
    return std::nullopt;
  int v[3] = {0, 0, 0};
  std::size_t widths[3] = {4, 2, 2}, pos = prefix;
  for (int i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < widths[i]; ++j, ++pos) {
      char c = name[pos];
      if (c < '0' || c > '9') return std::nullopt;
      v[i] = v[i] * 10 + (c - '0');
    }
  }
  std::chrono::year_month_day ymd{std::chrono::year{v[0]}, std::chrono::month{static_cast<unsigned>(v[1])},
                                  std::chrono::day{static_cast<unsigned>(v[2])}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd};
}

/// Rows of that day already in the default partition (written before the partition
/// existed) would make CREATE ... PARTITION OF fail, so the partition is built as a
/// plain table, the rows are moved into it, and it is attached.
void create_day_partition(pqxx::work& tx, std::string_view parent, std::chrono::sys_days day) {
  std::string name = day_partition_name(parent, day);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", partition_lock_key);
  if (tx.exec_params("SELECT to_regclass($1) IS NOT NULL", name)[0][0].as<bool>()) return;
  std::string table = tx.quote_name(name);
  std::string parent_table = tx.quote_name(std::string(parent));
  std::string default_table = tx.quote_name(default_partition(parent));
  std::string from = tx.quote(timestamp_text(day));
  std::string to = tx.quote(timestamp_text(day + std::chrono::days(1)));
  // Holds off inserts into the default partition until the move is committed.
  tx.exec("LOCK TABLE " + default_table + " IN ACCESS EXCLUSIVE MODE");
  tx.exec("CREATE TABLE " + table + " (LIKE " + parent_table + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS)");
  auto moved = tx.exec("WITH moved AS (DELETE FROM " + default_table + " WHERE start_time >= " + from +
                       " AND start_time < " + to + " RETURNING *) INSERT INTO " + table + " SELECT * FROM moved")
                   .affected_rows();
  tx.exec("ALTER TABLE " + parent_table + " ATTACH PARTITION " + table + " FOR VALUES FROM (" + from + ") TO (" + to +
          ")");
  if (moved > 0)
    log::info(std::string(parent) + ": moved " + std::to_string(moved) + " rows from the default partition into " +
              name);
}

int maintain_day_partitions(pqxx::connection& c, std::string_view parent, int days_ahead, int retention_days) {
  using namespace std::chrono;
  sys_days today;
  {
    pqxx::read_transaction tx(c);
    today = floor<days>(time_of(tx.exec("SELECT now()")[0][0]));
  }
  for (int d = -1; d <= std::max(days_ahead, 0); ++d) {
    pqxx::work tx(c);
    create_day_partition(tx, parent, today + days(d));
    tx.commit();
  }
  if (retention_days <= 0) return 0;

  sys_days cutoff = today - days(retention_days);
  pqxx::work tx(c);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", partition_lock_key);
  int dropped = 0;
  auto partitions = tx.exec_params(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
      " WHERE i.inhparent = $1::regclass",
      std::string(parent));
  for (const auto& r : partitions) {
    std::string name = text_of(r[0]);
    auto day = day_partition_day(parent, name);
    if (!day || *day >= cutoff) continue;
    tx.exec("DROP TABLE " + tx.quote_name(name));
    ++dropped;
  }
  // Rows that landed in the default partition expire on the same schedule.
  tx.exec_params("DELETE FROM " + tx.quote_name(default_partition(parent)) + " WHERE start_time < $1",
                 timestamp_text(cutoff));
  tx.commit();
  return dropped;
}

}  // namespace gw::store::detail
