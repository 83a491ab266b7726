#include "gw/core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "gw/core/strings.hpp"

namespace gw::log {
namespace {
std::atomic<level> g_level{level::info};
}

void set_level(level l) noexcept { g_level.store(l, std::memory_order_relaxed); }
level current_level() noexcept { return g_level.load(std::memory_order_relaxed); }

bool parse_level(std::string_view s, level& out) noexcept {
  if (iequals(s, "debug")) out = level::debug;
  else if (iequals(s, "info")) out = level::info;
  else if (iequals(s, "warning") || iequals(s, "warn")) out = level::warn;
  else if (iequals(s, "error") || iequals(s, "critical")) out = level::error;
  else if (iequals(s, "off") || iequals(s, "none")) out = level::off;
  else return false;
  return true;
}

void write(level l, std::string_view msg) {
  static constexpr const char* names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char head[64];
  int n = std::snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, static_cast<int>(ms), names[static_cast<int>(l)]);
  std::string line;
  line.reserve(static_cast<std::size_t>(n) + msg.size() + 1);
  line.append(head, static_cast<std::size_t>(n));
  line.append(msg);
  line.push_back('\n');
  // One write per line keeps lines from interleaving between threads.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t w = ::write(STDERR_FILENO, p, left);
    if (w <= 0) break;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

}  // namespace gw::log
