#include "responses.hpp"

#include <simdjson.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "gw/core/error.hpp"
#include "gw/core/json_writer.hpp"

namespace gw::mock {
namespace od = simdjson::ondemand;

namespace {

constexpr const char* k_words[] = {"The",   "quick", "brown", "fox",   "jumps", "over", "the",  "lazy",
                                   "dog",   "while", "mock",  "tokens", "flow", "through", "a", "gateway"};

od::parser& thread_parser() {
  thread_local od::parser p;
  return p;
}

#define MOCK_TRY(expr)                              \
  do {                                              \
    if (auto mock_ec_ = (expr)) {                   \
      err = simdjson::error_message(mock_ec_);      \
      return false;                                 \
    }                                               \
  } while (0)

/// Text of a message content: a string, or an array of parts with "text".
bool read_content(od::value v, std::string& out, std::string& err) {
  od::json_type t;
  MOCK_TRY(v.type().get(t));
  if (t == od::json_type::string) {
    std::string_view s;
    MOCK_TRY(v.get_string().get(s));
    out.assign(s);
    return true;
  }
  out.clear();
  if (t != od::json_type::array) return true;  // null content (tool calls)
  od::array a;
  MOCK_TRY(v.get_array().get(a));
  for (auto part : a) {
    od::object o;
    if (part.get_object().get(o)) continue;
    for (auto f : o) {
      std::string_view k;
      MOCK_TRY(f.unescaped_key().get(k));
      if (k != "text") continue;
      std::string_view s;
      if (!f.value().get_string().get(s)) {
        if (!out.empty()) out.push_back(' ');
        out.append(s);
      }
    }
  }
  return true;
}

bool read_x_mock(od::value v, mock_request& r, std::string& err) {
  od::object o;
  if (v.get_object().get(o)) {
    err = "x_mock must be an object";
    return false;
  }
  for (auto f : o) {
    std::string_view k;
    MOCK_TRY(f.unescaped_key().get(k));
    od::value x;
    MOCK_TRY(f.value().get(x));
    std::int64_t i = 0;
    double d = 0;
    bool b = false;
    std::string_view s;
    if (k == "status") {
      MOCK_TRY(x.get_int64().get(i));
      r.status = static_cast<int>(i);
    } else if (k == "retry_after") {
      od::json_type t;
      MOCK_TRY(x.type().get(t));
      if (t == od::json_type::string) {
        MOCK_TRY(x.get_string().get(s));
        r.retry_after.assign(s);
      } else {
        MOCK_TRY(x.get_double().get(d));
        char buf[32];  // 0.3 stays 0.3, 2 stays 2
        std::snprintf(buf, sizeof buf, "%g", d);
        r.retry_after = buf;
      }
    } else if (k == "raw_body") {
      MOCK_TRY(x.get_string().get(s));
      r.raw_body.assign(s);
      r.has_raw_body = true;
    } else if (k == "content_type") {
      MOCK_TRY(x.get_string().get(s));
      r.content_type.assign(s);
    } else if (k == "headers") {
      od::object h;
      MOCK_TRY(x.get_object().get(h));
      for (auto hf : h) {
        std::string_view hk, hv;
        MOCK_TRY(hf.unescaped_key().get(hk));
        MOCK_TRY(hf.value().get_string().get(hv));
        r.headers.emplace_back(std::string(hk), std::string(hv));
      }
    } else if (k == "latency_ms") {
      MOCK_TRY(x.get_int64().get(i));
      r.latency_ms = static_cast<int>(i);
    } else if (k == "hang") {
      MOCK_TRY(x.get_bool().get(b));
      r.hang = b;
    } else if (k == "tokens") {
      MOCK_TRY(x.get_int64().get(i));
      r.tokens = static_cast<int>(i);
    } else if (k == "tokens_per_second") {
      MOCK_TRY(x.get_double().get(d));
      r.tokens_per_second = d;
    } else if (k == "drop_after") {
      MOCK_TRY(x.get_int64().get(i));
      r.drop_after = static_cast<int>(i);
    } else if (k == "corrupt_after") {
      MOCK_TRY(x.get_int64().get(i));
      r.corrupt_after = static_cast<int>(i);
    } else if (k == "echo") {
      MOCK_TRY(x.get_bool().get(b));
      r.echo = b;
    }
  }
  return true;
}

}  // namespace

bool parse_fault(std::string_view body, fault& out, std::string& err) {
  simdjson::padded_string padded(body);
  od::document doc;
  MOCK_TRY(thread_parser().iterate(padded).get(doc));
  od::object o;
  MOCK_TRY(doc.get_object().get(o));
  for (auto f : o) {
    std::string_view k;
    MOCK_TRY(f.unescaped_key().get(k));
    od::value v;
    MOCK_TRY(f.value().get(v));
    if (k == "model") {
      std::string_view s;
      MOCK_TRY(v.get_string().get(s));
      out.model.assign(s);
    } else if (k == "count") {
      MOCK_TRY(v.get_int64().get(out.count));
    } else if (k == "x_mock") {
      if (!read_x_mock(v, out.behaviour, err)) return false;
    } else {
      err = "unknown field '" + std::string(k) + "' (model, count, x_mock)";
      return false;
    }
  }
  return true;
}

void apply_fault(const mock_request& f, mock_request& r) {
  if (f.status != 0) r.status = f.status;
  if (!f.retry_after.empty()) r.retry_after = f.retry_after;
  if (f.has_raw_body) {
    r.has_raw_body = true;
    r.raw_body = f.raw_body;
  }
  if (!f.content_type.empty()) r.content_type = f.content_type;
  for (auto& h : f.headers) r.headers.push_back(h);
  if (f.latency_ms >= 0) r.latency_ms = f.latency_ms;
  if (f.hang) r.hang = true;
  if (f.tokens >= 0) r.tokens = f.tokens;
  if (f.tokens_per_second >= 0) r.tokens_per_second = f.tokens_per_second;
  if (f.drop_after >= 0) r.drop_after = f.drop_after;
  if (f.corrupt_after >= 0) r.corrupt_after = f.corrupt_after;
  if (f.echo) r.echo = true;
}

namespace {

void append_usage(std::string& out, std::int64_t prompt, std::int64_t completion, bool with_completion) {
  out += R"("usage":{"prompt_tokens":)";
  append_json_number(out, prompt);
  if (with_completion) {
    out += R"(,"completion_tokens":)";
    append_json_number(out, completion);
  }
  out += R"(,"total_tokens":)";
  append_json_number(out, prompt + completion);
  out += '}';
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

void base64_append(std::string& out, const unsigned char* p, std::size_t n) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    std::uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < n) {
    std::uint32_t v = p[i] << 16;
    if (i + 1 < n) v |= p[i + 1] << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += (i + 1 < n) ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
}

}  // namespace

bool parse_request(std::string_view body, kind k, mock_request& r, std::string& err) {
  bool tool_choice_none_ = false;
  thread_local std::string padded;
  padded.assign(body);
  padded.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  od::document doc;
  MOCK_TRY(thread_parser().iterate(padded.data(), padded.size(), padded.capacity()).get(doc));
  od::object root;
  MOCK_TRY(doc.get_object().get(root));
  for (auto f : root) {
    std::string_view key;
    MOCK_TRY(f.unescaped_key().get(key));
    od::value v;
    MOCK_TRY(f.value().get(v));
    std::string_view s;
    if (key == "model") {
      MOCK_TRY(v.get_string().get(s));
      r.model.assign(s);
    } else if (key == "stream") {
      bool b = false;
      if (!v.get_bool().get(b)) r.stream = b;
    } else if (key == "stream_options") {
      od::object so;
      if (v.get_object().get(so)) continue;
      for (auto sf : so) {
        std::string_view sk;
        MOCK_TRY(sf.unescaped_key().get(sk));
        bool b = false;
        if (sk == "include_usage" && !sf.value().get_bool().get(b)) r.include_usage = b;
      }
    } else if (key == "messages" && k == kind::chat) {
      od::array a;
      MOCK_TRY(v.get_array().get(a));
      for (auto m : a) {
        od::object mo;
        MOCK_TRY(m.get_object().get(mo));
        bool tool_message = false;
        for (auto mf : mo) {
          std::string_view mk;
          MOCK_TRY(mf.unescaped_key().get(mk));
          od::value cv;
          MOCK_TRY(mf.value().get(cv));
          if (mk == "role") {
            std::string_view role;
            if (!cv.get_string().get(role)) tool_message = role == "tool";
            continue;
          }
          if (mk != "content") continue;
          od::json_type ct;
          MOCK_TRY(cv.type().get(ct));
          if (ct == od::json_type::null) {
            r.last_text.clear();
            continue;
          }
          if (!read_content(cv, r.last_text, err)) return false;
          r.text_bytes += r.last_text.size();
        }
        r.after_tool_result = tool_message;
      }
    } else if (key == "tools" && k == kind::chat) {
      od::array a;
      MOCK_TRY(v.get_array().get(a));
      for (auto t : a) {
        od::object to;
        MOCK_TRY(t.get_object().get(to));
        od::object fn;
        if (to.find_field_unordered("function").get_object().get(fn)) continue;
        if (!fn.find_field_unordered("name").get_string().get(s) && r.tool_name.empty() && !tool_choice_none_)
          r.tool_name.assign(s);
        break;
      }
    } else if (key == "tool_choice" && k == kind::chat) {
      if (!v.get_string().get(s) && s == "none") {
        tool_choice_none_ = true;
        r.tool_name.clear();
      }
    } else if ((key == "prompt" && k == kind::completion) || (key == "input" && k == kind::embedding)) {
      od::json_type t;
      MOCK_TRY(v.type().get(t));
      if (t == od::json_type::string) {
        MOCK_TRY(v.get_string().get(s));
        r.inputs.emplace_back(s);
      } else if (t == od::json_type::array) {
        od::array a;
        MOCK_TRY(v.get_array().get(a));
        for (auto el : a) {
          od::value ev;
          MOCK_TRY(el.get(ev));
          od::json_type et;
          MOCK_TRY(ev.type().get(et));
          if (et == od::json_type::string) {
            MOCK_TRY(ev.get_string().get(s));
            r.inputs.emplace_back(s);
          } else {
            // Token ids (or arrays of them): stand for them by their raw JSON text.
            r.inputs.emplace_back(ev.raw_json_token());
          }
        }
      } else {
        err = std::string(key) + " must be a string or an array";
        return false;
      }
      for (auto& in : r.inputs) r.text_bytes += in.size();
      if (k == kind::completion && !r.inputs.empty()) r.last_text = r.inputs.front();
    } else if (key == "dimensions") {
      std::int64_t d = 0;
      if (!v.get_int64().get(d) && d > 0 && d <= 8192) r.dimensions = static_cast<int>(d);
    } else if (key == "encoding_format") {
      if (!v.get_string().get(s)) r.base64 = (s == "base64");
    } else if (key == "x_mock") {
      if (!read_x_mock(v, r, err)) return false;
    }
  }
  return true;
}

std::string tool_arguments(const mock_request& r) {
  std::string out = "{\"query\":";
  append_json_string(out, r.last_text);
  out += '}';
  return out;
}

std::vector<std::string> completion_words(const mock_request& r, int default_tokens) {
  std::vector<std::string> words;
  if (r.after_tool_result) {
    words.emplace_back("Tool");
    words.emplace_back("result:");
  }
  if (r.echo || r.after_tool_result) {
    std::size_t pos = 0;
    const auto& t = r.last_text;
    while (pos < t.size()) {
      auto sp = t.find(' ', pos);
      if (sp == std::string::npos) sp = t.size();
      if (sp > pos) words.emplace_back(t.substr(pos, sp - pos));
      pos = sp + 1;
    }
    return words;
  }
  int n = r.tokens >= 0 ? r.tokens : default_tokens;
  words.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) words.emplace_back(k_words[i % (sizeof k_words / sizeof *k_words)]);
  return words;
}

std::int64_t prompt_tokens(const mock_request& r) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(r.text_bytes / 4));
}

std::string chat_body(std::string_view id, std::int64_t created, std::string_view model, std::string_view content,
                      std::int64_t prompt, std::int64_t completion) {
  std::string out;
  out.reserve(320 + content.size() + model.size());
  out += R"({"id":")";
  out += id;
  out += R"(","object":"chat.completion","created":)";
  append_json_number(out, created);
  out += R"(,"model":)";
  append_json_string(out, model);
  out += R"(,"system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":)";
  append_json_string(out, content);
  out += R"(,"refusal":null},"logprobs":null,"finish_reason":"stop"}],)";
  append_usage(out, prompt, completion, true);
  out += '}';
  return out;
}

std::string completion_body(std::string_view id, std::int64_t created, std::string_view model,
                            std::string_view text, std::int64_t prompt, std::int64_t completion) {
  std::string out;
  out.reserve(256 + text.size());
  out += R"({"id":")";
  out += id;
  out += R"(","object":"text_completion","created":)";
  append_json_number(out, created);
  out += R"(,"model":)";
  append_json_string(out, model);
  out += R"(,"choices":[{"text":)";
  append_json_string(out, text);
  out += R"(,"index":0,"logprobs":null,"finish_reason":"stop"}],)";
  append_usage(out, prompt, completion, true);
  out += '}';
  return out;
}

std::vector<std::string> stream_events(kind k, std::string_view id, std::int64_t created, std::string_view model,
                                       const std::vector<std::string>& words, bool include_usage,
                                       std::int64_t prompt) {
  std::vector<std::string> ev;
  ev.reserve(words.size() + 4);
  std::string head;
  if (k == kind::chat) {
    head += R"({"id":")";
    head += id;
    head += R"(","object":"chat.completion.chunk","created":)";
    append_json_number(head, created);
    head += R"(,"model":)";
    append_json_string(head, model);
    head += R"(,"system_fingerprint":"fp_mock","choices":[{"index":0,)";
  } else {
    head += R"({"id":")";
    head += id;
    head += R"(","object":"text_completion","created":)";
    append_json_number(head, created);
    head += R"(,"model":)";
    append_json_string(head, model);
    head += R"(,"choices":[{)";
  }
  const char* usage_null = include_usage ? R"(,"usage":null)" : "";
  auto event = [&](std::string_view choice_body) {
    std::string e = "data: ";
    e += head;
    e += choice_body;
    e += "}]";
    e += usage_null;
    e += "}\n\n";
    ev.push_back(std::move(e));
  };
  if (k == kind::chat) event(R"("delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null)");
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string piece = words[i];
    if (i + 1 < words.size()) piece += ' ';
    std::string body;
    if (k == kind::chat) {
      body = R"("delta":{"content":)";
      append_json_string(body, piece);
      body += R"(},"logprobs":null,"finish_reason":null)";
    } else {
      body = R"("text":)";
      append_json_string(body, piece);
      body += R"(,"index":0,"logprobs":null,"finish_reason":null)";
    }
    event(body);
  }
  event(k == kind::chat ? R"("delta":{},"logprobs":null,"finish_reason":"stop")"
                        : R"("text":"","index":0,"logprobs":null,"finish_reason":"stop")");
  if (include_usage) {
    std::string e = "data: ";
    std::string h = head.substr(0, head.rfind(R"("choices":[)"));
    e += h;
    e += R"("choices":[],)";
    append_usage(e, prompt, static_cast<std::int64_t>(words.size()), true);
    e += "}\n\n";
    ev.push_back(std::move(e));
  }
  ev.emplace_back("data: [DONE]\n\n");
  return ev;
}

std::string tool_call_body(std::string_view id, std::int64_t created, std::string_view model, std::string_view tool,
                           std::string_view arguments, std::int64_t prompt) {
  std::string out;
  out += R"({"id":")";
  out += id;
  out += R"(","object":"chat.completion","created":)";
  append_json_number(out, created);
  out += R"(,"model":)";
  append_json_string(out, model);
  out += R"(,"system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_mock_)";
  out += id.substr(id.rfind('-') + 1);
  out += R"(","type":"function","function":{"name":)";
  append_json_string(out, tool);
  out += R"(,"arguments":)";
  append_json_string(out, arguments);
  out += R"(}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],)";
  append_usage(out, prompt, 9, true);
  out += '}';
  return out;
}

std::vector<std::string> tool_call_events(std::string_view id, std::int64_t created, std::string_view model,
                                          std::string_view tool, std::string_view arguments, bool include_usage,
                                          std::int64_t prompt) {
  std::vector<std::string> ev;
  std::string head = R"({"id":")";
  head += id;
  head += R"(","object":"chat.completion.chunk","created":)";
  append_json_number(head, created);
  head += R"(,"model":)";
  append_json_string(head, model);
  head += R"(,"system_fingerprint":"fp_mock",)";
  const char* usage_null = include_usage ? R"(,"usage":null)" : "";
  auto event = [&](std::string_view choice_body) {
    ev.push_back("data: " + head + R"("choices":[{"index":0,)" + std::string(choice_body) + "}]" + usage_null + "}\n\n");
  };
  std::string first = R"("delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_mock_)";
  first += id.substr(id.rfind('-') + 1);
  first += R"(","type":"function","function":{"name":)";
  append_json_string(first, tool);
  first += R"(,"arguments":""}}]},"logprobs":null,"finish_reason":null)";
  event(first);
  // The arguments in two fragments, as providers split them.
  std::size_t half = arguments.size() / 2;
  for (auto part : {arguments.substr(0, half), arguments.substr(half)}) {
    std::string d = R"("delta":{"tool_calls":[{"index":0,"function":{"arguments":)";
    append_json_string(d, part);
    d += R"(}}]},"logprobs":null,"finish_reason":null)";
    event(d);
  }
  event(R"("delta":{},"logprobs":null,"finish_reason":"tool_calls")");
  if (include_usage) {
    std::string e = "data: " + head + R"("choices":[],)";
    append_usage(e, prompt, 9, true);
    e += "}\n\n";
    ev.push_back(std::move(e));
  }
  ev.emplace_back("data: [DONE]\n\n");
  return ev;
}

std::vector<float> embedding_vector(std::string_view text, int dims) {
  std::uint64_t s = fnv1a(text) | 1;
  std::vector<float> v(static_cast<std::size_t>(std::max(dims, 0)));
  double norm = 0;
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = static_cast<float>(static_cast<double>(s % 20001) / 10000.0 - 1.0);
    norm += static_cast<double>(x) * x;
  }
  norm = std::sqrt(norm);
  if (norm > 0)
    for (auto& x : v) x = static_cast<float>(x / norm);
  return v;
}

void append_float_array(std::string& out, const std::vector<float>& v) {
  out += '[';
  for (std::size_t j = 0; j < v.size(); ++j) {
    if (j) out += ',';
    append_json_number(out, static_cast<double>(v[j]));
  }
  out += ']';
}

std::string embeddings_body(const mock_request& r, int default_dims) {
  int dims = r.dimensions > 0 ? r.dimensions : default_dims;
  std::string out;
  out.reserve(64 + r.inputs.size() * static_cast<std::size_t>(dims) * 12);
  out += R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    auto v = embedding_vector(r.inputs[i], dims);
    if (i) out += ',';
    out += R"({"object":"embedding","index":)";
    append_json_number(out, static_cast<std::int64_t>(i));
    out += R"(,"embedding":)";
    if (r.base64) {
      std::vector<unsigned char> bytes(v.size() * 4);
      for (std::size_t j = 0; j < v.size(); ++j) {
        std::uint32_t u;
        std::memcpy(&u, &v[j], 4);
        for (int b = 0; b < 4; ++b) bytes[j * 4 + static_cast<std::size_t>(b)] = static_cast<unsigned char>(u >> (8 * b));
      }
      out += '"';
      base64_append(out, bytes.data(), bytes.size());
      out += '"';
    } else {
      append_float_array(out, v);
    }
    out += '}';
  }
  out += R"(],"model":)";
  append_json_string(out, r.model);
  out += ',';
  append_usage(out, prompt_tokens(r), 0, false);
  out += '}';
  return out;
}

std::string models_body(const std::vector<std::string>& models) {
  std::string out = R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < models.size(); ++i) {
    if (i) out += ',';
    out += R"({"id":)";
    append_json_string(out, models[i]);
    out += R"(,"object":"model","created":1700000000,"owned_by":"mock"})";
  }
  out += "]}";
  return out;
}

std::string error_body(int status) {
  return openai_error_json("mock error " + std::to_string(status), "mock_error", "", std::to_string(status));
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  return openai_error_json(message, type, "", code);
}

}  // namespace gw::mock
