// The trace pipeline's pure parts: settings from config and environment, secret
// redaction, record -> row, the memory store's filters and paging.

#include <gtest/gtest.h>

#include <map>

#include "gw/trace_pipeline/pipeline.hpp"
#include "internal.hpp"  // libs/trace_pipeline/src

namespace tp = gw::tracing;
namespace td = gw::tracing::trace_detail;

namespace {

struct env_map {
  std::map<std::string, std::string> v;
  tp::env_lookup fn() const {
    return [this](const char* k) -> const char* {
      auto it = v.find(k);
      return it == v.end() ? nullptr : it->second.c_str();
    };
  }
};

tp::trace_settings settings(const gw::config::gateway_config& c, const env_map& e, std::vector<std::string>& w,
                            std::string db = "") {
  return tp::make_trace_settings(c, db, e.fn(), w);
}

}  // namespace

TEST(TraceSettings, NothingConfiguredMeansNoTracing) {
  gw::config::gateway_config c;
  env_map e;
  std::vector<std::string> w;
  auto s = settings(c, e, w);
  EXPECT_FALSE(s.any());
  EXPECT_FALSE(s.capture_request);
  EXPECT_TRUE(w.empty());
}

TEST(TraceSettings, OtlpFromEnvironment) {
  gw::config::gateway_config c;
  env_map e{{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"},
             {"OTEL_EXPORTER_OTLP_HEADERS", "a=1, b = x%3Dy ,broken"}}};
  std::vector<std::string> w;
  auto s = settings(c, e, w);
  ASSERT_EQ(s.otlp.size(), 1u);
  EXPECT_EQ(s.otlp[0].name, "otlp");
  EXPECT_EQ(s.otlp[0].url, "http://collector:4318/v1/traces");
  ASSERT_EQ(s.otlp[0].headers.size(), 2u);
  EXPECT_EQ(s.otlp[0].headers[1].first, "b");
  EXPECT_EQ(s.otlp[0].headers[1].second, "x=y");
  EXPECT_EQ(w.size(), 1u) << "the entry without '=' is reported";
  EXPECT_FALSE(s.otlp[0].otlp.capture_content);
  // No content shown: no body is copied; the request path reads the spans' facts.
  EXPECT_FALSE(s.capture_request);
  EXPECT_TRUE(s.facts);
  EXPECT_EQ(s.capture_bytes, 64u * 1024u) << "no content shown: only what finish reasons need";
}

TEST(TraceSettings, OtlpProtocolDefaultsToProtobuf) {
  gw::config::gateway_config c;
  std::vector<std::string> w;
  env_map e{{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}}};
  EXPECT_TRUE(settings(c, e, w).otlp.at(0).otlp.protobuf) << "the OpenTelemetry SDKs' default";
  e.v["OTEL_EXPORTER_OTLP_PROTOCOL"] = " HTTP/JSON ";
  EXPECT_FALSE(settings(c, e, w).otlp.at(0).otlp.protobuf);
  e.v["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf";  // the traces variable wins
  EXPECT_TRUE(settings(c, e, w).otlp.at(0).otlp.protobuf);
  EXPECT_TRUE(w.empty());
  e.v["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "grpc";
  EXPECT_TRUE(settings(c, e, w).otlp.at(0).otlp.protobuf);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("no OTLP/gRPC exporter"), std::string::npos) << w[0];
  w.clear();
  e.v["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "carrier-pigeon";
  EXPECT_TRUE(settings(c, e, w).otlp.at(0).otlp.protobuf);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='carrier-pigeon'"), std::string::npos) << w[0];
  // Langfuse's endpoint gets JSON whatever the OTLP variables say.
  c.litellm.callbacks = {"langfuse"};
  e.v["LANGFUSE_PUBLIC_KEY"] = "pk";
  e.v["LANGFUSE_SECRET_KEY"] = "sk";
  w.clear();
  auto s = settings(c, e, w);
  ASSERT_EQ(s.otlp.size(), 2u);
  EXPECT_EQ(s.otlp[1].name, "langfuse");
  EXPECT_FALSE(s.otlp[1].otlp.protobuf);
}

TEST(TraceSettings, TracesEndpointIsTakenAsIsAndSdkDisabledWins) {
  gw::config::gateway_config c;
  std::vector<std::string> w;
  env_map e{{{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://x/otlp/traces"}}};
  EXPECT_EQ(settings(c, e, w).otlp.at(0).url, "https://x/otlp/traces");
  e.v["OTEL_SDK_DISABLED"] = "true";
  EXPECT_TRUE(settings(c, e, w).otlp.empty());
}

TEST(TraceSettings, LangfuseFromCallbacks) {
  gw::config::gateway_config c;
  c.litellm.success_callback = {"langfuse"};
  env_map e{{{"LANGFUSE_PUBLIC_KEY", "pk"}, {"LANGFUSE_SECRET_KEY", "sk"}, {"LANGFUSE_HOST", "http://lf:3000/"}}};
  std::vector<std::string> w;
  auto s = settings(c, e, w);
  ASSERT_EQ(s.otlp.size(), 1u);
  EXPECT_EQ(s.otlp[0].url, "http://lf:3000/api/public/otel/v1/traces");
  EXPECT_EQ(s.otlp[0].headers.at(0).second, "Basic cGs6c2s=");
  EXPECT_TRUE(s.otlp[0].otlp.langfuse);
  EXPECT_TRUE(s.otlp[0].otlp.capture_content);
  EXPECT_TRUE(s.otlp[0].successes);
  EXPECT_FALSE(s.otlp[0].failures);
  c.litellm.turn_off_message_logging = true;
  EXPECT_FALSE(settings(c, e, w).otlp[0].otlp.capture_content);
}

TEST(TraceSettings, LangfuseWithoutKeysWarnsAndSendsNothing) {
  gw::config::gateway_config c;
  c.litellm.callbacks = {"langfuse", "datadog"};
  env_map e;
  std::vector<std::string> w;
  auto s = settings(c, e, w);
  EXPECT_TRUE(s.otlp.empty());
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("LANGFUSE_PUBLIC_KEY"), std::string::npos);
  EXPECT_NE(w[1].find("datadog"), std::string::npos);
}

namespace {

gw::tracing::trace_id id_with_low(std::uint64_t low) {
  gw::tracing::trace_id id{};
  id[0] = 0xab;  // the high half does not count
  for (int i = 15; i >= 8; --i, low >>= 8) id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(low & 0xff);
  return id;
}

}  // namespace

TEST(TraceSampler, TraceIdRatioUsesTheLowerEightBytes) {
  EXPECT_TRUE(tp::trace_id_ratio_sampled(id_with_low(0), 0.001));
  EXPECT_FALSE(tp::trace_id_ratio_sampled(id_with_low(0), 0.0));
  EXPECT_TRUE(tp::trace_id_ratio_sampled(id_with_low(~0ull), 1.0));
  // (low >> 1) < ratio * 2^63: the boundary for 0.5 is low = 2^63.
  EXPECT_TRUE(tp::trace_id_ratio_sampled(id_with_low((1ull << 63) - 2), 0.5));
  EXPECT_FALSE(tp::trace_id_ratio_sampled(id_with_low(1ull << 63), 0.5));
  // About the ratio over many ids.
  std::uint64_t x = 88172645463325252ull;
  int hits = 0;
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    hits += tp::trace_id_ratio_sampled(id_with_low(x), 0.25) ? 1 : 0;
  }
  EXPECT_NEAR(hits / 20000.0, 0.25, 0.02);
}

TEST(TraceSampler, FromTheEnvironment) {
  gw::config::gateway_config c;
  std::vector<std::string> w;
  env_map e{{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}}};
  auto s = settings(c, e, w);
  // Default parentbased_always_on: a client's flag decides, else sampled.
  EXPECT_TRUE(s.sampler.sample(id_with_low(~0ull), false, false));
  EXPECT_FALSE(s.sampler.sample(id_with_low(0), true, false));
  EXPECT_TRUE(s.sampler.sample(id_with_low(0), true, true));

  e.v["OTEL_TRACES_SAMPLER"] = "traceidratio";
  e.v["OTEL_TRACES_SAMPLER_ARG"] = "0.5";
  s = settings(c, e, w);
  EXPECT_TRUE(s.sampler.sample(id_with_low(1), true, false)) << "not parent-based: the id decides";
  EXPECT_FALSE(s.sampler.sample(id_with_low(~0ull), true, true));

  e.v["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio";
  e.v["OTEL_TRACES_SAMPLER_ARG"] = "0";
  s = settings(c, e, w);
  EXPECT_TRUE(s.sampler.sample(id_with_low(~0ull), true, true));
  EXPECT_FALSE(s.sampler.sample(id_with_low(0), false, false));

  e.v["OTEL_TRACES_SAMPLER"] = "always_off";
  EXPECT_FALSE(settings(c, e, w).sampler.sample(id_with_low(0), true, true));
  EXPECT_TRUE(w.empty());

  e.v["OTEL_TRACES_SAMPLER"] = "jaeger_remote";
  s = settings(c, e, w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("jaeger_remote"), std::string::npos);
  EXPECT_FALSE(s.sampler.sample(id_with_low(0), true, false)) << "falls back to parentbased_always_on";
  w.clear();
  e.v["OTEL_TRACES_SAMPLER"] = "traceidratio";
  e.v["OTEL_TRACES_SAMPLER_ARG"] = "1.5";
  s = settings(c, e, w);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_DOUBLE_EQ(s.sampler.ratio, 1.0);
}

TEST(TraceSampler, DecideSetsTheFlagAndSaysWhetherBodiesAreNeeded) {
  gw::config::gateway_config c;
  std::vector<std::string> w;
  env_map e{{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}, {"OTEL_TRACES_SAMPLER", "always_off"}}};
  auto s = settings(c, e, w);
  gw::tracing::trace_record r;
  r.trace = id_with_low(5);
  r.flags = 1;
  EXPECT_FALSE(s.decide(r, false)) << "nobody takes an unsampled record: no bodies";
  EXPECT_EQ(r.flags & 1, 0);
  EXPECT_FALSE(s.otlp[0].takes(r));
  // With a store that keeps bodies, every record keeps them.
  c.gateway.trace_store = true;
  s = settings(c, e, w, "postgresql://x");
  EXPECT_TRUE(s.decide(r, false));
  // Langfuse ignores the OpenTelemetry sampler; LANGFUSE_SAMPLE_RATE is its own.
  gw::config::gateway_config lc;
  lc.litellm.callbacks = {"langfuse"};
  env_map le{{{"LANGFUSE_PUBLIC_KEY", "pk"}, {"LANGFUSE_SECRET_KEY", "sk"}, {"OTEL_TRACES_SAMPLER", "always_off"}}};
  auto ls = settings(lc, le, w);
  r.flags = 1;
  EXPECT_TRUE(ls.decide(r, false));
  EXPECT_TRUE(ls.otlp[0].takes(r));
  le.v["LANGFUSE_SAMPLE_RATE"] = "0";
  ls = settings(lc, le, w);
  EXPECT_FALSE(ls.decide(r, false));
  EXPECT_FALSE(ls.otlp[0].takes(r));
}

TEST(TraceSettings, StoreFollowsTheDatabase) {
  gw::config::gateway_config c;
  env_map e;
  std::vector<std::string> w;
  EXPECT_TRUE(settings(c, e, w, "postgresql://x").store);
  c.gateway.trace_store = false;
  EXPECT_FALSE(settings(c, e, w, "postgresql://x").store);
  c.gateway.trace_store = true;
  auto s = settings(c, e, w);
  EXPECT_TRUE(s.store);
  EXPECT_TRUE(s.database_url.empty());
}

TEST(RedactSecrets, CredentialFieldsAnywhere) {
  std::string j = R"({"model":"m","api_key":"sk-1","metadata":{"Client_Secret" : "cs","note":"api_key"},"x":"api_key: no"})";
  td::redact_secrets(j);
  EXPECT_EQ(j, R"({"model":"m","api_key":"[redacted]","metadata":{"Client_Secret" : "[redacted]","note":"api_key"},"x":"api_key: no"})");
}

TEST(RedactSecrets, EscapesAndTruncatedInput) {
  std::string j = R"({"authorization":"Bearer a\"b","p":"q"})";
  td::redact_secrets(j);
  EXPECT_EQ(j, R"({"authorization":"[redacted]","p":"q"})");
  std::string cut = R"({"aws_secret_access_key":"abcd)";
  td::redact_secrets(cut);
  EXPECT_EQ(cut, R"({"aws_secret_access_key":"[redacted])");
  std::string nonstring = R"({"api_key":null,"password":12})";
  td::redact_secrets(nonstring);
  EXPECT_EQ(nonstring, R"({"api_key":null,"password":12})");
}

TEST(RedactSecrets, BackslashRunsDecideWhereAStringEnds) {
  // An even run of backslashes before a quote closes the string; an odd run escapes it.
  std::string j = R"({"note":"ends with a backslash \\","api_key":"sk-1","q":"say \\\"api_key\":\"x\"","password" :"p\\"})";
  td::redact_secrets(j);
  EXPECT_EQ(j, R"({"note":"ends with a backslash \\","api_key":"[redacted]","q":"say \\\"api_key\":\"x\"","password" :"[redacted]"})");
  // A key whose name holds an escaped quote is not a secret name.
  std::string k = R"({"api\"_key":"v","x":1})";
  td::redact_secrets(k);
  EXPECT_EQ(k, R"({"api\"_key":"v","x":1})");
  // Unterminated key: left as it is.
  std::string u = R"({"api_key)";
  td::redact_secrets(u);
  EXPECT_EQ(u, R"({"api_key)");
}

TEST(RedactSecrets, LongPromptsKeepTheirContent) {
  std::string content(100000, 'a');
  // Escaped quotes in the prompt make "api_key":"v" look like a field to a careless scan.
  const std::string fake = R"(\"api_key\":\"v\")";
  for (std::size_t i = 0; i + fake.size() < content.size(); i += 997) content.replace(i, fake.size(), fake);
  std::string j = R"({"messages":[{"role":"user","content":")" + content + R"("}],"metadata":{"API_KEY":"sk-zz"}})";
  auto expected = R"({"messages":[{"role":"user","content":")" + content + R"("}],"metadata":{"API_KEY":"[redacted]"}})";
  td::redact_secrets(j);
  EXPECT_EQ(j, expected);
}

TEST(TraceRow, BodiesFollowTheMode) {
  gw::tracing::trace_record r;
  r.request_id = "r1";
  r.status = 200;
  r.request_body = R"({"api_key":"sk-x","messages":[{"role":"user","content":"0123456789"}]})";
  r.response_body = "ok";
  tp::trace_settings s;
  s.store_bodies = tp::body_mode::truncated;
  s.store_body_bytes = 20;
  auto row = td::to_row(r, s);
  EXPECT_EQ(row.request_body.size(), 20u);
  EXPECT_TRUE(row.request_truncated);
  EXPECT_EQ(row.request_body.find("sk-x"), std::string::npos);
  EXPECT_EQ(row.status, "success");
  s.store_bodies = tp::body_mode::off;
  row = td::to_row(r, s);
  EXPECT_TRUE(row.request_body.empty());
  EXPECT_TRUE(row.response_body.empty());
}

TEST(MemoryStore, FiltersPagingAndCapacity) {
  td::memory_store m(5);
  std::vector<gw::store::trace_row> rows;
  for (int i = 0; i < 7; ++i) {
    gw::store::trace_row r;
    r.request_id = "r" + std::to_string(i);
    r.start_time = gw::keys::sys_time{std::chrono::seconds(1000 + i / 2)};  // pairs share a start
    r.status = i % 2 ? "failure" : "success";
    r.user_id = "u";
    rows.push_back(r);
  }
  m.add(rows);
  EXPECT_FALSE(m.get("r0")) << "capacity 5 keeps the newest";
  ASSERT_TRUE(m.get("r6"));
  gw::store::trace_query q;
  q.limit = 2;
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto p = m.query(q);
    for (auto& r : p.rows) seen.push_back(r.request_id);
    if (!p.next_cursor) break;
    q.cursor = p.next_cursor;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"r6", "r5", "r4", "r3", "r2"}));
  gw::store::trace_query f;
  f.status = "failure";
  auto p = m.query(f);
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0].request_id, "r5");
  gw::store::trace_query bad;
  bad.cursor = "nonsense";
  EXPECT_THROW(m.query(bad), std::invalid_argument);
}
