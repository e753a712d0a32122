// Rank-aware logging: prefixes, levels, rank-0-only info.
#include <gtest/gtest.h>

#include <functional>

#include "core/log.h"

namespace dtrain {
namespace {

std::string capture(const std::function<void()>& f) {
  ::testing::internal::CaptureStderr();
  f();
  return ::testing::internal::GetCapturedStderr();
}

TEST(Logger, SingleRankHasPlainPrefix) {
  Logger log(0, 1);
  std::string out = capture([&] { log.info("loss ", 0.5, " at step ", 3); });
  EXPECT_NE(out.find("[dtrain] info: loss 0.5 at step 3"), std::string::npos) << out;
}

TEST(Logger, MultiRankPrefixNamesTheRank) {
  Logger log(2, 4);
  std::string out = capture([&] { log.warn("slow step"); });
  EXPECT_NE(out.find("[dtrain r2/4] warn: slow step"), std::string::npos) << out;
}

TEST(Logger, InfoOnlyFromRankZeroUnlessAllRanks) {
  std::string quiet = capture([&] { Logger(1, 2).info("hello"); });
  EXPECT_EQ(quiet, "");
  std::string loud = capture([&] { Logger(1, 2, LogLevel::Info, true).info("hello"); });
  EXPECT_NE(loud.find("r1/2] info: hello"), std::string::npos) << loud;
  std::string err = capture([&] { Logger(1, 2).error("bad"); });
  EXPECT_NE(err.find("r1/2] error: bad"), std::string::npos) << err;
}

TEST(Logger, LevelFilters) {
  Logger log(0, 1, LogLevel::Warn);
  EXPECT_EQ(capture([&] { log.info("x"); log.debug("y"); }), "");
  EXPECT_NE(capture([&] { log.warn("z"); }), "");
}

TEST(Logger, ParseLevel) {
  EXPECT_EQ(Logger::parse_level("debug"), LogLevel::Debug);
  EXPECT_EQ(Logger::parse_level("error"), LogLevel::Error);
  EXPECT_THROW(Logger::parse_level("verbose"), ConfigError);
}

}  // namespace
}  // namespace dtrain
