// The gateway's per-request controls (LiteLLM's): fallbacks in its three shapes, the
// testing controls, and the body rewrites they need.

#include "controls.hpp"

#include "gw/core/json_writer.hpp"
#include "gw/providers/json_dom.hpp"

namespace gw::providers {
namespace {

namespace dom = simdjson::dom;

error invalid(std::string_view field, std::string_view what) {
  return error{errc::invalid_request, "Invalid '" + std::string(field) + "': " + std::string(what), std::string(field)};
}

constexpr std::string_view k_fallback_shapes =
    "expected a list of model group names, of {\"model\": \"<group>\", ...} objects, or of "
    "{\"<model group>\": [\"<group>\", ...]} mappings.";

/// One target: "name", or {"model": "name", <overrides>...}.
std::optional<error> read_target(dom::element e, std::string_view field, std::vector<fallback_target>& out) {
  std::string_view s;
  if (!e.get_string().get(s)) {
    if (s.empty()) return invalid(field, "empty model group name.");
    out.push_back(fallback_target{std::string(s), {}});
    return std::nullopt;
  }
  if (!e.is_object()) return invalid(field, k_fallback_shapes);
  dom::object o;
  if (e.get_object().get(o)) return invalid(field, k_fallback_shapes);
  auto model = json_dom::member(o, "model");
  std::string_view name;
  if (!model || model->get_string().get(name)) return invalid(field, k_fallback_shapes);
  fallback_target t;
  t.model.assign(name);
  if (t.model.empty()) return invalid(field, "empty model group name.");
  std::string overrides;
  for (auto [k, v] : o) {
    if (k == "model") continue;
    overrides += overrides.empty() ? "{" : ",";
    overrides += json_quote(k);
    overrides += ':';
    overrides += simdjson::minify(v);
  }
  if (!overrides.empty()) overrides += '}';
  t.overrides = std::move(overrides);
  out.push_back(std::move(t));
  return std::nullopt;
}

std::optional<error> read_fallbacks(std::string_view field, std::string_view raw, keyed_fallbacks& out) {
  dom::element root;
  if (json_dom::parse_json(json_dom::outer_parser(), raw, root)) return invalid(field, "not valid JSON.");
  if (root.is_null()) return std::nullopt;
  if (!root.is_array()) return invalid(field, k_fallback_shapes);
  std::vector<fallback_target> plain;
  dom::array items;
  if (root.get_array().get(items)) return invalid(field, k_fallback_shapes);
  for (dom::element e : items) {
    // {"group": [...]} (the router's shape) is an object without "model".
    dom::object mapping;
    if (!e.get_object().get(mapping) && !json_dom::member(mapping, "model")) {
      for (auto [group, targets] : mapping) {
        dom::array list_items;
        if (targets.get_array().get(list_items)) return invalid(field, k_fallback_shapes);
        std::vector<fallback_target> list;
        for (dom::element t : list_items)
          if (auto err = read_target(t, field, list)) return err;
        out.emplace_back(std::string(group), std::move(list));
      }
      continue;
    }
    if (auto err = read_target(e, field, plain)) return err;
  }
  if (!plain.empty() || out.empty()) out.emplace_back(std::string(), std::move(plain));
  return std::nullopt;
}

std::optional<error> read_flag(std::string_view field, std::string_view raw, bool& out) {
  dom::element e;
  if (json_dom::parse_json(json_dom::outer_parser(), raw, e)) return invalid(field, "not valid JSON.");
  if (e.is_null()) return std::nullopt;
  bool b;
  if (!e.get_bool().get(b)) {
    out = b;
    return std::nullopt;
  }
  std::string_view s;
  if (!e.get_string().get(s)) {  // LiteLLM takes "true" from form-style clients too
    if (s == "true" || s == "false") {
      out = s == "true";
      return std::nullopt;
    }
  }
  return invalid(field, "expected a boolean.");
}

}  // namespace

bool is_control_field(std::string_view k) noexcept {
  return k == "fallbacks" || k == "context_window_fallbacks" || k == "content_policy_fallbacks" ||
         k == "max_fallbacks" || k == "disable_fallbacks" || k == "mock_response" ||
         k == "mock_testing_fallbacks" || k == "mock_testing_context_fallbacks" ||
         k == "mock_testing_content_policy_fallbacks" || k == "mock_testing_rate_limit_error" || k == "mock_timeout";
}

bool is_gateway_field(std::string_view k) noexcept {
  return k == "timeout" || k == "stream_timeout" || k == "num_retries" || is_control_field(k);
}

std::optional<error> read_control(std::string_view key, std::string_view raw, request_controls& c) {
  if (key == "fallbacks" || key == "context_window_fallbacks" || key == "content_policy_fallbacks") {
    auto& slot = key == "fallbacks"                  ? c.fallbacks
                 : key == "context_window_fallbacks" ? c.context_window_fallbacks
                                                     : c.content_policy_fallbacks;
    keyed_fallbacks l;
    if (auto e = read_fallbacks(key, raw, l)) return e;
    slot = std::move(l);
    return std::nullopt;
  }
  if (key == "max_fallbacks") {
    dom::element e;
    if (json_dom::parse_json(json_dom::outer_parser(), raw, e)) return invalid(key, "not valid JSON.");
    if (e.is_null()) return std::nullopt;
    std::int64_t n = -1;
    if (e.get_int64().get(n) || n < 0 || n > 20) return invalid(key, "expected an integer from 0 to 20.");
    c.max_fallbacks = static_cast<int>(n);
    return std::nullopt;
  }
  if (key == "mock_response") {
    dom::element e;
    if (json_dom::parse_json(json_dom::outer_parser(), raw, e)) return invalid(key, "not valid JSON.");
    if (e.is_null()) return std::nullopt;
    std::string_view text;
    if (e.get_string().get(text))
      return invalid(key, "expected a string (the answer's content, or an error such as \"litellm.RateLimitError\").");
    c.mock_response = std::string(text);
    return std::nullopt;
  }
  bool* flag = key == "disable_fallbacks"                       ? &c.disable_fallbacks
               : key == "mock_testing_fallbacks"                ? &c.mock_testing_fallbacks
               : key == "mock_testing_context_fallbacks"        ? &c.mock_testing_context_fallbacks
               : key == "mock_testing_content_policy_fallbacks" ? &c.mock_testing_content_policy_fallbacks
               : key == "mock_testing_rate_limit_error"         ? &c.mock_testing_rate_limit_error
               : key == "mock_timeout"                          ? &c.mock_timeout
                                                                : nullptr;
  if (!flag) return std::nullopt;
  return read_flag(key, raw, *flag);
}

std::string with_overrides(std::string_view body, std::string_view overrides) {
  dom::element o;
  // The override members are copied out first: the parser is reused for the body.
  std::vector<std::pair<std::string, std::string>> members;
  dom::object oo;
  if (json_dom::parse_json(json_dom::outer_parser(), overrides, o) || o.get_object().get(oo)) return std::string(body);
  for (auto [k, v] : oo) members.emplace_back(std::string(k), simdjson::minify(v));
  dom::element b;
  dom::object bo;
  if (json_dom::parse_json(json_dom::outer_parser(), body, b) || b.get_object().get(bo)) return std::string(body);
  std::string out = "{";
  for (auto [k, v] : bo) {
    bool replaced = false;
    for (auto& m : members)
      if (m.first == k) replaced = true;
    if (replaced) continue;
    if (out.size() > 1) out += ',';
    out += json_quote(k);
    out += ':';
    out += simdjson::minify(v);
  }
  for (auto& [k, v] : members) {
    if (out.size() > 1) out += ',';
    out += json_quote(k);
    out += ':';
    out += v;
  }
  out += '}';
  return out;
}

}  // namespace gw::providers
