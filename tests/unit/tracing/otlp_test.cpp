#include "gw/tracing/otlp.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>

namespace gw::tracing {
namespace {

namespace dom = simdjson::dom;
using namespace std::chrono_literals;

// 2026-01-01T00:00:00Z
const sys_time t0 = sys_time(std::chrono::seconds(1767225600));

std::string nanos(sys_time t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

trace_id tid(std::uint8_t b) {
  trace_id t{};
  t.fill(b);
  return t;
}
span_id sid(std::uint8_t b) {
  span_id s{};
  s.fill(b);
  return s;
}

constexpr std::string_view prompt_marker = "ZEBRA-PROMPT-7781";
constexpr std::string_view answer_marker = "OKAPI-ANSWER-4412";

/// A successful non-streamed chat request with one attempt.
trace_record chat_record() {
  trace_record r;
  r.trace = tid(0x4b);
  r.span = sid(0x11);
  r.request_id = "req-1";
  r.node_id = "node-a";
  r.operation = "chat";
  r.route = "/v1/chat/completions";
  r.model_group = "gpt-4o";
  r.key_hash = "KEYHASH-9f2c1e0d5a";
  r.key_alias = "ci-key";
  r.user_id = "user-1";
  r.team_id = "team-1";
  r.end_user = "enduser-1";
  r.start = t0;
  r.end = t0 + 1200ms;
  r.status = 200;
  r.response_model = "gpt-4o-2024-08-06";
  r.deployment_id = "dep-1";
  r.provider = "openai";
  r.input_tokens = 19;
  r.output_tokens = 10;
  r.cost_pico = 147'500'000;  // 0.0001475 USD
  r.request_body = R"({"model":"gpt-4o","temperature":0.2,"max_tokens":50,"messages":[)"
                   R"({"role":"system","content":"You are terse."},)"
                   R"({"role":"user","content":"Say )" + std::string(prompt_marker) + R"("}]})";
  r.response_body = R"({"id":"chatcmpl-abc","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[)"
                    R"({"index":0,"message":{"role":"assistant","content":")" + std::string(answer_marker) +
                    R"("},"finish_reason":"stop"}]})";
  attempt_record a;
  a.span = sid(0x21);
  a.model_group = "gpt-4o";
  a.deployment_id = "dep-1";
  a.provider = "openai";
  a.upstream_model = "gpt-4o-2024-08-06";
  a.server_address = "api.openai.com";
  a.server_port = 443;
  a.start = t0 + 5ms;
  a.end = t0 + 1190ms;
  a.http_status = 200;
  r.attempts.push_back(a);
  return r;
}

trace_record streamed_record() {
  trace_record r = chat_record();
  r.stream = true;
  r.first_token = t0 + 250ms;
  r.attempts[0].first_chunk = t0 + 240ms;
  r.request_body = R"({"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  r.response_body =
      "data: {\"id\":\"chatcmpl-s1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":"
      "{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n"
      "data: {\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"length\"}]}\n\n"
      "data: [DONE]\n\n";
  return r;
}

trace_record failed_retried_record() {
  trace_record r = chat_record();
  r.parent = sid(0x99);
  r.status = 429;
  r.error_type = "rate_limit_error";
  r.error_message = "All deployments are rate limited";
  r.response_model.clear();
  r.input_tokens = r.output_tokens = -1;
  r.cost_pico = 0;
  r.response_body = R"({"error":{"message":"All deployments are rate limited","type":"rate_limit_error"}})";
  r.attempts[0].http_status = 429;
  r.attempts[0].error_type = "429";
  attempt_record b = r.attempts[0];
  b.span = sid(0x22);
  b.start = t0 + 600ms;
  b.error_type = "timeout";
  b.http_status = 0;
  r.attempts.push_back(b);
  return r;
}

/// A request that went through a masking guardrail, missed the cache, and whose second
/// guardrail failed (its service down).
trace_record stepped_record() {
  trace_record r = chat_record();
  r.guardrail = "masked";
  r.cache = "miss";
  step_record g;
  g.type = step_record::kind::guardrail;
  g.span = sid(0x31);
  g.name = "presidio";
  g.outcome = "masked";
  g.start = t0 + 1ms;
  g.end = t0 + 3ms;
  step_record c;
  c.type = step_record::kind::cache;
  c.span = sid(0x32);
  c.name = "semantic";
  c.outcome = "miss";
  c.start = t0 + 3ms;
  c.end = t0 + 4ms;
  step_record down = g;
  down.span = sid(0x33);
  down.name = "toxicity";
  down.outcome = "passed";
  down.error_type = "guardrail_unavailable";
  down.error_message = "connection refused";
  r.steps = {g, c, down};
  return r;
}

/// The parsed export, with lookups.
struct doc {
  dom::parser parser;
  dom::element root;
  std::vector<dom::object> spans;

  explicit doc(const std::string& json) {
    auto err = parser.parse(json).get(root);
    EXPECT_FALSE(err) << "invalid JSON: " << simdjson::error_message(err) << "\n" << json;
    if (err) return;
    dom::array arr;
    if (root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].get_array().get(arr)) {
      ADD_FAILURE() << "no spans array";
      return;
    }
    for (dom::element e : arr) spans.push_back(e.get_object().value());
  }

  dom::object span(int kind, std::size_t nth = 0) {
    for (auto s : spans) {
      if (s["kind"].get_int64().value() == kind && nth-- == 0) return s;
    }
    ADD_FAILURE() << "no span of kind " << kind;
    return {};
  }
};

std::string sfield(dom::object o, std::string_view key) {
  std::string_view s;
  if (o[key].get_string().get(s)) return "<missing>";
  return std::string(s);
}

std::optional<dom::object> attr(dom::object span, std::string_view key) {
  dom::array attrs;
  if (span["attributes"].get_array().get(attrs)) return std::nullopt;
  for (dom::element a : attrs) {
    std::string_view k;
    if (!a["key"].get_string().get(k) && k == key) return a["value"].get_object().value();
  }
  return std::nullopt;
}

bool has_attr(dom::object span, std::string_view key) { return attr(span, key).has_value(); }

std::string astr(dom::object span, std::string_view key) {
  auto v = attr(span, key);
  return v ? sfield(*v, "stringValue") : "<absent>";
}
/// intValue must be a decimal string (int64 in OTLP/JSON).
std::optional<std::int64_t> aint(dom::object span, std::string_view key) {
  auto v = attr(span, key);
  std::string_view s;
  if (!v || (*v)["intValue"].get_string().get(s)) return std::nullopt;
  return std::stoll(std::string(s));
}
std::optional<double> adbl(dom::object span, std::string_view key) {
  auto v = attr(span, key);
  double d;
  if (!v || (*v)["doubleValue"].get_double().get(d)) return std::nullopt;
  return d;
}
std::optional<bool> abool(dom::object span, std::string_view key) {
  auto v = attr(span, key);
  bool b;
  if (!v || (*v)["boolValue"].get_bool().get(b)) return std::nullopt;
  return b;
}
std::vector<std::string> astrings(dom::object span, std::string_view key) {
  std::vector<std::string> out;
  auto v = attr(span, key);
  dom::array values;
  if (!v || (*v)["arrayValue"]["values"].get_array().get(values)) return {"<absent>"};
  for (dom::element e : values) out.push_back(sfield(e.get_object().value(), "stringValue"));
  return out;
}
std::int64_t status_code(dom::object span) { return span["status"]["code"].get_int64().value(); }

std::string encode(const std::vector<trace_record>& rs, const otlp_options& opt) {
  std::vector<const trace_record*> ptrs;
  for (const auto& r : rs) ptrs.push_back(&r);
  return encode_otlp_json(ptrs, opt);
}

otlp_options langfuse_opts() {
  otlp_options o;
  o.langfuse = true;
  o.environment = "staging";
  o.release = "1.2.3";
  return o;
}

// ---- OTLP ---------------------------------------------------------------------------------

TEST(Otlp, ResourceAndScope) {
  otlp_options opt;
  opt.service_name = "gw-test";
  opt.service_version = "0.9.1";
  // Keys from the environment may need escaping (the literal keys take a shortcut).
  opt.resource_attributes = {{"deployment.environment", "prod"}, {"host.name", "h\"1"}, {"k\"\\ü", "v"}};
  doc d(encode({chat_record()}, opt));
  auto res = d.root["resourceSpans"].at(0)["resource"].get_object().value();
  EXPECT_EQ(astr(res, "service.name"), "gw-test");
  EXPECT_EQ(astr(res, "service.version"), "0.9.1");
  EXPECT_EQ(astr(res, "telemetry.sdk.name"), "llm-gateway");
  EXPECT_EQ(astr(res, "telemetry.sdk.language"), "cpp");
  EXPECT_EQ(astr(res, "deployment.environment"), "prod");
  EXPECT_EQ(astr(res, "host.name"), "h\"1");
  EXPECT_EQ(astr(res, "k\"\\ü"), "v");
  auto scope = d.root["resourceSpans"].at(0)["scopeSpans"].at(0)["scope"].get_object().value();
  EXPECT_EQ(sfield(scope, "name"), "llm-gateway");
  EXPECT_EQ(sfield(scope, "version"), "0.9.1");
  EXPECT_EQ(d.spans.size(), 2u);
}

TEST(Otlp, EmptyExportIsValid) {
  doc d(encode_otlp_json({}, otlp_options{}));
  EXPECT_TRUE(d.spans.empty());
  auto res = d.root["resourceSpans"].at(0)["resource"].get_object().value();
  EXPECT_EQ(astr(res, "service.name"), "llm-gateway");
  EXPECT_FALSE(has_attr(res, "service.version"));
}

TEST(Otlp, PlainChatServerSpan) {
  doc d(encode({chat_record()}, otlp_options{}));
  auto s = d.span(2);
  EXPECT_EQ(sfield(s, "traceId"), "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b");
  EXPECT_EQ(sfield(s, "spanId"), "1111111111111111");
  std::string_view parent;
  EXPECT_TRUE(s["parentSpanId"].get_string().get(parent) || parent.empty());  // root: absent or ""
  EXPECT_EQ(sfield(s, "name"), "chat gpt-4o");
  EXPECT_EQ(sfield(s, "startTimeUnixNano"), nanos(t0));
  EXPECT_EQ(sfield(s, "endTimeUnixNano"), "1767225601200000000");
  EXPECT_EQ(status_code(s), 0);
  EXPECT_EQ(astr(s, "gen_ai.operation.name"), "chat");
  EXPECT_EQ(astr(s, "gen_ai.provider.name"), "openai");
  EXPECT_EQ(astr(s, "gen_ai.request.model"), "gpt-4o");
  EXPECT_EQ(astr(s, "gen_ai.response.model"), "gpt-4o-2024-08-06");
  EXPECT_EQ(abool(s, "gen_ai.request.stream"), false);
  EXPECT_EQ(aint(s, "gen_ai.usage.input_tokens"), 19);
  EXPECT_EQ(aint(s, "gen_ai.usage.output_tokens"), 10);
  EXPECT_FALSE(has_attr(s, "gen_ai.usage.cache_read.input_tokens"));  // unknown (-1)
  EXPECT_FALSE(has_attr(s, "gen_ai.usage.reasoning.output_tokens"));
  EXPECT_EQ(astrings(s, "gen_ai.response.finish_reasons"), std::vector<std::string>{"stop"});
  EXPECT_EQ(astr(s, "gen_ai.response.id"), "chatcmpl-abc");
  EXPECT_FALSE(has_attr(s, "gen_ai.response.time_to_first_chunk"));
  EXPECT_EQ(adbl(s, "gen_ai.request.temperature"), 0.2);
  EXPECT_EQ(aint(s, "gen_ai.request.max_tokens"), 50);
  EXPECT_FALSE(has_attr(s, "gen_ai.request.top_p"));
  EXPECT_EQ(astr(s, "http.request.method"), "POST");
  EXPECT_EQ(astr(s, "http.route"), "/v1/chat/completions");
  EXPECT_EQ(aint(s, "http.response.status_code"), 200);
  EXPECT_FALSE(has_attr(s, "error.type"));
  EXPECT_EQ(astr(s, "llm_gateway.request_id"), "req-1");
  EXPECT_DOUBLE_EQ(adbl(s, "llm_gateway.cost_usd").value_or(-1), 0.0001475);
  EXPECT_EQ(astr(s, "llm_gateway.cost_usd_exact"), "0.0001475");
  EXPECT_EQ(astr(s, "llm_gateway.key_alias"), "ci-key");
  EXPECT_EQ(astr(s, "llm_gateway.team_id"), "team-1");
  EXPECT_EQ(astr(s, "user.id"), "user-1");
  EXPECT_EQ(astr(s, "llm_gateway.end_user"), "enduser-1");
  EXPECT_EQ(astr(s, "llm_gateway.deployment_id"), "dep-1");
  EXPECT_EQ(astr(s, "llm_gateway.node_id"), "node-a");
  EXPECT_FALSE(has_attr(s, "llm_gateway.cache"));
  EXPECT_FALSE(has_attr(s, "llm_gateway.guardrail"));
  EXPECT_EQ(aint(s, "llm_gateway.attempts"), 1);
}

TEST(Otlp, OptionalUsageAndGatewayFields) {
  trace_record r = chat_record();
  r.cache_read_tokens = 7;
  r.cache_creation_tokens = 0;
  r.reasoning_tokens = 3;
  r.cache = "miss";
  r.guardrail = "passed";
  r.provider.clear();
  doc d(encode({r}, otlp_options{}));
  auto s = d.span(2);
  EXPECT_EQ(aint(s, "gen_ai.usage.cache_read.input_tokens"), 7);
  EXPECT_EQ(aint(s, "gen_ai.usage.cache_creation.input_tokens"), 0);
  EXPECT_EQ(aint(s, "gen_ai.usage.reasoning.output_tokens"), 3);
  EXPECT_EQ(astr(s, "llm_gateway.cache"), "miss");
  EXPECT_EQ(astr(s, "llm_gateway.guardrail"), "passed");
  EXPECT_FALSE(has_attr(s, "gen_ai.provider.name"));
}

TEST(Otlp, RequestParameters) {
  trace_record r = chat_record();
  r.request_body = R"({"messages":[],"top_p":0.9,"frequency_penalty":0.1,"presence_penalty":0.3,"seed":7,"n":3,)"
                   R"("stop":["###","END"],"max_completion_tokens":64})";
  doc d(encode({r}, otlp_options{}));
  auto s = d.span(2);
  EXPECT_EQ(adbl(s, "gen_ai.request.top_p"), 0.9);
  EXPECT_EQ(adbl(s, "gen_ai.request.frequency_penalty"), 0.1);
  EXPECT_EQ(adbl(s, "gen_ai.request.presence_penalty"), 0.3);
  EXPECT_EQ(aint(s, "gen_ai.request.seed"), 7);
  EXPECT_EQ(aint(s, "gen_ai.request.choice.count"), 3);
  EXPECT_EQ(aint(s, "gen_ai.request.max_tokens"), 64);
  EXPECT_EQ(astrings(s, "gen_ai.request.stop_sequences"), (std::vector<std::string>{"###", "END"}));
  EXPECT_FALSE(has_attr(s, "gen_ai.request.temperature"));
}

TEST(Otlp, ClientSpanOfASingleAttempt) {
  doc d(encode({chat_record()}, otlp_options{}));
  auto c = d.span(3);
  EXPECT_EQ(sfield(c, "traceId"), "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b");
  EXPECT_EQ(sfield(c, "spanId"), "2121212121212121");
  EXPECT_EQ(sfield(c, "parentSpanId"), "1111111111111111");
  EXPECT_EQ(sfield(c, "name"), "chat gpt-4o-2024-08-06");
  EXPECT_EQ(sfield(c, "startTimeUnixNano"), nanos(t0 + 5ms));
  EXPECT_EQ(sfield(c, "endTimeUnixNano"), nanos(t0 + 1190ms));
  EXPECT_EQ(status_code(c), 0);
  EXPECT_EQ(astr(c, "gen_ai.operation.name"), "chat");
  EXPECT_EQ(astr(c, "gen_ai.provider.name"), "openai");
  EXPECT_EQ(astr(c, "gen_ai.request.model"), "gpt-4o-2024-08-06");
  EXPECT_EQ(astr(c, "server.address"), "api.openai.com");
  EXPECT_EQ(aint(c, "server.port"), 443);
  EXPECT_EQ(aint(c, "http.response.status_code"), 200);
  EXPECT_EQ(astr(c, "llm_gateway.deployment_id"), "dep-1");
  EXPECT_EQ(astr(c, "llm_gateway.model_group"), "gpt-4o");
  // The last, successful attempt carries usage and response attributes.
  EXPECT_EQ(aint(c, "gen_ai.usage.input_tokens"), 19);
  EXPECT_EQ(aint(c, "gen_ai.usage.output_tokens"), 10);
  EXPECT_EQ(astr(c, "gen_ai.response.model"), "gpt-4o-2024-08-06");
  EXPECT_EQ(astrings(c, "gen_ai.response.finish_reasons"), std::vector<std::string>{"stop"});
  EXPECT_FALSE(has_attr(c, "error.type"));
  EXPECT_FALSE(has_attr(c, "langfuse.observation.type"));  // not in plain OTLP
}

TEST(Otlp, StreamedRecordHasTimeToFirstChunk) {
  doc d(encode({streamed_record()}, otlp_options{}));
  auto s = d.span(2);
  EXPECT_EQ(abool(s, "gen_ai.request.stream"), true);
  EXPECT_NEAR(adbl(s, "gen_ai.response.time_to_first_chunk").value_or(-1), 0.25, 1e-9);
  EXPECT_EQ(astrings(s, "gen_ai.response.finish_reasons"), std::vector<std::string>{"length"});
  EXPECT_EQ(astr(s, "gen_ai.response.id"), "chatcmpl-s1");
  auto c = d.span(3);
  EXPECT_NEAR(adbl(c, "gen_ai.response.time_to_first_chunk").value_or(-1), 0.235, 1e-9);
}

TEST(Otlp, CutStreamTakesItsFinishReasonFromTheTail) {
  otlp_options opt;
  opt.capture_content = true;
  trace_record r = streamed_record();
  // The capture kept the first event and part of the second; the tail starts inside a
  // later event (its rest is not a data line), then the last events.
  r.response_body =
      "data: {\"id\":\"chatcmpl-s1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":"
      "{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n"
      "data: {\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"del";
  r.response_truncated = true;
  r.response_tail =
      "ta\":{\"content\":\"middle\"}}]}\n\n"
      "data: {\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"end\"},"
      "\"finish_reason\":\"length\"}]}\n\n"
      "data: [DONE]\n\n";
  doc d(encode({r}, opt));
  auto s = d.span(2);
  EXPECT_EQ(astrings(s, "gen_ai.response.finish_reasons"), std::vector<std::string>{"length"});
  EXPECT_EQ(astr(s, "gen_ai.response.id"), "chatcmpl-s1");
  // The content is what the capture kept: nothing from the tail is glued to it.
  auto out = astr(s, "gen_ai.output.messages");
  EXPECT_NE(out.find("Hel"), std::string::npos) << out;
  EXPECT_EQ(out.find("end"), std::string::npos) << out;
  EXPECT_EQ(out.find("middle"), std::string::npos) << out;
  EXPECT_TRUE(abool(s, "llm_gateway.content_truncated").value_or(false));
  // Without the tail, the finish reason is unknown.
  r.response_tail.clear();
  doc d2(encode({r}, opt));
  EXPECT_EQ(astrings(d2.span(2), "gen_ai.response.finish_reasons"), std::vector<std::string>{"<absent>"});
}

TEST(Otlp, FailedAndRetriedRecord) {
  doc d(encode({failed_retried_record()}, otlp_options{}));
  ASSERT_EQ(d.spans.size(), 3u);
  auto s = d.span(2);
  EXPECT_EQ(sfield(s, "parentSpanId"), "9999999999999999");  // the incoming traceparent's span
  EXPECT_EQ(status_code(s), 2);
  EXPECT_EQ(sfield(s["status"].get_object().value(), "message"), "All deployments are rate limited");
  EXPECT_EQ(astr(s, "error.type"), "rate_limit_error");
  EXPECT_EQ(aint(s, "http.response.status_code"), 429);
  EXPECT_EQ(aint(s, "llm_gateway.attempts"), 2);
  EXPECT_FALSE(has_attr(s, "gen_ai.usage.input_tokens"));
  EXPECT_EQ(astr(s, "llm_gateway.cost_usd_exact"), "0");

  auto c1 = d.span(3, 0), c2 = d.span(3, 1);
  EXPECT_EQ(sfield(c1, "spanId"), "2121212121212121");
  EXPECT_EQ(sfield(c2, "spanId"), "2222222222222222");
  EXPECT_EQ(sfield(c1, "parentSpanId"), sfield(s, "spanId"));
  EXPECT_EQ(sfield(c2, "parentSpanId"), sfield(s, "spanId"));
  EXPECT_EQ(sfield(c1, "traceId"), sfield(s, "traceId"));
  EXPECT_EQ(astr(c1, "error.type"), "429");
  EXPECT_EQ(aint(c1, "http.response.status_code"), 429);
  EXPECT_EQ(status_code(c1), 2);
  EXPECT_EQ(astr(c2, "error.type"), "timeout");
  EXPECT_FALSE(has_attr(c2, "http.response.status_code"));  // no response
  EXPECT_EQ(status_code(c2), 2);
  EXPECT_FALSE(has_attr(c2, "gen_ai.response.model"));  // failed last attempt: no usage/response
  EXPECT_FALSE(has_attr(c1, "gen_ai.usage.input_tokens"));
}

TEST(Otlp, RetryThenSuccessOnlyLastCarriesUsage) {
  trace_record r = chat_record();
  attempt_record first = r.attempts[0];
  first.span = sid(0x20);
  first.error_type = "connection_error";
  first.http_status = 0;
  r.attempts.insert(r.attempts.begin(), first);
  doc d(encode({r}, otlp_options{}));
  auto c1 = d.span(3, 0), c2 = d.span(3, 1);
  EXPECT_FALSE(has_attr(c1, "gen_ai.usage.input_tokens"));
  EXPECT_EQ(aint(c2, "gen_ai.usage.input_tokens"), 19);
  EXPECT_EQ(status_code(d.span(2)), 0);
}

TEST(Otlp, ContentOffLeavesNoBodyBytes) {
  for (bool lf : {false, true}) {
    otlp_options opt = lf ? langfuse_opts() : otlp_options{};
    trace_record r = chat_record();
    r.metadata = R"({"trace_name":"n"})";
    auto out = encode({r, streamed_record()}, opt);
    doc d(out);
    EXPECT_EQ(out.find(prompt_marker), std::string::npos);
    EXPECT_EQ(out.find(answer_marker), std::string::npos);
    EXPECT_EQ(out.find("You are terse"), std::string::npos);
    EXPECT_EQ(out.find("\"Hel"), std::string::npos);
    for (auto s : d.spans) {
      EXPECT_FALSE(has_attr(s, "gen_ai.input.messages"));
      EXPECT_FALSE(has_attr(s, "gen_ai.output.messages"));
      EXPECT_FALSE(has_attr(s, "langfuse.trace.input"));
      EXPECT_FALSE(has_attr(s, "langfuse.observation.output"));
    }
    // Parameters and finish reasons are still read.
    EXPECT_EQ(adbl(d.span(2), "gen_ai.request.temperature"), 0.2);
  }
}

TEST(Otlp, ContentOnCarriesMessages) {
  otlp_options opt;
  opt.capture_content = true;
  trace_record r = chat_record();
  r.request_body = R"({"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say )" +
                   std::string(prompt_marker) + R"("}],"tools":[{"type":"function","function":{"name":"lookup"}}]})";
  doc d(encode({r}, opt));
  auto s = d.span(2);
  dom::parser p;
  dom::element in;
  ASSERT_FALSE(p.parse(astr(s, "gen_ai.input.messages")).get(in));
  EXPECT_EQ(std::string(in.at(1)["content"].get_string().value()), "Say " + std::string(prompt_marker));
  EXPECT_EQ(astr(s, "gen_ai.system_instructions"), "You are terse.");
  EXPECT_NE(astr(s, "gen_ai.tool.definitions").find("lookup"), std::string::npos);
  dom::parser p2;
  dom::element outm;
  ASSERT_FALSE(p2.parse(astr(s, "gen_ai.output.messages")).get(outm));
  EXPECT_EQ(std::string(outm.at(0)["content"].get_string().value()), answer_marker);
  EXPECT_FALSE(has_attr(s, "llm_gateway.content_truncated"));
  EXPECT_FALSE(has_attr(s, "langfuse.trace.input"));  // not Langfuse mode
}

TEST(Otlp, ContentCutAtMaxBytesOnCharacterBoundary) {
  otlp_options opt;
  opt.capture_content = true;
  opt.max_content_bytes = 40;
  trace_record r = chat_record();
  std::string euros;
  for (int i = 0; i < 30; ++i) euros += "\xe2\x82\xac";  // € x30 (90 bytes)
  r.request_body = R"({"messages":[{"role":"user","content":")" + euros + R"("}]})";
  auto out = encode({r}, opt);
  doc d(out);
  auto s = d.span(2);
  std::string in = astr(s, "gen_ai.input.messages");
  EXPECT_LE(in.size(), 40u);
  EXPECT_GE(in.size(), 37u);
  EXPECT_TRUE(simdjson::validate_utf8(in.data(), in.size()));
  EXPECT_EQ(in.rfind(R"([{"role":"user","content":")", 0), 0u);
  EXPECT_EQ(out.find("\\ufffd"), std::string::npos);
  EXPECT_EQ(out.find("\xef\xbf\xbd"), std::string::npos);  // cut cleanly, nothing replaced
  EXPECT_EQ(abool(s, "llm_gateway.content_truncated"), true);
  EXPECT_LE(astr(s, "gen_ai.output.messages").size(), 40u);
}

TEST(Otlp, GuardrailAndCacheStepsAreInternalChildSpans) {
  doc d(encode({stepped_record()}, otlp_options{}));
  ASSERT_EQ(d.spans.size(), 5u);  // server, one attempt, three steps
  auto server = d.span(2);
  EXPECT_EQ(astr(server, "llm_gateway.guardrail"), "masked");
  EXPECT_EQ(astr(server, "llm_gateway.cache"), "miss");
  auto g = d.span(1, 0), c = d.span(1, 1), down = d.span(1, 2);
  for (auto s : {g, c, down}) {
    EXPECT_EQ(sfield(s, "parentSpanId"), sfield(server, "spanId"));
    EXPECT_EQ(sfield(s, "traceId"), sfield(server, "traceId"));
  }
  EXPECT_EQ(sfield(g, "name"), "guardrail presidio");
  EXPECT_EQ(sfield(g, "spanId"), "3131313131313131");
  EXPECT_EQ(astr(g, "llm_gateway.step"), "guardrail");
  EXPECT_EQ(astr(g, "llm_gateway.guardrail.name"), "presidio");
  EXPECT_EQ(astr(g, "llm_gateway.guardrail.outcome"), "masked");
  EXPECT_EQ(sfield(g, "startTimeUnixNano"), nanos(t0 + 1ms));
  EXPECT_EQ(sfield(g, "endTimeUnixNano"), nanos(t0 + 3ms));
  EXPECT_EQ(status_code(g), 0);
  EXPECT_EQ(sfield(c, "name"), "cache semantic");
  EXPECT_EQ(astr(c, "llm_gateway.step"), "cache");
  EXPECT_EQ(astr(c, "llm_gateway.cache.type"), "semantic");
  EXPECT_EQ(astr(c, "llm_gateway.cache.outcome"), "miss");
  EXPECT_FALSE(has_attr(c, "llm_gateway.guardrail.name"));
  EXPECT_EQ(sfield(down, "name"), "guardrail toxicity");
  EXPECT_EQ(astr(down, "error.type"), "guardrail_unavailable");
  EXPECT_EQ(status_code(down), 2);
  EXPECT_EQ(sfield(down["status"].get_object().value(), "message"), "connection refused");
  EXPECT_FALSE(has_attr(g, "langfuse.observation.type"));
}

TEST(Otlp, KeyHashNeverExported) {
  for (bool lf : {false, true}) {
    otlp_options opt = lf ? langfuse_opts() : otlp_options{};
    opt.capture_content = true;
    trace_record r = chat_record();
    r.metadata = R"({"trace_metadata":{"a":"b"}})";
    auto out = encode({r, failed_retried_record()}, opt);
    doc d(out);
    EXPECT_EQ(out.find("KEYHASH-9f2c1e0d5a"), std::string::npos);
    EXPECT_EQ(out.find("key_hash"), std::string::npos);
  }
}

TEST(Otlp, InvalidUtf8IsReplacedAndOutputParses) {
  otlp_options opt = langfuse_opts();
  opt.capture_content = true;
  trace_record r = chat_record();
  r.request_body = "{\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe bytes\"}]}";
  r.response_body = "{\"choices\":[{\"message\":{\"content\":\"\xc3\x28\"}}]}";
  r.error_type = "upstream_error";
  r.error_message = "broken \xe2\x82 message \xed\xa0\x80 and \xc0\xaf end";  // cut, surrogate, overlong
  r.key_alias = "alias\x80";
  r.metadata = "{\"trace_name\":\"\xff\"}";
  auto out = encode({r}, opt);
  ASSERT_TRUE(simdjson::validate_utf8(out.data(), out.size()));
  doc d(out);
  ASSERT_EQ(d.spans.size(), 2u);
  auto s = d.span(2);
  std::string msg = sfield(s["status"].get_object().value(), "message");
  EXPECT_EQ(msg.rfind("broken \xef\xbf\xbd", 0), 0u);
  EXPECT_NE(msg.find(" end"), std::string::npos);
  EXPECT_EQ(astr(s, "llm_gateway.key_alias"), "alias\xef\xbf\xbd");
  EXPECT_FALSE(has_attr(s, "gen_ai.input.messages"));  // not JSON: nothing to show
}

TEST(Otlp, TruncatedBodiesStillEncode) {
  otlp_options opt = langfuse_opts();
  opt.capture_content = true;
  trace_record r = chat_record();
  r.request_body.resize(r.request_body.size() / 2);
  r.request_truncated = true;
  r.response_body.resize(r.response_body.size() - 5);
  r.response_truncated = true;
  r.metadata = R"({"tags":["a",)";
  doc d(encode({r}, opt));
  ASSERT_EQ(d.spans.size(), 2u);
  auto s = d.span(2);
  EXPECT_FALSE(has_attr(s, "gen_ai.output.messages"));
  EXPECT_FALSE(has_attr(s, "gen_ai.response.finish_reasons"));
  EXPECT_EQ(abool(s, "llm_gateway.content_truncated"), true);
  EXPECT_EQ(aint(s, "gen_ai.usage.input_tokens"), 19);  // the record's own numbers stay
}

TEST(Otlp, StringsAreEscaped) {
  trace_record r = chat_record();
  r.error_type = "x";
  r.error_message = "quote \" backslash \\ newline \n tab \t ctl \x01 end";
  r.route = "/v1/\"chat\"";
  doc d(encode({r}, otlp_options{}));
  auto s = d.span(2);
  EXPECT_EQ(sfield(s["status"].get_object().value(), "message"), r.error_message);
  EXPECT_EQ(astr(s, "http.route"), r.route);
}

TEST(Otlp, EveryEscapeAtEveryPositionRoundTrips) {
  // Strings are checked eight bytes at a time: a character needing an escape (or UTF-8)
  // must be caught wherever it sits in the word, and in the tail.
  const std::string specials[] = {"\"", "\\", "\n", std::string(1, '\x01'), std::string(1, '\x1f'), "\x7f", "\xc3\xa9"};
  for (const auto& sp : specials) {
    for (std::size_t len = 1; len <= 20; ++len) {
      for (std::size_t at = 0; at < len; ++at) {
        std::string v(len, 'a');
        v.replace(at, 1, sp);
        trace_record r = chat_record();
        r.route = v;
        doc d(encode({r}, otlp_options{}));
        ASSERT_EQ(astr(d.span(2), "http.route"), v) << "len " << len << " at " << at;
      }
    }
  }
}

TEST(Otlp, RecordsAreIndependent) {
  trace_record bad = chat_record();
  bad.trace = trace_id{};  // no usable id: skipped, not an invalid span
  trace_record no_attempts = chat_record();
  no_attempts.span = sid(0x33);
  no_attempts.attempts.clear();
  no_attempts.status = 400;
  no_attempts.error_type = "invalid_request_error";
  std::vector<trace_record> rs = {bad, streamed_record(), no_attempts, failed_retried_record()};
  std::vector<const trace_record*> ptrs = {&rs[0], nullptr, &rs[1], &rs[2], &rs[3]};
  doc d(encode_otlp_json(ptrs, otlp_options{}));
  EXPECT_EQ(d.spans.size(), 2u + 1u + 3u);
  for (auto s : d.spans) EXPECT_EQ(sfield(s, "traceId").size(), 32u);
}

TEST(Otlp, ExactCostStrings) {
  const std::pair<std::int64_t, std::string_view> cases[] = {
      {0, "0"}, {1, "0.000000000001"}, {2'500'000'000'000, "2.5"}, {1'000'000'000'000, "1"},
      {123'456'789'012'345, "123.456789012345"}, {-500'000'000'000, "-0.5"}};
  for (auto [pico, want] : cases) {
    trace_record r = chat_record();
    r.cost_pico = pico;
    doc d(encode({r}, otlp_options{}));
    EXPECT_EQ(astr(d.span(2), "llm_gateway.cost_usd_exact"), want);
    EXPECT_DOUBLE_EQ(adbl(d.span(2), "llm_gateway.cost_usd").value_or(-99), static_cast<double>(pico) / 1e12);
  }
}

TEST(Otlp, AttributeKeysAreUniquePerSpan) {
  for (bool lf : {false, true}) {
    otlp_options opt = lf ? langfuse_opts() : otlp_options{};
    opt.capture_content = true;
    trace_record r = streamed_record();
    r.metadata = R"({"trace_user_id":"tu","session_id":"s","tags":["t"]})";
    doc d(encode({r, failed_retried_record()}, opt));
    for (auto s : d.spans) {
      std::map<std::string, int> seen;
      dom::array attrs;
      ASSERT_FALSE(s["attributes"].get_array().get(attrs));
      for (dom::element a : attrs) ++seen[std::string(a["key"].get_string().value())];
      for (auto& [k, n] : seen) EXPECT_EQ(n, 1) << k;
    }
  }
}

// ---- Langfuse -----------------------------------------------------------------------------

TEST(Langfuse, TraceAttributesFromMetadata) {
  trace_record r = chat_record();
  r.metadata = R"({"trace_name":"support-bot","trace_user_id":"u-meta","session_id":"sess-42",)"
               R"("tags":["prod","bot",3],"trace_release":"9.9.9","trace_version":"v7"})";
  doc d(encode({r}, langfuse_opts()));
  auto s = d.span(2);
  EXPECT_EQ(astr(s, "langfuse.trace.name"), "support-bot");
  EXPECT_EQ(astr(s, "user.id"), "u-meta");
  EXPECT_EQ(astr(s, "session.id"), "sess-42");
  EXPECT_EQ(astrings(s, "langfuse.trace.tags"), (std::vector<std::string>{"prod", "bot"}));
  EXPECT_EQ(astr(s, "langfuse.environment"), "staging");
  EXPECT_EQ(astr(s, "langfuse.release"), "9.9.9");  // metadata overrides the option
  EXPECT_EQ(astr(s, "langfuse.version"), "v7");
  EXPECT_EQ(sfield(s, "name"), "chat gpt-4o");  // the span name itself stays
}

TEST(Langfuse, TraceDefaultsWithoutMetadata) {
  trace_record r = chat_record();
  doc d(encode({r}, langfuse_opts()));
  auto s = d.span(2);
  EXPECT_EQ(astr(s, "langfuse.trace.name"), "chat gpt-4o");
  EXPECT_EQ(astr(s, "user.id"), "user-1");
  EXPECT_FALSE(has_attr(s, "session.id"));
  EXPECT_FALSE(has_attr(s, "langfuse.trace.tags"));
  EXPECT_EQ(astr(s, "langfuse.release"), "1.2.3");

  r.user_id.clear();
  doc d2(encode({r}, langfuse_opts()));
  EXPECT_EQ(astr(d2.span(2), "user.id"), "enduser-1");
}

TEST(Langfuse, TraceMetadataJson) {
  trace_record r = chat_record();
  r.metadata = R"({"trace_metadata":{"ticket":"T-1","priority":2,"key_alias":"spoof"}})";
  doc d(encode({r}, langfuse_opts()));
  dom::parser p;
  dom::element m;
  ASSERT_FALSE(p.parse(astr(d.span(2), "langfuse.trace.metadata")).get(m));
  auto o = m.get_object().value();
  EXPECT_EQ(sfield(o, "key_alias"), "ci-key");  // the gateway's value wins
  EXPECT_EQ(sfield(o, "user_id"), "user-1");
  EXPECT_EQ(sfield(o, "team_id"), "team-1");
  EXPECT_EQ(sfield(o, "model_group"), "gpt-4o");
  EXPECT_EQ(sfield(o, "request_id"), "req-1");
  EXPECT_EQ(sfield(o, "deployment_id"), "dep-1");
  EXPECT_EQ(sfield(o, "ticket"), "T-1");
  EXPECT_EQ(o["priority"].get_int64().value(), 2);
  EXPECT_EQ(o.size(), 8u);
}

TEST(Langfuse, GenerationOnLastAttempt) {
  trace_record r = streamed_record();
  r.request_body = R"({"messages":[],"temperature":0.2,"max_tokens":50,"stream":true})";
  r.cache_read_tokens = 4;
  r.metadata = R"({"generation_name":"answer-gen"})";
  doc d(encode({r}, langfuse_opts()));
  auto c = d.span(3);
  EXPECT_EQ(sfield(c, "name"), "answer-gen");
  EXPECT_EQ(astr(c, "langfuse.observation.type"), "generation");
  EXPECT_EQ(astr(c, "langfuse.observation.model.name"), "gpt-4o-2024-08-06");
  EXPECT_EQ(astr(c, "langfuse.observation.level"), "DEFAULT");
  EXPECT_FALSE(has_attr(c, "langfuse.observation.status_message"));
  EXPECT_EQ(astr(c, "langfuse.observation.completion_start_time"), "2026-01-01T00:00:00.240Z");

  dom::parser p1, p2, p3;
  dom::element params, usage, cost;
  ASSERT_FALSE(p1.parse(astr(c, "langfuse.observation.model.parameters")).get(params));
  EXPECT_DOUBLE_EQ(params["temperature"].get_double().value(), 0.2);
  EXPECT_EQ(params["max_tokens"].get_int64().value(), 50);
  EXPECT_EQ(params["stream"].get_bool().value(), true);
  EXPECT_TRUE(params["top_p"].error());

  ASSERT_FALSE(p2.parse(astr(c, "langfuse.observation.usage_details")).get(usage));
  EXPECT_EQ(usage["input"].get_int64().value(), 19);
  EXPECT_EQ(usage["output"].get_int64().value(), 10);
  EXPECT_EQ(usage["total"].get_int64().value(), 29);
  EXPECT_EQ(usage["cache_read_input_tokens"].get_int64().value(), 4);

  ASSERT_FALSE(p3.parse(astr(c, "langfuse.observation.cost_details")).get(cost));
  EXPECT_DOUBLE_EQ(cost["total"].get_double().value(), 0.0001475);

  EXPECT_FALSE(has_attr(d.span(2), "langfuse.observation.type"));  // the server span is no generation
}

TEST(Langfuse, CompletionStartFromRecordWhenAttemptHasNone) {
  trace_record r = streamed_record();
  r.attempts[0].first_chunk.reset();
  r.first_token = t0 + 3723s + 7ms;  // 01:02:03.007
  r.attempts[0].upstream_model = "up-model";
  r.response_model.clear();
  doc d(encode({r}, langfuse_opts()));
  auto c = d.span(3);
  EXPECT_EQ(astr(c, "langfuse.observation.completion_start_time"), "2026-01-01T01:02:03.007Z");
  EXPECT_EQ(astr(c, "langfuse.observation.model.name"), "up-model");
  EXPECT_EQ(sfield(c, "name"), "chat up-model");
}

TEST(Langfuse, FailedAttemptsAndFailedRecord) {
  doc d(encode({failed_retried_record()}, langfuse_opts()));
  auto c1 = d.span(3, 0), c2 = d.span(3, 1);
  EXPECT_EQ(astr(c1, "langfuse.observation.type"), "span");
  EXPECT_EQ(astr(c1, "langfuse.observation.level"), "WARNING");
  EXPECT_EQ(astr(c1, "langfuse.observation.status_message"), "429");
  EXPECT_EQ(astr(c2, "langfuse.observation.type"), "generation");
  EXPECT_EQ(astr(c2, "langfuse.observation.level"), "ERROR");
  EXPECT_EQ(astr(c2, "langfuse.observation.status_message"), "All deployments are rate limited");
  EXPECT_FALSE(has_attr(c2, "langfuse.observation.usage_details"));  // tokens unknown
  EXPECT_FALSE(has_attr(c2, "langfuse.observation.completion_start_time"));
}

TEST(Langfuse, StepsAreGuardrailAndSpanObservations) {
  doc d(encode({stepped_record()}, langfuse_opts()));
  ASSERT_EQ(d.spans.size(), 5u);
  auto g = d.span(1, 0), c = d.span(1, 1), down = d.span(1, 2);
  EXPECT_EQ(astr(g, "langfuse.observation.type"), "guardrail");
  EXPECT_FALSE(has_attr(g, "langfuse.observation.level"));
  EXPECT_EQ(astr(c, "langfuse.observation.type"), "span");
  EXPECT_EQ(astr(down, "langfuse.observation.type"), "guardrail");
  EXPECT_EQ(astr(down, "langfuse.observation.level"), "WARNING");
  EXPECT_EQ(astr(down, "langfuse.observation.status_message"), "connection refused");
  // The generation is still the last attempt.
  EXPECT_EQ(astr(d.span(3), "langfuse.observation.type"), "generation");
}

TEST(Langfuse, NoAttemptsNoGeneration) {
  trace_record r = chat_record();
  r.attempts.clear();
  r.status = 400;
  r.error_type = "invalid_request_error";
  r.error_message = "bad";
  doc d(encode({r}, langfuse_opts()));
  ASSERT_EQ(d.spans.size(), 1u);
  auto s = d.span(2);
  EXPECT_EQ(astr(s, "langfuse.trace.name"), "chat gpt-4o");
  EXPECT_EQ(aint(s, "llm_gateway.attempts"), 0);
  EXPECT_FALSE(has_attr(s, "langfuse.observation.type"));
}

TEST(Langfuse, ContentOnTraceAndGeneration) {
  otlp_options opt = langfuse_opts();
  opt.capture_content = true;
  doc d(encode({chat_record()}, opt));
  auto s = d.span(2), c = d.span(3);
  EXPECT_NE(astr(s, "langfuse.trace.input").find(prompt_marker), std::string::npos);
  EXPECT_NE(astr(s, "langfuse.trace.output").find(answer_marker), std::string::npos);
  EXPECT_NE(astr(c, "langfuse.observation.input").find(prompt_marker), std::string::npos);
  EXPECT_NE(astr(c, "langfuse.observation.output").find(answer_marker), std::string::npos);
  EXPECT_NE(astr(s, "gen_ai.input.messages").find(prompt_marker), std::string::npos);
}

// ---- OTLP protobuf ------------------------------------------------------------------------
//
// The protobuf export is checked against the JSON one: a reader written here from the
// opentelemetry-proto field numbers (not from the encoder) turns both into the same
// flat list of facts, which must be equal for every fixture and option set.

/// A protobuf message read by field: (number, wire type, varint/fixed value, bytes).
struct pb_field {
  std::uint32_t number = 0;
  int wire = 0;
  std::uint64_t value = 0;
  std::string_view bytes;
};

std::vector<pb_field> pb_read(std::string_view b) {
  std::vector<pb_field> out;
  auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (b.empty()) return false;
      auto c = static_cast<unsigned char>(b.front());
      b.remove_prefix(1);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  };
  while (!b.empty()) {
    std::uint64_t key = 0;
    if (!varint(key)) {
      ADD_FAILURE() << "bad key varint";
      return out;
    }
    pb_field f;
    f.number = static_cast<std::uint32_t>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) {
      EXPECT_TRUE(varint(f.value));
    } else if (f.wire == 1) {
      if (b.size() < 8) {
        ADD_FAILURE() << "short fixed64";
        return out;
      }
      for (int i = 0; i < 8; ++i) f.value |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
      b.remove_prefix(8);
    } else if (f.wire == 2) {
      std::uint64_t n = 0;
      if (!varint(n) || n > b.size()) {
        ADD_FAILURE() << "bad length";
        return out;
      }
      f.bytes = b.substr(0, n);
      b.remove_prefix(n);
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.wire;
      return out;
    }
    out.push_back(f);
  }
  return out;
}

std::string hex_of(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string h;
  for (unsigned char c : bytes) {
    h += digits[c >> 4];
    h += digits[c & 15];
  }
  return h;
}

std::string dbl_text(double d) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", d);
  return b;
}

/// AnyValue (common.proto): string 1, bool 2, int 3, double 4, array 5.
std::string pb_any(std::string_view m) {
  std::string out;
  for (const auto& f : pb_read(m)) {
    switch (f.number) {
      case 1: out += "str:" + std::string(f.bytes); break;
      case 2: out += f.value ? "bool:true" : "bool:false"; break;
      case 3: out += "int:" + std::to_string(static_cast<std::int64_t>(f.value)); break;
      case 4: {
        double d;
        std::memcpy(&d, &f.value, 8);
        out += "dbl:" + dbl_text(d);
        break;
      }
      case 5:
        out += "array:[";
        for (const auto& v : pb_read(f.bytes))
          if (v.number == 1) out += pb_any(v.bytes) + ";";
        out += "]";
        break;
      default: out += "field" + std::to_string(f.number);
    }
  }
  return out;
}

std::string json_any(dom::object v) {
  std::string_view s;
  bool b;
  double d;
  dom::element e;
  if (!v["stringValue"].get(e) && !e.get_string().get(s)) return "str:" + std::string(s);
  if (!v["boolValue"].get(e) && !e.get_bool().get(b)) return b ? "bool:true" : "bool:false";
  if (!v["intValue"].get(e) && !e.get_string().get(s)) return "int:" + std::string(s);
  if (!v["doubleValue"].get(e) && !e.get_double().get(d)) return "dbl:" + dbl_text(d);
  dom::object av;
  dom::array arr;
  if (!v["arrayValue"].get(e) && !e.get_object().get(av) && !av["values"].get(e) && !e.get_array().get(arr)) {
    std::string out = "array:[";
    for (dom::element x : arr) {
      dom::object o;
      if (!x.get_object().get(o)) out += json_any(o) + ";";
    }
    return out + "]";
  }
  return "?";
}

/// KeyValue (key 1, value 2) -> "key=value".
std::string pb_kv(std::string_view m) {
  std::string key, value;
  for (const auto& f : pb_read(m)) {
    if (f.number == 1) key = f.bytes;
    if (f.number == 2) value = pb_any(f.bytes);
  }
  return key + "=" + value;
}

/// The facts of a protobuf ExportTraceServiceRequest.
std::vector<std::string> pb_facts(const std::string& body) {
  std::vector<std::string> facts;
  for (const auto& rs : pb_read(body)) {
    EXPECT_EQ(rs.number, 1u);  // resource_spans
    for (const auto& f : pb_read(rs.bytes)) {
      if (f.number == 1) {  // resource
        for (const auto& a : pb_read(f.bytes))
          if (a.number == 1) facts.push_back("resource " + pb_kv(a.bytes));
      } else if (f.number == 2) {  // scope_spans
        int n = 0;
        for (const auto& ss : pb_read(f.bytes)) {
          if (ss.number == 1) {
            for (const auto& sc : pb_read(ss.bytes)) {
              if (sc.number == 1) facts.push_back("scope.name=" + std::string(sc.bytes));
              if (sc.number == 2) facts.push_back("scope.version=" + std::string(sc.bytes));
            }
            continue;
          }
          EXPECT_EQ(ss.number, 2u);  // spans
          const std::string p = "span" + std::to_string(n++) + ".";
          bool status = false;
          for (const auto& sp : pb_read(ss.bytes)) {
            switch (sp.number) {
              case 1: facts.push_back(p + "traceId=" + hex_of(sp.bytes)); break;
              case 2: facts.push_back(p + "spanId=" + hex_of(sp.bytes)); break;
              case 3: facts.push_back(p + "traceState=" + std::string(sp.bytes)); break;
              case 4: facts.push_back(p + "parentSpanId=" + hex_of(sp.bytes)); break;
              case 5: facts.push_back(p + "name=" + std::string(sp.bytes)); break;
              case 6: facts.push_back(p + "kind=" + std::to_string(sp.value)); break;
              case 7:
                EXPECT_EQ(sp.wire, 1);
                facts.push_back(p + "start=" + std::to_string(sp.value));
                break;
              case 8:
                EXPECT_EQ(sp.wire, 1);
                facts.push_back(p + "end=" + std::to_string(sp.value));
                break;
              case 9: facts.push_back(p + "attr " + pb_kv(sp.bytes)); break;
              case 15: {
                status = true;
                std::uint64_t code = 0;
                std::string message;
                for (const auto& st : pb_read(sp.bytes)) {
                  if (st.number == 2) message = st.bytes;
                  if (st.number == 3) code = st.value;
                }
                facts.push_back(p + "status.code=" + std::to_string(code));
                if (!message.empty()) facts.push_back(p + "status.message=" + message);
                break;
              }
              default: facts.push_back(p + "unknown field " + std::to_string(sp.number));
            }
          }
          if (!status) facts.push_back(p + "status.code=0");
        }
      }
    }
  }
  std::sort(facts.begin(), facts.end());
  return facts;
}

/// The same facts of an OTLP/JSON export.
std::vector<std::string> json_facts(const std::string& body) {
  std::vector<std::string> facts;
  dom::parser parser;
  dom::element root;
  EXPECT_FALSE(parser.parse(body).get(root));
  auto arr = [](dom::element e) {
    dom::array a;
    EXPECT_FALSE(e.get_array().get(a));
    return a;
  };
  auto obj = [](dom::element e) {
    dom::object o;
    EXPECT_FALSE(e.get_object().get(o));
    return o;
  };
  auto key_of = [](dom::object kv) {
    std::string_view k;
    EXPECT_FALSE(kv["key"].get_string().get(k));
    return std::string(k);
  };
  auto int_of = [](dom::element e) {
    std::int64_t v = -1;
    EXPECT_FALSE(e.get_int64().get(v));
    return v;
  };
  dom::array resource_spans = arr(root["resourceSpans"].value());
  for (dom::element rs_e : resource_spans) {
    dom::object rs = obj(rs_e);
    dom::array resource_attrs = arr(obj(rs["resource"].value())["attributes"].value());
    for (dom::element a : resource_attrs) {
      dom::object kv = obj(a);
      facts.push_back("resource " + key_of(kv) + "=" + json_any(obj(kv["value"].value())));
    }
    dom::array scope_spans = arr(rs["scopeSpans"].value());
    for (dom::element ss_e : scope_spans) {
      dom::object ss = obj(ss_e);
      dom::object scope = obj(ss["scope"].value());
      facts.push_back("scope.name=" + sfield(scope, "name"));
      if (sfield(scope, "version") != "<missing>") facts.push_back("scope.version=" + sfield(scope, "version"));
      int n = 0;
      dom::array spans = arr(ss["spans"].value());
      for (dom::element e : spans) {
        dom::object sp = obj(e);
        const std::string p = "span" + std::to_string(n++) + ".";
        facts.push_back(p + "traceId=" + sfield(sp, "traceId"));
        facts.push_back(p + "spanId=" + sfield(sp, "spanId"));
        if (sfield(sp, "traceState") != "<missing>") facts.push_back(p + "traceState=" + sfield(sp, "traceState"));
        if (sfield(sp, "parentSpanId") != "<missing>") facts.push_back(p + "parentSpanId=" + sfield(sp, "parentSpanId"));
        facts.push_back(p + "name=" + sfield(sp, "name"));
        facts.push_back(p + "kind=" + std::to_string(int_of(sp["kind"].value())));
        facts.push_back(p + "start=" + sfield(sp, "startTimeUnixNano"));
        facts.push_back(p + "end=" + sfield(sp, "endTimeUnixNano"));
        dom::array attrs = arr(sp["attributes"].value());
        for (dom::element a : attrs) {
          dom::object kv = obj(a);
          facts.push_back(p + "attr " + key_of(kv) + "=" + json_any(obj(kv["value"].value())));
        }
        dom::object st = obj(sp["status"].value());
        facts.push_back(p + "status.code=" + std::to_string(int_of(st["code"].value())));
        if (sfield(st, "message") != "<missing>") facts.push_back(p + "status.message=" + sfield(st, "message"));
      }
    }
  }
  std::sort(facts.begin(), facts.end());
  return facts;
}

std::string encode_pb(const std::vector<trace_record>& rs, const otlp_options& opt) {
  std::vector<const trace_record*> ptrs;
  for (const auto& r : rs) ptrs.push_back(&r);
  return encode_otlp_protobuf(ptrs, opt);
}

TEST(OtlpProtobuf, SameFactsAsJsonForEveryFixtureAndOption) {
  trace_record long_content = chat_record();
  // Bodies past 127 and 16,383 bytes: lengths of two and three varint bytes.
  long_content.request_body = R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + std::string(20000, 'x') +
                              R"("}]})";
  trace_record state = chat_record();
  state.tracestate = "vendor=abc,other=1";
  trace_record no_attempts = chat_record();
  no_attempts.attempts.clear();
  const std::vector<std::vector<trace_record>> fixtures = {
      {chat_record()}, {streamed_record()}, {failed_retried_record()}, {long_content}, {state}, {no_attempts},
      {stepped_record()},
      {chat_record(), streamed_record(), failed_retried_record()}, {}};
  std::vector<otlp_options> options(4);
  options[0].service_name = "gw-test";
  options[0].service_version = "0.9.1";
  options[0].resource_attributes = {{"deployment.environment", "prod"}, {"k8s.pod.name", "gw-7"}};
  options[1].capture_content = true;
  options[2] = langfuse_opts();
  options[3] = langfuse_opts();
  options[3].capture_content = true;
  options[3].max_content_bytes = 1024;
  for (std::size_t o = 0; o < options.size(); ++o) {
    for (std::size_t f = 0; f < fixtures.size(); ++f) {
      auto pb = pb_facts(encode_pb(fixtures[f], options[o]));
      auto js = json_facts(encode(fixtures[f], options[o]));
      EXPECT_EQ(pb, js) << "options " << o << ", fixture " << f;
      if (!fixtures[f].empty()) {
        EXPECT_GT(pb.size(), 30u);
      }
    }
  }
}

TEST(OtlpProtobuf, IdsAreRawBytesAndTimesFixed64) {
  auto body = encode_pb({failed_retried_record()}, otlp_options{});
  auto facts = pb_facts(body);
  auto has = [&](const std::string& f) { return std::find(facts.begin(), facts.end(), f) != facts.end(); };
  EXPECT_TRUE(has("span0.traceId=4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b"));
  EXPECT_TRUE(has("span0.spanId=1111111111111111"));
  EXPECT_TRUE(has("span0.parentSpanId=9999999999999999"));
  EXPECT_TRUE(has("span0.start=" + nanos(t0)));
  EXPECT_TRUE(has("span0.status.code=2"));
  EXPECT_TRUE(has("span0.status.message=All deployments are rate limited"));
  EXPECT_TRUE(has("span1.parentSpanId=1111111111111111"));
  EXPECT_TRUE(has("span2.attr error.type=str:timeout"));
  // Much smaller than JSON for the same spans.
  EXPECT_LT(body.size() * 2, encode({failed_retried_record()}, otlp_options{}).size());
}

TEST(OtlpProtobuf, InvalidUtf8IsRepaired) {
  trace_record r = chat_record();
  r.error_type = "upstream_error";
  r.error_message = "broken \xe2\x82 message \xed\xa0\x80 end";
  r.key_alias = "alias\x80";
  r.tracestate = "k=\xff";
  otlp_options opt;
  opt.resource_attributes = {{"bad\xc0key", "v\xff"}};
  auto body = encode_pb({r}, opt);
  auto facts = pb_facts(body);
  for (const auto& f : facts) EXPECT_TRUE(simdjson::validate_utf8(f.data(), f.size())) << f;
  auto has = [&](const std::string& f) { return std::find(facts.begin(), facts.end(), f) != facts.end(); };
  EXPECT_TRUE(has("span0.attr llm_gateway.key_alias=str:alias\xef\xbf\xbd"));
  EXPECT_TRUE(has("resource bad\xef\xbf\xbdkey=str:v\xef\xbf\xbd"));
  EXPECT_TRUE(has("span0.traceState=k=\xef\xbf\xbd"));
}

TEST(OtlpProtobuf, EmptyExportIsValid) {
  auto facts = pb_facts(encode_pb({}, otlp_options{}));
  EXPECT_NE(std::find(facts.begin(), facts.end(), "scope.name=llm-gateway"), facts.end());
  EXPECT_EQ(std::count_if(facts.begin(), facts.end(), [](const std::string& f) { return f.rfind("span", 0) == 0; }), 0);
}

TEST(OtlpProtobuf, EncodeChoosesByOption) {
  std::vector<const trace_record*> none;
  otlp_options opt;
  EXPECT_EQ(encode_otlp(none, opt).front(), '{');
  opt.protobuf = true;
  EXPECT_EQ(encode_otlp(none, opt).front(), '\x0a');  // field 1, length-delimited
}

TEST(OtlpProtobuf, RejectedSpansOfAPartialSuccess) {
  EXPECT_EQ(otlp_rejected_spans("", true), 0);
  EXPECT_EQ(otlp_rejected_spans("", false), 0);
  EXPECT_EQ(otlp_rejected_spans("{}", false), 0);
  EXPECT_EQ(otlp_rejected_spans(R"({"partialSuccess":{}})", false), 0);
  EXPECT_EQ(otlp_rejected_spans(R"({"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}})", false), 3);
  EXPECT_EQ(otlp_rejected_spans(R"({"partialSuccess":{"rejectedSpans":7}})", false), 7);
  EXPECT_EQ(otlp_rejected_spans("not json", false), -1);
  // ExportTraceServiceResponse{partial_success{rejected_spans: 300, error_message: "no"}}
  const std::string pb = std::string("\x0a\x07\x08\xac\x02\x12\x02no", 9);
  EXPECT_EQ(otlp_rejected_spans(pb, true), 300);
  EXPECT_EQ(otlp_rejected_spans(std::string("\x0a\x00", 2), true), 0);
  EXPECT_EQ(otlp_rejected_spans(std::string("\x0a\x09\x08", 3), true), -1);  // length past the end
}

}  // namespace
}  // namespace gw::tracing
