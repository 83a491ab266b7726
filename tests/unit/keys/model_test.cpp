#include "gw/keys/model.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <set>

namespace {

using namespace gw::keys;
using std::chrono::days;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::month;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::year;
using gw::keys::sys_time;

sys_time at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return sys_days{year{y} / month{m} / std::chrono::day{d}} + hours(hh) + minutes(mm) + seconds(ss);
}

TEST(Money, FromDollarsRoundsToNearestPico) {
  EXPECT_EQ(from_dollars(0.1), 100'000'000'000);
  EXPECT_EQ(from_dollars(1.0), pico_per_dollar);
  EXPECT_EQ(from_dollars(0.0), 0);
  EXPECT_EQ(from_dollars(-2.5), -2'500'000'000'000);
  EXPECT_EQ(from_dollars(1e-12), 1);
  EXPECT_EQ(from_dollars(0.4e-12), 0);
  EXPECT_EQ(from_dollars(0.6e-12), 1);
  EXPECT_EQ(from_dollars(0.02 / 1e6), 20'000);  // 0.02 USD per million tokens, per token
  EXPECT_EQ(from_dollars(std::numeric_limits<double>::quiet_NaN()), 0);
}

TEST(Money, FromDollarsSaturates) {
  EXPECT_EQ(from_dollars(1e30), std::numeric_limits<money>::max());
  EXPECT_EQ(from_dollars(-1e30), std::numeric_limits<money>::min());
  EXPECT_EQ(from_dollars(std::numeric_limits<double>::infinity()), std::numeric_limits<money>::max());
  // Just inside the range: not saturated (it used to saturate from 9.2e6 USD on).
  EXPECT_EQ(from_dollars(9'210'000.0), 9'210'000 * pico_per_dollar);
}

TEST(Money, ToDollars) {
  EXPECT_DOUBLE_EQ(to_dollars(100'000'000'000), 0.1);
  EXPECT_EQ(to_dollars(100'000'000'000), 0.1);  // exactly the double nearest 0.1
  EXPECT_EQ(to_dollars(-3 * pico_per_dollar), -3.0);
  EXPECT_EQ(to_dollars(0), 0.0);
  EXPECT_DOUBLE_EQ(to_dollars(1), 1e-12);
  for (double usd : {0.1, 0.3, 12.34, 1e-6, 123.456789, 9000000.5, -0.7})
    EXPECT_EQ(from_dollars(to_dollars(from_dollars(usd))), from_dollars(usd)) << usd;
}

TEST(Money, ToDecimal) {
  EXPECT_EQ(to_decimal(1234), "0.000000001234");
  EXPECT_EQ(to_decimal(-5 * pico_per_dollar), "-5.000000000000");
  EXPECT_EQ(to_decimal(0), "0.000000000000");
  EXPECT_EQ(to_decimal(100'000'000'000), "0.100000000000");
  EXPECT_EQ(to_decimal(-1), "-0.000000000001");
  EXPECT_EQ(to_decimal(std::numeric_limits<money>::max()), "9223372.036854775807");
  EXPECT_EQ(to_decimal(std::numeric_limits<money>::min()), "-9223372.036854775808");
}

TEST(Money, ParseDecimal) {
  money m = -1;
  ASSERT_TRUE(parse_decimal("0.1", m));
  EXPECT_EQ(m, 100'000'000'000);
  ASSERT_TRUE(parse_decimal("12", m));
  EXPECT_EQ(m, 12 * pico_per_dollar);
  ASSERT_TRUE(parse_decimal("0.5", m));
  EXPECT_EQ(m, pico_per_dollar / 2);
  ASSERT_TRUE(parse_decimal("-0.000000000001", m));
  EXPECT_EQ(m, -1);
  ASSERT_TRUE(parse_decimal("+3.25", m));
  EXPECT_EQ(m, 3'250'000'000'000);
  ASSERT_TRUE(parse_decimal(".5", m));
  EXPECT_EQ(m, pico_per_dollar / 2);
  ASSERT_TRUE(parse_decimal("5.", m));
  EXPECT_EQ(m, 5 * pico_per_dollar);
  ASSERT_TRUE(parse_decimal("9223372.036854775807", m));
  EXPECT_EQ(m, std::numeric_limits<money>::max());
}

TEST(Money, ParseDecimalRoundsBeyondTwelveDigits) {
  money m = 0;
  ASSERT_TRUE(parse_decimal("0.0000000000015", m));
  EXPECT_EQ(m, 2);
  ASSERT_TRUE(parse_decimal("0.0000000000014999", m));
  EXPECT_EQ(m, 1);
  ASSERT_TRUE(parse_decimal("-0.0000000000015", m));
  EXPECT_EQ(m, -2);  // half away from zero
  ASSERT_TRUE(parse_decimal("0.9999999999995", m));
  EXPECT_EQ(m, pico_per_dollar);
}

TEST(Money, ParseDecimalRefusesMalformedAndOutOfRange) {
  money m = 42;
  for (std::string_view bad : {"", "-", "+", ".", "1e-6", "1E3", "abc", "1.2.3", " 1", "1 ", "0x10",
                               "1,5", "--1", "9223372.036854775808", "9223373", "10000000",
                               "20000000", "100000000000", "18446744073709551616"}) {
    EXPECT_FALSE(parse_decimal(bad, m)) << bad;
  }
  EXPECT_EQ(m, 42);  // untouched on failure
}

TEST(Money, DecimalRoundTrips) {
  for (money v : {money{0}, money{1}, money{-1}, money{1234}, money{100'000'000'000},
                  money{-5'000'000'000'000}, money{123'456'789'012'345},
                  std::numeric_limits<money>::max(), std::numeric_limits<money>::min() + 1}) {
    money back = 0;
    ASSERT_TRUE(parse_decimal(to_decimal(v), back)) << to_decimal(v);
    EXPECT_EQ(back, v);
  }
}

TEST(Duration, ParsesEveryUnit) {
  duration_spec d;
  using u = duration_spec::unit;
  struct {
    std::string_view text;
    u unit;
    std::int64_t n;
  } cases[] = {{"30s", u::seconds, 30}, {"30m", u::minutes, 30}, {"30h", u::hours, 30},
               {"30d", u::days, 30},    {"1w", u::weeks, 1},     {"1mo", u::months, 1},
               {"12mo", u::months, 12}, {"1s", u::seconds, 1}};
  for (const auto& c : cases) {
    ASSERT_TRUE(parse_duration(c.text, d)) << c.text;
    EXPECT_EQ(d.u, c.unit) << c.text;
    EXPECT_EQ(d.n, c.n) << c.text;
  }
}

TEST(Duration, RefusesBadForms) {
  duration_spec d;
  for (std::string_view bad : {"", "30", "s", "0d", "-1d", "1.5h", "30x", "30 d", " 30d", "30dd",
                               "1M", "1mon", "1month", "30D", "999999999999d", "+1d"}) {
    EXPECT_FALSE(parse_duration(bad, d)) << bad;
  }
}

TEST(Duration, AddsFixedUnits) {
  auto t = at(2026, 1, 1, 10, 0, 0) + milliseconds(250);
  EXPECT_EQ(add_duration(t, {duration_spec::unit::seconds, 30}), t + seconds(30));
  EXPECT_EQ(add_duration(t, {duration_spec::unit::minutes, 30}), t + minutes(30));
  EXPECT_EQ(add_duration(t, {duration_spec::unit::hours, 30}), t + hours(30));
  EXPECT_EQ(add_duration(t, {duration_spec::unit::days, 30}), t + hours(24 * 30));
  EXPECT_EQ(add_duration(t, {duration_spec::unit::weeks, 2}), t + hours(24 * 14));
}

TEST(Duration, AddsCalendarMonthsClampedToMonthEnd) {
  using u = duration_spec::unit;
  auto tod = hours(10) + minutes(5) + microseconds(7);
  EXPECT_EQ(add_duration(at(2026, 1, 31) + tod, {u::months, 1}), at(2026, 2, 28) + tod);
  EXPECT_EQ(add_duration(at(2028, 1, 31) + tod, {u::months, 1}), at(2028, 2, 29) + tod);  // leap
  EXPECT_EQ(add_duration(at(2026, 3, 31), {u::months, 1}), at(2026, 4, 30));
  EXPECT_EQ(add_duration(at(2026, 1, 15), {u::months, 1}), at(2026, 2, 15));
  EXPECT_EQ(add_duration(at(2026, 11, 30), {u::months, 3}), at(2027, 2, 28));
  EXPECT_EQ(add_duration(at(2026, 12, 31), {u::months, 12}), at(2027, 12, 31));
  EXPECT_EQ(add_duration(at(2026, 5, 20), {u::months, 25}), at(2028, 6, 20));
}

TEST(Duration, HugeDurationsSaturateInsteadOfOverflowing) {
  using u = duration_spec::unit;
  auto t = at(2026, 1, 1);
  duration_spec d;
  ASSERT_TRUE(parse_duration("999999999w", d));
  EXPECT_EQ(add_duration(t, d), sys_time::max());
  ASSERT_TRUE(parse_duration("999999999mo", d));
  EXPECT_EQ(add_duration(t, d), sys_time::max());
  EXPECT_EQ(add_duration(t, {u::days, 300 * 366}), sys_time::max());
  EXPECT_EQ(add_duration(t, {u::months, 12 * 300}), sys_time::max());
  // Still exact close to the limit.
  EXPECT_EQ(add_duration(t, {u::months, 12 * 200}), at(2226, 1, 1));
}

// Restores the default calendar (aligned, UTC) when a test changes it.
struct calendar_guard {
  ~calendar_guard() {
    std::string err;
    set_reset_calendar(true, "UTC", err);
  }
};

TEST(ResetCalendar, AlignedInUtcByDefault) {
  using u = duration_spec::unit;
  auto sat = at(2026, 1, 31, 8, 30);  // a Saturday
  EXPECT_EQ(first_reset(sat, {u::days, 1}), at(2026, 2, 1));
  EXPECT_EQ(first_reset(sat, {u::hours, 24}), at(2026, 2, 1));  // 24h is a day
  EXPECT_EQ(first_reset(sat, {u::days, 7}), at(2026, 2, 2));     // Monday
  EXPECT_EQ(first_reset(sat, {u::weeks, 1}), at(2026, 2, 2));
  EXPECT_EQ(first_reset(sat, {u::weeks, 2}), at(2026, 2, 9));
  EXPECT_EQ(first_reset(sat, {u::days, 30}), at(2026, 2, 1));  // the 1st
  EXPECT_EQ(first_reset(sat, {u::months, 1}), at(2026, 2, 1));
  EXPECT_EQ(first_reset(sat, {u::months, 3}), at(2026, 4, 1));
  EXPECT_EQ(first_reset(at(2026, 12, 15), {u::months, 1}), at(2027, 1, 1));
  EXPECT_EQ(first_reset(sat, {u::days, 3}), at(2026, 2, 3));  // other counts: midnights on
  // A Monday goes to the next Monday, midnight to the next midnight.
  EXPECT_EQ(first_reset(at(2026, 2, 2), {u::days, 7}), at(2026, 2, 9));
  EXPECT_EQ(first_reset(at(2026, 2, 2), {u::days, 1}), at(2026, 2, 3));
  // Shorter units roll from the moment.
  EXPECT_EQ(first_reset(sat, {u::hours, 5}), sat + hours(5));
  EXPECT_EQ(first_reset(sat, {u::minutes, 30}), sat + minutes(30));
  // After a passed reset: the boundary after now.
  EXPECT_EQ(next_reset(at(2026, 1, 1), sat, {u::days, 1}), at(2026, 2, 1));
  EXPECT_EQ(next_reset(at(2026, 1, 1), sat, {u::months, 1}), at(2026, 2, 1));
  // Rolling units keep their phase: whole periods on from the old reset.
  EXPECT_EQ(next_reset(sat - minutes(95), sat, {u::minutes, 30}), sat + minutes(25));
}

TEST(ResetCalendar, RollingWhenNotAligned) {
  calendar_guard g;
  std::string err;
  ASSERT_TRUE(set_reset_calendar(false, "UTC", err)) << err;
  using u = duration_spec::unit;
  auto t = at(2026, 1, 31, 8, 30);
  EXPECT_EQ(first_reset(t, {u::days, 1}), t + hours(24));
  EXPECT_EQ(first_reset(t, {u::months, 1}), at(2026, 2, 28, 8, 30));
  EXPECT_EQ(next_reset(t - hours(50), t, {u::days, 1}), t + hours(22));
}

TEST(ResetCalendar, MidnightInTheConfiguredZoneAcrossDst) {
  calendar_guard g;
  std::string err;
  ASSERT_TRUE(set_reset_calendar(true, "America/New_York", err)) << err;
  using u = duration_spec::unit;
  // 2026-03-07 23:00 New York (EST, UTC-5) = 2026-03-08 04:00 UTC. The next local
  // midnight is 2026-03-08 00:00 EST = 05:00 UTC.
  EXPECT_EQ(first_reset(at(2026, 3, 8, 4), {u::days, 1}), at(2026, 3, 8, 5));
  // DST starts on 2026-03-08 at 02:00: the midnight after is EDT (UTC-4).
  EXPECT_EQ(first_reset(at(2026, 3, 8, 12), {u::days, 1}), at(2026, 3, 9, 4));
  // Monthly: 1 April 00:00 EDT.
  EXPECT_EQ(first_reset(at(2026, 3, 8, 12), {u::months, 1}), at(2026, 4, 1, 4));
  // Already 1 March in UTC but still 28 February in New York: the 1st is today, locally.
  EXPECT_EQ(first_reset(at(2026, 3, 1, 3), {u::days, 30}), at(2026, 3, 1, 5));
}

TEST(ResetCalendar, UnknownZoneIsRefused) {
  calendar_guard g;
  std::string err;
  EXPECT_FALSE(set_reset_calendar(true, "Mars/Olympus_Mons", err));
  EXPECT_NE(err.find("Mars/Olympus_Mons"), std::string::npos);
  EXPECT_FALSE(set_reset_calendar(true, "../../etc/passwd", err));
  EXPECT_TRUE(set_reset_calendar(true, "UTC", err));
}

TEST(Keys, HashKeyIsSha256Hex) {
  // printf %s sk-1234 | sha256sum
  EXPECT_EQ(hash_key("sk-1234"), "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b");
  EXPECT_EQ(hash_key(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Keys, GenerateKeyFormatAndUniqueness) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string k = generate_key();
    ASSERT_EQ(k.size(), 25u) << k;
    ASSERT_EQ(k.substr(0, 3), "sk-");
    for (char c : k.substr(3))
      ASSERT_TRUE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_')
          << k;
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Keys, AbbreviateKey) {
  EXPECT_EQ(abbreviate_key("sk-1234567890abcd"), "sk-...abcd");
  EXPECT_EQ(abbreviate_key("sk-1234"), "sk-...1234");
  EXPECT_EQ(abbreviate_key("abc"), "sk-...");
}

}  // namespace
