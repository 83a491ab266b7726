/// pg_store: keys, users and teams (llm_keys, llm_key_model_budgets, llm_users,
/// llm_teams). Every field of the records round-trips; metadata comes back in jsonb's
/// normalized form, timestamps with microsecond precision.

#include <chrono>
#include <map>

#include "codec.hpp"
#include "gw/store/pg_store.hpp"
#include "store_impl.hpp"

namespace gw::store {

using namespace detail;

namespace {

/// created_at / updated_at left at the epoch by the caller mean "now".
keys::sys_time or_now(keys::sys_time t) { return t == keys::sys_time{} ? std::chrono::system_clock::now() : t; }

// ---- columns shared by keys, users and teams ----

/// The budget's editable columns (not spend: only apply() and resets change it).
void write_budget(row_writer& w, const keys::budget& b) {
  w.add("max_budget").numeric(b.max_budget);
  w.add("soft_budget").numeric(b.soft_budget);
  w.add("budget_duration").text_or_null(b.budget_duration);
  w.add("budget_reset_at").timestamp(b.budget_reset_at);
}

void write_limits(row_writer& w, const keys::limits& l) {
  w.add("tpm_limit").bigint(l.tpm_limit);
  w.add("rpm_limit").bigint(l.rpm_limit);
  w.add("max_parallel_requests").bigint(l.max_parallel_requests);
  w.add("model_rpm_limit").text(int_map_json(l.model_rpm_limit));
  w.add("model_tpm_limit").text(int_map_json(l.model_tpm_limit));
}

keys::budget read_budget(const pqxx::row& r) {
  keys::budget b;
  b.max_budget = opt_money_of(r["max_budget"]);
  b.soft_budget = opt_money_of(r["soft_budget"]);
  b.budget_duration = text_of(r["budget_duration"]);
  b.budget_reset_at = opt_time_of(r["budget_reset_at"]);
  b.spend = money_of(r["spend"]);
  return b;
}

keys::limits read_limits(const pqxx::row& r) {
  keys::limits l;
  l.tpm_limit = opt_int_of(r["tpm_limit"]);
  l.rpm_limit = opt_int_of(r["rpm_limit"]);
  l.max_parallel_requests = opt_int_of(r["max_parallel_requests"]);
  l.model_rpm_limit = parse_int_map(text_of(r["model_rpm_limit"]));
  l.model_tpm_limit = parse_int_map(text_of(r["model_tpm_limit"]));
  return l;
}

// ---- keys ----

/// token first (the key of update_sql), then the columns update_key replaces.
row_writer key_editable_columns(const keys::key_record& k) {
  row_writer w;
  w.add("token").text(k.token);
  w.add("key_name").text(k.key_name);
  w.add("key_alias").text_or_null(k.key_alias);
  w.add("models").text_array(k.models);
  w.add("user_id").text_or_null(k.user_id);
  w.add("team_id").text_or_null(k.team_id);
  write_budget(w, k.budget);
  write_limits(w, k.limits);
  w.add("expires").timestamp(k.expires);
  w.add("metadata").text(k.metadata);
  w.add("blocked").boolean(k.blocked);
  w.add("updated_at").timestamp(or_now(k.updated_at));
  return w;
}

keys::key_record read_key(const pqxx::row& r) {
  keys::key_record k;
  k.token = text_of(r["token"]);
  k.key_name = text_of(r["key_name"]);
  k.key_alias = text_of(r["key_alias"]);
  k.models = text_array_of(r["models"]);
  k.user_id = text_of(r["user_id"]);
  k.team_id = text_of(r["team_id"]);
  k.budget = read_budget(r);
  k.limits = read_limits(r);
  k.model_spend = parse_money_map(text_of(r["model_spend"]));
  k.total_spend = money_of(r["total_spend"]);
  k.expires = opt_time_of(r["expires"]);
  k.metadata = text_of(r["metadata"]);
  k.blocked = bool_of(r["blocked"]);
  k.created_at = time_of(r["created_at"]);
  k.updated_at = time_of(r["updated_at"]);
  k.created_by = text_of(r["created_by"]);
  return k;
}

keys::model_budget read_model_budget(const pqxx::row& r) {
  keys::model_budget b;
  b.budget_limit = money_of(r["budget_limit"]);
  b.time_period = text_of(r["time_period"]);
  b.reset_at = opt_time_of(r["reset_at"]);
  b.spend = money_of(r["spend"]);
  return b;
}

/// Writes a key's model_max_budget: with `replace`, models no longer listed are
/// removed and the remaining ones keep their spend (update_key does not touch spend).
void write_model_budgets(pqxx::work& tx, const keys::key_record& k, bool replace) {
  std::vector<std::string> models, limits, periods;
  std::vector<std::optional<std::string>> resets;
  std::vector<std::string> spends;
  for (const auto& [model, b] : k.model_max_budget) {
    models.push_back(model);
    limits.push_back(keys::to_decimal(b.budget_limit));
    periods.push_back(b.time_period);
    resets.push_back(b.reset_at ? std::optional(timestamp_text(*b.reset_at)) : std::nullopt);
    spends.push_back(keys::to_decimal(b.spend));
  }
  if (replace) {
    tx.exec_params("DELETE FROM llm_key_model_budgets WHERE token = $1 AND NOT (model = ANY($2::text[]))", k.token,
                   array_literal(models));
  }
  if (models.empty()) return;
  tx.exec_params(
      "INSERT INTO llm_key_model_budgets (token, model, budget_limit, time_period, reset_at, spend)"
      " SELECT $1, m, l, nullif(p, ''), r, s"
      " FROM unnest($2::text[], $3::numeric[], $4::text[], $5::timestamptz[], $6::numeric[]) AS t(m, l, p, r, s)"
      " ON CONFLICT (token, model) DO UPDATE SET budget_limit = excluded.budget_limit,"
      " time_period = excluded.time_period, reset_at = excluded.reset_at",
      k.token, array_literal(models), array_literal(limits), array_literal(periods), array_literal(resets),
      array_literal(spends));
}

/// Loads the model budgets of the keys in `by_token` (all keys when `token` is empty).
void attach_model_budgets(pqxx::transaction_base& tx, const std::string& token,
                          std::map<std::string, keys::key_record*>& by_token) {
  pqxx::result rows = token.empty() ? tx.exec("SELECT * FROM llm_key_model_budgets")
                                    : tx.exec_params("SELECT * FROM llm_key_model_budgets WHERE token = $1", token);
  for (const auto& r : rows) {
    auto it = by_token.find(text_of(r["token"]));
    if (it != by_token.end()) it->second->model_max_budget[text_of(r["model"])] = read_model_budget(r);
  }
}

/// The leases of a deleted or renamed entity are nobody's any more.
void drop_leases(pqxx::work& tx, std::initializer_list<const char*> kinds, const std::string& id) {
  for (const char* kind : kinds)
    tx.exec_params("DELETE FROM llm_budget_leases WHERE entity_kind = $1 AND entity_id = $2", kind, id);
}

// ---- users ----

row_writer user_editable_columns(const keys::user_record& u) {
  row_writer w;
  w.add("user_id").text(u.user_id);
  w.add("user_alias").text(u.user_alias);
  w.add("user_email").text(u.user_email);
  w.add("user_role").text(u.user_role);
  w.add("teams").text_array(u.teams);
  w.add("models").text_array(u.models);
  write_budget(w, u.budget);
  write_limits(w, u.limits);
  w.add("metadata").text(u.metadata);
  w.add("updated_at").timestamp(or_now(u.updated_at));
  return w;
}

keys::user_record read_user(const pqxx::row& r) {
  keys::user_record u;
  u.user_id = text_of(r["user_id"]);
  u.user_alias = text_of(r["user_alias"]);
  u.user_email = text_of(r["user_email"]);
  u.user_role = text_of(r["user_role"]);
  u.teams = text_array_of(r["teams"]);
  u.models = text_array_of(r["models"]);
  u.budget = read_budget(r);
  u.limits = read_limits(r);
  u.total_spend = money_of(r["total_spend"]);
  u.metadata = text_of(r["metadata"]);
  u.created_at = time_of(r["created_at"]);
  u.updated_at = time_of(r["updated_at"]);
  return u;
}

// ---- teams ----

row_writer team_editable_columns(const keys::team_record& t) {
  row_writer w;
  w.add("team_id").text(t.team_id);
  w.add("team_alias").text(t.team_alias);
  w.add("members_with_roles").text(members_json(t.members_with_roles));
  w.add("models").text_array(t.models);
  write_budget(w, t.budget);
  write_limits(w, t.limits);
  w.add("metadata").text(t.metadata);
  w.add("blocked").boolean(t.blocked);
  w.add("updated_at").timestamp(or_now(t.updated_at));
  return w;
}

keys::team_record read_team(const pqxx::row& r) {
  keys::team_record t;
  t.team_id = text_of(r["team_id"]);
  t.team_alias = text_of(r["team_alias"]);
  t.members_with_roles = parse_members(text_of(r["members_with_roles"]));
  t.models = text_array_of(r["models"]);
  t.budget = read_budget(r);
  t.limits = read_limits(r);
  t.total_spend = money_of(r["total_spend"]);
  t.metadata = text_of(r["metadata"]);
  t.blocked = bool_of(r["blocked"]);
  t.created_at = time_of(r["created_at"]);
  t.updated_at = time_of(r["updated_at"]);
  return t;
}

/// Runs an INSERT ... ON CONFLICT DO NOTHING; true if the row went in.
bool insert_row(pqxx::work& tx, std::string_view table, const row_writer& w) {
  return tx.exec_params(w.insert_sql(table) + " ON CONFLICT DO NOTHING", w.values().dynamic()).affected_rows() == 1;
}

}  // namespace

// ---- loads ----

all_records pg_store::load_all() {
  return impl_->run("load_all", [](pqxx::connection& c) {
    // One snapshot for the three tables.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    all_records out;
    for (const auto& r : tx.exec("SELECT * FROM llm_keys ORDER BY token")) out.keys.push_back(read_key(r));
    std::map<std::string, keys::key_record*> by_token;
    for (auto& k : out.keys) by_token[k.token] = &k;
    attach_model_budgets(tx, "", by_token);
    for (const auto& r : tx.exec("SELECT * FROM llm_users ORDER BY user_id")) out.users.push_back(read_user(r));
    for (const auto& r : tx.exec("SELECT * FROM llm_teams ORDER BY team_id")) out.teams.push_back(read_team(r));
    return out;
  });
}

std::optional<keys::key_record> pg_store::load_key(const std::string& token) {
  return impl_->run("load_key", [&](pqxx::connection& c) -> std::optional<keys::key_record> {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    auto rows = tx.exec_params("SELECT * FROM llm_keys WHERE token = $1", token);
    if (rows.empty()) return std::nullopt;
    auto k = read_key(rows[0]);
    std::map<std::string, keys::key_record*> by_token{{k.token, &k}};
    attach_model_budgets(tx, token, by_token);
    return k;
  });
}

std::optional<keys::user_record> pg_store::load_user(const std::string& user_id) {
  return impl_->run("load_user", [&](pqxx::connection& c) -> std::optional<keys::user_record> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params("SELECT * FROM llm_users WHERE user_id = $1", user_id);
    if (rows.empty()) return std::nullopt;
    return read_user(rows[0]);
  });
}

std::optional<keys::team_record> pg_store::load_team(const std::string& team_id) {
  return impl_->run("load_team", [&](pqxx::connection& c) -> std::optional<keys::team_record> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params("SELECT * FROM llm_teams WHERE team_id = $1", team_id);
    if (rows.empty()) return std::nullopt;
    return read_team(rows[0]);
  });
}

// ---- keys ----

bool pg_store::insert_key(const keys::key_record& k) {
  return impl_->run("insert_key", [&](pqxx::connection& c) {
    row_writer w = key_editable_columns(k);
    w.add("spend").numeric(k.budget.spend);
    w.add("total_spend").numeric(k.total_spend);
    w.add("model_spend").text(money_map_json(k.model_spend));
    w.add("created_at").timestamp(or_now(k.created_at));
    w.add("created_by").text(k.created_by);
    pqxx::work tx(c);
    // ON CONFLICT without a target covers both the token and the alias.
    if (!insert_row(tx, "llm_keys", w)) return false;
    write_model_budgets(tx, k, false);
    tx.commit();
    return true;
  });
}

bool pg_store::update_key(const keys::key_record& k) {
  return impl_->run("update_key", [&](pqxx::connection& c) {
    row_writer w = key_editable_columns(k);
    pqxx::work tx(c);
    try {
      if (tx.exec_params(w.update_sql("llm_keys"), w.values().dynamic()).affected_rows() == 0) return false;
    } catch (const pqxx::unique_violation&) {
      return false;  // the new alias belongs to another key
    }
    write_model_budgets(tx, k, true);
    tx.commit();
    return true;
  });
}

bool pg_store::delete_key(const std::string& token) {
  return impl_->run("delete_key", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // llm_key_model_budgets rows go with the key (ON DELETE CASCADE).
    if (tx.exec_params("DELETE FROM llm_keys WHERE token = $1", token).affected_rows() == 0) return false;
    drop_leases(tx, {"key", "key_model"}, token);
    tx.commit();
    return true;
  });
}

bool pg_store::rename_key(const std::string& old_token, const std::string& new_token, const std::string& key_name) {
  return impl_->run("rename_key", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    try {
      // llm_key_model_budgets rows follow (ON UPDATE CASCADE).
      auto r = tx.exec_params("UPDATE llm_keys SET token = $2, key_name = $3, updated_at = now() WHERE token = $1",
                              old_token, new_token, key_name);
      if (r.affected_rows() == 0) return false;
    } catch (const pqxx::unique_violation&) {
      return false;  // new_token exists already
    }
    drop_leases(tx, {"key", "key_model"}, old_token);
    tx.commit();
    return true;
  });
}

// ---- users ----

bool pg_store::insert_user(const keys::user_record& u) {
  return impl_->run("insert_user", [&](pqxx::connection& c) {
    row_writer w = user_editable_columns(u);
    w.add("spend").numeric(u.budget.spend);
    w.add("total_spend").numeric(u.total_spend);
    w.add("created_at").timestamp(or_now(u.created_at));
    pqxx::work tx(c);
    if (!insert_row(tx, "llm_users", w)) return false;
    tx.commit();
    return true;
  });
}

bool pg_store::update_user(const keys::user_record& u) {
  return impl_->run("update_user", [&](pqxx::connection& c) {
    row_writer w = user_editable_columns(u);
    pqxx::work tx(c);
    if (tx.exec_params(w.update_sql("llm_users"), w.values().dynamic()).affected_rows() == 0) return false;
    tx.commit();
    return true;
  });
}

bool pg_store::delete_user(const std::string& user_id) {
  return impl_->run("delete_user", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (tx.exec_params("DELETE FROM llm_users WHERE user_id = $1", user_id).affected_rows() == 0) return false;
    drop_leases(tx, {"user"}, user_id);
    tx.commit();
    return true;
  });
}

// ---- teams ----

bool pg_store::insert_team(const keys::team_record& t) {
  return impl_->run("insert_team", [&](pqxx::connection& c) {
    row_writer w = team_editable_columns(t);
    w.add("spend").numeric(t.budget.spend);
    w.add("total_spend").numeric(t.total_spend);
    w.add("created_at").timestamp(or_now(t.created_at));
    pqxx::work tx(c);
    if (!insert_row(tx, "llm_teams", w)) return false;
    tx.commit();
    return true;
  });
}

bool pg_store::update_team(const keys::team_record& t) {
  return impl_->run("update_team", [&](pqxx::connection& c) {
    row_writer w = team_editable_columns(t);
    pqxx::work tx(c);
    if (tx.exec_params(w.update_sql("llm_teams"), w.values().dynamic()).affected_rows() == 0) return false;
    tx.commit();
    return true;
  });
}

bool pg_store::delete_team(const std::string& team_id) {
  return impl_->run("delete_team", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (tx.exec_params("DELETE FROM llm_teams WHERE team_id = $1", team_id).affected_rows() == 0) return false;
    drop_leases(tx, {"team"}, team_id);
    tx.commit();
    return true;
  });
}

}  // namespace gw::store
