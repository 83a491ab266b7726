// The mock's fake identity endpoints: Entra ID client-credentials tokens, STS
// AssumeRoleWithWebIdentity and (SigV4-checked) AssumeRole, ECS/EKS container
// credentials, EC2 IMDSv2 and IMDSv1, the SSO portal's GetRoleCredentials. Pure
// functions of the request, the environment (time, sequence number) and the options;
// the only state is what the credential store remembers (issued tokens and keys, the
// counters /_mock/stats reports).

#include <algorithm>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"
#include "gw/providers/sigv4.hpp"
#include "provider_routes.hpp"

namespace gw::mock {
namespace {

using clock = credential_store::clock;

// Request bodies here are small forms; anything larger is not a client of ours.
constexpr std::size_t max_form_bytes = 64 * 1024;
// IMDS session tokens live in the bearer store under this prefix, so an IMDS token is
// never accepted as an Azure or Bedrock bearer token (those are looked up unprefixed).
constexpr std::string_view imds_token_key = "imds-session:";

/// application/x-www-form-urlencoded decoding ('+' is a space; a malformed escape is
/// kept literally, as lenient servers do). '+' is replaced before %XY decoding, so an
/// encoded "%2B" still decodes to '+'.
std::string form_decode(std::string_view s) {
  std::string plus_as_space(s);
  std::replace(plus_as_space.begin(), plus_as_space.end(), '+', ' ');
  return gw::providers::uri_decode(plus_as_space);
}

/// The decoded value of the first `name` in a form body; nullopt when absent.
std::optional<std::string> form_value(std::string_view body, std::string_view name) {
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t amp = body.find('&', pos);
    std::string_view pair = body.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (form_decode(key) == name) return form_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return std::nullopt;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

/// "2024-05-01T12:00:00Z"
std::string iso8601(std::int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

clock::time_point at(std::int64_t unix_s) { return clock::time_point(std::chrono::seconds(unix_s)); }

std::string padded_sequence(std::uint64_t seq, std::size_t width) {
  std::string s = std::to_string(seq);
  if (s.size() < width) s.insert(0, width - s.size(), '0');
  return s;
}

route_response json_response(int status, std::string body) {
  route_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

route_response text_response(int status, std::string body) {
  route_response r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

route_response method_not_allowed(std::string_view allow) {
  route_response r = text_response(405, "Method Not Allowed");
  r.headers.emplace_back("allow", std::string(allow));
  return r;
}

// ---- Entra ID ----------------------------------------------------------------------

route_response entra_error(int status, std::string_view error, std::string_view description, int code,
                           const route_env& env) {
  std::string b = R"({"error":)";
  append_json_string(b, error);
  b += R"(,"error_description":)";
  append_json_string(b, std::string(description) + "\r\nTrace ID: mock-trace-" + std::to_string(env.sequence) +
                            "\r\nCorrelation ID: mock-correlation-" + std::to_string(env.sequence) +
                            "\r\nTimestamp: " + iso8601(env.now_unix));
  b += R"(,"error_codes":[)" + std::to_string(code) + "]";
  b += R"(,"timestamp":)";
  append_json_string(b, iso8601(env.now_unix));
  b += R"(,"trace_id":"mock-trace-)" + std::to_string(env.sequence) + R"(","correlation_id":"mock-correlation-)" +
       std::to_string(env.sequence) + R"("})";
  return json_response(status, std::move(b));
}

route_response entra_token(const route_request& r, const route_env& env, const identity_options& o) {
  if (r.method != "POST") return method_not_allowed("POST");
  if (r.body.size() > max_form_bytes)
    return entra_error(400, "invalid_request", "AADSTS90014: The request body is too large.", 90014, env);
  auto grant = form_value(r.body, "grant_type");
  if (!grant)
    return entra_error(400, "invalid_request",
                       "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900144,
                       env);
  if (*grant != "client_credentials")
    return entra_error(400, "unsupported_grant_type",
                       "AADSTS70003: The app requested an unsupported grant type '" + *grant + "'.", 70003, env);
  auto client_id = form_value(r.body, "client_id");
  if (!client_id || client_id->empty())
    return entra_error(400, "invalid_request",
                       "AADSTS900144: The request body must contain the following parameter: 'client_id'.", 900144,
                       env);
  auto secret = form_value(r.body, "client_secret");
  if (!secret)
    return entra_error(401, "invalid_client",
                       "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the "
                       "'client_credentials' grant type.",
                       7000216, env);
  if (!secure_equals(*client_id, o.entra_client_id))
    return entra_error(400, "unauthorized_client",
                       "AADSTS700016: Application with identifier '" + *client_id +
                           "' was not found in the directory 'mock-tenant'.",
                       700016, env);
  if (!secure_equals(*secret, o.entra_client_secret))
    return entra_error(401, "invalid_client",
                       "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request "
                       "is the client secret value, not the client secret ID, for a secret added to app '" +
                           o.entra_client_id + "'.",
                       7000215, env);
  auto scope = form_value(r.body, "scope");
  if (!scope || scope->empty())
    return entra_error(400, "invalid_scope",
                       "AADSTS900144: The request body must contain the following parameter: 'scope'.", 900144, env);
  if (scope->size() < 9 || scope->substr(scope->size() - 9) != "/.default")
    return entra_error(400, "invalid_scope",
                       "AADSTS1002012: The provided value for scope " + *scope +
                           " is not valid. Client credential flows must have a scope value with /.default suffixed "
                           "to the resource identifier (application ID URI).",
                       1002012, env);

  std::string token = "mock-entra-" + std::to_string(env.sequence);
  int ttl = o.entra_token_ttl_s > 0 ? o.entra_token_ttl_s : 1;
  if (env.creds) {
    // expires_in is relative: the token lives ttl seconds from now exactly (now_unix is
    // whole seconds, which would end it up to a second before the client expects).
    auto issued = env.now != credential_store::clock::time_point{} ? env.now : at(env.now_unix);
    env.creds->add_bearer(token, issued + std::chrono::seconds(ttl));
    env.creds->count_entra();
  }
  std::string b = R"({"token_type":"Bearer","expires_in":)" + std::to_string(ttl) +
                  R"(,"ext_expires_in":)" + std::to_string(ttl) + R"(,"access_token":)";
  append_json_string(b, token);
  b += '}';
  return json_response(200, std::move(b));
}

// ---- STS ---------------------------------------------------------------------------

route_response sts_error(int status, std::string_view code, std::string_view message, const route_env& env) {
  route_response r;
  r.status = status;
  r.content_type = "text/xml";
  r.body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n"
           "    <Code>" + xml_escape(code) + "</Code>\n    <Message>" + xml_escape(message) +
           "</Message>\n  </Error>\n  <RequestId>mock-request-" + std::to_string(env.sequence) +
           "</RequestId>\n</ErrorResponse>\n";
  return r;
}

bool valid_session_name(std::string_view s) {
  if (s.size() < 2 || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '=' || c == ',' || c == '.' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct issued {
  std::string akid, secret, token, expiration;
  std::int64_t expires_unix = 0;
};

/// Temporary credentials valid for `ttl_s` (0: aws_temp_ttl_s), remembered by the store
/// so the Bedrock routes (and AssumeRole, for role chaining) accept them.
issued issue_temporary(const route_env& env, const identity_options& o, std::string_view kind, int ttl_s = 0) {
  issued c;
  c.akid = "ASIAMOCK" + padded_sequence(env.sequence, 12);  // 20 characters, as real ones
  c.secret = "mock-" + std::string(kind) + "-secret-" + std::to_string(env.sequence);
  c.token = "mock-" + std::string(kind) + "-session-token-" + std::to_string(env.sequence);
  int ttl = ttl_s > 0 ? ttl_s : o.aws_temp_ttl_s > 0 ? o.aws_temp_ttl_s : 1;
  c.expiration = iso8601(env.now_unix + ttl);
  c.expires_unix = env.now_unix + ttl;
  if (env.creds) env.creds->add_aws({c.akid, c.secret, c.token, at(env.now_unix + ttl)});
  return c;
}

/// nullopt when an AssumeRole call carries a valid SigV4 signature (service "sts", any
/// region) by credentials the store knows; else STS's error for what is wrong.
std::optional<route_response> check_sts_signature(const route_request& r, const route_env& env) {
  namespace gp = gw::providers;
  auto check = verify_with_store(r, env, "sts");
  if (check.ok()) return std::nullopt;
  switch (check.failure) {
    case gp::sigv4_failure::missing_authorization:
      return sts_error(403, "MissingAuthenticationToken", "Request is missing Authentication Token", env);
    case gp::sigv4_failure::unknown_key:
    case gp::sigv4_failure::token_mismatch:
      return sts_error(403, "InvalidClientTokenId", "The security token included in the request is invalid.", env);
    case gp::sigv4_failure::malformed_authorization:
      return sts_error(403, "IncompleteSignature", check.reason, env);
    default:
      return sts_error(403, "SignatureDoesNotMatch", check.reason, env);
  }
}

bool valid_external_id(std::string_view s) {
  if (s.size() < 2 || s.size() > 1224) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '=' || c == ',' || c == '.' || c == '@' || c == ':' || c == '/' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<route_response> sts(const route_request& r, const route_env& env, const identity_options& o) {
  auto ct = r.header("content-type");
  bool form = ct.size() >= 33 && iequals(ct.substr(0, 33), "application/x-www-form-urlencoded");
  if (!form && r.body.find("Action=") == std::string_view::npos) return std::nullopt;  // not a Query API call
  if (r.body.size() > max_form_bytes) return sts_error(400, "ValidationError", "Request body too large", env);
  auto action = form_value(r.body, "Action");
  if (!action) return sts_error(400, "MissingAction", "Missing Action", env);
  bool web_identity = *action == "AssumeRoleWithWebIdentity";
  if (!web_identity && *action != "AssumeRole")
    return sts_error(400, "InvalidAction", "Could not find operation " + *action + " for version 2011-06-15", env);
  if (auto v = form_value(r.body, "Version"); v && *v != "2011-06-15")
    return sts_error(400, "InvalidAction", "Could not find operation " + *action + " for version " + *v, env);
  // AssumeRole is signed by the caller's credentials (checked before anything else, as
  // STS does); AssumeRoleWithWebIdentity is authenticated by its token alone.
  if (!web_identity)
    if (auto refused = check_sts_signature(r, env)) return refused;
  std::vector<std::string_view> required{"RoleArn", "RoleSessionName"};
  if (web_identity) required.push_back("WebIdentityToken");
  for (std::string_view p : required) {
    auto v = form_value(r.body, p);
    if (!v || v->empty())
      return sts_error(400, "MissingParameter", "The request must contain the parameter " + std::string(p), env);
  }
  auto role_arn = *form_value(r.body, "RoleArn");
  auto session = *form_value(r.body, "RoleSessionName");
  if (!valid_session_name(session))
    return sts_error(400, "ValidationError",
                     "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member "
                     "must satisfy regular expression pattern: [\\w+=,.@-]*",
                     env);
  if (role_arn.size() < 20 || role_arn.substr(0, 4) != "arn:")
    return sts_error(400, "ValidationError", "Request ARN is invalid", env);
  int ttl = 0;
  if (!web_identity) {
    if (auto id = form_value(r.body, "ExternalId"); id && !valid_external_id(*id))
      return sts_error(400, "ValidationError",
                       "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must "
                       "have length between 2 and 1224 and satisfy regular expression pattern: [\\w+=,.@:\\/-]*",
                       env);
    if (auto d = form_value(r.body, "DurationSeconds")) {
      auto n = parse_int(*d);
      if (!n || *n < 900 || *n > 43200)
        return sts_error(400, "ValidationError",
                         "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: "
                         "Member must have value between 900 and 43200",
                         env);
      ttl = static_cast<int>(*n);
    }
  }

  issued c = issue_temporary(env, o, "sts", ttl);
  if (env.creds) env.creds->count_sts();
  // The role name is the ARN's last path segment.
  std::string role_name = role_arn.substr(role_arn.rfind('/') == std::string::npos ? 0 : role_arn.rfind('/') + 1);
  std::string assumed_user =
      "    <AssumedRoleUser>\n"
      "      <Arn>arn:aws:sts::123456789012:assumed-role/" + xml_escape(role_name) + "/" + xml_escape(session) +
      "</Arn>\n"
      "      <AssumedRoleId>AROAMOCK" + padded_sequence(env.sequence, 12) + ":" + xml_escape(session) +
      "</AssumedRoleId>\n"
      "    </AssumedRoleUser>\n";
  std::string credentials =
      "    <Credentials>\n"
      "      <SessionToken>" + xml_escape(c.token) + "</SessionToken>\n"
      "      <SecretAccessKey>" + xml_escape(c.secret) + "</SecretAccessKey>\n"
      "      <Expiration>" + c.expiration + "</Expiration>\n"
      "      <AccessKeyId>" + c.akid + "</AccessKeyId>\n"
      "    </Credentials>\n";
  std::string name = web_identity ? "AssumeRoleWithWebIdentity" : "AssumeRole";
  route_response resp;
  resp.content_type = "text/xml";
  resp.body = "<" + name + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <" + name + "Result>\n";
  if (web_identity)
    resp.body +=
        "    <SubjectFromWebIdentityToken>system:serviceaccount:mock:mock</SubjectFromWebIdentityToken>\n"
        "    <Audience>sts.amazonaws.com</Audience>\n" +
        assumed_user + credentials + "    <Provider>mock-oidc</Provider>\n";
  else
    resp.body += assumed_user + credentials;
  resp.body += "  </" + name + "Result>\n  <ResponseMetadata>\n    <RequestId>mock-request-" +
               std::to_string(env.sequence) + "</RequestId>\n  </ResponseMetadata>\n</" + name + "Response>\n";
  return resp;
}

// ---- SSO portal ----------------------------------------------------------------------

route_response sso_error(int status, std::string_view type, std::string_view message) {
  std::string b = R"({"message":)";
  append_json_string(b, message);
  b += '}';
  route_response r = json_response(status, std::move(b));
  r.headers.emplace_back("x-amzn-errortype", std::string(type) + ":http://internal.amazon.com/coral/mock/");
  return r;
}

/// GetRoleCredentials: GET /federation/credentials?role_name=..&account_id=.. with the
/// access token `aws sso login` obtained in x-amz-sso_bearer_token.
route_response sso(const route_request& r, const route_env& env, const identity_options& o) {
  if (r.method != "GET") return method_not_allowed("GET");
  auto token = r.header("x-amz-sso_bearer_token");
  if (token.empty() || !secure_equals(token, o.sso_access_token))
    return sso_error(401, "UnauthorizedException", "Session token not found or invalid");
  auto role = form_value(r.query, "role_name");
  auto account = form_value(r.query, "account_id");
  if (!role || role->empty() || !account || account->empty())
    return sso_error(400, "InvalidRequestException", "role_name and account_id are required");
  bool digits = account->size() == 12 &&
                std::all_of(account->begin(), account->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) return sso_error(403, "ForbiddenException", "No access");
  issued c = issue_temporary(env, o, "sso");
  std::string b = R"({"roleCredentials":{"accessKeyId":)";
  append_json_string(b, c.akid);
  b += R"(,"secretAccessKey":)";
  append_json_string(b, c.secret);
  b += R"(,"sessionToken":)";
  append_json_string(b, c.token);
  b += R"(,"expiration":)" + std::to_string(c.expires_unix * 1000) + "}}";
  return json_response(200, std::move(b));
}

// ---- Container and instance credentials ---------------------------------------------

std::string credentials_json(const issued& c, const route_env& env, bool imds) {
  std::string b = "{";
  if (imds) {
    b += R"("Code":"Success","LastUpdated":)";
    append_json_string(b, iso8601(env.now_unix));
    b += R"(,"Type":"AWS-HMAC",)";
  }
  b += R"("AccessKeyId":)";
  append_json_string(b, c.akid);
  b += R"(,"SecretAccessKey":)";
  append_json_string(b, c.secret);
  b += R"(,"Token":)";
  append_json_string(b, c.token);
  b += R"(,"Expiration":)";
  append_json_string(b, c.expiration);
  if (!imds) b += R"(,"RoleArn":"arn:aws:iam::123456789012:role/mock-task-role","AccountId":"123456789012")";
  b += '}';
  return b;
}

route_response container(const route_request& r, const route_env& env, const identity_options& o) {
  if (r.method != "GET") return method_not_allowed("GET");
  if (!o.container_auth_token.empty() && !secure_equals(r.header("authorization"), o.container_auth_token))
    return json_response(401, R"({"code":"AccessDeniedException","message":"Authorization token is missing or invalid"})");
  issued c = issue_temporary(env, o, "container");
  if (env.creds) env.creds->count_container();
  return json_response(200, credentials_json(c, env, false));
}

bool imds_token_valid(const route_request& r, const route_env& env) {
  auto t = r.header("x-aws-ec2-metadata-token");
  if (t.empty() || !env.creds) return false;
  std::string key(imds_token_key);
  key += t;
  return env.creds->bearer_valid(key);
}

/// `path`: the request path below the service root ("/latest/..."). `v1`: tokens are
/// refused (403) and reads need none.
std::optional<route_response> imds(const route_request& r, std::string_view path, const route_env& env,
                                   const identity_options& o, bool v1) {
  constexpr std::string_view creds_prefix = "/latest/meta-data/iam/security-credentials";
  if (path == "/latest/api/token") {
    if (r.method != "PUT") return method_not_allowed("PUT");
    if (v1) return text_response(403, "Forbidden");
    // Real IMDS refuses token requests that went through a proxy.
    if (!r.header("x-forwarded-for").empty()) return text_response(403, "Forbidden");
    auto ttl = parse_int(trim(r.header("x-aws-ec2-metadata-token-ttl-seconds")));
    if (!ttl || *ttl < 1 || *ttl > 21600) return text_response(400, "Bad Request");
    std::string token = "mock-imds-token-" + std::to_string(env.sequence);
    if (env.creds) env.creds->add_bearer(std::string(imds_token_key) + token, at(env.now_unix + *ttl));
    route_response resp = text_response(200, token);
    resp.headers.emplace_back("x-aws-ec2-metadata-token-ttl-seconds", std::to_string(*ttl));
    return resp;
  }
  if (path.substr(0, creds_prefix.size()) != creds_prefix) return std::nullopt;
  std::string_view rest = path.substr(creds_prefix.size());
  if (!rest.empty() && rest.front() != '/') return std::nullopt;
  if (r.method != "GET") return method_not_allowed("GET");
  // Unless in v1 mode, IMDSv1 is "disabled" on this fake instance: every read needs a
  // session token.
  if (!v1 && !imds_token_valid(r, env)) return text_response(401, "Unauthorized");
  if (rest.empty() || rest == "/") return text_response(200, "mock-role");
  if (rest != "/mock-role") return text_response(404, "Not Found");
  issued c = issue_temporary(env, o, "imds");
  if (env.creds) env.creds->count_imds();
  return json_response(200, credentials_json(c, env, true));
}

/// "/{tenant}/oauth2/v2.0/token" with a single non-empty tenant segment.
bool is_entra_token_path(std::string_view path) {
  constexpr std::string_view suffix = "/oauth2/v2.0/token";
  if (path.size() <= suffix.size() + 1 || path.front() != '/') return false;
  if (path.substr(path.size() - suffix.size()) != suffix) return false;
  std::string_view tenant = path.substr(1, path.size() - suffix.size() - 1);
  return !tenant.empty() && tenant.find('/') == std::string_view::npos;
}

}  // namespace

std::optional<route_response> identity_route(const route_request& r, const route_env& env,
                                             const identity_options& o) {
  if (is_entra_token_path(r.path)) return entra_token(r, env, o);
  if (r.path == "/" && r.method == "POST") return sts(r, env, o);
  if (r.path.substr(0, 17) == "/_creds/container") return container(r, env, o);
  if (r.path == "/federation/credentials" || r.path == "/_creds/sso/federation/credentials") return sso(r, env, o);
  constexpr std::string_view v1_root = "/_creds/imds-v1";
  if (r.path.substr(0, v1_root.size() + 8) == std::string(v1_root) + "/latest/")
    return imds(r, r.path.substr(v1_root.size()), env, o, true);
  if (r.path.substr(0, 8) == "/latest/") return imds(r, r.path, env, o, o.imds_v1_only);
  return std::nullopt;
}

}  // namespace gw::mock
