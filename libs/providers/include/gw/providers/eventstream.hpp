#pragma once
/// AWS event-stream binary framing (application/vnd.amazon.eventstream), as Bedrock's
/// converse-stream sends it: an incremental decoder (bytes may arrive split anywhere)
/// and an encoder (for the mock provider and tests).
///
/// Frame: total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload |
/// message_crc u32; big-endian; CRC-32 (IEEE). Each header: name_len u8 | name |
/// type u8 | value. The decoder checks both CRCs and every length before using it, so
/// any input, however corrupt, ends in a clear error and never in an out-of-bounds read.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gw::providers::eventstream {

/// Header value types on the wire.
enum class header_type : std::uint8_t {
  bool_true = 0,
  bool_false = 1,
  byte = 2,
  int16 = 3,
  int32 = 4,
  int64 = 5,
  bytes = 6,
  string = 7,
  timestamp = 8,  ///< int64 milliseconds since the epoch
  uuid = 9,       ///< 16 raw bytes
};

struct header {
  std::string name;
  header_type type = header_type::string;
  /// string and bytes: the value; uuid: the 16 raw bytes; other types: empty.
  std::string value;
  /// bool (1/0), byte, int16, int32, int64, timestamp: the number; other types: 0.
  std::int64_t number = 0;
};

struct message {
  std::vector<header> headers;
  std::string payload;
  /// The first header named `name`, or nullptr.
  const header* find(std::string_view name) const noexcept;
  /// The value of a string/bytes header `name`; empty if absent or of another type.
  std::string_view header_value(std::string_view name) const noexcept;
};

/// Limits the decoder enforces (botocore's).
inline constexpr std::size_t max_headers_length = 128 * 1024;
inline constexpr std::size_t max_payload_length = 24 * 1024 * 1024;
inline constexpr std::size_t prelude_length = 12;  ///< total, headers length, prelude CRC
inline constexpr std::size_t min_message_length = 16;  ///< prelude + message CRC

/// CRC-32 (IEEE, as zlib's crc32) of `data`.
std::uint32_t crc32(std::string_view data) noexcept;

/// Decodes a stream of frames incrementally. Not thread-safe (one per stream).
/// After an error the decoder stays failed: every later feed() returns the same error.
class decoder {
 public:
  /// Consumes `bytes`, appends each message that became complete to `out`. Returns an
  /// error message on a corrupt frame (bad CRC, impossible lengths, bad header).
  std::optional<std::string> feed(std::string_view bytes, std::vector<message>& out);
  /// The stream ended: an error if a frame was left incomplete (or the decoder failed).
  std::optional<std::string> finish() const;
  /// Bytes held for the frame in progress.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  bool failed() const noexcept { return error_.has_value(); }

 private:
  std::optional<std::string> fail(std::string msg);
  std::string buf_;
  std::size_t pos_ = 0;                  ///< start of the frame in progress in buf_
  std::uint32_t frame_total_ = 0;        ///< its total length, once its prelude checked
  std::optional<std::string> error_;
};

/// Parses one complete frame (exactly `frame.size()` bytes). An error message on corruption.
std::optional<std::string> decode_message(std::string_view frame, message& out);

/// Encodes one frame with string headers (name <= 255 bytes, value <= 65535 bytes:
/// longer ones throw std::invalid_argument, as does a payload over the 24 MiB cap).
std::string encode_message(const std::vector<std::pair<std::string, std::string>>& headers,
                           std::string_view payload);

}  // namespace gw::providers::eventstream
