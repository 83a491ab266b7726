#include "gw/tracing/record.hpp"
#include "gw/core/strings.hpp"

#include <random>

namespace gw::tracing {
namespace {

constexpr char k_hex[] = "0123456789abcdef";

template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> from_hex(std::string_view s) {
  if (s.size() != 2 * N) return std::nullopt;
  std::array<std::uint8_t, N> a{};
  for (std::size_t i = 0; i < N; ++i) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    a[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return a;
}

template <std::size_t N>
bool zero(const std::array<std::uint8_t, N>& a) noexcept {
  for (auto b : a)
    if (b) return false;
  return true;
}

/// xoshiro256** seeded from the OS once per thread: ids need uniqueness, not secrecy.
struct id_generator {
  std::uint64_t s[4];
  id_generator() {
    std::random_device rd;
    for (auto& v : s) v = (std::uint64_t{rd()} << 32) ^ rd();
    if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 0x9e3779b97f4a7c15ull;
  }
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t next() noexcept {
    std::uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
};

id_generator& generator() {
  thread_local id_generator g;
  return g;
}

template <std::size_t N>
void fill(std::array<std::uint8_t, N>& a) noexcept {
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      std::uint64_t v = generator().next();
      for (std::size_t j = 0; j < 8 && i + j < N; ++j) a[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
    }
  } while (zero(a));
}

}  // namespace

bool is_zero(const trace_id& t) noexcept { return zero(t); }
bool is_zero(const span_id& s) noexcept { return zero(s); }
std::optional<trace_id> trace_id_from_hex(std::string_view hex) { return from_hex<16>(hex); }
std::optional<span_id> span_id_from_hex(std::string_view hex) { return from_hex<8>(hex); }

trace_id new_trace_id() noexcept {
  trace_id t;
  fill(t);
  return t;
}

span_id new_span_id() noexcept {
  span_id s;
  fill(s);
  return s;
}

std::optional<trace_context> parse_traceparent(std::string_view v) {
  // Optional whitespace around the value is allowed by HTTP; the value itself is strict.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  auto version = from_hex<1>(v.substr(0, 2));
  if (!version || (*version)[0] == 0xff) return std::nullopt;
  // Only lower-case hex is valid in traceparent.
  for (char c : v.substr(0, 55))
    if (c >= 'A' && c <= 'F') return std::nullopt;
  if ((*version)[0] == 0 && v.size() != 55) return std::nullopt;
  if (v.size() > 55 && v[55] != '-') return std::nullopt;
  auto t = from_hex<16>(v.substr(3, 32));
  auto p = from_hex<8>(v.substr(36, 16));
  auto f = from_hex<1>(v.substr(53, 2));
  if (!t || !p || !f || zero(*t) || zero(*p)) return std::nullopt;
  trace_context c;
  c.trace = *t;
  c.parent = *p;
  c.flags = (*f)[0];
  return c;
}

namespace {

template <std::size_t N>
void append_hex_of(std::string& out, const std::array<std::uint8_t, N>& a) {
  char buf[2 * N];
  for (std::size_t i = 0; i < N; ++i) {
    buf[2 * i] = k_hex[a[i] >> 4];
    buf[2 * i + 1] = k_hex[a[i] & 15];
  }
  out.append(buf, 2 * N);
}

}  // namespace

void append_hex(std::string& out, const trace_id& t) { append_hex_of(out, t); }
void append_hex(std::string& out, const span_id& s) { append_hex_of(out, s); }

std::string to_hex(const trace_id& t) {
  std::string out;
  append_hex(out, t);
  return out;
}

std::string to_hex(const span_id& s) {
  std::string out;
  append_hex(out, s);
  return out;
}

void append_traceparent(std::string& out, const trace_id& t, const span_id& s, std::uint8_t flags) {
  out += "00-";
  append_hex(out, t);
  out += '-';
  append_hex(out, s);
  out += '-';
  out += k_hex[flags >> 4];
  out += k_hex[flags & 15];
}

std::string format_traceparent(const trace_id& t, const span_id& s, std::uint8_t flags) {
  std::string out;
  append_traceparent(out, t, s, flags);
  return out;
}

}  // namespace gw::tracing
