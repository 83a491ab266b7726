#pragma once
/// Minimal JSON output helpers: the gateway writes few JSON documents of its own
/// (errors, /models, health), so a string builder is enough.

#include <cstdint>
#include <string>
#include <string_view>

namespace gw {

/// Appends `s` as a quoted JSON string, escaping as RFC 8259 requires.
void append_json_string(std::string& out, std::string_view s);
/// Returns `s` as a quoted JSON string.
std::string json_quote(std::string_view s);
/// Appends a number the way JSON wants it (no NaN/inf: those become null).
void append_json_number(std::string& out, double v);
void append_json_number(std::string& out, std::int64_t v);

}  // namespace gw
