// Stub until the Anthropic dialect lands (issue 6).
#include "provider_routes.hpp"
namespace gw::mock {
std::optional<route_response> anthropic_route(const route_request&, const route_env&, std::string_view) {
  return std::nullopt;
}
}  // namespace gw::mock
