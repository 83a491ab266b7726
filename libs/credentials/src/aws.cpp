#include "gw/credentials/aws.hpp"

#include <unistd.h>

#include <simdjson.h>

#include <boost/asio/ip/address.hpp>
#include <mutex>
#include <vector>

#include "gw/core/strings.hpp"
#include "gw/credentials/parse.hpp"
#include "gw/http/upstream.hpp"
#include "refresher.hpp"
#include "util.hpp"

namespace gw::credentials {

using providers::aws_credentials;

namespace detail {
namespace {

constexpr std::size_t max_shared_file = 1024 * 1024;  // ~/.aws files
constexpr std::size_t max_token_file = 64 * 1024;     // web identity / container tokens
constexpr std::size_t max_identity_body = 64 * 1024;  // STS, container, IMDS responses

enum class aws_kind { explicit_keys, explicit_profile, environment, web_identity, default_profile, container, imds };

constexpr aws_kind chain_order[] = {aws_kind::explicit_keys, aws_kind::explicit_profile, aws_kind::environment,
                                    aws_kind::web_identity,  aws_kind::default_profile,  aws_kind::container,
                                    aws_kind::imds};

/// One source's answer. `absent`: not configured (or, for IMDS, not reachable): the
/// chain moves on and `note` says why. `failed`: configured but broken: the chain
/// stops with `note` as the error.
struct step_result {
  enum state_t { found, absent, failed } state = absent;
  std::shared_ptr<const aws_credentials> creds;
  std::string note;
  std::string source;

  static step_result ok(aws_credentials c, std::string source) {
    step_result r;
    r.state = found;
    r.creds = std::make_shared<const aws_credentials>(std::move(c));
    r.source = std::move(source);
    return r;
  }
  static step_result none(std::string why) {
    step_result r;
    r.state = absent;
    r.note = std::move(why);
    return r;
  }
  static step_result error(std::string why) {
    step_result r;
    r.state = failed;
    r.note = std::move(why);
    return r;
  }
};
using step_done = std::function<void(step_result)>;

/// {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]} as container and instance
/// metadata services return them.
bool parse_json_credentials(std::string_view body, aws_credentials& out, std::string& err) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(obj)) {
    err = "response is not a JSON object";
    return false;
  }
  std::string code, expiration;
  bool has_expiration = false;
  for (auto field : obj) {
    std::string_view key, value;
    if (field.error() || field.unescaped_key().get(key)) {
      err = "malformed JSON";
      return false;
    }
    auto v = field.value();
    bool wanted = key == "AccessKeyId" || key == "SecretAccessKey" || key == "Token" || key == "Expiration" ||
                  key == "Code" || key == "Message";
    if (!wanted) continue;  // unconsumed values are skipped by the iterator
    if (v.get_string().get(value)) {
      err = "field " + std::string(key) + " is not a string";
      return false;
    }
    if (key == "AccessKeyId") out.access_key_id.assign(value);
    else if (key == "SecretAccessKey") out.secret_access_key.assign(value);
    else if (key == "Token") out.session_token.assign(value);
    else if (key == "Code") code.assign(value);
    else if (key == "Expiration") {
      expiration.assign(value);
      has_expiration = true;
    }
  }
  if (!code.empty() && code != "Success") {
    err = "Code is " + sanitize_remote(code, 80);
    return false;
  }
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    err = "response lacks AccessKeyId or SecretAccessKey";
    return false;
  }
  if (!header_safe(out.access_key_id) || !header_safe(out.secret_access_key) ||
      (!out.session_token.empty() && !header_safe(out.session_token))) {
    err = "credentials contain invalid characters";
    return false;
  }
  if (!has_expiration) {
    // Temporary credentials always carry one; refusing beats caching them forever.
    err = "response lacks Expiration";
    return false;
  }
  auto t = parse_iso8601(expiration);
  if (!t) {
    err = "Expiration is not an ISO 8601 time";
    return false;
  }
  out.expiration = *t;
  return true;
}

/// Allowed hosts for an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI (the AWS SDKs' rule:
/// credentials must not travel in clear text off the host or the task network).
bool container_host_allowed(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) return false;
  if (addr.is_loopback()) return true;
  if (addr.is_v4()) {
    auto s = addr.to_string();
    return s == "169.254.170.2" || s == "169.254.170.23";
  }
  return addr == boost::asio::ip::make_address("fd00:ec2::23", ec);
}

bool valid_region(std::string_view r) {
  if (r.empty() || r.size() > 40) return false;
  for (char c : r)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool valid_role_name(std::string_view r) {
  if (r.empty() || r.size() > 128) return false;
  for (char c : r) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '=' || c == ',' || c == '.' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace

struct aws_state : std::enable_shared_from_this<aws_state> {
  aws_state(aws_source_config c, asio::io_context& i) : cfg(std::move(c)), io(i) {}

  aws_source_config cfg;
  asio::io_context& io;
  std::mutex mu;
  std::optional<aws_kind> winner;  // guarded by mu

  using completion = refresher<aws_credentials>::completion;
  using outcome = refresher<aws_credentials>::outcome;

  void resolve(completion done) {
    std::optional<aws_kind> w;
    {
      std::lock_guard lock(mu);
      w = winner;
    }
    if (w) {
      // The winner is asked again (refresh); it no longer being configured is an error.
      return run_step(*w, [done](step_result r) {
        if (r.state == step_result::found) return done(outcome{r.creds, {}, r.source});
        done(outcome{nullptr, "AWS credentials: " + r.note, {}});
      });
    }
    chain_from(0, std::make_shared<std::vector<std::string>>(), std::move(done));
  }

  void chain_from(std::size_t i, std::shared_ptr<std::vector<std::string>> tried, completion done) {
    if (i == std::size(chain_order))
      return done(outcome{nullptr, "no AWS credentials found; tried: " + join(*tried, "; "), {}});
    aws_kind k = chain_order[i];
    run_step(k, [self = shared_from_this(), i, k, tried, done](step_result r) mutable {
      switch (r.state) {
        case step_result::found: {
          std::lock_guard lock(self->mu);
          self->winner = k;
        }
          return done(outcome{r.creds, {}, r.source});
        case step_result::failed:
          return done(outcome{nullptr, "AWS credentials: " + r.note, {}});
        case step_result::absent:
          tried->push_back(std::move(r.note));
          return self->chain_from(i + 1, std::move(tried), std::move(done));
      }
    });
  }

  void run_step(aws_kind k, step_done done) {
    switch (k) {
      case aws_kind::explicit_keys: return done(explicit_keys());
      case aws_kind::explicit_profile:
        if (cfg.profile.empty()) return done(step_result::none("explicit profile (not set)"));
        return load_profile(cfg.profile, true, std::move(done));
      case aws_kind::environment: return done(environment_keys());
      case aws_kind::web_identity: return web_identity_env(std::move(done));
      case aws_kind::default_profile: {
        std::string p = cfg.env.value("AWS_PROFILE");
        if (p.empty()) p = cfg.env.value("AWS_DEFAULT_PROFILE");
        bool required = !p.empty();  // a named profile that does not exist is an error
        if (p.empty()) p = "default";
        return load_profile(p, required, std::move(done));
      }
      case aws_kind::container: return container(std::move(done));
      case aws_kind::imds: return imds(std::move(done));
    }
  }

  // ---- static sources --------------------------------------------------------------

  step_result explicit_keys() const {
    if (cfg.access_key_id.empty() && cfg.secret_access_key.empty())
      return step_result::none("explicit parameters (not set)");
    if (cfg.access_key_id.empty() || cfg.secret_access_key.empty())
      return step_result::error("explicit parameters are incomplete: aws_access_key_id and aws_secret_access_key "
                                "are both needed");
    aws_credentials c{cfg.access_key_id, cfg.secret_access_key, cfg.session_token};
    return step_result::ok(std::move(c), "explicit");
  }

  step_result environment_keys() const {
    std::string id = cfg.env.value("AWS_ACCESS_KEY_ID");
    std::string secret = cfg.env.value("AWS_SECRET_ACCESS_KEY");
    if (id.empty() && secret.empty()) return step_result::none("environment (AWS_ACCESS_KEY_ID not set)");
    if (id.empty() || secret.empty())
      return step_result::error("environment has only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    aws_credentials c{id, secret, cfg.env.value("AWS_SESSION_TOKEN")};
    if (c.session_token.empty()) c.session_token = cfg.env.value("AWS_SECURITY_TOKEN");
    if (auto exp = cfg.env.value("AWS_CREDENTIAL_EXPIRATION"); !exp.empty()) {
      auto t = parse_iso8601(exp);
      if (!t) return step_result::error("AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time");
      c.expiration = *t;
    }
    return step_result::ok(std::move(c), "environment");
  }

  std::string expand_home(std::string p) const {
    if (p.size() >= 2 && p[0] == '~' && p[1] == '/' && !cfg.env.home().empty()) return cfg.env.home() + p.substr(1);
    return p;
  }

  std::string shared_path(std::string_view var, std::string_view file) const {
    std::string p = cfg.env.value(var);
    if (!p.empty()) return expand_home(std::move(p));
    if (cfg.env.home().empty()) return {};
    return cfg.env.home() + "/.aws/" + std::string(file);
  }

  std::string session_name(std::string_view from_profile) const {
    if (!cfg.role_session_name.empty()) return cfg.role_session_name;
    if (auto s = cfg.env.value("AWS_ROLE_SESSION_NAME"); !s.empty()) return s;
    if (!from_profile.empty()) return std::string(from_profile);
    return "llm-gateway-" + std::to_string(::getpid());
  }

  /// Profile `name` from the shared credentials file, then the config file.
  void load_profile(const std::string& name, bool required, step_done done) {
    std::string what = "profile '" + name + "'";
    std::vector<std::string> notes;
    auto read = [&](const std::string& path, ini_file& out) -> bool {
      if (path.empty()) {
        notes.push_back("no home directory");
        return false;
      }
      std::string text, err;
      if (!read_small_file(path, max_shared_file, text, err)) {
        notes.push_back(path + " (" + err + ")");
        return false;
      }
      out = parse_ini(text);
      return true;
    };
    auto keys_of = [&](const ini_section& s, std::string_view source,
                       const std::string& path) -> std::optional<step_result> {
      auto get = [&](std::string_view k) -> std::string {
        auto it = s.find(k);
        return it == s.end() ? std::string() : it->second;
      };
      std::string id = get("aws_access_key_id"), secret = get("aws_secret_access_key");
      if (id.empty() && secret.empty()) return std::nullopt;
      if (id.empty() || secret.empty())
        return step_result::error(what + " in " + path +
                                  " has only one of aws_access_key_id and aws_secret_access_key");
      aws_credentials c{id, secret, get("aws_session_token")};
      if (c.session_token.empty()) c.session_token = get("aws_security_token");
      return step_result::ok(std::move(c), std::string(source) + ":" + name);
    };

    std::string cred_path = shared_path("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    ini_file creds_file;
    if (read(cred_path, creds_file)) {
      if (auto it = creds_file.find(name); it != creds_file.end()) {
        if (auto r = keys_of(it->second, "shared_credentials_file", cred_path)) return done(std::move(*r));
        notes.push_back(cred_path + " (" + what + " has no keys)");
      } else {
        notes.push_back(cred_path + " (no " + what + ")");
      }
    }
    std::string cfg_path = shared_path("AWS_CONFIG_FILE", "config");
    ini_file config_file;
    if (read(cfg_path, config_file)) {
      if (const ini_section* s = config_profile(config_file, name)) {
        if (auto r = keys_of(*s, "config_file", cfg_path)) return done(std::move(*r));
        auto get = [&](std::string_view k) -> std::string {
          auto it = s->find(k);
          return it == s->end() ? std::string() : it->second;
        };
        std::string role = get("role_arn"), token_file = get("web_identity_token_file");
        if (!role.empty() && !token_file.empty())
          return assume_role_with_web_identity(role, expand_home(token_file), session_name(get("role_session_name")),
                                               "web_identity:" + name, std::move(done));
        std::string unsupported;
        if (!role.empty())
          unsupported = "role_arn with source_profile or credential_source";
        else if (!get("credential_process").empty())
          unsupported = "credential_process";
        else if (!get("sso_session").empty() || !get("sso_start_url").empty())
          unsupported = "SSO";
        if (!unsupported.empty()) {
          std::string msg = what + " in " + cfg_path + " uses " + unsupported + ", which is not supported";
          if (required) return done(step_result::error(msg));
          notes.push_back(msg);
        } else {
          notes.push_back(cfg_path + " (" + what + " has no keys)");
        }
      } else {
        notes.push_back(cfg_path + " (no " + what + ")");
      }
    }
    if (required) return done(step_result::error(what + " not usable: " + join(notes, ", ")));
    done(step_result::none("shared files: " + join(notes, ", ")));
  }

  // ---- STS web identity ------------------------------------------------------------

  void web_identity_env(step_done done) {
    std::string token_file = cfg.env.value("AWS_WEB_IDENTITY_TOKEN_FILE");
    std::string role = cfg.env.value("AWS_ROLE_ARN");
    if (token_file.empty())
      return done(step_result::none("web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)"));
    if (role.empty())
      return done(step_result::error("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"));
    assume_role_with_web_identity(role, expand_home(token_file), session_name({}), "web_identity", std::move(done));
  }

  std::string sts_url() const {
    if (!cfg.sts_endpoint.empty()) return cfg.sts_endpoint;
    if (auto e = cfg.env.value("AWS_ENDPOINT_URL_STS"); !e.empty()) return e;
    std::string region = cfg.region;
    if (region.empty()) region = cfg.env.value("AWS_REGION");
    if (region.empty()) region = cfg.env.value("AWS_DEFAULT_REGION");
    if (region.empty() || !valid_region(region)) return "https://sts.amazonaws.com/";
    bool china = region.rfind("cn-", 0) == 0;
    return "https://sts." + region + (china ? ".amazonaws.com.cn/" : ".amazonaws.com/");
  }

  void assume_role_with_web_identity(const std::string& role_arn, const std::string& token_file,
                                     const std::string& session, std::string source, step_done done) {
    // Read again at every call: the platform rotates the file (EKS: hourly).
    std::string token, err;
    if (!read_small_file(token_file, max_token_file, token, err))
      return done(step_result::error("web identity token file " + token_file + ": " + err));
    token = std::string(trim(token));
    if (token.empty()) return done(step_result::error("web identity token file " + token_file + " is empty"));

    fetch_request req;
    req.method = "POST";
    req.url = sts_url();
    req.timeout = cfg.sts_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}, {"accept", "text/xml"}};
    req.body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(role_arn) +
               "&RoleSessionName=" + form_encode(session) + "&WebIdentityToken=" + form_encode(token);
    std::string where = "STS AssumeRoleWithWebIdentity at " + url_origin(req.url);
    fetch(io, std::move(req), [where, source = std::move(source), done = std::move(done)](fetch_result r) {
      if (!r.error.empty()) return done(step_result::error(where + ": " + r.error));
      if (r.status != 200) {
        std::string code = sanitize_remote(xml_tag(r.body, "Code").value_or(""), 100);
        std::string msg = sanitize_remote(xml_tag(r.body, "Message").value_or(""));
        std::string e = where + ": HTTP " + std::to_string(r.status);
        if (!code.empty()) e += " " + code;
        if (!msg.empty()) e += ": " + msg;
        return done(step_result::error(e));
      }
      aws_credentials c;
      c.access_key_id = xml_tag(r.body, "AccessKeyId").value_or("");
      c.secret_access_key = xml_tag(r.body, "SecretAccessKey").value_or("");
      c.session_token = xml_tag(r.body, "SessionToken").value_or("");
      auto exp = parse_iso8601(xml_tag(r.body, "Expiration").value_or(""));
      if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty() || !exp)
        return done(step_result::error(where + ": response lacks Credentials"));
      if (!header_safe(c.access_key_id) || !header_safe(c.secret_access_key) || !header_safe(c.session_token))
        return done(step_result::error(where + ": credentials contain invalid characters"));
      c.expiration = *exp;
      done(step_result::ok(std::move(c), source));
    });
  }

  // ---- container credentials -------------------------------------------------------

  void container(step_done done) {
    std::string rel = cfg.env.value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    std::string full = cfg.env.value("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    std::string url;
    if (!rel.empty()) {
      if (rel.front() != '/') return done(step_result::error("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /"));
      url = "http://169.254.170.2" + rel;
    } else if (!full.empty()) {
      http::endpoint ep;
      std::string err;
      if (!http::parse_url(full, ep, err))
        return done(step_result::error("AWS_CONTAINER_CREDENTIALS_FULL_URI: " + err));
      if (!ep.tls && !container_host_allowed(ep.host))
        return done(step_result::error("AWS_CONTAINER_CREDENTIALS_FULL_URI host " + ep.host +
                                       " is not allowed (http only to loopback, 169.254.170.2, 169.254.170.23, "
                                       "fd00:ec2::23; use https otherwise)"));
      url = full;
    } else {
      return done(step_result::none("container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI not set)"));
    }
    std::string auth;
    if (auto file = cfg.env.value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !file.empty()) {
      std::string err;
      // Read again at every call: EKS Pod Identity rotates the token file.
      if (!read_small_file(expand_home(file), max_token_file, auth, err))
        return done(step_result::error("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + file + ": " + err));
      auth = std::string(trim(auth));
    } else {
      auth = cfg.env.value("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    }
    if (!auth.empty() && !header_safe(auth))
      return done(step_result::error("container authorization token contains invalid characters"));
    fetch_request req;
    req.url = url;
    req.timeout = cfg.container_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"accept", "application/json"}};
    if (!auth.empty()) req.headers.emplace_back("authorization", auth);
    container_attempt(std::move(req), std::max(1, cfg.container_attempts), std::move(done));
  }

  void container_attempt(fetch_request req, int left, step_done done) {
    std::string where = "container credentials at " + url_origin(req.url);
    fetch_request copy = req;
    fetch(io, std::move(copy),
          [self = shared_from_this(), req = std::move(req), left, where, done = std::move(done)](fetch_result r) mutable {
            bool retry = !r.error.empty() || r.status >= 500;
            if (retry && left > 1) return self->container_attempt(std::move(req), left - 1, std::move(done));
            if (!r.error.empty()) return done(step_result::error(where + ": " + r.error));
            if (r.status != 200) {
              std::string e = where + ": HTTP " + std::to_string(r.status);
              // ECS/EKS agents answer errors as {"code": ..., "message": ...}.
              simdjson::ondemand::parser p;
              simdjson::padded_string padded(r.body);
              simdjson::ondemand::document doc;
              std::string_view msg;
              if (!p.iterate(padded).get(doc) && !doc["message"].get_string().get(msg))
                e += ": " + sanitize_remote(msg);
              return done(step_result::error(e));
            }
            aws_credentials c;
            std::string err;
            if (!parse_json_credentials(r.body, c, err)) return done(step_result::error(where + ": " + err));
            done(step_result::ok(std::move(c), "container"));
          });
  }

  // ---- EC2 instance metadata (IMDSv2) ----------------------------------------------

  void imds(step_done done) {
    if (iequals(cfg.env.value("AWS_EC2_METADATA_DISABLED"), "true"))
      return done(step_result::none("EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"));
    std::string base = cfg.env.value("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (base.empty())
      base = iequals(cfg.env.value("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"), "ipv6") ? "http://[fd00:ec2::254]"
                                                                                      : "http://169.254.169.254";
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::string where = "EC2 instance metadata at " + url_origin(base);
    fetch_request req;
    req.method = "PUT";
    req.url = base + "/latest/api/token";
    req.timeout = cfg.imds_timeout;
    req.max_body_bytes = 4096;
    req.headers = {{"x-aws-ec2-metadata-token-ttl-seconds", "21600"}};
    // Every IMDS failure is "absent": not being on EC2 is the normal case off EC2.
    fetch(io, std::move(req), [self = shared_from_this(), base, where, done = std::move(done)](fetch_result r) mutable {
      if (!r.error.empty()) return done(step_result::none(where + " (" + r.error + ")"));
      if (r.status != 200)
        return done(step_result::none(where + " (token request: HTTP " + std::to_string(r.status) + ")"));
      std::string token(trim(r.body));
      if (!header_safe(token)) return done(step_result::none(where + " (invalid session token)"));
      self->imds_role(base, token, where, std::move(done));
    });
  }

  void imds_role(const std::string& base, const std::string& token, const std::string& where, step_done done) {
    fetch_request req;
    req.url = base + "/latest/meta-data/iam/security-credentials/";
    req.timeout = cfg.imds_timeout;
    req.max_body_bytes = 4096;
    req.headers = {{"x-aws-ec2-metadata-token", token}};
    fetch(io, std::move(req),
          [self = shared_from_this(), base, token, where, done = std::move(done)](fetch_result r) mutable {
            if (!r.error.empty()) return done(step_result::none(where + " (" + r.error + ")"));
            if (r.status == 404) return done(step_result::none(where + " (no IAM role attached to the instance)"));
            if (r.status != 200)
              return done(step_result::none(where + " (role request: HTTP " + std::to_string(r.status) + ")"));
            std::string_view body = r.body;
            std::string role(trim(body.substr(0, body.find('\n'))));
            if (!valid_role_name(role)) return done(step_result::none(where + " (invalid role name)"));
            self->imds_credentials(base, token, role, where, std::move(done));
          });
  }

  void imds_credentials(const std::string& base, const std::string& token, const std::string& role,
                        const std::string& where, step_done done) {
    fetch_request req;
    req.url = base + "/latest/meta-data/iam/security-credentials/" + role;
    req.timeout = cfg.imds_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"x-aws-ec2-metadata-token", token}};
    fetch(io, std::move(req), [where, done = std::move(done)](fetch_result r) {
      if (!r.error.empty()) return done(step_result::none(where + " (" + r.error + ")"));
      if (r.status != 200)
        return done(step_result::none(where + " (credentials request: HTTP " + std::to_string(r.status) + ")"));
      aws_credentials c;
      std::string err;
      if (!parse_json_credentials(r.body, c, err)) return done(step_result::none(where + " (" + err + ")"));
      done(step_result::ok(std::move(c), "imds"));
    });
  }
};

}  // namespace detail

aws_source_config aws_source_config::from_params(const std::map<std::string, std::string>& params, environment env) {
  aws_source_config c;
  c.env = std::move(env);
  auto get = [&](const char* k) -> std::string {
    auto it = params.find(k);
    return it == params.end() ? std::string() : std::string(trim(it->second));
  };
  c.access_key_id = get("aws_access_key_id");
  c.secret_access_key = get("aws_secret_access_key");
  c.session_token = get("aws_session_token");
  c.profile = get("aws_profile_name");
  c.region = get("aws_region_name");
  c.sts_endpoint = get("aws_sts_endpoint");
  c.role_session_name = get("aws_session_name");
  return c;
}

std::shared_ptr<aws_credentials_provider> aws_credentials_provider::create(aws_source_config cfg,
                                                                           asio::io_context& io) {
  std::shared_ptr<aws_credentials_provider> p(new aws_credentials_provider());
  auto policy = cfg.refresh;
  p->state_ = std::make_shared<detail::aws_state>(std::move(cfg), io);
  // The engine holds the state, the state never holds the engine: no cycle.
  p->engine_ = std::make_shared<detail::refresher<aws_credentials>>(
      io, "AWS credentials", policy, [state = p->state_](bool, detail::refresher<aws_credentials>::completion done) {
        state->resolve(std::move(done));
      });
  return p;
}

aws_credentials_provider::~aws_credentials_provider() { stop(); }

std::optional<aws_credentials> aws_credentials_provider::current() const {
  if (auto p = engine_->current()) return *p;
  return std::nullopt;
}

std::shared_ptr<const aws_credentials> aws_credentials_provider::current_ptr() const { return engine_->current(); }

void aws_credentials_provider::get(callback cb) {
  engine_->get([cb = std::move(cb)](std::shared_ptr<const aws_credentials> c, std::string err) {
    if (c)
      cb(*c, {});
    else
      cb(std::nullopt, std::move(err));
  });
}

std::string aws_credentials_provider::source() const { return engine_->source(); }
provider_stats aws_credentials_provider::stats() const { return engine_->stats(); }
void aws_credentials_provider::stop() {
  if (engine_) engine_->stop();
}

}  // namespace gw::credentials
