// The admin API (LiteLLM-compatible), run on detached worker actors: each request is
// parsed, checked, written to the backend, announced to the key service (this node)
// and to the other nodes (NOTIFY), then answered.

#include <algorithm>
#include <map>

#include "gw/core/json_writer.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "gw/keys/admin_json.hpp"
#include <caf/scoped_actor.hpp>

#include "internal.hpp"

namespace gw::accounts {
namespace {

using keys::money;

struct reply {
  int status = 200;
  std::string body;
};

reply fail(const error& e) { return reply{http_status(e.code), to_openai_json(e)}; }
reply fail(errc c, std::string msg, std::string param = "") { return fail(error{c, std::move(msg), std::move(param)}); }

using keys::parse_date;
using keys::parse_query;
using keys::url_decode;

std::string iso(const std::optional<keys::sys_time>& t) {
  if (!t) return "null";
  return json_quote(keys::iso_time(*t));
}

void money_field(std::string& o, std::string_view name, const std::optional<money>& m) {
  append_json_string(o, name);
  o += ':';
  if (m) append_json_number(o, keys::to_dollars(*m));
  else o += "null";
}

struct admin_state {
  service* svc = nullptr;
  std::unique_ptr<backend> db;
  static inline const char* name = "gw.admin";
};
using admin_actor = caf::stateful_actor<admin_state>;

class admin_ops {
 public:
  admin_ops(service& svc, backend& db) : svc_(svc), db_(db) {}

  reply run(const std::string& route, const std::string& body, const std::string& query) {
    auto sp = route.find(' ');
    std::string_view method = std::string_view(route).substr(0, sp);
    std::string_view path = std::string_view(route).substr(sp + 1);
    auto q = parse_query(query);
    auto need = [&](std::string_view m) -> std::optional<reply> {
      if (method == m) return std::nullopt;
      return fail(errc::method_not_allowed,
                  "Method " + std::string(method) + " is not allowed on " + std::string(path) + "; use " +
                      std::string(m) + ".");
    };
#define GW_ROUTE(m, p, fn)                   \
  if (path == p) {                           \
    if (auto r = need(m)) return *r;         \
    return fn;                               \
  }
    GW_ROUTE("POST", "/key/generate", key_generate(body))
    GW_ROUTE("GET", "/key/info", key_info(q))
    GW_ROUTE("POST", "/key/update", key_update(body))
    GW_ROUTE("POST", "/key/delete", key_delete(body))
    GW_ROUTE("GET", "/key/list", key_list(q))
    GW_ROUTE("POST", "/key/regenerate", key_regenerate(body, ""))
    GW_ROUTE("POST", "/key/block", key_block(body, true))
    GW_ROUTE("POST", "/key/unblock", key_block(body, false))
    GW_ROUTE("POST", "/user/new", user_new(body))
    GW_ROUTE("GET", "/user/info", user_info(q))
    GW_ROUTE("POST", "/user/update", user_update(body))
    GW_ROUTE("POST", "/user/delete", user_delete(body))
    GW_ROUTE("POST", "/team/new", team_new(body))
    GW_ROUTE("GET", "/team/info", team_info(q))
    GW_ROUTE("POST", "/team/update", team_update(body))
    GW_ROUTE("POST", "/team/delete", team_delete(body))
    GW_ROUTE("GET", "/team/list", team_list())
    GW_ROUTE("POST", "/team/member_add", member_add(body))
    GW_ROUTE("POST", "/team/member_delete", member_delete(body))
    GW_ROUTE("GET", "/spend/logs", spend_logs(q))
    GW_ROUTE("GET", "/global/spend", global_spend())
    GW_ROUTE("GET", "/global/spend/keys", spend_keys(q))
    GW_ROUTE("GET", "/global/spend/models", spend_models(q))
#undef GW_ROUTE
    // POST /key/{key}/regenerate (LiteLLM's path form)
    if (path.size() > 16 && path.substr(0, 5) == "/key/" && path.substr(path.size() - 11) == "/regenerate") {
      if (auto r = need("POST")) return *r;
      return key_regenerate(body, url_decode(path.substr(5, path.size() - 16)));
    }
    return fail(errc::route_not_found, "Unknown admin route: " + std::string(method) + " " + std::string(path));
  }

  /// A key by plain key or token, as /key/info and friends accept either.
  std::optional<keys::key_record> find_key(const std::string& key_or_token) {
    if (key_or_token.size() == 64 && key_or_token.find_first_not_of("0123456789abcdef") == std::string::npos)
      if (auto k = db_.load_key(key_or_token)) return k;
    return db_.load_key(keys::hash_key(key_or_token));
  }

 private:
  auto now() const { return std::chrono::system_clock::now(); }

  void changed_key(const std::string& token, std::optional<keys::key_record> k, std::string old_token = "") {
    record_change c;
    c.kind = record_change::what::key;
    c.id = token;
    c.key = std::move(k);
    c.old_token = old_token;
    publish(std::move(c));
    announce("key:" + token);
    if (!old_token.empty()) announce("key:" + old_token);
  }
  void changed_user(const std::string& id, std::optional<keys::user_record> u) {
    record_change c;
    c.kind = record_change::what::user;
    c.id = id;
    c.user = std::move(u);
    publish(std::move(c));
    announce("user:" + id);
  }
  void changed_team(const std::string& id, std::optional<keys::team_record> t) {
    record_change c;
    c.kind = record_change::what::team;
    c.id = id;
    c.team = std::move(t);
    publish(std::move(c));
    announce("team:" + id);
  }
  /// Hands a change to this node's key service and waits until it has been sent to
  /// every io thread, so that the admin caller's next request already sees it.
  void publish(record_change c) {
    caf::scoped_actor self{svc_.system()};
    self->request(svc_.key_service_actor(), std::chrono::seconds(5), changed_atom::value, std::move(c))
        .receive([](bool) {}, [](caf::error&) {});
  }

  void announce(const std::string& payload) {
    try {
      db_.notify(payload);
    } catch (const std::exception& e) {
      log::warn("NOTIFY failed (other nodes see the change at their next resync): " + std::string(e.what()));
    }
  }

  std::optional<reply> check_key_refs(const keys::key_record& k) {
    if (!k.team_id.empty() && !db_.load_team(k.team_id))
      return fail(errc::invalid_request, "team_id '" + k.team_id + "' does not exist. Create it with /team/new first.",
                  "team_id");
    if (!k.budget.budget_duration.empty() && !k.budget.max_budget && !k.budget.soft_budget && false) return {};
    return std::nullopt;
  }

  reply key_generate(const std::string& body) {
    keys::key_request r;
    if (auto e = keys::parse_key_request(body.empty() ? "{}" : body, r)) return fail(*e);
    std::string plain;
    if (r.key && !r.key->empty()) {
      plain = *r.key;
      if (plain.rfind("sk-", 0) != 0)
        return fail(errc::invalid_request, "Invalid key format: a virtual key must start with 'sk-'.", "key");
    } else {
      plain = keys::generate_key();
    }
    keys::key_record k;
    k.token = keys::hash_key(plain);
    k.key_name = keys::abbreviate_key(plain);
    k.created_at = now();
    k.created_by = "master_key";
    keys::apply(r, k, now());
    if (auto e = check_key_refs(k)) return *e;
    if (!db_.insert_key(k)) {
      if (!k.key_alias.empty())
        return fail(errc::conflict, "A key with this value or key_alias '" + k.key_alias + "' already exists.",
                    "key_alias");
      return fail(errc::conflict, "A key with this value already exists.", "key");
    }
    auto stored = db_.load_key(k.token).value_or(k);
    changed_key(k.token, stored);
    std::optional<std::string> duration;
    if (r.duration && *r.duration) duration = **r.duration;
    return reply{200, keys::key_generate_response(stored, plain, duration)};
  }

  reply key_info(const std::map<std::string, std::string>& q) {
    auto it = q.find("key");
    if (it == q.end() || it->second.empty())
      return fail(errc::missing_parameter, "Pass the key as ?key=sk-... (or its token).", "key");
    auto k = find_key(it->second);
    if (!k) return fail(errc::not_found, "Key not found.", "key");
    std::string o = "{\"key\":";
    append_json_string(o, it->second);
    o += ",\"info\":";
    o += keys::to_json(*k);
    // How this gateway admits requests against the budgets below.
    o += ",\"budget_enforcement\":";
    append_json_string(o, svc_.config().mode == budget_mode::strict ? "strict" : "spend");
    o += ",\"budgets\":[";
    bool first = true;
    auto budget_row = [&](std::string_view scope, const std::string& id, const keys::budget& b) {
      if (!b.max_budget && !b.soft_budget) return;
      if (!first) o += ',';
      first = false;
      o += "{\"scope\":";
      append_json_string(o, scope);
      o += ",\"id\":";
      append_json_string(o, id);
      o += ',';
      money_field(o, "max_budget", b.max_budget);
      o += ',';
      money_field(o, "soft_budget", b.soft_budget);
      o += ',';
      money_field(o, "spend", b.spend);
      o += ',';
      money_field(o, "remaining", b.max_budget ? std::optional<money>(*b.max_budget - b.spend) : std::nullopt);
      o += ",\"budget_duration\":";
      if (b.budget_duration.empty()) o += "null";
      else append_json_string(o, b.budget_duration);
      o += ",\"budget_reset_at\":" + iso(b.budget_reset_at) + "}";
    };
    budget_row("key", k->token, k->budget);
    for (auto& [m, mb] : k->model_max_budget) {
      keys::budget b;
      b.max_budget = mb.budget_limit;
      b.spend = mb.spend;
      b.budget_duration = mb.time_period;
      b.budget_reset_at = mb.reset_at;
      budget_row("key_model:" + m, k->token, b);
    }
    std::optional<keys::user_record> u;
    std::optional<keys::team_record> t;
    if (!k->user_id.empty() && (u = db_.load_user(k->user_id))) budget_row("user", u->user_id, u->budget);
    if (!k->team_id.empty() && (t = db_.load_team(k->team_id))) budget_row("team", t->team_id, t->budget);
    o += "],\"limits\":[";
    first = true;
    auto limit_row = [&](std::string_view scope, const std::string& id, const keys::limits& l) {
      auto one = [&](std::string_view name, const std::optional<std::int64_t>& v) {
        if (!v) return;
        if (!first) o += ',';
        first = false;
        o += "{\"scope\":";
        append_json_string(o, scope);
        o += ",\"id\":";
        append_json_string(o, id);
        o += ",\"limit\":";
        append_json_string(o, name);
        o += ",\"value\":" + std::to_string(*v) + "}";
      };
      one("tpm_limit", l.tpm_limit);
      one("rpm_limit", l.rpm_limit);
      one("max_parallel_requests", l.max_parallel_requests);
    };
    limit_row("key", k->token, k->limits);
    if (u) limit_row("user", u->user_id, u->limits);
    if (t) limit_row("team", t->team_id, t->limits);
    o += "]}";
    return reply{200, std::move(o)};
  }

  reply key_update(const std::string& body) {
    keys::key_request r;
    if (auto e = keys::parse_key_request(body, r)) return fail(*e);
    if (!r.key || r.key->empty()) return fail(errc::missing_parameter, "Pass the key to update as \"key\".", "key");
    auto k = find_key(*r.key);
    if (!k) return fail(errc::not_found, "Key not found.", "key");
    auto old = *k;
    keys::apply(r, *k, now());
    // A new budget_duration starts a new period from now; otherwise the period stays.
    if (!(r.budget_duration && *r.budget_duration != std::optional<std::string>(old.budget.budget_duration)))
      k->budget.budget_reset_at = old.budget.budget_reset_at;
    k->token = old.token;
    k->key_name = old.key_name;
    k->created_at = old.created_at;
    k->created_by = old.created_by;
    if (auto e = check_key_refs(*k)) return *e;
    if (!db_.update_key(*k))
      return fail(errc::conflict, "The key could not be updated (key_alias already used by another key?).",
                  "key_alias");
    auto stored = db_.load_key(k->token).value_or(*k);
    changed_key(k->token, stored);
    std::string o = keys::to_json(stored);
    o.insert(1, "\"key\":" + json_quote(stored.token) + ",");
    return reply{200, std::move(o)};
  }

  reply key_delete(const std::string& body) {
    std::vector<std::string> names;
    bool by_alias = body.find("\"key_aliases\"") != std::string::npos && body.find("\"keys\"") == std::string::npos;
    if (auto e = keys::parse_name_list(body, by_alias ? "key_aliases" : "keys", names)) return fail(*e);
    std::vector<keys::key_record> found;
    if (by_alias) {
      auto all = db_.load_all();
      for (auto& n : names) {
        auto it = std::find_if(all.keys.begin(), all.keys.end(), [&](auto& k) { return k.key_alias == n; });
        if (it == all.keys.end()) return fail(errc::not_found, "No key with key_alias '" + n + "'.", "key_aliases");
        found.push_back(*it);
      }
    } else {
      for (auto& n : names) {
        auto k = find_key(n);
        if (!k) return fail(errc::not_found, "Key not found: " + keys::abbreviate_key(n) + ".", "keys");
        found.push_back(std::move(*k));
      }
    }
    std::string o = "{\"deleted_keys\":[";
    for (std::size_t i = 0; i < found.size(); ++i) {
      db_.delete_key(found[i].token);
      changed_key(found[i].token, std::nullopt);
      if (i) o += ',';
      append_json_string(o, by_alias ? found[i].key_alias : names[i]);
    }
    o += "]}";
    return reply{200, std::move(o)};
  }

  reply key_list(const std::map<std::string, std::string>& q) {
    auto get = [&](const char* k) -> std::string {
      auto it = q.find(k);
      return it == q.end() ? "" : it->second;
    };
    long long page = 1, size = 10;
    if (auto p = get("page"); !p.empty()) {
      auto v = parse_int(p);
      if (!v || *v < 1) return fail(errc::invalid_request, "page must be an integer >= 1", "page");
      page = *v;
    }
    if (auto s = get("size"); !s.empty()) {
      auto v = parse_int(s);
      if (!v || *v < 1 || *v > 1000) return fail(errc::invalid_request, "size must be an integer in 1..1000", "size");
      size = *v;
    }
    bool full = get("return_full_object") == "true";
    auto all = db_.load_all();
    std::vector<const keys::key_record*> sel;
    for (auto& k : all.keys) {
      if (auto u = get("user_id"); !u.empty() && k.user_id != u) continue;
      if (auto t = get("team_id"); !t.empty() && k.team_id != t) continue;
      if (auto a = get("key_alias"); !a.empty() && k.key_alias != a) continue;
      sel.push_back(&k);
    }
    std::sort(sel.begin(), sel.end(), [](auto* a, auto* b) { return a->created_at > b->created_at; });
    long long total = static_cast<long long>(sel.size());
    long long pages = total == 0 ? 1 : (total + size - 1) / size;
    std::string o = "{\"keys\":[";
    for (long long i = (page - 1) * size, n = 0; i < total && n < size; ++i, ++n) {
      if (n) o += ',';
      if (full) o += keys::to_json(*sel[static_cast<std::size_t>(i)]);
      else append_json_string(o, sel[static_cast<std::size_t>(i)]->token);
    }
    o += "],\"total_count\":" + std::to_string(total) + ",\"current_page\":" + std::to_string(page) +
         ",\"total_pages\":" + std::to_string(pages) + "}";
    return reply{200, std::move(o)};
  }

  reply key_regenerate(const std::string& body, std::string key_from_path) {
    std::string key = std::move(key_from_path);
    keys::key_request r;
    if (!body.empty()) {
      if (auto e = keys::parse_key_request(body, r)) return fail(*e);
      if (key.empty() && r.key) key = *r.key;
    }
    if (key.empty()) return fail(errc::missing_parameter, "Pass the key to regenerate as \"key\".", "key");
    auto k = find_key(key);
    if (!k) return fail(errc::not_found, "Key not found.", "key");
    std::string plain = keys::generate_key();
    std::string token = keys::hash_key(plain);
    if (!db_.rename_key(k->token, token, keys::abbreviate_key(plain)))
      return fail(errc::internal_error, "The key could not be regenerated.");
    auto stored = db_.load_key(token);
    if (!stored) return fail(errc::internal_error, "The regenerated key vanished.");
    // Optional field changes sent along (LiteLLM allows budget/limit updates here).
    r.key.reset();
    keys::apply(r, *stored, now());
    db_.update_key(*stored);
    stored = db_.load_key(token).value_or(*stored);
    changed_key(token, *stored, k->token);
    return reply{200, keys::key_generate_response(*stored, plain, std::nullopt)};
  }

  reply key_block(const std::string& body, bool block) {
    std::vector<std::string> names;
    if (auto e = keys::parse_name_list(body, "key", names, true)) return fail(*e);
    auto k = find_key(names.front());
    if (!k) return fail(errc::not_found, "Key not found.", "key");
    k->blocked = block;
    k->updated_at = now();
    db_.update_key(*k);
    auto stored = db_.load_key(k->token).value_or(*k);
    changed_key(k->token, stored);
    return reply{200, keys::to_json(stored)};
  }

  reply user_new(const std::string& body) {
    keys::user_request r;
    if (auto e = keys::parse_user_request(body.empty() ? "{}" : body, r)) return fail(*e);
    keys::user_record u;
    u.user_id = r.user_id && !r.user_id->empty() ? *r.user_id : new_id();
    u.created_at = now();
    keys::apply(r, u, now());
    if (!db_.insert_user(u)) return fail(errc::conflict, "User '" + u.user_id + "' already exists.", "user_id");
    auto stored = db_.load_user(u.user_id).value_or(u);
    changed_user(u.user_id, stored);
    // LiteLLM creates a key for the new user unless told not to.
    std::string o = keys::to_json(stored);
    if (body.find("\"auto_create_key\":false") == std::string::npos &&
        body.find("\"auto_create_key\": false") == std::string::npos) {
      std::string plain = keys::generate_key();
      keys::key_record k;
      k.token = keys::hash_key(plain);
      k.key_name = keys::abbreviate_key(plain);
      k.user_id = u.user_id;
      k.created_at = k.updated_at = now();
      k.created_by = "master_key";
      if (db_.insert_key(k)) {
        changed_key(k.token, k);
        o.insert(1, "\"key\":" + json_quote(plain) + ",\"token\":" + json_quote(k.token) + ",");
      }
    }
    return reply{200, std::move(o)};
  }

  reply user_info(const std::map<std::string, std::string>& q) {
    auto it = q.find("user_id");
    if (it == q.end() || it->second.empty())
      return fail(errc::missing_parameter, "Pass ?user_id=...", "user_id");
    auto u = db_.load_user(it->second);
    if (!u) return fail(errc::not_found, "User '" + it->second + "' not found.", "user_id");
    auto all = db_.load_all();
    std::string o = "{\"user_id\":" + json_quote(u->user_id) + ",\"user_info\":" + keys::to_json(*u) + ",\"keys\":[";
    bool first = true;
    for (auto& k : all.keys)
      if (k.user_id == u->user_id) {
        if (!first) o += ',';
        first = false;
        o += keys::to_json(k);
      }
    o += "],\"teams\":[";
    first = true;
    for (auto& t : all.teams) {
      bool member = std::any_of(t.members_with_roles.begin(), t.members_with_roles.end(),
                                [&](auto& m) { return m.user_id == u->user_id; }) ||
                    std::find(u->teams.begin(), u->teams.end(), t.team_id) != u->teams.end();
      if (!member) continue;
      if (!first) o += ',';
      first = false;
      o += keys::to_json(t);
    }
    o += "]}";
    return reply{200, std::move(o)};
  }

  /// An update keeps the running budget period unless it changes budget_duration.
  template <class Request, class Record>
  static void apply_update(const Request& r, Record& rec, keys::sys_time at) {
    auto old_reset = rec.budget.budget_reset_at;
    auto old_duration = rec.budget.budget_duration;
    keys::apply(r, rec, at);
    if (!(r.budget_duration && r.budget_duration->value_or("") != old_duration)) rec.budget.budget_reset_at = old_reset;
  }

  reply user_update(const std::string& body) {
    keys::user_request r;
    if (auto e = keys::parse_user_request(body, r)) return fail(*e);
    if (!r.user_id || r.user_id->empty()) return fail(errc::missing_parameter, "Pass \"user_id\".", "user_id");
    auto u = db_.load_user(*r.user_id);
    if (!u) return fail(errc::not_found, "User '" + *r.user_id + "' not found.", "user_id");
    apply_update(r, *u, now());
    db_.update_user(*u);
    auto stored = db_.load_user(u->user_id).value_or(*u);
    changed_user(u->user_id, stored);
    return reply{200, keys::to_json(stored)};
  }

  /// /user/delete and /team/delete: every id must exist (else 404, nothing deleted).
  template <class Exists, class Delete>
  reply delete_all(const std::string& body, const char* param, const char* what, const char* answer_field,
                   Exists exists, Delete del) {
    std::vector<std::string> ids;
    if (auto e = keys::parse_name_list(body, param, ids)) return fail(*e);
    for (auto& id : ids)
      if (!exists(id)) return fail(errc::not_found, std::string(what) + " '" + id + "' not found.", param);
    std::string o = "{\"";
    o += answer_field;
    o += "\":[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
      del(ids[i]);
      if (i) o += ',';
      append_json_string(o, ids[i]);
    }
    o += "]}";
    return reply{200, std::move(o)};
  }

  reply user_delete(const std::string& body) {
    return delete_all(
        body, "user_ids", "User", "deleted_users", [&](const std::string& id) { return db_.load_user(id).has_value(); },
        [&](const std::string& id) {
          db_.delete_user(id);
          changed_user(id, std::nullopt);
        });
  }

  reply team_new(const std::string& body) {
    keys::team_request r;
    if (auto e = keys::parse_team_request(body.empty() ? "{}" : body, r)) return fail(*e);
    keys::team_record t;
    t.team_id = r.team_id && !r.team_id->empty() ? *r.team_id : new_id();
    t.created_at = now();
    keys::apply(r, t, now());
    if (!db_.insert_team(t)) return fail(errc::conflict, "Team '" + t.team_id + "' already exists.", "team_id");
    auto stored = db_.load_team(t.team_id).value_or(t);
    changed_team(t.team_id, stored);
    return reply{200, keys::to_json(stored)};
  }

  reply team_info(const std::map<std::string, std::string>& q) {
    auto it = q.find("team_id");
    if (it == q.end() || it->second.empty()) return fail(errc::missing_parameter, "Pass ?team_id=...", "team_id");
    auto t = db_.load_team(it->second);
    if (!t) return fail(errc::not_found, "Team '" + it->second + "' not found.", "team_id");
    auto all = db_.load_all();
    std::string o = "{\"team_id\":" + json_quote(t->team_id) + ",\"team_info\":" + keys::to_json(*t) + ",\"keys\":[";
    bool first = true;
    for (auto& k : all.keys)
      if (k.team_id == t->team_id) {
        if (!first) o += ',';
        first = false;
        o += keys::to_json(k);
      }
    o += "]}";
    return reply{200, std::move(o)};
  }

  reply team_update(const std::string& body) {
    keys::team_request r;
    if (auto e = keys::parse_team_request(body, r)) return fail(*e);
    if (!r.team_id || r.team_id->empty()) return fail(errc::missing_parameter, "Pass \"team_id\".", "team_id");
    auto t = db_.load_team(*r.team_id);
    if (!t) return fail(errc::not_found, "Team '" + *r.team_id + "' not found.", "team_id");
    apply_update(r, *t, now());
    db_.update_team(*t);
    auto stored = db_.load_team(t->team_id).value_or(*t);
    changed_team(t->team_id, stored);
    return reply{200, "{\"team_id\":" + json_quote(stored.team_id) + ",\"data\":" + keys::to_json(stored) + "}"};
  }

  reply team_delete(const std::string& body) {
    return delete_all(
        body, "team_ids", "Team", "deleted_teams", [&](const std::string& id) { return db_.load_team(id).has_value(); },
        [&](const std::string& id) {
          db_.delete_team(id);
          changed_team(id, std::nullopt);
        });
  }

  reply team_list() {
    auto all = db_.load_all();
    std::string o = "[";
    for (std::size_t i = 0; i < all.teams.size(); ++i) {
      if (i) o += ',';
      o += keys::to_json(all.teams[i]);
    }
    o += "]";
    return reply{200, std::move(o)};
  }

  reply member_add(const std::string& body) {
    keys::member_request r;
    if (auto e = keys::parse_member_add(body, r)) return fail(*e);
    auto t = db_.load_team(r.team_id);
    if (!t) return fail(errc::not_found, "Team '" + r.team_id + "' not found.", "team_id");
    for (auto& m : r.members) {
      auto same = [&](const keys::team_member& x) {
        return (!m.user_id.empty() && x.user_id == m.user_id) || (!m.user_email.empty() && x.user_email == m.user_email);
      };
      if (std::any_of(t->members_with_roles.begin(), t->members_with_roles.end(), same))
        return fail(errc::conflict, "Member '" + (m.user_id.empty() ? m.user_email : m.user_id) +
                                        "' is already in team '" + t->team_id + "'.",
                    "member");
      t->members_with_roles.push_back(m);
    }
    t->updated_at = now();
    db_.update_team(*t);
    for (auto& m : r.members) {
      if (m.user_id.empty()) continue;
      if (auto u = db_.load_user(m.user_id)) {
        if (std::find(u->teams.begin(), u->teams.end(), t->team_id) == u->teams.end()) {
          u->teams.push_back(t->team_id);
          db_.update_user(*u);
          changed_user(u->user_id, db_.load_user(u->user_id));
        }
      }
    }
    auto stored = db_.load_team(t->team_id).value_or(*t);
    changed_team(t->team_id, stored);
    return reply{200, keys::to_json(stored)};
  }

  reply member_delete(const std::string& body) {
    keys::member_request r;
    if (auto e = keys::parse_member_delete(body, r)) return fail(*e);
    auto t = db_.load_team(r.team_id);
    if (!t) return fail(errc::not_found, "Team '" + r.team_id + "' not found.", "team_id");
    const auto& m = r.members.front();
    auto before = t->members_with_roles.size();
    std::erase_if(t->members_with_roles, [&](const keys::team_member& x) {
      return (!m.user_id.empty() && x.user_id == m.user_id) || (!m.user_email.empty() && x.user_email == m.user_email);
    });
    if (t->members_with_roles.size() == before)
      return fail(errc::not_found, "That member is not in team '" + t->team_id + "'.", "user_id");
    t->updated_at = now();
    db_.update_team(*t);
    if (!m.user_id.empty())
      if (auto u = db_.load_user(m.user_id)) {
        std::erase(u->teams, t->team_id);
        db_.update_user(*u);
        changed_user(u->user_id, db_.load_user(u->user_id));
      }
    auto stored = db_.load_team(t->team_id).value_or(*t);
    changed_team(t->team_id, stored);
    return reply{200, keys::to_json(stored)};
  }

  reply spend_logs(const std::map<std::string, std::string>& q) {
    spend_query sq;
    auto get = [&](const char* k) -> std::optional<std::string> {
      auto it = q.find(k);
      if (it == q.end() || it->second.empty()) return std::nullopt;
      return it->second;
    };
    sq.request_id = get("request_id");
    if (auto k = get("api_key")) {
      bool is_token = k->size() == 64 && k->find_first_not_of("0123456789abcdef") == std::string::npos;
      sq.api_key = is_token ? *k : keys::hash_key(*k);
    }
    sq.user_id = get("user_id");
    sq.team_id = get("team_id");
    sq.model_group = get("model");
    if (auto s = get("start_date")) {
      sq.start = parse_date(*s);
      if (!sq.start) return fail(errc::invalid_request, "start_date must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", "start_date");
    }
    if (auto s = get("end_date")) {
      auto e = parse_date(*s);
      if (!e) return fail(errc::invalid_request, "end_date must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", "end_date");
      // A bare date means the whole day.
      sq.end = s->size() <= 10 ? *e + std::chrono::hours(24) : *e;
    }
    if (auto l = get("limit")) {
      auto v = parse_int(*l);
      if (!v || *v < 1 || *v > 10000) return fail(errc::invalid_request, "limit must be an integer in 1..10000", "limit");
      sq.limit = static_cast<std::size_t>(*v);
    }
    if (auto l = get("offset")) {
      auto v = parse_int(*l);
      if (!v) return fail(errc::invalid_request, "offset must be an integer >= 0", "offset");
      sq.offset = static_cast<std::size_t>(*v);
    }
    auto rows = db_.spend_logs(sq);
    std::string o = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& l = rows[i];
      if (i) o += ',';
      o += "{\"request_id\":" + json_quote(l.request_id) + ",\"call_type\":" + json_quote(l.call_type) +
           ",\"api_key\":" + json_quote(l.api_key) + ",\"spend\":";
      append_json_number(o, keys::to_dollars(l.spend));
      o += ",\"spend_exact\":" + json_quote(keys::to_decimal(l.spend));
      o += ",\"total_tokens\":" + std::to_string(l.total_tokens) +
           ",\"prompt_tokens\":" + std::to_string(l.prompt_tokens) +
           ",\"completion_tokens\":" + std::to_string(l.completion_tokens) +
           ",\"startTime\":" + json_quote(keys::iso_time(l.start_time)) +
           ",\"endTime\":" + json_quote(keys::iso_time(l.end_time)) +
           ",\"completionStartTime\":" + iso(l.completion_start_time) + ",\"model\":" + json_quote(l.model) +
           ",\"model_id\":" + json_quote(l.model_id) + ",\"model_group\":" + json_quote(l.model_group) +
           ",\"api_base\":" + json_quote(l.api_base) + ",\"user\":" + json_quote(l.user_id) +
           ",\"team_id\":" + json_quote(l.team_id) + ",\"key_alias\":" + json_quote(l.key_alias) +
           ",\"status\":" + json_quote(l.status) + ",\"http_status\":" + std::to_string(l.http_status) +
           ",\"cache_hit\":" + (l.cache_hit ? "\"True\"" : "\"False\"") + ",\"request_duration_ms\":" +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(l.end_time - l.start_time).count()) +
           ",\"metadata\":{\"user_api_key\":" + json_quote(l.api_key) + ",\"user_api_key_alias\":" +
           json_quote(l.key_alias) + ",\"user_api_key_user_id\":" + json_quote(l.user_id) +
           ",\"user_api_key_team_id\":" + json_quote(l.team_id) + ",\"request_metadata\":" +
           (l.metadata.empty() ? std::string("{}") : l.metadata) + "},\"route\":" + json_quote(l.route) +
           ",\"proxy_server_request\":" + (l.request_body.empty() ? std::string("null") : l.request_body) + "}";
    }
    o += "]";
    return reply{200, std::move(o)};
  }

  reply global_spend() {
    std::string o = "{\"spend\":";
    auto s = db_.global_spend();
    append_json_number(o, keys::to_dollars(s));
    o += ",\"spend_exact\":" + json_quote(keys::to_decimal(s)) + ",\"max_budget\":null}";
    return reply{200, std::move(o)};
  }

  std::optional<std::size_t> limit_of(const std::map<std::string, std::string>& q, reply& err) {
    auto it = q.find("limit");
    if (it == q.end() || it->second.empty()) return 100;
    auto v = parse_int(it->second);
    if (!v || *v < 1 || *v > 10000) {
      err = fail(errc::invalid_request, "limit must be an integer in 1..10000", "limit");
      return std::nullopt;
    }
    return static_cast<std::size_t>(*v);
  }

  reply spend_keys(const std::map<std::string, std::string>& q) {
    reply err;
    auto limit = limit_of(q, err);
    if (!limit) return err;
    auto rows = db_.spend_by_key(*limit);
    std::string o = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i) o += ',';
      o += "{\"api_key\":" + json_quote(rows[i].name) + ",\"key_alias\":" + json_quote(rows[i].label) +
           ",\"total_spend\":";
      append_json_number(o, keys::to_dollars(rows[i].spend));
      o += ",\"total_spend_exact\":" + json_quote(keys::to_decimal(rows[i].spend)) + "}";
    }
    o += "]";
    return reply{200, std::move(o)};
  }

  reply spend_models(const std::map<std::string, std::string>& q) {
    reply err;
    auto limit = limit_of(q, err);
    if (!limit) return err;
    auto rows = db_.spend_by_model(*limit);
    std::string o = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i) o += ',';
      o += "{\"model\":" + json_quote(rows[i].name) + ",\"total_spend\":";
      append_json_number(o, keys::to_dollars(rows[i].spend));
      o += ",\"total_spend_exact\":" + json_quote(keys::to_decimal(rows[i].spend)) +
           ",\"requests\":" + std::to_string(rows[i].requests) +
           ",\"prompt_tokens\":" + std::to_string(rows[i].prompt_tokens) +
           ",\"completion_tokens\":" + std::to_string(rows[i].completion_tokens) + "}";
    }
    o += "]";
    return reply{200, std::move(o)};
  }

  static std::string new_id();

  service& svc_;
  backend& db_;
};

std::string admin_ops::new_id() {
  // A UUIDv4 without a dependency on the request-id helper's format.
  auto k = keys::generate_key();
  return keys::hash_key(k).substr(0, 32);
}

caf::behavior admin_fn(admin_actor* self, service* svc, std::unique_ptr<backend> b) {
  self->set_default_handler(caf::drop);
  self->state.svc = svc;
  self->state.db = std::move(b);
  return {
      [=](admin_atom, admin_request& r) {
        reply out;
        try {
          admin_ops ops(*self->state.svc, *self->state.db);
          out = ops.run(r.route, r.body, r.query);
          self->state.svc->state().db_ok = true;
        } catch (const store::store_error& e) {
          self->state.svc->state().db_ok = false;
          out = fail(errc::service_unavailable, std::string("The database is unavailable: ") + e.what());
        } catch (const std::exception& e) {
          out = fail(errc::internal_error, std::string("Admin request failed: ") + e.what());
        }
        r.cb(out.status, std::move(out.body));
      },
      [=](ask_atom, lookup_request& r) {
        // An unknown key on the request path: read it (with its user and team).
        auto& db = *self->state.db;
        try {
          auto k = db.load_key(r.token);
          if (!k) {
            r.cb(nullptr);
            return;
          }
          std::optional<keys::user_record> u;
          std::optional<keys::team_record> t;
          if (!k->user_id.empty()) u = db.load_user(k->user_id);
          if (!k->team_id.empty()) t = db.load_team(k->team_id);
          auto entry = derive_entry(*k, u ? &*u : nullptr, t ? &*t : nullptr);
          std::vector<record_change> cs;
          if (u) cs.push_back(record_change{record_change::what::user, u->user_id, std::nullopt, u, std::nullopt, ""});
          if (t) cs.push_back(record_change{record_change::what::team, t->team_id, std::nullopt, std::nullopt, t, ""});
          cs.push_back(record_change{record_change::what::key, k->token, k, std::nullopt, std::nullopt, ""});
          caf::anon_send(self->state.svc->key_service_actor(), changed_atom::value, std::move(cs));
          r.cb(entry);
        } catch (const std::exception&) {
          // Unknown and the database is away: refuse (the caller caches the miss briefly).
          r.cb(nullptr);
        }
      },
  };
}

}  // namespace

caf::actor spawn_admin_worker(caf::actor_system& sys, service* svc, std::unique_ptr<backend> b) {
  return sys.spawn<caf::detached>(admin_fn, svc, std::move(b));
}

}  // namespace gw::accounts
