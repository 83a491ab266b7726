#include "gw/credentials/aws.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <mutex>
#include <vector>

#include "gw/core/strings.hpp"
#include "gw/credentials/parse.hpp"
#include "gw/http/client.hpp"
#include "gw/http/upstream.hpp"
#include "gw/providers/sigv4.hpp"
#include "process.hpp"
#include "refresher.hpp"
#include "util.hpp"

namespace gw::credentials {

using http::fetch;
using http::fetch_request;
using http::fetch_result;
using http::url_origin;
using http::url_request_target;
using providers::aws_credentials;

namespace detail {
namespace {

constexpr std::size_t max_shared_file = 1024 * 1024;  // ~/.aws files
constexpr std::size_t max_token_file = 64 * 1024;     // web identity / container tokens
constexpr std::size_t max_identity_body = 64 * 1024;  // STS, container, IMDS, SSO responses
constexpr std::size_t max_process_output = 64 * 1024;  // credential_process stdout
/// Roles assumed one after the other through source_profile, at most (the SDKs only
/// detect cycles; a cap keeps a long chain from turning every refresh into N calls).
constexpr std::size_t max_role_chain = 5;

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

/// Lower-case hex SHA-1: the AWS CLI names SSO token cache files after the SHA-1 of the
/// session name (or, for legacy profiles, of the start URL).
std::string sha1_hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), md, &n, EVP_sha1(), nullptr) != 1) return {};
  return providers::hex_encode(std::string_view(reinterpret_cast<const char*>(md), n));
}

/// credential_process output: {"Version": 1, "AccessKeyId", "SecretAccessKey",
/// "SessionToken"?, "Expiration"?}. Without Expiration the keys never expire.
bool parse_process_output(std::string_view body, aws_credentials& out, std::string& err) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser.parse(body.data(), body.size()).get(doc) || doc.get_object().get(obj)) {
    err = "output is not a JSON object";
    return false;
  }
  simdjson::dom::element version;
  if (obj.at_key("Version").get(version)) {
    err = "output lacks Version (must be 1)";
    return false;
  }
  std::int64_t v = 0;
  if (version.get_int64().get(v) || v != 1) {
    std::string shown = version.is_int64() ? std::to_string(v) : std::string("a non-integer");
    err = "output has Version " + shown + ", only Version 1 is supported";
    return false;
  }
  auto text = [&](const char* key, std::string& to, bool required) -> bool {
    simdjson::dom::element e;
    if (obj.at_key(key).get(e) || e.is_null()) {
      if (required) err = std::string("output lacks ") + key;
      return !required;
    }
    std::string_view sv;
    if (e.get_string().get(sv)) {
      err = std::string("output field ") + key + " is not a string";
      return false;
    }
    to.assign(sv);
    return true;
  };
  std::string expiration;
  if (!text("AccessKeyId", out.access_key_id, true) || !text("SecretAccessKey", out.secret_access_key, true) ||
      !text("SessionToken", out.session_token, false) || !text("Expiration", expiration, false))
    return false;
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    err = "output has an empty AccessKeyId or SecretAccessKey";
    return false;
  }
  if (!header_safe(out.access_key_id) || !header_safe(out.secret_access_key) ||
      (!out.session_token.empty() && !header_safe(out.session_token))) {
    err = "output credentials contain invalid characters";
    return false;
  }
  if (!expiration.empty()) {
    auto t = parse_iso8601(expiration);
    if (!t) {
      err = "output Expiration is not an ISO 8601 time";
      return false;
    }
    out.expiration = *t;
  }
  return true;
}

/// An AWS CLI SSO token cache entry: {"accessToken", "expiresAt", ...}. expiresAt is
/// ISO 8601; old CLI versions wrote "...UTC" instead of "...Z".
bool parse_sso_cache(std::string_view body, std::string& token, std::chrono::system_clock::time_point& expires,
                     std::string& err) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view tok, exp;
  if (parser.parse(body.data(), body.size()).get(doc) || !doc.is_object()) {
    err = "not a JSON object";
    return false;
  }
  if (doc["accessToken"].get_string().get(tok) || tok.empty()) {
    err = "no accessToken";
    return false;
  }
  if (doc["expiresAt"].get_string().get(exp)) {
    err = "no expiresAt";
    return false;
  }
  std::string e(trim(exp));
  if (e.size() > 3 && e.compare(e.size() - 3, 3, "UTC") == 0) e.replace(e.size() - 3, 3, "Z");
  auto t = parse_iso8601(e);
  if (!t) {
    err = "expiresAt is not an ISO 8601 time";
    return false;
  }
  token.assign(tok);
  expires = *t;
  return true;
}

/// The SSO portal's GetRoleCredentials answer: {"roleCredentials": {"accessKeyId",
/// "secretAccessKey", "sessionToken", "expiration" (Unix milliseconds)}}.
bool parse_sso_role_credentials(std::string_view body, aws_credentials& out, std::string& err) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object rc;
  if (parser.parse(body.data(), body.size()).get(doc) || doc["roleCredentials"].get_object().get(rc)) {
    err = "response lacks roleCredentials";
    return false;
  }
  std::string_view id, secret, token;
  std::int64_t ms = 0;
  if (rc["accessKeyId"].get_string().get(id) || rc["secretAccessKey"].get_string().get(secret) ||
      rc["sessionToken"].get_string().get(token) || rc["expiration"].get_int64().get(ms) || id.empty() ||
      secret.empty() || token.empty() || ms <= 0) {
    err = "response lacks accessKeyId, secretAccessKey, sessionToken or expiration";
    return false;
  }
  if (!header_safe(id) || !header_safe(secret) || !header_safe(token)) {
    err = "credentials contain invalid characters";
    return false;
  }
  // Beyond system_clock's nanosecond range (year 2262) is nonsense anyway.
  if (ms > std::int64_t(9000000000000)) {
    err = "expiration is out of range";
    return false;
  }
  out.access_key_id.assign(id);
  out.secret_access_key.assign(secret);
  out.session_token.assign(token);
  out.expiration = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
  return true;
}

/// STS's answer to AssumeRole and AssumeRoleWithWebIdentity (XML, or an XML error).
step_result sts_credentials(const std::string& where, const fetch_result& r, const std::string& source) {
  if (!r.error.empty()) return step_result::error(where + ": " + r.error);
  if (r.status != 200) {
    std::string code = sanitize_remote(xml_tag(r.body, "Code").value_or(""), 100);
    std::string msg = sanitize_remote(xml_tag(r.body, "Message").value_or(""));
    std::string e = where + ": HTTP " + std::to_string(r.status);
    if (!code.empty()) e += " " + code;
    if (!msg.empty()) e += ": " + msg;
    return step_result::error(e);
  }
  aws_credentials c;
  c.access_key_id = xml_tag(r.body, "AccessKeyId").value_or("");
  c.secret_access_key = xml_tag(r.body, "SecretAccessKey").value_or("");
  c.session_token = xml_tag(r.body, "SessionToken").value_or("");
  auto exp = parse_iso8601(xml_tag(r.body, "Expiration").value_or(""));
  if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty() || !exp)
    return step_result::error(where + ": response lacks Credentials");
  if (!header_safe(c.access_key_id) || !header_safe(c.secret_access_key) || !header_safe(c.session_token))
    return step_result::error(where + ": credentials contain invalid characters");
  c.expiration = *exp;
  return step_result::ok(std::move(c), source);
}

/// Both shared files, read once per resolution (a role chain looks at several profiles).
struct shared_files {
  std::string cred_path, cfg_path;
  ini_file creds, config;
  bool creds_read = false, config_read = false;
  std::vector<std::string> notes;  // files that could not be read, and why
};

/// One profile as the SDKs see it: the config file's section with the credentials
/// file's on top (botocore merges them so; either file may hold any setting).
struct profile_view {
  std::string name;
  std::shared_ptr<const shared_files> files;
  const ini_section* creds = nullptr;   // its section in the credentials file
  const ini_section* config = nullptr;  // in the config file

  bool exists() const { return creds || config; }
  std::string get(std::string_view k) const {
    for (const ini_section* s : {creds, config})
      if (s)
        if (auto it = s->find(k); it != s->end() && !it->second.empty()) return it->second;
    return {};
  }
  /// The file get(k) took its value from (for messages).
  const std::string& where(std::string_view k) const {
    if (creds)
      if (auto it = creds->find(k); it != creds->end() && !it->second.empty()) return files->cred_path;
    return config ? files->cfg_path : files->cred_path;
  }
};

/// What an AssumeRole call needs, gathered from the profile before any I/O.
struct assume_params {
  std::string role_arn, session, external_id, duration, region;
  std::string source;  ///< the provider's source() on success
  std::string what;    ///< "profile 'x' in /path/config", for messages
};

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

  // ---- shared files and profiles --------------------------------------------------

  std::shared_ptr<const shared_files> read_shared_files() const {
    auto f = std::make_shared<shared_files>();
    auto read = [&](const std::string& path, ini_file& out) -> bool {
      if (path.empty()) {
        f->notes.push_back("no home directory");
        return false;
      }
      std::string text, err;
      if (!read_small_file(path, max_shared_file, text, err)) {
        f->notes.push_back(path + " (" + err + ")");
        return false;
      }
      out = parse_ini(text);
      return true;
    };
    f->cred_path = shared_path("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    f->creds_read = read(f->cred_path, f->creds);
    f->cfg_path = shared_path("AWS_CONFIG_FILE", "config");
    f->config_read = read(f->cfg_path, f->config);
    return f;
  }

  static profile_view view_of(const std::shared_ptr<const shared_files>& f, const std::string& name) {
    profile_view v;
    v.name = name;
    v.files = f;
    if (f->creds_read)
      if (auto it = f->creds.find(name); it != f->creds.end()) v.creds = &it->second;
    if (f->config_read) v.config = config_profile(f->config, name);
    return v;
  }

  /// Static keys in one file's section of a profile; nullopt when it has none.
  static std::optional<step_result> static_keys(const ini_section* s, const std::string& what, const std::string& path,
                                                std::string source) {
    if (!s) return std::nullopt;
    auto get = [&](std::string_view k) -> std::string {
      auto it = s->find(k);
      return it == s->end() ? std::string() : it->second;
    };
    std::string id = get("aws_access_key_id"), secret = get("aws_secret_access_key");
    if (id.empty() && secret.empty()) return std::nullopt;
    if (id.empty() || secret.empty())
      return step_result::error(what + " in " + path + " has only one of aws_access_key_id and aws_secret_access_key");
    aws_credentials c{id, secret, get("aws_session_token")};
    if (c.session_token.empty()) c.session_token = get("aws_security_token");
    return step_result::ok(std::move(c), std::move(source));
  }

  static bool uses_sso(const profile_view& v) {
    return !v.get("sso_session").empty() || !v.get("sso_start_url").empty() || !v.get("sso_account_id").empty() ||
           !v.get("sso_role_name").empty();
  }

  /// Profile `name` from the shared files (see resolve_profile).
  void load_profile(const std::string& name, bool required, step_done done) {
    resolve_profile(read_shared_files(), name, {}, required, std::move(done));
  }

  /// Within a profile, as botocore orders it: role_arn (with web_identity_token_file,
  /// source_profile or credential_source), SSO, static keys in the credentials file,
  /// credential_process, static keys in the config file. `chain`: the profiles whose
  /// source_profile led here (empty at the top); a source profile's own static keys end
  /// the chain even next to a role_arn (so "source_profile = itself" works).
  void resolve_profile(std::shared_ptr<const shared_files> files, const std::string& name,
                       std::vector<std::string> chain, bool required, step_done done) {
    profile_view v = view_of(files, name);
    std::string what = "profile '" + name + "'";
    if (!chain.empty()) what += " (source_profile of '" + chain.back() + "')";
    required = required || !chain.empty();
    auto not_usable = [&](std::string_view state) {
      std::vector<std::string> notes = files->notes;
      std::string missing = " (no profile '" + name + "')";
      if (files->creds_read)
        notes.push_back(files->cred_path + (v.creds ? " (" + what + " " + std::string(state) + ")" : missing));
      if (files->config_read)
        notes.push_back(files->cfg_path + (v.config ? " (" + what + " " + std::string(state) + ")" : missing));
      if (required) return done(step_result::error(what + " not usable: " + join(notes, ", ")));
      done(step_result::none("shared files: " + join(notes, ", ")));
    };
    if (!v.exists()) return not_usable("");
    auto file_keys = static_keys(v.creds, what, files->cred_path, "shared_credentials_file:" + name);
    auto config_keys = static_keys(v.config, what, files->cfg_path, "config_file:" + name);
    if (!chain.empty()) {
      if (file_keys) return done(std::move(*file_keys));
      if (config_keys) return done(std::move(*config_keys));
    }
    if (!v.get("role_arn").empty()) return assume_role_profile(v, what, std::move(chain), std::move(done));
    if (uses_sso(v)) return sso_profile(v, what, std::move(done));
    if (file_keys) return done(std::move(*file_keys));
    if (!v.get("credential_process").empty()) return credential_process(v, what, std::move(done));
    if (config_keys) return done(std::move(*config_keys));
    not_usable("has no keys");
  }

  // ---- assume role (source_profile, credential_source) -----------------------------

  void assume_role_profile(const profile_view& v, const std::string& what, std::vector<std::string> chain,
                           step_done done) {
    std::string prefix = what + " in " + v.where("role_arn");
    std::string role = v.get("role_arn");
    if (auto token_file = v.get("web_identity_token_file"); !token_file.empty())
      return assume_role_with_web_identity(role, expand_home(token_file), session_name(v.get("role_session_name")),
                                           v.get("region"), "web_identity:" + v.name, std::move(done));
    if (!v.get("mfa_serial").empty())
      return done(step_result::error(prefix + " sets mfa_serial: assuming a role with an MFA code is not supported "
                                              "(a gateway has nobody to type the code)"));
    std::string source_profile = v.get("source_profile"), credential_source = v.get("credential_source");
    if (!source_profile.empty() && !credential_source.empty())
      return done(step_result::error(prefix + " has both source_profile and credential_source; set one"));
    if (source_profile.empty() && credential_source.empty())
      return done(step_result::error(prefix + " has role_arn without source_profile, credential_source or "
                                              "web_identity_token_file"));
    assume_params p;
    p.role_arn = role;
    p.session = session_name(v.get("role_session_name"));
    p.external_id = v.get("external_id");
    p.region = v.get("region");
    p.source = "assume_role:" + v.name;
    p.what = prefix;
    if (auto d = v.get("duration_seconds"); !d.empty()) {
      auto n = parse_int(d);
      if (!n || *n < 900 || *n > 43200)
        return done(step_result::error(prefix + ": duration_seconds must be a whole number from 900 to 43200"));
      p.duration = std::to_string(*n);
    }

    if (!credential_source.empty()) {
      std::optional<aws_kind> k;
      if (credential_source == "Environment")
        k = aws_kind::environment;
      else if (credential_source == "Ec2InstanceMetadata")
        k = aws_kind::imds;
      else if (credential_source == "EcsContainer")
        k = aws_kind::container;
      if (!k)
        return done(step_result::error(prefix + ": credential_source '" + sanitize_remote(credential_source, 60) +
                                       "' is not Environment, Ec2InstanceMetadata or EcsContainer"));
      return run_step(*k, [self = shared_from_this(), p = std::move(p), credential_source,
                           done = std::move(done)](step_result r) mutable {
        if (r.state != step_result::found)
          return done(step_result::error(p.what + ": credential_source " + credential_source + ": " + r.note));
        self->assume_role(*r.creds, std::move(p), std::move(done));
      });
    }

    chain.push_back(v.name);
    if (source_profile == v.name) {
      // A profile may be its own source when it holds the keys (botocore allows it).
      auto keys = static_keys(v.creds, what, v.files->cred_path, {});
      if (!keys) keys = static_keys(v.config, what, v.files->cfg_path, {});
      if (!keys) return done(step_result::error(prefix + ": source_profile is the profile itself, which has no keys"));
      if (keys->state != step_result::found) return done(std::move(*keys));
      return assume_role(*keys->creds, std::move(p), std::move(done));
    }
    if (std::find(chain.begin(), chain.end(), source_profile) != chain.end())
      return done(
          step_result::error(prefix + ": source_profile cycle: " + join(chain, " -> ") + " -> " + source_profile));
    if (chain.size() > max_role_chain)
      return done(step_result::error(prefix + ": more than " + std::to_string(max_role_chain) +
                                     " roles chained through source_profile: " + join(chain, " -> ") + " -> " +
                                     source_profile));
    resolve_profile(v.files, source_profile, std::move(chain), true,
                    [self = shared_from_this(), p = std::move(p), done = std::move(done)](step_result r) mutable {
                      // r.note names the source profile and its file.
                      if (r.state != step_result::found) return done(step_result::error(std::move(r.note)));
                      self->assume_role(*r.creds, std::move(p), std::move(done));
                    });
  }

  /// STS AssumeRole, signed (SigV4, service "sts") with the source credentials.
  void assume_role(const aws_credentials& src, assume_params p, step_done done) {
    std::string url = sts_url(p.region);
    http::endpoint ep;
    std::string err;
    if (!http::parse_url(url, ep, err)) return done(step_result::error(p.what + ": STS endpoint: " + err));
    std::string target = url_request_target(url);
    auto q = target.find('?');
    std::string path = target.substr(0, q), query = q == std::string::npos ? std::string() : target.substr(q + 1);
    std::string body = "Action=AssumeRole&Version=2011-06-15&RoleArn=" + form_encode(p.role_arn) +
                       "&RoleSessionName=" + form_encode(p.session);
    if (!p.external_id.empty()) body += "&ExternalId=" + form_encode(p.external_id);
    if (!p.duration.empty()) body += "&DurationSeconds=" + p.duration;
    const std::string content_type = "application/x-www-form-urlencoded; charset=utf-8";
    providers::sigv4_input in;
    in.method = "POST";
    in.path = path;
    in.query = query;
    in.headers = {{"host", ep.authority}, {"content-type", content_type}};
    in.body = body;
    std::string region = sts_region(p.region);
    auto auth =
        providers::sigv4_sign(in, src, region.empty() ? "us-east-1" : region, "sts", std::chrono::system_clock::now());

    fetch_request req;
    req.method = "POST";
    req.url = url;
    req.timeout = cfg.sts_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"host", ep.authority}, {"content-type", content_type}, {"accept", "text/xml"}};
    for (auto& h : auth) req.headers.push_back(std::move(h));
    req.body = std::move(body);
    std::string where = p.what + ": STS AssumeRole at " + url_origin(url);
    fetch(io, std::move(req), [where, source = std::move(p.source), done = std::move(done)](fetch_result r) {
      done(sts_credentials(where, r, source));
    });
  }

  // ---- SSO ----------------------------------------------------------------------------

  /// The token `aws sso login` cached, then the portal's GetRoleCredentials. The token is
  /// never refreshed here (no OIDC refresh-token flow): an expired one is an error.
  void sso_profile(const profile_view& v, const std::string& what, step_done done) {
    std::string prefix = what + " in " + v.where(v.get("sso_session").empty() ? "sso_start_url" : "sso_session");
    std::string login = "run `aws sso login --profile " + v.name + "`";
    std::string session = v.get("sso_session"), start_url, region, cache_key;
    if (!session.empty()) {
      const ini_section* s = v.files->config_read ? config_sso_session(v.files->config, session) : nullptr;
      if (!s)
        return done(step_result::error(prefix + ": sso_session '" + session + "' has no [sso-session " + session +
                                       "] section in " + v.files->cfg_path));
      auto sget = [&](std::string_view k) -> std::string {
        auto it = s->find(k);
        return it == s->end() ? std::string() : it->second;
      };
      start_url = sget("sso_start_url");
      region = sget("sso_region");
      if (start_url.empty() || region.empty())
        return done(step_result::error(prefix + ": [sso-session " + session + "] in " + v.files->cfg_path +
                                       " needs sso_start_url and sso_region"));
      // The profile may repeat them, but not differently (botocore refuses that too).
      for (std::string_view k : {"sso_start_url", "sso_region"})
        if (auto pv = v.get(k); !pv.empty() && pv != sget(k))
          return done(step_result::error(prefix + ": " + std::string(k) + " differs from the one in [sso-session " +
                                         session + "]"));
      cache_key = session;
    } else {
      start_url = v.get("sso_start_url");
      region = v.get("sso_region");
      if (start_url.empty() || region.empty())
        return done(step_result::error(prefix + ": SSO needs sso_session, or sso_start_url and sso_region"));
      cache_key = start_url;
    }
    std::string account = v.get("sso_account_id"), role = v.get("sso_role_name");
    if (account.empty() || role.empty())
      return done(step_result::error(prefix + ": SSO needs sso_account_id and sso_role_name"));
    if (!valid_region(region))
      return done(
          step_result::error(prefix + ": sso_region '" + sanitize_remote(region, 60) + "' is not a region name"));
    if (cfg.env.home().empty())
      return done(step_result::error(prefix + ": no home directory, so no SSO token cache (~/.aws/sso/cache)"));

    std::string cache = cfg.env.home() + "/.aws/sso/cache/" + sha1_hex(cache_key) + ".json";
    std::string text, err, token;
    std::chrono::system_clock::time_point expires;
    if (!read_small_file(cache, max_token_file, text, err))
      return done(step_result::error(prefix + ": no cached SSO token (" + cache + ": " + err + "); " + login));
    if (!parse_sso_cache(text, token, expires, err))
      return done(step_result::error(prefix + ": SSO token cache " + cache + ": " + err + "; " + login));
    if (expires <= std::chrono::system_clock::now())
      return done(
          step_result::error(prefix + ": the cached SSO token expired at " + format_iso8601(expires) + "; " + login));
    if (!header_safe(token))
      return done(step_result::error(prefix + ": SSO token cache " + cache + ": accessToken has invalid characters"));

    std::string base = cfg.env.value("AWS_ENDPOINT_URL_SSO");
    if (base.empty())
      base = "https://portal.sso." + region + (region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com");
    while (!base.empty() && base.back() == '/') base.pop_back();
    fetch_request req;
    req.url = base + "/federation/credentials?role_name=" + form_encode(role) + "&account_id=" + form_encode(account);
    req.timeout = cfg.sts_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"x-amz-sso_bearer_token", token}, {"accept", "application/json"}};
    std::string where = prefix + ": SSO GetRoleCredentials at " + url_origin(base);
    fetch(io, std::move(req), [where, login, source = "sso:" + v.name, done = std::move(done)](fetch_result r) {
      if (!r.error.empty()) return done(step_result::error(where + ": " + r.error));
      if (r.status != 200) {
        std::string e = where + ": HTTP " + std::to_string(r.status);
        // "UnauthorizedException:http://internal.amazon.com/..." and {"message": "..."}.
        std::string type = r.header("x-amzn-errortype");
        type = sanitize_remote(type.substr(0, type.find(':')), 100);
        if (!type.empty()) e += " " + type;
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        std::string_view msg;
        if (!parser.parse(r.body.data(), r.body.size()).get(doc) && !doc["message"].get_string().get(msg))
          e += ": " + sanitize_remote(msg);
        if (r.status == 401) e += "; the SSO session may have ended: " + login;
        return done(step_result::error(e));
      }
      aws_credentials c;
      std::string err;
      if (!parse_sso_role_credentials(r.body, c, err)) return done(step_result::error(where + ": " + err));
      done(step_result::ok(std::move(c), source));
    });
  }

  // ---- credential_process -----------------------------------------------------------

  void credential_process(const profile_view& v, const std::string& what, step_done done) {
    std::string label = what + " in " + v.where("credential_process") + ": credential_process";
    std::vector<std::string> argv;
    std::string err;
    if (!split_command_line(v.get("credential_process"), argv, err))
      return done(step_result::error(label + ": " + err));
    if (argv.empty()) return done(step_result::error(label + " is empty"));
    // The program only: arguments may carry secrets.
    label += " '" + sanitize_remote(argv[0], 200) + "'";
    process_request pr;
    pr.argv = std::move(argv);
    pr.timeout = cfg.process_timeout;
    pr.max_stdout = max_process_output;
    run_process(io, std::move(pr), [label, source = "process:" + v.name, done = std::move(done)](process_result r) {
      auto with_stderr = [&](std::string e) {
        if (auto text = sanitize_remote(r.err, 400); !text.empty()) e += "; stderr: " + text;
        return step_result::error(std::move(e));
      };
      if (!r.error.empty()) return done(with_stderr(label + ": " + r.error));
      if (r.signal != 0) return done(with_stderr(label + " was ended by signal " + std::to_string(r.signal)));
      if (r.exit_code != 0) return done(with_stderr(label + " exited with status " + std::to_string(r.exit_code)));
      aws_credentials c;
      std::string err;
      if (!parse_process_output(r.out, c, err)) return done(step_result::error(label + ": " + err));
      done(step_result::ok(std::move(c), source));
    });
  }

  // ---- STS web identity ------------------------------------------------------------

  void web_identity_env(step_done done) {
    std::string token_file = cfg.env.value("AWS_WEB_IDENTITY_TOKEN_FILE");
    std::string role = cfg.env.value("AWS_ROLE_ARN");
    if (token_file.empty())
      return done(step_result::none("web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)"));
    if (role.empty())
      return done(step_result::error("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"));
    assume_role_with_web_identity(role, expand_home(token_file), session_name({}), {}, "web_identity", std::move(done));
  }

  /// The region for STS: explicit, AWS_REGION, AWS_DEFAULT_REGION, then the profile's
  /// `region`; "" when none (or not a region name).
  std::string sts_region(std::string_view profile_region) const {
    std::string region = cfg.region;
    if (region.empty()) region = cfg.env.value("AWS_REGION");
    if (region.empty()) region = cfg.env.value("AWS_DEFAULT_REGION");
    if (region.empty()) region = std::string(profile_region);
    return valid_region(region) ? region : std::string();
  }

  std::string sts_url(std::string_view profile_region = {}) const {
    if (!cfg.sts_endpoint.empty()) return cfg.sts_endpoint;
    if (auto e = cfg.env.value("AWS_ENDPOINT_URL_STS"); !e.empty()) return e;
    std::string region = sts_region(profile_region);
    if (region.empty()) return "https://sts.amazonaws.com/";
    bool china = region.rfind("cn-", 0) == 0;
    return "https://sts." + region + (china ? ".amazonaws.com.cn/" : ".amazonaws.com/");
  }

  void assume_role_with_web_identity(const std::string& role_arn, const std::string& token_file,
                                     const std::string& session, const std::string& profile_region, std::string source,
                                     step_done done) {
    // Read again at every call: the platform rotates the file (EKS: hourly).
    std::string token, err;
    if (!read_small_file(token_file, max_token_file, token, err))
      return done(step_result::error("web identity token file " + token_file + ": " + err));
    token = std::string(trim(token));
    if (token.empty()) return done(step_result::error("web identity token file " + token_file + " is empty"));

    fetch_request req;
    req.method = "POST";
    req.url = sts_url(profile_region);
    req.timeout = cfg.sts_timeout;
    req.max_body_bytes = max_identity_body;
    req.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}, {"accept", "text/xml"}};
    req.body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(role_arn) +
               "&RoleSessionName=" + form_encode(session) + "&WebIdentityToken=" + form_encode(token);
    std::string where = "STS AssumeRoleWithWebIdentity at " + url_origin(req.url);
    fetch(io, std::move(req), [where, source = std::move(source), done = std::move(done)](fetch_result r) {
      done(sts_credentials(where, r, source));
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

  // ---- EC2 instance metadata (IMDSv2, IMDSv1 fallback) -------------------------------

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
      if (r.status == 403 || r.status == 404 || r.status == 405) {
        // The service answered but gives no session token (IMDSv2 blocked, or an older
        // metadata emulator): the SDKs read without one (IMDSv1) unless told not to. A
        // timeout or connection error is not this case: nothing answered at all.
        std::string why = "token request: HTTP " + std::to_string(r.status);
        if (iequals(self->cfg.env.value("AWS_EC2_METADATA_V1_DISABLED"), "true"))
          return done(step_result::none(where + " (" + why + "; no IMDSv1 fallback: AWS_EC2_METADATA_V1_DISABLED)"));
        return self->imds_role(base, {}, "EC2 instance metadata (IMDSv1) at " + url_origin(base), std::move(done));
      }
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
    if (!token.empty()) req.headers = {{"x-aws-ec2-metadata-token", token}};  // empty: IMDSv1
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
    if (!token.empty()) req.headers = {{"x-aws-ec2-metadata-token", token}};
    fetch(io, std::move(req), [where, v1 = token.empty(), done = std::move(done)](fetch_result r) {
      if (!r.error.empty()) return done(step_result::none(where + " (" + r.error + ")"));
      if (r.status != 200)
        return done(step_result::none(where + " (credentials request: HTTP " + std::to_string(r.status) + ")"));
      aws_credentials c;
      std::string err;
      if (!parse_json_credentials(r.body, c, err)) return done(step_result::none(where + " (" + err + ")"));
      done(step_result::ok(std::move(c), v1 ? "imds_v1" : "imds"));
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
