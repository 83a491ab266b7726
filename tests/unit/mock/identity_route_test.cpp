// The mock's fake identity endpoints as pure functions: Entra ID token, STS
// AssumeRoleWithWebIdentity and AssumeRole (SigV4-checked), container credentials,
// IMDSv2 and IMDSv1, the SSO portal.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "gw/providers/sigv4.hpp"
#include "provider_routes.hpp"

namespace gw::mock {
namespace {

using headers_t = std::vector<std::pair<std::string, std::string>>;

std::int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct IdentityRoute : ::testing::Test {
  credential_store store;
  identity_options opts;
  headers_t headers;
  std::uint64_t seq = 7;
  std::int64_t now = now_unix();

  std::optional<route_response> call(std::string_view method, std::string_view target, std::string_view body = {},
                                     headers_t h = {}) {
    headers = std::move(h);
    route_request r;
    r.method = method;
    r.target = target;
    auto q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    r.headers = &headers;
    r.body = body;
    route_env env;
    env.creds = &store;
    env.sequence = seq++;
    env.now_unix = now;
    return identity_route(r, env, opts);
  }
  std::optional<route_response> form(std::string_view target, std::string_view body) {
    return call("POST", target, body, {{"content-type", "application/x-www-form-urlencoded"}});
  }
};

std::string extract(const std::string& s, const std::string& open, const std::string& close) {
  auto a = s.find(open);
  if (a == std::string::npos) return {};
  a += open.size();
  auto b = s.find(close, a);
  return b == std::string::npos ? std::string() : s.substr(a, b - a);
}

constexpr std::string_view good_entra =
    "client_id=mock-client-id&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"
    "&client_secret=mock-client-secret&grant_type=client_credentials";

// ---- Entra ID ----------------------------------------------------------------------

TEST_F(IdentityRoute, EntraIssuesTokenAndRemembersIt) {
  opts.entra_token_ttl_s = 120;
  auto r = form("/my-tenant/oauth2/v2.0/token", good_entra);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_NE(r->body.find(R"("token_type":"Bearer")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("expires_in":120)"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("ext_expires_in":120)"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("access_token":"mock-entra-7")"), std::string::npos) << r->body;
  EXPECT_TRUE(store.bearer_valid("mock-entra-7"));
  EXPECT_FALSE(store.bearer_valid("mock-entra-8"));
  EXPECT_EQ(store.entra_tokens_issued(), 1u);
}

TEST_F(IdentityRoute, EntraTokenExpiresAtNowPlusTtl) {
  opts.entra_token_ttl_s = 5;
  now = now_unix() - 10;  // issued 10 s ago with a 5 s lifetime: already expired
  auto r = form("/t/oauth2/v2.0/token", good_entra);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_FALSE(store.bearer_valid("mock-entra-7"));
}

TEST_F(IdentityRoute, EntraDecodesFormValues) {
  opts.entra_client_secret = "s3cr+t&=/ %";
  auto r = form("/t/oauth2/v2.0/token",
                "grant_type=client_credentials&client_id=mock-client-id&client_secret=s3cr%2Bt%26%3D%2F+%25"
                "&scope=api%3A%2F%2Fx%2F.default");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(IdentityRoute, EntraWrongSecretIsInvalidClient) {
  auto r = form("/t/oauth2/v2.0/token",
                "client_id=mock-client-id&scope=x%2F.default&client_secret=wrong&grant_type=client_credentials");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find(R"("error":"invalid_client")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("AADSTS7000215: Invalid client secret provided"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("error_codes":[7000215])"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("wrong"), std::string::npos) << "the secret must not be echoed";
  EXPECT_EQ(store.entra_tokens_issued(), 0u);
}

TEST_F(IdentityRoute, EntraWrongClientIdAndMissingSecret) {
  auto r = form("/t/oauth2/v2.0/token",
                "client_id=other&scope=x%2F.default&client_secret=mock-client-secret&grant_type=client_credentials");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("AADSTS700016"), std::string::npos) << r->body;
  r = form("/t/oauth2/v2.0/token", "client_id=mock-client-id&scope=x%2F.default&grant_type=client_credentials");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("AADSTS7000216"), std::string::npos) << r->body;
}

TEST_F(IdentityRoute, EntraScopeRules) {
  auto r = form("/t/oauth2/v2.0/token",
                "client_id=mock-client-id&client_secret=mock-client-secret&grant_type=client_credentials");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find(R"("error":"invalid_scope")"), std::string::npos) << r->body;
  r = form("/t/oauth2/v2.0/token",
           "client_id=mock-client-id&client_secret=mock-client-secret&grant_type=client_credentials"
           "&scope=https%3A%2F%2Fcognitiveservices.azure.com");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("AADSTS1002012"), std::string::npos) << r->body;
}

TEST_F(IdentityRoute, EntraGrantTypeAndMethod) {
  auto r = form("/t/oauth2/v2.0/token", "client_id=mock-client-id&client_secret=mock-client-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("grant_type"), std::string::npos);
  r = form("/t/oauth2/v2.0/token", "grant_type=password&client_id=mock-client-id");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("unsupported_grant_type"), std::string::npos);
  r = call("GET", "/t/oauth2/v2.0/token");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
}

TEST_F(IdentityRoute, EntraPathShape) {
  EXPECT_FALSE(form("/oauth2/v2.0/token", good_entra));
  EXPECT_FALSE(form("/a/b/oauth2/v2.0/token", good_entra));
  EXPECT_FALSE(form("/t/oauth2/v2.0/tokens", good_entra));
  EXPECT_TRUE(form("/t/oauth2/v2.0/token?x=1", good_entra));
}

// ---- STS ---------------------------------------------------------------------------

constexpr std::string_view good_sts =
    "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo"
    "&RoleSessionName=gw-session&WebIdentityToken=eyJhbGciOi.x.y";

TEST_F(IdentityRoute, StsIssuesTemporaryCredentials) {
  opts.aws_temp_ttl_s = 900;
  now = 1700000000;  // 2023-11-14T22:13:20Z
  auto r = form("/", good_sts);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->content_type, "text/xml");
  EXPECT_NE(r->body.find("<AssumeRoleWithWebIdentityResponse"), std::string::npos);
  std::string akid = extract(r->body, "<AccessKeyId>", "</AccessKeyId>");
  std::string secret = extract(r->body, "<SecretAccessKey>", "</SecretAccessKey>");
  std::string token = extract(r->body, "<SessionToken>", "</SessionToken>");
  EXPECT_EQ(akid.substr(0, 4), "ASIA");
  EXPECT_EQ(akid.size(), 20u);
  EXPECT_FALSE(secret.empty());
  EXPECT_FALSE(token.empty());
  EXPECT_EQ(extract(r->body, "<Expiration>", "</Expiration>"), "2023-11-14T22:28:20Z");
  EXPECT_NE(r->body.find("assumed-role/demo/gw-session"), std::string::npos) << r->body;
  EXPECT_EQ(store.sts_calls(), 1u);
  // Expired by the real clock (issued "in 2023"), so the store does not hand it out.
  EXPECT_FALSE(store.find_aws(akid));
}

TEST_F(IdentityRoute, StsCredentialsAreKnownToTheStore) {
  auto r = form("/", good_sts);
  ASSERT_TRUE(r);
  std::string akid = extract(r->body, "<AccessKeyId>", "</AccessKeyId>");
  auto c = store.find_aws(akid);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->secret_access_key, extract(r->body, "<SecretAccessKey>", "</SecretAccessKey>"));
  EXPECT_EQ(c->session_token, extract(r->body, "<SessionToken>", "</SessionToken>"));
}

TEST_F(IdentityRoute, StsMissingParameters) {
  for (std::string_view p : {"RoleArn", "RoleSessionName", "WebIdentityToken"}) {
    std::string body(good_sts);
    auto at = body.find(std::string(p) + "=");
    auto end = body.find('&', at);
    body.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
    auto r = form("/", body);
    ASSERT_TRUE(r) << p;
    EXPECT_EQ(r->status, 400) << p;
    EXPECT_EQ(r->content_type, "text/xml");
    EXPECT_NE(r->body.find("<Code>MissingParameter</Code>"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find(std::string(p)), std::string::npos) << r->body;
  }
  EXPECT_EQ(store.sts_calls(), 0u);
}

TEST_F(IdentityRoute, StsRejectsOtherActionsAndBadSessionNames) {
  auto r = form("/", "Action=GetCallerIdentity&Version=2011-06-15");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("InvalidAction"), std::string::npos);
  std::string body(good_sts);
  body.replace(body.find("gw-session"), 10, "bad%3Csession%3E");
  r = form("/", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("ValidationError"), std::string::npos);
  EXPECT_EQ(r->body.find("<session>"), std::string::npos) << "input must never be echoed unescaped";
}

// ---- STS AssumeRole ----------------------------------------------------------------

constexpr std::string_view assume_role_form =
    "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo"
    "&RoleSessionName=gw-session";

/// The headers of a form POST to STS signed with `c` (service `service`) at `at`.
headers_t signed_sts(std::string_view body, const gw::providers::aws_credentials& c, std::int64_t at,
                     std::string_view service = "sts") {
  gw::providers::sigv4_input in;
  in.method = "POST";
  in.path = "/";
  in.headers = {{"host", "sts.amazonaws.com"}, {"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  in.body = body;
  auto added = gw::providers::sigv4_sign(in, c, "eu-west-1", service,
                                         std::chrono::system_clock::time_point(std::chrono::seconds(at)));
  headers_t h = in.headers;
  h.insert(h.end(), added.begin(), added.end());
  return h;
}

TEST_F(IdentityRoute, AssumeRoleSignedByKnownKeysIssuesCredentials) {
  store.add_aws({"AKIDTEST", "test-secret", "", credential_store::clock::time_point::max()});
  std::string body = std::string(assume_role_form) + "&DurationSeconds=900&ExternalId=corp-42";
  auto r = call("POST", "/", body, signed_sts(body, {"AKIDTEST", "test-secret", ""}, now));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->content_type, "text/xml");
  EXPECT_NE(r->body.find("<AssumeRoleResponse"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("WebIdentity"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("assumed-role/demo/gw-session"), std::string::npos) << r->body;
  std::string akid = extract(r->body, "<AccessKeyId>", "</AccessKeyId>");
  std::string secret = extract(r->body, "<SecretAccessKey>", "</SecretAccessKey>");
  std::string token = extract(r->body, "<SessionToken>", "</SessionToken>");
  EXPECT_FALSE(extract(r->body, "<Expiration>", "</Expiration>").empty());
  EXPECT_EQ(store.sts_calls(), 1u);
  // DurationSeconds sets the lifetime.
  auto c = store.find_aws(akid);
  ASSERT_TRUE(c);
  auto left = c->expires - credential_store::clock::now();
  EXPECT_GT(left, std::chrono::seconds(890));
  EXPECT_LE(left, std::chrono::seconds(900));
  // Role chaining: the temporary keys (with their session token) sign the next call.
  std::string body2(assume_role_form);
  auto r2 = call("POST", "/", body2, signed_sts(body2, {akid, secret, token}, now));
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200) << r2->body;
  EXPECT_EQ(store.sts_calls(), 2u);
}

TEST_F(IdentityRoute, AssumeRoleRefusesBadSignatures) {
  store.add_aws({"AKIDTEST", "test-secret", "", credential_store::clock::time_point::max()});
  std::string body(assume_role_form);
  auto code = [&](const headers_t& h) {
    auto r = call("POST", "/", body, h);
    EXPECT_TRUE(r);
    if (!r) return std::string();
    EXPECT_EQ(r->status, 403) << r->body;
    return extract(r->body, "<Code>", "</Code>");
  };
  EXPECT_EQ(code(signed_sts(body, {"AKIDTEST", "wrong-secret", ""}, now)), "SignatureDoesNotMatch");
  EXPECT_EQ(code(signed_sts(body, {"AKIDOTHER", "test-secret", ""}, now)), "InvalidClientTokenId");
  EXPECT_EQ(code(signed_sts(body, {"AKIDTEST", "test-secret", "a-token-long-term-keys-lack"}, now)),
            "InvalidClientTokenId");
  EXPECT_EQ(code(signed_sts(body, {"AKIDTEST", "test-secret", ""}, now, "bedrock")), "SignatureDoesNotMatch");
  EXPECT_EQ(code(signed_sts(body, {"AKIDTEST", "test-secret", ""}, now - 3600)), "SignatureDoesNotMatch");
  EXPECT_EQ(code({{"content-type", "application/x-www-form-urlencoded"}}), "MissingAuthenticationToken");
  // A body changed after signing.
  auto h = signed_sts(body, {"AKIDTEST", "test-secret", ""}, now);
  body += "&DurationSeconds=43200";
  EXPECT_EQ(code(h), "SignatureDoesNotMatch");
  EXPECT_EQ(store.sts_calls(), 0u);
}

TEST_F(IdentityRoute, AssumeRoleValidatesItsParameters) {
  store.add_aws({"AKIDTEST", "test-secret", "", credential_store::clock::time_point::max()});
  auto status_code = [&](const std::string& body) {
    auto r = call("POST", "/", body, signed_sts(body, {"AKIDTEST", "test-secret", ""}, now));
    EXPECT_TRUE(r);
    if (!r) return std::string();
    return std::to_string(r->status) + " " + extract(r->body, "<Code>", "</Code>");
  };
  std::string base(assume_role_form);
  EXPECT_EQ(status_code(base + "&ExternalId=x"), "400 ValidationError");
  EXPECT_EQ(status_code(base + "&ExternalId=has%20space"), "400 ValidationError");
  EXPECT_EQ(status_code(base + "&DurationSeconds=60"), "400 ValidationError");
  EXPECT_EQ(status_code(base + "&DurationSeconds=43201"), "400 ValidationError");
  EXPECT_EQ(status_code("Action=AssumeRole&Version=2011-06-15&RoleSessionName=s1"), "400 MissingParameter");
  EXPECT_EQ(status_code("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Ax&RoleSessionName=s1"),
            "400 ValidationError");
  EXPECT_EQ(store.sts_calls(), 0u);
  EXPECT_EQ(status_code(base + "&ExternalId=a%3Ab%2Fc-d&DurationSeconds=43200"), "200 ");
}

TEST_F(IdentityRoute, PostSlashWithoutFormIsNotSts) {
  EXPECT_FALSE(call("POST", "/", R"({"model":"x"})", {{"content-type", "application/json"}}));
}

// ---- container ---------------------------------------------------------------------

TEST_F(IdentityRoute, ContainerCredentials) {
  now = 1700000000;
  opts.aws_temp_ttl_s = 60;
  auto r = call("GET", "/_creds/container/v2/abc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find(R"("AccessKeyId":"ASIA)"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("SecretAccessKey":")"), std::string::npos);
  EXPECT_NE(r->body.find(R"("Token":")"), std::string::npos);
  EXPECT_NE(r->body.find(R"("Expiration":"2023-11-14T22:14:20Z")"), std::string::npos) << r->body;
  EXPECT_EQ(store.container_calls(), 1u);
  EXPECT_TRUE(call("GET", "/_creds/container"));
  EXPECT_EQ(call("POST", "/_creds/container")->status, 405);
}

TEST_F(IdentityRoute, ContainerAuthorization) {
  opts.container_auth_token = "pod-identity-token";
  auto r = call("GET", "/_creds/container");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = call("GET", "/_creds/container", {}, {{"authorization", "other"}});
  EXPECT_EQ(r->status, 401);
  r = call("GET", "/_creds/container", {}, {{"authorization", "pod-identity-token"}});
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(store.container_calls(), 1u);
}

// ---- IMDSv2 ------------------------------------------------------------------------

TEST_F(IdentityRoute, ImdsFlow) {
  auto t = call("PUT", "/latest/api/token", {}, {{"x-aws-ec2-metadata-token-ttl-seconds", "21600"}});
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200);
  EXPECT_EQ(t->content_type, "text/plain");
  std::string token = t->body;
  ASSERT_FALSE(token.empty());
  headers_t auth{{"x-aws-ec2-metadata-token", token}};
  auto role = call("GET", "/latest/meta-data/iam/security-credentials/", {}, auth);
  ASSERT_TRUE(role);
  EXPECT_EQ(role->status, 200);
  EXPECT_EQ(role->body, "mock-role");
  auto creds = call("GET", "/latest/meta-data/iam/security-credentials/mock-role", {}, auth);
  ASSERT_TRUE(creds);
  EXPECT_EQ(creds->status, 200);
  EXPECT_NE(creds->body.find(R"("Code":"Success")"), std::string::npos) << creds->body;
  EXPECT_NE(creds->body.find(R"("Type":"AWS-HMAC")"), std::string::npos);
  EXPECT_NE(creds->body.find(R"("AccessKeyId":"ASIA)"), std::string::npos);
  EXPECT_EQ(store.imds_calls(), 1u);
  EXPECT_EQ(call("GET", "/latest/meta-data/iam/security-credentials/other", {}, auth)->status, 404);
  // The session token is not an Azure/Bedrock bearer token.
  EXPECT_FALSE(store.bearer_valid(token));
}

TEST_F(IdentityRoute, ImdsNeedsAnIssuedToken) {
  EXPECT_EQ(call("PUT", "/latest/api/token")->status, 400);
  EXPECT_EQ(call("PUT", "/latest/api/token", {}, {{"x-aws-ec2-metadata-token-ttl-seconds", "0"}})->status, 400);
  EXPECT_EQ(call("PUT", "/latest/api/token", {}, {{"x-aws-ec2-metadata-token-ttl-seconds", "21601"}})->status, 400);
  EXPECT_EQ(call("GET", "/latest/api/token")->status, 405);
  EXPECT_EQ(call("GET", "/latest/meta-data/iam/security-credentials/")->status, 401);
  EXPECT_EQ(call("GET", "/latest/meta-data/iam/security-credentials/mock-role", {},
                 {{"x-aws-ec2-metadata-token", "mock-imds-token-1"}})
                ->status,
            401);
  // An expired token.
  now = now_unix() - 100;
  auto t = call("PUT", "/latest/api/token", {}, {{"x-aws-ec2-metadata-token-ttl-seconds", "5"}});
  ASSERT_EQ(t->status, 200);
  now = now_unix();
  EXPECT_EQ(call("GET", "/latest/meta-data/iam/security-credentials/", {}, {{"x-aws-ec2-metadata-token", t->body}})
                ->status,
            401);
  EXPECT_EQ(store.imds_calls(), 0u);
}

TEST_F(IdentityRoute, ImdsV1ModeRefusesTokensAndServesWithoutThem) {
  for (bool by_option : {false, true}) {
    opts.imds_v1_only = by_option;
    std::string root = by_option ? "" : "/_creds/imds-v1";
    auto t = call("PUT", root + "/latest/api/token", {}, {{"x-aws-ec2-metadata-token-ttl-seconds", "21600"}});
    ASSERT_TRUE(t);
    EXPECT_EQ(t->status, 403);
    auto role = call("GET", root + "/latest/meta-data/iam/security-credentials/");
    ASSERT_TRUE(role);
    EXPECT_EQ(role->status, 200);
    EXPECT_EQ(role->body, "mock-role");
    auto creds = call("GET", root + "/latest/meta-data/iam/security-credentials/mock-role");
    ASSERT_TRUE(creds);
    EXPECT_EQ(creds->status, 200);
    EXPECT_NE(creds->body.find(R"("AccessKeyId":"ASIA)"), std::string::npos) << creds->body;
  }
  EXPECT_EQ(store.imds_calls(), 2u);
  // The v1 root does not change the plain paths: they still need a token.
  opts.imds_v1_only = false;
  EXPECT_EQ(call("GET", "/latest/meta-data/iam/security-credentials/")->status, 401);
  EXPECT_FALSE(call("GET", "/_creds/imds-v1/other"));
}

// ---- SSO portal --------------------------------------------------------------------

TEST_F(IdentityRoute, SsoIssuesRoleCredentialsForTheConfiguredToken) {
  now = 1700000000;
  opts.aws_temp_ttl_s = 600;
  for (std::string path : {"/federation/credentials", "/_creds/sso/federation/credentials"}) {
    auto r = call("GET", path + "?role_name=Admin&account_id=123456789012", {},
                  {{"x-amz-sso_bearer_token", "mock-sso-token"}});
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->content_type, "application/json");
    EXPECT_NE(r->body.find(R"({"roleCredentials":{"accessKeyId":"ASIAMOCK)"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find(R"("secretAccessKey":")"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find(R"("sessionToken":")"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find(R"("expiration":1700000600000})"), std::string::npos) << r->body;
  }
}

TEST_F(IdentityRoute, SsoRefusesBadTokensAndRequests) {
  opts.sso_access_token = "the-token";
  auto r = call("GET", "/federation/credentials?role_name=A&account_id=123456789012", {},
                {{"x-amz-sso_bearer_token", "mock-sso-token"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body, R"({"message":"Session token not found or invalid"})");
  ASSERT_FALSE(r->headers.empty());
  EXPECT_EQ(r->headers[0].first, "x-amzn-errortype");
  EXPECT_EQ(r->headers[0].second.rfind("UnauthorizedException:", 0), 0u);
  EXPECT_EQ(call("GET", "/federation/credentials?role_name=A&account_id=123456789012")->status, 401);
  headers_t ok{{"x-amz-sso_bearer_token", "the-token"}};
  EXPECT_EQ(call("GET", "/federation/credentials?role_name=A", {}, ok)->status, 400);
  EXPECT_EQ(call("GET", "/federation/credentials?role_name=A&account_id=12", {}, ok)->status, 403);
  EXPECT_EQ(call("POST", "/federation/credentials", {}, ok)->status, 405);
  EXPECT_EQ(call("GET", "/federation/credentials?role_name=A&account_id=123456789012", {}, ok)->status, 200);
}

TEST_F(IdentityRoute, OtherPathsAreNotIdentityRoutes) {
  EXPECT_FALSE(call("POST", "/v1/chat/completions", "{}"));
  EXPECT_FALSE(call("GET", "/latest/meta-data/ami-id"));
  EXPECT_FALSE(call("GET", "/latest/meta-data/iam/security-credentialsX"));
  EXPECT_FALSE(call("GET", "/_creds/other"));
  EXPECT_FALSE(call("GET", "/"));
}

}  // namespace
}  // namespace gw::mock
