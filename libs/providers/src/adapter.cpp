#include "gw/providers/adapter.hpp"

#include "gw/core/error.hpp"

namespace gw::providers {

std::string provider_error::json() const {
  return openai_error_json(message, type.empty() ? std::string_view("api_error") : std::string_view(type), param, code);
}

}  // namespace gw::providers
