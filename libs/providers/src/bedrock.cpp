#include "gw/providers/bedrock.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "gw/core/json_writer.hpp"
#include "gw/providers/eventstream.hpp"
#include "gw/providers/json_dom.hpp"
#include "gw/providers/sigv4.hpp"

namespace gw::providers {

// The translation reads whole documents in any order (tool_choice decides about tools,
// n and response_format may refuse the request) and copies sub-trees verbatim (tool
// parameters, tool inputs), so it uses simdjson's DOM rather than the on-demand API the
// hot path uses: DOM validates the whole document and gives random access.
// DOM results do not point into the input (strings are copied into the parser), so one
// padded buffer per thread serves every parse; a second parser handles documents parsed
// while another is still being read (tool call arguments).
namespace dom = simdjson::dom;

namespace {

using namespace json_dom;

/// A request the adapter refuses (400). Thrown inside the translation only, caught at
/// its entry points: the request walk is deep and every level can find a problem.
struct invalid_input {
  std::string message;
};

[[noreturn]] void invalid(std::string message) { throw invalid_input{std::move(message)}; }

provider_error bad_request(std::string message, std::string code = "invalid_request") {
  provider_error e;
  e.status = 400;
  e.type = "invalid_request_error";
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

std::string_view as_string(dom::element e, const std::string& what) {
  std::string_view s;
  if (e.get_string().get(s)) invalid("Invalid type for '" + what + "': expected a string.");
  return s;
}

dom::object as_object(dom::element e, const std::string& what) {
  dom::object o;
  if (e.get_object().get(o)) invalid("Invalid type for '" + what + "': expected an object.");
  return o;
}

dom::array as_array(dom::element e, const std::string& what) {
  dom::array a;
  if (e.get_array().get(a)) invalid("Invalid type for '" + what + "': expected an array.");
  return a;
}

double as_number(dom::element e, const std::string& what) {
  double d = 0;
  if (e.get_double().get(d)) invalid("Invalid type for '" + what + "': expected a number.");
  return d;
}

std::int64_t as_int(dom::element e, const std::string& what) {
  std::int64_t i = 0;
  if (e.get_int64().get(i)) invalid("Invalid type for '" + what + "': expected an integer.");
  return i;
}

std::string str(std::string_view s) { return std::string(s); }

void append_int(std::string& out, std::int64_t v) { append_json_number(out, v); }

std::string to_lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// JSON text of an element, compact.
std::string compact(dom::element e) { return simdjson::minify(e); }

// ---------------------------------------------------------------- request: chat

/// One Converse message being built; blocks are JSON objects (ContentBlock).
struct turn {
  std::string role;
  std::vector<std::string> blocks;
};

std::string text_block(std::string_view text) {
  std::string b = R"({"text":)";
  append_json_string(b, text);
  b += '}';
  return b;
}

/// The base64 text of a data: URL without line breaks or spaces (MIME-style wrapped
/// base64 is common; Bedrock's decoder wants one run); empty when it is not base64.
std::string base64_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return {};
    out += c;
  }
  return out;
}

/// The images fetched for the request being translated (to_converse sets it for its
/// duration; translation stays a function of its inputs).
thread_local const std::vector<std::pair<std::string, std::string>>* t_fetched_images = nullptr;

/// {"image":{"format":..,"source":{"bytes":<base64>}}} from an image_url part.
std::string image_block(dom::element part_image, const std::string& where) {
  std::string_view url;
  if (part_image.is_string()) {
    url = as_string(part_image, where + ".image_url");
  } else {
    auto o = as_object(part_image, where + ".image_url");
    auto u = member(o, "url");
    if (!u) invalid("Missing required parameter: '" + where + ".image_url.url'.");
    url = as_string(*u, where + ".image_url.url");
  }
  if (url.substr(0, 7) == "http://" || url.substr(0, 8) == "https://") {
    const std::string* data_url = nullptr;
    if (t_fetched_images)
      for (const auto& [u, d] : *t_fetched_images)
        if (u == url) data_url = &d;
    if (!data_url)
      invalid("Bedrock needs inline images: '" + where +
              ".image_url.url' must be a data: URL (data:image/png;base64,...); fetching http(s) image URLs "
              "is off (gateway_settings.fetch_image_urls).");
    url = *data_url;
  }
  if (url.substr(0, 5) != "data:")
    invalid("'" + where + ".image_url.url' must be a data: URL (data:image/png;base64,...).");
  auto comma = url.find(',');
  if (comma == std::string_view::npos) invalid("'" + where + ".image_url.url' is not a valid data: URL.");
  std::string_view meta = url.substr(5, comma - 5);
  std::string_view data = url.substr(comma + 1);
  if (meta.size() < 7 || meta.substr(meta.size() - 7) != ";base64")
    invalid("'" + where + ".image_url.url' must be a base64 data: URL (data:<type>;base64,...).");
  std::string mime = to_lower_ascii(meta.substr(0, meta.find(';')));
  std::string_view format;
  if (mime == "image/png") format = "png";
  else if (mime == "image/jpeg" || mime == "image/jpg") format = "jpeg";
  else if (mime == "image/gif") format = "gif";
  else if (mime == "image/webp") format = "webp";
  else
    invalid("Bedrock accepts png, jpeg, gif and webp images; '" + where + ".image_url.url' is " +
            (mime.empty() ? std::string("of no type") : mime) + ".");
  std::string bytes = base64_text(data);
  if (bytes.empty()) invalid("'" + where + ".image_url.url' does not hold valid base64 data.");
  std::string b = R"({"image":{"format":")";
  b += format;
  b += R"(","source":{"bytes":)";
  append_json_string(b, bytes);
  b += "}}}";
  return b;
}

/// Text of content that may only hold text: a string, or an array of text parts
/// (system, developer, tool messages). Each string or part becomes an entry of `out`.
void text_parts(dom::element content, const std::string& where, std::vector<std::string>& out) {
  if (content.is_string()) {
    out.emplace_back(as_string(content, where));
    return;
  }
  std::size_t i = 0;
  for (dom::element part : as_array(content, where)) {
    std::string pw = where + "[" + std::to_string(i++) + "]";
    auto po = as_object(part, pw);
    auto type = member(po, "type");
    std::string_view t = type ? as_string(*type, pw + ".type") : "text";
    if (t != "text") invalid("Content parts of type '" + str(t) + "' are not supported in '" + where + "'.");
    auto text = member(po, "text");
    if (!text) invalid("Missing required parameter: '" + pw + ".text'.");
    out.emplace_back(as_string(*text, pw + ".text"));
  }
}

void user_content(dom::element content, const std::string& where, std::vector<std::string>& blocks) {
  if (content.is_string()) {
    auto s = as_string(content, where);
    if (!s.empty()) blocks.push_back(text_block(s));
    return;
  }
  std::size_t i = 0;
  for (dom::element part : as_array(content, where)) {
    std::string pw = where + "[" + std::to_string(i++) + "]";
    auto po = as_object(part, pw);
    auto type = member(po, "type");
    if (!type) invalid("Missing required parameter: '" + pw + ".type'.");
    std::string_view t = as_string(*type, pw + ".type");
    if (t == "text") {
      auto text = member(po, "text");
      if (!text) invalid("Missing required parameter: '" + pw + ".text'.");
      auto s = as_string(*text, pw + ".text");
      if (!s.empty()) blocks.push_back(text_block(s));
    } else if (t == "image_url") {
      auto img = member(po, "image_url");
      if (!img) invalid("Missing required parameter: '" + pw + ".image_url'.");
      blocks.push_back(image_block(*img, pw));
    } else {
      invalid("Content parts of type '" + str(t) + "' are not supported by the Bedrock adapter ('" + pw + "').");
    }
  }
}

/// An assistant tool call -> {"toolUse":{toolUseId,name,input}}; `arguments` must be JSON.
std::string tool_use_block(dom::element call, const std::string& where) {
  auto co = as_object(call, where);
  auto id = member(co, "id");
  if (!id) invalid("Missing required parameter: '" + where + ".id'.");
  auto fn = member(co, "function");
  if (!fn) invalid("Missing required parameter: '" + where + ".function'.");
  auto fo = as_object(*fn, where + ".function");
  auto name = member(fo, "name");
  if (!name) invalid("Missing required parameter: '" + where + ".function.name'.");
  std::string_view args;
  if (auto a = member(fo, "arguments")) args = as_string(*a, where + ".function.arguments");
  std::string input;
  // No arguments (a tool without parameters) is an empty object for Bedrock.
  bool blank = std::all_of(args.begin(), args.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  if (blank) {
    input = "{}";
  } else {
    dom::element parsed;
    if (parse_json(inner_parser(), args, parsed))
      invalid("'" + where + ".function.arguments' is not valid JSON; Bedrock needs the tool input as a JSON object.");
    input = compact(parsed);
  }
  std::string b = R"({"toolUse":{"toolUseId":)";
  append_json_string(b, as_string(*id, where + ".id"));
  b += R"(,"name":)";
  append_json_string(b, as_string(*name, where + ".function.name"));
  b += R"(,"input":)";
  b += input;
  b += "}}";
  return b;
}

std::string tool_spec(dom::element tool, const std::string& where) {
  auto to = as_object(tool, where);
  if (auto type = member(to, "type"); type && as_string(*type, where + ".type") != "function")
    invalid("Only tools of type 'function' are supported by Bedrock ('" + where + ".type').");
  auto fn = member(to, "function");
  if (!fn) invalid("Missing required parameter: '" + where + ".function'.");
  auto fo = as_object(*fn, where + ".function");
  auto name = member(fo, "name");
  if (!name) invalid("Missing required parameter: '" + where + ".function.name'.");
  std::string s = R"({"toolSpec":{"name":)";
  append_json_string(s, as_string(*name, where + ".function.name"));
  if (auto d = member(fo, "description")) {
    s += R"(,"description":)";
    append_json_string(s, as_string(*d, where + ".function.description"));
  }
  s += R"(,"inputSchema":{"json":)";
  if (auto p = member(fo, "parameters")) {
    as_object(*p, where + ".function.parameters");
    s += compact(*p);
  } else {
    // Converse requires a schema; a function without parameters takes an empty object.
    s += R"({"type":"object","properties":{}})";
  }
  s += "}}}";
  return s;
}

// Structured output (response_format json_object / json_schema) is emulated as LiteLLM
// does: a tool of this name whose input becomes the answer's content.
constexpr std::string_view json_tool_name = "json_tool_call";
constexpr std::string_view json_tool_description = "Respond with a JSON object that follows the input schema.";
constexpr std::string_view json_object_schema = R"({"type":"object","additionalProperties":true,"properties":{}})";

/// The toolSpec emulating response_format, or "" for "text" (or no type).
std::string response_format_tool(dom::element v) {
  auto ro = as_object(v, "response_format");
  auto te = member(ro, "type");
  if (!te) return {};
  std::string_view type = as_string(*te, "response_format.type");
  if (type == "text") return {};
  std::string schema, description(json_tool_description);
  if (type == "json_object") {
    schema = json_object_schema;
  } else if (type == "json_schema") {
    auto jse = member(ro, "json_schema");
    if (!jse) invalid("Missing required parameter: 'response_format.json_schema'.");
    auto js = as_object(*jse, "response_format.json_schema");
    auto se = member(js, "schema");
    if (!se) invalid("Missing required parameter: 'response_format.json_schema.schema'.");
    auto so = as_object(*se, "response_format.json_schema.schema");
    auto st = member(so, "type");
    if (st && (!st->is_string() || as_string(*st, "response_format.json_schema.schema.type") != "object"))
      invalid("Invalid 'response_format.json_schema.schema': Bedrock returns structured output as a tool's input, "
              "which must be a JSON object (schema type 'object').");
    schema = compact(*se);
    // A tool's input schema must say type "object"; one without a type gets it.
    if (!st) schema.insert(1, so.size() ? R"("type":"object",)" : R"("type":"object")");
    if (auto d = member(js, "description")) {
      auto ds = as_string(*d, "response_format.json_schema.description");
      if (!ds.empty()) description.assign(ds);
    }
  } else {
    invalid("Invalid value for 'response_format.type': '" + str(type) + "' (text, json_object or json_schema).");
  }
  std::string s = R"({"toolSpec":{"name":"json_tool_call","description":)";
  append_json_string(s, description);
  s += R"(,"inputSchema":{"json":)";
  s += schema;
  s += "}}}";
  return s;
}

/// Whether Converse takes toolChoice {"tool":..} for `model` (a model id, inference
/// profile or ARN): Anthropic Claude, Amazon Nova and Mistral Large only; other models
/// refuse it. An ARN that does not name its model (application inference profiles,
/// provisioned throughput) is taken as one that does not.
bool takes_specific_tool_choice(std::string_view model) {
  std::string m = to_lower_ascii(model);
  return m.find("anthropic.") != std::string::npos || m.find("amazon.nova") != std::string::npos ||
         m.find("mistral.mistral-large") != std::string::npos;
}

std::string converse_body(dom::object root, std::string_view model, bool& json_tool) {
  std::vector<turn> turns;
  std::vector<std::string> system;
  auto push = [&](std::string_view role, std::vector<std::string>&& blocks) {
    // Converse wants user and assistant turns alternating: consecutive turns of one
    // role (several tool results, a tool result then user text, ...) become one.
    // A message with nothing to send is dropped (Converse refuses blank text).
    if (blocks.empty()) return;
    if (!turns.empty() && turns.back().role == role) {
      for (auto& b : blocks) turns.back().blocks.push_back(std::move(b));
    } else {
      turns.push_back(turn{str(role), std::move(blocks)});
    }
  };

  auto messages = member(root, "messages");
  if (!messages) invalid("Missing required parameter: 'messages'.");
  std::size_t mi = 0;
  for (dom::element m : as_array(*messages, "messages")) {
    std::string where = "messages[" + std::to_string(mi++) + "]";
    auto mo = as_object(m, where);
    auto role_el = member(mo, "role");
    if (!role_el) invalid("Missing required parameter: '" + where + ".role'.");
    std::string_view role = as_string(*role_el, where + ".role");
    auto content = member(mo, "content");
    std::vector<std::string> blocks;
    if (role == "system" || role == "developer") {
      std::vector<std::string> texts;
      if (content) text_parts(*content, where + ".content", texts);
      for (auto& t : texts)
        if (!t.empty()) system.push_back(text_block(t));
    } else if (role == "user") {
      if (content) user_content(*content, where + ".content", blocks);
      push("user", std::move(blocks));
    } else if (role == "assistant") {
      if (content) {
        std::vector<std::string> texts;
        if (content->is_string()) {
          texts.emplace_back(as_string(*content, where + ".content"));
        } else {
          // Assistant parts are text or refusal; both are text for Converse.
          std::size_t i = 0;
          for (dom::element part : as_array(*content, where + ".content")) {
            std::string pw = where + ".content[" + std::to_string(i++) + "]";
            auto po = as_object(part, pw);
            auto type = member(po, "type");
            std::string_view t = type ? as_string(*type, pw + ".type") : "text";
            auto text = member(po, t == "refusal" ? "refusal" : "text");
            if (t != "text" && t != "refusal")
              invalid("Assistant content parts of type '" + str(t) + "' are not supported ('" + pw + "').");
            if (!text) invalid("Missing required parameter: '" + pw + "." + str(t) + "'.");
            texts.emplace_back(as_string(*text, pw + "." + str(t)));
          }
        }
        for (auto& t : texts)
          if (!t.empty()) blocks.push_back(text_block(t));
      }
      if (auto calls = member(mo, "tool_calls")) {
        std::size_t ci = 0;
        for (dom::element c : as_array(*calls, where + ".tool_calls")) {
          blocks.push_back(tool_use_block(c, where + ".tool_calls[" + std::to_string(ci++) + "]"));
        }
      }
      push("assistant", std::move(blocks));
    } else if (role == "tool") {
      auto id = member(mo, "tool_call_id");
      if (!id) invalid("Missing required parameter: '" + where + ".tool_call_id'.");
      std::vector<std::string> texts;
      if (content) text_parts(*content, where + ".content", texts);
      std::string b = R"({"toolResult":{"toolUseId":)";
      append_json_string(b, as_string(*id, where + ".tool_call_id"));
      b += R"(,"content":[)";
      std::string joined;
      for (std::size_t i = 0; i < texts.size(); ++i) {
        if (i) joined += '\n';
        joined += texts[i];
      }
      b += text_block(joined);
      b += "]}}";
      blocks.push_back(std::move(b));
      push("user", std::move(blocks));
    } else if (role == "function") {
      invalid("Messages with role 'function' (deprecated) are not supported by the Bedrock adapter; use 'tool' ('" +
              where + "').");
    } else {
      invalid("Invalid value for '" + where + ".role': '" + str(role) +
              "' (system, developer, user, assistant or tool).");
    }
  }

  // Inference parameters.
  std::string inference;
  auto add_inference = [&](std::string_view key) {
    inference += inference.empty() ? "{" : ",";
    append_json_string(inference, key);
    inference += ':';
  };
  std::optional<std::int64_t> max_tokens;
  if (auto v = member(root, "max_tokens")) max_tokens = as_int(*v, "max_tokens");
  if (auto v = member(root, "max_completion_tokens")) max_tokens = as_int(*v, "max_completion_tokens");
  if (max_tokens) {
    if (*max_tokens < 1) invalid("Invalid 'max_tokens': must be at least 1.");
    add_inference("maxTokens");
    append_int(inference, *max_tokens);
  }
  if (auto v = member(root, "temperature")) {
    add_inference("temperature");
    append_json_number(inference, as_number(*v, "temperature"));
  }
  if (auto v = member(root, "top_p")) {
    add_inference("topP");
    append_json_number(inference, as_number(*v, "top_p"));
  }
  if (auto v = member(root, "stop")) {
    std::vector<std::string_view> stops;
    if (v->is_string()) {
      stops.push_back(as_string(*v, "stop"));
    } else {
      std::size_t i = 0;
      for (dom::element s : as_array(*v, "stop")) stops.push_back(as_string(s, "stop[" + std::to_string(i++) + "]"));
    }
    std::string list;
    for (auto s : stops) {
      if (s.empty()) continue;  // Converse refuses empty stop sequences; OpenAI ignores them
      list += list.empty() ? "[" : ",";
      append_json_string(list, s);
    }
    if (!list.empty()) {
      add_inference("stopSequences");
      inference += list;
      inference += ']';
    }
  }
  if (auto v = member(root, "n")) {
    if (as_int(*v, "n") > 1) invalid("Bedrock Converse returns one choice: 'n' must be 1.");
  }
  std::string json_spec;
  if (auto v = member(root, "response_format")) json_spec = response_format_tool(*v);

  // Tools. tool_choice "none" has no Converse equivalent: the tools are not offered.
  // (A conversation that already holds tool calls then has no toolConfig, which
  // Bedrock refuses with a ValidationException that says so.)
  std::string tools, choice;
  bool drop_tools = false;
  if (auto tc = member(root, "tool_choice")) {
    if (tc->is_string()) {
      std::string_view c = as_string(*tc, "tool_choice");
      if (c == "auto") choice = R"({"auto":{}})";
      else if (c == "required") choice = R"({"any":{}})";
      else if (c == "none") drop_tools = true;
      else invalid("Invalid value for 'tool_choice': '" + str(c) + "' (none, auto, required or a named function).");
    } else {
      auto to = as_object(*tc, "tool_choice");
      if (auto t = member(to, "type"); t && as_string(*t, "tool_choice.type") != "function")
        invalid("Invalid value for 'tool_choice.type': only 'function' is supported.");
      auto fn = member(to, "function");
      if (!fn) invalid("Missing required parameter: 'tool_choice.function'.");
      auto name = member(as_object(*fn, "tool_choice.function"), "name");
      if (!name) invalid("Missing required parameter: 'tool_choice.function.name'.");
      choice = R"({"tool":{"name":)";
      append_json_string(choice, as_string(*name, "tool_choice.function.name"));
      choice += "}}";
    }
  }
  if (auto v = member(root, "tools")) {
    std::size_t i = 0;
    for (dom::element t : as_array(*v, "tools")) {
      std::string spec = tool_spec(t, "tools[" + std::to_string(i++) + "]");
      // tool_spec() writes the name first, then a comma.
      if (!json_spec.empty() && spec.starts_with(R"({"toolSpec":{"name":"json_tool_call",)"))
        invalid("The tool name 'json_tool_call' is reserved when 'response_format' asks for JSON from a Bedrock model.");
      if (drop_tools) continue;
      tools += tools.empty() ? "[" : ",";
      tools += spec;
    }
    if (!tools.empty()) tools += ']';
  }
  json_tool = !json_spec.empty();
  if (json_tool) {
    // One more tool, forced unless the client chose otherwise (its "none" means none of
    // its own tools: the JSON tool is forced). Models that refuse a specific toolChoice
    // get none (auto), as LiteLLM does: with one tool offered they call it.
    if (tools.empty()) {
      tools = "[" + json_spec + "]";
    } else {
      tools.back() = ',';
      tools += json_spec;
      tools += ']';
    }
    if (drop_tools || !member(root, "tool_choice"))
      choice = takes_specific_tool_choice(model) ? R"({"tool":{"name":"json_tool_call"}})" : "";
  }

  std::string extra;
  if (auto v = member(root, "top_k")) {
    extra = R"({"top_k":)";
    append_int(extra, as_int(*v, "top_k"));
    extra += '}';
  }

  std::string out;
  out.reserve(256);
  out += R"({"messages":[)";
  for (std::size_t i = 0; i < turns.size(); ++i) {
    if (i) out += ',';
    out += R"({"role":")";
    out += turns[i].role;
    out += R"(","content":)";
    append_json_array(out, turns[i].blocks);
    out += '}';
  }
  out += ']';
  if (!system.empty()) {
    out += R"(,"system":)";
    append_json_array(out, system);
  }
  if (!inference.empty()) {
    out += R"(,"inferenceConfig":)";
    out += inference;
    out += '}';
  }
  if (!tools.empty()) {
    out += R"(,"toolConfig":{"tools":)";
    out += tools;
    if (!choice.empty()) {
      out += R"(,"toolChoice":)";
      out += choice;
    }
    out += '}';
  }
  if (!extra.empty()) {
    out += R"(,"additionalModelRequestFields":)";
    out += extra;
  }
  out += '}';
  return out;
}

// ---------------------------------------------------------------- responses

std::string_view finish_reason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "guardrail_intervened" || stop_reason == "content_filtered") return "content_filter";
  return "stop";  // end_turn, stop_sequence, and anything new
}

/// Converse usage -> ours. OpenAI's prompt_tokens includes cached tokens, while
/// Bedrock's inputTokens excludes the tokens read from or written to the prompt cache
/// (its totalTokens includes them), so those are added back, as LiteLLM does.
usage read_converse_usage(dom::object u) {
  usage t;
  std::int64_t in = int_member(u, "inputTokens", -1), out = int_member(u, "outputTokens", -1);
  std::int64_t read = std::max<std::int64_t>(0, int_member(u, "cacheReadInputTokens", -1));
  std::int64_t write = std::max<std::int64_t>(0, int_member(u, "cacheWriteInputTokens", -1));
  if (in >= 0) t.prompt_tokens = in + read + write;
  if (out >= 0) t.completion_tokens = out;
  if (in >= 0 || out >= 0)
    t.total_tokens = std::max<std::int64_t>(0, t.prompt_tokens) + std::max<std::int64_t>(0, t.completion_tokens);
  t.cached_tokens = read;
  t.cache_creation_tokens = write;
  return t;
}

/// "usage":{...} in OpenAI's shape (unknown counts as 0). cache_creation_input_tokens
/// is not OpenAI's but what read_usage() and LiteLLM read for prompt-cache writes.
void append_usage(std::string& out, const usage& t) {
  auto nz = [](std::int64_t v) { return v < 0 ? std::int64_t{0} : v; };
  out += R"({"prompt_tokens":)";
  append_int(out, nz(t.prompt_tokens));
  out += R"(,"completion_tokens":)";
  append_int(out, nz(t.completion_tokens));
  out += R"(,"total_tokens":)";
  append_int(out, t.total_tokens >= 0 ? t.total_tokens : nz(t.prompt_tokens) + nz(t.completion_tokens));
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  append_int(out, t.cached_tokens);
  out += '}';
  if (t.cache_creation_tokens > 0) {
    out += R"(,"cache_creation_input_tokens":)";
    append_int(out, t.cache_creation_tokens);
  }
  out += '}';
}

translated_response error_response(const provider_error& e) {
  translated_response r;
  r.status = e.status;
  r.body = e.json();
  return r;
}

provider_error unreadable(std::string_view what) {
  provider_error e;
  e.status = 502;
  e.type = "api_error";
  e.code = "bad_response";
  e.message = "Bedrock returned " + str(what);
  return e;
}

struct error_kind {
  int status;
  const char* type;
  const char* code;
};

/// OpenAI terms for a Bedrock exception name (after any namespace / ':' suffix).
std::optional<error_kind> kind_of(std::string_view t, int status, std::string_view message) {
  if (t == "ValidationException") {
    // Context-window refusals keep OpenAI's code so that clients (and fallbacks) know
    // them: "Input is too long for requested model", "prompt is too long: N tokens > M",
    // "... exceeds the context window ...".
    bool context = contains_ci(message, "too long") || contains_ci(message, "context length") ||
                   contains_ci(message, "context window") || contains_ci(message, "input length") ||
                   (contains_ci(message, "exceed") && contains_ci(message, "context"));
    return error_kind{400, "invalid_request_error", context ? "context_length_exceeded" : "invalid_request"};
  }
  if (t == "ServiceQuotaExceededException")
    return status == 429 ? error_kind{429, "rate_limit_error", "throttling"}
                         : error_kind{400, "invalid_request_error", "service_quota_exceeded"};
  if (t == "AccessDeniedException") return error_kind{403, "permission_error", "access_denied"};
  if (t == "ResourceNotFoundException") return error_kind{404, "not_found_error", "not_found"};
  if (t == "ThrottlingException" || t == "TooManyRequestsException")
    return error_kind{429, "rate_limit_error", "throttling"};
  // Not ready: the model is being loaded; retryable, hence 429 like throttling.
  if (t == "ModelNotReadyException") return error_kind{429, "rate_limit_error", "model_not_ready"};
  if (t == "ModelTimeoutException") return error_kind{408, "timeout_error", "timeout"};
  // The model itself failed (424 at Bedrock): a bad gateway for the client.
  if (t == "ModelErrorException") return error_kind{502, "api_error", "model_error"};
  if (t == "ModelStreamErrorException") return error_kind{502, "api_error", "model_stream_error"};
  if (t == "InternalServerException" || t == "InternalFailure")
    return error_kind{500, "api_error", "internal_error"};
  if (t == "ServiceUnavailableException") return error_kind{503, "api_error", "service_unavailable"};
  // The gateway's own AWS credentials were refused.
  if (t == "UnrecognizedClientException" || t == "InvalidSignatureException" ||
      t == "IncompleteSignatureException" || t == "MissingAuthenticationTokenException" ||
      t == "ExpiredTokenException" || t == "InvalidClientTokenId" || t == "SignatureDoesNotMatch")
    return error_kind{401, "authentication_error", "invalid_api_key"};
  return std::nullopt;
}

error_kind kind_of_status(int status) {
  switch (status) {
    case 400: return {400, "invalid_request_error", "invalid_request"};
    case 401: return {401, "authentication_error", "invalid_api_key"};
    case 403: return {403, "permission_error", "access_denied"};
    case 404: return {404, "not_found_error", "not_found"};
    case 408: return {408, "timeout_error", "timeout"};
    case 413: return {413, "invalid_request_error", "request_too_large"};
    case 424: return {502, "api_error", "model_error"};
    case 429: return {429, "rate_limit_error", "throttling"};
    default: break;
  }
  if (status >= 500 && status <= 599) return {status, "api_error", "internal_error"};
  if (status >= 400 && status <= 499) return {status, "invalid_request_error", "invalid_request"};
  return {502, "api_error", "bad_response"};
}

/// "com.amazon.coral.validate#ValidationException:http://..." -> "ValidationException".
std::string_view exception_name(std::string_view t) {
  t = t.substr(0, t.find(':'));
  if (auto hash = t.rfind('#'); hash != std::string_view::npos) t = t.substr(hash + 1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  return t;
}

provider_error make_error(std::string type, int status, std::string message) {
  provider_error e;
  auto k = kind_of(type, status, message);
  error_kind kind = k ? *k : kind_of_status(status);
  e.status = kind.status;
  e.type = kind.type;
  e.code = kind.code;
  std::string label = type.empty() ? "HTTP " + std::to_string(status) : type;
  e.message = "Bedrock " + label + ": " + (message.empty() ? std::string("(no message)") : message);
  return e;
}

}  // namespace

// ---------------------------------------------------------------- public

std::string bedrock_path(std::string_view model_id, std::string_view action) {
  std::string p = "/model/";
  p += uri_encode(model_id, false);
  p += '/';
  p.append(action);
  return p;
}

provider_error bedrock_error(int status, std::string_view body, std::string_view amzn_error_type) {
  std::string type(exception_name(amzn_error_type));
  std::string message;
  dom::element doc;
  dom::object o;
  if (!parse_json(outer_parser(), body, doc) && !doc.get_object().get(o)) {
    for (auto key : {"message", "Message"}) {
      std::string_view m;
      if (auto e = member(o, key); e && !e->get_string().get(m)) {
        message.assign(m);
        break;
      }
    }
    if (type.empty()) {
      std::string_view t;
      if (auto e = member(o, "__type"); e && !e->get_string().get(t)) type.assign(exception_name(t));
    }
  } else {
    // Not JSON (a proxy's HTML page, ...): keep the start of it.
    std::string_view b = body.substr(0, 300);
    message.assign(b);
    if (body.size() > b.size()) message += "...";
  }
  return make_error(std::move(type), status, std::move(message));
}

std::vector<std::string> image_urls(std::string_view openai_chat_body) {
  std::vector<std::string> urls;
  dom::element doc;
  dom::object root;
  dom::array messages;
  if (parse_json(outer_parser(), openai_chat_body, doc) || doc.get_object().get(root) ||
      root["messages"].get_array().get(messages))
    return urls;
  for (dom::element m : messages) {
    dom::array parts;
    if (m["content"].get_array().get(parts)) continue;
    for (dom::element p : parts) {
      std::string_view type, url;
      if (p["type"].get_string().get(type) || type != "image_url") continue;
      dom::element iu;
      if (p["image_url"].get(iu)) continue;
      if (iu.get_string().get(url) && iu["url"].get_string().get(url)) continue;
      if (url.substr(0, 7) != "http://" && url.substr(0, 8) != "https://") continue;
      if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.emplace_back(url);
    }
  }
  return urls;
}

request_result to_converse(const translate_context& ctx, std::string_view openai_chat_body) {
  request_result r;
  dom::element doc;
  if (auto ec = parse_json(outer_parser(), openai_chat_body, doc)) {
    r.error = bad_request(std::string("We could not parse the JSON body of your request: ") +
                              simdjson::error_message(ec),
                          "invalid_json");
    return r;
  }
  dom::object root;
  if (doc.get_object().get(root)) {
    r.error = bad_request("The request body must be a JSON object.", "invalid_json");
    return r;
  }
  struct images_scope {  // t_fetched_images for this translation only
    explicit images_scope(const std::vector<std::pair<std::string, std::string>>* p) { t_fetched_images = p; }
    ~images_scope() { t_fetched_images = nullptr; }
  } images(ctx.fetched_images);
  try {
    translated_request t;
    ctx.json_tool_call = false;
    bool json_tool = false;
    t.body = converse_body(root, ctx.upstream_model, json_tool);
    ctx.json_tool_call = json_tool;
    t.path = bedrock_path(ctx.upstream_model, ctx.stream ? "converse-stream" : "converse");
    t.headers.emplace_back("accept", ctx.stream ? "application/vnd.amazon.eventstream" : "application/json");
    r.request = std::move(t);
  } catch (const invalid_input& e) {
    r.error = bad_request(e.message);
  }
  return r;
}

translated_response from_converse(const translate_context& ctx, int status, std::string_view body,
                                  std::string_view amzn_error_type) {
  if (status < 200 || status > 299) return error_response(bedrock_error(status, body, amzn_error_type));
  dom::element doc;
  dom::object root, message_o;
  dom::array content;
  if (parse_json(outer_parser(), body, doc) || doc.get_object().get(root))
    return error_response(unreadable("a response that is not a JSON object"));
  auto output = member(root, "output");
  dom::object output_o;
  if (!output || output->get_object().get(output_o)) return error_response(unreadable("a response without 'output'"));
  auto message = member(output_o, "message");
  if (!message || message->get_object().get(message_o))
    return error_response(unreadable("a response without 'output.message'"));

  std::string text, reasoning, calls;
  std::optional<std::string> json;  // the json_tool_call input (structured output)
  bool any_text = false;
  int n_calls = 0;
  if (auto c = member(message_o, "content"); c && !c->get_array().get(content)) {
    for (dom::element block : content) {
      dom::object bo;
      if (block.get_object().get(bo)) continue;
      std::string_view s;
      if (auto te = member(bo, "text"); te && !te->get_string().get(s)) {
        text.append(s);
        any_text = true;
      } else if (auto tu = member(bo, "toolUse")) {
        dom::object tuo;
        if (tu->get_object().get(tuo)) continue;
        std::string_view id, name;
        auto ide = member(tuo, "toolUseId");
        auto ne = member(tuo, "name");
        if (!ide || ide->get_string().get(id) || !ne || ne->get_string().get(name))
          return error_response(unreadable("a toolUse block without toolUseId or name"));
        auto input = member(tuo, "input");
        if (ctx.json_tool_call && name == json_tool_name) {
          // The structured answer: its input is the content (a second one is dropped).
          if (!json) json = input ? compact(*input) : std::string("{}");
          continue;
        }
        if (n_calls++) calls += ',';
        append_tool_call(calls, id, name, input);
      } else if (auto rc = member(bo, "reasoningContent")) {
        // Reasoning models: {"reasoningContent":{"reasoningText":{"text":..}}}, surfaced
        // as "reasoning_content" as LiteLLM does.
        dom::object rco, rto;
        std::string_view rt;
        if (!rc->get_object().get(rco))
          if (auto rte = member(rco, "reasoningText"); rte && !rte->get_object().get(rto))
            if (auto x = member(rto, "text"); x && !x->get_string().get(rt)) reasoning.append(rt);
      }
    }
  }

  std::string_view stop = string_member(root, "stopReason").value_or("");
  translated_response r;
  if (auto u = member(root, "usage")) {
    dom::object uo;
    if (!u->get_object().get(uo)) r.tokens = read_converse_usage(uo);
  }

  std::string& out = r.body;
  out.reserve(256 + text.size() + calls.size());
  append_response_head(out, ctx, "chat.completion");
  std::optional<std::string_view> message_content;
  std::string_view finish = finish_reason(stop);
  if (json) {
    // As LiteLLM: the JSON alone is the content (text around it would make it unparsable),
    // and the answer is complete ("stop") unless the model also called the client's tools.
    message_content = *json;
    if (finish == "tool_calls" && n_calls == 0) finish = "stop";
  } else if (any_text || n_calls == 0) {
    message_content = text;
  }
  append_assistant_choice(out, message_content, reasoning, calls, finish);
  out += R"(,"usage":)";
  append_usage(out, r.tokens);
  out += '}';
  return r;
}

// ---------------------------------------------------------------- stream

namespace {

class converse_stream final : public stream_translator {
 public:
  explicit converse_stream(const translate_context& ctx)
      : include_usage_(ctx.include_usage), json_mode_(ctx.json_tool_call) {
    append_response_head(head_, ctx, "chat.completion.chunk");
  }

  std::optional<provider_error> feed(std::string_view bytes, std::string& out) override {
    if (error_) return error_;
    if (finished_) return std::nullopt;
    messages_.clear();
    auto decode_error = decoder_.feed(bytes, messages_);
    // Frames decoded before a corrupt one are still translated: the client gets all
    // that arrived intact, then the error.
    for (auto& m : messages_) {
      if (auto e = handle(m, out)) return error_ = std::move(e);
    }
    if (decode_error) return error_ = stream_error("Bedrock stream is corrupt: " + *decode_error);
    return std::nullopt;
  }

  std::optional<provider_error> finish(std::string& out) override {
    if (error_) return error_;
    if (finished_) return std::nullopt;
    if (auto e = decoder_.finish()) return error_ = stream_error("Bedrock stream is truncated: " + *e);
    if (!stopped_) return error_ = stream_error("Bedrock stream ended before the message was complete");
    if (include_usage_) {
      out += "data: ";
      out += head_;
      out += R"(,"choices":[],"usage":)";
      append_usage(out, tokens_);
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
    finished_ = true;
    return std::nullopt;
  }

  const usage& tokens() const noexcept override { return tokens_; }

 private:
  static provider_error stream_error(std::string message) {
    provider_error e;
    e.status = 502;
    e.type = "api_error";
    e.code = "stream_error";
    e.message = std::move(message);
    return e;
  }

  void chunk(std::string& out, std::string_view delta, std::string_view finish = {}) {
    append_chunk(out, head_, delta, finish, include_usage_);
  }

  void role_chunk(std::string& out) {
    if (role_sent_) return;
    role_sent_ = true;
    chunk(out, R"({"role":"assistant","content":""})");
  }

  int tool_index(std::int64_t block) const {
    for (auto& [b, i] : block_tools_)
      if (b == block) return i;
    return -1;
  }

  std::optional<provider_error> handle(const eventstream::message& m, std::string& out) {
    std::string_view kind = m.header_value(":message-type");
    if (kind == "exception") {
      // ":exception-type" is the union member ("throttlingException"); its payload is
      // {"message": ...}. The member name with a capital is the exception's name.
      std::string type(m.header_value(":exception-type"));
      if (!type.empty()) type[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(type[0])));
      auto e = bedrock_error(0, m.payload, type);
      if (e.status == 502 && e.code == "bad_response") e.code = "stream_error";
      return e;
    }
    if (kind == "error") {
      std::string msg(m.header_value(":error-message"));
      if (msg.empty()) msg = "(no message)";
      auto e = make_error(std::string(m.header_value(":error-code")), 0, msg);
      return e;
    }
    if (kind != "event") return std::nullopt;  // unknown kinds: ignore, as botocore does

    std::string_view event = m.header_value(":event-type");
    dom::element doc;
    dom::object p;
    if (parse_json(outer_parser(), m.payload, doc) || doc.get_object().get(p))
      return stream_error("Bedrock stream: unreadable '" + str(event) + "' event payload");

    if (event == "messageStart") {
      role_chunk(out);
    } else if (event == "contentBlockStart") {
      dom::object start, tu;
      std::string_view id, name;
      if (auto s = member(p, "start"); s && !s->get_object().get(start))
        if (auto t = member(start, "toolUse"); t && !t->get_object().get(tu)) {
          auto ide = member(tu, "toolUseId");
          auto ne = member(tu, "name");
          if (!ide || ide->get_string().get(id) || !ne || ne->get_string().get(name))
            return stream_error("Bedrock stream: toolUse start without toolUseId or name");
          role_chunk(out);
          std::int64_t block = int_member(p, "contentBlockIndex", -1);
          if (json_mode_ && name == json_tool_name) {
            // The structured answer: its input fragments become content. A second one
            // is not relayed (its fragments match no block of ours).
            if (!json_block_) json_block_ = block;
            return std::nullopt;
          }
          int index = tool_count_++;
          block_tools_.emplace_back(block, index);
          chunk(out, tool_call_start_delta(index, id, name));
        }
    } else if (event == "contentBlockDelta") {
      dom::object delta;
      auto de = member(p, "delta");
      if (!de || de->get_object().get(delta)) return std::nullopt;
      std::string_view s;
      dom::object tu, rc;
      if (auto t = member(delta, "text"); t && !t->get_string().get(s)) {
        role_chunk(out);
        std::string d = R"({"content":)";
        append_json_string(d, s);
        d += '}';
        chunk(out, d);
      } else if (auto t2 = member(delta, "toolUse"); t2 && !t2->get_object().get(tu)) {
        std::int64_t block = int_member(p, "contentBlockIndex", -1);
        if (json_block_ && block == *json_block_) {
          auto in = member(tu, "input");
          if (!in || in->get_string().get(s) || s.empty()) return std::nullopt;
          std::string d = R"({"content":)";
          append_json_string(d, s);
          d += '}';
          chunk(out, d);
          return std::nullopt;
        }
        int index = tool_index(block);
        // A fragment for a block that never started as a tool: nothing to attach it
        // to (Bedrock always sends the start first).
        if (index < 0) return std::nullopt;
        auto in = member(tu, "input");
        if (!in || in->get_string().get(s)) return std::nullopt;
        chunk(out, tool_call_arguments_delta(index, s));
      } else if (auto r = member(delta, "reasoningContent"); r && !r->get_object().get(rc)) {
        if (auto x = member(rc, "text"); x && !x->get_string().get(s)) {
          role_chunk(out);
          std::string d = R"({"reasoning_content":)";
          append_json_string(d, s);
          d += '}';
          chunk(out, d);
        }
      }
    } else if (event == "messageStop") {
      std::string_view reason = string_member(p, "stopReason").value_or("");
      role_chunk(out);
      std::string_view finish = finish_reason(reason);
      // Structured output answered through its tool: complete, not a tool call.
      if (finish == "tool_calls" && json_block_ && tool_count_ == 0) finish = "stop";
      if (!stopped_) chunk(out, "{}", finish);
      stopped_ = true;
    } else if (event == "metadata") {
      // After messageStop: usage is held until finish(), which writes the usage chunk.
      dom::object uo;
      if (auto u = member(p, "usage"); u && !u->get_object().get(uo)) tokens_ = read_converse_usage(uo);
    }
    // contentBlockStop and unknown events carry nothing for the client.
    return std::nullopt;
  }

  bool include_usage_;
  bool json_mode_;                          ///< the request asked for structured output (json_tool_call)
  std::optional<std::int64_t> json_block_;  ///< contentBlockIndex of the json_tool_call call
  std::string head_;
  eventstream::decoder decoder_;
  std::vector<eventstream::message> messages_;
  bool role_sent_ = false, stopped_ = false, finished_ = false;
  int tool_count_ = 0;
  std::vector<std::pair<std::int64_t, int>> block_tools_;  ///< contentBlockIndex -> tool call index
  usage tokens_;
  std::optional<provider_error> error_;
};

}  // namespace

std::unique_ptr<stream_translator> converse_stream_translator(const translate_context& ctx) {
  return std::make_unique<converse_stream>(ctx);
}

// ---------------------------------------------------------------- embeddings

namespace {

enum class embed_family { titan, cohere, other };

embed_family family_of(std::string_view model) {
  // Also matches regional inference profiles ("us.cohere.embed-...") and ARNs.
  if (model.find("amazon.titan-embed") != std::string_view::npos) return embed_family::titan;
  if (model.find("cohere.embed") != std::string_view::npos) return embed_family::cohere;
  return embed_family::other;
}

/// The body of an embeddings request as a JSON object, or the 400 for it.
std::optional<provider_error> embeddings_root(std::string_view body, dom::object& root) {
  dom::element doc;
  if (auto ec = parse_json(outer_parser(), body, doc))
    return bad_request(std::string("We could not parse the JSON body of your request: ") + simdjson::error_message(ec),
                       "invalid_json");
  if (doc.get_object().get(root)) return bad_request("The request body must be a JSON object.", "invalid_json");
  return std::nullopt;
}

/// `input` and `dimensions` of an OpenAI embeddings request (invalid_input when wrong).
struct embedding_fields {
  std::vector<std::string_view> texts;
  std::optional<std::int64_t> dims;
};

embedding_fields read_embedding_fields(dom::object root) {
  embedding_fields f;
  auto input = member(root, "input");
  if (!input) invalid("Missing required parameter: 'input'.");
  if (input->is_string()) {
    f.texts.push_back(as_string(*input, "input"));
  } else {
    std::size_t i = 0;
    for (dom::element e : as_array(*input, "input")) {
      if (!e.is_string())
        invalid("Bedrock embeddings take text: 'input[" + std::to_string(i) +
                "]' must be a string (token-id inputs are not supported).");
      f.texts.push_back(as_string(e, "input[" + std::to_string(i++) + "]"));
    }
  }
  if (f.texts.empty()) invalid("'input' must not be empty.");
  if (auto d = member(root, "dimensions")) {
    f.dims = as_int(*d, "dimensions");
    if (*f.dims < 1) invalid("Invalid 'dimensions': must be at least 1.");
  }
  return f;
}

/// Titan's InvokeModel body for one text.
std::string titan_body(std::string_view text, std::optional<std::int64_t> dims) {
  std::string body = R"({"inputText":)";
  append_json_string(body, text);
  if (dims) {
    body += R"(,"dimensions":)";
    append_int(body, *dims);
  }
  body += '}';
  return body;
}

translated_request invoke_request(const translate_context& ctx, std::string body) {
  translated_request t;
  t.path = bedrock_path(ctx.upstream_model, "invoke");
  t.body = std::move(body);
  t.headers.emplace_back("accept", "application/json");
  return t;
}

/// Appends {"object":"embedding","index":<index>,"embedding":[...]}; false (and `out`
/// partly written) when a value is not a number.
bool append_embedding(std::string& out, std::size_t index, dom::array values) {
  out += R"({"object":"embedding","index":)";
  append_int(out, static_cast<std::int64_t>(index));
  out += R"(,"embedding":[)";
  bool first = true;
  for (dom::element x : values) {
    double d = 0;
    if (x.get_double().get(d)) return false;
    if (!first) out += ',';
    first = false;
    append_json_number(out, d);
  }
  out += "]}";
  return true;
}

/// {"object":"list","data":[<data>],"model","usage"} with `prompt` tokens.
translated_response embeddings_list(const translate_context& ctx, std::string_view data, std::int64_t prompt) {
  translated_response r;
  std::string& out = r.body;
  out.reserve(data.size() + 128);
  out += R"({"object":"list","data":[)";
  out += data;
  out += R"(],"model":)";
  append_json_string(out, ctx.response_model);
  out += R"(,"usage":{"prompt_tokens":)";
  append_int(out, prompt);
  out += R"(,"total_tokens":)";
  append_int(out, prompt);
  out += "}}";
  r.tokens.prompt_tokens = prompt;
  r.tokens.total_tokens = prompt;
  r.tokens.completion_tokens = 0;
  return r;
}

}  // namespace

request_result to_bedrock_embedding(const translate_context& ctx, std::string_view openai_embeddings_body) {
  request_result r;
  dom::object root;
  if ((r.error = embeddings_root(openai_embeddings_body, root))) return r;
  try {
    auto fam = family_of(ctx.upstream_model);
    if (fam == embed_family::other)
      invalid("Bedrock embeddings through the gateway support amazon.titan-embed* and cohere.embed* models, not '" +
              ctx.upstream_model + "'.");
    auto f = read_embedding_fields(root);
    // encoding_format is not forwarded: Bedrock answers floats, and the OpenAI SDKs
    // (which ask for base64 by default) accept float arrays as well.
    std::string body;
    if (fam == embed_family::titan) {
      if (f.texts.size() != 1)
        invalid("Titan embeds one input per request: 'input' has " + std::to_string(f.texts.size()) +
                " items; send one request per text.");
      body = titan_body(f.texts.front(), f.dims);
    } else {
      if (f.dims)
        invalid("Cohere embeddings on Bedrock have a fixed size: 'dimensions' is not supported for '" +
                ctx.upstream_model + "'.");
      body = R"({"texts":[)";
      for (std::size_t i = 0; i < f.texts.size(); ++i) {
        if (i) body += ',';
        append_json_string(body, f.texts[i]);
      }
      // OpenAI's API has no input type; documents are what embeddings are mostly made of.
      body += R"(],"input_type":"search_document"})";
    }
    r.request = invoke_request(ctx, std::move(body));
  } catch (const invalid_input& e) {
    r.error = bad_request(e.message);
  }
  return r;
}

translated_response from_bedrock_embedding(const translate_context& ctx, int status, std::string_view body,
                                           std::string_view amzn_error_type) {
  if (status < 200 || status > 299) return error_response(bedrock_error(status, body, amzn_error_type));
  dom::element doc;
  dom::object root;
  if (parse_json(outer_parser(), body, doc) || doc.get_object().get(root))
    return error_response(unreadable("an embeddings response that is not a JSON object"));

  std::vector<dom::array> vectors;
  std::int64_t prompt = 0;
  dom::array a;
  if (auto e = member(root, "embedding"); e && !e->get_array().get(a)) {
    // Titan: {"embedding":[...],"inputTextTokenCount":N}
    vectors.push_back(a);
    prompt = std::max<std::int64_t>(0, int_member(root, "inputTextTokenCount", -1));
  } else if (auto es = member(root, "embeddings")) {
    // Cohere: {"embeddings":[[...],...]} or, with embedding_types, {"embeddings":{"float":[[...]]}}.
    // Cohere reports no token count: usage stays 0 (the gateway may estimate it).
    dom::element list = *es;
    dom::object by_type;
    if (!es->get_object().get(by_type)) {
      auto f = member(by_type, "float");
      if (!f) return error_response(unreadable("Cohere embeddings without a 'float' list"));
      list = *f;
    }
    dom::array outer;
    if (list.get_array().get(outer)) return error_response(unreadable("Cohere embeddings that are not a list"));
    for (dom::element v : outer) {
      if (v.get_array().get(a)) return error_response(unreadable("a Cohere embedding that is not a list"));
      vectors.push_back(a);
    }
  } else {
    return error_response(unreadable("an embeddings response without 'embedding' or 'embeddings'"));
  }

  std::string data;
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    if (i) data += ',';
    if (!append_embedding(data, i, vectors[i]))
      return error_response(unreadable("an embedding with a non-numeric value"));
  }
  return embeddings_list(ctx, data, prompt);
}

bool is_titan_embedding(std::string_view model_id) noexcept { return family_of(model_id) == embed_family::titan; }

std::optional<provider_error> read_titan_inputs(std::string_view openai_embeddings_body, titan_inputs& out) {
  dom::object root;
  if (auto e = embeddings_root(openai_embeddings_body, root)) return e;
  try {
    auto f = read_embedding_fields(root);
    if (f.texts.size() > max_embedding_inputs)
      invalid("'input' has " + std::to_string(f.texts.size()) + " items; at most " +
              std::to_string(max_embedding_inputs) + " are allowed per request.");
    out.texts.assign(f.texts.begin(), f.texts.end());
    out.dimensions = f.dims;
  } catch (const invalid_input& e) {
    return bad_request(e.message);
  }
  return std::nullopt;
}

request_result to_titan_embedding(const translate_context& ctx, const titan_inputs& in, std::size_t index) {
  request_result r;
  if (index >= in.texts.size()) {
    r.error = bad_request("Titan input " + std::to_string(index) + " does not exist: the request has " +
                          std::to_string(in.texts.size()) + ".");
    return r;
  }
  r.request = invoke_request(ctx, titan_body(in.texts[index], in.dimensions));
  return r;
}

std::optional<provider_error> titan_embeddings::add(std::string_view titan_body) {
  dom::element doc;
  dom::object root;
  dom::array values;
  if (parse_json(outer_parser(), titan_body, doc) || doc.get_object().get(root))
    return unreadable("an embeddings response that is not a JSON object");
  auto e = member(root, "embedding");
  if (!e || e->get_array().get(values)) return unreadable("a Titan embeddings response without 'embedding'");
  std::size_t mark = data_.size();
  if (count_) data_ += ',';
  if (!append_embedding(data_, count_, values)) {
    data_.resize(mark);
    return unreadable("an embedding with a non-numeric value");
  }
  tokens_ += std::max<std::int64_t>(0, int_member(root, "inputTextTokenCount", 0));
  ++count_;
  return std::nullopt;
}

translated_response titan_embeddings::finish(const translate_context& ctx) {
  auto r = embeddings_list(ctx, data_, tokens_);
  data_.clear();
  data_.shrink_to_fit();
  count_ = 0;
  tokens_ = 0;
  return r;
}

}  // namespace gw::providers
