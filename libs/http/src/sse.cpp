#include "gw/http/sse.hpp"

namespace gw::http {

std::string_view sse_event_data(std::string_view event, std::string& scratch) {
  std::string_view single;
  int count = 0;
  std::size_t pos = 0;
  while (pos <= event.size()) {
    auto eol = event.find_first_of("\r\n", pos);
    std::string_view line = event.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.size() >= 5 && line.substr(0, 5) == "data:") {
      auto value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (count == 0) {
        single = value;
      } else {
        if (count == 1) scratch.assign(single);
        scratch.push_back('\n');
        scratch.append(value);
      }
      ++count;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
    if (event[eol] == '\r' && pos < event.size() && event[pos] == '\n') ++pos;
  }
  if (count <= 1) return single;
  return scratch;
}

}  // namespace gw::http
