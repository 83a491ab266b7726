// gw::store's trace store (llm_traces) against a real PostgreSQL: a throwaway server
// (scripts/pg-temp.sh) for the whole process, and a fresh, migrated schema for every
// test. The server environment is a copy of pg_store_test.cpp's.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gw/keys/model.hpp"
#include "gw/store/pg_store.hpp"

#include "pg_server.hpp"

namespace {

using namespace std::chrono_literals;
using gw::keys::money;
using gw::keys::sys_time;
namespace keys = gw::keys;
namespace store = gw::store;


// ---- rows ----

sys_time at_micros(std::int64_t us) { return sys_time{std::chrono::microseconds{us}}; }

const std::string fffd = "\xEF\xBF\xBD";  // U+FFFD

/// A row with every field set; start_time at microsecond precision.
store::trace_row full_row(const std::string& request_id, sys_time start) {
  store::trace_row t;
  t.request_id = request_id;
  t.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  t.span_id = "00f067aa0ba902b7";
  t.call_type = "chat";
  t.route = "/v1/chat/completions";
  t.api_key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  t.key_alias = "alias \"one\"";
  t.user_id = "user-1";
  t.team_id = "team-1";
  t.end_user = "customer-42";
  t.model_group = "gpt-4o";
  t.model_id = "deployment-7";
  t.model = "gpt-4o-2024-08-06";
  t.provider = "openai";
  t.status = "failure";
  t.http_status = 429;
  t.error_type = "rate_limit_error";
  t.error_message = "Rate limit reached, try again in 20ms\n(second line)";
  t.stream = true;
  t.prompt_tokens = 1'234;
  t.completion_tokens = 5'678;
  t.total_tokens = 6'912;
  t.cached_tokens = 1'024;
  t.spend = 9'223'372'036'854'775'807;  // the largest money value, exact
  t.start_time = start;
  t.end_time = start + 1'234'567us;
  t.completion_start_time = start + 200'001us;
  t.cache = "miss";
  t.guardrail = "masked";
  t.attempts = 3;
  t.request_body =
      R"({"model": "gpt-4o", "messages": [{"role": "user", "content": "say \"hi\"\n\tin {braces}, commas, \\slashes\\ and NULL"}]})";
  t.response_body = "data: {\"text\": \"héllo wörld — 你好 🦀\"}\n\ndata: [DONE]\n\n";
  t.request_truncated = true;
  t.response_truncated = true;
  t.metadata = R"({"n": 1, "tags": ["x", "é"], "nested": {"k": "v"}})";  // jsonb's normalized form
  return t;
}

/// A small row for queries.
store::trace_row row(const std::string& request_id, sys_time start) {
  store::trace_row t;
  t.request_id = request_id;
  t.call_type = "chat";
  t.status = "success";
  t.http_status = 200;
  t.start_time = start;
  t.end_time = start + 100ms;
  t.request_body = "request of " + request_id;
  t.response_body = "response of " + request_id;
  return t;
}

void expect_same(const store::trace_row& a, const store::trace_row& b) {
  SCOPED_TRACE(a.request_id);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.trace_id, b.trace_id);
  EXPECT_EQ(a.span_id, b.span_id);
  EXPECT_EQ(a.call_type, b.call_type);
  EXPECT_EQ(a.route, b.route);
  EXPECT_EQ(a.api_key, b.api_key);
  EXPECT_EQ(a.key_alias, b.key_alias);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.team_id, b.team_id);
  EXPECT_EQ(a.end_user, b.end_user);
  EXPECT_EQ(a.model_group, b.model_group);
  EXPECT_EQ(a.model_id, b.model_id);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.provider, b.provider);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.http_status, b.http_status);
  EXPECT_EQ(a.error_type, b.error_type);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.stream, b.stream);
  EXPECT_EQ(a.prompt_tokens, b.prompt_tokens);
  EXPECT_EQ(a.completion_tokens, b.completion_tokens);
  EXPECT_EQ(a.total_tokens, b.total_tokens);
  EXPECT_EQ(a.cached_tokens, b.cached_tokens);
  EXPECT_EQ(a.spend, b.spend);
  EXPECT_EQ(a.start_time, b.start_time);
  EXPECT_EQ(a.end_time, b.end_time);
  EXPECT_EQ(a.completion_start_time, b.completion_start_time);
  EXPECT_EQ(a.cache, b.cache);
  EXPECT_EQ(a.guardrail, b.guardrail);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.request_body, b.request_body);
  EXPECT_EQ(a.response_body, b.response_body);
  EXPECT_EQ(a.request_truncated, b.request_truncated);
  EXPECT_EQ(a.response_truncated, b.response_truncated);
  EXPECT_EQ(a.metadata, b.metadata);
}

std::vector<std::string> ids(const std::vector<store::trace_row>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.request_id);
  return out;
}

/// The rows' ids in the store's order: start_time DESC, request_id DESC.
std::vector<std::string> newest_first(std::vector<store::trace_row> rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.start_time != b.start_time ? a.start_time > b.start_time : a.request_id > b.request_id;
  });
  return ids(rows);
}

std::string partition_name(std::chrono::sys_days d) {
  std::chrono::year_month_day ymd{d};
  char buf[32];
  std::snprintf(buf, sizeof buf, "llm_traces_%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

/// "YYYY-MM-DD"
std::string day_text(std::chrono::sys_days d) {
  std::chrono::year_month_day ymd{d};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

/// The partition holding the request's row; "" if there is none.
std::string partition_of(const std::string& request_id) {
  return sql_value("SELECT tableoid::regclass::text FROM llm_traces WHERE request_id = '" + request_id + "'");
}

class trace_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(g_url.empty()) << "no PostgreSQL server: " << g_failure;
    sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    std::vector<std::string> log;
    ASSERT_EQ(store::migrate(g_url, log), store::schema_version());
  }

  store::pg_store db{g_url};
};

}  // namespace

// ---- schema ----

TEST_F(trace_store_test, migration_creates_the_partitioned_table_and_its_indexes) {
  EXPECT_GE(store::schema_version(), 2);
  EXPECT_EQ(sql_value("SELECT name FROM schema_migrations WHERE version = 2"), "traces");
  EXPECT_EQ(sql_value("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'llm_traces'::regclass"), "r");
  EXPECT_EQ(sql_value("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                      " WHERE i.inhparent = 'llm_traces'::regclass"),
            "llm_traces_default");
  // The primary key and the six read indexes.
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_indexes WHERE tablename = 'llm_traces'"), "7");
  EXPECT_EQ(sql_value("SELECT indexdef FROM pg_indexes WHERE indexname = 'llm_traces_start_time'"),
            "CREATE INDEX llm_traces_start_time ON ONLY public.llm_traces USING btree (start_time DESC, request_id DESC)");
}

// ---- writes and reads ----

TEST_F(trace_store_test, every_field_round_trips) {
  auto t0 = at_micros(1'750'000'000'123'457);
  auto full = full_row("req-full", t0);
  auto plain = full_row("req-plain", t0 - 1s);  // no first token, nothing optional set
  plain.completion_start_time.reset();
  plain.stream = false;
  plain.request_truncated = plain.response_truncated = false;
  plain.cache = plain.guardrail = plain.error_type = plain.error_message = "";
  plain.request_body = plain.response_body = "";
  plain.metadata = "{}";
  plain.spend = 1;  // one picodollar
  plain.key_alias = plain.api_key = "";

  EXPECT_EQ(db.insert_traces({full, plain}), 2u);

  auto got = db.trace("req-full");
  ASSERT_TRUE(got);
  expect_same(full, *got);
  got = db.trace("req-plain");
  ASSERT_TRUE(got);
  expect_same(plain, *got);
  EXPECT_FALSE(got->completion_start_time);

  store::trace_query q;
  q.with_bodies = true;
  auto page = db.traces(q);
  ASSERT_EQ(page.rows.size(), 2u);
  EXPECT_FALSE(page.next_cursor);
  expect_same(full, page.rows[0]);
  expect_same(plain, page.rows[1]);

  // Metadata left empty is stored as {}.
  auto empty_meta = row("req-empty-meta", t0 + 1s);
  empty_meta.metadata = "";
  EXPECT_EQ(db.insert_traces({empty_meta}), 1u);
  EXPECT_EQ(db.trace("req-empty-meta")->metadata, "{}");
}

TEST_F(trace_store_test, nul_bytes_and_invalid_utf8_are_replaced_not_refused) {
  auto t0 = at_micros(1'750'000'000'000'000);
  auto bad = row("req-bad", t0);
  bad.request_body = std::string("a\0b", 3) + "|\xff|" + "\xe2\x82" + "x|" + "\xc0\xaf|" + "\xed\xa0\x80|" +
                     "\xf4\x90\x80\x80|" + "ok \xe2\x82\xac|" + "\xe2\x82";  // truncated at the end
  bad.response_body = std::string("\0\0", 2);
  bad.user_id = "user-\xfe";
  bad.error_message = std::string("line\0", 5);
  bad.metadata = std::string("{\"k\": \"v\xff\"}");
  auto good = row("req-good", t0 + 1s);
  good.response_body = "still fine: 🦀";

  EXPECT_EQ(db.insert_traces({bad, good}), 2u);  // the bad row does not fail the batch

  auto got = db.trace("req-bad");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->request_body, "a" + fffd + "b|" + fffd + "|" + fffd + "x|" + fffd + fffd + "|" + fffd + fffd + fffd +
                                   "|" + fffd + fffd + fffd + fffd + "|ok \xe2\x82\xac|" + fffd);
  EXPECT_EQ(got->response_body, fffd + fffd);
  EXPECT_EQ(got->user_id, "user-" + fffd);
  EXPECT_EQ(got->error_message, "line" + fffd);
  EXPECT_EQ(got->metadata, "{\"k\": \"v" + fffd + "\"}");
  EXPECT_EQ(db.trace("req-good")->response_body, "still fine: 🦀");

  // Filters are cleaned the same way, so the cleaned value finds the row.
  store::trace_query q;
  q.user_id = "user-\xfe";
  EXPECT_EQ(ids(db.traces(q).rows), std::vector<std::string>{"req-bad"});
}

TEST_F(trace_store_test, metadata_jsonb_refuses_is_kept_as_text) {
  auto t0 = at_micros(1'750'000'000'000'000);
  std::vector<store::trace_row> rows;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", R"({"invalid_metadata": "not json"})"},
      {"[1, 2]", R"({"invalid_metadata": "[1, 2]"})"},  // not an object
      {R"({"a": "\u0000"})", R"({"invalid_metadata": "{\"a\": \"\\u0000\"}"})"},
      {R"({"a": "\ud800"})", R"({"invalid_metadata": "{\"a\": \"\\ud800\"}"})"},      // a lone high surrogate
      {R"({"a": "\udc00x"})", R"({"invalid_metadata": "{\"a\": \"\\udc00x\"}"})"},    // a lone low surrogate
      {R"({"a": "\ud83e\udd80"})", R"({"a": "🦀"})"},                                  // a pair is fine
      {R"({"a": "\\u0000"})", R"({"a": "\\u0000"})"},                                  // an escaped backslash
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto r = row("req-" + std::to_string(i), t0 + std::chrono::seconds(i));
    r.metadata = cases[i].first;
    rows.push_back(r);
  }
  EXPECT_EQ(db.insert_traces(rows), rows.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].first);
    auto got = db.trace("req-" + std::to_string(i));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->metadata, cases[i].second);
  }
}

TEST_F(trace_store_test, reinserting_a_batch_is_idempotent) {
  auto t0 = at_micros(1'750'000'000'000'000);
  std::vector<store::trace_row> batch = {row("req-1", t0), row("req-2", t0 + 1s), row("req-3", t0 + 2s)};
  EXPECT_EQ(db.insert_traces(batch), 3u);
  EXPECT_EQ(db.insert_traces(batch), 0u);
  // A changed row with the same (request_id, start_time) is not written over.
  auto changed = batch[0];
  changed.status = "failure";
  batch.push_back(row("req-4", t0 + 3s));
  batch[0] = changed;
  EXPECT_EQ(db.insert_traces(batch), 1u);
  EXPECT_EQ(db.trace("req-1")->status, "success");
  // A duplicate within one batch counts once.
  EXPECT_EQ(db.insert_traces({row("req-5", t0 + 4s), row("req-5", t0 + 4s)}), 1u);
  EXPECT_EQ(sql_value("SELECT count(*) FROM llm_traces"), "5");
  EXPECT_EQ(db.insert_traces({}), 0u);
}

TEST_F(trace_store_test, trace_of_an_absent_request_is_nullopt) {
  EXPECT_FALSE(db.trace("req-none"));
  ASSERT_EQ(db.insert_traces({row("req-1", at_micros(1'750'000'000'000'000))}), 1u);
  EXPECT_FALSE(db.trace("req-none"));
  EXPECT_FALSE(db.trace(""));
  EXPECT_TRUE(db.trace("req-1"));
}

TEST_F(trace_store_test, trace_returns_the_newest_row_of_a_request_id) {
  auto t0 = at_micros(1'750'000'000'000'000);
  auto older = row("req-1", t0);
  auto newer = row("req-1", t0 + 1h);
  newer.status = "failure";
  ASSERT_EQ(db.insert_traces({older, newer}), 2u);
  auto got = db.trace("req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->start_time, t0 + 1h);
  EXPECT_EQ(got->status, "failure");
}

TEST_F(trace_store_test, list_pages_omit_bodies_unless_asked) {
  auto t = row("req-1", at_micros(1'750'000'000'000'000));
  t.request_truncated = true;
  ASSERT_EQ(db.insert_traces({t}), 1u);

  auto page = db.traces({});
  ASSERT_EQ(page.rows.size(), 1u);
  EXPECT_EQ(page.rows[0].request_body, "");
  EXPECT_EQ(page.rows[0].response_body, "");
  EXPECT_TRUE(page.rows[0].request_truncated);  // the flags still tell what was captured
  EXPECT_EQ(page.rows[0].status, "success");

  store::trace_query q;
  q.with_bodies = true;
  page = db.traces(q);
  ASSERT_EQ(page.rows.size(), 1u);
  EXPECT_EQ(page.rows[0].request_body, "request of req-1");
  EXPECT_EQ(page.rows[0].response_body, "response of req-1");
  EXPECT_EQ(db.trace("req-1")->request_body, "request of req-1");
}

// ---- filters ----

TEST_F(trace_store_test, each_filter_and_combinations) {
  auto t0 = at_micros(1'750'000'000'000'000);
  std::vector<store::trace_row> rows;
  for (int i = 0; i < 24; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "req-%02d", i);
    auto r = row(id, t0 + std::chrono::minutes(i));
    r.api_key = std::string("key-") + "abc"[i % 3];
    r.user_id = i % 2 ? "user-y" : "user-x";
    r.team_id = i < 12 ? "team-1" : "team-2";
    r.model_group = i % 4 == 0 ? "gpt-4o" : "mini";
    r.status = i % 5 == 0 ? "failure" : "success";
    char trace[40];
    std::snprintf(trace, sizeof trace, "%032x", i / 2);  // two requests per trace
    r.trace_id = trace;
    rows.push_back(r);
  }
  ASSERT_EQ(db.insert_traces(rows), rows.size());

  auto check = [&](const store::trace_query& q, const std::function<bool(const store::trace_row&)>& keep) {
    std::vector<store::trace_row> expected;
    for (const auto& r : rows)
      if (keep(r)) expected.push_back(r);
    auto page = db.traces(q);
    EXPECT_EQ(ids(page.rows), newest_first(expected));
    EXPECT_FALSE(page.next_cursor);
    return expected.size();
  };

  store::trace_query q;
  EXPECT_EQ(check(q, [](auto&) { return true; }), 24u);

  q = {};
  q.start = t0 + 2min;  // both bounds inclusive
  q.end = t0 + 5min;
  EXPECT_EQ(check(q, [&](auto& r) { return r.start_time >= t0 + 2min && r.start_time <= t0 + 5min; }), 4u);
  q = {};
  q.start = t0 + 20min;
  EXPECT_EQ(check(q, [&](auto& r) { return r.start_time >= t0 + 20min; }), 4u);
  q = {};
  q.end = t0 + 1min - 1us;
  EXPECT_EQ(check(q, [&](auto& r) { return r.start_time <= t0; }), 1u);

  q = {};
  q.api_key = "key-b";
  EXPECT_EQ(check(q, [](auto& r) { return r.api_key == "key-b"; }), 8u);
  q = {};
  q.user_id = "user-y";
  EXPECT_EQ(check(q, [](auto& r) { return r.user_id == "user-y"; }), 12u);
  q = {};
  q.team_id = "team-2";
  EXPECT_EQ(check(q, [](auto& r) { return r.team_id == "team-2"; }), 12u);
  q = {};
  q.model_group = "gpt-4o";
  EXPECT_EQ(check(q, [](auto& r) { return r.model_group == "gpt-4o"; }), 6u);
  q = {};
  q.status = "failure";
  EXPECT_EQ(check(q, [](auto& r) { return r.status == "failure"; }), 5u);
  q = {};
  q.trace_id = rows[7].trace_id;
  EXPECT_EQ(check(q, [&](auto& r) { return r.trace_id == rows[7].trace_id; }), 2u);
  q = {};
  q.api_key = "key-none";
  EXPECT_EQ(check(q, [](auto&) { return false; }), 0u);

  // Combinations.
  q = {};
  q.api_key = "key-a";
  q.user_id = "user-x";
  EXPECT_EQ(check(q, [](auto& r) { return r.api_key == "key-a" && r.user_id == "user-x"; }), 4u);
  q = {};
  q.team_id = "team-1";
  q.model_group = "mini";
  q.status = "success";
  EXPECT_EQ(check(q, [](auto& r) { return r.team_id == "team-1" && r.model_group == "mini" && r.status == "success"; }),
            7u);
  q = {};
  q.start = t0 + 6min;
  q.end = t0 + 17min;
  q.user_id = "user-x";
  q.team_id = "team-2";
  EXPECT_EQ(check(q,
                  [&](auto& r) {
                    return r.start_time >= t0 + 6min && r.start_time <= t0 + 17min && r.user_id == "user-x" &&
                           r.team_id == "team-2";
                  }),
            3u);
  q = {};
  q.trace_id = rows[0].trace_id;
  q.status = "failure";
  EXPECT_EQ(check(q, [&](auto& r) { return r.trace_id == rows[0].trace_id && r.status == "failure"; }), 1u);

  // The limit is clamped to 1..1000.
  q = {};
  q.limit = 0;
  auto page = db.traces(q);
  EXPECT_EQ(ids(page.rows), std::vector<std::string>{"req-23"});
  EXPECT_TRUE(page.next_cursor);
  q.limit = 5000;
  EXPECT_EQ(db.traces(q).rows.size(), 24u);
}

// ---- paging ----

TEST_F(trace_store_test, keyset_paging_visits_every_row_once_in_order) {
  auto t0 = at_micros(1'750'000'000'000'001);
  std::vector<store::trace_row> rows;
  for (int i = 0; i < 120; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "req-%03d", (i * 37) % 120);  // ids not in time order
    // Four rows share each start_time: their order is by request_id.
    auto r = row(id, t0 + std::chrono::microseconds(i / 4));
    r.api_key = i % 2 ? "key-odd" : "key-even";
    rows.push_back(r);
  }
  ASSERT_EQ(db.insert_traces(rows), 120u);

  std::vector<std::string> seen;
  std::vector<std::size_t> sizes;
  store::trace_query q;
  q.limit = 50;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = db.traces(q);
    sizes.push_back(page.rows.size());
    for (const auto& r : page.rows) seen.push_back(r.request_id);
    if (!page.next_cursor) break;
    q.cursor = page.next_cursor;
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{50, 50, 20}));
  EXPECT_EQ(seen, newest_first(rows));  // no gaps, no duplicates, in order
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 120u);

  // Paging with a filter, and a last page that is exactly full: no cursor after it.
  q = {};
  q.api_key = "key-odd";
  q.limit = 30;
  auto page = db.traces(q);
  ASSERT_EQ(page.rows.size(), 30u);
  ASSERT_TRUE(page.next_cursor);
  q.cursor = page.next_cursor;
  auto second = db.traces(q);
  EXPECT_EQ(second.rows.size(), 30u);
  EXPECT_FALSE(second.next_cursor);
  std::vector<store::trace_row> odd;
  for (const auto& r : rows)
    if (r.api_key == "key-odd") odd.push_back(r);
  auto both = ids(page.rows);
  for (const auto& id : ids(second.rows)) both.push_back(id);
  EXPECT_EQ(both, newest_first(odd));
}

TEST_F(trace_store_test, a_malformed_cursor_throws_invalid_argument) {
  ASSERT_EQ(db.insert_traces({row("req-1", at_micros(1'750'000'000'000'000))}), 1u);
  for (std::string cursor : std::vector<std::string>{"", "abc", "123", ".72", "12x.72", "123.7", "123.zz", "1.2.3", "123.7g",
                             "99999999999999999999.72", "9223372036854775807.72", std::string(5000, '1') + ".72"}) {
    SCOPED_TRACE(cursor);
    store::trace_query q;
    q.cursor = cursor;
    EXPECT_THROW(db.traces(q), std::invalid_argument);
  }
  // A well-formed cursor anywhere in time works; one past every row gives them all.
  store::trace_query q;
  q.cursor = "1900000000000000.";
  EXPECT_EQ(db.traces(q).rows.size(), 1u);
  q.cursor = "-5.00ff";
  EXPECT_TRUE(db.traces(q).rows.empty());
}

// ---- partitions ----

TEST_F(trace_store_test, rows_land_in_day_partitions_and_retention_drops_old_ones) {
  using namespace std::chrono;
  auto today = floor<days>(system_clock::now());

  // Written before the day partitions exist: they land in the default partition...
  ASSERT_EQ(db.insert_traces({row("req-yesterday", today - days(1) + 1h), row("req-today", today + 2h),
                              row("req-tomorrow", today + days(1) + 3h)}),
            3u);
  EXPECT_EQ(partition_of("req-today"), "llm_traces_default");

  // ...and move into them when they are made.
  EXPECT_EQ(db.maintain_trace_partitions(1, 0), 0);
  EXPECT_EQ(partition_of("req-yesterday"), partition_name(today - days(1)));
  EXPECT_EQ(partition_of("req-today"), partition_name(today));
  EXPECT_EQ(partition_of("req-tomorrow"), partition_name(today + days(1)));
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'llm_traces'::regclass"), "4");
  EXPECT_EQ(sql_value("SELECT count(*) FROM llm_traces_default"), "0");
  // Indexes (the primary key too) follow the parent's.
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_indexes WHERE tablename = '" + partition_name(today) + "'"), "7");
  // The spend logs' partitions are their own business.
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'llm_spend_logs'::regclass"), "1");
  EXPECT_EQ(db.maintain_trace_partitions(1, 0), 0);  // nothing new to do

  // New rows go straight into their day's partition, and are read back from there.
  ASSERT_EQ(db.insert_traces({row("req-today-2", today + 5h)}), 1u);
  EXPECT_EQ(partition_of("req-today-2"), partition_name(today));
  store::trace_query q;
  q.start = keys::sys_time(today);
  q.end = keys::sys_time(today + days(1)) - 1us;
  EXPECT_EQ(ids(db.traces(q).rows), (std::vector<std::string>{"req-today-2", "req-today"}));

  // An old day's partition goes with its rows once past retention, and so do the
  // default partition's rows older than the cutoff.
  auto old_day = today - days(10);
  sql("CREATE TABLE " + partition_name(old_day) + " PARTITION OF llm_traces FOR VALUES FROM ('" + day_text(old_day) +
      " 00:00:00+00') TO ('" + day_text(old_day + days(1)) + " 00:00:00+00')");
  ASSERT_EQ(db.insert_traces({row("req-old", old_day + 5h), row("req-older", old_day - days(5)),
                              row("req-recent", today - days(3))}),
            3u);
  EXPECT_EQ(partition_of("req-old"), partition_name(old_day));
  EXPECT_EQ(partition_of("req-older"), "llm_traces_default");
  EXPECT_EQ(partition_of("req-recent"), "llm_traces_default");  // within retention

  EXPECT_EQ(db.maintain_trace_partitions(1, 30), 0);  // within retention
  EXPECT_EQ(db.maintain_partitions(1, 7), 0);         // the spend logs' retention leaves traces alone
  EXPECT_EQ(partition_of("req-old"), partition_name(old_day));
  EXPECT_EQ(db.maintain_trace_partitions(1, 7), 1);
  EXPECT_EQ(sql_value("SELECT to_regclass('" + partition_name(old_day) + "')::text"), "");
  EXPECT_EQ(partition_of("req-old"), "");
  EXPECT_EQ(partition_of("req-older"), "");
  EXPECT_EQ(partition_of("req-recent"), "llm_traces_default");
  EXPECT_EQ(partition_of("req-yesterday"), partition_name(today - days(1)));
  EXPECT_EQ(partition_of("req-tomorrow"), partition_name(today + days(1)));
  EXPECT_FALSE(db.trace("req-old"));
  EXPECT_TRUE(db.trace("req-recent"));
}

// ---- throughput ----

TEST_F(trace_store_test, insert_throughput) {
  using clock = std::chrono::steady_clock;
  auto t0 = at_micros(1'750'000'000'000'000);
  const std::string body(1024, 'x');
  std::vector<std::vector<store::trace_row>> batches(4);
  for (int i = 0; i < 2000; ++i) {
    auto r = full_row("req-" + std::to_string(i), t0 + std::chrono::milliseconds(i));
    r.request_body = "{\"messages\": [{\"role\": \"user\", \"content\": \"" + body + "\"}]}";
    r.response_body = body;
    batches[i / 500].push_back(std::move(r));
  }
  auto start = clock::now();
  std::size_t inserted = 0;
  for (const auto& b : batches) inserted += db.insert_traces(b);
  double seconds = std::chrono::duration<double>(clock::now() - start).count();
  EXPECT_EQ(inserted, 2000u);
  std::cout << "[ perf     ] insert_traces: 2000 rows (~2.2 KB each) in 4 batches of 500: " << seconds * 1000
            << " ms, " << static_cast<long>(2000 / seconds) << " rows/s" << std::endl;
  RecordProperty("rows_per_second", static_cast<int>(2000 / seconds));
}
