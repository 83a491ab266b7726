#pragma once
/// Server-sent events: finds event boundaries in a byte stream incrementally, so a
/// relay forwards only whole events and can read each one (usage, errors) in passing.
/// Lines may end in LF, CRLF or CR; an empty line ends an event (WHATWG SSE).

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace gw::http {

class sse_scanner {
 public:
  /// Scans data[from, size) (bytes before `from` were scanned already). For each
  /// complete event calls `on_event(std::string_view event)` with the event's text
  /// (its lines, without the terminating empty line). Returns the offset just past the
  /// last complete event in `data`, or `from`'s event start if none completed.
  template <class F>
  std::size_t scan(std::string_view data, std::size_t from, F&& on_event);

  /// The caller dropped the first `n` bytes of its buffer (they were forwarded).
  void shift(std::size_t n) noexcept { event_start_ -= n; }
  /// Offset where the event being accumulated starts.
  std::size_t event_start() const noexcept { return event_start_; }
  void reset() noexcept { *this = sse_scanner{}; }

 private:
  std::size_t event_start_ = 0;
  std::size_t line_len_ = 0;
  bool prev_cr_ = false;
  bool any_line_ = false;
};

/// The event's data: its `data:` lines joined by '\n' (one optional space after the
/// colon removed). Returns a view into `event` when there is one data line, else into
/// `scratch`. Empty if the event has no data line.
std::string_view sse_event_data(std::string_view event, std::string& scratch);

template <class F>
std::size_t sse_scanner::scan(std::string_view data, std::size_t from, F&& on_event) {
  std::size_t last_end = event_start_;
  if (from >= data.size()) return last_end;
  // Fast path, what providers send: LF line ends only. memchr finds the line ends.
  if (!prev_cr_ && std::memchr(data.data() + from, '\r', data.size() - from) == nullptr) {
    std::size_t pos = from;
    while (pos < data.size()) {
      const void* hit = std::memchr(data.data() + pos, '\n', data.size() - pos);
      if (!hit) {
        line_len_ += data.size() - pos;
        any_line_ = true;
        break;
      }
      std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - data.data());
      if (nl > pos) {
        line_len_ += nl - pos;
        any_line_ = true;
      }
      if (line_len_ == 0) {
        if (any_line_) {
          std::size_t text_end = nl;
          if (text_end > event_start_ && data[text_end - 1] == '\n') --text_end;
          on_event(data.substr(event_start_, text_end - event_start_));
        }
        any_line_ = false;
        last_end = event_start_ = nl + 1;
      } else {
        line_len_ = 0;
      }
      pos = nl + 1;
    }
    return last_end;
  }
  for (std::size_t i = from; i < data.size(); ++i) {
    char c = data[i];
    if (c == '\n' && prev_cr_) {  // second half of CRLF
      prev_cr_ = false;
      if (last_end == i) last_end = event_start_ = i + 1;  // belongs to the boundary
      continue;
    }
    prev_cr_ = (c == '\r');
    if (c == '\n' || c == '\r') {
      if (line_len_ == 0) {
        // Empty line: the event (if it had any line) ends here.
        if (any_line_) {
          // Event text excludes the final line terminator before the empty line.
          std::size_t text_end = i;
          // Drop the previous line's terminator (LF, CR or CRLF).
          if (text_end > event_start_ && data[text_end - 1] == '\n') --text_end;
          if (text_end > event_start_ && data[text_end - 1] == '\r') --text_end;
          on_event(data.substr(event_start_, text_end - event_start_));
        }
        any_line_ = false;
        last_end = event_start_ = i + 1;
      } else {
        line_len_ = 0;
      }
    } else {
      ++line_len_;
      any_line_ = true;
    }
  }
  return last_end;
}

}  // namespace gw::http
