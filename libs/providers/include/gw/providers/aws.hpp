#pragma once
/// AWS credentials as SigV4 signing needs them.

#include <chrono>
#include <string>

namespace gw::providers {

struct aws_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< empty for long-term keys
  /// When temporary credentials stop working; max() = never.
  std::chrono::system_clock::time_point expiration = std::chrono::system_clock::time_point::max();
};

}  // namespace gw::providers
