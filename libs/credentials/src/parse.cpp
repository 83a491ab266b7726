#include "gw/credentials/parse.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "gw/core/strings.hpp"

namespace gw::credentials {

std::string form_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  s = trim(s);
  int Y, M, D, h, m, sec;
  if (s.size() < 19) return std::nullopt;
  if (!digits(s, 0, 4, Y) || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' || !digits(s, 8, 2, D))
    return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  if (!digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, m) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: 1677..2262. Keep well inside.
  if (Y < 1900 || Y > 2200) return std::nullopt;
  static constexpr int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && leap(Y) ? 1 : 0)) return std::nullopt;
  if (h > 23 || m > 59 || sec > 60) return std::nullopt;  // 60: a leap second, folded into the next
  std::size_t i = 19;
  long long nanos = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    std::size_t start = i;
    long long scale = 100000000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      nanos += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
  }
  long long offset_s = 0;
  if (i < s.size()) {
    char c = s[i];
    if ((c == 'Z' || c == 'z') && i + 1 == s.size()) {
      ++i;
    } else if (c == '+' || c == '-') {
      int oh, om = 0;
      if (!digits(s, i + 1, 2, oh)) return std::nullopt;
      std::size_t j = i + 3;
      if (j < s.size() && s[j] == ':') ++j;
      if (j < s.size()) {
        if (!digits(s, j, 2, om)) return std::nullopt;
        j += 2;
      }
      if (j != s.size() || oh > 23 || om > 59) return std::nullopt;
      offset_s = (oh * 3600LL + om * 60LL) * (c == '+' ? 1 : -1);
      i = j;
    } else {
      return std::nullopt;
    }
  }
  if (i != s.size()) return std::nullopt;
  long long secs = days_from_civil(Y, static_cast<unsigned>(M), static_cast<unsigned>(D)) * 86400LL + h * 3600LL +
                   m * 60LL + sec - offset_s;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(secs) +
                                                                      std::chrono::nanoseconds(nanos)));
}

std::string format_iso8601(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point::max()) return "never";
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string xml_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += '&';
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    bool ok = true;
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      unsigned long cp = 0;
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view num = ent.substr(hex ? 2 : 1);
      if (num.empty()) ok = false;
      for (char c : num) {
        int d = (c >= '0' && c <= '9') ? c - '0'
                : hex && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : hex && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
        if (d < 0) { ok = false; break; }
        cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(d);
        if (cp > 0x10FFFF) { ok = false; break; }
      }
      if (ok) append_utf8(out, cp);
    } else {
      ok = false;
    }
    if (!ok) {
      out += '&';
      continue;
    }
    i = semi;
  }
  return out;
}

/// Whether `xml[pos..]` (just after '<' or "</") names `tag`, allowing a namespace
/// prefix; sets `end` to the index after the name.
bool names_tag(std::string_view xml, std::size_t pos, std::string_view tag, std::size_t& end) {
  std::size_t e = pos;
  while (e < xml.size() && xml[e] != '>' && xml[e] != '/' && xml[e] != ' ' && xml[e] != '\t' && xml[e] != '\r' &&
         xml[e] != '\n')
    ++e;
  std::string_view name = xml.substr(pos, e - pos);
  if (auto colon = name.find(':'); colon != std::string_view::npos) name = name.substr(colon + 1);
  end = e;
  return name == tag;
}

}  // namespace

std::optional<std::string> xml_tag(std::string_view xml, std::string_view tag) {
  std::size_t pos = 0;
  while ((pos = xml.find('<', pos)) != std::string_view::npos) {
    ++pos;
    if (pos >= xml.size()) return std::nullopt;
    if (xml[pos] == '/' || xml[pos] == '?' || xml[pos] == '!') continue;
    std::size_t name_end;
    if (!names_tag(xml, pos, tag, name_end)) continue;
    std::size_t gt = xml.find('>', name_end);
    if (gt == std::string_view::npos) return std::nullopt;
    if (xml[gt - 1] == '/') return std::string();  // <Tag/>
    std::size_t content = gt + 1;
    // The matching close tag: the first "</[prefix:]tag>" (the elements we read are
    // leaves, so no nesting of the same name).
    std::size_t search = content;
    while ((search = xml.find("</", search)) != std::string_view::npos) {
      std::size_t e;
      if (names_tag(xml, search + 2, tag, e) && e < xml.size() && xml[e] == '>')
        return xml_decode(xml.substr(content, search - content));
      search += 2;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

ini_file parse_ini(std::string_view text) {
  ini_file out;
  ini_section* section = nullptr;
  std::string* last_value = nullptr;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool indented = !line.empty() && (line.front() == ' ' || line.front() == '\t');
    std::string_view t = trim(line);
    if (t.empty()) continue;
    if (t.front() == '#' || t.front() == ';') continue;
    if (indented && last_value) {
      // A continuation of the previous value (nested settings); kept, unused by us.
      *last_value += '\n';
      *last_value += t;
      continue;
    }
    last_value = nullptr;
    if (t.front() == '[') {
      auto close = t.find(']');
      section = nullptr;
      if (close == std::string_view::npos) continue;
      std::string name(trim(t.substr(1, close - 1)));
      section = &out[name];
      continue;
    }
    if (!section) continue;
    auto sep = t.find_first_of("=:");
    if (sep == std::string_view::npos || sep == 0) continue;
    std::string key = to_lower(trim(t.substr(0, sep)));
    std::string_view value = trim(t.substr(sep + 1));
    // Inline comments need whitespace before the marker: secrets never contain
    // whitespace, so this cannot cut a key.
    for (std::size_t i = 1; i < value.size(); ++i) {
      if ((value[i] == '#' || value[i] == ';') && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
        value = trim(value.substr(0, i));
        break;
      }
    }
    auto& slot = (*section)[key];
    slot.assign(value);
    last_value = &slot;
  }
  return out;
}

const ini_section* config_profile(const ini_file& f, std::string_view profile) {
  for (const auto& [name, sec] : f) {
    std::string_view n = name;
    if (n.substr(0, 7) == "profile" && n.size() > 7 && (n[7] == ' ' || n[7] == '\t')) {
      if (trim(n.substr(8)) == profile) return &sec;
    }
  }
  if (profile == "default")
    if (auto it = f.find("default"); it != f.end()) return &it->second;
  return nullptr;
}

const ini_section* config_sso_session(const ini_file& f, std::string_view name) {
  for (const auto& [section, sec] : f) {
    std::string_view n = section;
    if (n.substr(0, 11) == "sso-session" && n.size() > 11 && (n[11] == ' ' || n[11] == '\t') &&
        trim(n.substr(12)) == name)
      return &sec;
  }
  return nullptr;
}

bool split_command_line(std::string_view s, std::vector<std::string>& out, std::string& err) {
  out.clear();
  std::string word;
  bool in_word = false;  // "" is a word of its own, so quotes start one
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (is_space(c)) {
      if (in_word) out.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\\') {
      if (i + 1 == s.size()) {
        err = "trailing backslash";
        return false;
      }
      word += s[++i];
      in_word = true;
    } else if (c == '\'') {
      auto end = s.find('\'', i + 1);
      if (end == std::string_view::npos) {
        err = "unterminated single quote";
        return false;
      }
      word.append(s.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          char n = s[j + 1];
          if (n == '"' || n == '\\' || n == '$' || n == '`' || n == '\n') {
            if (n != '\n') word += n;  // backslash-newline is a line continuation
            ++j;
            continue;
          }
        }
        word += s[j];
      }
      if (j == s.size()) {
        err = "unterminated double quote";
        return false;
      }
      i = j;
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(word));
  return true;
}

bool read_small_file(const std::string& path, std::size_t limit, std::string& out, std::string& err) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    err = errno == ENOENT ? "not found" : std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    err = "not a regular file";
    return false;
  }
  if (static_cast<std::size_t>(st.st_size) > limit) {
    err = "larger than " + std::to_string(limit) + " bytes";
    return false;
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    err = std::strerror(errno);
    return false;
  }
  out.clear();
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    out.append(buf, n);
    if (out.size() > limit) {  // grew since stat
      std::fclose(f);
      err = "larger than " + std::to_string(limit) + " bytes";
      return false;
    }
  }
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    err = "read error";
    return false;
  }
  return true;
}

}  // namespace gw::credentials
