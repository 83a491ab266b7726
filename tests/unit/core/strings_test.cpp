#include <gtest/gtest.h>

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
