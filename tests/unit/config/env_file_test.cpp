#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gw/config/config.hpp"

namespace gw::config {
namespace {

std::string write_temp(const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("gw-env-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(std::rand()) + ".env");
  std::ofstream(p) << text;
  return p.string();
}

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "<unset>";
}

TEST(EnvFile, DotenvSemantics) {
  for (auto k : {"GW_E_A", "GW_E_B", "GW_E_C", "GW_E_D", "GW_E_E", "GW_E_F", "GW_E_G"}) unsetenv(k);
  setenv("GW_E_G", "from-environment", 1);
  auto path = write_temp(
      "# a comment\n"
      "\n"
      "GW_E_A=plain\n"
      "export GW_E_B = spaced value  # trailing comment\n"
      "GW_E_C=\"double \\\"quoted\\\" \\n line\"\n"
      "GW_E_D='single $NOT #expanded'\n"
      "GW_E_E=\n"
      "GW_E_F=a#b\n"
      "GW_E_G=from-file\n");
  std::string err;
  bool missing = true;
  ASSERT_TRUE(load_env_file(path, err, missing)) << err;
  EXPECT_FALSE(missing);
  EXPECT_EQ(env("GW_E_A"), "plain");
  EXPECT_EQ(env("GW_E_B"), "spaced value");
  EXPECT_EQ(env("GW_E_C"), "double \"quoted\" \n line");
  EXPECT_EQ(env("GW_E_D"), "single $NOT #expanded");
  EXPECT_EQ(env("GW_E_E"), "");
  EXPECT_EQ(env("GW_E_F"), "a#b");
  EXPECT_EQ(env("GW_E_G"), "from-environment") << "the environment wins over .env";
  std::filesystem::remove(path);
}

TEST(EnvFile, MalformedLinesNameTheLine) {
  std::string err;
  bool missing = false;
  auto p1 = write_temp("GW_E_OK=1\nno equals sign here\n");
  EXPECT_FALSE(load_env_file(p1, err, missing));
  EXPECT_NE(err.find(":2:"), std::string::npos) << err;
  auto p2 = write_temp("1BAD=x\n");
  EXPECT_FALSE(load_env_file(p2, err, missing));
  EXPECT_NE(err.find("invalid variable name"), std::string::npos) << err;
  auto p3 = write_temp("GW_E_Q=\"unterminated\n");
  EXPECT_FALSE(load_env_file(p3, err, missing));
  EXPECT_NE(err.find("unterminated"), std::string::npos) << err;
  for (auto& p : {p1, p2, p3}) std::filesystem::remove(p);
}

TEST(EnvFile, MissingFileIsNotAnError) {
  std::string err;
  bool missing = false;
  EXPECT_TRUE(load_env_file("/nonexistent/.env", err, missing));
  EXPECT_TRUE(missing);
}

}  // namespace
}  // namespace gw::config
