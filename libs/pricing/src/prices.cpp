#include "gw/pricing/prices.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "builtin.hpp"
#include "decimal.hpp"

namespace gw::pricing {
namespace {

constexpr keys::money money_max = std::numeric_limits<keys::money>::max();
constexpr keys::money money_min = std::numeric_limits<keys::money>::min();

/// Picodollars per token carry 12 decimal places of the USD amount.
constexpr int pico_scale = 12;

keys::money saturating_mul(std::int64_t a, std::int64_t b) noexcept {
  keys::money r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? money_min : money_max;
  return r;
}

keys::money saturating_add(keys::money a, keys::money b) noexcept {
  keys::money r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b < 0 ? money_min : money_max;
  return r;
}

// ---- find(): name normalisation, all on string_views (no allocation) ----

/// Removes a Bedrock cross-region inference prefix ("us.anthropic.claude-..." ->
/// "anthropic.claude-..."). false if `name` has none.
bool strip_region_prefix(std::string_view& name) noexcept {
  static constexpr std::array<std::string_view, 4> prefixes = {"us.", "eu.", "apac.", "global."};
  for (std::string_view prefix : prefixes) {
    if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix) {
      name.remove_prefix(prefix.size());
      return true;
    }
  }
  return false;
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Removes one trailing date or version suffix: "-2024-07-18", "-20241022", "-v1:0",
/// "@20241022" or "-latest". false if `name` ends in none of them. At least one character
/// of the name must remain before the suffix.
bool strip_version_suffix(std::string_view& name) noexcept {
  const std::size_t n = name.size();
  auto cut = [&](std::size_t suffix_len) {
    name.remove_suffix(suffix_len);
    return true;
  };
  // "-latest"
  constexpr std::string_view latest = "-latest";
  if (n > latest.size() && name.substr(n - latest.size()) == latest) return cut(latest.size());
  // "-YYYY-MM-DD" (11 characters)
  if (n > 11 && name[n - 11] == '-' && all_digits(name.substr(n - 10, 4)) && name[n - 6] == '-' &&
      all_digits(name.substr(n - 5, 2)) && name[n - 3] == '-' && all_digits(name.substr(n - 2))) {
    return cut(11);
  }
  // "-YYYYMMDD" or "@YYYYMMDD" (9 characters)
  if (n > 9 && (name[n - 9] == '-' || name[n - 9] == '@') && all_digits(name.substr(n - 8))) {
    return cut(9);
  }
  // "-vN:N" (Bedrock model versions, any number of digits on either side)
  const std::size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && all_digits(name.substr(colon + 1))) {
    const std::size_t v = name.rfind("-v", colon);
    if (v != std::string_view::npos && v > 0 && all_digits(name.substr(v + 2, colon - v - 2))) {
      return cut(n - v);
    }
  }
  return false;
}

// ---- load_json(): the LiteLLM price file ----

enum class price_field { input, output, cache_read, cache_creation, max_input_tokens, max_output_tokens, count };

constexpr std::array<std::string_view, static_cast<std::size_t>(price_field::count)> price_field_names = {
    "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "cache_creation_input_token_cost",
    "max_input_tokens",     "max_output_tokens"};

bool is_token_count(price_field f) noexcept {
  return f == price_field::max_input_tokens || f == price_field::max_output_tokens;
}

/// One file entry: the fields it gives (values already converted).
struct file_entry {
  std::string name;
  std::array<std::optional<std::int64_t>, static_cast<std::size_t>(price_field::count)> values;

  const std::optional<std::int64_t>& operator[](price_field f) const { return values[static_cast<std::size_t>(f)]; }
};

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string in_quotes(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.append(1, '"').append(s).append(1, '"');
  return out;
}

/// Reads the fields of one entry object. Prices are converted from the number's JSON text
/// (never through double); a string holding a number is accepted too. false with `err`
/// (without the entry name) on a bad value.
bool read_entry(simdjson::ondemand::object& object, file_entry& entry, std::string& err) {
  using namespace simdjson;
  for (auto field_result : object) {
    ondemand::field field;
    std::string_view key;
    if (auto e = std::move(field_result).get(field); e != SUCCESS) {
      err = error_message(e);
      return false;
    }
    if (auto e = field.unescaped_key().get(key); e != SUCCESS) {
      err = error_message(e);
      return false;
    }
    const auto it = std::find(price_field_names.begin(), price_field_names.end(), key);
    if (it == price_field_names.end()) continue;  // other fields are ignored (and skipped)
    const auto which = static_cast<price_field>(it - price_field_names.begin());
    const std::string_view field_name = *it;

    ondemand::value& value = field.value();
    ondemand::json_type type{};
    if (auto e = value.type().get(type); e != SUCCESS) {
      err = field_name;
      err += ": ";
      err += error_message(e);
      return false;
    }
    std::string_view text;
    if (type == ondemand::json_type::null) continue;  // same as absent
    if (type == ondemand::json_type::number) {
      text = trim(value.raw_json_token());  // the token includes trailing whitespace
    } else if (type == ondemand::json_type::string) {
      if (auto e = value.get_string().get(text); e != SUCCESS) {
        err = field_name;
        err += ": ";
        err += error_message(e);
        return false;
      }
    } else {
      err = field_name;
      err += " is not a number";
      return false;
    }
    std::int64_t converted = 0;
    const int scale = is_token_count(which) ? 0 : pico_scale;
    if (!detail::parse_scaled_decimal(text, scale, converted)) {
      err = field_name;
      err += " is not a number >= 0 (";
      err += text;
      err += ")";
      return false;
    }
    entry.values[static_cast<std::size_t>(which)] = converted;
  }
  return true;
}

/// Parses a whole price file into `entries` (in file order). false with `err`.
bool read_price_file(const simdjson::padded_string& json, std::vector<file_entry>& entries, std::string& err) {
  using namespace simdjson;
  // The DOM pass validates the whole document (syntax, trailing content) up front; the
  // on-demand pass then reads numbers from their text, which the DOM does not keep.
  {
    dom::parser validator;
    dom::element root;
    if (auto e = validator.parse(json).get(root); e != SUCCESS) {
      err = std::string("invalid JSON: ") + error_message(e);
      return false;
    }
    if (!root.is_object()) {
      err = "not a JSON object mapping model names to prices";
      return false;
    }
  }
  ondemand::parser parser;
  ondemand::document doc;
  ondemand::object root;
  if (auto e = parser.iterate(json).get(doc); e != SUCCESS) {
    err = std::string("invalid JSON: ") + error_message(e);
    return false;
  }
  if (auto e = doc.get_object().get(root); e != SUCCESS) {
    err = "not a JSON object mapping model names to prices";
    return false;
  }
  for (auto field_result : root) {
    ondemand::field field;
    std::string_view key;
    if (auto e = std::move(field_result).get(field); e != SUCCESS) {
      err = std::string("invalid JSON: ") + error_message(e);
      return false;
    }
    if (auto e = field.unescaped_key().get(key); e != SUCCESS) {
      err = std::string("invalid JSON: ") + error_message(e);
      return false;
    }
    if (key == "sample_spec") continue;  // LiteLLM's documentation entry
    file_entry entry;
    entry.name.assign(key);
    ondemand::object object;
    if (field.value().get_object().get(object) != SUCCESS) {
      err = "entry " + in_quotes(entry.name) + ": not a JSON object";
      return false;
    }
    std::string field_err;
    if (!read_entry(object, entry, field_err)) {
      err = "entry " + in_quotes(entry.name) + ": " + field_err;
      return false;
    }
    entries.push_back(std::move(entry));
  }
  return true;
}

/// Applies validated entries: existing models get the given fields replaced, new models
/// are added when they carry a per-token price.
void merge_entries(std::vector<file_entry>& entries, detail::price_map& prices) {
  for (file_entry& entry : entries) {
    auto it = prices.find(std::string_view(entry.name));
    if (it == prices.end()) {
      if (!entry[price_field::input] && !entry[price_field::output]) continue;
      it = prices.emplace(std::move(entry.name), model_price{}).first;
    }
    model_price& p = it->second;
    if (const auto& v = entry[price_field::input]) p.input_per_token = *v;
    if (const auto& v = entry[price_field::output]) p.output_per_token = *v;
    if (const auto& v = entry[price_field::cache_read]) p.cache_read_per_token = *v;
    if (const auto& v = entry[price_field::cache_creation]) p.cache_creation_per_token = *v;
    if (const auto& v = entry[price_field::max_input_tokens]) p.max_input_tokens = *v;
    if (const auto& v = entry[price_field::max_output_tokens]) p.max_output_tokens = *v;
  }
}

bool merge_price_json(const simdjson::padded_string& json, detail::price_map& prices, std::string& err) {
  std::vector<file_entry> entries;
  if (!read_price_file(json, entries, err)) return false;  // nothing merged on error
  merge_entries(entries, prices);
  return true;
}

}  // namespace

keys::money cost_of(const model_price& p, const token_usage& u) noexcept {
  const auto non_negative = [](std::int64_t v) -> std::int64_t { return v < 0 ? 0 : v; };
  const std::int64_t cache_read = non_negative(u.cache_read_tokens);
  const std::int64_t cache_creation = non_negative(u.cache_creation_tokens);
  // Cached tokens are part of prompt_tokens. Counts that claim more cached than prompt
  // tokens bill the cached ones at their prices and no uncached input (never negative).
  // Each difference of non-negative int64 values stays in range.
  std::int64_t uncached = non_negative(u.prompt_tokens) - cache_read;
  uncached = non_negative(non_negative(uncached) - cache_creation);

  keys::money total = saturating_mul(uncached, p.input_per_token);
  total = saturating_add(total, saturating_mul(cache_read, p.cache_read_per_token.value_or(p.input_per_token)));
  total = saturating_add(total, saturating_mul(cache_creation, p.cache_creation_per_token.value_or(p.input_per_token)));
  total = saturating_add(total, saturating_mul(non_negative(u.completion_tokens), p.output_per_token));
  return total;
}

price_table::price_table() { detail::add_builtin_prices(prices_); }

bool price_table::load_file(const std::string& path, std::string& err) {
  simdjson::padded_string json;
  if (auto e = simdjson::padded_string::load(path).get(json); e != simdjson::SUCCESS) {
    err = "price file " + path + ": cannot read: " + simdjson::error_message(e);
    return false;
  }
  std::string detail_err;
  if (!merge_price_json(json, prices_, detail_err)) {
    err = "price file " + path + ": " + detail_err;
    return false;
  }
  return true;
}

bool price_table::load_json(std::string_view json, std::string& err) {
  const simdjson::padded_string padded(json);
  std::string detail_err;
  if (!merge_price_json(padded, prices_, detail_err)) {
    err = "price file: " + detail_err;
    return false;
  }
  return true;
}

const model_price* price_table::find(std::string_view model) const noexcept {
  const auto lookup = [this](std::string_view name) -> const model_price* {
    const auto it = prices_.find(name);  // transparent: no std::string is built
    return it == prices_.end() ? nullptr : &it->second;
  };
  std::string_view name = model;
  if (const model_price* p = lookup(name)) return p;
  // 1. Without the provider prefix: "openai/gpt-4o" -> "gpt-4o".
  if (const std::size_t slash = name.find('/'); slash != std::string_view::npos) {
    name.remove_prefix(slash + 1);
    if (const model_price* p = lookup(name)) return p;
  }
  // 2. Without a Bedrock region prefix: "us.anthropic.claude-..." -> "anthropic.claude-...".
  if (strip_region_prefix(name)) {
    if (const model_price* p = lookup(name)) return p;
  }
  // 3. Without date/version suffixes, one at a time ("claude-3-5-haiku-latest" ->
  //    "claude-3-5-haiku"; "x-20241022-v2:0" -> "x-20241022" -> "x").
  for (int i = 0; i < 3 && strip_version_suffix(name); ++i) {
    if (const model_price* p = lookup(name)) return p;
  }
  return nullptr;
}

std::optional<model_price> with_overrides(const model_price* base, const std::map<std::string, std::string>& model_info,
                                          bool& ok, std::string& err) {
  ok = true;
  model_price result = base != nullptr ? *base : model_price{};
  bool has_input = base != nullptr;
  bool has_output = base != nullptr;

  // Looks `key` up; true if absent or valid (then `apply` got the converted value).
  const auto read = [&](std::string_view key, int scale, auto&& apply) {
    const auto it = model_info.find(std::string(key));
    if (it == model_info.end()) return true;
    std::int64_t value = 0;
    if (!detail::parse_scaled_decimal(it->second, scale, value)) {
      ok = false;
      err = "model_info." + std::string(key) + ": not a number >= 0: " + in_quotes(it->second);
      return false;
    }
    apply(value);
    return true;
  };
  const bool valid =
      read("input_cost_per_token", pico_scale,
           [&](std::int64_t v) {
             result.input_per_token = v;
             has_input = true;
           }) &&
      read("output_cost_per_token", pico_scale,
           [&](std::int64_t v) {
             result.output_per_token = v;
             has_output = true;
           }) &&
      read("cache_read_input_token_cost", pico_scale, [&](std::int64_t v) { result.cache_read_per_token = v; }) &&
      read("cache_creation_input_token_cost", pico_scale,
           [&](std::int64_t v) { result.cache_creation_per_token = v; }) &&
      read("max_input_tokens", 0, [&](std::int64_t v) { result.max_input_tokens = v; }) &&
      read("max_output_tokens", 0, [&](std::int64_t v) { result.max_output_tokens = v; });
  if (!valid) return std::nullopt;
  if (!has_input || !has_output) return std::nullopt;
  return result;
}

bool parse_usd(std::string_view text, keys::money& out) noexcept {
  return detail::parse_scaled_decimal(text, pico_scale, out);
}

}  // namespace gw::pricing
