// W3C trace context: traceparent parsing and formatting, ids.

#include "gw/tracing/record.hpp"

#include <gtest/gtest.h>

#include <set>

namespace t = gw::tracing;

TEST(Traceparent, ParsesTheSpecExample) {
  auto c = t::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(c);
  EXPECT_EQ(t::to_hex(c->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t::to_hex(c->parent), "00f067aa0ba902b7");
  EXPECT_EQ(c->flags, 1);
}

TEST(Traceparent, RoundTrips) {
  auto tr = t::new_trace_id();
  auto sp = t::new_span_id();
  auto s = t::format_traceparent(tr, sp, 0);
  EXPECT_EQ(s.size(), 55u);
  auto c = t::parse_traceparent(s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace, tr);
  EXPECT_EQ(c->parent, sp);
  EXPECT_EQ(c->flags, 0);
}

TEST(Traceparent, RefusesWhatW3cRefuses) {
  for (const char* bad : {
           "",                                                            // empty
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",        // no flags
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // zero parent
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // version ff
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     // upper case
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",     // not hex
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", // v00 with more
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // separator
       })
    EXPECT_FALSE(t::parse_traceparent(bad)) << bad;
}

TEST(Traceparent, AcceptsAFutureVersionWithMoreFieldsAndSurroundingSpace) {
  EXPECT_TRUE(t::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"));
  EXPECT_TRUE(t::parse_traceparent("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "));
}

TEST(Ids, HexRoundTripAndNeverZero) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto tr = t::new_trace_id();
    auto sp = t::new_span_id();
    EXPECT_FALSE(t::is_zero(tr));
    EXPECT_FALSE(t::is_zero(sp));
    EXPECT_EQ(t::trace_id_from_hex(t::to_hex(tr)), tr);
    EXPECT_EQ(t::span_id_from_hex(t::to_hex(sp)), sp);
    seen.insert(t::to_hex(tr));
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(t::trace_id_from_hex("abc"));
  EXPECT_FALSE(t::span_id_from_hex("zz00000000000000"));
}
