// The accounts library's pure parts: the in-memory backend's budget semantics (the
// same contract PostgreSQL implements), entry derivation and model access, the spool.

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "internal.hpp"

using namespace gw;
using namespace gw::accounts;
using keys::money;
using std::chrono::seconds;

namespace {

constexpr money usd = keys::pico_per_dollar;

keys::key_record key(const std::string& token, std::optional<money> max = std::nullopt) {
  keys::key_record k;
  k.token = token;
  k.key_name = "sk-..." + token.substr(0, 4);
  k.budget.max_budget = max;
  return k;
}

entity_ref key_ref(const std::string& t) { return entity_ref{entity_kind::key, t, ""}; }

}  // namespace

TEST(MemoryBackend, LeasesNeverExceedTheBudget) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db), b = make_memory_backend(db);
  ASSERT_TRUE(a->insert_key(key("t1", 10 * usd)));
  auto g1 = a->lease(key_ref("t1"), "node-a", 6 * usd, seconds(60));
  EXPECT_EQ(g1.granted, 6 * usd);
  EXPECT_EQ(g1.own_lease, 6 * usd);
  auto g2 = b->lease(key_ref("t1"), "node-b", 6 * usd, seconds(60));
  EXPECT_EQ(g2.granted, 4 * usd) << "only what node-a does not hold";
  EXPECT_EQ(g2.leased_by_others, 6 * usd);
  auto g3 = b->lease(key_ref("t1"), "node-b", 1, seconds(60));
  EXPECT_EQ(g3.granted, 0);
  ASSERT_TRUE(g3.max_budget.has_value());
  EXPECT_EQ(*g3.max_budget, 10 * usd);
}

TEST(MemoryBackend, ApplyMovesSpendFromLeaseToSpendAndIsIdempotent) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  ASSERT_TRUE(a->insert_key(key("t1", 10 * usd)));
  a->lease(key_ref("t1"), "n", 5 * usd, seconds(60));
  spend_batch b;
  b.node_id = "n";
  b.entity_spend[key_ref("t1")] = 2 * usd;
  b.lease_returns[key_ref("t1")] = 1 * usd;
  b.key_model_spend[{"t1", "gpt"}] = 2 * usd;
  spend_log_row row;
  row.request_id = "r1";
  row.model_group = "gpt";
  row.spend = 2 * usd;
  b.logs.push_back(row);
  EXPECT_TRUE(a->apply(b, "batch-1", seconds(60)));
  EXPECT_FALSE(a->apply(b, "batch-1", seconds(60))) << "the same batch id is applied once";
  auto k = a->load_key("t1");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->budget.spend, 2 * usd);
  EXPECT_EQ(k->total_spend, 2 * usd);
  EXPECT_EQ(k->model_spend["gpt"], 2 * usd);
  // lease 5 - spent 2 - returned 1 = 2 left; spend 2: another node may take 6.
  auto g = a->lease(key_ref("t1"), "other", 100 * usd, seconds(60));
  EXPECT_EQ(g.granted, 6 * usd);
  EXPECT_EQ(g.spend, 2 * usd);
  EXPECT_EQ(a->global_spend(), 2 * usd);
  ASSERT_EQ(a->spend_logs(spend_query{}).size(), 1u);
}

TEST(MemoryBackend, KeepsTheNewestTenThousandRowsOfSharedBatches) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  // 25 batches of 1,000 rows, applied as the ledger does (shared, not copied).
  std::weak_ptr<const spend_batch> first;
  for (int n = 0; n < 25; ++n) {
    auto b = std::make_shared<spend_batch>();
    b->node_id = "n";
    for (int i = 0; i < 1000; ++i) {
      spend_log_row row;
      row.request_id = "r" + std::to_string(n * 1000 + i);
      row.model_group = i % 2 ? "odd" : "even";
      b->logs.push_back(std::move(row));
    }
    if (n == 0) first = b;
    ASSERT_TRUE(a->apply_shared(b, "batch-" + std::to_string(n), seconds(60)));
  }
  EXPECT_TRUE(first.expired()) << "old batches are let go, not kept whole";
  spend_query all;
  all.limit = 100000;
  auto rows = a->spend_logs(all);
  ASSERT_EQ(rows.size(), 10000u);
  EXPECT_EQ(rows.front().request_id, "r24999") << "newest first";
  EXPECT_EQ(rows.back().request_id, "r15000");
  spend_query odd;
  odd.model_group = "odd";
  odd.limit = 3;
  odd.offset = 1;
  rows = a->spend_logs(odd);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].request_id, "r24997");
  EXPECT_EQ(rows[2].request_id, "r24993");
  spend_query gone;
  gone.request_id = "r14999";
  EXPECT_TRUE(a->spend_logs(gone).empty()) << "beyond the newest 10,000 rows";
}

TEST(MemoryBackend, ExpiredLeasesAreNotCounted) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  ASSERT_TRUE(a->insert_key(key("t1", 10 * usd)));
  a->lease(key_ref("t1"), "dead", 10 * usd, seconds(0));
  auto g = a->lease(key_ref("t1"), "alive", 10 * usd, seconds(60));
  EXPECT_EQ(g.granted, 10 * usd) << "a lease past its expiry is free again";
}

TEST(MemoryBackend, PeriodResetsLazily) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  auto k = key("t1", 1 * usd);
  k.budget.budget_duration = "1s";
  k.budget.budget_reset_at = std::chrono::system_clock::now() - seconds(5);
  k.budget.spend = 1 * usd;
  ASSERT_TRUE(a->insert_key(k));
  auto g = a->lease(key_ref("t1"), "n", 1 * usd, seconds(60));
  EXPECT_EQ(g.spend, 0);
  EXPECT_EQ(g.granted, 1 * usd);
  ASSERT_TRUE(g.budget_reset_at);
  EXPECT_GT(*g.budget_reset_at, std::chrono::system_clock::now());
}

TEST(MemoryBackend, NoBudgetGrantsWhatIsAsked) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  ASSERT_TRUE(a->insert_key(key("t1")));
  auto g = a->lease(key_ref("t1"), "n", 7, seconds(60));
  EXPECT_EQ(g.granted, 7);
  EXPECT_FALSE(g.max_budget);
  auto missing = a->lease(key_ref("nope"), "n", 7, seconds(60));
  EXPECT_FALSE(missing.exists);
}

TEST(MemoryBackend, DuplicateTokensAndAliasesAreRefused) {
  auto db = make_memory_db();
  auto a = make_memory_backend(db);
  auto k = key("t1");
  k.key_alias = "alias";
  ASSERT_TRUE(a->insert_key(k));
  EXPECT_FALSE(a->insert_key(k));
  auto k2 = key("t2");
  k2.key_alias = "alias";
  EXPECT_FALSE(a->insert_key(k2));
  EXPECT_TRUE(a->rename_key("t1", "t3", "sk-...new"));
  EXPECT_FALSE(a->load_key("t1"));
  EXPECT_EQ(a->load_key("t3")->key_alias, "alias");
}

TEST(AuthEntry, ModelsOfKeyAndTeamBothApply) {
  auto k = key("t1");
  k.models = {"gpt-4o", "openai/*"};
  keys::team_record t;
  t.team_id = "team";
  t.models = {"gpt-4o", "openai/gpt-5"};
  auto e = derive_entry(k, nullptr, &t);
  EXPECT_TRUE(e->allows("gpt-4o"));
  EXPECT_TRUE(e->allows("openai/gpt-5"));
  EXPECT_FALSE(e->allows("openai/gpt-4"));  // the key allows it, the team does not
  EXPECT_FALSE(e->allows("claude"));
  auto open = derive_entry(key("t2"), nullptr, nullptr);
  EXPECT_TRUE(open->allows("anything"));
}

TEST(AuthEntry, BudgetsListEveryCappedEntity) {
  auto k = key("t1", 5 * usd);
  k.user_id = "u";
  k.team_id = "team";
  k.model_max_budget["gpt"] = keys::model_budget{1 * usd, "1d", std::nullopt, 0};
  keys::user_record u;
  u.user_id = "u";  // no budget: followed for spend only
  keys::team_record t;
  t.team_id = "team";
  t.budget.max_budget = 9 * usd;
  t.blocked = true;
  auto e = derive_entry(k, &u, &t);
  ASSERT_EQ(e->budgets.size(), 3u);  // key, key_model, team
  EXPECT_TRUE(e->blocked);
  EXPECT_TRUE(e->budgeted_for("other"));
  auto ents = e->spend_entities("gpt");
  EXPECT_EQ(ents.size(), 4u);  // key, user, team, key_model gpt
  EXPECT_EQ(e->spend_entities("other").size(), 3u);
  auto plain = derive_entry(key("t2"), nullptr, nullptr);
  EXPECT_FALSE(plain->budgeted_for("gpt"));
}

TEST(Spool, RoundTripsBatchesExactly) {
  auto path = (std::filesystem::temp_directory_path() / ("gw-spool-test-" + std::to_string(::getpid()))).string();
  std::remove(path.c_str());
  pending_batch p;
  p.id = "node-1-7";
  p.batch.node_id = "node-1";
  p.batch.entity_spend[key_ref("t\"1")] = 123456789;
  p.batch.entity_spend[entity_ref{entity_kind::key_model, "t1", "gpt/4"}] = 5;
  p.batch.lease_returns[entity_ref{entity_kind::team, "team", ""}] = 42;
  p.batch.key_model_spend[{"t1", "gpt"}] = 99;
  spend_log_row row;
  row.request_id = "req-1";
  row.api_key = "t1";
  row.model_group = "gpt";
  row.prompt_tokens = 10;
  row.completion_tokens = 20;
  row.total_tokens = 30;
  row.spend = 777;
  row.start_time = std::chrono::system_clock::now();
  row.end_time = row.start_time + seconds(1);
  row.completion_start_time = row.start_time + std::chrono::milliseconds(5);
  row.status = "success";
  row.http_status = 200;
  row.metadata = R"({"a":1})";
  p.batch.logs.push_back(row);
  ASSERT_TRUE(append_spool(path, p));
  pending_batch q = p;
  q.id = "node-1-8";
  ASSERT_TRUE(append_spool(path, q));
  std::string err;
  auto back = read_spool(path, err);
  EXPECT_TRUE(err.empty()) << err;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].id, "node-1-7");
  EXPECT_EQ(back[1].id, "node-1-8");
  EXPECT_EQ(back[0].batch.entity_spend, p.batch.entity_spend);
  EXPECT_EQ(back[0].batch.lease_returns, p.batch.lease_returns);
  EXPECT_EQ(back[0].batch.key_model_spend, p.batch.key_model_spend);
  ASSERT_EQ(back[0].batch.logs.size(), 1u);
  const auto& l = back[0].batch.logs[0];
  EXPECT_EQ(l.request_id, "req-1");
  EXPECT_EQ(l.spend, 777);
  EXPECT_EQ(l.total_tokens, 30);
  EXPECT_EQ(l.metadata, R"({"a":1})");
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::microseconds>(l.start_time.time_since_epoch()).count(),
            std::chrono::duration_cast<std::chrono::microseconds>(row.start_time.time_since_epoch()).count());
  ASSERT_TRUE(l.completion_start_time);
  // A torn last line (killed mid-write) is skipped, the rest kept.
  {
    FILE* f = std::fopen(path.c_str(), "a");
    std::fputs("{\"id\":\"torn", f);
    std::fclose(f);
  }
  back = read_spool(path, err);
  EXPECT_EQ(back.size(), 2u);
  EXPECT_FALSE(err.empty());
  std::deque<pending_batch> rest{back[1]};
  ASSERT_TRUE(rewrite_spool(path, rest));
  err.clear();
  EXPECT_EQ(read_spool(path, err).size(), 1u);
  ASSERT_TRUE(rewrite_spool(path, {}));
  EXPECT_FALSE(std::filesystem::exists(path));
}
