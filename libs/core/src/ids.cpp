#include "gw/core/ids.hpp"

#include <cstdint>
#include <random>

namespace gw {
namespace {

struct splitmix64 {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

splitmix64& rng() {
  thread_local splitmix64 r{(static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                            std::random_device{}()};
  return r;
}

}  // namespace

std::string new_request_id() {
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t hi = rng().next(), lo = rng().next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](std::uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[static_cast<std::size_t>(pos++)] = hex[(v >> (i * 4)) & 0xf];
    }
  };
  put(hi, 16);
  put(lo, 16);
  return out;
}

}  // namespace gw
