// gw::store against a real PostgreSQL: a throwaway server (scripts/pg-temp.sh) for the
// whole process, and a fresh, migrated schema for every test.

#include "gw/store/pg_store.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "gw/keys/model.hpp"

#include "pg_server.hpp"

namespace {

using namespace std::chrono_literals;
using gw::keys::money;
using gw::keys::sys_time;
namespace keys = gw::keys;
namespace store = gw::store;

constexpr money usd = keys::pico_per_dollar;


// ---- records with every field set (microsecond times, jsonb-normalized metadata) ----

sys_time at_micros(std::int64_t us) { return sys_time{std::chrono::microseconds{us}}; }

keys::budget full_budget(money max, money spend) {
  keys::budget b;
  b.max_budget = max;
  b.soft_budget = max / 2 + 1;
  b.budget_duration = "30d";
  b.budget_reset_at = at_micros(1'900'000'000'123'456);
  b.spend = spend;
  return b;
}

keys::limits full_limits() {
  keys::limits l;
  l.tpm_limit = 100'000;
  l.rpm_limit = 600;
  l.max_parallel_requests = 8;
  l.model_rpm_limit = {{"gpt-4o", 60}, {"claude \"3\"", 5}};
  l.model_tpm_limit = {{"gpt-4o", 90'000}};
  return l;
}

keys::key_record full_key(const std::string& token, const std::string& alias) {
  keys::key_record k;
  k.token = token;
  k.key_name = "sk-...abcd";
  k.key_alias = alias;
  k.models = {"gpt-4o", "claude-3, \"opus\"", "a\\b", "{braces}"};
  k.user_id = "user-1";
  k.team_id = "team-1";
  k.budget = full_budget(123'456'789'012'345, 1);  // 123.456789012345 USD, 1 picodollar
  k.limits = full_limits();
  k.model_max_budget["gpt-4o"] = {5 * usd + 7, "1d", at_micros(1'800'000'000'000'001), 3};
  k.model_max_budget["mini"] = {usd / 3, "", std::nullopt, 0};
  k.model_spend = {{"gpt-4o", 2 * usd + 999}, {"mini", 1}};
  k.total_spend = 9'223'372'036'854'775'807;  // the largest money value
  k.expires = at_micros(2'000'000'000'000'000);
  k.metadata = R"({"n": 1, "tags": ["x", "y"], "nested": {"k": "v"}})";
  k.blocked = true;
  k.created_at = at_micros(1'700'000'000'000'007);
  k.updated_at = at_micros(1'700'000'100'000'008);
  k.created_by = "admin";
  return k;
}

keys::user_record full_user(const std::string& id) {
  keys::user_record u;
  u.user_id = id;
  u.user_alias = "Ada";
  u.user_email = "ada@example.com";
  u.user_role = "proxy_admin";
  u.teams = {"team-1", "team-2"};
  u.models = {"gpt-4o"};
  u.budget = full_budget(50 * usd, usd / 7);
  u.limits = full_limits();
  u.total_spend = 77 * usd + 1;
  u.metadata = R"({"dept": "r&d"})";
  u.created_at = at_micros(1'700'000'000'000'001);
  u.updated_at = at_micros(1'700'000'000'000'002);
  return u;
}

keys::team_record full_team(const std::string& id) {
  keys::team_record t;
  t.team_id = id;
  t.team_alias = "Research";
  t.members_with_roles = {{"user-1", "ada@example.com", "admin"}, {"user-2", "", "user"}};
  t.models = {"gpt-4o", "mini"};
  t.budget = full_budget(1000 * usd, 0);
  t.limits = full_limits();
  t.total_spend = 12;
  t.metadata = R"({"cost_center": 42})";
  t.blocked = true;
  t.created_at = at_micros(1'700'000'000'000'003);
  t.updated_at = at_micros(1'700'000'000'000'004);
  return t;
}

void expect_same_budget(const keys::budget& a, const keys::budget& b) {
  EXPECT_EQ(a.max_budget, b.max_budget);
  EXPECT_EQ(a.soft_budget, b.soft_budget);
  EXPECT_EQ(a.budget_duration, b.budget_duration);
  EXPECT_EQ(a.budget_reset_at, b.budget_reset_at);
  EXPECT_EQ(a.spend, b.spend);
}

void expect_same_limits(const keys::limits& a, const keys::limits& b) {
  EXPECT_EQ(a.tpm_limit, b.tpm_limit);
  EXPECT_EQ(a.rpm_limit, b.rpm_limit);
  EXPECT_EQ(a.max_parallel_requests, b.max_parallel_requests);
  EXPECT_EQ(a.model_rpm_limit, b.model_rpm_limit);
  EXPECT_EQ(a.model_tpm_limit, b.model_tpm_limit);
}

void expect_same(const keys::key_record& a, const keys::key_record& b) {
  EXPECT_EQ(a.token, b.token);
  EXPECT_EQ(a.key_name, b.key_name);
  EXPECT_EQ(a.key_alias, b.key_alias);
  EXPECT_EQ(a.models, b.models);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.team_id, b.team_id);
  expect_same_budget(a.budget, b.budget);
  expect_same_limits(a.limits, b.limits);
  ASSERT_EQ(a.model_max_budget.size(), b.model_max_budget.size());
  for (const auto& [model, mb] : a.model_max_budget) {
    SCOPED_TRACE(model);
    ASSERT_TRUE(b.model_max_budget.count(model));
    const auto& other = b.model_max_budget.at(model);
    EXPECT_EQ(mb.budget_limit, other.budget_limit);
    EXPECT_EQ(mb.time_period, other.time_period);
    EXPECT_EQ(mb.reset_at, other.reset_at);
    EXPECT_EQ(mb.spend, other.spend);
  }
  EXPECT_EQ(a.model_spend, b.model_spend);
  EXPECT_EQ(a.total_spend, b.total_spend);
  EXPECT_EQ(a.expires, b.expires);
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(a.blocked, b.blocked);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.created_by, b.created_by);
}

void expect_same(const keys::user_record& a, const keys::user_record& b) {
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.user_alias, b.user_alias);
  EXPECT_EQ(a.user_email, b.user_email);
  EXPECT_EQ(a.user_role, b.user_role);
  EXPECT_EQ(a.teams, b.teams);
  EXPECT_EQ(a.models, b.models);
  expect_same_budget(a.budget, b.budget);
  expect_same_limits(a.limits, b.limits);
  EXPECT_EQ(a.total_spend, b.total_spend);
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
}

void expect_same(const keys::team_record& a, const keys::team_record& b) {
  EXPECT_EQ(a.team_id, b.team_id);
  EXPECT_EQ(a.team_alias, b.team_alias);
  ASSERT_EQ(a.members_with_roles.size(), b.members_with_roles.size());
  for (std::size_t i = 0; i < a.members_with_roles.size(); ++i) {
    EXPECT_EQ(a.members_with_roles[i].user_id, b.members_with_roles[i].user_id);
    EXPECT_EQ(a.members_with_roles[i].user_email, b.members_with_roles[i].user_email);
    EXPECT_EQ(a.members_with_roles[i].role, b.members_with_roles[i].role);
  }
  EXPECT_EQ(a.models, b.models);
  expect_same_budget(a.budget, b.budget);
  expect_same_limits(a.limits, b.limits);
  EXPECT_EQ(a.total_spend, b.total_spend);
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(a.blocked, b.blocked);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
}

/// A key with a budget and nothing else.
keys::key_record budget_key(const std::string& token, std::optional<money> max, money spend = 0) {
  keys::key_record k;
  k.token = token;
  k.budget.max_budget = max;
  k.budget.spend = spend;
  return k;
}

store::spend_log_row log_row(const std::string& request_id, const std::string& api_key, const std::string& model_group,
                             sys_time start, money spend) {
  store::spend_log_row l;
  l.request_id = request_id;
  l.call_type = "chat";
  l.api_key = api_key;
  l.key_alias = api_key.empty() ? "" : "alias-" + api_key;
  l.user_id = "user-" + api_key;
  l.team_id = "team-" + model_group;
  l.model_group = model_group;
  l.model_id = "deployment-1";
  l.model = "openai/" + model_group;
  l.api_base = "http://127.0.0.1:9/v1";
  l.prompt_tokens = 10;
  l.completion_tokens = 5;
  l.total_tokens = 15;
  l.spend = spend;
  l.start_time = start;
  l.end_time = start + 1500ms;
  l.completion_start_time = start + 200ms;
  l.status = "success";
  l.http_status = 200;
  l.cache_hit = false;
  l.metadata = R"({"tags": ["a"]})";
  return l;
}

/// "YYYY-MM-DD"
std::string day_text(std::chrono::sys_days d) {
  std::chrono::year_month_day ymd{d};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

/// The current time truncated to microseconds (what timestamptz keeps).
sys_time now_micros() { return std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now()); }

class pg_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(g_url.empty()) << "no PostgreSQL server: " << g_failure;
    reset_schema();
    std::vector<std::string> log;
    ASSERT_EQ(store::migrate(g_url, log), store::schema_version());
  }

  static void reset_schema() { sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public"); }

  store::pg_store db{g_url};
};

}  // namespace

// ---- migrations ----

TEST_F(pg_store_test, migrate_twice_second_is_a_no_op) {
  reset_schema();
  std::vector<std::string> log;
  EXPECT_EQ(store::migrate(g_url, log), store::schema_version());
  ASSERT_EQ(log.size(), static_cast<std::size_t>(store::schema_version()));
  EXPECT_EQ(log[0], "applied migration 0001_init");
  EXPECT_EQ(sql_value("SELECT name FROM schema_migrations WHERE version = 1"), "init");

  log.clear();
  EXPECT_EQ(store::migrate(g_url, log), store::schema_version());
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(sql_value("SELECT count(*) FROM schema_migrations"), std::to_string(store::schema_version()));
}

TEST_F(pg_store_test, concurrent_migrations_serialize) {
  reset_schema();
  constexpr int nodes = 4;
  std::array<std::vector<std::string>, nodes> logs;
  std::array<int, nodes> versions{};
  std::array<std::string, nodes> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < nodes; ++i) {
    threads.emplace_back([&, i] {
      try {
        versions[i] = store::migrate(g_url, logs[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::size_t applied = 0;
  for (int i = 0; i < nodes; ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_EQ(versions[i], store::schema_version());
    applied += logs[i].size();
  }
  EXPECT_EQ(applied, static_cast<std::size_t>(store::schema_version()));  // each migration ran once
}

TEST_F(pg_store_test, migrate_reports_an_unreachable_server) {
  std::vector<std::string> log;
  EXPECT_THROW(store::migrate("postgresql://postgres@127.0.0.1:1/postgres", log), store::store_error);
}

// ---- records ----

TEST_F(pg_store_test, key_round_trips_every_field) {
  auto k = full_key("tok-1", "alias-1");
  ASSERT_TRUE(db.insert_key(k));
  auto loaded = db.load_key("tok-1");
  ASSERT_TRUE(loaded);
  expect_same(k, *loaded);

  auto all = db.load_all();
  ASSERT_EQ(all.keys.size(), 1u);
  expect_same(k, all.keys[0]);
  EXPECT_FALSE(db.load_key("missing"));

  // Money is NUMERIC: exact decimal text in the table.
  EXPECT_EQ(sql_value("SELECT max_budget::text FROM llm_keys"), "123.456789012345");
  EXPECT_EQ(sql_value("SELECT total_spend::text FROM llm_keys"), "9223372.036854775807");
}

TEST_F(pg_store_test, key_with_empty_fields_round_trips) {
  keys::key_record k;
  k.token = "tok-bare";
  k.created_at = at_micros(1'700'000'000'000'000);
  k.updated_at = k.created_at;
  ASSERT_TRUE(db.insert_key(k));
  auto loaded = db.load_key("tok-bare");
  ASSERT_TRUE(loaded);
  expect_same(k, *loaded);
  EXPECT_EQ(sql_value("SELECT key_alias IS NULL AND user_id IS NULL AND max_budget IS NULL FROM llm_keys"), "t");
}

TEST_F(pg_store_test, model_spend_reads_numbers_and_strings_exactly) {
  ASSERT_TRUE(db.insert_key(budget_key("tok", std::nullopt)));
  // As written by this store (decimal strings) or by hand / another tool (numbers).
  sql(R"(UPDATE llm_keys SET model_spend = '{"a": "2.5", "b": 0.000000000001, "c": 12345.000000000001}')");
  auto k = db.load_key("tok");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->model_spend,
            (std::map<std::string, money>{{"a", 2 * usd + usd / 2}, {"b", 1}, {"c", 12345 * usd + 1}}));
}

TEST_F(pg_store_test, duplicate_token_or_alias_is_refused) {
  ASSERT_TRUE(db.insert_key(full_key("tok-1", "alias-1")));
  EXPECT_FALSE(db.insert_key(full_key("tok-1", "alias-2")));  // same token
  EXPECT_FALSE(db.insert_key(full_key("tok-2", "alias-1")));  // same alias
  // No alias is no conflict.
  EXPECT_TRUE(db.insert_key(full_key("tok-3", "")));
  EXPECT_TRUE(db.insert_key(full_key("tok-4", "")));
  EXPECT_EQ(db.load_all().keys.size(), 3u);
}

TEST_F(pg_store_test, update_key_replaces_editable_fields_and_keeps_spend) {
  auto k = full_key("tok-1", "alias-1");
  ASSERT_TRUE(db.insert_key(k));
  ASSERT_TRUE(db.insert_key(full_key("tok-2", "alias-2")));

  auto edited = k;
  edited.key_alias = "renamed";
  edited.models = {"only-this"};
  edited.user_id.clear();
  edited.budget.max_budget = std::nullopt;
  edited.budget.budget_duration = "1mo";
  edited.budget.budget_reset_at = std::nullopt;
  edited.limits.model_rpm_limit = {};
  edited.model_max_budget.erase("mini");
  edited.model_max_budget["gpt-4o"].budget_limit = 9 * usd;
  edited.model_max_budget["gpt-4o"].spend = 0;  // spend is not editable
  edited.model_max_budget["new"] = {usd, "7d", std::nullopt, 0};
  edited.expires = std::nullopt;
  edited.metadata = R"({"v": 2})";
  edited.blocked = false;
  edited.updated_at = at_micros(1'750'000'000'000'000);
  edited.budget.spend = 999;  // none of these are written
  edited.total_spend = 999;
  edited.model_spend = {};
  ASSERT_TRUE(db.update_key(edited));

  auto expected = edited;
  expected.budget.spend = k.budget.spend;
  expected.total_spend = k.total_spend;
  expected.model_spend = k.model_spend;
  expected.model_max_budget["gpt-4o"].spend = k.model_max_budget["gpt-4o"].spend;
  auto loaded = db.load_key("tok-1");
  ASSERT_TRUE(loaded);
  expect_same(expected, *loaded);

  EXPECT_FALSE(db.update_key(full_key("missing", "")));
  auto clash = edited;
  clash.key_alias = "alias-2";  // another key's alias
  EXPECT_FALSE(db.update_key(clash));
}

TEST_F(pg_store_test, rename_and_delete_key) {
  ASSERT_TRUE(db.insert_key(full_key("tok-1", "alias-1")));
  ASSERT_TRUE(db.insert_key(full_key("tok-2", "alias-2")));
  ASSERT_TRUE(db.lease({store::entity_kind::key, "tok-1", ""}, "node-a", usd, 60s).exists);

  ASSERT_TRUE(db.rename_key("tok-1", "tok-new", "sk-...wxyz"));
  EXPECT_FALSE(db.load_key("tok-1"));
  auto renamed = db.load_key("tok-new");
  ASSERT_TRUE(renamed);
  auto expected = full_key("tok-new", "alias-1");
  expected.key_name = "sk-...wxyz";
  expected.updated_at = renamed->updated_at;  // set by the rename
  expect_same(expected, *renamed);
  EXPECT_EQ(sql_value("SELECT count(*) FROM llm_budget_leases WHERE entity_id = 'tok-1'"), "0");

  EXPECT_FALSE(db.rename_key("tok-1", "tok-x", "sk-...x"));    // absent
  EXPECT_FALSE(db.rename_key("tok-new", "tok-2", "sk-...x"));  // target taken

  EXPECT_TRUE(db.delete_key("tok-new"));
  EXPECT_FALSE(db.delete_key("tok-new"));
  EXPECT_FALSE(db.load_key("tok-new"));
  EXPECT_EQ(sql_value("SELECT count(*) FROM llm_key_model_budgets WHERE token = 'tok-new'"), "0");
  EXPECT_TRUE(db.load_key("tok-2"));
}

TEST_F(pg_store_test, user_round_trip_update_delete) {
  auto u = full_user("user-1");
  ASSERT_TRUE(db.insert_user(u));
  EXPECT_FALSE(db.insert_user(u));
  auto loaded = db.load_user("user-1");
  ASSERT_TRUE(loaded);
  expect_same(u, *loaded);

  auto edited = u;
  edited.user_alias = "";
  edited.user_role = "internal_user";
  edited.teams = {};
  edited.budget.max_budget = 1;
  edited.limits.tpm_limit = std::nullopt;
  edited.metadata = "{}";
  edited.budget.spend = 5;  // not written
  edited.total_spend = 5;   // not written
  ASSERT_TRUE(db.update_user(edited));
  edited.budget.spend = u.budget.spend;
  edited.total_spend = u.total_spend;
  loaded = db.load_user("user-1");
  ASSERT_TRUE(loaded);
  expect_same(edited, *loaded);
  EXPECT_FALSE(db.update_user(full_user("missing")));

  ASSERT_EQ(db.load_all().users.size(), 1u);
  EXPECT_TRUE(db.delete_user("user-1"));
  EXPECT_FALSE(db.delete_user("user-1"));
  EXPECT_FALSE(db.load_user("user-1"));
}

TEST_F(pg_store_test, team_round_trip_update_delete) {
  auto t = full_team("team-1");
  ASSERT_TRUE(db.insert_team(t));
  EXPECT_FALSE(db.insert_team(t));
  auto loaded = db.load_team("team-1");
  ASSERT_TRUE(loaded);
  expect_same(t, *loaded);

  auto edited = t;
  edited.members_with_roles = {{"user-3", "c@example.com", "user"}};
  edited.blocked = false;
  edited.budget.budget_duration = "";
  edited.updated_at = at_micros(1'760'000'000'000'000);
  ASSERT_TRUE(db.update_team(edited));
  loaded = db.load_team("team-1");
  ASSERT_TRUE(loaded);
  expect_same(edited, *loaded);
  EXPECT_FALSE(db.update_team(full_team("missing")));

  ASSERT_EQ(db.load_all().teams.size(), 1u);
  EXPECT_TRUE(db.delete_team("team-1"));
  EXPECT_FALSE(db.delete_team("team-1"));
  EXPECT_FALSE(db.load_team("team-1"));
}

// ---- leases ----

TEST_F(pg_store_test, lease_is_capped_by_budget_spend_and_other_nodes) {
  ASSERT_TRUE(db.insert_key(budget_key("tok", 10 * usd, 2 * usd)));
  store::entity_ref key{store::entity_kind::key, "tok", ""};

  auto a = db.lease(key, "node-a", 5 * usd, 60s);
  EXPECT_TRUE(a.exists);
  EXPECT_EQ(a.granted, 5 * usd);
  EXPECT_EQ(a.max_budget, 10 * usd);
  EXPECT_EQ(a.spend, 2 * usd);
  EXPECT_EQ(a.leased_by_others, 0);
  EXPECT_EQ(a.own_lease, 5 * usd);

  store::pg_store other(g_url);
  auto b = other.lease(key, "node-b", 5 * usd, 60s);
  EXPECT_EQ(b.granted, 3 * usd);  // 10 - 2 spent - 5 leased to node-a
  EXPECT_EQ(b.leased_by_others, 5 * usd);
  EXPECT_EQ(b.own_lease, 3 * usd);

  auto c = other.lease(key, "node-b", 1, 60s);
  EXPECT_EQ(c.granted, 0);
  EXPECT_EQ(c.own_lease, 3 * usd);

  // node-a adds to its own lease once node-b gives some back.
  store::spend_batch give_back;
  give_back.node_id = "node-b";
  give_back.lease_returns[key] = usd + 1;
  ASSERT_TRUE(other.apply(give_back, "b-1", 60s));
  auto d = db.lease(key, "node-a", 10 * usd, 60s);
  EXPECT_EQ(d.granted, usd + 1);
  EXPECT_EQ(d.own_lease, 6 * usd + 1);
  EXPECT_EQ(d.leased_by_others, 2 * usd - 1);
}

TEST_F(pg_store_test, expired_lease_no_longer_counts) {
  ASSERT_TRUE(db.insert_key(budget_key("tok", 10 * usd, 2 * usd)));
  store::entity_ref key{store::entity_kind::key, "tok", ""};
  ASSERT_EQ(db.lease(key, "node-a", 5 * usd, 60s).granted, 5 * usd);
  sql("UPDATE llm_budget_leases SET expires_at = now() - interval '1 second' WHERE node_id = 'node-a'");

  auto b = db.lease(key, "node-b", 10 * usd, 60s);
  EXPECT_EQ(b.leased_by_others, 0);
  EXPECT_EQ(b.granted, 8 * usd);

  // node-a's expired lease restarts from 0 rather than from its old amount.
  auto a = db.lease(key, "node-a", usd, 60s);
  EXPECT_EQ(a.granted, 0);
  EXPECT_EQ(a.own_lease, 0);
  EXPECT_EQ(a.leased_by_others, 8 * usd);
}

TEST_F(pg_store_test, lease_without_cap_and_on_missing_entities) {
  ASSERT_TRUE(db.insert_key(budget_key("tok", std::nullopt)));
  auto g = db.lease({store::entity_kind::key, "tok", ""}, "node-a", 7 * usd, 60s);
  EXPECT_TRUE(g.exists);
  EXPECT_EQ(g.granted, 7 * usd);
  EXPECT_FALSE(g.max_budget);

  EXPECT_FALSE(db.lease({store::entity_kind::key, "missing", ""}, "node-a", usd, 60s).exists);
  EXPECT_FALSE(db.lease({store::entity_kind::user, "missing", ""}, "node-a", usd, 60s).exists);
  EXPECT_FALSE(db.lease({store::entity_kind::team, "missing", ""}, "node-a", usd, 60s).exists);
  EXPECT_FALSE(db.lease({store::entity_kind::key_model, "tok", "gpt-4o"}, "node-a", usd, 60s).exists);
  EXPECT_EQ(sql_value("SELECT count(*) FROM llm_budget_leases"), "1");
}

TEST_F(pg_store_test, lease_on_users_teams_and_model_budgets) {
  auto u = full_user("user-1");
  u.budget.budget_reset_at = std::nullopt;
  u.budget.budget_duration = "";
  ASSERT_TRUE(db.insert_user(u));
  auto t = full_team("team-1");
  t.budget.budget_duration = "";
  ASSERT_TRUE(db.insert_team(t));
  auto k = full_key("tok", "");
  k.model_max_budget["gpt-4o"].reset_at = std::nullopt;
  k.model_max_budget["gpt-4o"].time_period = "";
  ASSERT_TRUE(db.insert_key(k));

  auto gu = db.lease({store::entity_kind::user, "user-1", ""}, "node-a", 100 * usd, 60s);
  EXPECT_EQ(gu.granted, 50 * usd - usd / 7);
  auto gt = db.lease({store::entity_kind::team, "team-1", ""}, "node-a", usd, 60s);
  EXPECT_EQ(gt.granted, usd);
  EXPECT_EQ(gt.max_budget, 1000 * usd);
  auto gm = db.lease({store::entity_kind::key_model, "tok", "gpt-4o"}, "node-a", 100 * usd, 60s);
  EXPECT_EQ(gm.max_budget, 5 * usd + 7);
  EXPECT_EQ(gm.spend, 3);
  EXPECT_EQ(gm.granted, 5 * usd + 4);
}

TEST_F(pg_store_test, lazy_reset_when_the_period_has_passed) {
  auto k = budget_key("tok", 10 * usd, 9 * usd);
  k.total_spend = 20 * usd;
  k.budget.budget_duration = "1d";
  auto passed = now_micros() - 1h;
  k.budget.budget_reset_at = passed;
  ASSERT_TRUE(db.insert_key(k));

  auto g = db.lease({store::entity_kind::key, "tok", ""}, "node-a", 4 * usd, 60s);
  EXPECT_EQ(g.spend, 0);
  EXPECT_EQ(g.granted, 4 * usd);
  // A daily budget's new period ends at the next midnight (UTC: the default calendar).
  ASSERT_TRUE(g.budget_reset_at);
  auto midnight = std::chrono::floor<std::chrono::days>(*g.budget_reset_at);
  EXPECT_EQ(*g.budget_reset_at, keys::sys_time(midnight));
  EXPECT_GT(*g.budget_reset_at, now_micros() - 1s);
  EXPECT_LE(*g.budget_reset_at, now_micros() + 24h);
  auto loaded = db.load_key("tok");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->budget.spend, 0);
  EXPECT_EQ(loaded->total_spend, 20 * usd);  // lifetime spend is never reset
  EXPECT_EQ(loaded->budget.budget_reset_at, g.budget_reset_at);

  // Far behind with a short period: one jump, to the first reset time in the future.
  auto u = full_user("user-1");
  u.budget.budget_duration = "1h";
  u.budget.budget_reset_at = now_micros() - 24h * 30 - 30min;
  ASSERT_TRUE(db.insert_user(u));
  auto gu = db.lease({store::entity_kind::user, "user-1", ""}, "node-a", 1, 60s);
  EXPECT_EQ(gu.spend, 0);
  ASSERT_TRUE(gu.budget_reset_at);
  EXPECT_GT(*gu.budget_reset_at, now_micros() - 1s);
  EXPECT_LE(*gu.budget_reset_at, now_micros() + 1h);
  EXPECT_EQ((*gu.budget_reset_at - *u.budget.budget_reset_at) % 1h, std::chrono::nanoseconds(0));

  // apply() resets first too: the batch's spend is the new period's whole spend.
  auto k2 = budget_key("tok-2", 10 * usd, 9 * usd);
  k2.budget.budget_duration = "1mo";
  k2.budget.budget_reset_at = now_micros() - 1min;
  ASSERT_TRUE(db.insert_key(k2));
  store::spend_batch b;
  b.node_id = "node-a";
  b.entity_spend[{store::entity_kind::key, "tok-2", ""}] = 3;
  ASSERT_TRUE(db.apply(b, "batch-1", 60s));
  loaded = db.load_key("tok-2");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->budget.spend, 3);
  EXPECT_EQ(loaded->total_spend, 3);
  // Monthly: the 1st of next month, 00:00 UTC.
  auto reset_day = std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(*loaded->budget.budget_reset_at)};
  EXPECT_EQ(reset_day.day(), std::chrono::day{1});
  EXPECT_GT(*loaded->budget.budget_reset_at, now_micros());
  EXPECT_LE(*loaded->budget.budget_reset_at, now_micros() + 24h * 31);

  // A duration without a reset time starts its first period.
  auto t = full_team("team-1");
  t.budget.budget_duration = "7d";
  t.budget.budget_reset_at = std::nullopt;
  ASSERT_TRUE(db.insert_team(t));
  auto before = now_micros();
  auto gt = db.lease({store::entity_kind::team, "team-1", ""}, "node-a", 1, 60s);
  ASSERT_TRUE(gt.budget_reset_at);
  // 7d: the next Monday, 00:00 UTC.
  auto reset_date = std::chrono::floor<std::chrono::days>(*gt.budget_reset_at);
  EXPECT_EQ(std::chrono::weekday{reset_date}, std::chrono::Monday);
  EXPECT_EQ(*gt.budget_reset_at, keys::sys_time(reset_date));
  EXPECT_GT(*gt.budget_reset_at, before);
  EXPECT_LE(*gt.budget_reset_at, before + 24h * 7);
}

// ---- apply ----

TEST_F(pg_store_test, apply_adds_spend_exactly_and_is_idempotent) {
  auto k = budget_key("tok", 10 * usd, usd);
  k.model_max_budget["gpt-4o"] = {5 * usd, "", std::nullopt, 0};
  k.model_spend = {{"gpt-4o", 1}};
  ASSERT_TRUE(db.insert_key(k));
  auto u = full_user("user-1");
  u.budget.budget_duration = "";
  ASSERT_TRUE(db.insert_user(u));
  auto t = full_team("team-1");
  t.budget.budget_duration = "";
  ASSERT_TRUE(db.insert_team(t));

  store::entity_ref key{store::entity_kind::key, "tok", ""};
  store::entity_ref user{store::entity_kind::user, "user-1", ""};
  store::entity_ref team{store::entity_kind::team, "team-1", ""};
  store::entity_ref key_model{store::entity_kind::key_model, "tok", "gpt-4o"};
  ASSERT_EQ(db.lease(key, "node-a", 2 * usd, 60s).granted, 2 * usd);
  ASSERT_EQ(db.lease(user, "node-a", usd, 60s).granted, usd);
  ASSERT_EQ(db.lease(key_model, "node-a", usd, 60s).granted, usd);
  sql("UPDATE llm_budget_leases SET expires_at = now() + interval '2 seconds'");

  store::spend_batch b;
  b.node_id = "node-a";
  b.entity_spend[key] = usd / 10 + 1;  // 0.100000000001 USD
  b.entity_spend[user] = 3 * usd;      // more than its lease
  b.entity_spend[team] = 7;
  b.entity_spend[key_model] = usd / 10 + 1;
  b.key_model_spend[{"tok", "gpt-4o"}] = usd / 10 + 1;
  b.key_model_spend[{"tok", "mini"}] = 5;
  b.key_model_spend[{"", "gpt-4o"}] = 9;  // the master key: no row to update
  b.lease_returns[key] = usd / 2;
  b.logs.push_back(log_row("req-1", "tok", "gpt-4o", now_micros(), usd / 10 + 1));
  ASSERT_TRUE(db.apply(b, "batch-1", 600s));

  auto check = [&] {
    auto loaded = db.load_key("tok");
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->budget.spend, usd + usd / 10 + 1);
    EXPECT_EQ(loaded->total_spend, usd / 10 + 1);
    EXPECT_EQ(loaded->model_spend, (std::map<std::string, money>{{"gpt-4o", usd / 10 + 2}, {"mini", 5}}));
    EXPECT_EQ(loaded->model_max_budget["gpt-4o"].spend, usd / 10 + 1);
    auto lu = db.load_user("user-1");
    EXPECT_EQ(lu->budget.spend, usd / 7 + 3 * usd);
    EXPECT_EQ(lu->total_spend, 77 * usd + 1 + 3 * usd);
    auto lt = db.load_team("team-1");
    EXPECT_EQ(lt->budget.spend, 7);
    EXPECT_EQ(lt->total_spend, 19);
    // Leases: spend and returns come off, never below 0.
    EXPECT_EQ(sql_value("SELECT amount::text FROM llm_budget_leases WHERE entity_kind = 'key'"), "1.399999999999");
    EXPECT_EQ(sql_value("SELECT amount::text FROM llm_budget_leases WHERE entity_kind = 'user'"), "0");
    EXPECT_EQ(sql_value("SELECT amount::text FROM llm_budget_leases WHERE entity_kind = 'key_model'"),
              "0.899999999999");
    EXPECT_EQ(sql_value("SELECT count(*) FROM llm_spend_logs"), "1");
  };
  check();
  // Every lease of the node was renewed to now + 600 s.
  EXPECT_EQ(sql_value("SELECT bool_and(expires_at > now() + interval '590 seconds') FROM llm_budget_leases"), "t");

  // The same batch again (a re-send after a timeout): skipped, nothing changes.
  EXPECT_FALSE(db.apply(b, "batch-1", 600s));
  check();
}

TEST_F(pg_store_test, concurrent_nodes_never_lease_more_than_the_budget) {
  const money max = 3 * usd;
  ASSERT_TRUE(db.insert_key(budget_key("tok", max)));
  store::entity_ref key{store::entity_kind::key, "tok", ""};
  constexpr int nodes = 4;
  const money step = usd / 47;  // does not divide the budget: the last grant is partial
  std::atomic<money> granted_total{0};
  std::array<std::string, nodes> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < nodes; ++i) {
    threads.emplace_back([&, i] {
      try {
        store::pg_store s(g_url);
        std::string node = "node-" + std::to_string(i);
        for (int seq = 0;; ++seq) {
          auto g = s.lease(key, node, step, 30s);
          // Every node spends its whole lease at once, so nothing granted now means
          // the budget is committed for good.
          if (g.granted == 0) break;
          granted_total += g.granted;
          store::spend_batch b;
          b.node_id = node;
          b.entity_spend[key] = g.granted;
          if (!s.apply(b, node + "-" + std::to_string(seq), 30s)) throw std::runtime_error("batch skipped");
        }
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(granted_total.load(), max);
  auto loaded = db.load_key("tok");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->budget.spend, max);
  EXPECT_EQ(sql_value("SELECT sum(amount)::text FROM llm_budget_leases"), "0.000000000000");
}

TEST_F(pg_store_test, release_leases_drops_the_nodes_leases) {
  ASSERT_TRUE(db.insert_key(budget_key("tok", 10 * usd)));
  store::entity_ref key{store::entity_kind::key, "tok", ""};
  ASSERT_EQ(db.lease(key, "node-a", 4 * usd, 60s).granted, 4 * usd);
  ASSERT_EQ(db.lease(key, "node-b", 4 * usd, 60s).granted, 4 * usd);
  db.release_leases("node-a");
  EXPECT_EQ(db.lease(key, "node-b", 10 * usd, 60s).granted, 6 * usd);
}

// ---- spend logs ----

TEST_F(pg_store_test, spend_logs_filters_and_global_aggregates) {
  auto ka = budget_key("tok-a", std::nullopt);
  ka.key_alias = "alias-a";
  auto kb = budget_key("tok-b", std::nullopt);
  kb.key_alias = "alias-b";
  ASSERT_TRUE(db.insert_key(ka));
  ASSERT_TRUE(db.insert_key(kb));
  auto t0 = now_micros() - 10min;
  store::spend_batch b;
  b.node_id = "node-a";
  b.logs.push_back(log_row("req-1", "tok-a", "gpt-4o", t0, usd));
  b.logs.push_back(log_row("req-2", "tok-a", "mini", t0 + 1min, 3));
  b.logs.push_back(log_row("req-3", "tok-b", "gpt-4o", t0 + 2min, 2 * usd));
  b.logs.push_back(log_row("req-4", "", "gpt-4o", t0 + 3min, 1));  // master key
  b.logs[3].completion_start_time = std::nullopt;
  b.logs[3].status = "failure";
  b.logs[3].http_status = 429;
  b.logs[3].cache_hit = true;
  b.entity_spend[{store::entity_kind::key, "tok-a", ""}] = usd + 3;
  b.entity_spend[{store::entity_kind::key, "tok-b", ""}] = 2 * usd;
  ASSERT_TRUE(db.apply(b, "batch-1", 60s));

  auto all = db.spend_logs({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].request_id, "req-4");  // newest first
  EXPECT_EQ(all[3].request_id, "req-1");
  // Every field round-trips.
  const auto& got = all[3];
  const auto& sent = b.logs[0];
  EXPECT_EQ(got.call_type, sent.call_type);
  EXPECT_EQ(got.api_key, sent.api_key);
  EXPECT_EQ(got.key_alias, sent.key_alias);
  EXPECT_EQ(got.user_id, sent.user_id);
  EXPECT_EQ(got.team_id, sent.team_id);
  EXPECT_EQ(got.model_group, sent.model_group);
  EXPECT_EQ(got.model_id, sent.model_id);
  EXPECT_EQ(got.model, sent.model);
  EXPECT_EQ(got.api_base, sent.api_base);
  EXPECT_EQ(got.prompt_tokens, sent.prompt_tokens);
  EXPECT_EQ(got.completion_tokens, sent.completion_tokens);
  EXPECT_EQ(got.total_tokens, sent.total_tokens);
  EXPECT_EQ(got.spend, sent.spend);
  EXPECT_EQ(got.start_time, sent.start_time);
  EXPECT_EQ(got.end_time, sent.end_time);
  EXPECT_EQ(got.completion_start_time, sent.completion_start_time);
  EXPECT_EQ(got.status, sent.status);
  EXPECT_EQ(got.http_status, sent.http_status);
  EXPECT_EQ(got.cache_hit, sent.cache_hit);
  EXPECT_EQ(got.metadata, sent.metadata);
  EXPECT_FALSE(all[0].completion_start_time);
  EXPECT_TRUE(all[0].cache_hit);
  EXPECT_EQ(all[0].http_status, 429);

  auto ids = [](const std::vector<store::spend_log_row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.request_id);
    return out;
  };
  using v = std::vector<std::string>;
  store::spend_query q;
  q.api_key = "tok-a";
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-2", "req-1"}));
  q = {};
  q.model_group = "gpt-4o";
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-4", "req-3", "req-1"}));
  q = {};
  q.request_id = "req-3";
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-3"}));
  q = {};
  q.user_id = "user-tok-b";
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-3"}));
  q = {};
  q.team_id = "team-mini";
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-2"}));
  q = {};
  q.start = t0 + 1min;
  q.end = t0 + 2min;
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-3", "req-2"}));
  q = {};
  q.limit = 2;
  q.offset = 1;
  EXPECT_EQ(ids(db.spend_logs(q)), (v{"req-3", "req-2"}));

  EXPECT_EQ(db.global_spend(), 3 * usd + 4);
  auto models = db.spend_by_model(10);
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name, "gpt-4o");
  EXPECT_EQ(models[0].spend, 3 * usd + 1);
  EXPECT_EQ(models[0].requests, 3);
  EXPECT_EQ(models[0].prompt_tokens, 30);
  EXPECT_EQ(models[0].completion_tokens, 15);
  EXPECT_EQ(models[1].name, "mini");
  EXPECT_EQ(models[1].spend, 3);
  EXPECT_EQ(db.spend_by_model(1).size(), 1u);

  // Keys by lifetime spend, with their requests and tokens from the logs.
  auto by_key = db.spend_by_key(10);
  ASSERT_EQ(by_key.size(), 2u);
  EXPECT_EQ(by_key[0].name, "tok-b");
  EXPECT_EQ(by_key[0].label, "alias-b");
  EXPECT_EQ(by_key[0].spend, 2 * usd);
  EXPECT_EQ(by_key[0].requests, 1);
  EXPECT_EQ(by_key[1].name, "tok-a");
  EXPECT_EQ(by_key[1].spend, usd + 3);
  EXPECT_EQ(by_key[1].requests, 2);
  EXPECT_EQ(by_key[1].prompt_tokens, 20);
  EXPECT_EQ(by_key[1].completion_tokens, 10);
  EXPECT_EQ(db.spend_by_key(1).size(), 1u);
}

TEST_F(pg_store_test, partitions_are_created_filled_and_dropped) {
  using namespace std::chrono;
  auto today = floor<days>(system_clock::now());
  auto name = [](sys_days d) {
    year_month_day ymd{d};
    char buf[32];
    std::snprintf(buf, sizeof buf, "llm_spend_logs_%04d%02u%02u", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    return std::string(buf);
  };
  auto partition_of = [](const std::string& request_id) {
    return sql_value("SELECT tableoid::regclass::text FROM llm_spend_logs WHERE request_id = '" + request_id + "'");
  };

  // Written before tomorrow's partition exists: lands in the default partition...
  store::spend_batch b;
  b.node_id = "node-a";
  b.logs.push_back(log_row("req-tomorrow", "", "gpt-4o", today + days(1) + 3h, 1));
  ASSERT_TRUE(db.apply(b, "batch-1", 60s));
  EXPECT_EQ(partition_of("req-tomorrow"), "llm_spend_logs_default");

  // ...and is moved into it when it is created.
  EXPECT_EQ(db.maintain_partitions(2, 0), 0);
  for (int d = -1; d <= 2; ++d)
    EXPECT_EQ(sql_value("SELECT to_regclass('" + name(today + days(d)) + "')::text"), name(today + days(d)));
  EXPECT_EQ(partition_of("req-tomorrow"), name(today + days(1)));
  EXPECT_EQ(db.spend_logs({}).size(), 1u);
  // Indexes (the primary key too) follow the parent's.
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_indexes WHERE tablename = '" + name(today + days(1)) + "'"), "6");
  EXPECT_EQ(db.maintain_partitions(2, 0), 0);  // nothing new to do

  // An old day's partition is dropped with its rows once past retention.
  auto old_day = today - days(10);
  sql("CREATE TABLE " + name(old_day) + " PARTITION OF llm_spend_logs FOR VALUES FROM ('" + day_text(old_day) +
      " 00:00:00+00') TO ('" + day_text(old_day + days(1)) + " 00:00:00+00')");
  store::spend_batch old;
  old.node_id = "node-a";
  old.logs.push_back(log_row("req-old", "", "gpt-4o", old_day + 5h, 1));
  old.logs.push_back(log_row("req-older", "", "gpt-4o", old_day - days(5), 1));  // default partition
  ASSERT_TRUE(db.apply(old, "batch-2", 60s));
  EXPECT_EQ(partition_of("req-old"), name(old_day));

  EXPECT_EQ(db.maintain_partitions(2, 30), 0);  // within retention
  EXPECT_EQ(db.maintain_partitions(2, 7), 1);
  EXPECT_EQ(sql_value("SELECT to_regclass('" + name(old_day) + "')::text"), "");
  EXPECT_EQ(partition_of("req-old"), "");
  EXPECT_EQ(partition_of("req-older"), "");
  EXPECT_EQ(partition_of("req-tomorrow"), name(today + days(1)));
  EXPECT_EQ(sql_value("SELECT to_regclass('" + name(today - days(1)) + "')::text"), name(today - days(1)));
}

// ---- notifications and reconnection ----

namespace {

/// Waits up to `timeout` for notifications on the listener's socket.
std::vector<std::string> wait_for_notifications(store::pg_store& listener, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> got;
  while (got.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{listener.socket(), POLLIN, 0};
    ::poll(&p, 1, 100);
    got = listener.take_notifications();
  }
  return got;
}

}  // namespace

TEST_F(pg_store_test, notify_reaches_a_listener_on_another_connection) {
  store::pg_store listener(g_url);
  EXPECT_EQ(listener.socket(), -1);  // not connected yet
  listener.listen();
  EXPECT_GE(listener.socket(), 0);
  EXPECT_TRUE(listener.take_notifications().empty());

  db.notify("key:abc");
  db.notify("team:t-1");
  auto got = wait_for_notifications(listener, 5s);
  if (got.size() == 1) {
    auto more = wait_for_notifications(listener, 2s);
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"key:abc", "team:t-1"}));
}

TEST_F(pg_store_test, a_session_the_server_ended_while_idle_is_replaced_without_an_error) {
  // The server ends the store's idle session (as a restart, failover or idle timeout
  // does); its goodbye may sit unread on the socket. The next call still succeeds.
  store::pg_store victim(g_url + "?application_name=idle-victim");
  ASSERT_TRUE(victim.insert_key(budget_key("tok", usd)));
  for (int round = 0; round < 5; ++round) {
    auto killed = sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'idle-victim'");
    ASSERT_EQ(killed.size(), 1u) << "round " << round;
    for (int i = 0; i < 100 && sql_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'idle-victim'") != "0"; ++i)
      std::this_thread::sleep_for(10ms);
    std::optional<keys::key_record> k;
    ASSERT_NO_THROW(k = victim.load_key("tok")) << "round " << round;
    EXPECT_TRUE(k) << "round " << round;
  }
}

TEST_F(pg_store_test, recovers_after_the_server_restarts) {
  store::pg_store listener(g_url);
  listener.listen();
  db.ping();
  ASSERT_TRUE(db.connected());

  ASSERT_TRUE(pg_temp("restart", g_dir)) << "pg_ctl restart failed";

  // The old session is gone; the first call notices and runs on a new connection.
  bool recovered = false;
  int failures = 0;
  for (int attempt = 0; attempt < 50 && !recovered; ++attempt) {
    try {
      db.ping();
      recovered = true;
    } catch (const store::store_error& e) {
      ++failures;
      EXPECT_NE(std::string(e.what()).find("ping"), std::string::npos) << e.what();
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(recovered);
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(db.connected());
  ASSERT_TRUE(db.insert_key(budget_key("tok", usd)));
  EXPECT_TRUE(db.load_key("tok"));

  // The listener's take_notifications() throws once it notices the lost connection
  // (as the gateway's listener loop expects); listening again works.
  std::vector<std::string> got;
  int listener_failures = 0;
  for (int attempt = 0; attempt < 20 && got.empty(); ++attempt) {
    try {
      listener.listen();
      db.notify("user:u-1");
      got = wait_for_notifications(listener, 1s);
    } catch (const store::store_error& e) {
      ++listener_failures;
      EXPECT_NE(std::string(e.what()).find("take_notifications"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(got, (std::vector<std::string>{"user:u-1"}));
  EXPECT_EQ(listener_failures, 1);
}
