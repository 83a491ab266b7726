#include "gw/providers/anthropic_ingress.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "gw/core/json_writer.hpp"
#include "gw/providers/json_dom.hpp"

// simdjson DOM rather than on-demand, for the reasons given in anthropic.cpp: whole
// documents validated first, random access, sub-trees re-serialised (schemas, inputs).

namespace gw::providers {
namespace {
namespace dom = simdjson::dom;

using namespace json_dom;

/// Anthropic validation errors read "<path>: <problem>".
provider_error invalid(std::string message) {
  return provider_error{400, "invalid_request_error", "", std::move(message)};
}

std::string msg_id(std::string_view openai_id) {
  static constexpr std::string_view prefix = "chatcmpl-";
  if (openai_id.substr(0, prefix.size()) == prefix) openai_id.remove_prefix(prefix.size());
  if (openai_id.empty()) return "msg_gateway";
  return "msg_" + std::string(openai_id);
}

/// OpenAI usage object -> usage.
usage read_openai_usage(dom::object u) {
  usage t;
  t.prompt_tokens = int_member(u, "prompt_tokens", -1);
  t.completion_tokens = int_member(u, "completion_tokens", -1);
  t.total_tokens = int_member(u, "total_tokens", -1);
  dom::object details;
  if (auto d = member(u, "prompt_tokens_details"); d && !d->get_object().get(details))
    t.cached_tokens = std::max<std::int64_t>(0, int_member(details, "cached_tokens", 0));
  if (t.cached_tokens == 0) t.cached_tokens = std::max<std::int64_t>(0, int_member(u, "cache_read_input_tokens", 0));
  t.cache_creation_tokens = std::max<std::int64_t>(0, int_member(u, "cache_creation_input_tokens", 0));
  return t;
}

/// Anthropic usage fields for `u`: input_tokens excludes cache reads and writes.
void append_anthropic_usage(std::string& out, const usage& u, bool with_input = true) {
  std::int64_t prompt = std::max<std::int64_t>(0, u.prompt_tokens);
  std::int64_t input = std::max<std::int64_t>(0, prompt - u.cached_tokens - u.cache_creation_tokens);
  out += '{';
  if (with_input) {
    out += R"("input_tokens":)";
    append_json_number(out, input);
    out += R"(,"cache_creation_input_tokens":)";
    append_json_number(out, u.cache_creation_tokens);
    out += R"(,"cache_read_input_tokens":)";
    append_json_number(out, u.cached_tokens);
    out += ',';
  }
  out += R"("output_tokens":)";
  append_json_number(out, std::max<std::int64_t>(0, u.completion_tokens));
  out += '}';
}

std::string_view stop_reason_for(std::string_view finish_reason, bool has_tool_calls) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return has_tool_calls ? "tool_use" : "end_turn";
}

/// Tool-call arguments (a JSON text) as an Anthropic tool input (a JSON object).
/// Arguments that are not an object (truncated by max_tokens, a model's mistake) are
/// kept whole as {"raw_arguments": "<text>"} rather than lost.
std::string tool_input(std::string_view arguments) {
  bool blank = std::all_of(arguments.begin(), arguments.end(),
                           [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; });
  if (blank) return "{}";
  dom::element parsed;
  if (!parse_json(inner_parser(), arguments, parsed) && parsed.type() == dom::element_type::OBJECT)
    return simdjson::minify(parsed);
  std::string out = R"({"raw_arguments":)";
  append_json_string(out, arguments);
  out += '}';
  return out;
}

/// The Anthropic error type for an OpenAI error met inside a stream (no status).
std::string_view stream_error_type(std::string_view type, std::string_view code) {
  if (code == "rate_limit_exceeded" || type == "rate_limit_error" || type == "tokens" || type == "requests")
    return "rate_limit_error";
  if (code == "overloaded" || type == "overloaded_error" || code == "service_unavailable") return "overloaded_error";
  if (type == "invalid_request_error" || type == "authentication_error" || type == "permission_error" ||
      type == "not_found_error")
    return type;
  return "api_error";
}

// ---------------------------------------------------------------------------------
// Anthropic request -> OpenAI request

class request_translator {
 public:
  request_translator(std::string& out, anthropic_request_info& info) : out_(out), info_(info) {}

  std::optional<provider_error> run(std::string_view body) {
    dom::element root_el;
    if (auto ec = parse_json(outer_parser(), body, root_el))
      return invalid(std::string("The request body is not valid JSON: ") + simdjson::error_message(ec));
    dom::object root;
    if (root_el.get_object().get(root)) return invalid("The request body must be a JSON object.");

    std::optional<dom::element> messages, system, tools, tool_choice, stop;
    std::string temperature, top_p, user;
    bool has_model = false, has_max = false;
    for (auto [key, v] : root) {
      if (key == "model") {
        std::string_view s;
        if (v.get_string().get(s)) return invalid("model: Input should be a valid string");
        info_.model.assign(s);
        has_model = true;
      } else if (key == "max_tokens") {
        std::int64_t n = 0;
        if (v.get_int64().get(n)) return invalid("max_tokens: Input should be a valid integer");
        if (n < 1) return invalid("max_tokens: Input should be greater than or equal to 1");
        info_.max_tokens = n;
        has_max = true;
      } else if (v.is_null()) {
        continue;
      } else if (key == "messages") {
        messages = v;
      } else if (key == "system") {
        system = v;
      } else if (key == "tools") {
        tools = v;
      } else if (key == "tool_choice") {
        tool_choice = v;
      } else if (key == "stop_sequences") {
        stop = v;
      } else if (key == "temperature" || key == "top_p" || key == "top_k") {
        if (!is_number(v)) return invalid(std::string(key) + ": Input should be a valid number");
        // top_k: OpenAI has none; checked, then dropped.
        if (key != "top_k") {
          std::string& dst = key == "temperature" ? temperature : top_p;
          dst.clear();
          append_number(dst, v);
        }
      } else if (key == "stream") {
        bool b = false;
        if (v.get_bool().get(b)) return invalid("stream: Input should be a valid boolean");
        info_.stream = b;
      } else if (key == "metadata") {
        dom::object m;
        if (v.get_object().get(m)) return invalid("metadata: Input should be a valid dictionary");
        if (auto u = member(m, "user_id")) {
          std::string_view s;
          if (u->get_string().get(s)) return invalid("metadata.user_id: Input should be a valid string");
          user.assign(s);
        }
      }
      // thinking, service_tier, container, mcp_servers, ...: no OpenAI equivalent.
    }
    if (!has_model) return invalid("model: Field required");
    if (!has_max) return invalid("max_tokens: Field required");
    if (!messages) return invalid("messages: Field required");

    out_.clear();
    out_.reserve(body.size() + 256);
    out_ += R"({"model":)";
    append_json_string(out_, info_.model);
    out_ += R"(,"messages":[)";
    if (system && !write_system(*system)) return err_;
    if (!write_messages(*messages)) return err_;
    out_ += ']';
    out_ += R"(,"max_tokens":)";
    append_json_number(out_, info_.max_tokens);
    if (!temperature.empty()) out_ += R"(,"temperature":)" + temperature;
    if (!top_p.empty()) out_ += R"(,"top_p":)" + top_p;
    if (stop && !write_stop(*stop)) return err_;
    if (!user.empty()) {
      out_ += R"(,"user":)";
      append_json_string(out_, user);
    }
    if (tools && !write_tools(*tools)) return err_;
    if (tool_choice && !write_tool_choice(*tool_choice)) return err_;
    if (info_.stream) out_ += R"(,"stream":true,"stream_options":{"include_usage":true})";
    out_ += '}';
    return std::nullopt;
  }

 private:
  bool fail(std::string message) {
    err_ = invalid(std::move(message));
    return false;
  }

  void comma() {
    if (!first_message_) out_ += ',';
    first_message_ = false;
  }

  /// Text of a string or of an array of text blocks (joined with `sep`).
  bool text_of(dom::element v, const std::string& where, std::string_view sep, std::string& text) {
    std::string_view s;
    if (!v.get_string().get(s)) {
      text.assign(s);
      return true;
    }
    dom::array a;
    if (v.get_array().get(a)) return fail(where + ": Input should be a valid string or a list of text blocks");
    std::size_t i = 0;
    for (dom::element b : a) {
      std::string bw = where + "." + std::to_string(i++);
      dom::object bo;
      if (b.get_object().get(bo)) return fail(bw + ": Input should be a valid dictionary");
      auto type = string_member(bo, "type");
      auto t = string_member(bo, "text");
      if (type != "text" || !t) return fail(bw + ": expected a text block ({\"type\":\"text\",\"text\":...})");
      if (!text.empty()) text += sep;
      text.append(*t);
    }
    return true;
  }

  bool write_system(dom::element v) {
    std::string text;
    if (!text_of(v, "system", "\n", text)) return false;
    if (text.empty()) return true;
    info_.text_bytes += text.size();
    comma();
    out_ += R"({"role":"system","content":)";
    append_json_string(out_, text);
    out_ += '}';
    return true;
  }

  bool write_messages(dom::element v) {
    dom::array a;
    if (v.get_array().get(a)) return fail("messages: Input should be a valid list");
    std::size_t n = a.size(), i = 0;
    if (n == 0) return fail("messages: at least one message is required");
    for (dom::element m : a) {
      std::string where = "messages." + std::to_string(i++);
      dom::object o;
      if (m.get_object().get(o)) return fail(where + ": Input should be a valid dictionary");
      auto role = string_member(o, "role");
      if (!role) return fail(where + ".role: Field required");
      if (*role != "user" && *role != "assistant")
        return fail(where + ".role: Input should be 'user' or 'assistant'");
      auto content = member(o, "content");
      if (!content) return fail(where + ".content: Field required");
      bool last = i == n;
      if (*role == "user") {
        if (!write_user(*content, where + ".content")) return false;
      } else if (!write_assistant(*content, where + ".content", last)) {
        return false;
      }
    }
    return true;
  }

  bool empty_content(const std::string& where) {
    return fail(where.substr(0, where.rfind('.')) +
                ": all messages must have non-empty content except for the optional final assistant message");
  }

  bool write_user(dom::element content, const std::string& where) {
    std::string_view s;
    if (!content.get_string().get(s)) {
      if (s.empty()) return empty_content(where);
      info_.text_bytes += s.size();
      comma();
      out_ += R"({"role":"user","content":)";
      append_json_string(out_, s);
      out_ += '}';
      return true;
    }
    dom::array blocks;
    if (content.get_array().get(blocks)) return fail(where + ": Input should be a valid string or list of blocks");
    if (blocks.size() == 0) return empty_content(where);
    std::vector<std::string> parts;
    std::size_t text_parts = 0;
    std::string only_text;
    std::size_t i = 0;
    for (dom::element b : blocks) {
      std::string bw = where + "." + std::to_string(i++);
      dom::object bo;
      if (b.get_object().get(bo)) return fail(bw + ": Input should be a valid dictionary");
      auto type = string_member(bo, "type");
      if (!type) return fail(bw + ".type: Field required");
      if (*type == "text") {
        auto t = string_member(bo, "text");
        if (!t) return fail(bw + ".text: Field required");
        info_.text_bytes += t->size();
        std::string p = R"({"type":"text","text":)";
        append_json_string(p, *t);
        p += '}';
        parts.push_back(std::move(p));
        ++text_parts;
        only_text.assign(*t);
      } else if (*type == "image") {
        std::string url;
        if (!image_url(bo, bw, url)) return false;
        std::string p = R"({"type":"image_url","image_url":{"url":)";
        append_json_string(p, url);
        p += "}}";
        parts.push_back(std::move(p));
      } else if (*type == "document") {
        std::string p;
        if (!document_part(bo, bw, p)) return false;
        parts.push_back(std::move(p));
      } else if (*type == "tool_result") {
        // Tool messages right away: OpenAI wants them to follow the assistant's
        // tool_calls; the turn's other content comes after them.
        if (!write_tool_result(bo, bw)) return false;
      } else {
        return fail(bw + ".type: '" + printable(*type, 64) +
                    "' blocks are not allowed in user messages here (expected text, image, document or "
                    "tool_result)");
      }
    }
    if (parts.empty()) return true;
    comma();
    out_ += R"({"role":"user","content":)";
    if (parts.size() == 1 && text_parts == 1) {
      append_json_string(out_, only_text);  // the plain form, which every upstream takes
    } else {
      append_json_array(out_, parts);
    }
    out_ += '}';
    return true;
  }

  bool image_url(dom::object bo, const std::string& where, std::string& url) {
    dom::object src;
    auto se = member(bo, "source");
    if (!se || se->get_object().get(src)) return fail(where + ".source: Field required");
    auto type = string_member(src, "type");
    if (type == "base64") {
      auto media = string_member(src, "media_type");
      auto data = string_member(src, "data");
      if (!media) return fail(where + ".source.media_type: Field required");
      if (!data) return fail(where + ".source.data: Field required");
      url = "data:" + std::string(*media) + ";base64," + std::string(*data);
      return true;
    }
    if (type == "url") {
      auto u = string_member(src, "url");
      if (!u) return fail(where + ".source.url: Field required");
      url.assign(*u);
      return true;
    }
    return fail(where + ".source.type: Input should be 'base64' or 'url'");
  }

  /// document blocks: base64 (PDF) -> an OpenAI file part; plain text -> a text part.
  bool document_part(dom::object bo, const std::string& where, std::string& part) {
    dom::object src;
    auto se = member(bo, "source");
    if (!se || se->get_object().get(src)) return fail(where + ".source: Field required");
    auto type = string_member(src, "type");
    auto data = string_member(src, "data");
    if (type == "text" && data) {
      info_.text_bytes += data->size();
      part = R"({"type":"text","text":)";
      append_json_string(part, *data);
      part += '}';
      return true;
    }
    if (type == "base64" && data) {
      part = R"({"type":"file","file":{)";
      if (auto title = string_member(bo, "title")) {
        part += R"("filename":)";
        append_json_string(part, *title);
        part += ',';
      }
      part += R"("file_data":)";
      append_json_string(part, "data:" + std::string(string_member(src, "media_type").value_or("application/pdf")) +
                                   ";base64," + std::string(*data));
      part += "}}";
      return true;
    }
    return fail(where + ".source: only base64 and text document sources are supported by this gateway");
  }

  bool write_tool_result(dom::object bo, const std::string& where) {
    auto id = string_member(bo, "tool_use_id");
    if (!id) return fail(where + ".tool_use_id: Field required");
    std::string text;
    if (auto c = member(bo, "content")) {
      std::string_view s;
      if (!c->get_string().get(s)) {
        text.assign(s);
      } else {
        dom::array a;
        if (c->get_array().get(a)) return fail(where + ".content: Input should be a valid string or list of blocks");
        std::size_t i = 0;
        for (dom::element b : a) {
          std::string bw = where + ".content." + std::to_string(i++);
          dom::object o;
          if (b.get_object().get(o)) return fail(bw + ": Input should be a valid dictionary");
          auto type = string_member(o, "type");
          if (!text.empty()) text += '\n';
          if (type == "text") text.append(string_member(o, "text").value_or(""));
          else if (type == "image") text += "[image]";  // OpenAI tool messages carry text only
          else if (type == "document") text += "[document]";
          else return fail(bw + ".type: Input should be 'text' or 'image'");
        }
      }
    }
    bool is_error = false;
    if (auto e = member(bo, "is_error"); e && e->get_bool().get(is_error))
      return fail(where + ".is_error: Input should be a valid boolean");
    if (is_error) text.insert(0, "Error: ");
    info_.text_bytes += text.size();
    comma();
    out_ += R"({"role":"tool","tool_call_id":)";
    append_json_string(out_, *id);
    out_ += R"(,"content":)";
    append_json_string(out_, text);
    out_ += '}';
    return true;
  }

  bool write_assistant(dom::element content, const std::string& where, bool last) {
    std::string text, calls;
    int ncalls = 0;
    std::string_view s;
    if (!content.get_string().get(s)) {
      text.assign(s);
    } else {
      dom::array blocks;
      if (content.get_array().get(blocks)) return fail(where + ": Input should be a valid string or list of blocks");
      std::size_t i = 0;
      for (dom::element b : blocks) {
        std::string bw = where + "." + std::to_string(i++);
        dom::object bo;
        if (b.get_object().get(bo)) return fail(bw + ": Input should be a valid dictionary");
        auto type = string_member(bo, "type");
        if (!type) return fail(bw + ".type: Field required");
        if (*type == "text") {
          auto t = string_member(bo, "text");
          if (!t) return fail(bw + ".text: Field required");
          text.append(*t);
        } else if (*type == "tool_use") {
          auto id = string_member(bo, "id");
          auto name = string_member(bo, "name");
          if (!id) return fail(bw + ".id: Field required");
          if (!name) return fail(bw + ".name: Field required");
          auto input = member(bo, "input");
          if (input && input->type() != dom::element_type::OBJECT)
            return fail(bw + ".input: Input should be a valid dictionary");
          if (ncalls++) calls += ',';
          append_tool_call(calls, *id, *name, input);
        } else if (*type == "thinking" || *type == "redacted_thinking") {
          // The model's earlier reasoning: OpenAI requests have no place for it.
        } else {
          return fail(bw + ".type: '" + printable(*type, 64) +
                      "' blocks are not allowed in assistant messages here (expected text, tool_use or thinking)");
        }
      }
    }
    if (text.empty() && ncalls == 0) {
      if (!last) return empty_content(where);
      return true;  // an empty final assistant turn adds nothing
    }
    info_.text_bytes += text.size();
    comma();
    out_ += R"({"role":"assistant","content":)";
    if (text.empty()) out_ += "null";
    else append_json_string(out_, text);
    if (ncalls) {
      out_ += R"(,"tool_calls":[)";
      out_ += calls;
      out_ += ']';
    }
    out_ += '}';
    return true;
  }

  bool write_stop(dom::element v) {
    dom::array a;
    if (v.get_array().get(a)) return fail("stop_sequences: Input should be a valid list");
    std::string list;
    for (dom::element e : a) {
      std::string_view s;
      if (e.get_string().get(s)) return fail("stop_sequences: Input should be a list of strings");
      if (!list.empty()) list += ',';
      append_json_string(list, s);
    }
    if (!list.empty()) out_ += R"(,"stop":[)" + list + "]";
    return true;
  }

  bool write_tools(dom::element v) {
    dom::array a;
    if (v.get_array().get(a)) return fail("tools: Input should be a valid list");
    std::string list;
    std::size_t i = 0;
    for (dom::element t : a) {
      std::string tw = "tools." + std::to_string(i++);
      dom::object to;
      if (t.get_object().get(to)) return fail(tw + ": Input should be a valid dictionary");
      if (auto type = string_member(to, "type"); type && *type != "custom")
        return fail(tw + ".type: server tool '" + printable(*type, 64) + "' is not supported by this gateway");
      auto name = string_member(to, "name");
      if (!name) return fail(tw + ".name: Field required");
      auto schema = member(to, "input_schema");
      if (!schema) return fail(tw + ".input_schema: Field required");
      if (schema->type() != dom::element_type::OBJECT) return fail(tw + ".input_schema: Input should be a valid dictionary");
      if (!list.empty()) list += ',';
      list += R"({"type":"function","function":{"name":)";
      append_json_string(list, *name);
      if (auto d = member(to, "description")) {
        std::string_view desc;
        if (d->get_string().get(desc)) return fail(tw + ".description: Input should be a valid string");
        list += R"(,"description":)";
        append_json_string(list, desc);
      }
      list += R"(,"parameters":)";
      list += simdjson::minify(*schema);
      list += "}}";
    }
    if (list.empty()) return true;
    info_.has_tools = true;
    out_ += R"(,"tools":[)" + list + "]";
    return true;
  }

  bool write_tool_choice(dom::element v) {
    dom::object o;
    if (v.get_object().get(o)) return fail("tool_choice: Input should be a valid dictionary");
    auto type = string_member(o, "type");
    if (!type) return fail("tool_choice.type: Field required");
    bool disable_parallel = false;
    if (auto d = member(o, "disable_parallel_tool_use"); d && d->get_bool().get(disable_parallel))
      return fail("tool_choice.disable_parallel_tool_use: Input should be a valid boolean");
    std::string choice;
    if (*type == "auto") {
      choice = R"("auto")";
    } else if (*type == "any") {
      choice = R"("required")";
    } else if (*type == "none") {
      choice = R"("none")";
    } else if (*type == "tool") {
      auto name = string_member(o, "name");
      if (!name) return fail("tool_choice.name: Field required");
      choice = R"({"type":"function","function":{"name":)";
      append_json_string(choice, *name);
      choice += "}}";
    } else {
      return fail("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    }
    // OpenAI refuses tool_choice (and parallel_tool_calls) without tools.
    if (!info_.has_tools) return true;
    out_ += R"(,"tool_choice":)" + choice;
    if (disable_parallel && *type != "none") out_ += R"(,"parallel_tool_calls":false)";
    return true;
  }

  std::string& out_;
  anthropic_request_info& info_;
  std::optional<provider_error> err_;
  bool first_message_ = true;
};

}  // namespace

std::optional<provider_error> anthropic_request_to_openai(std::string_view anthropic_body, std::string& openai_body,
                                                          anthropic_request_info& info) {
  info = anthropic_request_info{};
  auto e = request_translator(openai_body, info).run(anthropic_body);
  if (e) openai_body.clear();
  return e;
}

std::string_view anthropic_error_type(int status) noexcept {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default:
      // Anthropic: invalid_request_error "may also be used for other 4XX status codes".
      return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::string anthropic_error_json(std::string_view type, std::string_view message) {
  std::string out = R"({"type":"error","error":{"type":)";
  append_json_string(out, type);
  out += R"(,"message":)";
  append_json_string(out, message);
  out += "}}";
  return out;
}

std::string openai_error_to_anthropic(int status, std::string_view openai_error_json) {
  std::string message;
  dom::element root_el;
  dom::object root, eo;
  if (!parse_json(outer_parser(), openai_error_json, root_el) && !root_el.get_object().get(root)) {
    if (auto ee = member(root, "error")) {
      std::string_view s;
      if (!ee->get_object().get(eo)) message.assign(string_member(eo, "message").value_or(""));
      else if (!ee->get_string().get(s)) message.assign(s);  // {"error":"..."} from some servers
    }
    if (message.empty()) message.assign(string_member(root, "message").value_or(""));
  }
  if (message.empty()) {
    message = printable(openai_error_json, 512);
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) message.pop_back();
  }
  if (message.empty()) message = "HTTP " + std::to_string(status);
  return anthropic_error_json(anthropic_error_type(status), message);
}

std::string provider_error_to_anthropic(const provider_error& e) {
  return anthropic_error_json(anthropic_error_type(e.status), e.message);
}

std::string openai_response_to_anthropic(std::string_view openai_json, const anthropic_request_info& info) {
  dom::element root_el;
  dom::object root;
  if (parse_json(outer_parser(), openai_json, root_el) || root_el.get_object().get(root))
    return anthropic_error_json("api_error", "The upstream response is not a JSON object.");
  if (member(root, "error")) return openai_error_to_anthropic(500, openai_json);

  std::string model = info.model.empty() ? std::string(string_member(root, "model").value_or("")) : info.model;
  std::string text, blocks;
  int ncalls = 0;
  std::string_view finish;
  dom::array choices;
  dom::object msg;
  if (auto ce = member(root, "choices"); ce && !ce->get_array().get(choices) && choices.size() > 0) {
    dom::object choice;
    if (!choices.at(0).get_object().get(choice)) {
      finish = string_member(choice, "finish_reason").value_or("");
      if (auto me = member(choice, "message"); me && !me->get_object().get(msg)) {
        if (auto c = member(msg, "content")) {
          std::string_view s;
          dom::array parts;
          if (!c->get_string().get(s)) {
            text.assign(s);
          } else if (!c->get_array().get(parts)) {
            for (dom::element p : parts) {
              dom::object po;
              if (!p.get_object().get(po)) text.append(string_member(po, "text").value_or(""));
            }
          }
        }
        if (text.empty()) text.assign(string_member(msg, "refusal").value_or(""));
        dom::array calls;
        if (auto tc = member(msg, "tool_calls"); tc && !tc->get_array().get(calls)) {
          for (dom::element c : calls) {
            dom::object co, fn;
            if (c.get_object().get(co)) continue;
            if (auto fe = member(co, "function"); !fe || fe->get_object().get(fn)) continue;
            if (!blocks.empty() || !text.empty()) blocks += ',';
            blocks += R"({"type":"tool_use","id":)";
            append_json_string(blocks, string_member(co, "id").value_or(""));
            blocks += R"(,"name":)";
            append_json_string(blocks, string_member(fn, "name").value_or(""));
            blocks += R"(,"input":)";
            blocks += tool_input(string_member(fn, "arguments").value_or(""));
            blocks += '}';
            ++ncalls;
          }
        }
      }
    }
  }
  usage u;
  dom::object uo;
  if (auto ue = member(root, "usage"); ue && !ue->get_object().get(uo)) u = read_openai_usage(uo);

  std::string out = R"({"id":)";
  append_json_string(out, msg_id(string_member(root, "id").value_or("")));
  out += R"(,"type":"message","role":"assistant","model":)";
  append_json_string(out, model);
  out += R"(,"content":[)";
  if (!text.empty()) {
    out += R"({"type":"text","text":)";
    append_json_string(out, text);
    out += '}';
  }
  out += blocks;
  out += R"(],"stop_reason":")";
  out += stop_reason_for(finish, ncalls > 0);
  out += R"(","stop_sequence":null,"usage":)";
  append_anthropic_usage(out, u);
  out += '}';
  return out;
}

// ---------------------------------------------------------------------------------
// Stream writer

anthropic_stream_writer::anthropic_stream_writer(anthropic_request_info info) : info_(std::move(info)) {}

void anthropic_stream_writer::feed(std::string_view openai_sse, std::string& out) {
  if (done_) return;
  split_lines(buf_, scan_, openai_sse, [&](std::string_view line) {
    on_line(line, out);
    return !done_;
  });
  if (!done_ && buf_.size() + data_.size() > (16u << 20))
    error_event(out, "api_error", "The upstream stream sent an event over 16 MiB.");
}

void anthropic_stream_writer::finish(std::string& out) {
  if (done_) return;
  if (auto line = take_last_line(buf_)) on_line(*line, out);
  if (!done_ && !data_.empty()) on_line("", out);
  if (done_) return;
  if (!stop_reason_.empty()) {
    // Every choice finished, only [DONE] is missing: the answer is whole.
    end(out);
    return;
  }
  close_block(out);
  error_event(out, "api_error", "The upstream stream ended before the response was complete.");
}

void anthropic_stream_writer::on_line(std::string_view line, std::string& out) {
  if (line.empty()) {
    if (!data_.empty()) dispatch(out);
    data_.clear();
    return;
  }
  if (line.substr(0, 5) != "data:") return;  // event:, id:, retry:, comments
  line.remove_prefix(5);
  if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (!data_.empty()) data_ += '\n';
  data_.append(line);
}

void anthropic_stream_writer::dispatch(std::string& out) {
  if (data_ == "[DONE]") return end(out);
  on_chunk(out);
}

void anthropic_stream_writer::on_chunk(std::string& out) {
  dom::element root_el;
  dom::object root;
  if (parse_json(outer_parser(), data_, root_el) || root_el.get_object().get(root))
    return error_event(out, "api_error", "The upstream stream sent an event that is not JSON: " + printable(data_, 200));
  if (auto ee = member(root, "error")) {
    dom::object eo;
    std::string_view type, code, message = "The upstream stream failed.";
    std::string_view s;
    if (!ee->get_object().get(eo)) {
      type = string_member(eo, "type").value_or("");
      code = string_member(eo, "code").value_or("");
      message = string_member(eo, "message").value_or(message);
    } else if (!ee->get_string().get(s)) {
      message = s;
    }
    std::string m(message);  // the parser's strings die with the next parse
    close_block(out);
    return error_event(out, stream_error_type(type, code), m);
  }
  if (id_.empty())
    if (auto id = string_member(root, "id"); id && !id->empty()) id_ = msg_id(*id);
  if (model_.empty()) model_.assign(string_member(root, "model").value_or(""));
  if (auto ue = member(root, "usage")) {
    dom::object uo;
    if (!ue->get_object().get(uo)) tokens_ = read_openai_usage(uo);
  }
  dom::array choices;
  auto ce = member(root, "choices");
  if (!ce || ce->get_array().get(choices) || choices.size() == 0) return;  // usage chunk, Azure filter chunk
  start(out);
  for (dom::element c : choices) {
    dom::object co, delta;
    if (c.get_object().get(co) || int_member(co, "index", 0) != 0) continue;  // one choice (n = 1)
    if (auto de = member(co, "delta"); de && !de->get_object().get(delta)) {
      std::string_view text = string_member(delta, "content").value_or("");
      if (text.empty()) text = string_member(delta, "refusal").value_or("");
      if (!text.empty()) {
        if (open_block_ < 0 || !open_is_text_) open_block(out, R"({"type":"text","text":""})");
        std::string d = R"({"type":"content_block_delta","index":)";
        append_json_number(d, static_cast<std::int64_t>(open_block_));
        d += R"(,"delta":{"type":"text_delta","text":)";
        append_json_string(d, text);
        d += "}}";
        append_sse_event(out, "content_block_delta", d);
      }
      dom::array calls;
      if (auto tc = member(delta, "tool_calls"); tc && !tc->get_array().get(calls)) {
        for (dom::element call : calls) {
          dom::object cobj, fn;
          if (call.get_object().get(cobj)) continue;
          std::int64_t k = int_member(cobj, "index", 0);
          auto fe = member(cobj, "function");
          if (fe && fe->get_object().get(fn)) fe.reset();
          auto it = std::find_if(tools_.begin(), tools_.end(), [&](const auto& p) { return p.first == k; });
          int block;
          if (it == tools_.end()) {
            std::string id(string_member(cobj, "id").value_or(""));
            if (id.empty()) id = "toolu_" + std::to_string(k);
            std::string cb = R"({"type":"tool_use","id":)";
            append_json_string(cb, id);
            cb += R"(,"name":)";
            append_json_string(cb, fe ? string_member(fn, "name").value_or("") : "");
            cb += R"(,"input":{}})";
            open_block(out, cb);
            open_is_text_ = false;
            block = open_block_;
            tools_.emplace_back(k, block);
          } else {
            // A later fragment, normally for the open block. Interleaved fragments of an
            // already closed block keep its index: clients accumulate by index.
            block = it->second;
          }
          std::string_view args = fe ? string_member(fn, "arguments").value_or("") : "";
          if (args.empty()) continue;
          std::string d = R"({"type":"content_block_delta","index":)";
          append_json_number(d, static_cast<std::int64_t>(block));
          d += R"(,"delta":{"type":"input_json_delta","partial_json":)";
          append_json_string(d, args);
          d += "}}";
          append_sse_event(out, "content_block_delta", d);
        }
      }
    }
    if (auto fr = string_member(co, "finish_reason")) {
      stop_reason_ = stop_reason_for(*fr, !tools_.empty());
      close_block(out);
    }
  }
}

void anthropic_stream_writer::start(std::string& out) {
  if (started_) return;
  started_ = true;
  if (id_.empty()) id_ = "msg_gateway";
  std::string d = R"({"type":"message_start","message":{"id":)";
  append_json_string(d, id_);
  d += R"(,"type":"message","role":"assistant","model":)";
  append_json_string(d, info_.model.empty() ? model_ : info_.model);
  // OpenAI reports usage only at the end: message_delta carries it.
  d += R"(,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}})";
  append_sse_event(out, "message_start", d);
}

void anthropic_stream_writer::open_block(std::string& out, std::string_view content_block_json) {
  close_block(out);
  open_block_ = next_block_++;
  open_is_text_ = content_block_json.find(R"("type":"text")") != std::string_view::npos;
  std::string d = R"({"type":"content_block_start","index":)";
  append_json_number(d, static_cast<std::int64_t>(open_block_));
  d += R"(,"content_block":)";
  d += content_block_json;
  d += '}';
  append_sse_event(out, "content_block_start", d);
}

void anthropic_stream_writer::close_block(std::string& out) {
  if (open_block_ < 0) return;
  std::string d = R"({"type":"content_block_stop","index":)";
  append_json_number(d, static_cast<std::int64_t>(open_block_));
  d += '}';
  append_sse_event(out, "content_block_stop", d);
  open_block_ = -1;
}

void anthropic_stream_writer::end(std::string& out) {
  start(out);
  close_block(out);
  std::string d = R"({"type":"message_delta","delta":{"stop_reason":")";
  d += stop_reason_.empty() ? (tools_.empty() ? "end_turn" : "tool_use") : stop_reason_;
  d += R"(","stop_sequence":null},"usage":)";
  if (tokens_.known()) append_anthropic_usage(d, tokens_);
  else d += R"({"output_tokens":0})";
  d += '}';
  append_sse_event(out, "message_delta", d);
  append_sse_event(out, "message_stop", R"({"type":"message_stop"})");
  done_ = true;
}

void anthropic_stream_writer::error_event(std::string& out, std::string_view type, std::string_view message) {
  append_sse_event(out, "error", anthropic_error_json(type, message));
  done_ = failed_ = true;
}

}  // namespace gw::providers
