#include <gtest/gtest.h>

#include <string>

#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"

namespace gw {
namespace {

TEST(Strings, SecureEquals) {
  EXPECT_TRUE(secure_equals("sk-1234", "sk-1234"));
  EXPECT_FALSE(secure_equals("sk-1235", "sk-1234"));
  EXPECT_FALSE(secure_equals("sk-123", "sk-1234"));
  EXPECT_FALSE(secure_equals("sk-12345", "sk-1234"));
  EXPECT_FALSE(secure_equals("", "sk-1234"));
  EXPECT_TRUE(secure_equals("", ""));
  EXPECT_FALSE(secure_equals("sk-1234", ""));
}

TEST(Strings, SecureEqualsEveryPositionAndLength) {
  // Word-at-a-time: a difference in any byte, at any length around the word size, and
  // a prefix or extension of the secret must all compare unequal.
  for (std::size_t n = 1; n <= 40; ++n) {
    std::string secret;
    for (std::size_t i = 0; i < n; ++i) secret += static_cast<char>('a' + (i * 7) % 26);
    EXPECT_TRUE(secure_equals(std::string(secret), secret)) << n;
    for (std::size_t i = 0; i < n; ++i) {
      auto other = secret;
      other[i] = static_cast<char>(other[i] ^ 1);
      EXPECT_FALSE(secure_equals(other, secret)) << n << " at " << i;
    }
    EXPECT_FALSE(secure_equals(secret.substr(0, n - 1), secret)) << n;
    EXPECT_FALSE(secure_equals(secret + "x", secret)) << n;
    EXPECT_FALSE(secure_equals(secret + std::string(1, '\0'), secret)) << n;
    EXPECT_FALSE(secure_equals(secret, secret + std::string(1, '\0'))) << n;
  }
}

TEST(Strings, ParseNumbers) {
  EXPECT_EQ(parse_int(" 42 "), 42);
  EXPECT_FALSE(parse_int("4x2").has_value());
  EXPECT_FALSE(parse_int("").has_value());
  EXPECT_DOUBLE_EQ(*parse_double("2.5"), 2.5);
  EXPECT_FALSE(parse_double("nan").has_value());
  EXPECT_FALSE(parse_double("1e999").has_value());
}

TEST(Strings, TrimSplitCase) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  auto parts = split("a,b,,c", ',');
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[2], "");
  EXPECT_TRUE(iequals("Bearer", "bEARER"));
  EXPECT_EQ(to_lower("ABC"), "abc");
}

TEST(Log, ParseLevel) {
  log::level l{};
  EXPECT_TRUE(log::parse_level("WARNING", l));
  EXPECT_EQ(l, log::level::warn);
  EXPECT_TRUE(log::parse_level("debug", l));
  EXPECT_EQ(l, log::level::debug);
  EXPECT_FALSE(log::parse_level("loud", l));
}

}  // namespace
}  // namespace gw
