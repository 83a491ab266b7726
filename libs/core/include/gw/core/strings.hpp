#pragma once
/// Small string helpers shared by every library.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gw {

bool iequals(std::string_view a, std::string_view b) noexcept;
/// True if `s` begins with `prefix`, ASCII case ignored.
bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept;
std::string_view trim(std::string_view s) noexcept;
std::string to_lower(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);

/// Compares two secrets in time independent of where they differ (length still leaks,
/// which is public for our keys' formats).
bool secure_equals(std::string_view a, std::string_view b) noexcept;

/// Parses a non-negative decimal integer; nullopt on anything else.
std::optional<long long> parse_int(std::string_view s) noexcept;
/// Parses a finite floating-point number; nullopt on anything else.
std::optional<double> parse_double(std::string_view s) noexcept;

/// The value of one hex digit (either case); -1 if it is not one.
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace gw
