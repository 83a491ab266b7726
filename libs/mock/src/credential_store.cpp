#include "provider_routes.hpp"

namespace gw::mock {

void credential_store::add_aws(aws_credentials c) {
  std::lock_guard lock(mu_);
  auto id = c.access_key_id;
  aws_[id] = std::move(c);
}

std::optional<credential_store::aws_credentials> credential_store::find_aws(std::string_view akid) const {
  std::lock_guard lock(mu_);
  auto it = aws_.find(std::string(akid));
  if (it == aws_.end() || it->second.expires <= clock::now()) return std::nullopt;
  return it->second;
}

void credential_store::add_bearer(std::string token, clock::time_point expires) {
  std::lock_guard lock(mu_);
  bearer_[std::move(token)] = expires;
}

bool credential_store::bearer_valid(std::string_view token) const {
  std::lock_guard lock(mu_);
  auto it = bearer_.find(std::string(token));
  return it != bearer_.end() && it->second > clock::now();
}

std::uint64_t credential_store::entra_tokens_issued() const { std::lock_guard lock(mu_); return entra_; }
std::uint64_t credential_store::sts_calls() const { std::lock_guard lock(mu_); return sts_; }
std::uint64_t credential_store::container_calls() const { std::lock_guard lock(mu_); return container_; }
std::uint64_t credential_store::imds_calls() const { std::lock_guard lock(mu_); return imds_; }
void credential_store::count_entra() { std::lock_guard lock(mu_); ++entra_; }
void credential_store::count_sts() { std::lock_guard lock(mu_); ++sts_; }
void credential_store::count_container() { std::lock_guard lock(mu_); ++container_; }
void credential_store::count_imds() { std::lock_guard lock(mu_); ++imds_; }

std::string_view route_request::header(std::string_view lower_name) const {
  if (!headers) return {};
  for (const auto& [k, v] : *headers)
    if (k == lower_name) return v;
  return {};
}

}  // namespace gw::mock
