#include <gtest/gtest.h>

#include "gw/core/error.hpp"
#include "gw/core/ids.hpp"
#include "gw/core/json_writer.hpp"

namespace gw {
namespace {

TEST(Error, StatusAndTypeMapping) {
  EXPECT_EQ(http_status(errc::invalid_json), 400);
  EXPECT_EQ(http_status(errc::auth_error), 401);
  EXPECT_EQ(http_status(errc::model_not_found), 404);
  EXPECT_EQ(http_status(errc::method_not_allowed), 405);
  EXPECT_EQ(http_status(errc::payload_too_large), 413);
  EXPECT_EQ(http_status(errc::rate_limited), 429);
  EXPECT_EQ(http_status(errc::upstream_connect_error), 502);
  EXPECT_EQ(http_status(errc::upstream_timeout), 504);
  EXPECT_EQ(error_type(errc::auth_error), "auth_error");
  EXPECT_EQ(error_type(errc::rate_limited), "rate_limit_error");
  EXPECT_EQ(error_code_string(errc::model_not_found), "model_not_found");
}

TEST(Error, OpenAIShape) {
  error e{errc::missing_parameter, "Missing required parameter: 'messages'", "messages"};
  EXPECT_EQ(to_openai_json(e),
            R"({"error":{"message":"Missing required parameter: 'messages'",)"
            R"("type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}})");
  error n{errc::auth_error, "bad \"key\"\n", ""};
  EXPECT_EQ(to_openai_json(n),
            R"({"error":{"message":"bad \"key\"\n","type":"auth_error","param":null,"code":"invalid_api_key"}})");
}

TEST(JsonWriter, EscapesControlCharacters) {
  std::string out;
  append_json_string(out, std::string_view("a\x01\\b", 4));
  EXPECT_EQ(out, R"("a\u0001\\b")");
  out.clear();
  append_json_number(out, 0.5);
  EXPECT_EQ(out, "0.5");
  out.clear();
  append_json_number(out, std::int64_t{-42});
  EXPECT_EQ(out, "-42");
}

TEST(Ids, UuidV4Format) {
  auto a = new_request_id();
  auto b = new_request_id();
  ASSERT_EQ(a.size(), 36u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
}

}  // namespace
}  // namespace gw
