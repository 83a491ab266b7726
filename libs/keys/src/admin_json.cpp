#include "gw/keys/admin_json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>

#include "gw/core/json_writer.hpp"
#include "gw/core/strings.hpp"

namespace gw::keys {
namespace {

namespace od = simdjson::ondemand;
using opt_error = std::optional<error>;

// ---------------------------------------------------------------------------------
// A small JSON tree built from simdjson that keeps every number's text exactly as
// sent: money must come from the decimal text ("0.1" is exactly 10^11 pico), which
// the DOM's doubles would lose.

struct jnode {
  enum class kind : std::uint8_t { null_v, bool_v, number, string, array, object };
  kind k = kind::null_v;
  bool b = false;
  std::string text;               ///< number: its JSON text; string: unescaped
  std::vector<std::string> keys;  ///< object: member names (parallel to items)
  std::vector<jnode> items;       ///< array items or object member values
};

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// RFC 8259's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool json_number_syntax(std::string_view t) {
  std::size_t i = 0, n = t.size();
  auto digits = [&] {
    std::size_t start = i;
    while (i < n && t[i] >= '0' && t[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && t[i] == '-') ++i;
  if (i < n && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && t[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

simdjson::error_code build(od::value v, jnode& out);

template <class Object>
simdjson::error_code build_members(Object& o, jnode& out) {
  out.k = jnode::kind::object;
  for (auto f : o) {
    std::string_view key;
    if (auto e = f.unescaped_key().get(key)) return e;
    out.keys.emplace_back(key);
    od::value fv;
    if (auto e = f.value().get(fv)) return e;
    out.items.emplace_back();
    if (auto e = build(fv, out.items.back())) return e;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code build(od::value v, jnode& out) {
  od::json_type t;
  if (auto e = v.type().get(t)) return e;
  switch (t) {
    case od::json_type::object: {
      od::object o;
      if (auto e = v.get_object().get(o)) return e;
      return build_members(o, out);
    }
    case od::json_type::array: {
      out.k = jnode::kind::array;
      od::array a;
      if (auto e = v.get_array().get(a)) return e;
      for (auto item : a) {
        od::value iv;
        if (auto e = item.get(iv)) return e;
        out.items.emplace_back();
        if (auto e = build(iv, out.items.back())) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::number:
      out.k = jnode::kind::number;
      out.text = std::string(trim_right(v.raw_json_token()));
      return json_number_syntax(out.text) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    case od::json_type::string: {
      out.k = jnode::kind::string;
      std::string_view s;
      if (auto e = v.get_string().get(s)) return e;
      out.text = std::string(s);
      return simdjson::SUCCESS;
    }
    case od::json_type::boolean:
      out.k = jnode::kind::bool_v;
      return v.get_bool().get(out.b);
    case od::json_type::null: {
      out.k = jnode::kind::null_v;
      bool null = false;
      if (auto e = v.is_null().get(null)) return e;
      return null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

/// Parses a request body: invalid_json unless it is valid JSON, invalid_request unless
/// it is an object. The DOM parse validates the whole text first (the on-demand walk
/// that builds the tree validates only what it visits). simdjson 3.0 refuses numbers
/// beyond double/uint64 range (123456789012345678901234567890, 1e400), which are valid
/// JSON and which LiteLLM accepts (in ignored fields, in metadata): for those the
/// on-demand walk, which visits every value and checks every number's grammar itself,
/// is the validator.
opt_error parse_body(std::string_view body, jnode& root) {
  auto invalid = [](simdjson::error_code e) {
    return error{errc::invalid_json, std::string("request body is not valid JSON: ") + simdjson::error_message(e),
                 ""};
  };
  simdjson::padded_string padded(body);
  {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (auto e = parser.parse(padded).get(doc)) {
      if (e != simdjson::NUMBER_ERROR) return invalid(e);
    } else if (!doc.is_object()) {
      return error{errc::invalid_request, "request body must be a JSON object", ""};
    }
  }
  od::parser parser;
  od::document doc;
  od::json_type type;
  simdjson::error_code e = parser.iterate(padded).get(doc);
  if (!e) e = doc.type().get(type);
  if (e) return invalid(e);
  if (type != od::json_type::object) return error{errc::invalid_request, "request body must be a JSON object", ""};
  od::object o;
  e = doc.get_object().get(o);
  if (!e) e = build_members(o, root);
  if (!e && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) e = simdjson::TRAILING_CONTENT;
  if (e) return invalid(e);
  return std::nullopt;
}

void write_json(const jnode& v, std::string& out) {
  switch (v.k) {
    case jnode::kind::null_v: out += "null"; return;
    case jnode::kind::bool_v: out += v.b ? "true" : "false"; return;
    case jnode::kind::number: out += v.text; return;
    case jnode::kind::string: append_json_string(out, v.text); return;
    case jnode::kind::array:
      out += '[';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        write_json(v.items[i], out);
      }
      out += ']';
      return;
    case jnode::kind::object:
      out += '{';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, v.keys[i]);
        out += ':';
        write_json(v.items[i], out);
      }
      out += '}';
      return;
  }
}

// ---------------------------------------------------------------------------------
// Errors: "<param> must be <expected>, got <what was sent>".

std::string describe(const jnode& v) {
  switch (v.k) {
    case jnode::kind::null_v: return "null";
    case jnode::kind::bool_v: return v.b ? "true" : "false";
    case jnode::kind::number: return v.text.size() > 64 ? v.text.substr(0, 61) + "..." : v.text;
    case jnode::kind::string:
      return v.text.size() > 64 ? json_quote(v.text.substr(0, 61) + "...") : json_quote(v.text);
    case jnode::kind::array: return "an array";
    case jnode::kind::object: return "an object";
  }
  return "?";
}

opt_error fail(errc code, const std::string& param, std::string_view expected, const jnode& v) {
  std::string msg = param;
  msg += " must be ";
  msg += expected;
  msg += ", got ";
  msg += describe(v);
  return error{code, std::move(msg), param};
}
opt_error type_error(const std::string& p, std::string_view expected, const jnode& v) {
  return fail(errc::invalid_type, p, expected, v);
}
opt_error value_error(const std::string& p, std::string_view expected, const jnode& v) {
  return fail(errc::invalid_request, p, expected, v);
}
opt_error missing(const std::string& p, std::string message) {
  return error{errc::missing_parameter, std::move(message), p};
}

std::string member_param(const std::string& parent, std::string_view key) {
  std::string p = parent;
  p += '.';
  p += key;
  return p;
}
std::string index_param(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

void note_ignored(std::vector<std::string>& ignored, const std::string& name) {
  if (std::find(ignored.begin(), ignored.end(), name) == ignored.end()) ignored.push_back(name);
}

// ---------------------------------------------------------------------------------
// Numbers, exactly: a JSON number's text (or a numeric string) normalised to its
// integer and fractional digits, the exponent applied by moving the decimal point.

struct decimal {
  bool neg = false;
  std::string int_digits;   ///< no leading zeros; empty = 0
  std::string frac_digits;  ///< no trailing zeros; empty = none
};

/// false unless `t` is [+-]digits[.digits][e[+-]digits] (at least one mantissa digit).
bool parse_number_text(std::string_view t, decimal& d) {
  d = {};
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) d.neg = t[i++] == '-';
  std::string digits;  // the mantissa's digits, without the point
  std::int64_t point = -1;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (c == '.' && point < 0) {
      point = static_cast<std::int64_t>(digits.size());
    } else {
      break;
    }
  }
  if (digits.empty()) return false;
  if (point < 0) point = static_cast<std::int64_t>(digits.size());
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < t.size() && (t[i] == '-' || t[i] == '+')) eneg = t[i++] == '-';
    std::int64_t exp = 0;
    std::size_t start = i;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i)
      if (exp < 1'000'000) exp = exp * 10 + (t[i] - '0');
    if (i == start) return false;
    point += eneg ? -exp : exp;
  }
  if (i != t.size()) return false;
  // Normalise: drop leading zeros (moving the point) and trailing fractional zeros.
  std::size_t lead = 0;
  while (lead < digits.size() && digits[lead] == '0') ++lead;
  digits.erase(0, lead);
  point -= static_cast<std::int64_t>(lead);
  if (digits.empty()) return true;  // zero
  constexpr std::int64_t far = 64;  // beyond every int64 and below every picodollar
  if (point > far) {
    d.int_digits.assign(far + 1, '9');  // too large for anything; keeps "too large"
    return true;
  }
  if (point < -far) {
    d.frac_digits.assign(far, '0');
    d.frac_digits += '1';  // a non-zero value below every precision we keep
    return true;
  }
  if (point <= 0) {
    d.frac_digits.assign(static_cast<std::size_t>(-point), '0');
    d.frac_digits += digits;
  } else if (point >= static_cast<std::int64_t>(digits.size())) {
    d.int_digits = digits;
    d.int_digits.append(static_cast<std::size_t>(point) - digits.size(), '0');
  } else {
    d.int_digits = digits.substr(0, static_cast<std::size_t>(point));
    d.frac_digits = digits.substr(static_cast<std::size_t>(point));
  }
  while (!d.frac_digits.empty() && d.frac_digits.back() == '0') d.frac_digits.pop_back();
  return true;
}

/// The text of a number, or of a string holding one; nullopt for anything else.
std::optional<std::string_view> numeric_text(const jnode& v) {
  if (v.k == jnode::kind::number || v.k == jnode::kind::string) return std::string_view(v.text);
  return std::nullopt;
}

constexpr std::string_view budget_expected = "a number >= 0";

/// A budget in USD: a JSON number or a numeric string, >= 0, exact to the picodollar.
opt_error to_money(const jnode& v, const std::string& p, money& out) {
  auto text = numeric_text(v);
  decimal d;
  if (!text || !parse_number_text(*text, d)) return type_error(p, budget_expected, v);
  std::string plain = d.neg ? "-" : "";
  plain += d.int_digits.empty() ? "0" : d.int_digits;
  if (!d.frac_digits.empty()) {
    plain += '.';
    plain += d.frac_digits;
  }
  money m = 0;
  if (!parse_decimal(plain, m)) {
    if (d.neg) return value_error(p, budget_expected, v);
    return value_error(p, "a number >= 0 and at most 9223372.036854775807", v);
  }
  if (m < 0) return value_error(p, budget_expected, v);
  out = m;
  return std::nullopt;
}

constexpr std::string_view count_expected = "an integer >= 0";

/// A limit: an integral JSON number (5, 5.0, 5e3) or such a string, 0 .. int64 max.
opt_error to_count(const jnode& v, const std::string& p, std::int64_t& out) {
  auto text = numeric_text(v);
  decimal d;
  if (!text || !parse_number_text(*text, d) || !d.frac_digits.empty())
    return type_error(p, count_expected, v);
  if (d.int_digits.empty()) {
    out = 0;
    return std::nullopt;
  }
  if (d.neg) return value_error(p, count_expected, v);
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(d.int_digits.data(), d.int_digits.data() + d.int_digits.size(), n);
  if (ec != std::errc{} || end != d.int_digits.data() + d.int_digits.size())
    return value_error(p, "an integer >= 0 and at most 9223372036854775807", v);
  out = n;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------
// Field readers. Each takes the value, its param path and the patch to fill.

bool is_null(const jnode& v) { return v.k == jnode::kind::null_v; }

/// A string; null or "" clears (stored as "").
opt_error clearable_string(const jnode& v, const std::string& p, patch<std::string>& out) {
  if (is_null(v)) {
    out.emplace();
    return std::nullopt;
  }
  if (v.k != jnode::kind::string) return type_error(p, "a string or null", v);
  out = v.text;
  return std::nullopt;
}

/// A record's id: a non-empty string; null means not sent.
opt_error id_string(const jnode& v, const std::string& p, patch<std::string>& out) {
  if (is_null(v)) return std::nullopt;
  if (v.k != jnode::kind::string) return type_error(p, "a non-empty string", v);
  if (v.text.empty()) return value_error(p, "a non-empty string", v);
  out = v.text;
  return std::nullopt;
}

constexpr std::string_view key_expected = "1 to 256 printable ASCII characters without spaces";

bool valid_key_text(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

/// A caller-chosen key, or the key to update; null means not sent.
opt_error key_string(const jnode& v, const std::string& p, patch<std::string>& out) {
  if (is_null(v)) return std::nullopt;
  if (v.k != jnode::kind::string) return type_error(p, "a string", v);
  if (!valid_key_text(v.text)) return value_error(p, key_expected, v);
  out = v.text;
  return std::nullopt;
}

constexpr std::string_view duration_expected =
    "a duration: a positive integer followed by s, m, h, d, w or mo (30s, 30m, 30h, 30d, 1w, "
    "1mo)";

/// A duration; null or "" means none.
opt_error opt_duration(const jnode& v, const std::string& p, patch<std::optional<std::string>>& out) {
  if (is_null(v) || (v.k == jnode::kind::string && v.text.empty())) {
    out.emplace(std::nullopt);
    return std::nullopt;
  }
  if (v.k != jnode::kind::string) return type_error(p, std::string(duration_expected) + " or null", v);
  duration_spec d;
  if (!parse_duration(v.text, d)) return value_error(p, duration_expected, v);
  out.emplace(v.text);
  return std::nullopt;
}

/// A budget; null clears it.
opt_error opt_money(const jnode& v, const std::string& p, patch<std::optional<money>>& out) {
  if (is_null(v)) {
    out.emplace(std::nullopt);
    return std::nullopt;
  }
  money m = 0;
  if (auto e = to_money(v, p, m)) return e;
  out.emplace(m);
  return std::nullopt;
}

/// An amount that cannot be cleared (spend); null means not sent.
opt_error plain_money(const jnode& v, const std::string& p, patch<money>& out) {
  if (is_null(v)) return std::nullopt;
  money m = 0;
  if (auto e = to_money(v, p, m)) return e;
  out = m;
  return std::nullopt;
}

/// A limit; null clears it.
opt_error opt_count(const jnode& v, const std::string& p, patch<std::optional<std::int64_t>>& out) {
  if (is_null(v)) {
    out.emplace(std::nullopt);
    return std::nullopt;
  }
  std::int64_t n = 0;
  if (auto e = to_count(v, p, n)) return e;
  out.emplace(n);
  return std::nullopt;
}

/// An array of non-empty strings; null clears (empty list).
opt_error string_list(const jnode& v, const std::string& p, patch<std::vector<std::string>>& out) {
  if (is_null(v)) {
    out.emplace();
    return std::nullopt;
  }
  if (v.k != jnode::kind::array) return type_error(p, "an array of strings", v);
  std::vector<std::string> list;
  list.reserve(v.items.size());
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    const jnode& item = v.items[i];
    if (item.k != jnode::kind::string) return type_error(index_param(p, i), "a string", item);
    if (item.text.empty()) return value_error(index_param(p, i), "a non-empty string", item);
    list.push_back(item.text);
  }
  out = std::move(list);
  return std::nullopt;
}

/// {"model": integer >= 0}; null clears.
opt_error count_map(const jnode& v, const std::string& p,
                    patch<std::map<std::string, std::int64_t>>& out) {
  if (is_null(v)) {
    out.emplace();
    return std::nullopt;
  }
  if (v.k != jnode::kind::object)
    return type_error(p, "an object mapping model names to integers >= 0", v);
  std::map<std::string, std::int64_t> m;
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    std::int64_t n = 0;
    if (auto e = to_count(v.items[i], member_param(p, v.keys[i]), n)) return e;
    m[v.keys[i]] = n;
  }
  out = std::move(m);
  return std::nullopt;
}

/// {"model": n} or {"model": {"budget_limit": n, "time_period": "1d"}} (LiteLLM's
/// BudgetConfig also takes max_budget / budget_duration for the same two); null clears.
opt_error model_budget_map(const jnode& v, const std::string& p,
                           patch<std::map<std::string, model_budget>>& out,
                           std::vector<std::string>& ignored) {
  if (is_null(v)) {
    out.emplace();
    return std::nullopt;
  }
  constexpr std::string_view expected =
      "an object mapping model names to {\"budget_limit\": number, \"time_period\": duration}";
  if (v.k != jnode::kind::object) return type_error(p, expected, v);
  std::map<std::string, model_budget> m;
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    const jnode& entry = v.items[i];
    std::string ep = member_param(p, v.keys[i]);
    model_budget b;
    if (entry.k == jnode::kind::number || entry.k == jnode::kind::string) {
      if (auto e = to_money(entry, ep, b.budget_limit)) return e;
    } else if (entry.k == jnode::kind::object) {
      bool have_limit = false;
      for (std::size_t j = 0; j < entry.items.size(); ++j) {
        const std::string& name = entry.keys[j];
        const jnode& f = entry.items[j];
        std::string fp = member_param(ep, name);
        if (name == "budget_limit" || name == "max_budget") {
          if (is_null(f)) continue;
          if (auto e = to_money(f, fp, b.budget_limit)) return e;
          have_limit = true;
        } else if (name == "time_period" || name == "budget_duration") {
          patch<std::optional<std::string>> d;
          if (auto e = opt_duration(f, fp, d)) return e;
          b.time_period = d && *d ? **d : std::string();
        } else {
          note_ignored(ignored, fp);
        }
      }
      if (!have_limit)
        return missing(member_param(ep, "budget_limit"),
                       member_param(ep, "budget_limit") + " is required (a number >= 0)");
    } else {
      return type_error(ep, "a number >= 0 or {\"budget_limit\": number, \"time_period\": duration}",
                        entry);
    }
    m[v.keys[i]] = std::move(b);
  }
  out = std::move(m);
  return std::nullopt;
}

/// An object, stored as its JSON text; null clears ("{}").
opt_error metadata_object(const jnode& v, const std::string& p, patch<std::string>& out) {
  if (is_null(v)) {
    out = "{}";
    return std::nullopt;
  }
  if (v.k != jnode::kind::object) return type_error(p, "an object", v);
  std::string text;
  write_json(v, text);
  out = std::move(text);
  return std::nullopt;
}

/// true or false; null clears (false).
opt_error boolean(const jnode& v, const std::string& p, patch<bool>& out) {
  if (is_null(v)) {
    out = false;
    return std::nullopt;
  }
  if (v.k != jnode::kind::bool_v) return type_error(p, "true or false", v);
  out = v.b;
  return std::nullopt;
}

/// {"user_id", "user_email", "role"}: at least one of the first two; role "admin" or
/// "user" (default "user").
opt_error member_entry(const jnode& v, const std::string& p, team_member& m) {
  constexpr std::string_view expected = "an object {\"user_id\", \"user_email\", \"role\"}";
  if (v.k != jnode::kind::object) return type_error(p, expected, v);
  m = team_member{};
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    const std::string& name = v.keys[i];
    const jnode& f = v.items[i];
    std::string fp = member_param(p, name);
    if (name == "user_id" || name == "user_email") {
      if (is_null(f)) continue;
      if (f.k != jnode::kind::string) return type_error(fp, "a string or null", f);
      (name == "user_id" ? m.user_id : m.user_email) = f.text;
    } else if (name == "role") {
      if (is_null(f)) continue;
      if (f.k != jnode::kind::string) return type_error(fp, "\"admin\" or \"user\"", f);
      if (f.text != "admin" && f.text != "user") return value_error(fp, "\"admin\" or \"user\"", f);
      m.role = f.text;
    }
  }
  if (m.user_id.empty() && m.user_email.empty())
    return missing(member_param(p, "user_id"), p + " needs a user_id or a user_email");
  return std::nullopt;
}

/// An array of members; null clears.
opt_error member_list(const jnode& v, const std::string& p, patch<std::vector<team_member>>& out) {
  if (is_null(v)) {
    out.emplace();
    return std::nullopt;
  }
  if (v.k != jnode::kind::array)
    return type_error(p, "an array of {\"user_id\", \"user_email\", \"role\"} objects", v);
  std::vector<team_member> list(v.items.size());
  for (std::size_t i = 0; i < v.items.size(); ++i)
    if (auto e = member_entry(v.items[i], index_param(p, i), list[i])) return e;
  out = std::move(list);
  return std::nullopt;
}

constexpr std::string_view user_roles[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                           "internal_user_viewer"};

opt_error user_role(const jnode& v, const std::string& p, patch<std::string>& out) {
  constexpr std::string_view expected =
      "one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer";
  if (is_null(v)) return std::nullopt;
  if (v.k != jnode::kind::string) return type_error(p, expected, v);
  if (std::find(std::begin(user_roles), std::end(user_roles), v.text) == std::end(user_roles))
    return value_error(p, expected, v);
  out = v.text;
  return std::nullopt;
}

/// The required team_id of the member routes.
opt_error required_id(const jnode* v, const std::string& p, std::string& out) {
  if (!v || is_null(*v)) return missing(p, p + " is required");
  if (v->k != jnode::kind::string) return type_error(p, "a non-empty string", *v);
  if (v->text.empty()) return value_error(p, "a non-empty string", *v);
  out = v->text;
  return std::nullopt;
}

const jnode* find_member(const jnode& obj, std::string_view name) {
  const jnode* found = nullptr;  // the last one wins, as in every JSON library
  for (std::size_t i = 0; i < obj.keys.size(); ++i)
    if (obj.keys[i] == name) found = &obj.items[i];
  return found;
}

// ---------------------------------------------------------------------------------
// apply() helpers.

void apply_budget_duration(const patch<std::optional<std::string>>& r, budget& b, sys_time now) {
  if (!r) return;
  duration_spec d;
  if (*r && !(*r)->empty() && parse_duration(**r, d)) {
    b.budget_duration = **r;
    b.budget_reset_at = first_reset(now, d);
  } else {
    b.budget_duration.clear();
    b.budget_reset_at.reset();
  }
}

template <class Request>
void apply_budget(const Request& r, budget& b, sys_time now) {
  if (r.max_budget) b.max_budget = *r.max_budget;
  if (r.soft_budget) b.soft_budget = *r.soft_budget;
  if (r.spend) b.spend = *r.spend;
  apply_budget_duration(r.budget_duration, b, now);
}

template <class Request>
void apply_limits(const Request& r, limits& l) {
  if (r.tpm_limit) l.tpm_limit = *r.tpm_limit;
  if (r.rpm_limit) l.rpm_limit = *r.rpm_limit;
  if (r.max_parallel_requests) l.max_parallel_requests = *r.max_parallel_requests;
}

template <class T>
void set_if(const patch<T>& p, T& field) {
  if (p) field = *p;
}

void touch(sys_time& created_at, sys_time& updated_at, sys_time now) {
  if (created_at == sys_time{}) created_at = now;
  updated_at = now;
}

// ---------------------------------------------------------------------------------
// Rendering.

class object_writer {
 public:
  explicit object_writer(std::string& out) : out_(out) { out_ += '{'; }
  void key(std::string_view k) {
    if (!first_) out_ += ',';
    first_ = false;
    append_json_string(out_, k);
    out_ += ':';
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    append_json_string(out_, v);
  }
  /// "" renders as null (LiteLLM's unset optional strings).
  void str_or_null(std::string_view k, std::string_view v) {
    key(k);
    if (v.empty()) out_ += "null";
    else append_json_string(out_, v);
  }
  void usd(std::string_view k, money m) {
    key(k);
    append_money(out_, m);
  }
  void usd(std::string_view k, const std::optional<money>& m) {
    key(k);
    if (m) append_money(out_, *m);
    else out_ += "null";
  }
  void integer(std::string_view k, const std::optional<std::int64_t>& n) {
    key(k);
    if (n) append_json_number(out_, *n);
    else out_ += "null";
  }
  void time(std::string_view k, const std::optional<sys_time>& t) {
    key(k);
    if (t) append_json_string(out_, iso_time(*t));
    else out_ += "null";
  }
  /// A record's created_at/updated_at: the zero time point means "not set" (null).
  void stamp(std::string_view k, sys_time t) {
    time(k, t == sys_time{} ? std::nullopt : std::optional<sys_time>(t));
  }
  void boolean(std::string_view k, bool b) {
    key(k);
    out_ += b ? "true" : "false";
  }
  void raw(std::string_view k, std::string_view json) {
    key(k);
    out_ += json;
  }
  void metadata(std::string_view k, const std::string& json) { raw(k, json.empty() ? "{}" : json); }
  void strings(std::string_view k, const std::vector<std::string>& list) {
    key(k);
    out_ += '[';
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (i) out_ += ',';
      append_json_string(out_, list[i]);
    }
    out_ += ']';
  }
  void counts(std::string_view k, const std::map<std::string, std::int64_t>& m) {
    key(k);
    out_ += '{';
    bool first = true;
    for (const auto& [name, n] : m) {
      if (!first) out_ += ',';
      first = false;
      append_json_string(out_, name);
      out_ += ':';
      append_json_number(out_, n);
    }
    out_ += '}';
  }
  void close() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

template <class Record>
void write_budget_and_limits(object_writer& w, const Record& r) {
  w.usd("spend", r.budget.spend);
  w.usd("max_budget", r.budget.max_budget);
  w.usd("soft_budget", r.budget.soft_budget);
  w.str_or_null("budget_duration", r.budget.budget_duration);
  w.time("budget_reset_at", r.budget.budget_reset_at);
  w.integer("tpm_limit", r.limits.tpm_limit);
  w.integer("rpm_limit", r.limits.rpm_limit);
  w.integer("max_parallel_requests", r.limits.max_parallel_requests);
}

}  // namespace

// ===================================================================================

/// The budget and limit fields keys, users and teams share. True when `n` is one of
/// them (its parse error, if any, in `e`).
template <class Request>
bool shared_field(const std::string& n, const jnode& v, Request& out, opt_error& e) {
  if (n == "max_budget") e = opt_money(v, n, out.max_budget);
  else if (n == "soft_budget") e = opt_money(v, n, out.soft_budget);
  else if (n == "budget_duration") e = opt_duration(v, n, out.budget_duration);
  else if (n == "tpm_limit") e = opt_count(v, n, out.tpm_limit);
  else if (n == "rpm_limit") e = opt_count(v, n, out.rpm_limit);
  else if (n == "max_parallel_requests") e = opt_count(v, n, out.max_parallel_requests);
  else if (n == "metadata") e = metadata_object(v, n, out.metadata);
  else return false;
  return true;
}

std::optional<error> parse_key_request(std::string_view body, key_request& out) {
  out = key_request{};
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& n = root.keys[i];
    const jnode& v = root.items[i];
    opt_error e;
    if (!shared_field(n, v, out, e)) {
      if (n == "key") e = key_string(v, n, out.key);
      else if (n == "key_alias") e = clearable_string(v, n, out.key_alias);
      else if (n == "user_id") e = clearable_string(v, n, out.user_id);
      else if (n == "team_id") e = clearable_string(v, n, out.team_id);
      else if (n == "duration") e = opt_duration(v, n, out.duration);
      else if (n == "models") e = string_list(v, n, out.models);
      else if (n == "model_rpm_limit") e = count_map(v, n, out.model_rpm_limit);
      else if (n == "model_tpm_limit") e = count_map(v, n, out.model_tpm_limit);
      else if (n == "model_max_budget") e = model_budget_map(v, n, out.model_max_budget, out.ignored);
      else if (n == "blocked") e = boolean(v, n, out.blocked);
      else if (n == "spend") e = plain_money(v, n, out.spend);
      else note_ignored(out.ignored, n);
    }
    if (e) return e;
  }
  return std::nullopt;
}

void apply(const key_request& r, key_record& k, sys_time now) {
  set_if(r.key_alias, k.key_alias);
  set_if(r.user_id, k.user_id);
  set_if(r.team_id, k.team_id);
  if (r.duration) {
    duration_spec d;
    if (*r.duration && !(*r.duration)->empty() && parse_duration(**r.duration, d))
      k.expires = add_duration(now, d);
    else
      k.expires.reset();
  }
  set_if(r.models, k.models);
  apply_budget(r, k.budget, now);
  apply_limits(r, k.limits);
  set_if(r.model_rpm_limit, k.limits.model_rpm_limit);
  set_if(r.model_tpm_limit, k.limits.model_tpm_limit);
  if (r.model_max_budget) {
    // Replace the map; a model that stays keeps its spend (and its reset time while
    // its period is unchanged).
    std::map<std::string, model_budget> next;
    for (const auto& [model, b] : *r.model_max_budget) {
      model_budget nb = b;
      auto old = k.model_max_budget.find(model);
      if (old != k.model_max_budget.end()) nb.spend = old->second.spend;
      duration_spec d;
      if (old != k.model_max_budget.end() && old->second.time_period == nb.time_period)
        nb.reset_at = old->second.reset_at;
      else if (!nb.time_period.empty() && parse_duration(nb.time_period, d))
        nb.reset_at = first_reset(now, d);
      else
        nb.reset_at.reset();
      next.emplace(model, std::move(nb));
    }
    k.model_max_budget = std::move(next);
  }
  set_if(r.metadata, k.metadata);
  set_if(r.blocked, k.blocked);
  touch(k.created_at, k.updated_at, now);
}

std::optional<error> parse_user_request(std::string_view body, user_request& out) {
  out = user_request{};
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& n = root.keys[i];
    const jnode& v = root.items[i];
    opt_error e;
    if (!shared_field(n, v, out, e)) {
      if (n == "user_id") e = id_string(v, n, out.user_id);
      else if (n == "user_alias") e = clearable_string(v, n, out.user_alias);
      else if (n == "user_email") e = clearable_string(v, n, out.user_email);
      else if (n == "user_role") e = user_role(v, n, out.user_role);
      else if (n == "models") e = string_list(v, n, out.models);
      else if (n == "teams") e = string_list(v, n, out.teams);
      else if (n == "spend") e = plain_money(v, n, out.spend);
      else note_ignored(out.ignored, n);
    }
    if (e) return e;
  }
  return std::nullopt;
}

void apply(const user_request& r, user_record& u, sys_time now) {
  set_if(r.user_id, u.user_id);
  set_if(r.user_alias, u.user_alias);
  set_if(r.user_email, u.user_email);
  set_if(r.user_role, u.user_role);
  set_if(r.models, u.models);
  set_if(r.teams, u.teams);
  apply_budget(r, u.budget, now);
  apply_limits(r, u.limits);
  set_if(r.metadata, u.metadata);
  touch(u.created_at, u.updated_at, now);
}

std::optional<error> parse_team_request(std::string_view body, team_request& out) {
  out = team_request{};
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& n = root.keys[i];
    const jnode& v = root.items[i];
    opt_error e;
    if (!shared_field(n, v, out, e)) {
      if (n == "team_id") e = id_string(v, n, out.team_id);
      else if (n == "team_alias") e = clearable_string(v, n, out.team_alias);
      else if (n == "members_with_roles") e = member_list(v, n, out.members_with_roles);
      else if (n == "models") e = string_list(v, n, out.models);
      else if (n == "blocked") e = boolean(v, n, out.blocked);
      else if (n == "spend") e = plain_money(v, n, out.spend);
      else note_ignored(out.ignored, n);
    }
    if (e) return e;
  }
  return std::nullopt;
}

void apply(const team_request& r, team_record& t, sys_time now) {
  set_if(r.team_id, t.team_id);
  set_if(r.team_alias, t.team_alias);
  set_if(r.members_with_roles, t.members_with_roles);
  set_if(r.models, t.models);
  apply_budget(r, t.budget, now);
  apply_limits(r, t.limits);
  set_if(r.metadata, t.metadata);
  set_if(r.blocked, t.blocked);
  touch(t.created_at, t.updated_at, now);
}

std::optional<error> parse_member_add(std::string_view body, member_request& out) {
  out = member_request{};
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  if (auto e = required_id(find_member(root, "team_id"), "team_id", out.team_id)) return e;
  const jnode* m = find_member(root, "member");
  if (!m || is_null(*m))
    return missing("member", "member is required: {\"user_id\", \"user_email\", \"role\"} or an array of them");
  if (m->k == jnode::kind::object) {
    out.members.emplace_back();
    return member_entry(*m, "member", out.members.back());
  }
  if (m->k != jnode::kind::array)
    return type_error("member", "an object {\"user_id\", \"user_email\", \"role\"} or an array of them", *m);
  if (m->items.empty()) return value_error("member", "a non-empty array of members", *m);
  out.members.resize(m->items.size());
  for (std::size_t i = 0; i < m->items.size(); ++i)
    if (auto e = member_entry(m->items[i], index_param("member", i), out.members[i])) return e;
  return std::nullopt;
}

std::optional<error> parse_member_delete(std::string_view body, member_request& out) {
  out = member_request{};
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  if (auto e = required_id(find_member(root, "team_id"), "team_id", out.team_id)) return e;
  team_member m;
  for (std::string_view name : {"user_id", "user_email"}) {
    const jnode* v = find_member(root, name);
    if (!v || is_null(*v)) continue;
    if (v->k != jnode::kind::string) return type_error(std::string(name), "a string", *v);
    (name == "user_id" ? m.user_id : m.user_email) = v->text;
  }
  if (m.user_id.empty() && m.user_email.empty())
    return missing("user_id", "user_id or user_email is required");
  out.members.push_back(std::move(m));
  return std::nullopt;
}

std::optional<error> parse_name_list(std::string_view body, std::string_view field,
                                     std::vector<std::string>& out, bool single) {
  out.clear();
  jnode root;
  if (auto e = parse_body(body, root)) return e;
  const std::string p(field);
  const jnode* v = find_member(root, field);
  if (!v || is_null(*v)) return missing(p, p + " is required");
  if (single) {
    if (v->k != jnode::kind::string) return type_error(p, "a non-empty string", *v);
    if (v->text.empty()) return value_error(p, "a non-empty string", *v);
    out.push_back(v->text);
    return std::nullopt;
  }
  if (v->k != jnode::kind::array) return type_error(p, "an array of strings", *v);
  if (v->items.empty()) return value_error(p, "a non-empty array of strings", *v);
  for (std::size_t i = 0; i < v->items.size(); ++i) {
    const jnode& item = v->items[i];
    if (item.k != jnode::kind::string) return type_error(index_param(p, i), "a string", item);
    if (item.text.empty()) return value_error(index_param(p, i), "a non-empty string", item);
    out.push_back(item.text);
  }
  return std::nullopt;
}

std::string iso_time(sys_time t) {
  using namespace std::chrono;
  auto us = floor<microseconds>(t);
  auto day = floor<days>(us);
  year_month_day ymd{day};
  hh_mm_ss hms{us - day};
  char buf[80];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lld+00:00",
                        static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                        static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                        static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                        static_cast<long long>(hms.subseconds().count()));
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

void append_money(std::string& out, money m) {
  // Exact: the decimal text, trailing zeros dropped but one fractional digit kept
  // ("0.0", "0.1", "12.5"), as Python prints floats.
  std::string d = to_decimal(m);
  std::size_t end = d.size();
  while (end > 0 && d[end - 1] == '0' && d[end - 2] != '.') --end;
  out.append(d, 0, end);
}

std::string to_json(const key_record& k) {
  std::string out;
  out.reserve(1024);
  object_writer w(out);
  w.str("token", k.token);
  w.str_or_null("key_name", k.key_name);
  w.str_or_null("key_alias", k.key_alias);
  w.usd("spend", k.budget.spend);
  w.usd("max_budget", k.budget.max_budget);
  w.usd("soft_budget", k.budget.soft_budget);
  w.time("expires", k.expires);
  w.strings("models", k.models);
  w.raw("aliases", "{}");
  w.raw("config", "{}");
  w.str_or_null("user_id", k.user_id);
  w.str_or_null("team_id", k.team_id);
  w.raw("permissions", "{}");
  w.integer("max_parallel_requests", k.limits.max_parallel_requests);
  w.metadata("metadata", k.metadata);
  w.boolean("blocked", k.blocked);
  w.integer("tpm_limit", k.limits.tpm_limit);
  w.integer("rpm_limit", k.limits.rpm_limit);
  w.counts("model_rpm_limit", k.limits.model_rpm_limit);
  w.counts("model_tpm_limit", k.limits.model_tpm_limit);
  w.str_or_null("budget_duration", k.budget.budget_duration);
  w.time("budget_reset_at", k.budget.budget_reset_at);
  w.raw("allowed_cache_controls", "[]");
  w.key("model_spend");
  out += '{';
  bool first = true;
  for (const auto& [model, m] : k.model_spend) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, model);
    out += ':';
    append_money(out, m);
  }
  out += '}';
  w.key("model_max_budget");
  out += '{';
  first = true;
  for (const auto& [model, b] : k.model_max_budget) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, model);
    out += ":{\"budget_limit\":";
    append_money(out, b.budget_limit);
    out += ",\"time_period\":";
    if (b.time_period.empty()) out += "null";
    else append_json_string(out, b.time_period);
    out += '}';
  }
  out += '}';
  w.stamp("created_at", k.created_at);
  w.stamp("updated_at", k.updated_at);
  w.str_or_null("created_by", k.created_by);
  w.raw("litellm_budget_table", "null");
  w.close();
  return out;
}

std::string to_json(const user_record& u) {
  std::string out;
  out.reserve(512);
  object_writer w(out);
  w.str("user_id", u.user_id);
  w.str_or_null("user_alias", u.user_alias);
  w.str_or_null("user_email", u.user_email);
  w.str_or_null("user_role", u.user_role);
  w.strings("teams", u.teams);
  w.strings("models", u.models);
  write_budget_and_limits(w, u);
  w.metadata("metadata", u.metadata);
  w.stamp("created_at", u.created_at);
  w.stamp("updated_at", u.updated_at);
  w.close();
  return out;
}

std::string to_json(const team_record& t) {
  std::string out;
  out.reserve(512);
  object_writer w(out);
  w.str("team_id", t.team_id);
  w.str_or_null("team_alias", t.team_alias);
  w.key("members_with_roles");
  out += '[';
  for (std::size_t i = 0; i < t.members_with_roles.size(); ++i) {
    const team_member& m = t.members_with_roles[i];
    if (i) out += ',';
    object_writer mw(out);
    mw.str_or_null("user_id", m.user_id);
    mw.str_or_null("user_email", m.user_email);
    mw.str("role", m.role);
    mw.close();
  }
  out += ']';
  w.strings("models", t.models);
  write_budget_and_limits(w, t);
  w.metadata("metadata", t.metadata);
  w.boolean("blocked", t.blocked);
  w.stamp("created_at", t.created_at);
  w.stamp("updated_at", t.updated_at);
  w.close();
  return out;
}

std::string key_generate_response(const key_record& k, std::string_view plain_key,
                                  const std::optional<std::string>& duration) {
  std::string body;
  if (k.key_name.empty() && !plain_key.empty()) {
    key_record named = k;
    named.key_name = abbreviate_key(plain_key);
    body = to_json(named);
  } else {
    body = to_json(k);
  }
  std::string out;
  out.reserve(body.size() + plain_key.size() + 128);
  object_writer w(out);
  w.str("key", plain_key);
  w.str("token_id", k.token);
  w.key("duration");
  if (duration) append_json_string(out, *duration);
  else out += "null";
  // to_json's members (token, key_name, ...) follow: "{...}" minus its opening brace.
  out += ',';
  out.append(body, 1, std::string::npos);
  return out;
}


std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < s.size()) {
      int a = hex_value(s[i + 1]), b = hex_value(s[i + 2]);
      if (a < 0 || b < 0) {
        out += c;
        continue;
      }
      out += static_cast<char>(a * 16 + b);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}


std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  for (auto part : split(q, '&')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string_view::npos) out[url_decode(part)] = "";
    else out[url_decode(part.substr(0, eq))] = url_decode(part.substr(eq + 1));
  }
  return out;
}

std::optional<keys::sys_time> parse_date(std::string_view s) {
  int y, mo, d, h = 0, mi = 0, se = 0;
  std::string str(s);
  if (std::sscanf(str.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &se) < 3 &&
      std::sscanf(str.c_str(), "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &se) < 3)
    return std::nullopt;
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) return std::nullopt;
  return sys_days{ymd} + hours(h) + minutes(mi) + seconds(se);
}


}  // namespace gw::keys
