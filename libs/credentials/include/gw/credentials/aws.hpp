#pragma once
/// AWS credentials resolved the way the AWS SDKs do, cached, and refreshed in the
/// background before temporary credentials expire.
///
/// Order (first source that is configured wins; a configured source that fails is an
/// error, it does not fall through, except instance metadata which is only probed):
///  1. explicit keys (litellm_params aws_access_key_id / aws_secret_access_key /
///     aws_session_token)
///  2. an explicit profile (aws_profile_name) from the shared files (see "Profiles")
///  3. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (or
///     AWS_SECURITY_TOKEN), AWS_CREDENTIAL_EXPIRATION
///  4. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
///     (+ AWS_ROLE_SESSION_NAME) via STS AssumeRoleWithWebIdentity (unsigned form POST
///     to https://sts.<region>.amazonaws.com/, or AWS_ENDPOINT_URL_STS); the token file
///     is read again at every refresh
///  5. profile AWS_PROFILE (or "default") from the shared files
///  6. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
///     (http://169.254.170.2<uri>) or AWS_CONTAINER_CREDENTIALS_FULL_URI (http only to
///     loopback, 169.254.170.2, 169.254.170.23, fd00:ec2::23; https to any host), with
///     Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
///     AWS_CONTAINER_AUTHORIZATION_TOKEN
///  7. EC2 instance metadata (unless AWS_EC2_METADATA_DISABLED=true):
///     http://169.254.169.254, AWS_EC2_METADATA_SERVICE_ENDPOINT, or
///     AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 (http://[fd00:ec2::254]); IMDSv2, and
///     IMDSv1 (reads without a session token) when the token request answers 403, 404
///     or 405, unless AWS_EC2_METADATA_V1_DISABLED=true
///
/// Profiles: the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
/// ~/.aws/credentials, "[name]") over the config file (AWS_CONFIG_FILE, ~/.aws/config,
/// "[profile name]"), merged as botocore merges them. Within a profile, first match:
///  a. role_arn + web_identity_token_file: AssumeRoleWithWebIdentity (as 4.)
///  b. role_arn + source_profile: the source profile's credentials (its static keys if
///     it has any, else resolved like this, recursively: at most 5 roles, cycles are an
///     error), then STS AssumeRole signed with them (SigV4, service sts; region as for
///     web identity, then the profile's `region`; role_session_name, external_id,
///     duration_seconds). role_arn + credential_source (Environment,
///     Ec2InstanceMetadata, EcsContainer): that step's credentials instead.
///  c. SSO: sso_session (with its [sso-session name] section: sso_start_url,
///     sso_region) or legacy sso_start_url + sso_region in the profile, and
///     sso_account_id + sso_role_name: the token `aws sso login` cached in
///     ~/.aws/sso/cache/<sha1 of the session name, or of the start URL>.json, then GET
///     https://portal.sso.<sso_region>.amazonaws.com/federation/credentials (or
///     AWS_ENDPOINT_URL_SSO). A missing or expired token is an error that says to run
///     `aws sso login`: the OIDC refresh-token flow is not implemented.
///  d. static keys in the credentials file
///  e. credential_process: the command, split into words like a shell (quotes,
///     backslashes; no shell, no expansion), run off the io thread with stdin
///     /dev/null, a timeout (process_timeout; the process group is killed) and 64 KiB of
///     stdout: {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?,
///     "Expiration"?}; run again at each refresh when Expiration is given
///  f. static keys in the config file
/// The source that won is sticky: refreshes ask it again, not the whole chain (for a
/// profile: its whole recipe, e.g. the process and AssumeRole again).
/// Not supported: mfa_serial (no one can type an MFA code into a gateway), SSO token
/// refresh, sts_regional_endpoints=legacy, a profile's endpoint_url / services.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gw/credentials/environment.hpp"
#include "gw/credentials/refresh.hpp"
#include "gw/http/asio.hpp"
#include "gw/providers/aws.hpp"

namespace gw::credentials {

namespace asio = boost::asio;

namespace detail {
template <class V>
class refresher;
struct aws_state;
}  // namespace detail

struct aws_source_config {
  /// Explicit keys; both of id and secret, or neither.
  std::string access_key_id, secret_access_key, session_token;
  /// Explicit profile: only this profile of the shared files is used.
  std::string profile;
  /// For the STS endpoint; else AWS_REGION, then AWS_DEFAULT_REGION; else the global
  /// endpoint https://sts.amazonaws.com/.
  std::string region;
  /// STS endpoint override (litellm aws_sts_endpoint); else AWS_ENDPOINT_URL_STS.
  std::string sts_endpoint;
  /// RoleSessionName for web identity and AssumeRole; else AWS_ROLE_SESSION_NAME, the profile's
  /// role_session_name, or "llm-gateway-<pid>".
  std::string role_session_name;
  environment env = environment::process();
  refresh_policy refresh;
  std::chrono::milliseconds sts_timeout{5000};  ///< STS and the SSO portal
  /// credential_process: the command is killed (with its process group) after this.
  std::chrono::milliseconds process_timeout{10000};
  std::chrono::milliseconds container_timeout{2000};
  int container_attempts = 3;                      ///< on transport errors and 5xx
  /// Per step (token, role, credentials): short, so a host that is not on EC2 gives up
  /// fast (the link-local address usually just drops packets).
  std::chrono::milliseconds imds_timeout{1000};

  /// From litellm_params: aws_access_key_id, aws_secret_access_key, aws_session_token,
  /// aws_profile_name, aws_region_name, aws_sts_endpoint, aws_session_name.
  static aws_source_config from_params(const std::map<std::string, std::string>& params,
                                       environment env = environment::process());
};

class aws_credentials_provider {
 public:
  using callback = std::function<void(std::optional<providers::aws_credentials>, std::string error)>;

  /// Never throws on configuration problems: they are reported by get(). Nothing is
  /// fetched until the first get().
  static std::shared_ptr<aws_credentials_provider> create(aws_source_config cfg, asio::io_context& io);
  ~aws_credentials_provider();  ///< stops (see stop())
  aws_credentials_provider(const aws_credentials_provider&) = delete;
  aws_credentials_provider& operator=(const aws_credentials_provider&) = delete;

  /// The cached credentials if still valid (not within the expiry margin), from any
  /// thread, without I/O: a shared_ptr copy under a mutex held for nanoseconds, and a
  /// clock read. This is for the request path; fall back to get() when it is empty.
  std::optional<providers::aws_credentials> current() const;
  /// Same, without copying the strings.
  std::shared_ptr<const providers::aws_credentials> current_ptr() const;

  /// Valid credentials, resolving now if none are cached. Concurrent callers share one
  /// resolution. `cb` runs exactly once: inline (on the caller's thread) when the
  /// answer is immediate (cached credentials; the provider stopped; failing fast within
  /// the cooldown after a failure), otherwise later on a thread running the io_context.
  /// Never called under an internal lock; must not throw. If the io_context stops for
  /// good first, it is not called (destroyed with the pending handlers).
  void get(callback cb);

  /// Which source produced the cached credentials: "explicit", "environment",
  /// "web_identity", "shared_credentials_file:<profile>", "config_file:<profile>",
  /// "web_identity:<profile>", "assume_role:<profile>", "sso:<profile>",
  /// "process:<profile>", "container", "imds", "imds_v1" ("" before the first success).
  std::string source() const;
  provider_stats stats() const;

  /// Cancels the refresh timer and fails waiting get() calls with "stopped" (their
  /// callbacks run inline here). Idempotent; the destructor calls it.
  void stop();

 private:
  aws_credentials_provider() = default;
  std::shared_ptr<detail::aws_state> state_;
  std::shared_ptr<detail::refresher<providers::aws_credentials>> engine_;
};

}  // namespace gw::credentials
