// The key service actor: owns the records the request path authenticates against and
// keeps every io thread's auth table current.

#include <unordered_map>
#include <unordered_set>

#include "gw/core/log.hpp"
#include "internal.hpp"

namespace gw::accounts {
namespace {

struct key_service_state {
  service* svc = nullptr;
  std::unordered_map<std::string, keys::key_record> keys;
  std::unordered_map<std::string, keys::user_record> users;
  std::unordered_map<std::string, keys::team_record> teams;
  std::unordered_map<std::string, std::unordered_set<std::string>> keys_by_user, keys_by_team;
  static inline const char* name = "gw.key_service";

  auth_entry_ptr entry_of(const keys::key_record& k) const {
    const keys::user_record* u = nullptr;
    const keys::team_record* t = nullptr;
    if (!k.user_id.empty())
      if (auto it = users.find(k.user_id); it != users.end()) u = &it->second;
    if (!k.team_id.empty())
      if (auto it = teams.find(k.team_id); it != teams.end()) t = &it->second;
    return derive_entry(k, u, t);
  }

  void index(const keys::key_record& k) {
    if (!k.user_id.empty()) keys_by_user[k.user_id].insert(k.token);
    if (!k.team_id.empty()) keys_by_team[k.team_id].insert(k.token);
  }
  void unindex(const keys::key_record& k) {
    if (!k.user_id.empty())
      if (auto it = keys_by_user.find(k.user_id); it != keys_by_user.end()) {
        it->second.erase(k.token);
        if (it->second.empty()) keys_by_user.erase(it);
      }
    if (!k.team_id.empty())
      if (auto it = keys_by_team.find(k.team_id); it != keys_by_team.end()) {
        it->second.erase(k.token);
        if (it->second.empty()) keys_by_team.erase(it);
      }
  }

  void publish(auth_entry_ptr e) {
    for (std::size_t i = 0; i < svc->io_count(); ++i)
      svc->post(i, [io = &svc->io(i), e] { io->upsert(e); });
  }
  void publish_erase(const std::string& token) {
    for (std::size_t i = 0; i < svc->io_count(); ++i)
      svc->post(i, [io = &svc->io(i), token] { io->erase(token); });
  }
  void publish_all() {
    auto all = std::make_shared<std::vector<auth_entry_ptr>>();
    all->reserve(keys.size());
    for (auto& [_, k] : keys) all->push_back(entry_of(k));
    std::shared_ptr<const std::vector<auth_entry_ptr>> c = all;
    for (std::size_t i = 0; i < svc->io_count(); ++i)
      svc->post(i, [io = &svc->io(i), c] { io->replace(c); });
  }
};

using key_service_actor = caf::stateful_actor<key_service_state>;

void budget_changed(key_service_actor* self, entity_ref e) {
  caf::anon_send(self->state.svc->ledger_actor(), budget_atom::value, std::move(e));
}

void apply_change(key_service_actor* self, record_change& c) {
  auto& st = self->state;
  switch (c.kind) {
    case record_change::what::key: {
      if (!c.old_token.empty()) {
        if (auto it = st.keys.find(c.old_token); it != st.keys.end()) {
          st.unindex(it->second);
          st.keys.erase(it);
        }
        st.publish_erase(c.old_token);
      }
      if (auto it = st.keys.find(c.id); it != st.keys.end()) {
        st.unindex(it->second);
        st.keys.erase(it);
      }
      budget_changed(self, entity_ref{entity_kind::key, c.id, ""});
      if (!c.key) {
        st.publish_erase(c.id);
        return;
      }
      for (auto& [m, _] : c.key->model_max_budget) budget_changed(self, entity_ref{entity_kind::key_model, c.id, m});
      auto& k = st.keys[c.id] = std::move(*c.key);
      st.index(k);
      st.publish(st.entry_of(k));
      return;
    }
    case record_change::what::user: {
      if (c.user) st.users[c.id] = std::move(*c.user);
      else st.users.erase(c.id);
      budget_changed(self, entity_ref{entity_kind::user, c.id, ""});
      if (auto it = st.keys_by_user.find(c.id); it != st.keys_by_user.end())
        for (auto& token : it->second) st.publish(st.entry_of(st.keys.at(token)));
      return;
    }
    case record_change::what::team: {
      if (c.team) st.teams[c.id] = std::move(*c.team);
      else st.teams.erase(c.id);
      budget_changed(self, entity_ref{entity_kind::team, c.id, ""});
      if (auto it = st.keys_by_team.find(c.id); it != st.keys_by_team.end())
        for (auto& token : it->second) st.publish(st.entry_of(st.keys.at(token)));
      return;
    }
  }
}

caf::behavior key_service_fn(key_service_actor* self, service* svc) {
  self->set_default_handler(caf::drop);
  self->state.svc = svc;
  return {
      [=](all_atom, all_records& r) {
        auto& st = self->state;
        st.keys.clear();
        st.users.clear();
        st.teams.clear();
        st.keys_by_user.clear();
        st.keys_by_team.clear();
        for (auto& u : r.users) st.users.emplace(u.user_id, std::move(u));
        for (auto& t : r.teams) st.teams.emplace(t.team_id, std::move(t));
        for (auto& k : r.keys) {
          st.index(k);
          st.keys.emplace(k.token, std::move(k));
        }
        st.publish_all();
      },
      [=](changed_atom, record_change& c) {
        // Answered after the io threads have been sent the change: an admin worker
        // waits for this before it answers, so the caller's next request sees it.
        apply_change(self, c);
        return true;
      },
      [=](changed_atom, std::vector<record_change>& cs) {
        for (auto& c : cs) apply_change(self, c);
      },
      [=](ask_atom, lookup_request& r) {
        auto& st = self->state;
        if (auto it = st.keys.find(r.token); it != st.keys.end()) {
          r.cb(st.entry_of(it->second));
          return;
        }
        // Not here: maybe created on another node a moment ago. The admin worker reads
        // the database and answers; its change message updates the tables.
        caf::anon_send(st.svc->admin_worker_for_lookup(), ask_atom::value, std::move(r));
      },
  };
}

}  // namespace

caf::actor spawn_key_service(caf::actor_system& sys, service* svc) { return sys.spawn(key_service_fn, svc); }

}  // namespace gw::accounts
