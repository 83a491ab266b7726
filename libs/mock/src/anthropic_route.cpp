// The mock provider's Anthropic dialect: POST /v1/messages, plain and streamed, with
// Anthropic's checks (anthropic-version, x-api-key, required max_tokens, roles,
// block types, temperature range) so that a gateway translating badly fails here as
// it would against the real API. Answers follow responses.hpp, like every dialect.

#include <simdjson.h>

#include "gw/core/json_writer.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/json_dom.hpp"
#include "provider_routes.hpp"

namespace gw::mock {
namespace {
namespace dom = simdjson::dom;

using namespace gw::providers::json_dom;

/// Anthropic's error type for `status`; a 503 is a plain api_error (Anthropic's overload is 529).
std::string_view error_type(int status) {
  return status == 503 ? "api_error" : gw::providers::anthropic_error_type(status);
}

std::string request_id(const route_env& env) { return "req_mock_" + std::to_string(env.sequence); }

route_response error_response(const route_env& env, int status, std::string_view message) {
  route_response r;
  r.status = status;
  r.body = R"({"type":"error","error":{"type":)";
  append_json_string(r.body, error_type(status));
  r.body += R"(,"message":)";
  append_json_string(r.body, message);
  r.body += R"(},"request_id":)";
  append_json_string(r.body, request_id(env));
  r.body += '}';
  r.headers.emplace_back("request-id", request_id(env));
  return r;
}

/// What the mock reads from a Messages request, with Anthropic's validation.
struct messages_request {
  mock_request r;
  std::int64_t max_tokens = 0;
};

/// Text of a string or of text blocks (joined with ' '); other blocks are skipped.
void text_of(dom::element v, std::string& out) {
  std::string_view s;
  if (!v.get_string().get(s)) {
    out.assign(s);
    return;
  }
  out.clear();
  dom::array a;
  if (v.get_array().get(a)) return;
  for (dom::element b : a) {
    dom::object o;
    if (b.get_object().get(o) || string_member(o, "type") != "text") continue;
    if (!out.empty()) out += ' ';
    out.append(string_member(o, "text").value_or(""));
  }
}

bool check_block(dom::object b, bool user, const std::string& where, std::string& text, std::string& result,
                 bool& has_result, std::string& err) {
  auto type = string_member(b, "type");
  if (!type) {
    err = where + ".type: Field required";
    return false;
  }
  if (*type == "text") {
    auto t = string_member(b, "text");
    if (!t) {
      err = where + ".text: Field required";
      return false;
    }
    if (t->empty()) {
      err = where + ": text content blocks must be non-empty";
      return false;
    }
    if (!text.empty()) text += ' ';
    text.append(*t);
  } else if (*type == "image" || *type == "document") {
    dom::object src;
    auto se = member(b, "source");
    auto st = se && !se->get_object().get(src) ? string_member(src, "type") : std::nullopt;
    if (!st || (*st != "base64" && *st != "url" && *st != "text")) {
      err = where + ".source: expected a base64, url or text source";
      return false;
    }
  } else if (*type == "tool_use" && !user) {
    auto input = member(b, "input");
    if (!string_member(b, "id") || !string_member(b, "name") || !input ||
        input->type() != dom::element_type::OBJECT) {
      err = where + ": tool_use blocks need id, name and an object input";
      return false;
    }
  } else if (*type == "tool_result" && user) {
    if (!string_member(b, "tool_use_id")) {
      err = where + ".tool_use_id: Field required";
      return false;
    }
    has_result = true;
    std::string t;
    if (auto c = member(b, "content")) text_of(*c, t);
    if (!result.empty() && !t.empty()) result += ' ';
    result += t;
  } else if (!(*type == "thinking" || *type == "redacted_thinking") || user) {
    err = where + ".type: unexpected block type '" + std::string(*type) + "' in a " + (user ? "user" : "assistant") +
          " message";
    return false;
  }
  return true;
}

bool parse_messages(std::string_view body, messages_request& out, std::string& err) {
  dom::element root_el;
  dom::object root;
  if (auto ec = parse_json(outer_parser(), body, root_el)) {
    err = std::string("The request body is not valid JSON: ") + simdjson::error_message(ec);
    return false;
  }
  if (root_el.get_object().get(root)) {
    err = "The request body must be a JSON object";
    return false;
  }
  mock_request& r = out.r;
  auto model = string_member(root, "model");
  if (!model) {
    err = "model: Field required";
    return false;
  }
  r.model.assign(*model);
  auto mt = member(root, "max_tokens");
  if (!mt || mt->get_int64().get(out.max_tokens) || out.max_tokens < 1) {
    err = "max_tokens: Field required (an integer >= 1)";
    return false;
  }
  if (auto t = member(root, "temperature")) {
    double d = 0;
    if (t->get_double().get(d) || d < 0 || d > 1) {
      err = "temperature: range: 0..1";
      return false;
    }
  }
  if (auto s = member(root, "stream")) {
    bool b = false;
    if (s->get_bool().get(b)) {
      err = "stream: Input should be a valid boolean";
      return false;
    }
    r.stream = b;
  }
  if (auto sys = member(root, "system")) {
    std::string t;
    text_of(*sys, t);
    r.text_bytes += t.size();
  }
  dom::array messages;
  auto me = member(root, "messages");
  if (!me || me->get_array().get(messages) || messages.size() == 0) {
    err = "messages: Field required (a non-empty list)";
    return false;
  }
  std::size_t i = 0;
  for (dom::element m : messages) {
    std::string where = "messages." + std::to_string(i++);
    dom::object mo;
    if (m.get_object().get(mo)) {
      err = where + ": Input should be a valid dictionary";
      return false;
    }
    auto role = string_member(mo, "role");
    if (role != "user" && role != "assistant") {
      err = where + ".role: Input should be 'user' or 'assistant'";
      return false;
    }
    bool user = *role == "user";
    auto content = member(mo, "content");
    std::string text, result;
    bool has_result = false;
    std::string_view s;
    dom::array blocks;
    if (content && !content->get_string().get(s)) {
      text.assign(s);
    } else if (content && !content->get_array().get(blocks)) {
      std::size_t k = 0;
      for (dom::element b : blocks) {
        dom::object bo;
        std::string bw = where + ".content." + std::to_string(k++);
        if (b.get_object().get(bo)) {
          err = bw + ": Input should be a valid dictionary";
          return false;
        }
        if (!check_block(bo, user, bw, text, result, has_result, err)) return false;
      }
    } else {
      err = where + ".content: Field required (a string or a list of blocks)";
      return false;
    }
    r.text_bytes += text.size() + result.size();
    // As in the OpenAI dialect: the last message decides; a user turn holding tool
    // results answers "Tool result: <their text>".
    r.after_tool_result = has_result;
    r.last_text = has_result ? std::move(result) : std::move(text);
  }
  bool choice_none = false;
  if (auto tc = member(root, "tool_choice")) {
    dom::object o;
    if (tc->get_object().get(o) || !string_member(o, "type")) {
      err = "tool_choice: Input should be a valid dictionary with a type";
      return false;
    }
    choice_none = string_member(o, "type") == "none";
  }
  if (auto te = member(root, "tools")) {
    dom::array tools;
    if (te->get_array().get(tools)) {
      err = "tools: Input should be a valid list";
      return false;
    }
    std::size_t k = 0;
    for (dom::element t : tools) {
      dom::object to;
      auto name = t.get_object().get(to) ? std::nullopt : string_member(to, "name");
      if (!name) {
        err = "tools." + std::to_string(k) + ".name: Field required";
        return false;
      }
      if (!string_member(to, "type") && !member(to, "input_schema")) {
        err = "tools." + std::to_string(k) + ".input_schema: Field required";
        return false;
      }
      if (k++ == 0 && !choice_none) r.tool_name.assign(*name);
    }
  }
  return true;
}

void append_event(std::vector<std::string>& chunks, std::string_view name, std::string_view json) {
  append_sse_event(chunks.emplace_back(), name, json);
}

}  // namespace

std::optional<route_response> anthropic_route(const route_request& rq, const route_env& env, std::string_view api_key) {
  if (rq.path != "/v1/messages") return std::nullopt;
  if (rq.method != "POST") {
    auto r = error_response(env, 405, "Method not allowed: use POST /v1/messages");
    r.headers.emplace_back("allow", "POST");
    return r;
  }
  if (rq.header("anthropic-version").empty())
    return error_response(env, 400, "anthropic-version: header is required");
  if (!api_key.empty()) {
    std::string_view key = rq.header("x-api-key");
    std::string_view auth = rq.header("authorization");
    bool ok = key == api_key || (auth.substr(0, 7) == "Bearer " && auth.substr(7) == api_key);
    if (!ok) return error_response(env, 401, "invalid x-api-key");
  }

  messages_request m;
  std::string err;
  if (!parse_messages(rq.body, m, err)) return error_response(env, 400, err);
  mock_request& r = m.r;
  if (env.take_fault)
    if (auto f = env.take_fault(r.model)) apply_fault(*f, r);

  if (r.status != 0) {
    route_response e;
    if (r.has_raw_body) {
      e.status = r.status;
      e.content_type = r.content_type.empty() ? "text/plain" : r.content_type;
      e.body = r.raw_body;
    } else {
      e = error_response(env, r.status,
                         r.status == 429   ? "Number of request tokens has exceeded your rate limit (mock)"
                         : r.status == 529 ? "Overloaded"
                                           : "mock error " + std::to_string(r.status));
    }
    if (!r.retry_after.empty()) e.headers.emplace_back("retry-after", r.retry_after);
    for (auto& h : r.headers) e.headers.push_back(h);
    return e;
  }

  const std::string seq = std::to_string(env.sequence);
  const std::string id = "msg_mock_" + seq;
  const bool tool = wants_tool_call(r);
  const std::int64_t prompt = prompt_tokens(r);
  std::vector<std::string> words;
  std::string args, stop_reason = tool ? "tool_use" : "end_turn";
  std::int64_t completion = 9;  // a tool call's cost, as in the OpenAI dialect
  if (tool) {
    args = tool_arguments(r);
  } else {
    words = completion_words(r, env.response_tokens);
    if (static_cast<std::int64_t>(words.size()) > m.max_tokens) {
      words.resize(static_cast<std::size_t>(m.max_tokens));
      stop_reason = "max_tokens";
    }
    completion = static_cast<std::int64_t>(words.size());
  }

  route_response resp;
  resp.headers.emplace_back("request-id", request_id(env));
  for (auto& h : r.headers) resp.headers.push_back(h);

  std::string tool_block;
  if (tool) {
    tool_block = R"({"type":"tool_use","id":"toolu_mock_)" + seq + R"(","name":)";
    append_json_string(tool_block, r.tool_name);
    tool_block += R"(,"input":)";
  }

  if (!r.stream) {
    std::string& b = resp.body;
    b = R"({"id":)";
    append_json_string(b, id);
    b += R"(,"type":"message","role":"assistant","model":)";
    append_json_string(b, r.model);
    b += R"(,"content":[)";
    if (tool) {
      b += tool_block;
      b += args;
      b += '}';
    } else {
      std::string text;
      for (std::size_t i = 0; i < words.size(); ++i) {
        if (i) text += ' ';
        text += words[i];
      }
      b += R"({"type":"text","text":)";
      append_json_string(b, text);
      b += '}';
    }
    b += R"(],"stop_reason":)";
    append_json_string(b, stop_reason);
    b += R"(,"stop_sequence":null,"usage":{"input_tokens":)";
    append_json_number(b, prompt);
    b += R"(,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":)";
    append_json_number(b, completion);
    b += "}}";
    return resp;
  }

  resp.streamed = true;
  resp.content_type = "text/event-stream";
  auto& ev = resp.chunks;
  std::string start = R"({"type":"message_start","message":{"id":)";
  append_json_string(start, id);
  start += R"(,"type":"message","role":"assistant","model":)";
  append_json_string(start, r.model);
  start += R"(,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":)";
  append_json_number(start, prompt);
  start += R"(,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})";
  append_event(ev, "message_start", start);
  append_event(ev, "content_block_start",
               R"({"type":"content_block_start","index":0,"content_block":)" +
                   (tool ? tool_block + "{}}" : std::string(R"({"type":"text","text":""})")) + "}");
  append_event(ev, "ping", R"({"type":"ping"})");
  auto delta = [&](std::string_view type, std::string_view field, std::string_view value) {
    std::string d = R"({"type":"content_block_delta","index":0,"delta":{"type":")";
    d += type;
    d += R"(",")";
    d += field;
    d += R"(":)";
    append_json_string(d, value);
    d += "}}";
    append_event(ev, "content_block_delta", d);
  };
  if (tool) {
    // The input in two fragments, as Anthropic splits it.
    std::size_t half = args.size() / 2;
    delta("input_json_delta", "partial_json", std::string_view(args).substr(0, half));
    delta("input_json_delta", "partial_json", std::string_view(args).substr(half));
  } else {
    for (std::size_t i = 0; i < words.size(); ++i)
      delta("text_delta", "text", i + 1 < words.size() ? words[i] + ' ' : words[i]);
  }
  append_event(ev, "content_block_stop", R"({"type":"content_block_stop","index":0})");
  std::string md = R"({"type":"message_delta","delta":{"stop_reason":)";
  append_json_string(md, stop_reason);
  md += R"(,"stop_sequence":null},"usage":{"output_tokens":)";
  append_json_number(md, completion);
  md += "}}";
  append_event(ev, "message_delta", md);
  append_event(ev, "message_stop", R"({"type":"message_stop"})");
  // Dropped after N content deltas: message_start, content_block_start and ping first.
  if (r.drop_after >= 0) resp.drop_after = r.drop_after + 3;
  return resp;
}

}  // namespace gw::mock
