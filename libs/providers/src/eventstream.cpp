#include "gw/providers/eventstream.hpp"

#include <zlib.h>

#include <algorithm>

#include <cstdio>
#include <stdexcept>

namespace gw::providers::eventstream {

namespace {

std::uint32_t read_u32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::uint64_t read_be(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void write_u32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

/// Checks the 12-byte prelude at `p`: its CRC and lengths. Empty when valid.
std::optional<std::string> check_prelude(const unsigned char* p, std::uint32_t& total, std::uint32_t& headers_len) {
  total = read_u32(p);
  headers_len = read_u32(p + 4);
  std::uint32_t crc = read_u32(p + 8);
  // The CRC first: when it does not match, the lengths are noise and would only
  // produce a misleading message.
  std::uint32_t computed = crc32(std::string_view(reinterpret_cast<const char*>(p), 8));
  if (computed != crc)
    return "event-stream prelude CRC mismatch (computed " + hex32(computed) + ", frame says " + hex32(crc) + ")";
  if (total < min_message_length)
    return "event-stream frame length " + std::to_string(total) + " is below the 16-byte minimum";
  if (headers_len > total - min_message_length)
    return "event-stream headers length " + std::to_string(headers_len) + " exceeds the frame length " +
           std::to_string(total);
  if (headers_len > max_headers_length)
    return "event-stream headers length " + std::to_string(headers_len) + " exceeds the 128 KiB limit";
  std::size_t payload_len = std::size_t{total} - min_message_length - headers_len;
  if (payload_len > max_payload_length)
    return "event-stream payload length " + std::to_string(payload_len) + " exceeds the 24 MiB limit";
  return std::nullopt;
}

std::optional<std::string> parse_headers(const unsigned char* p, std::size_t n, std::vector<header>& out) {
  std::size_t i = 0;
  while (i < n) {
    std::size_t name_len = p[i++];
    if (name_len == 0) return std::string("event-stream header with an empty name");
    if (n - i < name_len + 1) return std::string("event-stream header name runs past the headers");
    header h;
    h.name.assign(reinterpret_cast<const char*>(p + i), name_len);
    i += name_len;
    std::uint8_t type = p[i++];
    auto need = [&](std::size_t k) { return n - i >= k; };
    auto truncated = [&] { return "event-stream header '" + h.name + "' value runs past the headers"; };
    switch (type) {
      case 0:
      case 1:
        h.type = static_cast<header_type>(type);
        h.number = type == 0 ? 1 : 0;
        break;
      case 2:
      case 3:
      case 4:
      case 5:
      case 8: {
        std::size_t width = type == 2 ? 1 : type == 3 ? 2 : type == 4 ? 4 : 8;
        if (!need(width)) return truncated();
        std::uint64_t raw = read_be(p + i, width);
        // Sign-extend the two's complement value of `width` bytes.
        if (width < 8 && (raw >> (width * 8 - 1)) & 1) raw |= ~std::uint64_t{0} << (width * 8);
        h.type = static_cast<header_type>(type);
        h.number = static_cast<std::int64_t>(raw);
        i += width;
        break;
      }
      case 6:
      case 7: {
        if (!need(2)) return truncated();
        std::size_t len = static_cast<std::size_t>(read_be(p + i, 2));
        i += 2;
        if (!need(len)) return truncated();
        h.type = static_cast<header_type>(type);
        h.value.assign(reinterpret_cast<const char*>(p + i), len);
        i += len;
        break;
      }
      case 9:
        if (!need(16)) return truncated();
        h.type = header_type::uuid;
        h.value.assign(reinterpret_cast<const char*>(p + i), 16);
        i += 16;
        break;
      default:
        return "event-stream header '" + h.name + "' has unknown type " + std::to_string(type);
    }
    out.push_back(std::move(h));
  }
  return std::nullopt;
}

}  // namespace

std::uint32_t crc32(std::string_view data) noexcept {
  // zlib's CRC-32 (IEEE, the one the event-stream format uses), in chunks that fit uInt.
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  std::size_t left = data.size();
  while (left > 0) {
    auto n = static_cast<uInt>(std::min<std::size_t>(left, 1u << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<std::uint32_t>(crc);
}

const header* message::find(std::string_view name) const noexcept {
  for (auto& h : headers)
    if (h.name == name) return &h;
  return nullptr;
}

std::string_view message::header_value(std::string_view name) const noexcept {
  const header* h = find(name);
  if (!h || (h->type != header_type::string && h->type != header_type::bytes)) return {};
  return h->value;
}

std::optional<std::string> decode_message(std::string_view frame, message& out) {
  if (frame.size() < min_message_length)
    return "event-stream frame of " + std::to_string(frame.size()) + " bytes is below the 16-byte minimum";
  auto p = reinterpret_cast<const unsigned char*>(frame.data());
  std::uint32_t total = 0, headers_len = 0;
  if (auto e = check_prelude(p, total, headers_len)) return e;
  if (total != frame.size())
    return "event-stream frame length " + std::to_string(total) + " does not match the " +
           std::to_string(frame.size()) + " bytes given";
  std::uint32_t crc = read_u32(p + total - 4);
  std::uint32_t computed = crc32(frame.substr(0, total - 4));
  if (computed != crc)
    return "event-stream message CRC mismatch (computed " + hex32(computed) + ", frame says " + hex32(crc) + ")";
  out.headers.clear();
  if (auto e = parse_headers(p + prelude_length, headers_len, out.headers)) return e;
  out.payload.assign(frame.substr(prelude_length + headers_len, total - min_message_length - headers_len));
  return std::nullopt;
}

std::optional<std::string> decoder::fail(std::string msg) {
  error_ = std::move(msg);
  buf_.clear();
  pos_ = 0;
  return error_;
}

std::optional<std::string> decoder::feed(std::string_view bytes, std::vector<message>& out) {
  if (error_) return error_;
  buf_.append(bytes);
  while (true) {
    std::size_t avail = buf_.size() - pos_;
    auto p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    if (frame_total_ == 0) {
      // Check the prelude as soon as it is here, so that a corrupt length is refused
      // before we wait for (and buffer) megabytes that will never make sense.
      if (avail < prelude_length) break;
      std::uint32_t total = 0, headers_len = 0;
      if (auto e = check_prelude(p, total, headers_len)) return fail(std::move(*e));
      frame_total_ = total;
    }
    if (avail < frame_total_) break;
    message m;
    if (auto e = decode_message(std::string_view(buf_.data() + pos_, frame_total_), m)) return fail(std::move(*e));
    out.push_back(std::move(m));
    pos_ += frame_total_;
    frame_total_ = 0;
  }
  // Drop consumed bytes: at once when all is consumed (the usual case), else when the
  // consumed prefix dominates, so that erasing stays amortised O(1) per byte.
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return std::nullopt;
}

std::optional<std::string> decoder::finish() const {
  if (error_) return error_;
  std::size_t left = buf_.size() - pos_;
  if (left == 0) return std::nullopt;
  if (frame_total_ != 0)
    return "event-stream ended inside a frame (" + std::to_string(left) + " of " + std::to_string(frame_total_) +
           " bytes received)";
  return "event-stream ended inside a frame prelude (" + std::to_string(left) + " of 12 bytes received)";
}

std::string encode_message(const std::vector<std::pair<std::string, std::string>>& headers,
                           std::string_view payload) {
  std::string hs;
  for (auto& [name, value] : headers) {
    if (name.empty() || name.size() > 255) throw std::invalid_argument("event-stream header name must be 1-255 bytes");
    if (value.size() > 65535) throw std::invalid_argument("event-stream string header value over 65535 bytes");
    hs += static_cast<char>(name.size());
    hs += name;
    hs += static_cast<char>(header_type::string);
    hs += static_cast<char>((value.size() >> 8) & 0xff);
    hs += static_cast<char>(value.size() & 0xff);
    hs += value;
  }
  if (hs.size() > max_headers_length) throw std::invalid_argument("event-stream headers over 128 KiB");
  if (payload.size() > max_payload_length) throw std::invalid_argument("event-stream payload over 24 MiB");
  auto total = static_cast<std::uint32_t>(min_message_length + hs.size() + payload.size());
  std::string out;
  out.reserve(total);
  write_u32(out, total);
  write_u32(out, static_cast<std::uint32_t>(hs.size()));
  write_u32(out, crc32(out));
  out += hs;
  out.append(payload);
  write_u32(out, crc32(out));
  return out;
}

}  // namespace gw::providers::eventstream
