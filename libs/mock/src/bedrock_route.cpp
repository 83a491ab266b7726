// Stub until the Bedrock dialect lands (issue 6).
#include "provider_routes.hpp"
namespace gw::mock {
std::optional<route_response> bedrock_route(const route_request&, const route_env&) { return std::nullopt; }
}  // namespace gw::mock
