#include "gw/core/json_parsers.hpp"
#include "gw/providers/openai.hpp"

#include <simdjson.h>

#include "controls.hpp"
#include "gw/core/json_writer.hpp"

#include <cstring>
#include <vector>

namespace gw::providers {
namespace od = simdjson::ondemand;

std::string_view operation_name(operation op) noexcept {
  switch (op) {
    case operation::chat: return "chat";
    case operation::completion: return "text_completion";
    case operation::embedding: return "embeddings";
  }
  return "chat";
}

std::string_view operation_path(operation op) noexcept {
  switch (op) {
    case operation::chat: return "/chat/completions";
    case operation::completion: return "/completions";
    case operation::embedding: return "/embeddings";
  }
  return "/chat/completions";
}

namespace {

od::parser& thread_parser(std::size_t size) {
  thread_local od::parser p;
  return fit_parser(p, size);
}

error type_error(std::string_view param, std::string_view expected) {
  return error{errc::invalid_type,
               "Invalid type for '" + std::string(param) + "': expected " + std::string(expected) + ".",
               std::string(param)};
}

error json_error(simdjson::error_code ec) {
  return error{errc::invalid_json,
               std::string("We could not parse the JSON body of your request: ") +
                   simdjson::error_message(ec),
               ""};
}

constexpr int max_depth = 128;

/// Walks a value fully so that malformed JSON anywhere is found; adds string bytes
/// to `text_bytes` when `count_text`.
simdjson::error_code walk(od::value v, int depth, std::size_t* text_bytes) {
  if (depth > max_depth) return simdjson::DEPTH_ERROR;
  od::json_type t;
  if (auto ec = v.type().get(t)) return ec;
  switch (t) {
    case od::json_type::object: {
      od::object o;
      if (auto ec = v.get_object().get(o)) return ec;
      for (auto field : o) {
        std::string_view key;
        if (auto ec = field.unescaped_key().get(key)) return ec;
        od::value fv;
        if (auto ec = field.value().get(fv)) return ec;
        if (auto ec = walk(fv, depth + 1, text_bytes)) return ec;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      od::array a;
      if (auto ec = v.get_array().get(a)) return ec;
      for (auto el : a) {
        od::value ev;
        if (auto ec = el.get(ev)) return ec;
        if (auto ec = walk(ev, depth + 1, text_bytes)) return ec;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto ec = v.get_string().get(s)) return ec;
      if (text_bytes) *text_bytes += s.size();
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      od::number n;
      return v.get_number().get(n);
    }
    case od::json_type::boolean: {
      bool b;
      return v.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto ec = v.is_null().get(is_null)) return ec;
      return is_null ? simdjson::SUCCESS : simdjson::INCORRECT_TYPE;
    }
  }
  return simdjson::SUCCESS;
}

/// Result of checking one field: nullopt = fine.
using check = std::optional<error>;

check check_messages(od::value v, std::size_t& text_bytes) {
  od::array a;
  if (v.get_array().get(a)) return type_error("messages", "an array");
  std::size_t count = 0, index = 0;
  for (auto el : a) {
    od::value m;
    if (auto ec = el.get(m)) return json_error(ec);
    od::object o;
    auto param = [index] { return "messages[" + std::to_string(index) + "]"; };  // only for errors
    if (m.get_object().get(o)) return type_error(param(), "an object");
    bool has_role = false;
    for (auto field : o) {
      std::string_view key;
      if (auto ec = field.unescaped_key().get(key)) return json_error(ec);
      od::value fv;
      if (auto ec = field.value().get(fv)) return json_error(ec);
      if (key == "role") {
        std::string_view role;
        if (fv.get_string().get(role)) return type_error(param() + ".role", "a string");
        has_role = true;
      } else if (key == "content") {
        if (auto ec = walk(fv, 2, &text_bytes)) return json_error(ec);
      } else {
        if (auto ec = walk(fv, 2, nullptr)) return json_error(ec);
      }
    }
    if (!has_role)
      return error{errc::missing_parameter, "Missing required parameter: '" + param() + ".role'.",
                   param() + ".role"};
    ++count;
    ++index;
  }
  if (count == 0)
    return error{errc::invalid_request, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                 "messages"};
  return std::nullopt;
}

/// prompt (completions) and input (embeddings): a string, or a non-empty array of
/// strings, integers (tokens) or integer arrays.
check check_prompt_like(od::value v, std::string_view name, std::size_t& text_bytes) {
  od::json_type t;
  if (auto ec = v.type().get(t)) return json_error(ec);
  if (t == od::json_type::string) {
    std::string_view s;
    if (auto ec = v.get_string().get(s)) return json_error(ec);
    text_bytes += s.size();
    return std::nullopt;
  }
  if (t != od::json_type::array) return type_error(name, "a string or an array");
  od::array a;
  if (auto ec = v.get_array().get(a)) return json_error(ec);
  std::size_t count = 0;
  for (auto el : a) {
    od::value ev;
    if (auto ec = el.get(ev)) return json_error(ec);
    od::json_type et;
    if (auto ec = ev.type().get(et)) return json_error(ec);
    if (et == od::json_type::string) {
      std::string_view s;
      if (auto ec = ev.get_string().get(s)) return json_error(ec);
      text_bytes += s.size();
    } else if (et == od::json_type::number || et == od::json_type::array) {
      std::size_t before = text_bytes;
      if (auto ec = walk(ev, 2, nullptr)) return json_error(ec);
      text_bytes = before + 4;  // token ids: count roughly one token each
    } else {
      return type_error(name, "a string, an array of strings or an array of tokens");
    }
    ++count;
  }
  if (count == 0)
    return error{errc::invalid_request, "Invalid '" + std::string(name) + "': empty array.", std::string(name)};
  return std::nullopt;
}

check check_number(od::value v, std::string_view name) {
  od::json_type t;
  if (auto ec = v.type().get(t)) return json_error(ec);
  if (t == od::json_type::null) return std::nullopt;
  if (t != od::json_type::number) return type_error(name, "a number");
  od::number n;
  if (auto ec = v.get_number().get(n)) return json_error(ec);
  return std::nullopt;
}

}  // namespace

namespace {

/// The raw JSON text of a value (an array or object whole; a scalar's token trimmed).
simdjson::error_code raw_value(od::value v, std::string_view& out) {
  od::json_type t;
  if (auto ec = v.type().get(t)) return ec;
  if (t == od::json_type::array) {
    od::array a;
    if (auto ec = v.get_array().get(a)) return ec;
    return a.raw_json().get(out);
  }
  if (t == od::json_type::object) {
    od::object o;
    if (auto ec = v.get_object().get(o)) return ec;
    return o.raw_json().get(out);
  }
  out = v.raw_json_token();
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n' || out.back() == '\r' || out.back() == '\t'))
    out.remove_suffix(1);
  return simdjson::SUCCESS;
}

std::optional<error> inspect_document(operation op, const std::string& body, od::document& doc,
                                      inspected_request& out) {
  od::object root;
  {
    od::json_type t;
    if (auto ec = doc.type().get(t)) return json_error(ec);
    if (t != od::json_type::object)
      return error{errc::invalid_request, "The request body must be a JSON object.", ""};
    if (auto ec = doc.get_object().get(root)) return json_error(ec);
  }
  bool has_model = false, has_main = false, has_stream = false, has_user = false, has_n = false;
  bool has_max_tokens = false, has_max_completion_tokens = false;
  // A routing field given twice: the gateway would act on one while the provider may
  // read the other (which one is undefined by RFC 8259). Refused.
  auto duplicate = [](std::string_view key) {
    return error{errc::invalid_request, "Duplicate key '" + std::string(key) + "' in the request body.",
                 std::string(key)};
  };
  std::shared_ptr<request_controls> controls;
  std::string_view main_field = op == operation::chat         ? "messages"
                                : op == operation::completion ? "prompt"
                                                              : "input";
  for (auto field : root) {
    std::string_view key;
    if (auto ec = field.unescaped_key().get(key)) return json_error(ec);
    od::value v;
    if (auto ec = field.value().get(v)) return json_error(ec);
    if (key == "model") {
      if (has_model) return duplicate(key);
      std::string_view raw = v.raw_json_token();
      std::string_view s;
      if (v.get_string().get(s)) return type_error("model", "a string");
      if (s.empty()) return error{errc::invalid_request, "Invalid 'model': empty string.", "model"};
      out.model.assign(s);
      // raw includes trailing spaces; the token ends at its closing quote.
      auto close = raw.find_last_of('"');
      out.model_token_begin = static_cast<std::size_t>(raw.data() - body.data());
      out.model_token_end = out.model_token_begin + close + 1;
      has_model = true;
    } else if (key == main_field) {
      if (has_main) return duplicate(key);
      has_main = true;
      check c = op == operation::chat ? check_messages(v, out.text_bytes)
                                      : check_prompt_like(v, main_field, out.text_bytes);
      if (c) return c;
    } else if (key == "stream") {
      if (has_stream) return duplicate(key);
      has_stream = true;
      od::json_type t;
      if (auto ec = v.type().get(t)) return json_error(ec);
      if (t != od::json_type::null) {
        bool b;
        if (v.get_bool().get(b)) return type_error("stream", "a boolean");
        out.stream = b;
      }
    } else if (key == "stream_options") {
      // Present even when null: the gateway must not add a second "stream_options".
      if (out.has_stream_options) return duplicate(key);
      out.has_stream_options = true;
      od::json_type t;
      if (auto ec = v.type().get(t)) return json_error(ec);
      if (t == od::json_type::null) continue;
      od::object so;
      if (v.get_object().get(so)) return type_error("stream_options", "an object");
      for (auto sf : so) {
        std::string_view sk;
        if (auto ec = sf.unescaped_key().get(sk)) return json_error(ec);
        od::value sv;
        if (auto ec = sf.value().get(sv)) return json_error(ec);
        if (sk == "include_usage") {
          bool b;
          if (sv.get_bool().get(b)) return type_error("stream_options.include_usage", "a boolean");
          out.include_usage = b;
        } else if (auto ec = walk(sv, 2, nullptr)) {
          return json_error(ec);
        }
      }
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      bool& seen = key == "max_tokens" ? has_max_tokens : has_max_completion_tokens;
      if (seen) return duplicate(key);
      seen = true;
      od::json_type t;
      if (auto ec = v.type().get(t)) return json_error(ec);
      if (t != od::json_type::null) {
        std::int64_t n;
        if (v.get_int64().get(n) || n < 0)
          return error{errc::invalid_request,
                       "Invalid '" + std::string(key) + "': expected a non-negative integer.", std::string(key)};
        out.max_tokens = std::max(out.max_tokens, n);
      }
    } else if (key == "n") {
      if (has_n) return duplicate(key);
      has_n = true;
      od::json_type t;
      if (auto ec = v.type().get(t)) return json_error(ec);
      if (t != od::json_type::null) {
        std::int64_t n;
        if (v.get_int64().get(n) || n < 1)
          return error{errc::invalid_request, "Invalid 'n': expected an integer >= 1.", "n"};
        out.n = n;
      }
    } else if (key == "user") {
      if (has_user) return duplicate(key);
      has_user = true;
      if (auto ec = walk(v, 1, nullptr)) return json_error(ec);
    } else if (key == "timeout" || key == "stream_timeout") {
      double x = 0;
      if (v.get_double().get(x) || !(x > 0) || x > 86400)
        return error{errc::invalid_request,
                     "Invalid '" + std::string(key) + "': expected a number of seconds > 0.", std::string(key)};
      (key == "timeout" ? out.timeout_s : out.stream_timeout_s) = x;
      out.has_gateway_fields = true;
    } else if (key == "num_retries") {
      std::int64_t n = 0;
      if (v.get_int64().get(n) || n < 0 || n > 10)
        return error{errc::invalid_request, "Invalid 'num_retries': expected an integer from 0 to 10.", "num_retries"};
      out.num_retries = static_cast<int>(n);
      out.has_gateway_fields = true;
    } else if (is_control_field(key)) {
      std::string_view raw;
      if (auto ec = raw_value(v, raw)) return json_error(ec);
      if (!controls) controls = std::make_shared<request_controls>();
      if (auto e = read_control(key, raw, *controls)) return e;
      out.has_gateway_fields = true;
    } else if (key == "temperature" || key == "top_p" || key == "presence_penalty" ||
               key == "frequency_penalty" || key == "dimensions") {
      if (auto c = check_number(v, key)) return c;
    } else {
      if (auto ec = walk(v, 1, nullptr)) return json_error(ec);
    }
  }
  // After the root object, a location still in bounds means trailing content.
  if (!doc.current_location().error())
    return error{errc::invalid_json, "Unexpected content after the JSON body.", ""};
  if (!has_model) return error{errc::missing_parameter, "Missing required parameter: 'model'.", "model"};
  if (!has_main)
    return error{errc::missing_parameter, "Missing required parameter: '" + std::string(main_field) + "'.",
                 std::string(main_field)};
  if (out.stream && op == operation::embedding)
    return error{errc::invalid_request, "Embeddings cannot be streamed.", "stream"};
  out.controls = std::move(controls);
  return std::nullopt;
}

/// Walks the whole document to tell malformed JSON apart from a semantic error.
bool well_formed(od::document& doc) {
  doc.rewind();
  od::value v;
  if (doc.get_value().get(v)) {
    // A scalar root: simdjson wants the scalar getters on the document itself.
    od::json_type t;
    if (doc.type().get(t)) return false;
    switch (t) {
      case od::json_type::string: { std::string_view s; return !doc.get_string().get(s); }
      case od::json_type::number: { od::number n; return !doc.get_number().get(n); }
      case od::json_type::boolean: { bool b; return !doc.get_bool().get(b); }
      case od::json_type::null: { bool n = false; return !doc.is_null().get(n) && n; }
      default: return false;
    }
  }
  if (walk(v, 0, nullptr)) return false;
  return doc.current_location().error() != simdjson::SUCCESS;
}

}  // namespace

std::optional<error> inspect_request(operation op, const std::string& body, inspected_request& out) {
  out = inspected_request{};
  if (body.capacity() < body.size() + simdjson::SIMDJSON_PADDING) {
    return error{errc::internal_error, "request body is not padded", ""};
  }
  auto& parser = thread_parser(body.size());
  od::document doc;
  if (auto ec = parser.iterate(body.data(), body.size(), body.capacity()).get(doc)) return json_error(ec);
  auto e = inspect_document(op, body, doc, out);
  out.body_bytes = body.size();
  // Images are billed in tokens their URL does not show (OpenAI: up to ~1,100 each).
  static constexpr std::string_view image = "\"image_url\"";
  for (std::size_t at = body.find(image); at != std::string::npos; at = body.find(image, at + image.size()))
    ++out.image_parts;
  // A semantic complaint about a body that is not even valid JSON would mislead:
  // on the (rare) error path, check the whole document first.
  if (e && e->code != errc::invalid_json && !well_formed(doc))
    return error{errc::invalid_json, "We could not parse the JSON body of your request: it is not valid JSON.", ""};
  return e;
}

namespace {
const char* padded_copy(std::string_view json, std::size_t& capacity);
}

std::string strip_gateway_fields(std::string_view body) {
  std::size_t cap = 0;
  const char* data = padded_copy(body, cap);
  od::document doc;
  od::object root;
  if (thread_parser(body.size()).iterate(data, body.size(), cap).get(doc) || doc.get_object().get(root)) return std::string(body);
  struct member {
    std::size_t key_start;
    bool drop;
  };
  std::vector<member> members;
  for (auto field : root) {
    od::raw_json_string rk;
    std::string_view key;
    if (field.key().get(rk) || field.unescaped_key().get(key)) return std::string(body);
    const char* raw = rk.raw();  // just after the key's opening quote
    members.push_back({static_cast<std::size_t>(raw - data) - 1,
                       is_gateway_field(key)});
    od::value v;
    if (field.value().get(v) || walk(v, 1, nullptr)) return std::string(body);
  }
  if (members.empty()) return std::string(body);
  auto value_end = [&](std::size_t i) {
    // A member ends at the comma before the next key, the last at the closing brace.
    std::size_t p = i + 1 < members.size() ? members[i + 1].key_start : body.rfind('}');
    if (p == std::string_view::npos) p = body.size();
    while (p > members[i].key_start && (body[p - 1] == ' ' || body[p - 1] == '\n' || body[p - 1] == '\r' ||
                                        body[p - 1] == '\t'))
      --p;
    if (i + 1 < members.size() && p > members[i].key_start && body[p - 1] == ',') --p;
    while (p > members[i].key_start && (body[p - 1] == ' ' || body[p - 1] == '\n' || body[p - 1] == '\r' ||
                                        body[p - 1] == '\t'))
      --p;
    return p;
  };
  std::string out(body.substr(0, members.front().key_start));
  bool first = true;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (members[i].drop) continue;
    if (!first) out += ',';
    first = false;
    out.append(body.substr(members[i].key_start, value_end(i) - members[i].key_start));
  }
  out.append(body.substr(value_end(members.size() - 1)));
  return out;
}

std::string with_model(std::string_view body, std::string_view model) {
  std::size_t cap = 0;
  const char* data = padded_copy(body, cap);
  od::document doc;
  od::object root;
  std::string quoted = json_quote(model);
  if (thread_parser(body.size()).iterate(data, body.size(), cap).get(doc) || doc.get_object().get(root)) return std::string(body);
  for (auto field : root) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return std::string(body);
    if (key != "model") continue;
    std::string_view raw = v.raw_json_token();
    // raw_json_token() includes trailing whitespace: keep it.
    std::size_t len = raw.size();
    while (len > 0 && (raw[len - 1] == ' ' || raw[len - 1] == '\n' || raw[len - 1] == '\r' || raw[len - 1] == '\t')) --len;
    std::size_t begin = static_cast<std::size_t>(raw.data() - data);
    std::string out(body.substr(0, begin));
    out += quoted;
    out.append(body.substr(begin + len));
    return out;
  }
  auto brace = body.find('{');
  std::string out(body.substr(0, brace + 1));
  out += "\"model\":";
  out += quoted;
  std::string_view rest = body.substr(brace + 1);
  std::size_t i = 0;
  while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n' || rest[i] == '\r' || rest[i] == '\t')) ++i;
  if (i < rest.size() && rest[i] != '}') out += ',';
  out.append(rest);
  return out;
}

namespace {

/// A padded copy of `json` for the thread's parser.
const char* padded_copy(std::string_view json, std::size_t& capacity) {
  thread_local std::vector<char> buf;
  if (buf.size() < json.size() + simdjson::SIMDJSON_PADDING) buf.resize(json.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(buf.data(), json.data(), json.size());
  capacity = buf.size();
  return buf.data();
}

/// Calls f(key, value) for each top-level field of the JSON object `json` until f
/// returns false. False if `json` is not a well-formed JSON object (as far as read).
template <class F>
bool for_each_field(std::string_view json, F&& f, std::size_t capacity = 0) {
  std::size_t cap = capacity;
  // In place when the caller's buffer has the padding; else a padded copy.
  const char* data = cap >= json.size() + simdjson::SIMDJSON_PADDING ? json.data() : padded_copy(json, cap);
  od::document doc;
  if (thread_parser(json.size()).iterate(data, json.size(), cap).get(doc)) return false;
  od::object root;
  if (doc.get_object().get(root)) return false;
  for (auto field : root) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return false;
    if (!f(key, v)) break;
  }
  return true;
}

}  // namespace

namespace {

bool read_usage_object(od::value v, usage& out) {
  od::object u;
  if (v.get_object().get(u)) return true;  // "usage": null in stream chunks
  usage got;
  for (auto uf : u) {
    std::string_view uk;
    od::value uv;
    std::int64_t n = 0;
    if (uf.unescaped_key().get(uk) || uf.value().get(uv)) return false;
    od::json_type t;
    if (uv.type().get(t)) return false;
    if (t == od::json_type::object && uk == "prompt_tokens_details") {
      od::object details;
      if (uv.get_object().get(details)) return false;
      for (auto df : details) {
        std::string_view dk;
        od::value dv;
        if (df.unescaped_key().get(dk) || df.value().get(dv)) return false;
        if (dk == "cached_tokens" && !dv.get_int64().get(n) && n > 0) got.cached_tokens = n;
      }
      continue;
    }
    if (t != od::json_type::number || uv.get_int64().get(n)) continue;
    if (uk == "prompt_tokens") got.prompt_tokens = n;
    else if (uk == "completion_tokens") got.completion_tokens = n;
    else if (uk == "total_tokens") got.total_tokens = n;
    else if (uk == "cache_read_input_tokens" && n > 0 && got.cached_tokens == 0) got.cached_tokens = n;
    else if (uk == "cache_creation_input_tokens" && n > 0) got.cache_creation_tokens = n;
  }
  out = got;
  return true;
}

void read_finish_reasons(od::value v, std::vector<std::string>& out) {
  od::array choices;
  if (v.get_array().get(choices)) return;
  for (auto c : choices) {
    od::object o;
    if (c.get_object().get(o)) continue;
    std::string reason;
    for (auto cf : o) {
      std::string_view ck;
      if (cf.unescaped_key().get(ck)) break;
      if (ck != "finish_reason") continue;
      od::value fv;
      std::string_view s;
      if (!cf.value().get(fv) && !fv.get_string().get(s)) reason.assign(s);
    }
    out.push_back(std::move(reason));
  }
}

}  // namespace

bool read_usage(std::string_view json, usage& out, std::string* response_model) {
  return for_each_field(json, [&](std::string_view key, od::value v) {
    if (key == "usage") return read_usage_object(v, out);
    if (key == "model" && response_model) {
      std::string_view m;
      if (!v.get_string().get(m)) response_model->assign(m);
    }
    return true;
  });
}

bool read_answer(std::string_view json, std::size_t capacity, usage& out, answer_info* info) {
  return for_each_field(
      json,
      [&](std::string_view key, od::value v) {
        if (key == "usage") return read_usage_object(v, out);
        if (!info) return true;
        std::string_view s;
        if (key == "id") {
          if (!v.get_string().get(s)) info->id.assign(s);
        } else if (key == "model") {
          if (!v.get_string().get(s)) info->model.assign(s);
        } else if (key == "choices") {
          read_finish_reasons(v, info->finish_reasons);
        }
        return true;
      },
      capacity);
}

bool may_carry_usage(std::string_view text) noexcept {
  static constexpr std::string_view key = "\"usage\"";
  // memmem, not string_view::find: JSON is full of '"', and find() runs memchr from
  // each of them.
  auto find = [&](std::size_t from) -> std::size_t {
    if (from >= text.size()) return std::string_view::npos;
    const void* hit = ::memmem(text.data() + from, text.size() - from, key.data(), key.size());
    return hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - text.data()) : std::string_view::npos;
  };
  for (auto pos = find(0); pos != std::string_view::npos; pos = find(pos + 1)) {
    std::size_t i = pos + key.size();
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i < text.size() && text[i] == '{') return true;
  }
  return false;
}

bool has_empty_choices(std::string_view text) noexcept {
  static constexpr std::string_view key = "\"choices\"";
  auto ws = [&](std::size_t i) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    return i;
  };
  for (std::size_t from = 0; from < text.size();) {
    const void* hit = ::memmem(text.data() + from, text.size() - from, key.data(), key.size());
    if (!hit) return false;
    std::size_t i = static_cast<std::size_t>(static_cast<const char*>(hit) - text.data()) + key.size();
    from = i;
    i = ws(i);
    if (i >= text.size() || text[i] != ':') continue;
    i = ws(i + 1);
    if (i >= text.size() || text[i] != '[') continue;
    i = ws(i + 1);
    return i < text.size() && text[i] == ']';
  }
  return false;
}

std::string normalize_error_body(std::string_view body, int status) {
  // The rare error path: the DOM parser, which can re-serialise members as they are.
  thread_local simdjson::dom::parser dp;
  simdjson::dom::element root;
  if (fit_parser(dp, body.size()).parse(body.data(), body.size()).get(root)) return std::string(body);
  simdjson::dom::object err;
  if (root["error"].get_object().get(err)) return std::string(body);
  std::string_view type, message;
  bool has_type = !err["type"].get_string().get(type) && !type.empty();
  bool has_message = !err["message"].get_string().get(message);
  simdjson::dom::element ignored;
  bool has_param = !err["param"].get(ignored), has_code = !err["code"].get(ignored);
  if (has_type && has_message && has_param && has_code) return std::string(body);
  std::string out = "{\"error\":{\"message\":";
  append_json_string(out, has_message ? message : std::string_view("upstream error (HTTP " + std::to_string(status) + ")"));
  out += ",\"type\":";
  std::string_view derived = status == 429 ? "rate_limit_error"
                             : status == 401 ? "authentication_error"
                             : status == 403 ? "permission_error"
                             : status == 404 ? "not_found_error"
                             : status / 100 == 4 ? "invalid_request_error"
                                                 : "api_error";
  append_json_string(out, has_type ? type : derived);
  simdjson::dom::element v;
  out += ",\"param\":";
  out += has_param && !err["param"].get(v) ? simdjson::minify(v) : std::string("null");
  out += ",\"code\":";
  out += has_code && !err["code"].get(v) ? simdjson::minify(v) : std::string("null");
  for (auto [k, val] : err) {
    if (k == "message" || k == "type" || k == "param" || k == "code") continue;
    out += ',';
    append_json_string(out, k);
    out += ':';
    out += simdjson::minify(val);
  }
  out += "}}";
  return out;
}

bool is_openai_error(std::string_view json) {
  bool found = false;
  for_each_field(json, [&](std::string_view key, od::value) {
    found = key == "error";
    return !found;
  });
  return found;
}

}  // namespace gw::providers
