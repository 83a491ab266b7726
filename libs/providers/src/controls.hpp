#pragma once
// The gateway's per-request controls (private to the library).

#include <optional>
#include <string_view>

#include "gw/core/error.hpp"
#include "gw/providers/openai.hpp"

namespace gw::providers {

/// A request_controls member (fallbacks, mock_*, ...), not timeout/num_retries.
bool is_control_field(std::string_view key) noexcept;
/// Reads control `key` from its raw JSON value into `c`; a 400 naming it on a bad value.
std::optional<error> read_control(std::string_view key, std::string_view raw, request_controls& c);

}  // namespace gw::providers
