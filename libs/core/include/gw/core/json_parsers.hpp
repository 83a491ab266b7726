#pragma once
/// Thread-local simdjson parsers (and the padded copies some keep) that give memory
/// back: a parser keeps the buffers of the largest document it has read, so one 30 MB
/// request would leave every io thread holding several times that for good. Before each
/// document, a parser (or buffer) grown past k_keep_parser_bytes by an earlier, larger
/// document is replaced by a fresh one when the next is much smaller.

#include <cstddef>

namespace gw {

inline constexpr std::size_t k_keep_parser_bytes = std::size_t{1} << 20;

/// `p` ready for a document of `size` bytes (a simdjson dom or ondemand parser).
template <class Parser>
Parser& fit_parser(Parser& p, std::size_t size) {
  if (p.capacity() > k_keep_parser_bytes && p.capacity() / 2 > size) p = Parser{};
  return p;
}

/// Frees `b` (a std::string or std::vector) grown past k_keep_parser_bytes when the
/// next use needs much less.
template <class Buffer>
void fit_buffer(Buffer& b, std::size_t size) {
  if (b.capacity() > k_keep_parser_bytes && b.capacity() / 2 > size) Buffer().swap(b);
}

}  // namespace gw
