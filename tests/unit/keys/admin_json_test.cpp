#include "gw/keys/admin_json.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <limits>
#include <set>

namespace {

using namespace gw::keys;
using gw::errc;
using std::chrono::days;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::month;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::year;
using gw::keys::sys_time;

constexpr money usd = pico_per_dollar;

sys_time at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return sys_days{year{y} / month{m} / std::chrono::day{d}} + hours(hh) + minutes(mm) + seconds(ss);
}

/// Checks a parser's error: code, param and (part of) the message.
void expect_error(const std::optional<gw::error>& e, errc code, std::string_view param,
                  std::string_view message_part = {}) {
  ASSERT_TRUE(e.has_value()) << "expected an error for param " << param;
  EXPECT_EQ(static_cast<int>(e->code), static_cast<int>(code)) << e->message;
  EXPECT_EQ(e->param, param) << e->message;
  if (!message_part.empty()) {
    EXPECT_NE(e->message.find(message_part), std::string::npos) << e->message;
  }
}

std::optional<gw::error> key_error(std::string_view body) {
  key_request r;
  return parse_key_request(body, r);
}

/// Parses rendered JSON back (simdjson DOM) for the tests to inspect.
struct parsed {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit parsed(const std::string& json) {
    auto err = parser.parse(json).get(root);
    EXPECT_FALSE(err) << simdjson::error_message(err) << ": " << json;
  }
  simdjson::dom::element operator[](std::string_view k) {
    simdjson::dom::element e;
    auto err = root.at_key(k).get(e);
    EXPECT_FALSE(err) << "no field " << k;
    return e;
  }
  bool is_null(std::string_view k) { return (*this)[k].is_null(); }
  std::string str(std::string_view k) {
    std::string_view s;
    EXPECT_FALSE((*this)[k].get_string().get(s)) << k;
    return std::string(s);
  }
  double num(std::string_view k) {
    double d = 0;
    EXPECT_FALSE((*this)[k].get_double().get(d)) << k;
    return d;
  }
  std::vector<std::string> keys() {
    std::vector<std::string> out;
    simdjson::dom::object o;
    EXPECT_FALSE(root.get_object().get(o));
    for (auto field : o) out.emplace_back(field.key);
    return out;
  }
};

// --------------------------------------------------------------------------- parsing keys

TEST(KeyRequest, ParsesEveryField) {
  key_request r;
  auto e = parse_key_request(R"({
    "key": "sk-my-own-key_1",
    "key_alias": "alias-1", "user_id": "u1", "team_id": "t1",
    "duration": "30d", "models": ["gpt-4o", "gpt-4o-mini"],
    "max_budget": 0.1, "soft_budget": "2.5", "budget_duration": "1mo",
    "tpm_limit": 100000, "rpm_limit": 60, "max_parallel_requests": 5.0,
    "model_rpm_limit": {"gpt-4o": 10}, "model_tpm_limit": {"gpt-4o": 2000},
    "model_max_budget": {"gpt-4o": {"budget_limit": 0.5, "time_period": "1d"}, "o3": 2,
                         "o1": {"max_budget": 3, "budget_duration": "1w"}},
    "metadata": {"team": "ml", "n": [1, 2.50, 1e3], "nested": {"x": null, "q": "a\"b\u00e9"}},
    "blocked": true, "spend": 1.25,
    "aliases": {"a": "b"}, "tags": ["x"], "some_future_field": 1
  })",
                             r);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(r.key, "sk-my-own-key_1");
  EXPECT_EQ(r.key_alias, "alias-1");
  EXPECT_EQ(r.user_id, "u1");
  EXPECT_EQ(r.team_id, "t1");
  ASSERT_TRUE(r.duration && *r.duration);
  EXPECT_EQ(**r.duration, "30d");
  EXPECT_EQ(r.models, (std::vector<std::string>{"gpt-4o", "gpt-4o-mini"}));
  ASSERT_TRUE(r.max_budget && *r.max_budget);
  EXPECT_EQ(**r.max_budget, 100'000'000'000);  // exactly 0.1 USD
  ASSERT_TRUE(r.soft_budget && *r.soft_budget);
  EXPECT_EQ(**r.soft_budget, 2'500'000'000'000);
  ASSERT_TRUE(r.budget_duration && *r.budget_duration);
  EXPECT_EQ(**r.budget_duration, "1mo");
  EXPECT_EQ(r.tpm_limit, std::optional<std::int64_t>(100000));
  EXPECT_EQ(r.rpm_limit, std::optional<std::int64_t>(60));
  EXPECT_EQ(r.max_parallel_requests, std::optional<std::int64_t>(5));
  EXPECT_EQ(r.model_rpm_limit, (std::map<std::string, std::int64_t>{{"gpt-4o", 10}}));
  EXPECT_EQ(r.model_tpm_limit, (std::map<std::string, std::int64_t>{{"gpt-4o", 2000}}));
  ASSERT_TRUE(r.model_max_budget);
  ASSERT_EQ(r.model_max_budget->size(), 3u);
  EXPECT_EQ(r.model_max_budget->at("gpt-4o").budget_limit, usd / 2);
  EXPECT_EQ(r.model_max_budget->at("gpt-4o").time_period, "1d");
  EXPECT_EQ(r.model_max_budget->at("o3").budget_limit, 2 * usd);
  EXPECT_EQ(r.model_max_budget->at("o3").time_period, "");
  EXPECT_EQ(r.model_max_budget->at("o1").budget_limit, 3 * usd);
  EXPECT_EQ(r.model_max_budget->at("o1").time_period, "1w");
  // Numbers exactly as sent; strings re-escaped.
  EXPECT_EQ(r.metadata,
            R"({"team":"ml","n":[1,2.50,1e3],"nested":{"x":null,"q":"a\"b)"
            "\xc3\xa9"
            R"("}})");
  EXPECT_EQ(r.blocked, true);
  EXPECT_EQ(r.spend, std::optional<money>(1'250'000'000'000));
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"aliases", "tags", "some_future_field"}));
}

TEST(KeyRequest, EmptyObjectChangesNothing) {
  key_request r;
  r.key_alias = "stale";  // the parser starts from a fresh request
  ASSERT_FALSE(parse_key_request("{}", r));
  EXPECT_FALSE(r.key);
  EXPECT_FALSE(r.key_alias);
  EXPECT_FALSE(r.duration);
  EXPECT_FALSE(r.models);
  EXPECT_FALSE(r.max_budget);
  EXPECT_FALSE(r.budget_duration);
  EXPECT_FALSE(r.tpm_limit);
  EXPECT_FALSE(r.model_max_budget);
  EXPECT_FALSE(r.metadata);
  EXPECT_FALSE(r.blocked);
  EXPECT_FALSE(r.spend);
  EXPECT_TRUE(r.ignored.empty());
}

TEST(KeyRequest, NullsClear) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"key": null, "key_alias": null, "user_id": null, "team_id": "",
    "duration": null, "models": null, "max_budget": null, "soft_budget": null,
    "budget_duration": "", "tpm_limit": null, "rpm_limit": null, "max_parallel_requests": null,
    "model_rpm_limit": null, "model_tpm_limit": null, "model_max_budget": null,
    "metadata": null, "blocked": null, "spend": null})",
                                 r));
  EXPECT_FALSE(r.key);    // null key: generate one
  EXPECT_FALSE(r.spend);  // a counter is not cleared by null
  EXPECT_EQ(r.key_alias, "");
  EXPECT_EQ(r.user_id, "");
  EXPECT_EQ(r.team_id, "");
  ASSERT_TRUE(r.duration);
  EXPECT_FALSE(*r.duration);
  ASSERT_TRUE(r.models);
  EXPECT_TRUE(r.models->empty());
  ASSERT_TRUE(r.max_budget);
  EXPECT_FALSE(*r.max_budget);
  ASSERT_TRUE(r.soft_budget);
  EXPECT_FALSE(*r.soft_budget);
  ASSERT_TRUE(r.budget_duration);
  EXPECT_FALSE(*r.budget_duration);
  ASSERT_TRUE(r.tpm_limit && r.rpm_limit && r.max_parallel_requests);
  EXPECT_FALSE(*r.tpm_limit);
  EXPECT_FALSE(*r.rpm_limit);
  EXPECT_FALSE(*r.max_parallel_requests);
  ASSERT_TRUE(r.model_rpm_limit && r.model_tpm_limit && r.model_max_budget);
  EXPECT_TRUE(r.model_rpm_limit->empty());
  EXPECT_TRUE(r.model_max_budget->empty());
  EXPECT_EQ(r.metadata, "{}");
  EXPECT_EQ(r.blocked, false);
}

TEST(KeyRequest, MoneyIsExactFromTheDecimalText) {
  struct {
    std::string_view json;
    money expected;
  } cases[] = {
      {"0.1", 100'000'000'000},
      {"0", 0},
      {"-0", 0},
      {"10", 10 * usd},
      {"1e-6", 1'000'000},
      {"1E-12", 1},
      {"1.5e2", 150 * usd},
      {"0.000000000001", 1},
      {"0.0000000000015", 2},  // rounded to the nearest picodollar
      {"0.30000000000000004", 300'000'000'000},
      {"1234567.123456789012", 1'234'567'123'456'789'012},  // more digits than a double holds
      {"\"0.25\"", usd / 4},                                // numeric strings too
      {"\"2e1\"", 20 * usd},
      {"9223372.036854775807", std::numeric_limits<money>::max()},
  };
  for (const auto& c : cases) {
    key_request r;
    std::string body = std::string(R"({"max_budget": )") + std::string(c.json) + "}";
    auto e = parse_key_request(body, r);
    ASSERT_FALSE(e) << c.json << ": " << e->message;
    ASSERT_TRUE(r.max_budget && *r.max_budget) << c.json;
    EXPECT_EQ(**r.max_budget, c.expected) << c.json;
  }
}

TEST(KeyRequest, LimitsAcceptIntegralNumbers) {
  key_request r;
  ASSERT_FALSE(parse_key_request(
      R"({"tpm_limit": 1e3, "rpm_limit": "42", "max_parallel_requests": 9223372036854775807})", r));
  EXPECT_EQ(r.tpm_limit, std::optional<std::int64_t>(1000));
  EXPECT_EQ(r.rpm_limit, std::optional<std::int64_t>(42));
  EXPECT_EQ(r.max_parallel_requests, std::optional<std::int64_t>(std::numeric_limits<std::int64_t>::max()));
  ASSERT_FALSE(parse_key_request(R"({"tpm_limit": 0})", r));
  EXPECT_EQ(r.tpm_limit, std::optional<std::int64_t>(0));
}

TEST(KeyRequest, BudgetErrors) {
  auto e = key_error(R"({"max_budget": -1})");
  expect_error(e, errc::invalid_request, "max_budget");
  EXPECT_EQ(e->message, "max_budget must be a number >= 0, got -1");
  expect_error(key_error(R"({"max_budget": -0.01})"), errc::invalid_request, "max_budget", "got -0.01");
  expect_error(key_error(R"({"max_budget": "abc"})"), errc::invalid_type, "max_budget",
               "max_budget must be a number >= 0, got \"abc\"");
  expect_error(key_error(R"({"max_budget": true})"), errc::invalid_type, "max_budget", "got true");
  expect_error(key_error(R"({"max_budget": [1]})"), errc::invalid_type, "max_budget", "got an array");
  expect_error(key_error(R"({"max_budget": {}})"), errc::invalid_type, "max_budget", "got an object");
  expect_error(key_error(R"({"max_budget": ""})"), errc::invalid_type, "max_budget");
  expect_error(key_error(R"({"max_budget": "1 "})"), errc::invalid_type, "max_budget");
  expect_error(key_error(R"({"max_budget": 1e30})"), errc::invalid_request, "max_budget", "at most");
  expect_error(key_error(R"({"max_budget": 10000000})"), errc::invalid_request, "max_budget", "at most");
  expect_error(key_error(R"({"soft_budget": -5})"), errc::invalid_request, "soft_budget");
  expect_error(key_error(R"({"spend": -1})"), errc::invalid_request, "spend");
  expect_error(key_error(R"({"spend": "x"})"), errc::invalid_type, "spend");
}

TEST(KeyRequest, LimitErrors) {
  expect_error(key_error(R"({"tpm_limit": -1})"), errc::invalid_request, "tpm_limit",
               "tpm_limit must be an integer >= 0, got -1");
  expect_error(key_error(R"({"rpm_limit": 1.5})"), errc::invalid_type, "rpm_limit", "an integer >= 0");
  expect_error(key_error(R"({"rpm_limit": "ten"})"), errc::invalid_type, "rpm_limit");
  expect_error(key_error(R"({"max_parallel_requests": false})"), errc::invalid_type, "max_parallel_requests");
  expect_error(key_error(R"({"max_parallel_requests": 1e19})"), errc::invalid_request,
               "max_parallel_requests", "at most");
  expect_error(key_error(R"({"model_rpm_limit": {"gpt-4o": -5}})"), errc::invalid_request,
               "model_rpm_limit.gpt-4o");
  expect_error(key_error(R"({"model_tpm_limit": {"gpt-4o": "x"}})"), errc::invalid_type,
               "model_tpm_limit.gpt-4o");
  expect_error(key_error(R"({"model_tpm_limit": [1]})"), errc::invalid_type, "model_tpm_limit");
}

TEST(KeyRequest, DurationErrors) {
  for (std::string_view bad : {"5x", "30", "0d", "-1d", "1.5h", "1 d", "1M"}) {
    auto e = key_error(std::string(R"({"duration": ")") + std::string(bad) + "\"}");
    expect_error(e, errc::invalid_request, "duration", "30s, 30m, 30h, 30d, 1w, 1mo");
    EXPECT_NE(e->message.find(std::string(bad)), std::string::npos) << e->message;
  }
  expect_error(key_error(R"({"duration": 30})"), errc::invalid_type, "duration", "30s, 30m, 30h, 30d, 1w, 1mo");
  expect_error(key_error(R"({"budget_duration": "1y"})"), errc::invalid_request, "budget_duration",
               "30s, 30m, 30h, 30d, 1w, 1mo");
  expect_error(key_error(R"({"budget_duration": ["1d"]})"), errc::invalid_type, "budget_duration");
}

TEST(KeyRequest, TypeErrors) {
  expect_error(key_error(R"({"models": "gpt-4o"})"), errc::invalid_type, "models", "an array of strings");
  expect_error(key_error(R"({"models": ["gpt-4o", 1]})"), errc::invalid_type, "models[1]");
  expect_error(key_error(R"({"models": ["gpt-4o", ""]})"), errc::invalid_request, "models[1]");
  expect_error(key_error(R"({"metadata": "x"})"), errc::invalid_type, "metadata", "an object");
  expect_error(key_error(R"({"metadata": []})"), errc::invalid_type, "metadata");
  expect_error(key_error(R"({"key_alias": 5})"), errc::invalid_type, "key_alias", "a string or null, got 5");
  expect_error(key_error(R"({"user_id": {}})"), errc::invalid_type, "user_id");
  expect_error(key_error(R"({"team_id": false})"), errc::invalid_type, "team_id");
  expect_error(key_error(R"({"blocked": "yes"})"), errc::invalid_type, "blocked", "true or false");
}

TEST(KeyRequest, CallerChosenKey) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"key": "sk-abc!#$%&'()*+,-./:;<=>?@[]^_`{|}~"})", r));
  EXPECT_EQ(r.key, "sk-abc!#$%&'()*+,-./:;<=>?@[]^_`{|}~");
  ASSERT_FALSE(parse_key_request(std::string(R"({"key": ")") + std::string(256, 'k') + "\"}", r));
  EXPECT_EQ(r.key->size(), 256u);

  expect_error(key_error(R"({"key": ""})"), errc::invalid_request, "key", "printable ASCII");
  expect_error(key_error(R"({"key": "sk has space"})"), errc::invalid_request, "key");
  expect_error(key_error(R"({"key": "sk-tab\t"})"), errc::invalid_request, "key");
  expect_error(key_error(R"({"key": "sk-\u00e9"})"), errc::invalid_request, "key");
  expect_error(key_error(R"({"key": "sk-\u0000"})"), errc::invalid_request, "key");
  expect_error(key_error(std::string(R"({"key": ")") + std::string(257, 'k') + "\"}"), errc::invalid_request,
               "key");
  expect_error(key_error(R"({"key": 1234})"), errc::invalid_type, "key");
}

TEST(KeyRequest, ModelMaxBudgetErrors) {
  expect_error(key_error(R"({"model_max_budget": {"gpt-4o": {"time_period": "1d"}}})"),
               errc::missing_parameter, "model_max_budget.gpt-4o.budget_limit");
  expect_error(key_error(R"({"model_max_budget": {"gpt-4o": -1}})"), errc::invalid_request,
               "model_max_budget.gpt-4o");
  expect_error(key_error(R"({"model_max_budget": {"gpt-4o": {"budget_limit": -1}}})"), errc::invalid_request,
               "model_max_budget.gpt-4o.budget_limit");
  expect_error(key_error(R"({"model_max_budget": {"gpt-4o": {"budget_limit": 1, "time_period": "xx"}}})"),
               errc::invalid_request, "model_max_budget.gpt-4o.time_period", "30s, 30m, 30h, 30d, 1w, 1mo");
  expect_error(key_error(R"({"model_max_budget": {"gpt-4o": true}})"), errc::invalid_type,
               "model_max_budget.gpt-4o");
  expect_error(key_error(R"({"model_max_budget": [1]})"), errc::invalid_type, "model_max_budget");
}

TEST(KeyRequest, BodyMustBeAnObject) {
  for (std::string_view body : {"[]", "\"str\"", "5", "null", "true", "[{\"max_budget\": 1}]"}) {
    auto e = key_error(body);
    expect_error(e, errc::invalid_request, "");
    EXPECT_EQ(e->message, "request body must be a JSON object") << body;
  }
}

TEST(KeyRequest, InvalidJson) {
  for (std::string_view body : {"", "   ", "{", "{\"a\":}", "{\"a\":1} x", "{'a':1}", "{\"a\": tru}",
                                "{\"a\": 1,}", "{\"a\" 1}", "{\"a\": \"\\x\"}", "{\"max_budget\": 01}",
                                "{\"a\": \"\xff\"}", "{\"aliases\": [1 2]}"}) {
    auto e = key_error(body);
    expect_error(e, errc::invalid_json, "", "not valid JSON");
  }
}

TEST(KeyRequest, NumbersBeyondDoubleRangeAreStillJson) {
  // simdjson's DOM refuses these; they are valid JSON and LiteLLM accepts them.
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"tags": 123456789012345678901234567890, "x": 1e400,
    "metadata": {"big": -123456789012345678901234567890, "tiny": 1e-400}, "max_budget": 2})",
                                 r));
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"tags", "x"}));
  EXPECT_EQ(r.metadata, R"({"big":-123456789012345678901234567890,"tiny":1e-400})");
  EXPECT_EQ(r.max_budget, std::optional<std::optional<money>>(2 * usd));
  ASSERT_FALSE(parse_key_request(R"({"max_budget": 1e-400})", r));
  EXPECT_EQ(r.max_budget, std::optional<std::optional<money>>(money{0}));

  expect_error(key_error(R"({"max_budget": 123456789012345678901234567890})"), errc::invalid_request,
               "max_budget", "at most");
  expect_error(key_error(R"({"tpm_limit": 1e400})"), errc::invalid_request, "tpm_limit", "at most");
  expect_error(key_error("[1e400]"), errc::invalid_request, "", "must be a JSON object");
  // The rest of such a body is still fully validated.
  for (std::string_view body :
       {R"({"x": 1e400} x)", R"({"x": 1e400, "a": 01})", R"({"x": 1e400, "a": nul})", R"({"x": 1e400, "a": [1 2]})",
        R"({"x": 1e400, "a": {"b" 1}})", R"({"x": 1e400, "a": 1,})", R"({"x": 1e400, "a": "\q"})",
        R"({"x": 1e400, "a": tru})", R"({"x": 1e400, "a": 1.})", R"({"x": 1e400, "a": -})", R"({"x": 1e400 "a": 1})",
        R"({"x": 1e400, "a": [1,]})", R"({"x": 1e400, "a": truex})", R"({"x": 1e400,})", R"({"x": 1e400)",
        R"({"x": 1e400, "a": .5})", R"({"x": 1e400, "a": +1})", R"({"x": 1e400, "a": 1e})"}) {
    expect_error(key_error(body), errc::invalid_json, "", "not valid JSON");
  }
}

TEST(KeyRequest, DuplicateFieldsLastWins) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"max_budget": 1, "max_budget": 2, "tags": 1, "tags": 2})", r));
  EXPECT_EQ(r.max_budget, std::optional<std::optional<money>>(2 * usd));
  EXPECT_EQ(r.ignored, std::vector<std::string>{"tags"});
}

// --------------------------------------------------------------------------- users, teams

TEST(UserRequest, ParsesAndValidates) {
  user_request r;
  ASSERT_FALSE(parse_user_request(R"({"user_id": "ishaan", "user_alias": "Ish", "user_email": "i@x.io",
    "user_role": "proxy_admin_viewer", "models": ["m1"], "teams": ["t1", "t2"], "max_budget": 10,
    "soft_budget": null, "budget_duration": "30d", "tpm_limit": 5, "rpm_limit": null,
    "max_parallel_requests": 2, "metadata": {"a": 1}, "spend": 0.5, "send_invite_email": true,
    "auto_create_key": false})",
                                  r));
  EXPECT_EQ(r.user_id, "ishaan");
  EXPECT_EQ(r.user_alias, "Ish");
  EXPECT_EQ(r.user_email, "i@x.io");
  EXPECT_EQ(r.user_role, "proxy_admin_viewer");
  EXPECT_EQ(r.models, std::vector<std::string>{"m1"});
  EXPECT_EQ(r.teams, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(r.max_budget, std::optional<std::optional<money>>(10 * usd));
  ASSERT_TRUE(r.soft_budget);
  EXPECT_FALSE(*r.soft_budget);
  EXPECT_EQ(r.budget_duration, std::optional<std::optional<std::string>>("30d"));
  EXPECT_EQ(r.tpm_limit, std::optional<std::optional<std::int64_t>>(5));
  ASSERT_TRUE(r.rpm_limit);
  EXPECT_FALSE(*r.rpm_limit);
  EXPECT_EQ(r.metadata, R"({"a":1})");
  EXPECT_EQ(r.spend, std::optional<money>(usd / 2));
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"send_invite_email", "auto_create_key"}));

  for (std::string_view role : {"proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"}) {
    ASSERT_FALSE(parse_user_request(std::string(R"({"user_role": ")") + std::string(role) + "\"}", r));
    EXPECT_EQ(r.user_role, std::string(role));
  }
  ASSERT_FALSE(parse_user_request(R"({"user_role": null, "user_id": null})", r));
  EXPECT_FALSE(r.user_role);
  EXPECT_FALSE(r.user_id);

  user_request u;
  expect_error(parse_user_request(R"({"user_role": "superuser"})", u), errc::invalid_request, "user_role",
               "one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer");
  expect_error(parse_user_request(R"({"user_role": 1})", u), errc::invalid_type, "user_role");
  expect_error(parse_user_request(R"({"user_id": ""})", u), errc::invalid_request, "user_id");
  expect_error(parse_user_request(R"({"user_id": 7})", u), errc::invalid_type, "user_id");
  expect_error(parse_user_request(R"({"teams": [1]})", u), errc::invalid_type, "teams[0]");
  expect_error(parse_user_request(R"({"max_budget": -2})", u), errc::invalid_request, "max_budget");
  expect_error(parse_user_request(R"({"budget_duration": "daily"})", u), errc::invalid_request,
               "budget_duration");
  expect_error(parse_user_request(R"({"metadata": 3})", u), errc::invalid_type, "metadata");
  expect_error(parse_user_request("[]", u), errc::invalid_request, "");
  expect_error(parse_user_request("{", u), errc::invalid_json, "");
}

TEST(TeamRequest, ParsesAndValidates) {
  team_request r;
  ASSERT_FALSE(parse_team_request(R"({"team_id": "t1", "team_alias": "ML",
    "members_with_roles": [{"role": "admin", "user_id": "u1"}, {"user_email": "b@x.io"},
                           {"user_id": "u3", "user_email": null, "role": "user", "extra": 1}],
    "models": [], "max_budget": 100, "budget_duration": "1w", "rpm_limit": 1000,
    "metadata": {}, "blocked": false, "organization_id": "org"})",
                                  r));
  EXPECT_EQ(r.team_id, "t1");
  EXPECT_EQ(r.team_alias, "ML");
  ASSERT_TRUE(r.members_with_roles);
  ASSERT_EQ(r.members_with_roles->size(), 3u);
  EXPECT_EQ((*r.members_with_roles)[0].user_id, "u1");
  EXPECT_EQ((*r.members_with_roles)[0].role, "admin");
  EXPECT_EQ((*r.members_with_roles)[1].user_email, "b@x.io");
  EXPECT_EQ((*r.members_with_roles)[1].role, "user");  // default
  EXPECT_EQ((*r.members_with_roles)[2].user_id, "u3");
  ASSERT_TRUE(r.models);
  EXPECT_TRUE(r.models->empty());
  EXPECT_EQ(r.max_budget, std::optional<std::optional<money>>(100 * usd));
  EXPECT_EQ(r.rpm_limit, std::optional<std::optional<std::int64_t>>(1000));
  EXPECT_EQ(r.metadata, "{}");
  EXPECT_EQ(r.blocked, false);
  EXPECT_EQ(r.ignored, std::vector<std::string>{"organization_id"});

  team_request t;
  expect_error(parse_team_request(R"({"members_with_roles": [{"role": "owner", "user_id": "u"}]})", t),
               errc::invalid_request, "members_with_roles[0].role", "\"admin\" or \"user\"");
  expect_error(parse_team_request(R"({"members_with_roles": [{"user_id": "u"}, {"role": "admin"}]})", t),
               errc::missing_parameter, "members_with_roles[1].user_id", "user_id or a user_email");
  expect_error(parse_team_request(R"({"members_with_roles": [{"user_id": 5}]})", t), errc::invalid_type,
               "members_with_roles[0].user_id");
  expect_error(parse_team_request(R"({"members_with_roles": ["u1"]})", t), errc::invalid_type,
               "members_with_roles[0]");
  expect_error(parse_team_request(R"({"members_with_roles": {}})", t), errc::invalid_type,
               "members_with_roles");
  expect_error(parse_team_request(R"({"team_id": ""})", t), errc::invalid_request, "team_id");
  expect_error(parse_team_request(R"({"blocked": 1})", t), errc::invalid_type, "blocked");
  expect_error(parse_team_request(R"({"tpm_limit": -3})", t), errc::invalid_request, "tpm_limit");
  expect_error(parse_team_request("5", t), errc::invalid_request, "");
}

TEST(MemberRequest, Add) {
  member_request r;
  ASSERT_FALSE(parse_member_add(R"({"team_id": "t1", "member": {"role": "admin", "user_id": "u1"}})", r));
  EXPECT_EQ(r.team_id, "t1");
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(r.members[0].user_id, "u1");
  EXPECT_EQ(r.members[0].role, "admin");

  ASSERT_FALSE(parse_member_add(
      R"({"team_id": "t1", "member": [{"user_id": "a"}, {"user_email": "b@x", "role": "user"}],
          "max_budget_in_team": 5})",
      r));
  ASSERT_EQ(r.members.size(), 2u);
  EXPECT_EQ(r.members[0].user_id, "a");
  EXPECT_EQ(r.members[1].user_email, "b@x");

  expect_error(parse_member_add(R"({"member": {"user_id": "u"}})", r), errc::missing_parameter, "team_id");
  expect_error(parse_member_add(R"({"team_id": null, "member": {"user_id": "u"}})", r), errc::missing_parameter,
               "team_id");
  expect_error(parse_member_add(R"({"team_id": 3, "member": {"user_id": "u"}})", r), errc::invalid_type,
               "team_id");
  expect_error(parse_member_add(R"({"team_id": "t1"})", r), errc::missing_parameter, "member");
  expect_error(parse_member_add(R"({"team_id": "t1", "member": []})", r), errc::invalid_request, "member");
  expect_error(parse_member_add(R"({"team_id": "t1", "member": "u1"})", r), errc::invalid_type, "member");
  expect_error(parse_member_add(R"({"team_id": "t1", "member": {"role": "admin"}})", r),
               errc::missing_parameter, "member.user_id");
  expect_error(parse_member_add(R"({"team_id": "t1", "member": [{"user_id": "a", "role": "boss"}]})", r),
               errc::invalid_request, "member[0].role");
  expect_error(parse_member_add("nope", r), errc::invalid_json, "");
}

TEST(MemberRequest, Delete) {
  member_request r;
  ASSERT_FALSE(parse_member_delete(R"({"team_id": "t1", "user_id": "u1"})", r));
  EXPECT_EQ(r.team_id, "t1");
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(r.members[0].user_id, "u1");
  ASSERT_FALSE(parse_member_delete(R"({"team_id": "t1", "user_email": "a@b"})", r));
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(r.members[0].user_email, "a@b");
  EXPECT_EQ(r.members[0].user_id, "");

  expect_error(parse_member_delete(R"({"team_id": "t1"})", r), errc::missing_parameter, "user_id",
               "user_id or user_email");
  expect_error(parse_member_delete(R"({"user_id": "u1"})", r), errc::missing_parameter, "team_id");
  expect_error(parse_member_delete(R"({"team_id": "t1", "user_id": 1})", r), errc::invalid_type, "user_id");
  expect_error(parse_member_delete(R"({"team_id": "", "user_id": "u"})", r), errc::invalid_request, "team_id");
}

TEST(NameList, ArraysAndSingles) {
  std::vector<std::string> out;
  ASSERT_FALSE(parse_name_list(R"({"keys": ["sk-1", "abc"]})", "keys", out));
  EXPECT_EQ(out, (std::vector<std::string>{"sk-1", "abc"}));
  ASSERT_FALSE(parse_name_list(R"({"key_aliases": ["a"]})", "key_aliases", out));
  EXPECT_EQ(out, std::vector<std::string>{"a"});
  ASSERT_FALSE(parse_name_list(R"({"user_ids": ["u1"], "extra": 1})", "user_ids", out));
  EXPECT_EQ(out, std::vector<std::string>{"u1"});
  ASSERT_FALSE(parse_name_list(R"({"key": "sk-1"})", "key", out, true));
  EXPECT_EQ(out, std::vector<std::string>{"sk-1"});

  expect_error(parse_name_list(R"({"keys": []})", "keys", out), errc::invalid_request, "keys",
               "a non-empty array");
  expect_error(parse_name_list(R"({})", "keys", out), errc::missing_parameter, "keys", "keys is required");
  expect_error(parse_name_list(R"({"keys": null})", "keys", out), errc::missing_parameter, "keys");
  expect_error(parse_name_list(R"({"keys": "sk-1"})", "keys", out), errc::invalid_type, "keys");
  expect_error(parse_name_list(R"({"keys": ["sk-1", 2]})", "keys", out), errc::invalid_type, "keys[1]");
  expect_error(parse_name_list(R"({"team_ids": [""]})", "team_ids", out), errc::invalid_request, "team_ids[0]");
  expect_error(parse_name_list(R"({"key": ""})", "key", out, true), errc::invalid_request, "key");
  expect_error(parse_name_list(R"({"key": ["a"]})", "key", out, true), errc::invalid_type, "key");
  expect_error(parse_name_list(R"({})", "key", out, true), errc::missing_parameter, "key");
  expect_error(parse_name_list("[]", "keys", out), errc::invalid_request, "");
  expect_error(parse_name_list("{\"keys\": [", "keys", out), errc::invalid_json, "");
}

// --------------------------------------------------------------------------- apply

key_record sample_key() {
  key_record k;
  k.token = "tok";
  k.key_name = "sk-...abcd";
  k.key_alias = "old-alias";
  k.models = {"gpt-4o"};
  k.user_id = "u1";
  k.team_id = "t1";
  k.budget.max_budget = 5 * usd;
  k.budget.soft_budget = 4 * usd;
  k.budget.budget_duration = "1d";
  k.budget.budget_reset_at = at(2026, 1, 2);
  k.budget.spend = usd;
  k.limits.tpm_limit = 100;
  k.limits.rpm_limit = 10;
  k.limits.max_parallel_requests = 2;
  k.limits.model_rpm_limit = {{"gpt-4o", 3}};
  k.model_max_budget["gpt-4o"] = model_budget{usd, "1d", at(2026, 1, 2), usd / 10};
  k.expires = at(2027, 1, 1);
  k.metadata = R"({"a":1})";
  k.created_at = at(2025, 1, 1);
  k.updated_at = at(2025, 1, 1);
  return k;
}

TEST(Apply, AbsentFieldsLeaveTheKeyUnchanged) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"unknown": 1})", r));
  key_record k = sample_key();
  auto now = at(2026, 6, 1, 12);
  apply(r, k, now);
  key_record expected = sample_key();
  expected.updated_at = now;
  EXPECT_EQ(to_json(k), to_json(expected));
  EXPECT_EQ(k.created_at, at(2025, 1, 1));
  EXPECT_EQ(k.updated_at, now);
}

TEST(Apply, NullsClearTheKey) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"key_alias": null, "user_id": "", "team_id": null, "duration": null,
    "models": null, "max_budget": null, "soft_budget": null, "budget_duration": null, "tpm_limit": null,
    "rpm_limit": null, "max_parallel_requests": null, "model_rpm_limit": null, "model_max_budget": null,
    "metadata": null, "spend": null})",
                                 r));
  key_record k = sample_key();
  apply(r, k, at(2026, 6, 1));
  EXPECT_EQ(k.key_alias, "");
  EXPECT_EQ(k.user_id, "");
  EXPECT_EQ(k.team_id, "");
  EXPECT_FALSE(k.expires);
  EXPECT_TRUE(k.models.empty());
  EXPECT_FALSE(k.budget.max_budget);
  EXPECT_FALSE(k.budget.soft_budget);
  EXPECT_EQ(k.budget.budget_duration, "");
  EXPECT_FALSE(k.budget.budget_reset_at);
  EXPECT_EQ(k.budget.spend, usd);  // spend: null is "not sent"
  EXPECT_FALSE(k.limits.tpm_limit);
  EXPECT_FALSE(k.limits.rpm_limit);
  EXPECT_FALSE(k.limits.max_parallel_requests);
  EXPECT_TRUE(k.limits.model_rpm_limit.empty());
  EXPECT_TRUE(k.model_max_budget.empty());
  EXPECT_EQ(k.metadata, "{}");
  EXPECT_EQ(k.token, "tok");  // never touched
  EXPECT_EQ(k.key_name, "sk-...abcd");
}

TEST(Apply, DurationsSetExpiryAndResetTimes) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"duration": "30d", "budget_duration": "1mo", "max_budget": 0.1,
    "spend": 0, "blocked": true, "models": ["a"], "key_alias": "new",
    "model_max_budget": {"gpt-4o": {"budget_limit": 2, "time_period": "1d"}, "o3": {"budget_limit": 1, "time_period": "1w"}}})",
                                 r));
  key_record k = sample_key();
  auto now = at(2026, 1, 31, 8, 30);
  apply(r, k, now);
  EXPECT_EQ(k.expires, now + hours(24 * 30));
  EXPECT_EQ(k.budget.budget_duration, "1mo");
  // Calendar-aligned (LiteLLM's rule, UTC by default): 1mo ends on the 1st.
  EXPECT_EQ(k.budget.budget_reset_at, at(2026, 2, 1));
  EXPECT_EQ(k.budget.max_budget, std::optional<money>(100'000'000'000));
  EXPECT_EQ(k.budget.spend, 0);
  EXPECT_TRUE(k.blocked);
  EXPECT_EQ(k.models, std::vector<std::string>{"a"});
  EXPECT_EQ(k.key_alias, "new");
  // gpt-4o stays: keeps its spend and (same period) its reset time; o3 is new.
  ASSERT_EQ(k.model_max_budget.size(), 2u);
  EXPECT_EQ(k.model_max_budget["gpt-4o"].budget_limit, 2 * usd);
  EXPECT_EQ(k.model_max_budget["gpt-4o"].spend, usd / 10);
  EXPECT_EQ(k.model_max_budget["gpt-4o"].reset_at, std::optional<sys_time>(at(2026, 1, 2)));
  EXPECT_EQ(k.model_max_budget["o3"].spend, 0);
  // 2026-01-31 is a Saturday: a weekly budget ends on Monday.
  EXPECT_EQ(k.model_max_budget["o3"].reset_at, std::optional<sys_time>(at(2026, 2, 2)));

  // A new record gets created_at; "" budget_duration clears.
  key_request r2;
  ASSERT_FALSE(parse_key_request(R"({"budget_duration": "", "duration": "1h"})", r2));
  key_record fresh;
  apply(r2, fresh, now);
  EXPECT_EQ(fresh.created_at, now);
  EXPECT_EQ(fresh.updated_at, now);
  EXPECT_EQ(fresh.expires, now + hours(1));
  EXPECT_EQ(fresh.budget.budget_duration, "");
  EXPECT_FALSE(fresh.budget.budget_reset_at);
}

TEST(Apply, UserAndTeam) {
  user_request ur;
  ASSERT_FALSE(parse_user_request(R"({"user_id": "u1", "user_email": "a@b", "user_role": "proxy_admin",
    "teams": ["t1"], "max_budget": 3, "budget_duration": "1d", "rpm_limit": 7, "metadata": {"x": true}})",
                                  ur));
  user_record u;
  auto now = at(2026, 3, 1, 9);
  apply(ur, u, now);
  EXPECT_EQ(u.user_id, "u1");
  EXPECT_EQ(u.user_email, "a@b");
  EXPECT_EQ(u.user_role, "proxy_admin");
  EXPECT_EQ(u.teams, std::vector<std::string>{"t1"});
  EXPECT_EQ(u.budget.max_budget, std::optional<money>(3 * usd));
  EXPECT_EQ(u.budget.budget_reset_at, std::optional<sys_time>(at(2026, 3, 2)));  // next midnight
  EXPECT_EQ(u.limits.rpm_limit, std::optional<std::int64_t>(7));
  EXPECT_EQ(u.metadata, R"({"x":true})");
  EXPECT_EQ(u.created_at, now);

  ASSERT_FALSE(parse_user_request(R"({"max_budget": null, "user_email": null})", ur));
  apply(ur, u, now + hours(1));
  EXPECT_FALSE(u.budget.max_budget);
  EXPECT_EQ(u.user_email, "");
  EXPECT_EQ(u.user_role, "proxy_admin");  // absent: unchanged
  EXPECT_EQ(u.created_at, now);
  EXPECT_EQ(u.updated_at, now + hours(1));

  team_request tr;
  ASSERT_FALSE(parse_team_request(R"({"team_id": "t1", "team_alias": "A",
    "members_with_roles": [{"user_id": "u1", "role": "admin"}], "blocked": true, "soft_budget": 1})",
                                  tr));
  team_record t;
  apply(tr, t, now);
  EXPECT_EQ(t.team_id, "t1");
  EXPECT_EQ(t.team_alias, "A");
  ASSERT_EQ(t.members_with_roles.size(), 1u);
  EXPECT_EQ(t.members_with_roles[0].role, "admin");
  EXPECT_TRUE(t.blocked);
  EXPECT_EQ(t.budget.soft_budget, std::optional<money>(usd));
  ASSERT_FALSE(parse_team_request(R"({"members_with_roles": null, "blocked": false})", tr));
  apply(tr, t, now);
  EXPECT_TRUE(t.members_with_roles.empty());
  EXPECT_FALSE(t.blocked);
  EXPECT_EQ(t.team_id, "t1");
}

// --------------------------------------------------------------------------- rendering

TEST(Render, IsoTime) {
  EXPECT_EQ(iso_time(at(2026, 11, 23, 10)), "2026-11-23T10:00:00.000000+00:00");
  EXPECT_EQ(iso_time(at(2026, 2, 3, 4, 5, 6) + microseconds(123456) + nanoseconds(999)),
            "2026-02-03T04:05:06.123456+00:00");
  EXPECT_EQ(iso_time(sys_time{}), "1970-01-01T00:00:00.000000+00:00");
  EXPECT_EQ(iso_time(sys_time{} - microseconds(1)), "1969-12-31T23:59:59.999999+00:00");
}

TEST(Render, MoneyIsExactJson) {
  auto money_text = [](money m) {
    std::string s;
    append_money(s, m);
    return s;
  };
  EXPECT_EQ(money_text(0), "0.0");
  EXPECT_EQ(money_text(100'000'000'000), "0.1");
  EXPECT_EQ(money_text(1234), "0.000000001234");
  EXPECT_EQ(money_text(-5 * usd), "-5.0");
  EXPECT_EQ(money_text(12 * usd + usd / 2), "12.5");
  EXPECT_EQ(money_text(std::numeric_limits<money>::max()), "9223372.036854775807");
  // Parsed back as a double, every amount comes back to the same picodollars.
  for (money m : {money{0}, money{1}, money{1234}, money{100'000'000'000}, money{123'456'789'012},
                  money{7 * usd + 1}, money{-3 * usd - 7}}) {
    simdjson::dom::parser p;
    double d = 0;
    ASSERT_FALSE(p.parse(money_text(m)).get_double().get(d)) << money_text(m);
    EXPECT_EQ(from_dollars(d), m) << money_text(m);
  }
}

TEST(Render, KeyHasLiteLLMShape) {
  key_record k = sample_key();
  k.budget.max_budget = 100'000'000'000;
  k.budget.soft_budget.reset();
  k.model_spend = {{"gpt-4o", 250'000'000'000}};
  k.metadata = R"({"a":[1,2],"b":"c"})";
  k.created_by = "admin";
  std::string json = to_json(k);
  parsed p(json);
  EXPECT_EQ(p.keys(), (std::vector<std::string>{
                          "token", "key_name", "key_alias", "spend", "max_budget", "soft_budget", "expires",
                          "models", "aliases", "config", "user_id", "team_id", "permissions",
                          "max_parallel_requests", "metadata", "blocked", "tpm_limit", "rpm_limit",
                          "model_rpm_limit", "model_tpm_limit", "budget_duration", "budget_reset_at",
                          "allowed_cache_controls", "model_spend", "model_max_budget", "created_at",
                          "updated_at", "created_by", "litellm_budget_table"}));
  EXPECT_EQ(p.str("token"), "tok");
  EXPECT_EQ(p.str("key_name"), "sk-...abcd");
  EXPECT_EQ(p.str("key_alias"), "old-alias");
  EXPECT_EQ(p.num("spend"), 1.0);
  EXPECT_EQ(p.num("max_budget"), 0.1);
  EXPECT_TRUE(p.is_null("soft_budget"));
  EXPECT_EQ(p.str("expires"), "2027-01-01T00:00:00.000000+00:00");
  EXPECT_EQ(simdjson::minify(p["models"]), R"(["gpt-4o"])");
  EXPECT_EQ(simdjson::minify(p["aliases"]), "{}");
  EXPECT_EQ(simdjson::minify(p["config"]), "{}");
  EXPECT_EQ(simdjson::minify(p["permissions"]), "{}");
  EXPECT_EQ(simdjson::minify(p["allowed_cache_controls"]), "[]");
  EXPECT_EQ(p.str("user_id"), "u1");
  EXPECT_EQ(p.str("team_id"), "t1");
  EXPECT_EQ(p.num("max_parallel_requests"), 2);
  EXPECT_EQ(simdjson::minify(p["metadata"]), R"({"a":[1,2],"b":"c"})");
  bool blocked = true;
  ASSERT_FALSE(p["blocked"].get_bool().get(blocked));
  EXPECT_FALSE(blocked);
  EXPECT_EQ(p.num("tpm_limit"), 100);
  EXPECT_EQ(p.num("rpm_limit"), 10);
  EXPECT_EQ(simdjson::minify(p["model_rpm_limit"]), R"({"gpt-4o":3})");
  EXPECT_EQ(simdjson::minify(p["model_tpm_limit"]), "{}");
  EXPECT_EQ(p.str("budget_duration"), "1d");
  EXPECT_EQ(p.str("budget_reset_at"), "2026-01-02T00:00:00.000000+00:00");
  EXPECT_EQ(simdjson::minify(p["model_spend"]), R"({"gpt-4o":0.25})");
  EXPECT_EQ(simdjson::minify(p["model_max_budget"]), R"({"gpt-4o":{"budget_limit":1.0,"time_period":"1d"}})");
  EXPECT_EQ(p.str("created_at"), "2025-01-01T00:00:00.000000+00:00");
  EXPECT_EQ(p.str("created_by"), "admin");
  EXPECT_TRUE(p.is_null("litellm_budget_table"));
}

TEST(Render, EmptyKeyUsesNulls) {
  key_record k;
  k.token = "t";
  k.metadata.clear();  // even an empty stored text renders as an object
  parsed p(to_json(k));
  for (std::string_view f : {"key_name", "key_alias", "max_budget", "soft_budget", "expires", "user_id", "team_id",
                             "max_parallel_requests", "tpm_limit", "rpm_limit", "budget_duration",
                             "budget_reset_at", "created_at", "updated_at", "created_by"})
    EXPECT_TRUE(p.is_null(f)) << f;
  EXPECT_EQ(p.num("spend"), 0.0);
  EXPECT_EQ(simdjson::minify(p["metadata"]), "{}");
  EXPECT_EQ(simdjson::minify(p["models"]), "[]");
  EXPECT_EQ(simdjson::minify(p["model_max_budget"]), "{}");
}

TEST(Render, StringsAreEscaped) {
  key_record k;
  k.token = "t";
  k.key_alias = "quote\" back\\ nl\n ctl\x01 \xc3\xa9";
  parsed p(to_json(k));
  EXPECT_EQ(p.str("key_alias"), k.key_alias);
}

TEST(Render, User) {
  user_record u;
  u.user_id = "u1";
  u.user_email = "a@b";
  u.teams = {"t1", "t2"};
  u.budget.max_budget = 10 * usd;
  u.budget.spend = 1234;
  u.budget.budget_duration = "30d";
  u.budget.budget_reset_at = at(2026, 2, 1);
  u.limits.rpm_limit = 5;
  u.created_at = at(2026, 1, 1);
  u.updated_at = at(2026, 1, 2);
  parsed p(to_json(u));
  EXPECT_EQ(p.keys(), (std::vector<std::string>{"user_id", "user_alias", "user_email", "user_role", "teams",
                                                "models", "spend", "max_budget", "soft_budget",
                                                "budget_duration", "budget_reset_at", "tpm_limit", "rpm_limit",
                                                "max_parallel_requests", "metadata", "created_at", "updated_at"}));
  EXPECT_EQ(p.str("user_id"), "u1");
  EXPECT_TRUE(p.is_null("user_alias"));
  EXPECT_EQ(p.str("user_email"), "a@b");
  EXPECT_EQ(p.str("user_role"), "internal_user");
  EXPECT_EQ(simdjson::minify(p["teams"]), R"(["t1","t2"])");
  EXPECT_EQ(from_dollars(p.num("spend")), 1234);
  EXPECT_EQ(p.num("max_budget"), 10.0);
  EXPECT_TRUE(p.is_null("soft_budget"));
  EXPECT_EQ(p.str("budget_duration"), "30d");
  EXPECT_EQ(p.str("budget_reset_at"), "2026-02-01T00:00:00.000000+00:00");
  EXPECT_TRUE(p.is_null("tpm_limit"));
  EXPECT_EQ(p.num("rpm_limit"), 5);
  EXPECT_EQ(simdjson::minify(p["metadata"]), "{}");
  EXPECT_EQ(p.str("updated_at"), "2026-01-02T00:00:00.000000+00:00");
}

TEST(Render, Team) {
  team_record t;
  t.team_id = "t1";
  t.team_alias = "ML";
  t.members_with_roles = {{"u1", "", "admin"}, {"", "b@x", "user"}};
  t.models = {"gpt-4o"};
  t.blocked = true;
  t.budget.soft_budget = usd / 2;
  t.metadata = R"({"k":"v"})";
  parsed p(to_json(t));
  EXPECT_EQ(p.keys(),
            (std::vector<std::string>{"team_id", "team_alias", "members_with_roles", "models", "spend",
                                      "max_budget", "soft_budget", "budget_duration", "budget_reset_at",
                                      "tpm_limit", "rpm_limit", "max_parallel_requests", "metadata", "blocked",
                                      "created_at", "updated_at"}));
  EXPECT_EQ(p.str("team_id"), "t1");
  EXPECT_EQ(p.str("team_alias"), "ML");
  EXPECT_EQ(simdjson::minify(p["members_with_roles"]),
            R"([{"user_id":"u1","user_email":null,"role":"admin"},{"user_id":null,"user_email":"b@x","role":"user"}])");
  EXPECT_EQ(p.num("soft_budget"), 0.5);
  EXPECT_TRUE(p.is_null("max_budget"));
  EXPECT_EQ(simdjson::minify(p["metadata"]), R"({"k":"v"})");
  bool blocked = false;
  ASSERT_FALSE(p["blocked"].get_bool().get(blocked));
  EXPECT_TRUE(blocked);
}

TEST(Render, KeyGenerateResponse) {
  key_record k;
  k.token = hash_key("sk-1234");
  k.models = {};
  std::string json = key_generate_response(k, "sk-1234", std::string("30d"));
  parsed p(json);
  auto keys = p.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size()) << json;  // no duplicates
  EXPECT_EQ(keys.front(), "key");
  EXPECT_EQ(p.str("key"), "sk-1234");
  EXPECT_EQ(p.str("token"), k.token);
  EXPECT_EQ(p.str("token_id"), k.token);
  EXPECT_EQ(p.str("key_name"), "sk-...1234");  // derived when the record has none
  EXPECT_EQ(p.str("duration"), "30d");
  EXPECT_EQ(p.num("spend"), 0.0);
  EXPECT_TRUE(p.is_null("expires"));

  k.key_name = "sk-...zzzz";
  parsed q(key_generate_response(k, "sk-1234", std::nullopt));
  EXPECT_TRUE(q.is_null("duration"));
  EXPECT_EQ(q.str("key_name"), "sk-...zzzz");
}

TEST(Render, ParsedRequestRoundTripsThroughARecord) {
  key_request r;
  ASSERT_FALSE(parse_key_request(R"({"max_budget": 0.3, "metadata": {"n": 0.30000000000000004},
                                     "model_max_budget": {"m": 0.1}})",
                                 r));
  key_record k;
  k.token = "t";
  apply(r, k, at(2026, 1, 1));
  parsed p(to_json(k));
  EXPECT_EQ(simdjson::minify(p["max_budget"]), "0.3");
  EXPECT_EQ(p.num("max_budget"), 0.3);
  EXPECT_EQ(simdjson::minify(p["metadata"]), R"({"n":0.30000000000000004})");
  EXPECT_EQ(simdjson::minify(p["model_max_budget"]), R"({"m":{"budget_limit":0.1,"time_period":null}})");
  EXPECT_EQ(p.str("created_at"), "2026-01-01T00:00:00.000000+00:00");
}

}  // namespace
