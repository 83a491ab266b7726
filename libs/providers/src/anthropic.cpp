#include "gw/providers/anthropic.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gw/core/json_writer.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/json_dom.hpp"

// simdjson's DOM API, not on-demand as in openai.cpp: a translation visits every
// field, needs some of them before others (a message's role decides what its content
// becomes) and re-serialises sub-trees (tool arguments), and the whole body must be
// valid before anything is sent. DOM validates the document up front and then gives
// random access; the cost (one tape per request) is small next to a model call.

namespace gw::providers {
namespace {
namespace dom = simdjson::dom;

using namespace json_dom;

/// Structured output (response_format json_object / json_schema) is emulated as LiteLLM
/// does: a tool of this name, forced, whose input becomes the answer's content.
constexpr std::string_view json_tool_name = "json_tool_call";
constexpr std::string_view json_tool_description = "Respond with a JSON object that follows the input schema.";
/// The input schema for json_object: any object (LiteLLM's).
constexpr const char* json_object_schema = R"({"type":"object","additionalProperties":true,"properties":{}})";

provider_error bad_request(std::string message, std::string code = "invalid_value") {
  return provider_error{400, "invalid_request_error", std::move(code), std::move(message)};
}

provider_error type_error(std::string_view where, std::string_view expected) {
  return bad_request("Invalid type for '" + std::string(where) + "': expected " + std::string(expected) + ".",
                     "invalid_type");
}

/// The HTTP status Anthropic answers with an error of `type` (for stream error
/// events, which come after the 200).
int status_for_type(std::string_view type) {
  if (type == "invalid_request_error") return 400;
  if (type == "authentication_error") return 401;
  if (type == "permission_error") return 403;
  if (type == "not_found_error") return 404;
  if (type == "request_too_large") return 413;
  if (type == "rate_limit_error") return 429;
  if (type == "overloaded_error") return 529;
  return 500;  // api_error and anything new
}

/// The type of an upstream error that names none: anthropic_error_type()'s, except that
/// a 503 stays api_error (Anthropic's own overload status is 529).
std::string_view type_for_status(int status) { return status == 503 ? "api_error" : anthropic_error_type(status); }

provider_error make_error(int status, std::string_view anthropic_type, std::string_view message) {
  provider_error e;
  e.message = "Anthropic " + std::string(anthropic_type) + ": " + std::string(message);
  if (status == 529 || anthropic_type == "overloaded_error") {
    // Anthropic's own "try again": a 503 for OpenAI clients and the gateway's retries.
    e.status = 503;
    e.type = "api_error";
    e.code = "overloaded";
  } else if (status == 429) {
    e.status = 429;
    e.type = "rate_limit_error";
    e.code = "rate_limit_exceeded";
  } else if (status == 400) {
    e.status = 400;
    e.type = "invalid_request_error";
    for (std::string_view needle : {"prompt is too long", "exceed context limit", "input is too long",
                                    "context window", "context length"}) {
      if (contains_ci(message, needle)) {
        e.code = "context_length_exceeded";
        break;
      }
    }
  } else if (status == 401) {
    e.status = 401;
    e.type = "authentication_error";
  } else if (status == 403) {
    e.status = 403;
    e.type = "permission_error";
  } else if (status == 404) {
    e.status = 404;
    e.type = "not_found_error";
    if (message.substr(0, 6) == "model:") e.code = "model_not_found";
  } else if (status == 413) {
    e.status = 413;
    e.type = "invalid_request_error";
    e.code = "request_too_large";
  } else if (status >= 400 && status < 500) {
    e.status = status;
    e.type = "invalid_request_error";
  } else if (status >= 500 && status < 600) {
    e.status = status;
    e.type = "api_error";
  } else {
    // Not an error status (a 2xx carrying an error, a 3xx): the upstream misbehaved.
    e.status = 502;
    e.type = "api_error";
  }
  return e;
}

provider_error bad_response(std::string_view what) {
  return provider_error{502, "api_error", "upstream_bad_response",
                        "Anthropic returned an unusable response: " + std::string(what)};
}

// ---------------------------------------------------------------------------------
// OpenAI request -> Anthropic request

struct turn {
  bool user = true;
  std::vector<std::string> blocks;
  std::vector<bool> is_result;  // per block: a tool_result (they must come first)
};

class request_translator {
 public:
  explicit request_translator(const translate_context& ctx) : ctx_(ctx) {}

  request_result run(std::string_view body) {
    request_result r;
    ctx_.json_tool_call = false;
    if (!translate(body)) {
      r.error = std::move(err_);
      return r;
    }
    translated_request t;
    t.path = "/v1/messages";
    t.body = std::move(out_);
    t.headers.emplace_back("anthropic-version", std::string(anthropic_api_version));
    r.request = std::move(t);
    return r;
  }

 private:
  bool fail(provider_error e) {
    err_ = std::move(e);
    return false;
  }

  bool translate(std::string_view body) {
    dom::element root_el;
    if (auto ec = parse_json(outer_parser(), body, root_el))
      return fail(bad_request(std::string("We could not parse the JSON body of your request: ") +
                                  simdjson::error_message(ec),
                              "invalid_json"));
    dom::object root;
    if (root_el.get_object().get(root)) return fail(bad_request("The request body must be a JSON object."));

    std::optional<dom::element> messages, tools, tool_choice;
    std::int64_t max_tokens = -1;
    std::string temperature, top_p, top_k, user;
    std::vector<std::string> stop;
    bool stream = ctx_.stream;
    std::optional<bool> parallel;
    std::optional<std::string> json_tool;  // the json_tool_call tool, when response_format asks for JSON
    for (auto [key, v] : root) {
      if (v.is_null()) continue;
      if (key == "messages") {
        messages = v;
      } else if (key == "tools") {
        tools = v;
      } else if (key == "tool_choice") {
        tool_choice = v;
      } else if (key == "max_tokens" || key == "max_completion_tokens") {
        std::int64_t n = 0;
        if (v.get_int64().get(n) || n < 0) return fail(type_error(key, "a non-negative integer"));
        // Both given: the newer max_completion_tokens wins.
        if (key == "max_completion_tokens" || max_tokens < 0) max_tokens = n;
      } else if (key == "temperature" || key == "top_p" || key == "top_k") {
        if (!is_number(v)) return fail(type_error(key, "a number"));
        std::string& dst = key == "temperature" ? temperature : key == "top_p" ? top_p : top_k;
        dst.clear();
        append_number(dst, v);
      } else if (key == "stop") {
        if (!read_stop(v, stop)) return false;
      } else if (key == "user" || key == "safety_identifier") {
        std::string_view s;
        if (v.get_string().get(s)) return fail(type_error(key, "a string"));
        if (key == "user" || user.empty()) user.assign(s);
      } else if (key == "stream") {
        bool b = false;
        if (v.get_bool().get(b)) return fail(type_error("stream", "a boolean"));
        stream = b;
      } else if (key == "n") {
        std::int64_t n = 0;
        if (v.get_int64().get(n)) return fail(type_error("n", "an integer"));
        if (n > 1)
          return fail(bad_request("Anthropic models return one choice per request: 'n' must be 1.",
                                  "unsupported_parameter"));
      } else if (key == "parallel_tool_calls") {
        bool b = false;
        if (v.get_bool().get(b)) return fail(type_error("parallel_tool_calls", "a boolean"));
        parallel = b;
      } else if (key == "response_format") {
        if (!read_response_format(v, json_tool)) return false;
      }
      // Everything else (model, stream_options, penalties, seed, logprobs, ...) has no
      // Anthropic equivalent or is set by the gateway: dropped.
    }
    if (!messages) return fail(bad_request("Missing required parameter: 'messages'.", "missing_parameter"));
    if (!read_messages(*messages)) return false;
    if (turns_.empty())
      return fail(bad_request("'messages' must hold at least one user or assistant message with content."));

    std::string tools_json, choice_json;
    bool has_tools = false;
    if (tools && !read_tools(*tools, tools_json, has_tools)) return false;
    if (tool_choice && !read_tool_choice(*tool_choice, choice_json)) return false;
    if (json_tool) {
      // Structured output as LiteLLM emulates it: one more tool, forced unless the client
      // chose otherwise (its "none" means none of its own tools: the JSON tool is forced).
      if (client_json_tool_)
        return fail(bad_request("The tool name 'json_tool_call' is reserved when 'response_format' asks for JSON "
                                "from an Anthropic model.",
                                "invalid_value"));
      if (has_tools) {
        tools_json.back() = ',';
        tools_json += *json_tool;
        tools_json += ']';
      } else {
        tools_json = "[" + *json_tool + "]";
        has_tools = true;
      }
      if (!tool_choice || choice_json == R"({"type":"none"})")
        choice_json = R"({"type":"tool","name":"json_tool_call"})";
      ctx_.json_tool_call = true;
    }
    if (!has_tools) {
      choice_json.clear();  // Anthropic rejects tool_choice without tools; OpenAI's none == no tools
    } else if (parallel && !*parallel && choice_json != R"({"type":"none"})") {
      if (choice_json.empty()) choice_json = R"({"type":"auto"})";
      choice_json.insert(choice_json.size() - 1, R"(,"disable_parallel_tool_use":true)");
    }

    out_.reserve(body.size() + 256);
    out_ += R"({"model":)";
    append_json_string(out_, ctx_.upstream_model);
    out_ += R"(,"max_tokens":)";
    append_json_number(out_, max_tokens >= 0 ? max_tokens : ctx_.default_max_tokens);
    write_system();
    write_messages();
    if (!stop.empty()) {
      out_ += R"(,"stop_sequences":[)";
      for (std::size_t i = 0; i < stop.size(); ++i) {
        if (i) out_ += ',';
        append_json_string(out_, stop[i]);
      }
      out_ += ']';
    }
    if (!temperature.empty()) out_ += R"(,"temperature":)" + temperature;
    if (!top_p.empty()) out_ += R"(,"top_p":)" + top_p;
    if (!top_k.empty()) out_ += R"(,"top_k":)" + top_k;
    if (!user.empty()) {
      out_ += R"(,"metadata":{"user_id":)";
      append_json_string(out_, user);
      out_ += '}';
    }
    if (has_tools) {
      out_ += R"(,"tools":)";
      out_ += tools_json;
    }
    if (!choice_json.empty()) {
      out_ += R"(,"tool_choice":)";
      out_ += choice_json;
    }
    if (stream) out_ += R"(,"stream":true)";
    out_ += '}';
    return true;
  }

  /// response_format: "text" (or no type) asks for nothing; "json_object" and "json_schema"
  /// give the tool that emulates them ({"name":"json_tool_call","description","input_schema"}).
  bool read_response_format(dom::element v, std::optional<std::string>& tool) {
    dom::object rf;
    if (v.get_object().get(rf)) return fail(type_error("response_format", "an object"));
    tool.reset();
    auto te = member(rf, "type");
    if (!te) return true;
    std::string_view type;
    if (te->get_string().get(type)) return fail(type_error("response_format.type", "a string"));
    if (type == "text") return true;
    std::string schema, description = std::string(json_tool_description);
    if (type == "json_object") {
      schema = json_object_schema;
    } else if (type == "json_schema") {
      dom::object js;
      auto jse = member(rf, "json_schema");
      if (!jse)
        return fail(bad_request("Missing required parameter: 'response_format.json_schema'.", "missing_parameter"));
      if (jse->get_object().get(js)) return fail(type_error("response_format.json_schema", "an object"));
      auto se = member(js, "schema");
      if (!se)
        return fail(bad_request("Missing required parameter: 'response_format.json_schema.schema'.",
                                "missing_parameter"));
      dom::object so;
      if (se->get_object().get(so)) return fail(type_error("response_format.json_schema.schema", "an object"));
      if (member(so, "type") && string_member(so, "type") != "object")
        return fail(bad_request("Invalid 'response_format.json_schema.schema': Anthropic models return structured "
                                "output as a tool's input, which must be a JSON object (schema type 'object')."));
      schema = simdjson::minify(*se);
      // A tool's input schema must say type "object"; one without a type gets it.
      if (!member(so, "type")) schema.insert(1, so.size() ? R"("type":"object",)" : R"("type":"object")");
      if (auto d = member(js, "description")) {
        std::string_view ds;
        if (d->get_string().get(ds)) return fail(type_error("response_format.json_schema.description", "a string"));
        if (!ds.empty()) description.assign(ds);
      }
    } else {
      return fail(bad_request("Invalid value for 'response_format.type': '" + printable(type, 64) +
                              "'. Expected text, json_object or json_schema."));
    }
    std::string t = R"({"name":"json_tool_call","description":)";
    append_json_string(t, description);
    t += R"(,"input_schema":)";
    t += schema;
    t += '}';
    tool = std::move(t);
    return true;
  }

  bool read_stop(dom::element v, std::vector<std::string>& stop) {
    std::string_view s;
    if (!v.get_string().get(s)) {
      if (!s.empty()) stop.emplace_back(s);  // Anthropic rejects empty stop sequences
      return true;
    }
    dom::array a;
    if (v.get_array().get(a)) return fail(type_error("stop", "a string or an array of strings"));
    for (dom::element e : a) {
      if (e.get_string().get(s)) return fail(type_error("stop", "a string or an array of strings"));
      if (!s.empty()) stop.emplace_back(s);
    }
    return true;
  }

  // --- messages ---

  bool read_messages(dom::element v) {
    dom::array a;
    if (v.get_array().get(a)) return fail(type_error("messages", "an array"));
    std::size_t i = 0;
    for (dom::element m : a) {
      std::string where = "messages[" + std::to_string(i++) + "]";
      dom::object o;
      if (m.get_object().get(o)) return fail(type_error(where, "an object"));
      auto role = string_member(o, "role");
      if (!role) return fail(bad_request("Missing required parameter: '" + where + ".role'.", "missing_parameter"));
      auto content = member(o, "content");
      std::vector<std::string> blocks;
      if (*role == "system" || *role == "developer") {
        if (content && !read_parts(*content, where + ".content", part_context::system, system_)) return false;
      } else if (*role == "user") {
        if (content && !read_parts(*content, where + ".content", part_context::user, blocks)) return false;
        add(true, std::move(blocks), false);
      } else if (*role == "assistant") {
        if (content && !read_parts(*content, where + ".content", part_context::assistant, blocks)) return false;
        if (auto calls = member(o, "tool_calls"); calls && !read_tool_calls(*calls, where + ".tool_calls", blocks))
          return false;
        add(false, std::move(blocks), false);
      } else if (*role == "tool") {
        std::string block;
        if (!read_tool_result(o, where, block)) return false;
        blocks.push_back(std::move(block));
        add(true, std::move(blocks), true);
      } else if (*role == "function") {
        return fail(bad_request("'" + where +
                                    ".role': 'function' messages (deprecated) are not supported for Anthropic "
                                    "models; use tools and 'tool' messages."));
      } else {
        return fail(bad_request("Invalid value for '" + where + ".role': '" + printable(*role, 64) +
                                "'. Expected one of system, developer, user, assistant, tool."));
      }
    }
    return true;
  }

  /// Adds blocks to the conversation, merging with the previous turn of the same role
  /// (Anthropic wants user and assistant turns to alternate).
  void add(bool user, std::vector<std::string> blocks, bool results) {
    if (blocks.empty()) return;
    if (turns_.empty() || turns_.back().user != user) turns_.push_back(turn{user, {}, {}});
    for (auto& b : blocks) {
      turns_.back().blocks.push_back(std::move(b));
      turns_.back().is_result.push_back(results);
    }
  }

  enum class part_context { system, user, assistant, tool_result };

  /// OpenAI content (a string or an array of parts) -> Anthropic blocks. Empty text is
  /// skipped: Anthropic rejects empty text blocks.
  bool read_parts(dom::element content, const std::string& where, part_context pc, std::vector<std::string>& blocks) {
    std::string_view s;
    if (!content.get_string().get(s)) {
      if (!s.empty()) blocks.push_back(text_block(s, std::nullopt));
      return true;
    }
    dom::array parts;
    if (content.get_array().get(parts)) return fail(type_error(where, "a string or an array of content parts"));
    std::size_t i = 0;
    for (dom::element p : parts) {
      std::string pw = where + "[" + std::to_string(i++) + "]";
      dom::object po;
      if (p.get_object().get(po)) return fail(type_error(pw, "an object"));
      auto type = string_member(po, "type");
      if (!type) return fail(bad_request("Missing required parameter: '" + pw + ".type'.", "missing_parameter"));
      auto cache = member(po, "cache_control");
      if (*type == "text" || (*type == "refusal" && pc == part_context::assistant)) {
        auto text = string_member(po, *type == "text" ? "text" : "refusal");
        if (!text) return fail(type_error(pw + "." + std::string(*type), "a string"));
        if (!text->empty()) blocks.push_back(text_block(*text, cache));
      } else if (*type == "image_url" && (pc == part_context::user || pc == part_context::tool_result)) {
        std::string block;
        if (!image_block(po, pw, cache, block)) return false;
        blocks.push_back(std::move(block));
      } else if (*type == "file" && pc == part_context::user) {
        std::string block;
        if (!document_block(po, pw, block)) return false;
        blocks.push_back(std::move(block));
      } else {
        return fail(bad_request("Content part type '" + printable(*type, 64) + "' in '" + pw +
                                    "' is not supported for Anthropic models here.",
                                "unsupported_parameter"));
      }
    }
    return true;
  }

  static std::string text_block(std::string_view text, std::optional<dom::element> cache) {
    std::string b = R"({"type":"text","text":)";
    append_json_string(b, text);
    append_cache_control(b, cache);
    b += '}';
    return b;
  }

  static void append_cache_control(std::string& b, std::optional<dom::element> cache) {
    if (!cache) return;
    b += R"(,"cache_control":)";
    b += simdjson::minify(*cache);
  }

  /// "data:<media type>;base64,<data>" -> media type and data.
  bool split_data_url(std::string_view url, const std::string& where, std::string_view& media_type,
                      std::string_view& data) {
    auto comma = url.find(',');
    bool data_url = url.substr(0, 5) == "data:" && comma != std::string_view::npos;
    std::string_view meta = data_url ? url.substr(5, comma - 5) : std::string_view{};
    auto semi = meta.find(';');
    if (!data_url || semi == std::string_view::npos || semi == 0 ||
        meta.substr(meta.rfind(';')) != ";base64")
      return fail(bad_request("Invalid data URL in '" + where +
                              "': expected data:<media type>;base64,<data>."));
    media_type = meta.substr(0, semi);
    data = url.substr(comma + 1);
    return true;
  }

  bool image_block(dom::object po, const std::string& where, std::optional<dom::element> cache, std::string& b) {
    // {"image_url":{"url":..,"detail":..}}; some clients send the URL as a plain string.
    std::string_view url;
    if (auto iu = member(po, "image_url")) {
      dom::object iuo;
      if (!iu->get_object().get(iuo)) url = string_member(iuo, "url").value_or("");
      else if (iu->get_string().get(url)) url = {};
    }
    if (url.empty())
      return fail(bad_request("Missing required parameter: '" + where + ".image_url.url'.", "missing_parameter"));
    if (url.substr(0, 5) == "data:") {
      std::string_view media_type, data;
      if (!split_data_url(url, where + ".image_url.url", media_type, data)) return false;
      b = R"({"type":"image","source":{"type":"base64","media_type":)";
      append_json_string(b, media_type);
      b += R"(,"data":)";
      append_json_string(b, data);
      b += '}';
    } else if (url.substr(0, 8) == "https://" || url.substr(0, 7) == "http://") {
      b = R"({"type":"image","source":{"type":"url","url":)";
      append_json_string(b, url);
      b += '}';
    } else {
      return fail(bad_request("Unsupported image URL in '" + where +
                              ".image_url.url': expected an http(s) URL or a base64 data URL."));
    }
    append_cache_control(b, cache);
    b += '}';
    return true;
  }

  /// {"type":"file","file":{"file_data":"data:application/pdf;base64,..."}} -> a document
  /// block. Uploaded files (file_id) live at OpenAI and cannot be sent.
  bool document_block(dom::object po, const std::string& where, std::string& b) {
    dom::object f;
    auto fe = member(po, "file");
    if (!fe || fe->get_object().get(f)) return fail(type_error(where + ".file", "an object"));
    auto fd = string_member(f, "file_data");
    if (!fd)
      return fail(bad_request("'" + where +
                                  ".file': only inline file_data (a base64 data URL) can be sent to Anthropic models.",
                              "unsupported_parameter"));
    std::string_view media_type, data;
    if (!split_data_url(*fd, where + ".file.file_data", media_type, data)) return false;
    b = R"({"type":"document","source":{"type":"base64","media_type":)";
    append_json_string(b, media_type);
    b += R"(,"data":)";
    append_json_string(b, data);
    b += "}";
    append_cache_control(b, member(po, "cache_control"));
    b += '}';
    return true;
  }

  bool read_tool_calls(dom::element v, const std::string& where, std::vector<std::string>& blocks) {
    dom::array a;
    if (v.get_array().get(a)) return fail(type_error(where, "an array"));
    std::size_t i = 0;
    for (dom::element c : a) {
      std::string cw = where + "[" + std::to_string(i++) + "]";
      dom::object co, fn;
      if (c.get_object().get(co)) return fail(type_error(cw, "an object"));
      auto id = string_member(co, "id");
      if (!id) return fail(bad_request("Missing required parameter: '" + cw + ".id'.", "missing_parameter"));
      if (auto t = string_member(co, "type"); t && *t != "function")
        return fail(bad_request("Tool call type '" + printable(*t, 64) + "' in '" + cw +
                                    "' is not supported for Anthropic models.",
                                "unsupported_parameter"));
      auto fe = member(co, "function");
      if (!fe || fe->get_object().get(fn)) return fail(type_error(cw + ".function", "an object"));
      auto name = string_member(fn, "name");
      if (!name) return fail(bad_request("Missing required parameter: '" + cw + ".function.name'.", "missing_parameter"));
      std::string input = "{}";
      if (auto args = member(fn, "arguments")) {
        std::string_view text;
        if (args->get_string().get(text)) return fail(type_error(cw + ".function.arguments", "a string"));
        bool blank = std::all_of(text.begin(), text.end(), [](char ch) {
          return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
        });
        if (!blank) {
          dom::element parsed;
          if (parse_json(inner_parser(), text, parsed) || parsed.type() != dom::element_type::OBJECT)
            return fail(bad_request("Invalid '" + cw +
                                    ".function.arguments': expected a JSON object, as Anthropic tool input."));
          input = simdjson::minify(parsed);
        }
      }
      std::string b = R"({"type":"tool_use","id":)";
      append_json_string(b, *id);
      b += R"(,"name":)";
      append_json_string(b, *name);
      b += R"(,"input":)";
      b += input;
      b += '}';
      blocks.push_back(std::move(b));
    }
    return true;
  }

  bool read_tool_result(dom::object o, const std::string& where, std::string& b) {
    auto id = string_member(o, "tool_call_id");
    if (!id) return fail(bad_request("Missing required parameter: '" + where + ".tool_call_id'.", "missing_parameter"));
    b = R"({"type":"tool_result","tool_use_id":)";
    append_json_string(b, *id);
    if (auto content = member(o, "content")) {
      std::string_view s;
      if (!content->get_string().get(s)) {
        if (!s.empty()) {
          b += R"(,"content":)";
          append_json_string(b, s);
        }
      } else {
        std::vector<std::string> parts;
        if (!read_parts(*content, where + ".content", part_context::tool_result, parts)) return false;
        if (!parts.empty()) {
          b += R"(,"content":)";
          append_json_array(b, parts);
        }
      }
    }
    b += '}';
    return true;
  }

  // --- tools ---

  bool read_tools(dom::element v, std::string& out, bool& has_tools) {
    dom::array a;
    if (v.get_array().get(a)) return fail(type_error("tools", "an array"));
    out = "[";
    std::size_t i = 0;
    for (dom::element t : a) {
      std::string tw = "tools[" + std::to_string(i) + "]";
      dom::object to, fn;
      if (t.get_object().get(to)) return fail(type_error(tw, "an object"));
      if (auto type = string_member(to, "type"); type && *type != "function")
        return fail(bad_request("Tool type '" + printable(*type, 64) + "' in '" + tw +
                                    "' is not supported for Anthropic models; only function tools are.",
                                "unsupported_parameter"));
      auto fe = member(to, "function");
      if (!fe || fe->get_object().get(fn)) return fail(type_error(tw + ".function", "an object"));
      auto name = string_member(fn, "name");
      if (!name) return fail(bad_request("Missing required parameter: '" + tw + ".function.name'.", "missing_parameter"));
      if (i++) out += ',';
      if (*name == json_tool_name) client_json_tool_ = true;
      out += R"({"name":)";
      append_json_string(out, *name);
      if (auto d = member(fn, "description")) {
        std::string_view desc;
        if (d->get_string().get(desc)) return fail(type_error(tw + ".function.description", "a string"));
        out += R"(,"description":)";
        append_json_string(out, desc);
      }
      out += R"(,"input_schema":)";
      if (auto p = member(fn, "parameters")) {
        if (p->type() != dom::element_type::OBJECT) return fail(type_error(tw + ".function.parameters", "an object"));
        out += simdjson::minify(*p);
      } else {
        out += R"({"type":"object","properties":{}})";  // Anthropic requires a schema
      }
      append_cache_control(out, member(to, "cache_control"));
      out += '}';
    }
    out += ']';
    has_tools = i > 0;
    return true;
  }

  bool read_tool_choice(dom::element v, std::string& out) {
    std::string_view s;
    if (!v.get_string().get(s)) {
      if (s == "auto") out = R"({"type":"auto"})";
      else if (s == "required") out = R"({"type":"any"})";
      else if (s == "none") out = R"({"type":"none"})";
      else
        return fail(bad_request("Invalid value for 'tool_choice': '" + printable(s, 64) +
                                "'. Expected none, auto, required or a named function."));
      return true;
    }
    dom::object o, fn;
    if (v.get_object().get(o)) return fail(type_error("tool_choice", "a string or an object"));
    std::optional<std::string_view> name;
    if (auto fe = member(o, "function"); fe && !fe->get_object().get(fn)) name = string_member(fn, "name");
    if (!name) name = string_member(o, "name");  // {"type":"function","name":..} (Responses style)
    if (!name)
      return fail(bad_request("Missing required parameter: 'tool_choice.function.name'.", "missing_parameter"));
    out = R"({"type":"tool","name":)";
    append_json_string(out, *name);
    out += '}';
    return true;
  }

  // --- output ---

  void write_system() {
    if (system_.empty()) return;
    out_ += R"(,"system":)";
    // One plain block: a string (the common form). Several, or cache_control: blocks.
    static constexpr std::string_view plain = R"({"type":"text","text":)";
    if (system_.size() == 1 && system_[0].compare(0, plain.size(), plain) == 0 &&
        system_[0].find(R"(,"cache_control":)") == std::string::npos) {
      out_.append(system_[0], plain.size(), system_[0].size() - plain.size() - 1);
      return;
    }
    append_json_array(out_, system_);
  }

  void write_messages() {
    out_ += R"(,"messages":[)";
    for (std::size_t t = 0; t < turns_.size(); ++t) {
      auto& tn = turns_[t];
      if (t) out_ += ',';
      out_ += tn.user ? R"({"role":"user","content":[)" : R"({"role":"assistant","content":[)";
      // In a user turn, tool_result blocks first (Anthropic requires it), the rest in order.
      bool first = true;
      for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t i = 0; i < tn.blocks.size(); ++i) {
          if (tn.is_result[i] != (pass == 0)) continue;
          if (!first) out_ += ',';
          first = false;
          out_ += tn.blocks[i];
        }
      }
      out_ += "]}";
    }
    out_ += ']';
  }

  const translate_context& ctx_;
  std::optional<provider_error> err_;
  std::vector<std::string> system_;  // text blocks
  std::vector<turn> turns_;
  std::string out_;
  bool client_json_tool_ = false;  // the client has a tool named json_tool_call
};

// ---------------------------------------------------------------------------------
// Stream

void append_usage(std::string& out, const usage& u) {
  out += R"("usage":{"prompt_tokens":)";
  append_json_number(out, std::max<std::int64_t>(u.prompt_tokens, 0));
  out += R"(,"completion_tokens":)";
  append_json_number(out, std::max<std::int64_t>(u.completion_tokens, 0));
  out += R"(,"total_tokens":)";
  append_json_number(out, std::max<std::int64_t>(u.total_tokens, 0));
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  append_json_number(out, u.cached_tokens);
  // Anthropic's own names too (as LiteLLM reports them): read_usage() reads the
  // cache writes from here, and OpenAI clients ignore unknown usage fields.
  out += R"(},"cache_creation_input_tokens":)";
  append_json_number(out, u.cache_creation_tokens);
  out += R"(,"cache_read_input_tokens":)";
  append_json_number(out, u.cached_tokens);
  out += '}';
}

/// Anthropic usage fields -> usage (prompt = input + cache writes + cache reads).
struct anthropic_usage {
  std::int64_t input = 0, output = 0, cache_write = 0, cache_read = 0;
  bool seen = false;
  /// Updates from an Anthropic "usage" object; fields absent or null are kept. Stream
  /// counts are cumulative, so they never go down: a message_delta that repeats
  /// input_tokens as 0 (seen from proxies) does not erase message_start's count.
  void read(dom::object u) {
    seen = true;
    input = std::max(input, int_member(u, "input_tokens", 0));
    output = std::max(output, int_member(u, "output_tokens", 0));
    cache_write = std::max(cache_write, int_member(u, "cache_creation_input_tokens", 0));
    cache_read = std::max(cache_read, int_member(u, "cache_read_input_tokens", 0));
  }
  usage tokens() const {
    usage u;
    if (!seen) return u;
    u.prompt_tokens = input + cache_write + cache_read;
    u.completion_tokens = output;
    u.total_tokens = u.prompt_tokens + output;
    u.cached_tokens = cache_read;
    u.cache_creation_tokens = cache_write;
    return u;
  }
};

class anthropic_stream final : public stream_translator {
 public:
  explicit anthropic_stream(const translate_context& ctx)
      : include_usage_(ctx.include_usage), json_mode_(ctx.json_tool_call) {
    append_response_head(head_, ctx, "chat.completion.chunk");
  }

  std::optional<provider_error> feed(std::string_view bytes, std::string& out) override {
    if (err_) return err_;
    split_lines(buf_, scan_, bytes, [&](std::string_view line) { return on_line(line, out); });
    if (!err_ && buf_.size() > max_event_bytes)
      fail(provider_error{502, "api_error", "upstream_bad_response", "Anthropic stream: a line over 16 MiB."});
    return err_;
  }

  std::optional<provider_error> finish(std::string& out) override {
    if (err_) return err_;
    if (finished_) return std::nullopt;
    // A last line or event the stream did not terminate: take it as complete (a
    // truncated one fails to parse below).
    if (auto line = take_last_line(buf_); line && !on_line(*line, out)) return err_;
    if (!data_.empty() && !on_line("", out)) return err_;
    if (!stopped_) {
      fail(provider_error{502, "api_error", "upstream_stream_error",
                          "Anthropic stream ended before message_stop: the response is incomplete."});
      return err_;
    }
    finished_ = true;
    if (include_usage_) {
      out += "data: ";
      out += head_;
      out += R"(,"choices":[],)";
      append_usage(out, tokens_);
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
    return std::nullopt;
  }

  const usage& tokens() const noexcept override { return tokens_; }

 private:
  static constexpr std::size_t max_event_bytes = 16u << 20;

  bool fail(provider_error e) {
    err_ = std::move(e);
    return false;
  }

  /// One SSE line (without its end). False on error.
  bool on_line(std::string_view line, std::string& out) {
    if (line.empty()) {
      bool ok = data_.empty() || stopped_ || dispatch(out);
      data_.clear();
      event_.clear();
      return ok;
    }
    if (line.front() == ':') return true;  // comment
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon), value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      event_.assign(value);
    } else if (field == "data") {
      if (!data_.empty()) data_ += '\n';
      data_.append(value);
      if (data_.size() > max_event_bytes)
        return fail(provider_error{502, "api_error", "upstream_bad_response", "Anthropic stream: an event over 16 MiB."});
    }
    return true;
  }

  void chunk(std::string& out, std::string_view delta, std::string_view finish_reason = {}) {
    append_chunk(out, head_, delta, finish_reason, include_usage_);
  }

  void ensure_started(std::string& out) {
    if (started_) return;
    started_ = true;
    chunk(out, R"({"role":"assistant","content":""})");
  }

  bool dispatch(std::string& out) {
    dom::element root_el;
    dom::object root;
    if (parse_json(outer_parser(), data_, root_el) || root_el.get_object().get(root))
      return fail(provider_error{502, "api_error", "upstream_bad_response",
                                 "Anthropic stream: event data is not a JSON object: " + printable(data_, 200)});
    // data.type repeats the event name; either will do.
    std::string_view type = event_;
    if (auto t = string_member(root, "type")) type = *t;

    if (type == "message_start") {
      dom::object msg, u;
      if (auto m = member(root, "message"); m && !m->get_object().get(msg))
        if (auto ue = member(msg, "usage"); ue && !ue->get_object().get(u)) usage_.read(u);
      tokens_ = usage_.tokens();
      ensure_started(out);
    } else if (type == "content_block_start") {
      ensure_started(out);
      dom::object block;
      auto be = member(root, "content_block");
      if (!be || be->get_object().get(block)) return true;
      auto btype = string_member(block, "type");
      if (btype == "text") {
        if (auto text = string_member(block, "text"); text && !text->empty()) content(out, "content", *text);
      } else if (btype == "tool_use") {
        if (json_mode_ && string_member(block, "name") == json_tool_name) {
          // The structured answer: its input fragments become content. A second one
          // is not relayed (its fragments match no block of ours).
          if (!json_block_) json_block_ = int_member(root, "index", -1);
          return true;
        }
        int tool = next_tool_++;
        tool_blocks_.emplace_back(int_member(root, "index", -1), tool);
        chunk(out, tool_call_start_delta(tool, string_member(block, "id").value_or(""),
                                         string_member(block, "name").value_or("")));
      }
      // thinking, redacted_thinking, server tools: nothing to say yet.
    } else if (type == "content_block_delta") {
      ensure_started(out);
      dom::object delta;
      auto de = member(root, "delta");
      if (!de || de->get_object().get(delta)) return true;
      auto dtype = string_member(delta, "type");
      if (dtype == "text_delta") {
        if (auto text = string_member(delta, "text"); text && !text->empty()) content(out, "content", *text);
      } else if (dtype == "input_json_delta") {
        auto part = string_member(delta, "partial_json");
        std::int64_t index = int_member(root, "index", -1);
        if (json_block_ && index == *json_block_) {
          if (part && !part->empty()) content(out, "content", *part);
          return true;
        }
        auto it = std::find_if(tool_blocks_.begin(), tool_blocks_.end(),
                               [&](const auto& p) { return p.first == index; });
        // Not a tool_use block of ours (a server tool's input): nothing to relay.
        if (!part || part->empty() || it == tool_blocks_.end()) return true;
        chunk(out, tool_call_arguments_delta(it->second, *part));
      } else if (dtype == "thinking_delta") {
        if (auto text = string_member(delta, "thinking"); text && !text->empty())
          content(out, "reasoning_content", *text);
      }
      // signature_delta, citations_delta: no OpenAI equivalent.
    } else if (type == "message_delta") {
      ensure_started(out);
      dom::object u, delta;
      if (auto ue = member(root, "usage"); ue && !ue->get_object().get(u)) {
        usage_.read(u);  // cumulative counts: the latest wins
        tokens_ = usage_.tokens();
      }
      if (auto de = member(root, "delta"); de && !de->get_object().get(delta))
        if (auto reason = string_member(delta, "stop_reason"); reason && !finish_sent_) {
          finish_sent_ = true;
          std::string_view finish = finish_reason_from_anthropic(*reason);
          // Structured output answered through its tool: complete, not a tool call.
          if (finish == "tool_calls" && json_block_ && next_tool_ == 0) finish = "stop";
          chunk(out, "{}", finish);
        }
    } else if (type == "message_stop") {
      ensure_started(out);
      if (!finish_sent_) {
        finish_sent_ = true;
        chunk(out, "{}", "stop");
      }
      stopped_ = true;
    } else if (type == "error") {
      std::string_view etype = "api_error", message = "(no message)";
      dom::object eo;
      if (auto ee = member(root, "error"); ee && !ee->get_object().get(eo)) {
        etype = string_member(eo, "type").value_or(etype);
        message = string_member(eo, "message").value_or(message);
      }
      return fail(make_error(status_for_type(etype), etype, message));
    }
    // ping, content_block_stop and unknown events: nothing to relay.
    return true;
  }

  void content(std::string& out, std::string_view field, std::string_view text) {
    std::string d = "{\"";
    d += field;
    d += "\":";
    append_json_string(d, text);
    d += '}';
    chunk(out, d);
  }

  std::string head_;
  bool include_usage_ = false;
  bool json_mode_ = false;         // the request asked for structured output (json_tool_call)
  std::optional<std::int64_t> json_block_;  // the Anthropic block index of the json_tool_call call
  std::string buf_;         // bytes not yet ending a line
  std::size_t scan_ = 0;    // where to look for the next '\n' in buf_
  std::string event_, data_;
  bool started_ = false, finish_sent_ = false, stopped_ = false, finished_ = false;
  int next_tool_ = 0;
  std::vector<std::pair<std::int64_t, int>> tool_blocks_;  // Anthropic block index -> tool call index
  anthropic_usage usage_;
  usage tokens_;
  std::optional<provider_error> err_;
};

}  // namespace

std::string_view finish_reason_from_anthropic(std::string_view stop_reason) noexcept {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn, anything new
}

request_result to_anthropic(const translate_context& ctx, std::string_view openai_chat_body) {
  return request_translator(ctx).run(openai_chat_body);
}

provider_error anthropic_error(int status, std::string_view body) {
  dom::element root_el;
  dom::object root, eo;
  if (!parse_json(outer_parser(), body, root_el) && !root_el.get_object().get(root)) {
    auto ee = member(root, "error");
    if (ee && !ee->get_object().get(eo)) {
      auto type = string_member(eo, "type").value_or(type_for_status(status));
      auto message = string_member(eo, "message").value_or("(no message)");
      return make_error(status, type, message);
    }
    if (auto message = string_member(root, "message"))  // gateways in front of Anthropic
      return make_error(status, type_for_status(status), *message);
  }
  std::string text = printable(body, 512);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return make_error(status, type_for_status(status),
                    text.empty() ? "HTTP " + std::to_string(status) + " with an empty body" : text);
}

translated_response from_anthropic(const translate_context& ctx, int status, std::string_view body) {
  translated_response r;
  auto fail = [&](const provider_error& e) {
    r.status = e.status;
    r.body = e.json();
    r.tokens = usage{};
    return r;
  };
  if (status < 200 || status > 299) return fail(anthropic_error(status, body));
  dom::element root_el;
  dom::object root;
  if (parse_json(outer_parser(), body, root_el) || root_el.get_object().get(root))
    return fail(bad_response("not a JSON object: " + printable(body, 200)));
  if (string_member(root, "type") == "error") return fail(anthropic_error(status, body));

  std::string text, reasoning, calls;
  std::optional<std::string> json;  // the json_tool_call input (structured output)
  int ncalls = 0;
  if (auto ce = member(root, "content")) {
    dom::array blocks;
    if (ce->get_array().get(blocks)) return fail(bad_response("'content' is not an array"));
    for (dom::element be : blocks) {
      dom::object b;
      if (be.get_object().get(b)) continue;
      auto type = string_member(b, "type");
      if (type == "text") {
        text.append(string_member(b, "text").value_or(""));
      } else if (type == "thinking") {
        reasoning.append(string_member(b, "thinking").value_or(""));
      } else if (type == "tool_use") {
        auto name = string_member(b, "name").value_or("");
        if (ctx.json_tool_call && name == json_tool_name) {
          // The structured answer: its input is the content (a second one is dropped).
          if (!json) {
            auto input = member(b, "input");
            json = input ? simdjson::minify(*input) : std::string("{}");
          }
          continue;
        }
        if (ncalls++) calls += ',';
        append_tool_call(calls, string_member(b, "id").value_or(""), string_member(b, "name").value_or(""),
                         member(b, "input"));
      }
      // redacted_thinking, server tool blocks, ...: no OpenAI equivalent.
    }
  }
  anthropic_usage au;
  dom::object uo;
  if (auto ue = member(root, "usage"); ue && !ue->get_object().get(uo)) au.read(uo);
  r.tokens = au.tokens();

  std::string& out = r.body;
  out.reserve(text.size() + calls.size() + reasoning.size() + 512);
  append_response_head(out, ctx, "chat.completion");
  std::optional<std::string_view> content;
  std::string_view finish = finish_reason_from_anthropic(string_member(root, "stop_reason").value_or(""));
  if (json) {
    // As LiteLLM: the JSON alone is the content (text around it would make it unparsable),
    // and the answer is complete ("stop") unless the model also called the client's tools.
    content = *json;
    if (finish == "tool_calls" && ncalls == 0) finish = "stop";
  } else if (!text.empty() || ncalls == 0) {
    content = text;
  }
  append_assistant_choice(out, content, reasoning, calls, finish);
  if (au.seen) {
    out += ',';
    append_usage(out, r.tokens);
  }
  out += '}';
  r.status = 200;
  return r;
}

std::unique_ptr<stream_translator> anthropic_stream_translator(const translate_context& ctx) {
  return std::make_unique<anthropic_stream>(ctx);
}

}  // namespace gw::providers
