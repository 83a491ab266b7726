#include "gw/credentials/environment.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "gw/core/strings.hpp"

namespace gw::credentials {

environment::environment(lookup_fn fn, std::string home) : fn_(std::move(fn)), home_(std::move(home)) {}

environment environment::process() {
  std::string home;
  if (const char* h = std::getenv("HOME"); h && *h) {
    home = h;
  } else {
    // getpwuid_r: no shared static buffer.
    long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
    passwd pw{};
    passwd* result = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &result) == 0 && result && result->pw_dir)
      home = result->pw_dir;
  }
  return environment(
      [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        if (!v) return std::nullopt;
        return std::string(v);
      },
      std::move(home));
}

environment environment::from_map(std::map<std::string, std::string, std::less<>> vars, std::string home) {
  if (home.empty())
    if (auto it = vars.find("HOME"); it != vars.end()) home = it->second;
  auto shared = std::make_shared<const std::map<std::string, std::string, std::less<>>>(std::move(vars));
  return environment(
      [shared](std::string_view name) -> std::optional<std::string> {
        auto it = shared->find(name);
        if (it == shared->end()) return std::nullopt;
        return it->second;
      },
      std::move(home));
}

std::optional<std::string> environment::get(std::string_view name) const {
  if (!fn_) return std::nullopt;
  return fn_(name);
}

std::string environment::value(std::string_view name) const {
  auto v = get(name);
  if (!v) return {};
  return std::string(trim(*v));
}

std::string bedrock_bearer_token(const environment& env) { return env.value("AWS_BEARER_TOKEN_BEDROCK"); }

}  // namespace gw::credentials
