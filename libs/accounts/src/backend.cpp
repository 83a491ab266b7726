#include "gw/accounts/backend.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>

namespace gw::accounts {

// ------------------------------------------------------------------ PostgreSQL

namespace {

class pg_backend final : public backend {
 public:
  explicit pg_backend(const std::string& url) : s_(url) {}
  bool persistent() const noexcept override { return true; }
  void ping() override { s_.ping(); }
  all_records load_all() override { return s_.load_all(); }
  std::optional<keys::key_record> load_key(const std::string& t) override { return s_.load_key(t); }
  std::optional<keys::user_record> load_user(const std::string& id) override { return s_.load_user(id); }
  std::optional<keys::team_record> load_team(const std::string& id) override { return s_.load_team(id); }
  bool insert_key(const keys::key_record& k) override { return s_.insert_key(k); }
  bool update_key(const keys::key_record& k) override { return s_.update_key(k); }
  bool delete_key(const std::string& t) override { return s_.delete_key(t); }
  bool rename_key(const std::string& o, const std::string& n, const std::string& name) override {
    return s_.rename_key(o, n, name);
  }
  bool insert_user(const keys::user_record& u) override { return s_.insert_user(u); }
  bool update_user(const keys::user_record& u) override { return s_.update_user(u); }
  bool delete_user(const std::string& id) override { return s_.delete_user(id); }
  bool insert_team(const keys::team_record& t) override { return s_.insert_team(t); }
  bool update_team(const keys::team_record& t) override { return s_.update_team(t); }
  bool delete_team(const std::string& id) override { return s_.delete_team(id); }
  lease_grant lease(const entity_ref& e, const std::string& node, keys::money want, std::chrono::seconds ttl) override {
    return s_.lease(e, node, want, ttl);
  }
  bool apply(const spend_batch& b, const std::string& id, std::chrono::seconds ttl) override {
    return s_.apply(b, id, ttl);
  }
  void release_leases(const std::string& node) override { s_.release_leases(node); }
  std::vector<spend_log_row> spend_logs(const spend_query& q) override { return s_.spend_logs(q); }
  keys::money global_spend() override { return s_.global_spend(); }
  std::vector<spend_total> spend_by_key(std::size_t n) override { return s_.spend_by_key(n); }
  std::vector<spend_total> spend_by_model(std::size_t n) override { return s_.spend_by_model(n); }
  int maintain_partitions(int ahead, int retention) override { return s_.maintain_partitions(ahead, retention); }
  void notify(const std::string& payload) override { s_.notify(payload); }

 private:
  store::pg_store s_;
};

}  // namespace

std::unique_ptr<backend> make_pg_backend(const std::string& url) { return std::make_unique<pg_backend>(url); }

// ------------------------------------------------------------------ memory

struct memory_db {
  std::mutex mu;
  std::map<std::string, keys::key_record> keys;
  std::map<std::string, keys::user_record> users;
  std::map<std::string, keys::team_record> teams;
  struct lease_row {
    keys::money amount = 0;
    keys::sys_time expires{};
  };
  std::map<std::pair<entity_ref, std::string>, lease_row> leases;
  // Spend-log rows: the applied batches themselves (shared with the ledger, not copied),
  // newest last, bounded to about max_logs rows.
  std::deque<std::shared_ptr<const spend_batch>> log_batches;
  std::size_t log_rows = 0;
  std::map<std::string, spend_total> by_model;
  std::set<std::string> applied;        // batch ids seen (the newest max_applied)
  std::deque<std::string> applied_order;
  // Memory mode keeps the newest spend-log rows only (about 0.5 KB each).
  static constexpr std::size_t max_logs = 10'000;
  static constexpr std::size_t max_applied = 10'000;
};

std::shared_ptr<memory_db> make_memory_db() { return std::make_shared<memory_db>(); }

namespace {

/// Moves a budget's period forward when its reset time has passed.
void lazy_reset(keys::budget& b, keys::sys_time now) {
  if (!b.budget_reset_at || *b.budget_reset_at > now || b.budget_duration.empty()) return;
  keys::duration_spec d;
  if (!keys::parse_duration(b.budget_duration, d)) return;
  b.spend = 0;
  b.budget_reset_at = keys::next_reset(*b.budget_reset_at, now, d);
}

void lazy_reset(keys::model_budget& b, keys::sys_time now) {
  if (!b.reset_at || *b.reset_at > now || b.time_period.empty()) return;
  keys::duration_spec d;
  if (!keys::parse_duration(b.time_period, d)) return;
  b.spend = 0;
  b.reset_at = keys::next_reset(*b.reset_at, now, d);
}

class memory_backend final : public backend {
 public:
  explicit memory_backend(std::shared_ptr<memory_db> db) : db_(std::move(db)) {}
  bool persistent() const noexcept override { return false; }
  void ping() override {}

  all_records load_all() override {
    std::lock_guard lk(db_->mu);
    all_records r;
    for (auto& [_, k] : db_->keys) r.keys.push_back(k);
    for (auto& [_, u] : db_->users) r.users.push_back(u);
    for (auto& [_, t] : db_->teams) r.teams.push_back(t);
    return r;
  }
  std::optional<keys::key_record> load_key(const std::string& t) override { return find(db_->keys, t); }
  std::optional<keys::user_record> load_user(const std::string& id) override { return find(db_->users, id); }
  std::optional<keys::team_record> load_team(const std::string& id) override { return find(db_->teams, id); }

  bool insert_key(const keys::key_record& k) override {
    std::lock_guard lk(db_->mu);
    if (db_->keys.count(k.token)) return false;
    if (!k.key_alias.empty())
      for (auto& [_, o] : db_->keys)
        if (o.key_alias == k.key_alias) return false;
    db_->keys.emplace(k.token, k);
    return true;
  }
  bool update_key(const keys::key_record& k) override {
    std::lock_guard lk(db_->mu);
    auto it = db_->keys.find(k.token);
    if (it == db_->keys.end()) return false;
    // Spend is the ledger's: keep what is stored unless an admin set it explicitly
    // (the admin API passes the stored value through otherwise).
    auto model_spend = it->second.model_spend;
    auto total = it->second.total_spend;
    auto spend = it->second.budget.spend;
    auto mmb = it->second.model_max_budget;
    it->second = k;
    it->second.model_spend = std::move(model_spend);
    it->second.total_spend = total;
    it->second.budget.spend = spend;
    for (auto& [m, b] : it->second.model_max_budget)
      if (auto o = mmb.find(m); o != mmb.end() && o->second.budget_limit == b.budget_limit) b.spend = o->second.spend;
    return true;
  }
  bool delete_key(const std::string& t) override {
    std::lock_guard lk(db_->mu);
    return db_->keys.erase(t) > 0;
  }
  bool rename_key(const std::string& o, const std::string& n, const std::string& name) override {
    std::lock_guard lk(db_->mu);
    auto it = db_->keys.find(o);
    if (it == db_->keys.end() || db_->keys.count(n)) return false;
    auto k = std::move(it->second);
    db_->keys.erase(it);
    k.token = n;
    k.key_name = name;
    db_->keys.emplace(n, std::move(k));
    return true;
  }
  bool insert_user(const keys::user_record& u) override { return insert(db_->users, u.user_id, u); }
  bool update_user(const keys::user_record& u) override {
    std::lock_guard lk(db_->mu);
    auto it = db_->users.find(u.user_id);
    if (it == db_->users.end()) return false;
    auto total = it->second.total_spend;
    auto spend = it->second.budget.spend;
    it->second = u;
    it->second.total_spend = total;
    it->second.budget.spend = spend;
    return true;
  }
  bool delete_user(const std::string& id) override {
    std::lock_guard lk(db_->mu);
    return db_->users.erase(id) > 0;
  }
  bool insert_team(const keys::team_record& t) override { return insert(db_->teams, t.team_id, t); }
  bool update_team(const keys::team_record& t) override {
    std::lock_guard lk(db_->mu);
    auto it = db_->teams.find(t.team_id);
    if (it == db_->teams.end()) return false;
    auto total = it->second.total_spend;
    auto spend = it->second.budget.spend;
    it->second = t;
    it->second.total_spend = total;
    it->second.budget.spend = spend;
    return true;
  }
  bool delete_team(const std::string& id) override {
    std::lock_guard lk(db_->mu);
    return db_->teams.erase(id) > 0;
  }

  lease_grant lease(const entity_ref& e, const std::string& node, keys::money want, std::chrono::seconds ttl) override {
    std::lock_guard lk(db_->mu);
    auto now = std::chrono::system_clock::now();
    lease_grant g;
    keys::money spend = 0;
    std::optional<keys::money> max;
    std::optional<keys::sys_time> reset_at;
    if (!budget_of(e, now, spend, max, reset_at)) {
      g.exists = false;
      return g;
    }
    g.spend = spend;
    g.max_budget = max;
    g.budget_reset_at = reset_at;
    keys::money others = 0, own = 0;
    for (auto& [k, l] : db_->leases) {
      if (k.first != e || l.expires <= now) continue;
      if (k.second == node) own = l.amount;
      else others += l.amount;
    }
    if (max) {
      keys::money available = *max - spend - others - own;
      g.granted = std::clamp<keys::money>(want, 0, std::max<keys::money>(available, 0));
    } else {
      g.granted = want;
    }
    auto& row = db_->leases[{e, node}];
    if (row.expires <= now) row.amount = 0;
    row.amount += g.granted;
    row.expires = now + ttl;
    g.own_lease = row.amount;
    g.leased_by_others = others;
    return g;
  }

  bool apply(const spend_batch& b, const std::string& id, std::chrono::seconds ttl) override {
    return apply_shared(std::make_shared<spend_batch>(b), id, ttl);
  }

  bool apply_shared(std::shared_ptr<const spend_batch> shared, const std::string& id,
                    std::chrono::seconds ttl) override {
    const spend_batch& b = *shared;
    std::lock_guard lk(db_->mu);
    if (!db_->applied.insert(id).second) return false;
    db_->applied_order.push_back(id);
    if (db_->applied_order.size() > memory_db::max_applied) {
      db_->applied.erase(db_->applied_order.front());
      db_->applied_order.pop_front();
    }
    auto now = std::chrono::system_clock::now();
    for (auto& [e, amount] : b.entity_spend) {
      add_spend(e, amount, now);
      if (auto it = db_->leases.find({e, b.node_id}); it != db_->leases.end())
        it->second.amount = std::max<keys::money>(it->second.amount - amount, 0);
    }
    for (auto& [e, amount] : b.lease_returns)
      if (auto it = db_->leases.find({e, b.node_id}); it != db_->leases.end())
        it->second.amount = std::max<keys::money>(it->second.amount - amount, 0);
    for (auto& [km, amount] : b.key_model_spend) {
      if (auto it = db_->keys.find(km.first); it != db_->keys.end()) it->second.model_spend[km.second] += amount;
    }
    for (auto& l : b.logs) {
      auto& m = db_->by_model[l.model_group];
      m.name = l.model_group;
      m.spend += l.spend;
      ++m.requests;
      m.prompt_tokens += l.prompt_tokens;
      m.completion_tokens += l.completion_tokens;
    }
    if (!b.logs.empty()) {
      db_->log_rows += b.logs.size();
      db_->log_batches.push_back(std::move(shared));
      // Whole batches go once the rest still holds max_logs rows.
      while (db_->log_rows - db_->log_batches.front()->logs.size() >= memory_db::max_logs) {
        db_->log_rows -= db_->log_batches.front()->logs.size();
        db_->log_batches.pop_front();
      }
    }
    for (auto& [k, l] : db_->leases)
      if (k.second == b.node_id) l.expires = now + ttl;
    return true;
  }

  void release_leases(const std::string& node) override {
    std::lock_guard lk(db_->mu);
    for (auto it = db_->leases.begin(); it != db_->leases.end();)
      it = it->first.second == node ? db_->leases.erase(it) : std::next(it);
  }

  std::vector<spend_log_row> spend_logs(const spend_query& q) override {
    std::lock_guard lk(db_->mu);
    std::vector<spend_log_row> out;
    std::size_t skipped = 0, seen = 0;
    for (auto bi = db_->log_batches.rbegin(); bi != db_->log_batches.rend(); ++bi) {
      for (auto it = (*bi)->logs.rbegin(); it != (*bi)->logs.rend(); ++it) {
        // The newest max_logs rows only, as if older ones were gone.
        if (out.size() >= q.limit || seen++ >= memory_db::max_logs) return out;
        const auto& l = *it;
        if (q.request_id && l.request_id != *q.request_id) continue;
        if (q.api_key && l.api_key != *q.api_key) continue;
        if (q.user_id && l.user_id != *q.user_id) continue;
        if (q.team_id && l.team_id != *q.team_id) continue;
        if (q.model_group && l.model_group != *q.model_group) continue;
        if (q.start && l.start_time < *q.start) continue;
        if (q.end && l.start_time > *q.end) continue;
        if (skipped++ < q.offset) continue;
        out.push_back(l);
      }
    }
    return out;
  }
  keys::money global_spend() override {
    std::lock_guard lk(db_->mu);
    keys::money s = 0;
    for (auto& [_, m] : db_->by_model) s += m.spend;
    return s;
  }
  std::vector<spend_total> spend_by_key(std::size_t limit) override {
    std::lock_guard lk(db_->mu);
    std::vector<spend_total> out;
    for (auto& [t, k] : db_->keys) out.push_back(spend_total{t, k.key_alias, k.total_spend, 0, 0, 0});
    return top(std::move(out), limit);
  }
  std::vector<spend_total> spend_by_model(std::size_t limit) override {
    std::lock_guard lk(db_->mu);
    std::vector<spend_total> out;
    for (auto& [_, m] : db_->by_model) out.push_back(m);
    return top(std::move(out), limit);
  }
  int maintain_partitions(int, int) override { return 0; }
  void notify(const std::string&) override {}

 private:
  template <class Map>
  auto find(Map& m, const std::string& id) -> std::optional<typename Map::mapped_type> {
    std::lock_guard lk(db_->mu);
    auto it = m.find(id);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
  template <class Map, class Rec>
  bool insert(Map& m, const std::string& id, const Rec& r) {
    std::lock_guard lk(db_->mu);
    return m.emplace(id, r).second;
  }
  static std::vector<spend_total> top(std::vector<spend_total> v, std::size_t limit) {
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.spend > b.spend; });
    if (v.size() > limit) v.resize(limit);
    return v;
  }

  /// The entity's budget after a lazy reset. false if it does not exist.
  bool budget_of(const entity_ref& e, keys::sys_time now, keys::money& spend, std::optional<keys::money>& max,
                 std::optional<keys::sys_time>& reset_at) {
    keys::budget* b = nullptr;
    switch (e.kind) {
      case entity_kind::key: {
        auto it = db_->keys.find(e.id);
        if (it == db_->keys.end()) return false;
        b = &it->second.budget;
        break;
      }
      case entity_kind::user: {
        auto it = db_->users.find(e.id);
        if (it == db_->users.end()) return false;
        b = &it->second.budget;
        break;
      }
      case entity_kind::team: {
        auto it = db_->teams.find(e.id);
        if (it == db_->teams.end()) return false;
        b = &it->second.budget;
        break;
      }
      case entity_kind::key_model: {
        auto it = db_->keys.find(e.id);
        if (it == db_->keys.end()) return false;
        auto m = it->second.model_max_budget.find(e.model);
        if (m == it->second.model_max_budget.end()) return false;
        lazy_reset(m->second, now);
        spend = m->second.spend;
        max = m->second.budget_limit;
        reset_at = m->second.reset_at;
        return true;
      }
    }
    lazy_reset(*b, now);
    spend = b->spend;
    max = b->max_budget;
    reset_at = b->budget_reset_at;
    return true;
  }

  void add_spend(const entity_ref& e, keys::money amount, keys::sys_time now) {
    switch (e.kind) {
      case entity_kind::key:
        if (auto it = db_->keys.find(e.id); it != db_->keys.end()) {
          lazy_reset(it->second.budget, now);
          it->second.budget.spend += amount;
          it->second.total_spend += amount;
        }
        break;
      case entity_kind::user:
        if (auto it = db_->users.find(e.id); it != db_->users.end()) {
          lazy_reset(it->second.budget, now);
          it->second.budget.spend += amount;
          it->second.total_spend += amount;
        }
        break;
      case entity_kind::team:
        if (auto it = db_->teams.find(e.id); it != db_->teams.end()) {
          lazy_reset(it->second.budget, now);
          it->second.budget.spend += amount;
          it->second.total_spend += amount;
        }
        break;
      case entity_kind::key_model:
        if (auto it = db_->keys.find(e.id); it != db_->keys.end()) {
          if (auto m = it->second.model_max_budget.find(e.model); m != it->second.model_max_budget.end()) {
            lazy_reset(m->second, now);
            m->second.spend += amount;
          }
        }
        break;
    }
  }

  std::shared_ptr<memory_db> db_;
};

}  // namespace

std::unique_ptr<backend> make_memory_backend(std::shared_ptr<memory_db> db) {
  return std::make_unique<memory_backend>(std::move(db));
}

}  // namespace gw::accounts
