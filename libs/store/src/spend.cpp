/// pg_store: spend logs (writes for apply(), queries, aggregates) and the maintenance
/// of their daily partitions.

#include <chrono>

#include "codec.hpp"
#include "gw/store/pg_store.hpp"
#include "partitions.hpp"
#include "spend_logs.hpp"
#include "store_impl.hpp"

namespace gw::store {

using namespace detail;

namespace detail {

void insert_spend_logs(pqxx::work& tx, const std::vector<spend_log_row>& logs) {
  if (logs.empty()) return;
  // One array per column, unnest()ed into rows: a single statement for any batch size.
  std::vector<std::string> request_id, call_type, api_key, key_alias, user_id, team_id, model_group, model_id, model,
      api_base, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time, status, http_status,
      cache_hit, metadata, route;
  std::vector<std::optional<std::string>> completion_start_time, request_body;
  for (const auto& l : logs) {
    request_id.push_back(l.request_id);
    call_type.push_back(l.call_type);
    api_key.push_back(l.api_key);
    key_alias.push_back(l.key_alias);
    user_id.push_back(l.user_id);
    team_id.push_back(l.team_id);
    model_group.push_back(l.model_group);
    model_id.push_back(l.model_id);
    model.push_back(l.model);
    api_base.push_back(l.api_base);
    prompt_tokens.push_back(std::to_string(l.prompt_tokens));
    completion_tokens.push_back(std::to_string(l.completion_tokens));
    total_tokens.push_back(std::to_string(l.total_tokens));
    spend.push_back(keys::to_decimal(l.spend));
    start_time.push_back(timestamp_text(l.start_time));
    end_time.push_back(timestamp_text(l.end_time));
    completion_start_time.push_back(l.completion_start_time ? std::optional(timestamp_text(*l.completion_start_time))
                                                            : std::nullopt);
    status.push_back(l.status);
    http_status.push_back(std::to_string(l.http_status));
    cache_hit.push_back(l.cache_hit ? "true" : "false");
    metadata.push_back(l.metadata.empty() ? "{}" : l.metadata);
    route.push_back(l.route);
    request_body.push_back(l.request_body.empty() ? std::nullopt : std::optional(l.request_body));
  }
  tx.exec_params(
      "WITH inserted AS ("
      " INSERT INTO llm_spend_logs (request_id, call_type, api_key, key_alias, user_id, team_id, model_group,"
      "  model_id, model, api_base, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time,"
      "  completion_start_time, status, http_status, cache_hit, metadata, route, proxy_server_request)"
      " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
      "  $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::numeric[],"
      "  $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::text[], $19::integer[], $20::boolean[],"
      "  $21::jsonb[], $22::text[], $23::jsonb[])"
      " ON CONFLICT DO NOTHING"
      " RETURNING model_group, spend, prompt_tokens, completion_tokens)"
      " INSERT INTO llm_model_spend AS m (model_group, spend, requests, prompt_tokens, completion_tokens)"
      " SELECT model_group, sum(spend), count(*), sum(prompt_tokens), sum(completion_tokens)"
      " FROM inserted GROUP BY model_group ORDER BY model_group"
      " ON CONFLICT (model_group) DO UPDATE SET spend = m.spend + excluded.spend,"
      "  requests = m.requests + excluded.requests, prompt_tokens = m.prompt_tokens + excluded.prompt_tokens,"
      "  completion_tokens = m.completion_tokens + excluded.completion_tokens",
      array_literal(request_id), array_literal(call_type), array_literal(api_key), array_literal(key_alias),
      array_literal(user_id), array_literal(team_id), array_literal(model_group), array_literal(model_id),
      array_literal(model), array_literal(api_base), array_literal(prompt_tokens), array_literal(completion_tokens),
      array_literal(total_tokens), array_literal(spend), array_literal(start_time), array_literal(end_time),
      array_literal(completion_start_time), array_literal(status), array_literal(http_status), array_literal(cache_hit),
      array_literal(metadata), array_literal(route), array_literal(request_body));
}

}  // namespace detail

namespace {

spend_log_row read_spend_log(const pqxx::row& r) {
  spend_log_row l;
  l.request_id = text_of(r["request_id"]);
  l.call_type = text_of(r["call_type"]);
  l.api_key = text_of(r["api_key"]);
  l.key_alias = text_of(r["key_alias"]);
  l.user_id = text_of(r["user_id"]);
  l.team_id = text_of(r["team_id"]);
  l.model_group = text_of(r["model_group"]);
  l.model_id = text_of(r["model_id"]);
  l.model = text_of(r["model"]);
  l.api_base = text_of(r["api_base"]);
  l.prompt_tokens = int_of(r["prompt_tokens"]);
  l.completion_tokens = int_of(r["completion_tokens"]);
  l.total_tokens = int_of(r["total_tokens"]);
  l.spend = money_of(r["spend"]);
  l.start_time = time_of(r["start_time"]);
  l.end_time = time_of(r["end_time"]);
  l.completion_start_time = opt_time_of(r["completion_start_time"]);
  l.status = text_of(r["status"]);
  l.http_status = static_cast<int>(int_of(r["http_status"]));
  l.cache_hit = bool_of(r["cache_hit"]);
  l.metadata = text_of(r["metadata"]);
  l.route = text_of(r["route"]);
  l.request_body = text_of(r["proxy_server_request"]);
  return l;
}

spend_total read_total(const pqxx::row& r) {
  spend_total t;
  t.name = text_of(r[0]);
  t.label = text_of(r[1]);
  t.spend = money_of(r[2]);
  t.requests = int_of(r[3]);
  t.prompt_tokens = int_of(r[4]);
  t.completion_tokens = int_of(r[5]);
  return t;
}

}  // namespace

// ---- reads ----

std::vector<spend_log_row> pg_store::spend_logs(const spend_query& q) {
  return impl_->run("spend_logs", [&](pqxx::connection& c) {
    params p;
    std::string where;
    auto filter = [&](const char* column, const char* op, const std::optional<std::string>& v) {
      if (!v) return;
      p.text(*v);
      where += (where.empty() ? " WHERE " : " AND ") + std::string(column) + op + "$" + std::to_string(p.size());
    };
    filter("request_id", " = ", q.request_id);
    filter("api_key", " = ", q.api_key);
    filter("user_id", " = ", q.user_id);
    filter("team_id", " = ", q.team_id);
    filter("model_group", " = ", q.model_group);
    auto time_text = [](const std::optional<keys::sys_time>& t) {
      return t ? std::optional(timestamp_text(*t)) : std::nullopt;
    };
    filter("start_time", " >= ", time_text(q.start));
    filter("start_time", " <= ", time_text(q.end));
    p.bigint(static_cast<std::int64_t>(q.limit));
    std::string sql = "SELECT * FROM llm_spend_logs" + where + " ORDER BY start_time DESC, request_id DESC LIMIT $" +
                      std::to_string(p.size());
    p.bigint(static_cast<std::int64_t>(q.offset));
    sql += " OFFSET $" + std::to_string(p.size());
    pqxx::read_transaction tx(c);
    std::vector<spend_log_row> out;
    for (const auto& r : tx.exec_params(sql, p.dynamic())) out.push_back(read_spend_log(r));
    return out;
  });
}

keys::money pg_store::global_spend() {
  return impl_->run("global_spend", [](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    return money_of(tx.exec("SELECT coalesce(sum(spend), 0) FROM llm_model_spend")[0][0]);
  });
}

std::vector<spend_total> pg_store::spend_by_key(std::size_t limit) {
  return impl_->run("spend_by_key", [&](pqxx::connection& c) {
    // Spend is the key's lifetime total; requests and tokens count the spend logs
    // still retained.
    pqxx::read_transaction tx(c);
    std::vector<spend_total> out;
    auto rows = tx.exec_params(
        "SELECT k.token, coalesce(k.key_alias, ''), k.total_spend, l.requests, l.prompt_tokens, l.completion_tokens"
        " FROM (SELECT token, key_alias, total_spend FROM llm_keys ORDER BY total_spend DESC, token LIMIT $1) k"
        " CROSS JOIN LATERAL (SELECT count(*) AS requests, coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
        "  coalesce(sum(completion_tokens), 0) AS completion_tokens FROM llm_spend_logs s WHERE s.api_key = k.token) l"
        " ORDER BY k.total_spend DESC, k.token",
        static_cast<long long>(limit));
    for (const auto& r : rows) out.push_back(read_total(r));
    return out;
  });
}

std::vector<spend_total> pg_store::spend_by_model(std::size_t limit) {
  return impl_->run("spend_by_model", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    std::vector<spend_total> out;
    auto rows = tx.exec_params(
        "SELECT model_group, '', spend, requests, prompt_tokens, completion_tokens FROM llm_model_spend"
        " ORDER BY spend DESC, model_group LIMIT $1",
        static_cast<long long>(limit));
    for (const auto& r : rows) out.push_back(read_total(r));
    return out;
  });
}

// ---- maintenance ----

int pg_store::maintain_partitions(int days_ahead, int retention_days) {
  return impl_->run("maintain_partitions", [&](pqxx::connection& c) {
    return maintain_day_partitions(c, "llm_spend_logs", days_ahead, retention_days);
  });
}

}  // namespace gw::store
