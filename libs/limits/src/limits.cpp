#include "gw/limits/limits.hpp"

#include <cstdio>

namespace gw::limits {

const char* kind_name(kind k) noexcept {
  switch (k) {
    case kind::requests: return "requests";
    case kind::tokens: return "tokens";
    case kind::parallel: return "parallel requests";
  }
  return "requests";
}

namespace {
/// Seconds without trailing zeros: 60000 -> "60", 2500 -> "2.5", 12345 -> "12.345".
std::string seconds_text(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  std::string s(buf);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

std::string refusal_message(const std::vector<scope>& scopes, const decision& d, const window_settings& w) {
  std::string label = d.refused >= 0 && static_cast<std::size_t>(d.refused) < scopes.size()
                          ? scopes[static_cast<std::size_t>(d.refused)].label
                          : std::string("this key");
  std::string m = "Rate limit exceeded for " + label + ": ";
  switch (d.refused_kind) {
    case kind::requests:
      m += "requests limit " + std::to_string(d.limit) + " per " + seconds_text(w.window_ms) + "s reached (current " +
           std::to_string(d.current) + ").";
      break;
    case kind::tokens:
      m += "tokens limit " + std::to_string(d.limit) + " per " + seconds_text(w.window_ms) + "s reached (current " +
           std::to_string(d.current) + ").";
      break;
    case kind::parallel:
      m += "max_parallel_requests " + std::to_string(d.limit) + " reached (in flight " + std::to_string(d.current) + ").";
      break;
  }
  m += " Retry after " + seconds_text(d.retry_after_ms > 0 ? d.retry_after_ms : 1) + "s.";
  return m;
}

}  // namespace gw::limits
