// Credential providers against a real in-process mock server (fake Entra ID, STS,
// container and instance metadata endpoints), plus the pure helpers they use. The AWS
// profile sources (credential_process, assume role, SSO) and IMDSv1: aws_sources_test.cpp.

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "gw/credentials/aws.hpp"
#include "gw/credentials/entra.hpp"
#include "gw/credentials/parse.hpp"
#include "gw/mock/mock_server.hpp"
#include "test_support.hpp"

namespace gw::credentials {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using tcp = boost::asio::ip::tcp;
using env_map = std::map<std::string, std::string, std::less<>>;
using steady = std::chrono::steady_clock;

// ---- pure helpers --------------------------------------------------------------------

TEST(Parse, Iso8601) {
  using std::chrono::system_clock;
  auto secs = [](std::string_view s) {
    auto t = parse_iso8601(s);
    return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() : -1LL;
  };
  EXPECT_EQ(secs("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(secs("2023-11-14T22:13:20Z"), 1700000000);
  EXPECT_EQ(secs("2023-11-14T22:13:20.999Z"), 1700000000);
  EXPECT_EQ(secs("2023-11-14T23:13:20+01:00"), 1700000000);
  EXPECT_EQ(secs("2023-11-14T21:13:20-0100"), 1700000000);
  EXPECT_EQ(secs("2023-11-14T22:13:20"), 1700000000);
  EXPECT_EQ(secs("2024-02-29T00:00:00Z"), 1709164800);
  for (std::string_view bad : {"", "2023-11-14", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                               "2023-11-14T25:00:00Z", "2023-11-14T22:13:20Zjunk", "2023-11-14T22:13:20.Z",
                               "2023-11-14X22:13:20Z", "20231114T221320Z", "9999-12-31T23:59:59Z"})
    EXPECT_FALSE(parse_iso8601(bad)) << bad;
  EXPECT_EQ(format_iso8601(system_clock::time_point(std::chrono::seconds(1700000000))), "2023-11-14T22:13:20Z");
}

TEST(Parse, XmlTag) {
  std::string xml =
      "<?xml version=\"1.0\"?><R xmlns=\"x\"><Credentials><AccessKeyIdExtra>no</AccessKeyIdExtra>"
      "<AccessKeyId>ASIA1</AccessKeyId><sts:SessionToken a=\"b\">t&amp;k&#x2F;&#61;&lt;</sts:SessionToken>"
      "<Empty/></Credentials></R>";
  EXPECT_EQ(xml_tag(xml, "AccessKeyId"), "ASIA1");
  EXPECT_EQ(xml_tag(xml, "SessionToken"), "t&k/=<");
  EXPECT_EQ(xml_tag(xml, "Empty"), "");
  EXPECT_FALSE(xml_tag(xml, "Missing"));
  EXPECT_FALSE(xml_tag("<A>unterminated", "A"));
  EXPECT_FALSE(xml_tag("<", "A"));
  EXPECT_EQ(xml_tag("<A>&bogus; &amp</A>", "A"), "&bogus; &amp");
}

TEST(Parse, IniAndProfiles) {
  auto f = parse_ini(
      "# comment\n"
      "; another\n"
      "[default]\r\n"
      "aws_access_key_id = AKIDDEFAULT   # inline comment\n"
      "AWS_Secret_Access_Key=sec/ret+val#ue\n"
      "\n"
      "[ profile dev ]\n"
      "aws_access_key_id: AKIDDEV\n"
      "s3 =\n"
      "  max_concurrent_requests = 10\n"
      "region = eu-west-1\n"
      "[broken\n"
      "orphan = 1\n"
      "[profile  spaced ]\n"
      "x = 1\n");
  ASSERT_TRUE(f.count("default"));
  EXPECT_EQ(f["default"]["aws_access_key_id"], "AKIDDEFAULT");
  EXPECT_EQ(f["default"]["aws_secret_access_key"], "sec/ret+val#ue");  // '#' without space: not a comment
  ASSERT_TRUE(f.count("profile dev"));
  EXPECT_EQ(f["profile dev"]["aws_access_key_id"], "AKIDDEV");
  EXPECT_EQ(f["profile dev"]["s3"], "\nmax_concurrent_requests = 10");
  EXPECT_EQ(f["profile dev"]["region"], "eu-west-1");
  EXPECT_EQ(f["profile dev"].count("orphan"), 0u);
  ASSERT_NE(config_profile(f, "dev"), nullptr);
  EXPECT_EQ(config_profile(f, "dev")->at("region"), "eu-west-1");
  ASSERT_NE(config_profile(f, "spaced"), nullptr);
  ASSERT_NE(config_profile(f, "default"), nullptr);
  EXPECT_EQ(config_profile(f, "nope"), nullptr);
  EXPECT_TRUE(parse_ini("").empty());
  EXPECT_TRUE(parse_ini("key=value\n=\n[").empty());
}

TEST(Parse, FormEncode) {
  EXPECT_EQ(form_encode("aZ09-_.~"), "aZ09-_.~");
  EXPECT_EQ(form_encode("a b+c&d=e/f:"), "a%20b%2Bc%26d%3De%2Ff%3A");
  EXPECT_EQ(form_encode(std::string("\xff\x00", 2)), "%FF%00");
}

TEST(Parse, BedrockBearerToken) {
  EXPECT_EQ(bedrock_bearer_token(environment::from_map({{"AWS_BEARER_TOKEN_BEDROCK", " key-1 \n"}})), "key-1");
  EXPECT_EQ(bedrock_bearer_token(environment::from_map({})), "");
}

// ---- test plumbing: test_support.hpp ----------------------------------------------

using CredentialsTest = test::credentials_fixture;
using http::fetch_request;
using test::closed_port;
using test::one_shot_server;
using test::silent_server;

// ---- Entra ID ------------------------------------------------------------------------

entra_config entra_for(const std::string& authority, env_map vars = {}) {
  entra_config c;
  c.tenant_id = "my-tenant";
  c.client_id = "mock-client-id";
  c.client_secret = "mock-client-secret";
  c.authority_host = authority;
  c.env = environment::from_map(std::move(vars));
  return c;
}

TEST_F(CredentialsTest, EntraOverTls) {
  // The mock's certificate is for "localhost" only (fetch's host verification over TLS:
  // tests/unit/http/client_test.cpp).
  if (!start_tls_mock()) GTEST_SKIP() << "openssl CLI not available";
  std::string port = std::to_string(mock->port());
  // An Entra token over https.
  auto p = entra_token_provider::create(entra_for("https://localhost:" + port), io);
  auto [tok, err] = get_sync(*p);
  EXPECT_TRUE(tok) << err;
}

TEST_F(CredentialsTest, EntraOneRequestForManyConcurrentCallers) {
  mock::options o;
  o.latency_ms = 0;
  start_mock(o);
  auto p = entra_token_provider::create(entra_for(mock_url()), io);
  EXPECT_FALSE(p->current());
  constexpr int callers = 64;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::set<std::string> tokens;
  std::promise<void> all;
  std::atomic<int> left{callers};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < callers / 4; ++i)
        p->get([&](std::optional<std::string> tok, std::string err) {
          if (tok) {
            ++ok;
            std::lock_guard lock(mu);
            tokens.insert(*tok);
          } else {
            ADD_FAILURE() << err;
          }
          if (--left == 0) all.set_value();
        });
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(all.get_future().wait_for(20s), std::future_status::ready);
  EXPECT_EQ(ok.load(), callers);
  EXPECT_EQ(tokens.size(), 1u);
  EXPECT_EQ(mock_stat("entra_tokens_issued"), 1);
  EXPECT_EQ(p->stats().requests, 1u);
  EXPECT_EQ(p->stats().failures, 0u);
  ASSERT_TRUE(p->current());
  EXPECT_EQ(*p->current(), *tokens.begin());
  EXPECT_EQ(p->source(), "client_credentials:my-tenant");
  // The token works against the mock's Azure route (it was issued, not invented).
  fetch_request r;
  r.method = "POST";
  r.url = mock_url() + "/openai/deployments/d/chat/completions?api-version=2024-10-21";
  r.headers = {{"authorization", "Bearer " + *p->current()}, {"content-type", "application/json"}};
  r.body = R"({"messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(fetch_sync(r).status, 200);
}

TEST_F(CredentialsTest, EntraRefreshesBeforeExpiryWithoutGap) {
  mock::options o;
  o.entra_token_ttl_s = 3;
  start_mock(o);
  auto p = entra_token_provider::create(entra_for(mock_url()), io);
  auto [first, err] = get_sync(*p);
  ASSERT_TRUE(first) << err;
  std::set<std::string> seen{*first};
  int gaps = 0;
  auto until = steady::now() + 7s;
  while (steady::now() < until) {
    auto t = p->current();
    if (!t)
      ++gaps;
    else
      seen.insert(*t);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(gaps, 0) << "current() must keep serving while the refresh runs";
  // 3 s tokens renewed at 80% (2.4 s): 7 s see the first plus 2 or 3 renewals.
  EXPECT_GE(seen.size(), 3u);
  EXPECT_LE(seen.size(), 5u);
  auto s = p->stats();
  EXPECT_GE(s.refreshes, 2u);
  EXPECT_EQ(static_cast<long long>(s.requests), mock_stat("entra_tokens_issued"));
  EXPECT_TRUE(s.valid);
}

TEST_F(CredentialsTest, EntraWrongSecretIsAClearError) {
  start_mock();
  auto cfg = entra_for(mock_url());
  cfg.client_secret = "not-the-secret";
  auto p = entra_token_provider::create(cfg, io);
  auto [tok, err] = get_sync(*p);
  EXPECT_FALSE(tok);
  EXPECT_NE(err.find("HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided"), std::string::npos)
      << err;
  EXPECT_NE(err.find("Trace ID:"), std::string::npos) << err;
  EXPECT_EQ(err.find("not-the-secret"), std::string::npos) << "no secret in errors";
  EXPECT_EQ(err.find('\n'), std::string::npos) << "one line";
  // Within the cooldown the error is repeated without another request.
  auto [tok2, err2] = get_sync(*p);
  EXPECT_FALSE(tok2);
  EXPECT_EQ(err2, err);
  EXPECT_EQ(p->stats().requests, 1u);
  EXPECT_EQ(p->stats().failures, 1u);
  EXPECT_EQ(p->stats().last_error, err);
  EXPECT_EQ(mock_stat("entra_tokens_issued"), 0);
}

TEST_F(CredentialsTest, EntraCooldownEndsAndRetries) {
  start_mock();
  auto cfg = entra_for(mock_url());
  cfg.client_secret = "bad";
  cfg.refresh.retry_min = 100ms;
  cfg.refresh.failure_cooldown_max = 100ms;
  auto p = entra_token_provider::create(cfg, io);
  EXPECT_FALSE(get_sync(*p).first);
  std::this_thread::sleep_for(150ms);
  EXPECT_FALSE(get_sync(*p).first);
  EXPECT_EQ(p->stats().requests, 2u);
}

TEST_F(CredentialsTest, EntraFromEnvironment) {
  start_mock();
  entra_config cfg;
  cfg.env = environment::from_map({{"AZURE_TENANT_ID", "env-tenant"},
                                   {"AZURE_CLIENT_ID", "mock-client-id"},
                                   {"AZURE_CLIENT_SECRET", "mock-client-secret"},
                                   {"AZURE_AUTHORITY_HOST", mock_url() + "/"}});
  auto p = entra_token_provider::create(cfg, io);
  auto [tok, err] = get_sync(*p);
  ASSERT_TRUE(tok) << err;
  EXPECT_EQ(tok->rfind("mock-entra-", 0), 0u);
  EXPECT_EQ(p->source(), "client_credentials:env-tenant");

  auto from = entra_config::from_params(
      {{"tenant_id", "t"}, {"client_id", "c"}, {"client_secret", "s"}, {"azure_scope", "api://x/.default"}},
      environment::from_map({}));
  EXPECT_EQ(from.tenant_id, "t");
  EXPECT_EQ(from.client_secret, "s");
  EXPECT_EQ(from.scope, "api://x/.default");
}

TEST_F(CredentialsTest, EntraResponseShapes) {
  {
    // expires_in as a string (older endpoints).
    one_shot_server s(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 66\r\n\r\n"
        R"({"token_type":"Bearer","expires_in":"3599","access_token":"tok-1"})");
    auto p = entra_token_provider::create(entra_for(s.url()), io);
    auto [tok, err] = get_sync(*p);
    ASSERT_TRUE(tok) << err;
    EXPECT_EQ(*tok, "tok-1");
    auto left = p->current_token()->expiration - std::chrono::system_clock::now();
    EXPECT_GT(left, 3500s);
    EXPECT_LT(left, 3600s);
  }
  {
    one_shot_server s("HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n{\"token_type\":\"x\"}  ");
    auto p = entra_token_provider::create(entra_for(s.url()), io);
    EXPECT_NE(get_sync(*p).second.find("lacks access_token"), std::string::npos);
  }
  {
    // Not JSON at all, with an error status: the status is still reported.
    one_shot_server s("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\noops!");
    auto p = entra_token_provider::create(entra_for(s.url()), io);
    auto err = get_sync(*p).second;
    EXPECT_NE(err.find("failed: HTTP 503"), std::string::npos) << err;
  }
}

TEST_F(CredentialsTest, EntraMissingConfigurationFailsWithoutRequest) {
  entra_config cfg;
  cfg.env = environment::from_map({{"AZURE_CLIENT_ID", "x"}});
  auto p = entra_token_provider::create(cfg, io);
  auto [tok, err] = get_sync(*p);
  EXPECT_FALSE(tok);
  EXPECT_NE(err.find("AZURE_TENANT_ID"), std::string::npos) << err;
  EXPECT_NE(err.find("AZURE_CLIENT_SECRET"), std::string::npos) << err;
  EXPECT_EQ(err.find("AZURE_CLIENT_ID"), std::string::npos) << err;

  auto bad = entra_for("http://127.0.0.1:1");
  bad.tenant_id = "../evil";
  auto p2 = entra_token_provider::create(bad, io);
  EXPECT_NE(get_sync(*p2).second.find("invalid characters"), std::string::npos);
}

TEST_F(CredentialsTest, EntraUnreachableTimesOut) {
  silent_server s;
  auto cfg = entra_for(s.url());
  cfg.timeout = 300ms;
  auto p = entra_token_provider::create(cfg, io);
  auto t0 = steady::now();
  auto [tok, err] = get_sync(*p);
  EXPECT_FALSE(tok);
  EXPECT_LT(steady::now() - t0, 3s);
  EXPECT_NE(err.find("timed out after 300 ms"), std::string::npos) << err;
}

TEST_F(CredentialsTest, StopFailsWaitersAndLaterCalls) {
  silent_server s;
  auto cfg = entra_for(s.url());
  cfg.timeout = 10s;
  auto p = entra_token_provider::create(cfg, io);
  std::promise<std::string> pr;
  p->get([&](std::optional<std::string> t, std::string err) { pr.set_value(t ? "token?" : err); });
  std::this_thread::sleep_for(50ms);
  auto t0 = steady::now();
  p->stop();
  auto f = pr.get_future();
  ASSERT_EQ(f.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(f.get(), "credential provider stopped");
  EXPECT_LT(steady::now() - t0, 1s);
  EXPECT_EQ(get_sync(*p).second, "credential provider stopped");
}

// ---- AWS -----------------------------------------------------------------------------

TEST_F(CredentialsTest, AwsExplicitKeysNeverRefresh) {
  auto cfg = aws_config({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}});
  cfg.access_key_id = "AKIDEXPLICIT";
  cfg.secret_access_key = "explicit-secret";
  cfg.session_token = "explicit-token";
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDEXPLICIT");
  EXPECT_EQ(c->secret_access_key, "explicit-secret");
  EXPECT_EQ(c->session_token, "explicit-token");
  EXPECT_EQ(c->expiration, std::chrono::system_clock::time_point::max());
  EXPECT_EQ(p->source(), "explicit");
  ASSERT_TRUE(p->current());
  ASSERT_TRUE(p->current_ptr());
  EXPECT_EQ(p->current_ptr()->access_key_id, "AKIDEXPLICIT");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(p->stats().refreshes, 0u);
  EXPECT_EQ(p->stats().requests, 1u);
}

TEST_F(CredentialsTest, AwsIncompleteExplicitKeysAreAnError) {
  auto cfg = aws_config({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}});
  cfg.access_key_id = "AKIDEXPLICIT";
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("aws_secret_access_key"), std::string::npos) << err;
}

TEST_F(CredentialsTest, AwsEnvironment) {
  auto p = aws_credentials_provider::create(
      aws_config({{"AWS_ACCESS_KEY_ID", " AKIDENV "}, {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                  {"AWS_SECURITY_TOKEN", "legacy-token"}}),
      io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->session_token, "legacy-token");
  EXPECT_EQ(p->source(), "environment");

  auto p2 = aws_credentials_provider::create(aws_config({{"AWS_ACCESS_KEY_ID", "AKIDENV"}}), io);
  auto [c2, err2] = get_sync(*p2);
  EXPECT_FALSE(c2);
  EXPECT_NE(err2.find("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), std::string::npos) << err2;
}

TEST_F(CredentialsTest, AwsEnvironmentWithExpiration) {
  auto exp = format_iso8601(std::chrono::system_clock::now() + 1h);
  auto p = aws_credentials_provider::create(
      aws_config({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "s"}, {"AWS_SESSION_TOKEN", "t"},
                  {"AWS_CREDENTIAL_EXPIRATION", exp}}),
      io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(format_iso8601(c->expiration), exp);
}

TEST_F(CredentialsTest, AwsSharedCredentialsFileProfiles) {
  std::string home = (dir.path / "home").string();
  dir.write("home/.aws/credentials",
            "# keys\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n\n"
            "[dev]\n  aws_access_key_id=AKIDDEV ; dev keys\naws_secret_access_key=dev-secret\n"
            "aws_session_token = dev-token\n");
  auto p = aws_credentials_provider::create(aws_config({}, home), io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(p->source(), "shared_credentials_file:default");

  auto p2 = aws_credentials_provider::create(aws_config({{"AWS_PROFILE", "dev"}}, home), io);
  auto [c2, err2] = get_sync(*p2);
  ASSERT_TRUE(c2) << err2;
  EXPECT_EQ(c2->access_key_id, "AKIDDEV");
  EXPECT_EQ(c2->session_token, "dev-token");
  EXPECT_EQ(p2->source(), "shared_credentials_file:dev");

  // AWS_PROFILE naming a profile that does not exist is an error, not "try the next".
  auto p3 = aws_credentials_provider::create(aws_config({{"AWS_PROFILE", "nope"}}, home), io);
  auto [c3, err3] = get_sync(*p3);
  EXPECT_FALSE(c3);
  EXPECT_NE(err3.find("profile 'nope' not usable"), std::string::npos) << err3;
}

TEST_F(CredentialsTest, AwsConfigFileAndFileOverrides) {
  std::string creds = dir.write("elsewhere/creds", "[other]\naws_access_key_id=A\naws_secret_access_key=B\n");
  std::string config = dir.write("elsewhere/config",
                                 "[default]\nregion = us-east-1\n[profile team]\nregion=eu-west-1\n"
                                 "aws_access_key_id = AKIDTEAM\naws_secret_access_key = team-secret\n");
  env_map vars{{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}, {"AWS_PROFILE", "team"}};
  auto p = aws_credentials_provider::create(aws_config(vars), io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDTEAM");
  EXPECT_EQ(p->source(), "config_file:team");

  // The shared credentials file wins over the config file for the same profile.
  std::string creds2 =
      dir.write("elsewhere/creds2", "[team]\naws_access_key_id=AKIDFILE\naws_secret_access_key=file-secret\n");
  vars["AWS_SHARED_CREDENTIALS_FILE"] = creds2;
  auto p2 = aws_credentials_provider::create(aws_config(vars), io);
  auto [c2, err2] = get_sync(*p2);
  ASSERT_TRUE(c2) << err2;
  EXPECT_EQ(c2->access_key_id, "AKIDFILE");
}

TEST_F(CredentialsTest, AwsExplicitProfileBeatsEnvironment) {
  std::string creds = dir.write("c", "[prod]\naws_access_key_id=AKIDPROD\naws_secret_access_key=prod\n");
  auto cfg = aws_config({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                         {"AWS_ACCESS_KEY_ID", "AKIDENV"},
                         {"AWS_SECRET_ACCESS_KEY", "env"}});
  cfg.profile = "prod";
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDPROD");
  EXPECT_EQ(p->source(), "shared_credentials_file:prod");

  cfg.profile = "missing";
  auto p2 = aws_credentials_provider::create(cfg, io);
  auto [c2, err2] = get_sync(*p2);
  EXPECT_FALSE(c2) << "an explicit profile that does not exist must not fall back to the environment";
  EXPECT_NE(err2.find("profile 'missing'"), std::string::npos) << err2;
}

TEST_F(CredentialsTest, AwsUnsupportedProfileKindIsNamed) {
  std::string config = dir.write("config",
                                 "[profile base]\naws_access_key_id = A\naws_secret_access_key = B\n"
                                 "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = base\n"
                                 "mfa_serial = arn:aws:iam::123456789012:mfa/me\n");
  auto cfg = aws_config({{"AWS_CONFIG_FILE", config}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  cfg.profile = "mfa";
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("profile 'mfa' in " + config + " sets mfa_serial"), std::string::npos) << err;
  EXPECT_NE(err.find("not supported"), std::string::npos) << err;
}

TEST_F(CredentialsTest, AwsWebIdentityThroughStsAndRefresh) {
  mock::options o;
  o.aws_temp_ttl_s = 3;
  start_mock(o);
  std::string token_file = dir.write("token", "eyJhbGciOiJSUzI1NiJ9.payload.sig\n");
  auto p = aws_credentials_provider::create(aws_config({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                                                        {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gw"},
                                                        {"AWS_ENDPOINT_URL_STS", mock_url()}}),
                                            io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIAMOCK", 0), 0u) << c->access_key_id;
  EXPECT_FALSE(c->secret_access_key.empty());
  EXPECT_FALSE(c->session_token.empty());
  EXPECT_NE(c->expiration, std::chrono::system_clock::time_point::max());
  EXPECT_EQ(p->source(), "web_identity");
  EXPECT_EQ(mock_stat("sts_calls"), 1);

  // Temporary credentials (2-3 s here) are renewed before they expire, with no gap.
  std::set<std::string> seen{c->access_key_id};
  int gaps = 0;
  auto until = steady::now() + 5500ms;
  while (steady::now() < until) {
    if (auto cur = p->current())
      seen.insert(cur->access_key_id);
    else
      ++gaps;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(gaps, 0);
  EXPECT_GE(seen.size(), 3u);
  EXPECT_GE(mock_stat("sts_calls"), 3);

  // The token file is read at every refresh: once it is gone, refreshes fail (and the
  // failure says why) while the last credentials are served until their margin.
  fs::remove(token_file);
  auto deadline = steady::now() + 5s;
  while (p->stats().last_error.empty() && steady::now() < deadline) std::this_thread::sleep_for(20ms);
  auto s = p->stats();
  EXPECT_NE(s.last_error.find("web identity token file"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find("not found"), std::string::npos) << s.last_error;
}

TEST_F(CredentialsTest, AwsWebIdentityErrors) {
  start_mock();
  // STS rejects a malformed request: the XML error comes through.
  std::string token_file = dir.write("token", "tok");
  auto cfg = aws_config({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                         {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gw"},
                         {"AWS_ENDPOINT_URL_STS", mock_url()}});
  cfg.role_session_name = "bad session name!";
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("STS AssumeRoleWithWebIdentity at " + mock_url() + ": HTTP 400 ValidationError"),
            std::string::npos)
      << err;
  // A token file without a role is a configuration error.
  auto p2 = aws_credentials_provider::create(aws_config({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file}}), io);
  EXPECT_NE(get_sync(*p2).second.find("AWS_ROLE_ARN is not"), std::string::npos);
  // A missing token file.
  auto p3 = aws_credentials_provider::create(
      aws_config({{"AWS_WEB_IDENTITY_TOKEN_FILE", (dir.path / "none").string()}, {"AWS_ROLE_ARN", "arn:x"}}), io);
  EXPECT_NE(get_sync(*p3).second.find("not found"), std::string::npos);
}

TEST_F(CredentialsTest, AwsWebIdentityFromConfigProfile) {
  start_mock();
  std::string token_file = dir.write("tok", "jwt");
  std::string config = dir.write("config", "[profile irsa]\nrole_arn = arn:aws:iam::123456789012:role/x\n"
                                            "web_identity_token_file = " + token_file +
                                            "\nrole_session_name = from-profile\n");
  auto p = aws_credentials_provider::create(
      aws_config({{"AWS_CONFIG_FILE", config}, {"AWS_PROFILE", "irsa"}, {"AWS_ENDPOINT_URL_STS", mock_url()}}), io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(p->source(), "web_identity:irsa");
  EXPECT_EQ(mock_stat("sts_calls"), 1);
}

TEST_F(CredentialsTest, AwsContainerCredentialsWithTokenFile) {
  mock::options o;
  o.container_auth_token = "pod-token";
  start_mock(o);
  std::string token_file = dir.write("auth", "pod-token\n");
  auto p = aws_credentials_provider::create(
      aws_config({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", mock_url() + "/_creds/container/v1"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-file-set"}}),
      io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIA", 0), 0u);
  EXPECT_FALSE(c->session_token.empty());
  EXPECT_EQ(p->source(), "container");
  EXPECT_EQ(mock_stat("container_calls"), 1);
}

TEST_F(CredentialsTest, AwsContainerErrors) {
  mock::options o;
  o.container_auth_token = "pod-token";
  start_mock(o);
  // Wrong token: a 4xx is not retried and is reported.
  auto cfg = aws_config({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", mock_url() + "/_creds/container"},
                         {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"}});
  auto p = aws_credentials_provider::create(cfg, io);
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("container credentials at " + mock_url() + ": HTTP 401"), std::string::npos) << err;
  EXPECT_EQ(err.find("wrong"), std::string::npos) << "no token in errors";
  EXPECT_EQ(mock_stat("container_calls"), 0);
  // Clear-text credentials off the host are refused before any request.
  auto p2 = aws_credentials_provider::create(
      aws_config({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds"}}), io);
  EXPECT_NE(get_sync(*p2).second.find("host 10.1.2.3 is not allowed"), std::string::npos);
  // Unreachable: every attempt times out, fast.
  silent_server s;
  auto cfg3 = aws_config({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", s.url() + "/creds"}});
  cfg3.container_timeout = 150ms;
  cfg3.container_attempts = 2;
  auto p3 = aws_credentials_provider::create(cfg3, io);
  auto t0 = steady::now();
  auto [c3, err3] = get_sync(*p3);
  EXPECT_FALSE(c3);
  EXPECT_NE(err3.find("timed out after 150 ms"), std::string::npos) << err3;
  EXPECT_GE(steady::now() - t0, 250ms) << "two attempts";
  EXPECT_LT(steady::now() - t0, 2s);
}

TEST_F(CredentialsTest, AwsImdsV2) {
  start_mock();
  auto p = aws_credentials_provider::create(aws_config({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url() + "/"}}), io);
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIA", 0), 0u);
  EXPECT_EQ(p->source(), "imds");
  EXPECT_EQ(mock_stat("imds_calls"), 1);
}

TEST_F(CredentialsTest, AwsPrecedenceOrder) {
  start_mock();
  std::string token_file = dir.write("token", "jwt");
  std::string home = (dir.path / "home").string();
  dir.write("home/.aws/credentials", "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=f\n");
  env_map all{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
              {"AWS_SECRET_ACCESS_KEY", "e"},
              {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
              {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gw"},
              {"AWS_ENDPOINT_URL_STS", mock_url()},
              {"AWS_CONTAINER_CREDENTIALS_FULL_URI", mock_url() + "/_creds/container"},
              {"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url()}};
  auto winner = [&](const env_map& vars) {
    auto p = aws_credentials_provider::create(aws_config(vars, home), io);
    auto [c, err] = get_sync(*p);
    EXPECT_TRUE(c) << err;
    return p->source();
  };
  EXPECT_EQ(winner(all), "environment");
  all.erase("AWS_ACCESS_KEY_ID");
  all.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(winner(all), "web_identity");
  all.erase("AWS_WEB_IDENTITY_TOKEN_FILE");
  EXPECT_EQ(winner(all), "shared_credentials_file:default");
  fs::remove(dir.path / "home/.aws/credentials");
  EXPECT_EQ(winner(all), "container");
  all.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  EXPECT_EQ(winner(all), "imds");
  EXPECT_EQ(mock_stat("sts_calls"), 1);
  EXPECT_EQ(mock_stat("container_calls"), 1);
  EXPECT_EQ(mock_stat("imds_calls"), 1);
}

TEST_F(CredentialsTest, AwsNothingAvailableListsWhatWasTried) {
  silent_server s;
  auto cfg = aws_config({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", s.url()}});
  cfg.imds_timeout = 200ms;
  auto p = aws_credentials_provider::create(cfg, io);
  auto t0 = steady::now();
  auto [c, err] = get_sync(*p);
  EXPECT_LT(steady::now() - t0, 2s) << "an unreachable metadata service must give up fast";
  EXPECT_FALSE(c);
  for (std::string_view part :
       {"no AWS credentials found; tried: ", "explicit parameters (not set)", "explicit profile (not set)",
        "environment (AWS_ACCESS_KEY_ID not set)", "web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)",
        "shared files: ", "(not found)", "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI not set)",
        "EC2 instance metadata at http://127.0.0.1:", "timed out after 200 ms"})
    EXPECT_NE(err.find(part), std::string::npos) << part << " missing in: " << err;
  EXPECT_EQ(p->source(), "");
  EXPECT_FALSE(p->current());

  auto p2 = aws_credentials_provider::create(aws_config({{"AWS_EC2_METADATA_DISABLED", "true"}}), io);
  auto [c2, err2] = get_sync(*p2);
  EXPECT_FALSE(c2);
  EXPECT_NE(err2.find("disabled by AWS_EC2_METADATA_DISABLED"), std::string::npos) << err2;
}

TEST_F(CredentialsTest, AwsConcurrentCallersShareOneResolution) {
  start_mock();
  auto p = aws_credentials_provider::create(aws_config({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url()}}), io);
  constexpr int n = 32;
  std::atomic<int> left{n}, ok{0};
  std::promise<void> all;
  for (int i = 0; i < n; ++i)
    p->get([&](std::optional<providers::aws_credentials> c, std::string) {
      if (c) ++ok;
      if (--left == 0) all.set_value();
    });
  ASSERT_EQ(all.get_future().wait_for(20s), std::future_status::ready);
  EXPECT_EQ(ok.load(), n);
  EXPECT_EQ(mock_stat("imds_calls"), 1);
  EXPECT_EQ(p->stats().requests, 1u);
}

TEST_F(CredentialsTest, AwsFromParams) {
  auto c = aws_source_config::from_params({{"aws_access_key_id", "A"},
                                           {"aws_secret_access_key", "S"},
                                           {"aws_session_token", "T"},
                                           {"aws_profile_name", "p"},
                                           {"aws_region_name", "eu-central-1"},
                                           {"aws_sts_endpoint", "https://sts.example"}},
                                          environment::from_map({}));
  EXPECT_EQ(c.access_key_id, "A");
  EXPECT_EQ(c.secret_access_key, "S");
  EXPECT_EQ(c.session_token, "T");
  EXPECT_EQ(c.profile, "p");
  EXPECT_EQ(c.region, "eu-central-1");
  EXPECT_EQ(c.sts_endpoint, "https://sts.example");
}

TEST_F(CredentialsTest, DestroyingAProviderWithARefreshPendingIsSafe) {
  mock::options o;
  o.entra_token_ttl_s = 2;
  start_mock(o);
  {
    auto p = entra_token_provider::create(entra_for(mock_url()), io);
    ASSERT_TRUE(get_sync(*p).first);
  }  // destroyed with its refresh timer armed
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(mock_stat("entra_tokens_issued"), 1) << "a destroyed provider must not keep refreshing";
}

}  // namespace
}  // namespace gw::credentials
