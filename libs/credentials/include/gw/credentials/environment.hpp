#pragma once
/// The process environment and home directory as the credential providers see them,
/// injectable so tests (and embedders) need not touch the real environment.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace gw::credentials {

class environment {
 public:
  /// Looks a variable up; nullopt when unset.
  using lookup_fn = std::function<std::optional<std::string>(std::string_view name)>;

  /// The real process environment, read at each lookup (getenv). Home directory: $HOME,
  /// else the passwd entry of the effective user.
  static environment process();
  /// A fixed set of variables; `home` is the home directory ("" = none: ~/.aws files
  /// are then not looked for unless HOME is among the variables).
  static environment from_map(std::map<std::string, std::string, std::less<>> vars, std::string home = {});
  /// Any lookup function.
  environment(lookup_fn fn, std::string home);

  /// The variable's value; nullopt when unset. Empty values count as set here.
  std::optional<std::string> get(std::string_view name) const;
  /// The variable's value with surrounding whitespace trimmed, "" when unset or empty:
  /// like the AWS and Azure SDKs, an empty variable is treated as not configured.
  std::string value(std::string_view name) const;
  /// The home directory ("" when unknown).
  const std::string& home() const noexcept { return home_; }

 private:
  lookup_fn fn_;
  std::string home_;
};

/// A Bedrock API key from AWS_BEARER_TOKEN_BEDROCK ("" when unset). The gateway prefers
/// an explicit api_key parameter, then this; it is sent as "Authorization: Bearer <key>".
std::string bedrock_bearer_token(const environment& env);

}  // namespace gw::credentials
