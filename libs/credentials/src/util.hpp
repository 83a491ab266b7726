#pragma once
// Small private helpers shared by the providers.

#include <string>
#include <string_view>

namespace gw::credentials::detail {

/// Text that came from a remote server, made fit for an error message (and so for a
/// log line): control characters become spaces, runs of whitespace collapse, at most
/// `max` bytes. Only ever applied to error codes and messages, never to bodies that
/// can carry credentials.
inline std::string sanitize_remote(std::string_view s, std::size_t max = 300) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    bool space = u < 0x20 || u == 0x7f || c == ' ';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

/// A credential or token that will go into an HTTP header: printable ASCII only.
inline bool header_safe(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return false;
  }
  return true;
}

}  // namespace gw::credentials::detail
