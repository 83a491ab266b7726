#pragma once
/// A Redis command built in place in the wire format (RESP), for gw::redis::connection.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gw::redis {

class connection;

/// Reuse one for many commands: its buffer keeps its capacity, so steady traffic
/// allocates nothing.
class command {
 public:
  command();
  /// Starts a new command (drops the arguments added so far).
  command& clear();
  command& arg(std::string_view a);
  command& arg_int(std::int64_t v);
  /// One argument made of parts (a key: prefix + kind + id), without a temporary.
  command& arg_concat(std::string_view a, std::string_view b, std::string_view c = {});
  /// Starts EVALSHA <sha> <numkeys>: the keys, then the arguments follow.
  command& evalsha(std::string_view sha, std::size_t numkeys);
  /// SCRIPT LOAD <script>: the reply is the script's sha (a string).
  command& script_load(std::string_view script);
  std::size_t args() const noexcept { return nargs_; }

 private:
  friend class connection;
  /// The whole command: "*<count>\r\n" written into the room kept in front.
  std::string_view finish();
  void begin_arg(std::size_t length);
  static constexpr std::size_t header_room = 24;
  std::string buf_;
  std::size_t nargs_ = 0;
};

}  // namespace gw::redis
