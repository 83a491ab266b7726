#pragma once
/// Leveled logging to stderr, one write(2) per line, thread-safe.
/// Secrets (keys, Authorization headers) are never passed to it.

#include <string_view>

namespace gw::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_level(level l) noexcept;
level current_level() noexcept;
/// Parses DEBUG/INFO/WARNING/WARN/ERROR/OFF (case-insensitive); false if unknown.
bool parse_level(std::string_view s, level& out) noexcept;

void write(level l, std::string_view msg);

inline bool enabled(level l) noexcept { return l >= current_level(); }
inline void debug(std::string_view m) { if (enabled(level::debug)) write(level::debug, m); }
inline void info(std::string_view m) { if (enabled(level::info)) write(level::info, m); }
inline void warn(std::string_view m) { if (enabled(level::warn)) write(level::warn, m); }
inline void error(std::string_view m) { if (enabled(level::error)) write(level::error, m); }

}  // namespace gw::log
