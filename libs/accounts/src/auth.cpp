#include <map>

#include "gw/keys/model.hpp"

#include "internal.hpp"

namespace gw::accounts {
namespace {

bool list_allows(const std::vector<std::string>& list, std::string_view model) noexcept {
  if (list.empty()) return true;
  for (const auto& m : list) {
    if (m == model || m == "*" || m == "all-proxy-models") return true;
    if (m.size() >= 2 && m.compare(m.size() - 2, 2, "/*") == 0 &&
        model.substr(0, m.size() - 1) == std::string_view(m).substr(0, m.size() - 1))
      return true;
  }
  return false;
}

std::string describe_key(const keys::key_record& k) {
  return k.key_alias.empty() ? "key " + k.key_name : "key '" + k.key_alias + "'";
}

}  // namespace

bool auth_entry::allows(std::string_view model_group) const noexcept {
  return list_allows(models, model_group) && list_allows(team_models, model_group);
}

auth_entry_ptr derive_entry(const keys::key_record& k, const keys::user_record* u, const keys::team_record* t) {
  auto e = std::make_shared<auth_entry>();
  e->token = k.token;
  e->key_alias = k.key_alias;
  e->key_name = k.key_name;
  e->user_id = k.user_id;
  e->team_id = k.team_id;
  e->models = k.models;
  if (t) e->team_models = t->models;
  e->expires = k.expires;
  if (k.blocked) {
    e->blocked = true;
    e->blocked_reason = "This key has been blocked.";
  } else if (t && t->blocked) {
    e->blocked = true;
    e->blocked_reason = "The key's team '" + t->team_id + "' has been blocked.";
  }
  auto add = [&](entity_ref r, std::string name, const keys::budget& b) {
    if (!b.max_budget && !b.soft_budget) return;
    e->budgets.push_back(std::move(r));
    e->budget_names.push_back(std::move(name));
    e->soft_budgets.push_back(b.soft_budget);
    e->hard.push_back(b.max_budget.has_value());
  };
  add(entity_ref{entity_kind::key, k.token, ""}, describe_key(k), k.budget);
  for (const auto& [model, b] : k.model_max_budget) {
    e->budgets.push_back(entity_ref{entity_kind::key_model, k.token, model});
    e->budget_names.push_back(describe_key(k) + " for model '" + model + "'");
    e->soft_budgets.push_back(std::nullopt);
    e->hard.push_back(true);
  }
  if (u) add(entity_ref{entity_kind::user, u->user_id, ""}, "user '" + u->user_id + "'", u->budget);
  if (t) add(entity_ref{entity_kind::team, t->team_id, ""},
             "team '" + (t->team_alias.empty() ? t->team_id : t->team_alias) + "'", t->budget);

  // Rate limits: key, user, team, then key x model (LiteLLM's api_key, user, team and
  // model_per_key scopes). Ids are stable across nodes (they name Redis keys).
  auto limit = [&](std::string id, std::string label, const keys::limits& l) {
    limits::scope sc;
    sc.id = std::move(id);
    sc.label = std::move(label);
    sc.rpm = l.rpm_limit.value_or(-1);
    sc.tpm = l.tpm_limit.value_or(-1);
    sc.max_parallel = l.max_parallel_requests.value_or(-1);
    if (sc.limited()) e->limit_scopes.push_back(std::move(sc));
  };
  limit("key:" + k.token, "api_key " + describe_key(k).substr(4), k.limits);
  if (u) limit("user:" + u->user_id, "user '" + u->user_id + "'", u->limits);
  if (t) limit("team:" + t->team_id, "team '" + (t->team_alias.empty() ? t->team_id : t->team_alias) + "'", t->limits);
  std::map<std::string, limits::scope> per_model;
  for (const auto& [model, n] : k.limits.model_rpm_limit) per_model[model].rpm = n;
  for (const auto& [model, n] : k.limits.model_tpm_limit) per_model[model].tpm = n;
  for (auto& [model, sc] : per_model) {
    sc.id = "keymodel:" + k.token + ":" + model;
    sc.label = "api_key " + describe_key(k).substr(4) + " for model '" + model + "'";
    auto all = e->limit_scopes;
    all.push_back(sc);
    e->model_only_scopes.emplace_back(model, std::vector<limits::scope>{std::move(sc)});
    e->model_limit_scopes.emplace_back(model, std::move(all));
  }
  return e;
}

const std::vector<limits::scope>* auth_entry::scopes_for(std::string_view model_group) const noexcept {
  for (const auto& [m, v] : model_limit_scopes)
    if (m == model_group) return &v;
  return limit_scopes.empty() ? nullptr : &limit_scopes;
}

const std::vector<limits::scope>* auth_entry::model_scope_for(std::string_view model_group) const noexcept {
  for (const auto& [m, v] : model_only_scopes)
    if (m == model_group) return &v;
  return nullptr;
}

std::vector<entity_ref> auth_entry::spend_entities(std::string_view model_group) const {
  std::vector<entity_ref> out;
  out.reserve(4);
  out.push_back(entity_ref{entity_kind::key, token, ""});
  if (!user_id.empty()) out.push_back(entity_ref{entity_kind::user, user_id, ""});
  if (!team_id.empty()) out.push_back(entity_ref{entity_kind::team, team_id, ""});
  for (const auto& b : budgets)
    if (b.kind == entity_kind::key_model && b.model == model_group) out.push_back(b);
  return out;
}

bool auth_entry::budgeted_for(std::string_view model_group) const noexcept {
  for (const auto& b : budgets)
    if (b.kind != entity_kind::key_model || b.model == model_group) return true;
  return false;
}

io_accounts::io_accounts(service& s, std::size_t index) : svc_(s), index_(index) {}

io_accounts::lookup_status io_accounts::find(std::string_view token, auth_entry_ptr& out) {
  if (auto it = table_.find(token); it != table_.end()) {
    out = it->second;
    return lookup_status::found;
  }
  if (auto it = misses_.find(token); it != misses_.end()) {
    if (std::chrono::steady_clock::now() < it->second) return lookup_status::unknown;
    misses_.erase(it);
  }
  return lookup_status::ask;
}

void io_accounts::ask(const std::string& token, std::function<void(auth_entry_ptr)> cb) {
  if (!svc_.key_service_actor()) return cb(nullptr);
  caf::anon_send(svc_.key_service_actor(), ask_atom::value, lookup_request{token, std::move(cb)});
}

void io_accounts::remember_miss(const std::string& token) {
  auto until = std::chrono::steady_clock::now() + svc_.config().negative_ttl;
  auto [it, fresh] = misses_.insert_or_assign(token, until);
  (void)it;
  if (fresh) miss_order_.push_back(token);
  // Bounded: the oldest entries go first.
  while (misses_.size() > svc_.config().negative_cache_size && !miss_order_.empty()) {
    misses_.erase(miss_order_.front());
    miss_order_.pop_front();
  }
  if (miss_order_.size() > 2 * svc_.config().negative_cache_size + 16) {
    std::deque<std::string> kept;
    for (auto& t : miss_order_)
      if (misses_.count(t)) kept.push_back(t);
    miss_order_.swap(kept);
  }
}

auth_entry_ptr io_accounts::local(const auth_entry_ptr& e) {
  // Aliasing constructor: points at the shared entry, counts references in a control
  // block that only this thread touches (it owns one reference to the shared entry).
  auto holder = std::make_shared<auth_entry_ptr>(e);
  const auth_entry* p = e.get();
  return auth_entry_ptr(std::move(holder), p);
}

void io_accounts::upsert(auth_entry_ptr e) {
  misses_.erase(e->token);
  auto it = table_.find(e->token);
  if (it == table_.end()) table_.emplace(e->token, local(e));
  else it->second = local(e);
}

void io_accounts::erase(const std::string& token) { table_.erase(token); }

void io_accounts::replace(std::shared_ptr<const std::vector<auth_entry_ptr>> all) {
  decltype(table_) t;
  t.reserve(all->size());
  for (auto& e : *all) t.emplace(e->token, local(e));
  table_.swap(t);
  misses_.clear();
  miss_order_.clear();
}

}  // namespace gw::accounts
