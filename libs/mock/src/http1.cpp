#include "http1.hpp"

#include <cstring>

namespace gw::mock::http1 {
namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Calls f(token) for each comma-separated, trimmed, non-empty token.
template <class F>
void for_each_token(std::string_view v, F&& f) {
  while (!v.empty()) {
    auto comma = v.find(',');
    auto tok = trim_ows(v.substr(0, comma));
    if (!tok.empty()) f(tok);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

/// Next line of `buf` from `pos`: its content without CR/LF; `next` = the start of the
/// following line. False if no LF yet.
bool next_line(std::string_view buf, std::size_t pos, std::string_view& line, std::size_t& next) noexcept {
  const void* nl = pos < buf.size() ? std::memchr(buf.data() + pos, '\n', buf.size() - pos) : nullptr;
  if (!nl) return false;
  auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
  next = end + 1;
  if (end > pos && buf[end - 1] == '\r') --end;
  line = buf.substr(pos, end - pos);
  return true;
}

}  // namespace

std::string_view request_head::find(std::string_view name) const noexcept {
  for (const auto& h : headers)
    if (iequal(h.name, name)) return h.value;
  return {};
}

status parse_head(std::string_view buf, request_head& out, std::size_t max_size) {
  out.headers.clear();
  out.content_length = -1;
  out.chunked = false;
  out.expect_continue = false;
  out.authorization = {};
  auto incomplete = [&] { return buf.size() > max_size ? status::too_large : status::incomplete; };

  std::size_t pos = 0, next = 0;
  std::string_view line;
  // Tolerate empty lines before the request line (RFC 9112 2.2).
  for (;;) {
    if (!next_line(buf, pos, line, next)) return incomplete();
    if (!line.empty()) break;
    pos = next;
    if (pos > 64) return status::bad;
  }
  // Request line: method SP target SP HTTP/1.x
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return status::bad;
  out.method = line.substr(0, sp1);
  for (char c : out.method)
    if (!is_tchar(c)) return status::bad;
  auto rest = line.substr(sp1 + 1);
  auto sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos || sp2 == 0) return status::bad;
  out.target = rest.substr(0, sp2);
  auto version = rest.substr(sp2 + 1);
  if (version == "HTTP/1.1") out.minor_version = 1;
  else if (version == "HTTP/1.0") out.minor_version = 0;
  else return status::bad;
  for (char c : out.target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return status::bad;

  // Header fields until the empty line.
  for (;;) {
    pos = next;
    if (pos > max_size) return status::too_large;
    if (!next_line(buf, pos, line, next)) return incomplete();
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return status::bad;  // obsolete folding
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return status::bad;
    auto name = line.substr(0, colon);
    for (char c : name)
      if (!is_tchar(c)) return status::bad;
    auto value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if (c == '\0' || c == '\r' || c == '\n') return status::bad;
    out.headers.push_back({name, value});
  }
  out.size = next;
  if (out.size > max_size) return status::too_large;

  // The fields the server acts on.
  bool conn_close = false, conn_keep_alive = false, has_te = false;
  for (const auto& h : out.headers) {
    switch (h.name.size()) {
      case 6:
        if (iequal(h.name, "expect")) out.expect_continue = iequal(h.value, "100-continue");
        break;
      case 10:
        if (iequal(h.name, "connection")) {
          for_each_token(h.value, [&](std::string_view t) {
            if (iequal(t, "close")) conn_close = true;
            else if (iequal(t, "keep-alive")) conn_keep_alive = true;
          });
        }
        break;
      case 13:
        if (iequal(h.name, "authorization")) out.authorization = h.value;
        break;
      case 14:
        if (iequal(h.name, "content-length")) {
          if (h.value.empty() || h.value.size() > 18) return status::bad;
          std::int64_t n = 0;
          for (char c : h.value) {
            if (c < '0' || c > '9') return status::bad;
            n = n * 10 + (c - '0');
          }
          if (out.content_length >= 0 && out.content_length != n) return status::bad;
          out.content_length = n;
        }
        break;
      case 17:
        if (iequal(h.name, "transfer-encoding")) {
          has_te = true;
          std::string_view last;
          for_each_token(h.value, [&](std::string_view t) { last = t; });
          out.chunked = iequal(last, "chunked");
          if (!out.chunked) return status::bad;  // no way to find the body's end
        }
        break;
      default: break;
    }
  }
  out.keep_alive = out.minor_version == 1 ? !conn_close : (conn_keep_alive && !conn_close);
  if (has_te && out.content_length >= 0) {
    // RFC 9112 6.3: Transfer-Encoding wins, and the connection must not be reused.
    out.content_length = -1;
    out.keep_alive = false;
  }
  return status::complete;
}

status chunked_decoder::feed(std::string_view in, std::size_t& consumed, std::string& body, std::size_t max_body) {
  constexpr std::size_t max_line = 4096;
  std::size_t pos = 0;
  auto done = [&](status s) {
    consumed = pos;
    return s;
  };
  for (;;) {
    switch (state_) {
      case state::size_line: {
        std::string_view line;
        std::size_t next = 0;
        if (!next_line(in, pos, line, next)) return done(in.size() - pos > max_line ? status::bad : status::incomplete);
        std::uint64_t n = 0;
        std::size_t i = 0;
        for (; i < line.size(); ++i) {
          char c = line[i];
          int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) break;
          if (i >= 15) return done(status::bad);
          n = n * 16 + static_cast<std::uint64_t>(d);
        }
        if (i == 0) return done(status::bad);
        auto ext = trim_ows(line.substr(i));
        if (!ext.empty() && ext.front() != ';') return done(status::bad);
        pos = next;
        if (n == 0) {
          state_ = state::trailer;
        } else {
          if (n > max_body || body.size() + n > max_body) return done(status::too_large);
          remaining_ = n;
          state_ = state::data;
        }
        break;
      }
      case state::data: {
        std::size_t avail = in.size() - pos;
        if (avail == 0) return done(status::incomplete);
        auto take = static_cast<std::size_t>(remaining_ < avail ? remaining_ : avail);
        body.append(in.data() + pos, take);
        pos += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = state::data_crlf;
        break;
      }
      case state::data_crlf: {
        std::size_t avail = in.size() - pos;
        if (avail == 0) return done(status::incomplete);
        if (in[pos] == '\n') {
          pos += 1;
        } else if (in[pos] == '\r') {
          if (avail < 2) return done(status::incomplete);
          if (in[pos + 1] != '\n') return done(status::bad);
          pos += 2;
        } else {
          return done(status::bad);
        }
        state_ = state::size_line;
        break;
      }
      case state::trailer: {
        std::string_view line;
        std::size_t next = 0;
        if (!next_line(in, pos, line, next)) return done(in.size() - pos > max_line ? status::bad : status::incomplete);
        pos = next;
        if (line.empty()) {
          state_ = state::size_line;
          return done(status::complete);
        }
        break;  // a trailer field: ignored
      }
    }
  }
}

}  // namespace gw::mock::http1
