/// pg_store: budget leases and spend batches (lease, apply, release_leases).
///
/// Lock order, so that concurrent apply() and lease() calls never deadlock: llm_keys
/// rows by token, then llm_users, llm_teams, llm_key_model_budgets (each by id), then
/// llm_model_spend by model group, then the node's own lease rows (sorted). lease()
/// locks one entity row, then its own lease row. A node only writes its own leases.
/// Deadlocks that remain possible (e.g. with hand-written SQL) are retried by run().

#include <algorithm>
#include <limits>
#include <set>

#include "codec.hpp"
#include "gw/store/pg_store.hpp"
#include "spend_logs.hpp"
#include "store_impl.hpp"

namespace gw::store {

using namespace detail;

namespace {

const char* kind_name(entity_kind k) {
  switch (k) {
    case entity_kind::key:
      return "key";
    case entity_kind::user:
      return "user";
    case entity_kind::team:
      return "team";
    case entity_kind::key_model:
      return "key_model";
  }
  return "key";
}

/// The lease table's model column: set for key_model only.
std::string lease_model(const entity_ref& e) { return e.kind == entity_kind::key_model ? e.model : std::string(); }

/// An entity's current budget period, read with its row locked (FOR UPDATE).
struct budget_period {
  std::optional<keys::money> max_budget;
  keys::money spend = 0;  // after the reset (0 when a period ended)
  std::string duration;
  std::optional<keys::sys_time> reset_at;
  keys::sys_time now{};  // the transaction's now()
  bool reset = false;    // a period ended: spend restarts from 0
  bool changed = false;  // reset_at moved: must be written back
};

/// Where each kind keeps its budget: the columns lock_period reads and settle_period
/// writes, and the WHERE clause ($1 = id, $2 = model for key_model).
struct budget_table {
  const char* table;
  const char* max_budget;
  const char* duration;
  const char* reset_at;
  const char* where;
  bool has_total_spend;
};

budget_table table_of(entity_kind k) {
  switch (k) {
    case entity_kind::key:
      return {"llm_keys", "max_budget", "budget_duration", "budget_reset_at", "token = $1", true};
    case entity_kind::user:
      return {"llm_users", "max_budget", "budget_duration", "budget_reset_at", "user_id = $1", true};
    case entity_kind::team:
      return {"llm_teams", "max_budget", "budget_duration", "budget_reset_at", "team_id = $1", true};
    case entity_kind::key_model:
      return {"llm_key_model_budgets", "budget_limit", "time_period", "reset_at", "token = $1 AND model = $2", false};
  }
  return table_of(entity_kind::key);
}

params entity_params(const entity_ref& e) {
  params p;
  p.text(e.id);
  if (e.kind == entity_kind::key_model) p.text(e.model);
  return p;
}

/// Moves the period forward when budget_reset_at has passed: spend restarts from 0 and
/// reset_at moves to the end of the period that holds `now` (keys::next_reset). A
/// duration without a reset time starts its first period now.
void roll_period(budget_period& b) {
  keys::duration_spec d;
  if (b.duration.empty() || !keys::parse_duration(b.duration, d)) return;
  if (!b.reset_at) {
    b.reset_at = keys::first_reset(b.now, d);
    b.changed = true;
    return;
  }
  if (*b.reset_at > b.now) return;
  b.spend = 0;
  b.reset = true;
  b.changed = true;
  b.reset_at = keys::next_reset(*b.reset_at, b.now, d);
}

/// Locks the entity's row and returns its budget period after a lazy reset (not yet
/// written back); nullopt if the entity does not exist.
std::optional<budget_period> lock_period(pqxx::work& tx, const entity_ref& e) {
  budget_table t = table_of(e.kind);
  std::string sql = std::string("SELECT ") + t.max_budget + ", spend, " + t.duration + ", " + t.reset_at +
                    ", now() FROM " + t.table + " WHERE " + t.where + " FOR UPDATE";
  auto rows = tx.exec_params(sql, entity_params(e).dynamic());
  if (rows.empty()) return std::nullopt;
  const auto& r = rows[0];
  budget_period b;
  b.max_budget = opt_money_of(r[0]);
  b.spend = money_of(r[1]);
  b.duration = text_of(r[2]);
  b.reset_at = opt_time_of(r[3]);
  b.now = time_of(r[4]);
  roll_period(b);
  return b;
}

/// Writes the period back (reset, new reset time) and adds `amount` to the period's
/// spend and the lifetime total. The sums are done by PostgreSQL in NUMERIC.
void settle_period(pqxx::work& tx, const entity_ref& e, const budget_period& b, keys::money amount) {
  if (!b.changed && amount == 0) return;
  budget_table t = table_of(e.kind);
  params p = entity_params(e);
  std::size_t n = p.size();
  auto arg = [&](std::size_t i) { return "$" + std::to_string(n + i); };
  p.boolean(b.reset).numeric(amount).timestamp(b.reset_at);
  std::string sql = std::string("UPDATE ") + t.table + " SET spend = (CASE WHEN " + arg(1) +
                    "::boolean THEN 0 ELSE spend END) + " + arg(2) + "::numeric, " + t.reset_at + " = " + arg(3) +
                    "::timestamptz";
  if (t.has_total_spend) sql += ", total_spend = total_spend + " + arg(2) + "::numeric";
  sql += std::string(" WHERE ") + t.where;
  tx.exec_params(sql, p.dynamic());
}

keys::money saturating_sub(keys::money a, keys::money b) {
  keys::money r = 0;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<keys::money>::min() : std::numeric_limits<keys::money>::max();
}

keys::money saturating_add(keys::money a, keys::money b) {
  keys::money r = 0;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<keys::money>::max() : std::numeric_limits<keys::money>::min();
}

/// Adds the batch's spend per model group to llm_keys.model_spend (jsonb of decimal
/// strings, summed as NUMERIC).
void add_model_spend(pqxx::work& tx, const std::string& token, const std::vector<std::string>& models,
                     const std::vector<std::string>& amounts) {
  tx.exec_params(
      "UPDATE llm_keys SET model_spend = model_spend || ("
      " SELECT jsonb_object_agg(m, (coalesce(model_spend ->> m, '0')::numeric + x)::text)"
      " FROM unnest($2::text[], $3::numeric[]) AS t(m, x))"
      " WHERE token = $1",
      token, array_literal(models), array_literal(amounts));
}

/// Lowers this node's leases by the amounts (not below 0), in one statement.
void reduce_leases(pqxx::work& tx, const std::string& node_id, const std::map<entity_ref, keys::money>& amounts) {
  if (amounts.empty()) return;
  std::vector<std::string> kinds, ids, models, xs;
  for (const auto& [e, x] : amounts) {
    kinds.push_back(kind_name(e.kind));
    ids.push_back(e.id);
    models.push_back(lease_model(e));
    xs.push_back(keys::to_decimal(x));
  }
  tx.exec_params(
      "UPDATE llm_budget_leases l SET amount = greatest(l.amount - d.x, 0)"
      " FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[]) AS d(kind, id, model, x)"
      " WHERE l.node_id = $1 AND l.entity_kind = d.kind AND l.entity_id = d.id AND l.model = d.model",
      node_id, array_literal(kinds), array_literal(ids), array_literal(models), array_literal(xs));
}

}  // namespace

lease_grant pg_store::lease(const entity_ref& e, const std::string& node_id, keys::money want,
                            std::chrono::seconds ttl) {
  return impl_->run("lease", [&](pqxx::connection& c) {
    lease_grant g;
    pqxx::work tx(c);
    auto period = lock_period(tx, e);
    if (!period) {
      g.exists = false;
      return g;  // nothing was written
    }
    settle_period(tx, e, *period, 0);

    keys::money others = 0, own = 0;  // unexpired leases only
    auto leases = tx.exec_params(
        "SELECT node_id, amount FROM llm_budget_leases"
        " WHERE entity_kind = $1 AND entity_id = $2 AND model = $3 AND expires_at > now()",
        kind_name(e.kind), e.id, lease_model(e));
    for (const auto& r : leases) {
      if (text_of(r[0]) == node_id)
        own = money_of(r[1]);
      else
        others = saturating_add(others, money_of(r[1]));
    }

    want = std::max<keys::money>(want, 0);
    if (period->max_budget) {
      keys::money available =
          saturating_sub(saturating_sub(saturating_sub(*period->max_budget, period->spend), others), own);
      g.granted = std::clamp<keys::money>(want, 0, std::max<keys::money>(available, 0));
    } else {
      g.granted = want;
    }
    // An expired lease of this node restarts from 0 (own counted only unexpired ones).
    g.own_lease = saturating_add(own, g.granted);
    tx.exec_params(
        "INSERT INTO llm_budget_leases (entity_kind, entity_id, model, node_id, amount, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 second')"
        " ON CONFLICT (entity_kind, entity_id, model, node_id)"
        " DO UPDATE SET amount = excluded.amount, expires_at = excluded.expires_at",
        kind_name(e.kind), e.id, lease_model(e), node_id, keys::to_decimal(g.own_lease),
        static_cast<long long>(ttl.count()));
    tx.commit();

    g.max_budget = period->max_budget;
    g.spend = period->spend;
    g.leased_by_others = others;
    g.budget_reset_at = period->reset_at;
    return g;
  });
}

bool pg_store::apply(const spend_batch& b, const std::string& batch_id, std::chrono::seconds ttl) {
  return impl_->run("apply", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // Claims the batch id first: a concurrent apply of the same batch waits here
    // for this transaction and then finds the id taken.
    if (tx.exec_params("INSERT INTO llm_applied_batches (batch_id, applied_at) VALUES ($1, now())"
                       " ON CONFLICT DO NOTHING",
                       batch_id)
            .affected_rows() == 0)
      return false;

    // Keys in token order, each with its period spend and its per-model spend.
    std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> model_spend;
    for (const auto& [km, x] : b.key_model_spend) {
      if (km.first.empty()) continue;  // the master key has no row
      model_spend[km.first].first.push_back(km.second);
      model_spend[km.first].second.push_back(keys::to_decimal(x));
    }
    std::set<std::string> tokens;
    for (const auto& [e, x] : b.entity_spend)
      if (e.kind == entity_kind::key) tokens.insert(e.id);
    for (const auto& [token, _] : model_spend) tokens.insert(token);
    for (const auto& token : tokens) {
      entity_ref e{entity_kind::key, token, ""};
      if (auto it = b.entity_spend.find(e); it != b.entity_spend.end()) {
        if (auto period = lock_period(tx, e)) settle_period(tx, e, *period, it->second);
      }
      if (auto it = model_spend.find(token); it != model_spend.end())
        add_model_spend(tx, token, it->second.first, it->second.second);
    }
    // Users, teams, then per-model key budgets (entity_ref's order).
    for (const auto& [e, x] : b.entity_spend) {
      if (e.kind == entity_kind::key) continue;
      if (auto period = lock_period(tx, e)) settle_period(tx, e, *period, x);
    }

    insert_spend_logs(tx, b.logs);

    // This node's lease rows, locked in one order: two applies of the same node on
    // different connections cannot deadlock on them.
    tx.exec_params(
        "SELECT 1 FROM llm_budget_leases WHERE node_id = $1 ORDER BY entity_kind, entity_id, model FOR UPDATE",
        b.node_id);
    std::map<entity_ref, keys::money> lease_use = b.entity_spend;
    for (const auto& [e, x] : b.lease_returns) lease_use[e] = saturating_add(lease_use[e], x);
    reduce_leases(tx, b.node_id, lease_use);
    tx.exec_params("UPDATE llm_budget_leases SET expires_at = now() + $2 * interval '1 second' WHERE node_id = $1",
                   b.node_id, static_cast<long long>(ttl.count()));

    // Now and then: batch ids older than a day (a batch is re-sent within seconds or
    // minutes) and leases expired for a day (their nodes are gone).
    auto now = std::chrono::steady_clock::now();
    bool prune = now >= impl_->next_prune;
    if (prune) {
      tx.exec("DELETE FROM llm_applied_batches WHERE applied_at < now() - interval '1 day'");
      tx.exec("DELETE FROM llm_budget_leases WHERE expires_at < now() - interval '1 day'");
    }
    tx.commit();
    if (prune) impl_->next_prune = now + std::chrono::minutes(10);
    return true;
  });
}

void pg_store::release_leases(const std::string& node_id) {
  impl_->run("release_leases", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("DELETE FROM llm_budget_leases WHERE node_id = $1", node_id);
    tx.commit();
  });
}

}  // namespace gw::store
