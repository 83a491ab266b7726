// .env files with python-dotenv's semantics (what LiteLLM's proxy uses).
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gw/config/config.hpp"
#include "gw/core/strings.hpp"

namespace gw::config {
namespace {

bool valid_key(std::string_view k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

}  // namespace

bool load_env_file(const std::string& path, std::string& err, bool& missing) {
  missing = false;
  std::ifstream in(path);
  if (!in) {
    missing = true;
    return true;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string_view l = trim(line);
    if (l.empty() || l.front() == '#') continue;
    if (l.substr(0, 7) == "export ") l = trim(l.substr(7));
    auto eq = l.find('=');
    if (eq == std::string_view::npos) {
      err = path + ":" + std::to_string(lineno) + ": expected KEY=VALUE";
      return false;
    }
    std::string key(trim(l.substr(0, eq)));
    if (!valid_key(key)) {
      err = path + ":" + std::to_string(lineno) + ": invalid variable name '" + key + "'";
      return false;
    }
    std::string_view raw = trim(l.substr(eq + 1));
    std::string value;
    if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
      char q = raw.front();
      std::size_t i = 1;
      bool closed = false;
      for (; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == q) {
          closed = true;
          break;
        }
        if (q == '"' && c == '\\' && i + 1 < raw.size()) {
          char n = raw[++i];
          switch (n) {
            case 'n': value.push_back('\n'); break;
            case 't': value.push_back('\t'); break;
            case 'r': value.push_back('\r'); break;
            case '"': value.push_back('"'); break;
            case '\\': value.push_back('\\'); break;
            default:
              value.push_back('\\');
              value.push_back(n);
          }
        } else {
          value.push_back(c);
        }
      }
      if (!closed) {
        err = path + ":" + std::to_string(lineno) + ": unterminated quoted value";
        return false;
      }
      std::string_view rest = trim(raw.substr(i + 1));
      if (!rest.empty() && rest.front() != '#') {
        err = path + ":" + std::to_string(lineno) + ": unexpected text after the quoted value";
        return false;
      }
    } else {
      // Unquoted: an inline comment starts at " #".
      auto hash = raw.find(" #");
      value = std::string(trim(raw.substr(0, hash)));
    }
    if (std::getenv(key.c_str()) == nullptr) setenv(key.c_str(), value.c_str(), 0);
  }
  return true;
}

}  // namespace gw::config
