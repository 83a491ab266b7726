#include "gw/tracing/otlp.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
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

}  // namespace
}  // namespace gw::tracing
