#pragma once
// The mock provider's non-OpenAI dialects (Bedrock, Anthropic) and fake identity
// endpoints (Entra ID token, STS, ECS container credentials, EC2 metadata): pure
// functions from a request to a response, called by mock_server.cpp, which does the
// socket work (latency, hang, pacing of streamed chunks, faults bookkeeping).

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gw/providers/sigv4.hpp"
#include "responses.hpp"

namespace gw::mock {

/// Credentials the mock accepts, and the temporary ones its fake identity endpoints
/// issued. Thread-safe.
class credential_store {
 public:
  using clock = std::chrono::system_clock;
  struct aws_credentials {
    std::string access_key_id, secret_access_key, session_token;  ///< token empty: long-term keys
    clock::time_point expires = clock::time_point::max();
  };

  /// Long-term keys the mock knows from the start (options).
  void add_aws(aws_credentials c);
  /// The credentials whose access key id is `akid`, if known and not expired.
  std::optional<aws_credentials> find_aws(std::string_view akid) const;

  /// Bearer tokens (Entra access tokens, Bedrock API keys) valid until `expires`.
  void add_bearer(std::string token, clock::time_point expires = clock::time_point::max());
  bool bearer_valid(std::string_view token) const;

  /// Counts of what the fake identity endpoints handed out (for /_mock/stats).
  std::uint64_t entra_tokens_issued() const;
  std::uint64_t sts_calls() const;
  std::uint64_t container_calls() const;
  std::uint64_t imds_calls() const;
  void count_entra();
  void count_sts();
  void count_container();
  void count_imds();

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, aws_credentials> aws_;
  std::unordered_map<std::string, clock::time_point> bearer_;
  std::uint64_t entra_ = 0, sts_ = 0, container_ = 0, imds_ = 0;
};

/// One request as the routes see it.
struct route_request {
  std::string_view method;   ///< "POST", "GET", "PUT"
  std::string_view target;   ///< path and query as received ("/model/x%3A0/converse?a=b")
  std::string_view path;     ///< target without the query, still percent-encoded
  std::string_view query;    ///< after '?', or empty
  /// Header fields in order, names lower-case.
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view body;
  std::string_view header(std::string_view lower_name) const;
};

/// One response. Whole (`body`) or streamed (`chunks`, each written as one HTTP chunk,
/// paced by the server at tokens_per_second).
struct route_response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool streamed = false;
  std::vector<std::string> chunks;
  /// Streams: close the connection after this many chunks (a broken stream); -1 = never.
  int drop_after = -1;
};

/// What the routes need from the server.
struct route_env {
  credential_store* creds = nullptr;
  int response_tokens = 16;        ///< words in a completion by default
  int embedding_dimensions = 8;
  std::uint64_t sequence = 0;      ///< a number unique to this request (ids)
  std::int64_t now_unix = 0;       ///< seconds
  /// The same instant, exactly (zero: use now_unix): relative lifetimes (Entra's
  /// expires_in) end ttl seconds after it, not after the whole second.
  std::chrono::system_clock::time_point now{};
  /// The fault programmed through /_mock/faults for `model` (consumed), if any: its
  /// status (answered in the provider's own error shape), retry_after, drop_after,
  /// tokens, echo apply. Also counts the request under `model` in /_mock/stats.
  std::function<std::optional<mock_request>(std::string_view model)> take_fault;
  /// Signing time tolerance for SigV4 checks.
  std::chrono::seconds clock_skew{300};
};

/// Checks a SigV4-signed request for `service` against the keys the store knows
/// (clock skew from env). The result says what is wrong when it is not ok().
gw::providers::sigv4_check verify_with_store(const route_request& r, const route_env& env, std::string_view service);

/// Bedrock Runtime: POST /model/{modelId}/converse and /converse-stream (SigV4 with a
/// known secret, or a bearer API key), /model/{modelId}/invoke (Titan and Cohere
/// embeddings). nullopt: not a Bedrock route.
std::optional<route_response> bedrock_route(const route_request& r, const route_env& env);

/// Anthropic: POST /v1/messages (x-api-key or bearer, anthropic-version required),
/// plain and streamed. nullopt: not an Anthropic route. `api_key` empty: any key.
std::optional<route_response> anthropic_route(const route_request& r, const route_env& env, std::string_view api_key);

/// Fake identity endpoints: Entra ID client-credentials token
/// (POST /{tenant}/oauth2/v2.0/token), STS (POST / with Action=...):
/// AssumeRoleWithWebIdentity, and AssumeRole with its SigV4 signature (service "sts")
/// checked against the credentials the store knows; ECS container credentials
/// (GET /_creds/container...), EC2 metadata (PUT /latest/api/token,
/// GET /latest/meta-data/iam/security-credentials/...; IMDSv1 under /_creds/imds-v1/),
/// the SSO portal's GetRoleCredentials (GET /federation/credentials, also reachable as
/// /_creds/sso/federation/credentials: the mock server only hands /_creds/ and a few
/// other prefixes to these routes, so AWS_ENDPOINT_URL_SSO=http://mock/_creds/sso).
/// nullopt: not one of them.
struct identity_options {
  std::string entra_client_id = "mock-client-id";
  std::string entra_client_secret = "mock-client-secret";
  int entra_token_ttl_s = 3599;
  int aws_temp_ttl_s = 3600;       ///< lifetime of issued AWS temporary credentials
  std::string container_auth_token;  ///< required Authorization of container calls; empty = none
  /// The access token (x-amz-sso_bearer_token) the SSO portal accepts: what a test
  /// writes into its fake ~/.aws/sso/cache.
  std::string sso_access_token = "mock-sso-token";
  /// IMDS refuses session tokens (the token PUT answers 403, as when IMDSv2 is blocked
  /// or an emulator predates it) and serves reads without one (IMDSv1). Paths under
  /// /_creds/imds-v1/ (AWS_EC2_METADATA_SERVICE_ENDPOINT=http://mock/_creds/imds-v1)
  /// always behave so, so one server can offer both.
  bool imds_v1_only = false;
};
std::optional<route_response> identity_route(const route_request& r, const route_env& env,
                                             const identity_options& o);

}  // namespace gw::mock
