#pragma once
/// Exact decimal text to a scaled integer: shared by parse_usd, the price-file loader and
/// the built-in table (which is checked with it at compile time). Private to gw_pricing.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace gw::pricing::detail {

/// Parses a non-negative decimal number in plain or exponent form ("12", "0.5", ".5",
/// "5.", "+3", "2.5e-06", "1.5E-7") and stores round(value * 10^scale) in `out`,
/// rounding half up. Works on the digits with integer arithmetic only, so "0.0000025"
/// and "2.5e-06" give the same exact result (no binary floating point involved).
/// false if the text is not such a number (no surrounding spaces, no "inf"/"nan"/hex),
/// is negative ("-0" is zero and accepted) or the scaled result exceeds int64.
constexpr bool parse_scaled_decimal(std::string_view s, int scale, std::int64_t& out) noexcept {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  // Exponents are clamped here: any nonzero value with a larger exponent overflows
  // int64 or rounds to zero anyway, and the clamp keeps the arithmetic in range.
  constexpr std::int64_t exponent_cap = 1'000'000;
  constexpr auto is_digit = [](char c) { return c >= '0' && c <= '9'; };

  const std::size_t n = s.size();
  std::size_t i = 0;
  bool negative = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  const std::size_t int_begin = i;
  while (i < n && is_digit(s[i])) ++i;
  const std::size_t int_len = i - int_begin;
  std::size_t frac_begin = i, frac_len = 0;
  if (i < n && s[i] == '.') {
    frac_begin = ++i;
    while (i < n && is_digit(s[i])) ++i;
    frac_len = i - frac_begin;
  }
  if (int_len + frac_len == 0) return false;  // ".", "", "e5", "-"

  std::int64_t exponent = 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      exponent_negative = s[i] == '-';
      ++i;
    }
    const std::size_t exponent_begin = i;
    while (i < n && is_digit(s[i])) {
      if (exponent < exponent_cap) exponent = exponent * 10 + (s[i] - '0');
      ++i;
    }
    if (i == exponent_begin) return false;  // "1e", "1e+"
    if (exponent_negative) exponent = -exponent;
  }
  if (i != n) return false;  // trailing garbage

  // The mantissa digits: the integer part followed by the fraction part.
  const std::size_t total = int_len + frac_len;
  const auto digit = [&](std::size_t k) -> int {
    return k < int_len ? s[int_begin + k] - '0' : s[frac_begin + (k - int_len)] - '0';
  };
  std::size_t first = 0;  // first significant (nonzero) digit
  while (first < total && digit(first) == 0) ++first;
  if (first == total) {
    out = 0;
    return true;
  }
  if (negative) return false;

  // value = D * 10^(exponent - frac_len) with D the significant digits as an integer, so
  // value * 10^scale = D * 10^shift and its integer part has `point` digits: the first
  // `point` significant digits, padded with zeros when point > significant.
  const auto significant = static_cast<std::int64_t>(total - first);
  const std::int64_t shift = exponent - static_cast<std::int64_t>(frac_len) + scale;
  const std::int64_t point = significant + shift;
  if (point > 19) return false;  // >= 10^19 > int64 max

  std::int64_t result = 0;
  for (std::int64_t k = 0; k < point; ++k) {
    const int d = k < significant ? digit(first + static_cast<std::size_t>(k)) : 0;
    if (result > (max - d) / 10) return false;
    result = result * 10 + d;
  }
  // Round half up: only the first dropped digit decides. With point < 0 that digit is
  // one of the zeros between the decimal point and D, so nothing rounds up.
  if (point >= 0 && point < significant && digit(first + static_cast<std::size_t>(point)) >= 5) {
    if (result == max) return false;
    ++result;
  }
  out = result;
  return true;
}

}  // namespace gw::pricing::detail
