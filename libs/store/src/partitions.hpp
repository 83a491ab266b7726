#pragma once
/// Daily partitions shared by the tables partitioned by RANGE (start_time) into UTC
/// days (llm_spend_logs, llm_traces): partitions named <parent>_YYYYMMDD, a default
/// partition <parent>_default for rows outside them.

#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

namespace gw::store::detail {

/// "<parent>_YYYYMMDD"
std::string day_partition_name(std::string_view parent, std::chrono::sys_days day);
/// The day of a partition named <parent>_YYYYMMDD; nullopt for other names.
std::optional<std::chrono::sys_days> day_partition_day(std::string_view parent, std::string_view name);

/// Creates the partition of `parent` for one UTC day unless it exists, moving the rows
/// of that day out of the default partition into it.
void create_day_partition(pqxx::work& tx, std::string_view parent, std::chrono::sys_days day);

/// Creates the daily partitions of `parent` from yesterday to `days_ahead` days ahead
/// (one transaction each) and, with retention_days > 0, drops the partitions older than
/// today - retention_days and deletes the default partition's rows older than that.
/// Returns how many partitions were dropped. `parent` is one of the schema's table
/// names, never a caller's value.
int maintain_day_partitions(pqxx::connection& c, std::string_view parent, int days_ahead, int retention_days);

}  // namespace gw::store::detail
