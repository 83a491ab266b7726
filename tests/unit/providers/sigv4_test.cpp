#include <gtest/gtest.h>

#include "gw/providers/sigv4.hpp"

namespace gw::providers {
namespace {

using namespace std::chrono;

// aws-c-auth tests/aws-signing-test-suite/v4 (wire-specs section 3).
constexpr std::string_view k_akid = "AKIDEXAMPLE";
constexpr std::string_view k_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view k_empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

system_clock::time_point vector_time() {
  return system_clock::time_point(sys_days{year{2015} / August / 30} + hours(12) + minutes(36));
}

aws_credentials vector_creds(std::string token = "") {
  aws_credentials c;
  c.access_key_id = std::string(k_akid);
  c.secret_access_key = std::string(k_secret);
  c.session_token = std::move(token);
  return c;
}

std::string header_value(const header_list& h, std::string_view name) {
  for (auto& [k, v] : h)
    if (k == name) return v;
  return "<absent>";
}

TEST(Sigv4, Sha256AndHmacKnownValues) {
  EXPECT_EQ(sha256_hex(""), k_empty_hash);
  EXPECT_EQ(sha256_hex("Param1=value1"), "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  // RFC 4231 test case 2.
  EXPECT_EQ(hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Sigv4, UriEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b/c:d", true), "a%20b/c%3Ad");
  EXPECT_EQ(uri_encode("a b/c:d", false), "a%20b%2Fc%3Ad");
  EXPECT_EQ(uri_encode("\xc3\xa9+=%", false), "%C3%A9%2B%3D%25");
  EXPECT_EQ(uri_decode("a%3Ab%2fc%zz%4"), "a:b/c%zz%4");
}

TEST(Sigv4, AmzDateIsUtcBasicFormat) {
  EXPECT_EQ(amz_date(vector_time()), "20150830T123600Z");
  EXPECT_EQ(amz_date(system_clock::time_point(sys_days{year{2024} / February / 29}) + seconds(86399) +
                     milliseconds(999)),
            "20240229T235959Z");
}

TEST(Sigv4, CanonicalQuerySortsAndEncodes) {
  EXPECT_EQ(canonical_query(""), "");
  EXPECT_EQ(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
  EXPECT_EQ(canonical_query("k=%2f&flag"), "flag=&k=%2F");
  EXPECT_EQ(canonical_query("x=a b"), "x=a%20b");
}

TEST(Sigv4, SigningKeyVector) {
  EXPECT_EQ(hex_encode(signing_key(k_secret, "20150830", "us-east-1", "service")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
}

TEST(Sigv4, PostVanillaStepByStep) {
  header_list h{{"host", "example.amazonaws.com"}, {"x-amz-date", "20150830T123600Z"}};
  auto canon = canonical_request("POST", "/", "", h, sha256_hex(""));
  EXPECT_EQ(canon.request,
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
                std::string(k_empty_hash));
  EXPECT_EQ(canon.signed_headers, "host;x-amz-date");
  auto scope = credential_scope("20150830", "us-east-1", "service");
  EXPECT_EQ(scope, "20150830/us-east-1/service/aws4_request");
  auto sts = string_to_sign("20150830T123600Z", scope, canon.request);
  EXPECT_EQ(sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87");
  EXPECT_EQ(sigv4_signature(signing_key(k_secret, "20150830", "us-east-1", "service"), sts),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(Sigv4, PostVanillaSign) {
  sigv4_input in;
  in.method = "POST";
  in.path = "/";
  in.headers = {{"host", "example.amazonaws.com"}};
  auto out = sigv4_sign(in, vector_creds(), "us-east-1", "service", vector_time());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, "x-amz-date");
  EXPECT_EQ(out[0].second, "20150830T123600Z");
  EXPECT_EQ(out[1].first, "authorization");
  EXPECT_EQ(out[1].second,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(Sigv4, GetVanillaWithSessionToken) {
  sigv4_input in;
  in.method = "GET";
  in.path = "/";
  in.headers = {{"host", "example.amazonaws.com"}};
  auto out = sigv4_sign(in, vector_creds("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
                        "us-east-1", "service", vector_time());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].first, "x-amz-security-token");
  EXPECT_EQ(out[1].second, "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267");
  EXPECT_EQ(out[2].second,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
}

TEST(Sigv4, PostXWwwFormUrlencoded) {
  sigv4_input in;
  in.method = "POST";
  in.path = "/";
  in.body = "Param1=value1";
  // Given in another order and case than canonical: the signer sorts and lower-cases.
  in.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                {"host", "example.amazonaws.com"},
                {"content-length", "13"},
                {"x-amz-content-sha256", sha256_hex("Param1=value1")}};
  auto out = sigv4_sign(in, vector_creds(), "us-east-1", "service", vector_time());
  EXPECT_EQ(header_value(out, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, "
            "Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b");
}

TEST(Sigv4, CanonicalHeadersTrimCollapseAndJoin) {
  header_list h{{"X-Foo", "  a   b  "}, {"host", "h"}, {"x-foo", "c"}};
  auto canon = canonical_request("GET", "/", "", h, "hash");
  EXPECT_EQ(canon.request, "GET\n/\n\nhost:h\nx-foo:a b,c\n\nhost;x-foo\nhash");
  EXPECT_EQ(canon.signed_headers, "host;x-foo");
}

TEST(Sigv4, BedrockPathIsEncodedTwice) {
  std::string wire = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";
  EXPECT_EQ(canonical_uri(wire), "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse");
  auto canon = canonical_request("POST", wire, "", {{"host", "bedrock-runtime.us-east-1.amazonaws.com"}}, "h");
  EXPECT_EQ(canon.request.substr(0, canon.request.find('\n', 5)),
            "POST\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse");
  EXPECT_EQ(canonical_uri(""), "/");
}

// ------------------------------------------------------------------ verifier

struct signed_request {
  std::string method = "POST";
  std::string path = "/model/amazon.nova-lite-v1%3A0/converse";
  std::string query;
  std::string body = R"({"messages":[]})";
  header_list headers;
};

signed_request make_signed(const aws_credentials& c, system_clock::time_point at, std::string service = "bedrock") {
  signed_request r;
  r.headers = {{"host", "bedrock-runtime.eu-west-1.amazonaws.com"}, {"content-type", "application/json"}};
  sigv4_input in;
  in.method = r.method;
  in.path = r.path;
  in.query = r.query;
  in.headers = r.headers;
  in.body = r.body;
  for (auto& h : sigv4_sign(in, c, "eu-west-1", service, at)) r.headers.push_back(h);
  r.headers.emplace_back("user-agent", "unsigned/1.0");  // not signed: must not matter
  return r;
}

aws_key_lookup lookup_for(const aws_credentials& known) {
  return [known](std::string_view akid) -> std::optional<aws_credentials> {
    if (akid == known.access_key_id) return known;
    return std::nullopt;
  };
}

sigv4_check verify(const signed_request& r, const aws_key_lookup& lookup, system_clock::time_point now) {
  return verify_sigv4(r.method, r.path, r.query, r.headers, r.body, lookup, now, seconds(300), "bedrock");
}

TEST(Sigv4Verify, AcceptsWhatSignSigned) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  auto res = verify(r, lookup_for(c), vector_time() + seconds(10));
  EXPECT_TRUE(res.ok()) << res.reason;
  EXPECT_EQ(res.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(res.region, "eu-west-1");
}

TEST(Sigv4Verify, AcceptsWithSessionToken) {
  auto c = vector_creds("session-token-1");
  auto r = make_signed(c, vector_time());
  auto res = verify(r, lookup_for(c), vector_time());
  EXPECT_TRUE(res.ok()) << res.reason;
}

TEST(Sigv4Verify, RejectsTamperedBody) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  r.body += " ";
  auto res = verify(r, lookup_for(c), vector_time());
  EXPECT_EQ(res.failure, sigv4_failure::signature_mismatch);
  EXPECT_NE(res.reason.find("signature"), std::string::npos);
}

TEST(Sigv4Verify, RejectsTamperedSignedHeaderAndPath) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  r.headers[0].second = "evil.example.com";
  EXPECT_EQ(verify(r, lookup_for(c), vector_time()).failure, sigv4_failure::signature_mismatch);
  auto r2 = make_signed(c, vector_time());
  r2.path = "/model/amazon.nova-pro-v1%3A0/converse";
  EXPECT_EQ(verify(r2, lookup_for(c), vector_time()).failure, sigv4_failure::signature_mismatch);
}

TEST(Sigv4Verify, RejectsWrongSecret) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  auto other = c;
  other.secret_access_key = "another-secret";
  EXPECT_EQ(verify(r, lookup_for(other), vector_time()).failure, sigv4_failure::signature_mismatch);
}

TEST(Sigv4Verify, RejectsUnknownOrExpiredKey) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  auto other = c;
  other.access_key_id = "AKIDOTHER";
  EXPECT_EQ(verify(r, lookup_for(other), vector_time()).failure, sigv4_failure::unknown_key);
  EXPECT_EQ(verify(r, aws_key_lookup{}, vector_time()).failure, sigv4_failure::unknown_key);
  auto expired = c;
  expired.expiration = vector_time() - seconds(1);
  EXPECT_EQ(verify(r, lookup_for(expired), vector_time()).failure, sigv4_failure::unknown_key);
}

TEST(Sigv4Verify, RejectsWrongService) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time(), "bedrock-runtime");
  auto res = verify(r, lookup_for(c), vector_time());
  EXPECT_EQ(res.failure, sigv4_failure::bad_scope);
  EXPECT_NE(res.reason.find("bedrock-runtime"), std::string::npos);
}

TEST(Sigv4Verify, RejectsSkewedDate) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  EXPECT_EQ(verify(r, lookup_for(c), vector_time() + seconds(301)).failure, sigv4_failure::bad_date);
  EXPECT_EQ(verify(r, lookup_for(c), vector_time() - seconds(301)).failure, sigv4_failure::bad_date);
  EXPECT_TRUE(verify(r, lookup_for(c), vector_time() + seconds(300)).ok());
}

TEST(Sigv4Verify, SessionTokenMustMatch) {
  auto c = vector_creds("token-A");
  auto r = make_signed(c, vector_time());
  auto stored = c;
  stored.session_token = "token-B";
  EXPECT_EQ(verify(r, lookup_for(stored), vector_time()).failure, sigv4_failure::token_mismatch);
  // Temporary credentials used without their token.
  auto no_token = make_signed(vector_creds(), vector_time());
  EXPECT_EQ(verify(no_token, lookup_for(c), vector_time()).failure, sigv4_failure::token_mismatch);
  // A token sent with long-term keys.
  EXPECT_EQ(verify(r, lookup_for(vector_creds()), vector_time()).failure, sigv4_failure::token_mismatch);
}

TEST(Sigv4Verify, MissingOrMalformedAuthorization) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  auto without = r;
  std::erase_if(without.headers, [](auto& h) { return h.first == "authorization"; });
  EXPECT_EQ(verify(without, lookup_for(c), vector_time()).failure, sigv4_failure::missing_authorization);

  auto set_auth = [&](std::string v) {
    auto x = r;
    for (auto& h : x.headers)
      if (h.first == "authorization") h.second = std::move(v);
    return verify(x, lookup_for(c), vector_time());
  };
  EXPECT_EQ(set_auth("Basic Zm9vOmJhcg==").failure, sigv4_failure::malformed_authorization);
  EXPECT_EQ(set_auth("AWS4-HMAC-SHA256").failure, sigv4_failure::malformed_authorization);
  EXPECT_EQ(set_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request").failure,
            sigv4_failure::malformed_authorization);
  EXPECT_EQ(set_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x, SignedHeaders=host;x-amz-date, Signature=00")
                .failure,
            sigv4_failure::malformed_authorization);
  // A signed header that the request does not carry.
  EXPECT_EQ(set_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request, "
                     "SignedHeaders=host;x-amz-date;x-missing, Signature=00")
                .failure,
            sigv4_failure::malformed_authorization);
  // Scope date other than x-amz-date's.
  EXPECT_EQ(set_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/eu-west-1/bedrock/aws4_request, "
                     "SignedHeaders=host;x-amz-date, Signature=00")
                .failure,
            sigv4_failure::bad_scope);
}

TEST(Sigv4Verify, MalformedDateHeader) {
  auto c = vector_creds();
  auto r = make_signed(c, vector_time());
  for (auto& h : r.headers)
    if (h.first == "x-amz-date") h.second = "2015-08-30T12:36:00Z";
  EXPECT_EQ(verify(r, lookup_for(c), vector_time()).failure, sigv4_failure::bad_date);
}

}  // namespace
}  // namespace gw::providers
