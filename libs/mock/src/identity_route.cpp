// Stub until the identity endpoints land (issue 6).
#include "provider_routes.hpp"
namespace gw::mock {
std::optional<route_response> identity_route(const route_request&, const route_env&, const identity_options&) {
  return std::nullopt;
}
}  // namespace gw::mock
