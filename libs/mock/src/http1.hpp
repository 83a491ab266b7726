#pragma once
// A small HTTP/1.x request parser for the mock provider: the request head in one pass
// over a contiguous buffer (no allocation once the header vector has grown), and an
// incremental decoder for chunked request bodies. Views point into the caller's buffer.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gw::mock::http1 {

struct header {
  std::string_view name, value;
};

struct request_head {
  std::string_view method, target;
  int minor_version = 1;             // HTTP/1.<minor_version>
  std::vector<header> headers;       // in arrival order
  std::size_t size = 0;              // bytes of the head, final empty line included
  std::int64_t content_length = -1;  // -1: none
  bool chunked = false;              // Transfer-Encoding: chunked
  bool keep_alive = true;
  bool expect_continue = false;
  std::string_view authorization;

  /// First header with this name (case-insensitive), empty if none.
  std::string_view find(std::string_view name) const noexcept;
};

enum class status { complete, incomplete, bad, too_large };

/// Parses the head at the start of `buf`. `incomplete` while the empty line that ends it
/// has not arrived (and `buf` is within `max_size`), `too_large` beyond it.
status parse_head(std::string_view buf, request_head& out, std::size_t max_size);

/// Incremental chunked-body decoder. feed() consumes what it can from `in`, appends the
/// payload to `body`, and returns complete once the last chunk and the trailers are read.
class chunked_decoder {
 public:
  void reset() noexcept { state_ = state::size_line, remaining_ = 0; }
  /// `consumed` is set to the number of bytes of `in` used (the rest belongs to the next
  /// call, or to the next request once complete).
  status feed(std::string_view in, std::size_t& consumed, std::string& body, std::size_t max_body);

 private:
  enum class state { size_line, data, data_crlf, trailer };
  state state_ = state::size_line;
  std::uint64_t remaining_ = 0;
};

}  // namespace gw::mock::http1
