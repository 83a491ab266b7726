#pragma once
/// Microsoft Entra ID access tokens for Azure OpenAI by the OAuth 2.0 client-credentials
/// grant (a service principal with a client secret), cached and refreshed before expiry.
///
///   POST {authority}/{tenant}/oauth2/v2.0/token
///   client_id=..&client_secret=..&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default
///   &grant_type=client_credentials
///
/// One request serves every caller: concurrent get() calls share the one in flight, and
/// the token is renewed in the background (5 minutes before expiry, or at 80% of a
/// shorter lifetime) while the old one is still served.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gw/credentials/environment.hpp"
#include "gw/credentials/refresh.hpp"
#include "gw/http/asio.hpp"

namespace gw::credentials {

namespace asio = boost::asio;

namespace detail {
template <class V>
class refresher;
struct entra_state;
}  // namespace detail

struct entra_token {
  std::string access_token;
  std::chrono::system_clock::time_point expiration;
};

struct entra_config {
  /// Explicit values win; empty ones come from AZURE_TENANT_ID, AZURE_CLIENT_ID,
  /// AZURE_CLIENT_SECRET.
  std::string tenant_id, client_id, client_secret;
  /// "" = AZURE_SCOPE, else https://cognitiveservices.azure.com/.default
  std::string scope;
  /// "" = AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com (a host without
  /// scheme gets https://).
  std::string authority_host;
  environment env = environment::process();
  refresh_policy refresh;
  std::chrono::milliseconds timeout{10000};

  /// From litellm_params: tenant_id, client_id, client_secret, azure_scope,
  /// azure_authority_host.
  static entra_config from_params(const std::map<std::string, std::string>& params,
                                  environment env = environment::process());
};

class entra_token_provider {
 public:
  using callback = std::function<void(std::optional<std::string> token, std::string error)>;

  /// Never throws: missing tenant/client/secret are reported by get() (without a
  /// network call). Nothing is fetched until the first get().
  static std::shared_ptr<entra_token_provider> create(entra_config cfg, asio::io_context& io);
  ~entra_token_provider();  ///< stops
  entra_token_provider(const entra_token_provider&) = delete;
  entra_token_provider& operator=(const entra_token_provider&) = delete;

  /// The cached access token if still valid; any thread, no I/O (a shared_ptr copy
  /// under a mutex held for nanoseconds). current_token() avoids the string copy.
  std::optional<std::string> current() const;
  std::shared_ptr<const entra_token> current_token() const;

  /// A valid token, requesting one if none is cached; concurrent callers share one
  /// request. `cb` runs exactly once: inline when the answer is immediate (cached;
  /// stopped; failing fast during the cooldown after a failure), otherwise on a thread
  /// running the io_context. Never under an internal lock; must not throw. Errors read
  /// "Entra ID token request to https://login.microsoftonline.com failed: HTTP 401
  /// invalid_client: AADSTS7000215: Invalid client secret provided. ...".
  void get(callback cb);

  /// "client_credentials:<tenant>" once a token was obtained.
  std::string source() const;
  /// requests = token requests sent, failures = failed ones.
  provider_stats stats() const;
  void stop();

 private:
  entra_token_provider() = default;
  std::shared_ptr<detail::entra_state> state_;
  std::shared_ptr<detail::refresher<entra_token>> engine_;
};

}  // namespace gw::credentials
