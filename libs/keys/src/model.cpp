#include "gw/keys/model.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <stdexcept>

namespace gw::keys {

money from_dollars(double usd) noexcept {
  if (std::isnan(usd)) return 0;
  double pico = std::round(usd * 1e12);
  // 2^63 is exact in a double; every double below it converts without overflow.
  if (pico >= 9223372036854775808.0) return std::numeric_limits<money>::max();
  if (pico <= -9223372036854775808.0) return std::numeric_limits<money>::min();
  return static_cast<money>(pico);
}

double to_dollars(money m) noexcept {
  // Split so that whole dollars stay exact in the double.
  money whole = m / pico_per_dollar, frac = m % pico_per_dollar;
  return static_cast<double>(whole) + static_cast<double>(frac) / 1e12;
}

std::string to_decimal(money m) {
  bool neg = m < 0;
  // |min| does not fit: work in unsigned.
  unsigned long long u = neg ? 0ULL - static_cast<unsigned long long>(m) : static_cast<unsigned long long>(m);
  unsigned long long whole = u / 1'000'000'000'000ULL, frac = u % 1'000'000'000'000ULL;
  std::string f = std::to_string(frac);
  std::string out = neg ? "-" : "";
  out += std::to_string(whole);
  out += '.';
  out.append(12 - f.size(), '0');
  out += f;
  return out;
}

bool parse_decimal(std::string_view t, money& out) noexcept {
  if (t.empty()) return false;
  bool neg = false;
  std::size_t i = 0;
  if (t[0] == '-' || t[0] == '+') {
    neg = t[0] == '-';
    i = 1;
  }
  unsigned long long whole = 0;
  std::size_t digits = 0;
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++digits) {
    whole = whole * 10 + static_cast<unsigned>(t[i] - '0');
    // int64 picodollars end at 9,223,372.036854775807 USD; checking after each digit
    // also keeps whole * 10^12 below the unsigned range (it used to wrap from 18.4M on).
    if (whole > 9'223'372ULL) return false;
  }
  unsigned long long frac = 0;
  int fd = 0;
  bool round_up = false;
  if (i < t.size() && t[i] == '.') {
    ++i;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++digits) {
      if (fd < 12) {
        frac = frac * 10 + static_cast<unsigned>(t[i] - '0');
        ++fd;
      } else if (fd == 12) {
        round_up = t[i] >= '5';
        ++fd;
      }
    }
  }
  if (i != t.size() || digits == 0) return false;
  for (int k = std::min(fd, 12); k < 12; ++k) frac *= 10;
  unsigned long long u = whole * 1'000'000'000'000ULL + frac + (round_up ? 1 : 0);
  if (u > static_cast<unsigned long long>(std::numeric_limits<money>::max())) return false;
  out = neg ? -static_cast<money>(u) : static_cast<money>(u);
  return true;
}

bool parse_duration(std::string_view t, duration_spec& out) noexcept {
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
    if (n > 100'000'000) return false;
    n = n * 10 + (t[i] - '0');
    ++i;
  }
  if (i == 0 || n <= 0) return false;
  auto unit = t.substr(i);
  using u = duration_spec::unit;
  if (unit == "s") out.u = u::seconds;
  else if (unit == "m") out.u = u::minutes;
  else if (unit == "h") out.u = u::hours;
  else if (unit == "d") out.u = u::days;
  else if (unit == "w") out.u = u::weeks;
  else if (unit == "mo") out.u = u::months;
  else return false;
  out.n = n;
  return true;
}

namespace {

/// `epoch_seconds` seconds (plus `sub`, a sub-second remainder) after the epoch as a
/// sys_time, saturating at the clock's range (system_clock counts nanoseconds here:
/// +-292 years).
sys_time saturating_time(std::int64_t epoch_seconds, sys_time::duration sub) noexcept {
  constexpr auto per_second = std::chrono::duration_cast<sys_time::duration>(std::chrono::seconds(1)).count();
  sys_time::rep r = 0;
  if (__builtin_mul_overflow(epoch_seconds, per_second, &r) || __builtin_add_overflow(r, sub.count(), &r))
    return epoch_seconds < 0 ? sys_time::min() : sys_time::max();
  return sys_time(sys_time::duration(r));
}

}  // namespace

sys_time add_duration(sys_time from, const duration_spec& d) noexcept {
  using namespace std::chrono;
  using u = duration_spec::unit;
  if (d.n <= 0) return from;
  // parse_duration allows n up to ~1e9: "1000000000w" is far beyond the clock's range,
  // so every sum saturates at sys_time::max() instead of overflowing.
  auto add_seconds = [&](std::int64_t unit_seconds) noexcept -> sys_time {
    std::int64_t s = 0;
    if (__builtin_mul_overflow(d.n, unit_seconds, &s)) return sys_time::max();
    auto whole = floor<seconds>(from);
    std::int64_t total = 0;
    if (__builtin_add_overflow(whole.time_since_epoch().count(), s, &total)) return sys_time::max();
    return saturating_time(total, from - whole);
  };
  switch (d.u) {
    case u::seconds: return add_seconds(1);
    case u::minutes: return add_seconds(60);
    case u::hours: return add_seconds(3600);
    case u::days: return add_seconds(86400);
    case u::weeks: return add_seconds(7 * 86400);
    case u::months: {
      auto day = floor<days>(from);
      year_month_day ymd{day};
      auto tod = from - day;
      // Month arithmetic in int64: chrono::year only holds +-32767.
      std::int64_t index = static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
                           static_cast<std::int64_t>(static_cast<unsigned>(ymd.month())) - 1;
      if (d.n > 12 * 30000 || index + d.n > 12LL * 30000) return sys_time::max();
      index += d.n;
      year y{static_cast<int>(index / 12)};
      month m{static_cast<unsigned>(index % 12) + 1};
      auto last = year_month_day_last{y, month_day_last{m}}.day();
      auto dd = ymd.day() > last ? last : ymd.day();
      std::int64_t target_days = sys_days{y / m / dd}.time_since_epoch().count();
      auto whole = floor<seconds>(tod);
      return saturating_time(target_days * 86400 + whole.count(), tod - whole);
    }
  }
  return from;
}

namespace {

struct calendar_state {
  bool aligned = true;
  bool utc = true;
};
calendar_state g_calendar;

bool aligned_unit(const duration_spec& d) noexcept {
  using u = duration_spec::unit;
  return d.u == u::days || d.u == u::weeks || d.u == u::months;
}

/// The local calendar date of `t` in the configured zone.
std::chrono::year_month_day local_date(sys_time t) noexcept {
  using namespace std::chrono;
  if (g_calendar.utc) return year_month_day{floor<days>(t)};
  std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  return year{tm.tm_year + 1900} / month{static_cast<unsigned>(tm.tm_mon + 1)} / day{static_cast<unsigned>(tm.tm_mday)};
}

/// 00:00 local time on `date`, as a UTC instant (the first valid local time when a
/// DST change skips midnight).
sys_time local_midnight(std::chrono::year_month_day date) noexcept {
  using namespace std::chrono;
  if (!date.ok()) return sys_time::max();
  if (g_calendar.utc) return sys_days{date};
  std::tm tm{};
  tm.tm_year = static_cast<int>(date.year()) - 1900;
  tm.tm_mon = static_cast<int>(static_cast<unsigned>(date.month())) - 1;
  tm.tm_mday = static_cast<int>(static_cast<unsigned>(date.day()));
  tm.tm_isdst = -1;
  std::time_t tt = ::mktime(&tm);
  if (tt == static_cast<std::time_t>(-1)) return sys_days{date};
  return system_clock::from_time_t(tt);
}

/// The first aligned boundary after `now` for a day, week or month duration.
sys_time calendar_boundary(sys_time now, const duration_spec& d) noexcept {
  using namespace std::chrono;
  using u = duration_spec::unit;
  if (d.n > 400000) return sys_time::max();  // past any clock we care about
  auto today = sys_days{local_date(now)};
  sys_days target{};
  if ((d.u == u::days && d.n == 30) || d.u == u::months) {
    std::int64_t n = d.u == u::months ? d.n : 1;
    year_month_day ymd{today};
    std::int64_t index = static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
                         static_cast<std::int64_t>(static_cast<unsigned>(ymd.month())) - 1 + n;
    if (index / 12 > 30000) return sys_time::max();
    target = sys_days{year{static_cast<int>(index / 12)} / month{static_cast<unsigned>(index % 12) + 1} / 1};
  } else if ((d.u == u::days && d.n == 7) || d.u == u::weeks) {
    std::int64_t weeks_on = d.u == u::weeks ? d.n : 1;
    weekday wd{today};
    // Days from today to the next Monday (a Monday goes to the one after).
    unsigned to_monday = (8 - wd.iso_encoding()) % 7;
    if (to_monday == 0) to_monday = 7;
    target = today + days{to_monday} + days{7 * (weeks_on - 1)};
  } else {
    target = today + days{d.n};
  }
  return local_midnight(year_month_day{target});
}

}  // namespace

bool set_reset_calendar(bool aligned, const std::string& time_zone, std::string& err) {
  std::string tz = time_zone.empty() ? "UTC" : time_zone;
  bool utc = tz == "UTC" || tz == "Etc/UTC" || tz == "GMT" || tz == "Z" || tz == "utc";
  if (!utc) {
    // An IANA name: it must be a zone file (glibc silently falls back to UTC otherwise).
    const char* dir = std::getenv("TZDIR");
    std::string base = dir && *dir ? dir : "/usr/share/zoneinfo";
    bool sane = tz.find("..") == std::string::npos && tz.front() != '/';
    std::FILE* f = sane ? std::fopen((base + "/" + tz).c_str(), "rb") : nullptr;
    char magic[4] = {0, 0, 0, 0};
    bool ok = f && std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "TZif", 4) == 0;
    if (f) std::fclose(f);
    if (!ok) {
      err = "unknown time zone '" + tz + "' (an IANA name such as Europe/Berlin or US/Eastern, from " + base + ")";
      return false;
    }
    ::setenv("TZ", tz.c_str(), 1);
    ::tzset();
  }
  g_calendar.aligned = aligned;
  g_calendar.utc = utc;
  return true;
}

/// "24h" is a day to LiteLLM's calendar.
duration_spec calendar_spec(const duration_spec& d) noexcept {
  if (d.u == duration_spec::unit::hours && d.n == 24) return {duration_spec::unit::days, 1};
  return d;
}

sys_time first_reset(sys_time now, const duration_spec& spec) noexcept {
  auto d = calendar_spec(spec);
  if (d.n <= 0) return now;
  if (g_calendar.aligned && aligned_unit(d)) return calendar_boundary(now, d);
  return add_duration(now, d);
}

sys_time next_reset(sys_time reset_at, sys_time now, const duration_spec& spec) noexcept {
  auto d = calendar_spec(spec);
  if (d.n <= 0) return now;
  if (g_calendar.aligned && aligned_unit(d)) return calendar_boundary(now, d);
  auto t = reset_at;
  while (t <= now) {
    auto next = add_duration(t, d);
    if (next <= t) return sys_time::max();  // saturated at the clock's end
    // Fixed-length periods far behind (a "1s" budget idle for a month): jump.
    auto period = next - t;
    auto behind = (now - t) / period;
    if (d.u != duration_spec::unit::months && behind > 1) next = t + behind * period;
    t = next;
  }
  return t;
}

std::string hash_key(std::string_view plain) {
  // On the request path for every virtual key: OpenSSL 3 looks the algorithm up (under
  // locks) on every EVP_sha256()/SHA256() call; fetch it once and reuse one context
  // per thread.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct ctx_holder {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~ctx_holder() { EVP_MD_CTX_free(ctx); }
  };
  thread_local ctx_holder h;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!sha256 || !h.ctx || EVP_DigestInit_ex(h.ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(h.ctx, plain.data(), plain.size()) != 1 || EVP_DigestFinal_ex(h.ctx, md, &len) != 1)
    throw std::runtime_error("SHA-256 failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  return out;
}

std::string generate_key() {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char bytes[22];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness from the OS");
  std::string k = "sk-";
  for (unsigned char b : bytes) k += alphabet[b & 63];  // 22 x 6 bits = 132 bits
  return k;
}

std::string abbreviate_key(std::string_view plain) {
  if (plain.size() <= 4) return "sk-...";
  return "sk-..." + std::string(plain.substr(plain.size() - 4));
}

}  // namespace gw::keys
