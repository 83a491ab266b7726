// Thread-local parsers give memory back (issue 18, item 6): a parser grown by a large
// document is replaced before a much smaller one, so a thread does not keep the largest
// request's buffers for good.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "gw/core/json_parsers.hpp"

namespace gw {
namespace {

std::string big_json(std::size_t bytes) {
  std::string s = "[";
  while (s.size() < bytes) s += "\"abcdefghijklmnopqrstuvwxyz\",";
  s += "1]";
  return s;
}

TEST(FitParser, AParserGrownByALargeDocumentIsReplacedBeforeASmallOne) {
  simdjson::ondemand::parser p;
  simdjson::padded_string big(big_json(8 << 20));
  simdjson::ondemand::document doc;
  ASSERT_FALSE(fit_parser(p, big.size()).iterate(big).get(doc));
  ASSERT_GE(p.capacity(), big.size());
  simdjson::padded_string small(std::string(R"({"model":"x"})"));
  ASSERT_FALSE(fit_parser(p, small.size()).iterate(small).get(doc));
  EXPECT_LE(p.capacity(), k_keep_parser_bytes);
}

TEST(FitParser, AParserWithinTheKeptSizeIsKept) {
  simdjson::dom::parser p;
  simdjson::padded_string doc(big_json(256 << 10));
  simdjson::dom::element e;
  ASSERT_FALSE(fit_parser(p, doc.size()).parse(doc).get(e));
  auto cap = p.capacity();
  ASSERT_GE(cap, doc.size());
  fit_parser(p, 10);
  EXPECT_EQ(p.capacity(), cap);  // 256 KiB is below what is kept: no reallocation per request
}

TEST(FitBuffer, ABufferGrownPastTheKeptSizeIsFreedForASmallUse) {
  std::vector<char> buf(4 << 20);
  fit_buffer(buf, 100);
  EXPECT_EQ(buf.capacity(), 0u);
  std::string s(2 << 20, 'x');
  fit_buffer(s, 1 << 20);  // half or more of it is still wanted: kept
  EXPECT_GE(s.capacity(), std::size_t{2} << 20);
}

}  // namespace
}  // namespace gw
