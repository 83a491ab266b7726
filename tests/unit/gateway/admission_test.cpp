#include <gtest/gtest.h>

#include "gw/gateway/admission.hpp"

namespace gw::gateway {
namespace {

TEST(MinuteWindow, SlidesOverSixtySeconds) {
  minute_window w;
  w.add(100, 5);
  w.add(130, 3);
  EXPECT_EQ(w.sum(130), 8);
  EXPECT_EQ(w.sum(159), 8);
  EXPECT_EQ(w.sum(160), 3) << "the bucket of second 100 leaves the window";
  EXPECT_EQ(w.sum(190), 0);
  w.add(1000, 2);
  EXPECT_EQ(w.sum(1000), 2) << "a long gap clears everything";
}

TEST(Admission, ParallelCap) {
  admission_control a(std::nullopt, std::nullopt, 2);
  EXPECT_EQ(a.try_admit(1, 10), admit_result::admitted);
  EXPECT_EQ(a.try_admit(1, 10), admit_result::admitted);
  EXPECT_EQ(a.try_admit(1, 10), admit_result::over_parallel);
  a.release(1, 10, 12);
  EXPECT_EQ(a.try_admit(1, 10), admit_result::admitted);
  EXPECT_EQ(a.in_flight(), 2);
}

TEST(Admission, RpmWindow) {
  admission_control a(3, std::nullopt, std::nullopt);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(a.try_admit(10, 1), admit_result::admitted);
    a.release(10, 1, 1);
  }
  EXPECT_EQ(a.try_admit(30, 1), admit_result::over_rpm);
  EXPECT_EQ(a.try_admit(70, 1), admit_result::admitted) << "a minute later";
}

TEST(Admission, TpmCountsActualTokens) {
  admission_control a(std::nullopt, 100, std::nullopt);
  ASSERT_EQ(a.try_admit(5, 10), admit_result::admitted);
  a.release(5, 10, 95);  // used far more than estimated
  EXPECT_EQ(a.tokens_last_minute(5), 95);
  EXPECT_EQ(a.try_admit(6, 10), admit_result::over_tpm);
  EXPECT_EQ(a.try_admit(6, 5), admit_result::admitted);
}

TEST(Admission, OversizedRequestRunsOnEmptyWindow) {
  admission_control a(std::nullopt, 100, std::nullopt);
  EXPECT_EQ(a.try_admit(5, 500), admit_result::admitted);
  EXPECT_EQ(a.try_admit(5, 1), admit_result::over_tpm);
}

}  // namespace
}  // namespace gw::gateway
