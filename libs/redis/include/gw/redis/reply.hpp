#pragma once
/// A Redis reply as a connection's callback sees it: a view of hiredis' reply, valid only
/// during that callback. Inline: the rate limiter reads every element of a reply per
/// request.

#include <cstddef>
#include <string_view>

#include <hiredis/hiredis.h>

namespace gw::redis {

class reply {
 public:
  explicit reply(const redisReply* r) noexcept : r_(r) {}
  bool is_string() const noexcept { return type() == REDIS_REPLY_STRING; }  ///< a bulk string (GET's value)
  bool is_status() const noexcept { return type() == REDIS_REPLY_STATUS; }  ///< a status ("OK")
  bool is_integer() const noexcept { return type() == REDIS_REPLY_INTEGER; }
  bool is_nil() const noexcept { return !r_ || r_->type == REDIS_REPLY_NIL; }  ///< e.g. GET of a missing key
  bool is_array() const noexcept { return type() == REDIS_REPLY_ARRAY; }
  bool is_error() const noexcept { return type() == REDIS_REPLY_ERROR; }  ///< WRONGTYPE, NOSCRIPT, ...
  /// An EVALSHA of a script Redis does not have (SCRIPT FLUSH, a restart, a failover).
  bool is_noscript() const noexcept { return is_error() && str().substr(0, 8) == "NOSCRIPT"; }
  /// String, status or error text; "" otherwise.
  std::string_view str() const noexcept {
    return is_string() || is_status() || is_error() ? std::string_view(r_->str, r_->len) : std::string_view();
  }
  long long integer() const noexcept { return is_integer() ? r_->integer : 0; }  ///< 0 unless an integer
  std::size_t size() const noexcept { return is_array() ? r_->elements : 0; }   ///< 0 unless an array
  /// Element i of an array (a nil reply when i >= size()).
  reply operator[](std::size_t i) const noexcept { return reply(i < size() ? r_->element[i] : nullptr); }
  /// An array of exactly `n` integers (a script's answer) copied to `out`; false, with
  /// `out` partly written, when it is something else.
  bool integers(long long* out, std::size_t n) const noexcept {
    if (!is_array() || r_->elements != n) return false;
    for (std::size_t i = 0; i < n; ++i) {
      const redisReply* e = r_->element[i];
      if (!e || e->type != REDIS_REPLY_INTEGER) return false;
      out[i] = e->integer;
    }
    return true;
  }

 private:
  int type() const noexcept { return r_ ? r_->type : REDIS_REPLY_NIL; }
  const redisReply* r_;
};

}  // namespace gw::redis
