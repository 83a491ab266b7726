#pragma once
/// Spend-log writes shared by apply() (budgets.cpp) and the reads in spend.cpp.

#include <pqxx/pqxx>
#include <vector>

#include "gw/store/pg_store.hpp"

namespace gw::store::detail {

/// Inserts the rows in one statement (rows already present are skipped) and adds the
/// inserted ones to llm_model_spend's totals per model group.
void insert_spend_logs(pqxx::work& tx, const std::vector<spend_log_row>& logs);

}  // namespace gw::store::detail
