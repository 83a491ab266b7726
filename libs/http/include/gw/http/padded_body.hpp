#pragma once
/// A Beast body type like string_body whose storage always keeps SIMDJSON_PADDING
/// bytes of spare capacity, so the JSON parser reads the body in place without a copy.

#include <cstdint>
#include <string>

#include "gw/http/asio.hpp"

namespace gw::http {

inline constexpr std::size_t json_padding = 64;  // == SIMDJSON_PADDING

/// Makes sure `s` has json_padding bytes of capacity past its size (copies only if not).
inline void ensure_padding(std::string& s) {
  if (s.capacity() < s.size() + json_padding) s.reserve(s.size() + json_padding);
}

struct padded_string_body {
  using value_type = std::string;

  static std::uint64_t size(const value_type& body) { return body.size(); }

  class reader {
    value_type& body_;

   public:
    template <bool is_request, class Fields>
    explicit reader(bhttp::header<is_request, Fields>&, value_type& b) : body_(b) {}

    void init(const boost::optional<std::uint64_t>& length, error_code& ec) {
      ec = {};
      if (length) {
        if (*length > body_.max_size() - json_padding) {
          ec = bhttp::error::buffer_overflow;
          return;
        }
        body_.reserve(static_cast<std::size_t>(*length) + json_padding);
      }
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      auto extra = beast::buffer_bytes(buffers);
      auto size = body_.size();
      if (extra > body_.max_size() - size - json_padding) {
        ec = bhttp::error::buffer_overflow;
        return 0;
      }
      if (body_.capacity() < size + extra + json_padding)
        body_.reserve(std::max(body_.capacity() * 2, size + extra + json_padding));
      body_.resize(size + extra);
      char* dest = body_.data() + size;
      for (auto b : beast::buffers_range_ref(buffers)) {
        std::memcpy(dest, b.data(), b.size());
        dest += b.size();
      }
      ec = {};
      return extra;
    }

    void finish(error_code& ec) { ec = {}; }
  };

  class writer {
    const value_type& body_;

   public:
    using const_buffers_type = asio::const_buffer;
    template <bool is_request, class Fields>
    explicit writer(const bhttp::header<is_request, Fields>&, const value_type& b) : body_(b) {}
    void init(error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(error_code& ec) {
      ec = {};
      return {{const_buffers_type{body_.data(), body_.size()}, false}};
    }
  };
};

using request = bhttp::request<padded_string_body>;

}  // namespace gw::http
