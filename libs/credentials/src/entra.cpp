#include "gw/credentials/entra.hpp"

#include <simdjson.h>

#include "gw/core/strings.hpp"
#include "gw/credentials/parse.hpp"
#include "gw/http/client.hpp"
#include "refresher.hpp"
#include "util.hpp"

namespace gw::credentials {

using http::fetch;
using http::fetch_request;
using http::fetch_result;
using http::url_origin;

namespace detail {
namespace {

constexpr std::string_view default_scope = "https://cognitiveservices.azure.com/.default";
constexpr std::string_view default_authority = "https://login.microsoftonline.com";

/// A tenant is a GUID or a domain name ("contoso.onmicrosoft.com"), also "organizations"
/// etc.: letters, digits, '.', '-'. Anything else could change the URL's path.
bool valid_tenant(std::string_view t) {
  if (t.empty() || t.size() > 256) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
      return false;
  return true;
}

struct token_response {
  std::string access_token, error, description;
  std::optional<long long> expires_in;
};

void parse_token_response(std::string_view body, token_response& out) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(obj)) return;
  for (auto field : obj) {
    std::string_view key;
    if (field.error() || field.unescaped_key().get(key)) return;
    auto v = field.value();
    std::string_view s;
    if (key == "access_token") {
      if (!v.get_string().get(s)) out.access_token.assign(s);
    } else if (key == "expires_in") {
      // A number on the v2.0 endpoint; a string on some older ones ("3599").
      simdjson::ondemand::json_type type;
      if (v.type().get(type)) return;
      std::int64_t n;
      if (type == simdjson::ondemand::json_type::number) {
        if (!v.get_int64().get(n)) out.expires_in = n;
      } else if (type == simdjson::ondemand::json_type::string) {
        if (!v.get_string().get(s))
          if (auto p = parse_int(s)) out.expires_in = *p;
      }
    } else if (key == "error") {
      if (!v.get_string().get(s)) out.error.assign(s);
    } else if (key == "error_description") {
      if (!v.get_string().get(s)) out.description.assign(s);
    }
  }
}

}  // namespace

struct entra_state {
  std::string tenant, client_id, client_secret, scope, token_url, authority, config_error;
  std::chrono::milliseconds timeout;
  asio::io_context& io;

  entra_state(const entra_config& c, asio::io_context& i) : timeout(c.timeout), io(i) {
    auto pick = [&](const std::string& v, std::string_view var) {
      return !v.empty() ? std::string(trim(v)) : c.env.value(var);
    };
    tenant = pick(c.tenant_id, "AZURE_TENANT_ID");
    client_id = pick(c.client_id, "AZURE_CLIENT_ID");
    // Not trimmed when explicit: a secret is used exactly as given.
    client_secret = !c.client_secret.empty() ? c.client_secret : c.env.value("AZURE_CLIENT_SECRET");
    scope = pick(c.scope, "AZURE_SCOPE");
    if (scope.empty()) scope = default_scope;
    authority = pick(c.authority_host, "AZURE_AUTHORITY_HOST");
    if (authority.empty()) authority = default_authority;
    if (authority.find("://") == std::string::npos) authority = "https://" + authority;
    while (!authority.empty() && authority.back() == '/') authority.pop_back();
    std::vector<std::string> missing;
    if (tenant.empty()) missing.push_back("tenant_id/AZURE_TENANT_ID");
    if (client_id.empty()) missing.push_back("client_id/AZURE_CLIENT_ID");
    if (client_secret.empty()) missing.push_back("client_secret/AZURE_CLIENT_SECRET");
    if (!missing.empty()) {
      config_error = "Entra ID client credentials incomplete: missing";
      for (std::size_t i = 0; i < missing.size(); ++i) config_error += (i ? ", " : " ") + missing[i];
    } else if (!valid_tenant(tenant)) {
      config_error = "Entra ID tenant id contains invalid characters";
    }
    token_url = authority + "/" + tenant + "/oauth2/v2.0/token";
  }

  void resolve(refresher<entra_token>::completion done) {
    using outcome = refresher<entra_token>::outcome;
    if (!config_error.empty()) return done(outcome{nullptr, config_error, {}});
    fetch_request req;
    req.method = "POST";
    req.url = token_url;
    req.timeout = timeout;
    req.max_body_bytes = 64 * 1024;  // tokens are a few KiB
    req.headers = {{"content-type", "application/x-www-form-urlencoded"}, {"accept", "application/json"}};
    req.body = "client_id=" + form_encode(client_id) + "&scope=" + form_encode(scope) +
               "&client_secret=" + form_encode(client_secret) + "&grant_type=client_credentials";
    std::string where = "Entra ID token request to " + url_origin(token_url) + " failed: ";
    std::string source = "client_credentials:" + tenant;
    fetch(io, std::move(req), [where, source, done = std::move(done)](fetch_result r) {
      if (!r.error.empty()) return done(outcome{nullptr, where + r.error, {}});
      token_response t;
      parse_token_response(r.body, t);
      if (r.status != 200) {
        std::string e = where + "HTTP " + std::to_string(r.status);
        if (!t.error.empty()) e += " " + sanitize_remote(t.error, 80);
        // error_description is "AADSTSnnnn: text\r\nTrace ID: ...\r\nCorrelation ID:
        // ...\r\nTimestamp: ...": the first line is the message, the IDs help support.
        std::string_view d = t.description;
        if (!d.empty()) e += ": " + sanitize_remote(d.substr(0, d.find_first_of("\r\n")), 400);
        if (auto trace = d.find("Trace ID:"); trace != std::string_view::npos)
          e += " (" + sanitize_remote(d.substr(trace, d.find_first_of("\r\n", trace) - trace), 80) + ")";
        return done(outcome{nullptr, std::move(e), {}});
      }
      // At most a week (Entra issues 1-24 h): bounds the arithmetic on a bogus value.
      if (t.expires_in && *t.expires_in > 7 * 86400) t.expires_in = 7 * 86400;
      if (t.access_token.empty() || !t.expires_in || *t.expires_in <= 0)
        return done(outcome{nullptr, where + "response lacks access_token or expires_in", {}});
      if (!header_safe(t.access_token))
        return done(outcome{nullptr, where + "access_token contains invalid characters", {}});
      auto token = std::make_shared<entra_token>();
      token->access_token = std::move(t.access_token);
      // expires_in counts from when the server answered; measuring from now is at most
      // one round trip optimistic, well inside the refresh margins.
      token->expiration = std::chrono::system_clock::now() + std::chrono::seconds(*t.expires_in);
      done(outcome{std::move(token), {}, source});
    });
  }
};

}  // namespace detail

entra_config entra_config::from_params(const std::map<std::string, std::string>& params, environment env) {
  entra_config c;
  c.env = std::move(env);
  auto get = [&](const char* k) -> std::string {
    auto it = params.find(k);
    return it == params.end() ? std::string() : it->second;
  };
  c.tenant_id = get("tenant_id");
  c.client_id = get("client_id");
  c.client_secret = get("client_secret");
  c.scope = get("azure_scope");
  c.authority_host = get("azure_authority_host");
  return c;
}

std::shared_ptr<entra_token_provider> entra_token_provider::create(entra_config cfg, asio::io_context& io) {
  std::shared_ptr<entra_token_provider> p(new entra_token_provider());
  p->state_ = std::make_shared<detail::entra_state>(cfg, io);
  p->engine_ = std::make_shared<detail::refresher<entra_token>>(
      io, "Entra ID token", cfg.refresh, [state = p->state_](bool, detail::refresher<entra_token>::completion done) {
        state->resolve(std::move(done));
      });
  return p;
}

entra_token_provider::~entra_token_provider() { stop(); }

std::optional<std::string> entra_token_provider::current() const {
  if (auto t = engine_->current()) return t->access_token;
  return std::nullopt;
}

std::shared_ptr<const entra_token> entra_token_provider::current_token() const { return engine_->current(); }

void entra_token_provider::get(callback cb) {
  engine_->get([cb = std::move(cb)](std::shared_ptr<const entra_token> t, std::string err) {
    if (t)
      cb(t->access_token, {});
    else
      cb(std::nullopt, std::move(err));
  });
}

std::string entra_token_provider::source() const { return engine_->source(); }
provider_stats entra_token_provider::stats() const { return engine_->stats(); }
void entra_token_provider::stop() {
  if (engine_) engine_->stop();
}

}  // namespace gw::credentials
