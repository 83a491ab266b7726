#include <gtest/gtest.h>

#include "gw/http/upstream.hpp"

namespace gw::http {
namespace {

TEST(ParseUrl, HttpsDefaults) {
  endpoint ep;
  std::string err;
  ASSERT_TRUE(parse_url("https://api.openai.com/v1", ep, err)) << err;
  EXPECT_TRUE(ep.tls);
  EXPECT_EQ(ep.host, "api.openai.com");
  EXPECT_EQ(ep.port, 443);
  EXPECT_EQ(ep.base_path, "/v1");
  EXPECT_EQ(ep.authority, "api.openai.com");
  EXPECT_EQ(ep.pool_key, "https://api.openai.com:443");
}

TEST(ParseUrl, PortPathAndTrailingSlash) {
  endpoint ep;
  std::string err;
  ASSERT_TRUE(parse_url("http://127.0.0.1:8090/v1/", ep, err)) << err;
  EXPECT_FALSE(ep.tls);
  EXPECT_EQ(ep.port, 8090);
  EXPECT_EQ(ep.base_path, "/v1");
  EXPECT_EQ(ep.authority, "127.0.0.1:8090");
  ASSERT_TRUE(parse_url("HTTP://example.com", ep, err));
  EXPECT_EQ(ep.base_path, "");
  EXPECT_EQ(ep.port, 80);
}

TEST(ParseUrl, Ipv6) {
  endpoint ep;
  std::string err;
  ASSERT_TRUE(parse_url("http://[::1]:9000/api", ep, err)) << err;
  EXPECT_EQ(ep.host, "::1");
  EXPECT_EQ(ep.authority, "[::1]:9000");
}

TEST(ParseUrl, Rejects) {
  endpoint ep;
  std::string err;
  EXPECT_FALSE(parse_url("ftp://x", ep, err));
  EXPECT_FALSE(parse_url("http://", ep, err));
  EXPECT_FALSE(parse_url("http://host:99999", ep, err));
  EXPECT_FALSE(parse_url("http://host:abc", ep, err));
  EXPECT_FALSE(parse_url("http://user:pw@host", ep, err));
  EXPECT_FALSE(parse_url("api.openai.com/v1", ep, err));
}

}  // namespace
}  // namespace gw::http
