// The mock provider's Bedrock Runtime dialect: Converse, ConverseStream (event-stream
// frames) and InvokeModel for Titan / Cohere embeddings, behind SigV4 or a Bedrock API
// key. Answers are the same as the OpenAI dialect's (responses.hpp) so that a test sees
// one behaviour whatever the provider.

#include <simdjson.h>

#include <cmath>

#include "gw/core/json_writer.hpp"
#include "gw/providers/eventstream.hpp"
#include "gw/providers/json_dom.hpp"
#include "gw/providers/sigv4.hpp"
#include "provider_routes.hpp"

namespace gw::mock {

namespace {

namespace dom = simdjson::dom;
namespace gp = gw::providers;
using namespace gw::providers::json_dom;

// -------------------------------------------------------------- errors

/// Bedrock's error shape: status, x-amzn-ErrorType "<Type>:<namespace>", {"message"}.
route_response aws_error(int status, std::string_view type, std::string_view message, const route_env& env) {
  route_response r;
  r.status = status;
  r.headers.emplace_back("x-amzn-ErrorType", std::string(type) + ":http://internal.amazon.com/coral/com.amazon.bedrock/");
  r.headers.emplace_back("x-amzn-RequestId", "mock-" + std::to_string(env.sequence));
  r.body = R"({"message":)";
  append_json_string(r.body, message);
  r.body += '}';
  return r;
}

/// The exception Bedrock raises with `status`, and its usual words.
std::pair<std::string_view, std::string_view> exception_for(int status) {
  switch (status) {
    case 400: return {"ValidationException", "Malformed input request, please reformat your input and try again."};
    case 403: return {"AccessDeniedException", "You don't have access to the model with the specified model ID."};
    case 404: return {"ResourceNotFoundException", "The requested resource could not be found."};
    case 408: return {"ModelTimeoutException", "Model has timed out in processing the request."};
    case 424: return {"ModelErrorException", "The model returned an error."};
    case 429: return {"ThrottlingException", "Too many requests, please wait before trying again."};
    case 500: return {"InternalServerException", "The server encountered an internal error."};
    case 503: return {"ServiceUnavailableException", "The service is unavailable. Please try again later."};
    default: break;
  }
  if (status >= 500) return {"InternalServerException", "The server encountered an internal error."};
  return {"ValidationException", "The request was refused."};
}

route_response fault_error(const mock_request& f, const route_env& env) {
  auto [type, message] = exception_for(f.status);
  route_response r = aws_error(f.status, type, message, env);
  if (f.has_raw_body) r.body = f.raw_body;
  if (!f.content_type.empty()) r.content_type = f.content_type;
  if (!f.retry_after.empty()) r.headers.emplace_back("retry-after", f.retry_after);
  return r;
}

// -------------------------------------------------------------- auth

/// nullopt when the request is authenticated: a valid Bedrock API key as a bearer
/// token, or a SigV4 signature (service "bedrock", any region) by known credentials.
std::optional<route_response> check_auth(const route_request& r, const route_env& env) {
  std::string_view auth = r.header("authorization");
  if (auth.substr(0, 7) == "Bearer ") {
    if (env.creds && env.creds->bearer_valid(auth.substr(7))) return std::nullopt;
    return aws_error(403, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix",
                     env);
  }
  auto check = verify_with_store(r, env, "bedrock");
  if (check.ok()) return std::nullopt;
  // AWS answers an unknown key or token with UnrecognizedClientException, and every
  // other signing problem with InvalidSignatureException; both are 403.
  bool unknown = check.failure == gp::sigv4_failure::unknown_key ||
                 check.failure == gp::sigv4_failure::token_mismatch ||
                 check.failure == gp::sigv4_failure::missing_authorization;
  return aws_error(403, unknown ? "UnrecognizedClientException" : "InvalidSignatureException", check.reason, env);
}

// -------------------------------------------------------------- requests

/// Text of a Converse content list: text blocks joined with ' ' (as the OpenAI dialect
/// joins text parts), and json blocks (tool results) as compact JSON.
std::string blocks_text(dom::array blocks, std::size_t& text_bytes) {
  std::string out;
  for (dom::element b : blocks) {
    dom::object bo;
    if (b.get_object().get(bo)) continue;
    std::string piece;
    std::string_view s;
    dom::element j;
    dom::array inner;
    if (!bo.at_key("text").get_string().get(s)) {
      piece.assign(s);
    } else if (!bo.at_key("json").get(j)) {
      piece = simdjson::minify(j);
    } else {
      // A tool result's text counts towards the prompt but is not message text.
      if (!bo.at_key("toolResult").at_key("content").get_array().get(inner)) blocks_text(inner, text_bytes);
      continue;
    }
    text_bytes += piece.size();
    if (!out.empty()) out += ' ';
    out += piece;
  }
  return out;
}

/// Reads a Converse request into the mock's common request. False with `err` when it
/// is not one.
bool read_converse(std::string_view body, mock_request& req, std::string& err) {
  dom::element doc;
  dom::object root;
  if (auto ec = parse_json(outer_parser(), body, doc)) {
    err = std::string("Malformed input request: ") + simdjson::error_message(ec);
    return false;
  }
  if (doc.get_object().get(root)) {
    err = "Malformed input request: the body must be a JSON object";
    return false;
  }
  dom::array system;
  if (!root.at_key("system").get_array().get(system)) req.last_text = blocks_text(system, req.text_bytes);
  dom::array messages;
  if (root.at_key("messages").get_array().get(messages)) {
    err = "Malformed input request: 'messages' must be an array";
    return false;
  }
  for (dom::element m : messages) {
    dom::object mo;
    dom::array content;
    if (m.get_object().get(mo) || mo.at_key("content").get_array().get(content)) {
      err = "Malformed input request: each message needs a 'content' array";
      return false;
    }
    std::string_view role = string_member(mo, "role").value_or("");
    if (role != "user" && role != "assistant") {
      err = "Malformed input request: message role must be user or assistant";
      return false;
    }
    req.last_text = blocks_text(content, req.text_bytes);
    // As in the OpenAI dialect, the answer follows a tool result when the conversation
    // ends with one: here, when the last block of the last message is a toolResult.
    req.after_tool_result = false;
    dom::element last;
    for (dom::element b : content) last = b;
    dom::object tr;
    dom::array tr_content;
    if (content.size() > 0 && !last.at_key("toolResult").get_object().get(tr)) {
      req.after_tool_result = true;
      std::size_t counted_already = 0;
      if (!tr.at_key("content").get_array().get(tr_content)) req.last_text = blocks_text(tr_content, counted_already);
      else req.last_text.clear();
    }
  }
  dom::array tools;
  if (!root.at_key("toolConfig").at_key("tools").get_array().get(tools)) {
    for (dom::element t : tools) {
      std::string_view name;
      if (!t.at_key("toolSpec").at_key("name").get_string().get(name)) req.tool_name.assign(name);
      break;
    }
  }
  return true;
}

std::string usage_json(std::int64_t in, std::int64_t out) {
  std::string u = R"({"inputTokens":)";
  append_json_number(u, in);
  u += R"(,"outputTokens":)";
  append_json_number(u, out);
  u += R"(,"totalTokens":)";
  append_json_number(u, in + out);
  u += R"(,"cacheReadInputTokens":0,"cacheWriteInputTokens":0})";
  return u;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string text;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) text += ' ';
    text += words[i];
  }
  return text;
}

route_response converse(const mock_request& req, const route_env& env) {
  route_response r;
  std::int64_t prompt = prompt_tokens(req);
  std::string& b = r.body;
  if (wants_tool_call(req)) {
    b = R"({"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_mock_)";
    b += std::to_string(env.sequence);
    b += R"(","name":)";
    append_json_string(b, req.tool_name);
    b += R"(,"input":)";
    b += tool_arguments(req);
    b += R"(}}]}},"stopReason":"tool_use","usage":)";
    b += usage_json(prompt, 9);  // as tool_call_body() counts it
  } else {
    auto words = completion_words(req, env.response_tokens);
    b = R"({"output":{"message":{"role":"assistant","content":[{"text":)";
    append_json_string(b, join_words(words));
    b += R"(}]}},"stopReason":"end_turn","usage":)";
    b += usage_json(prompt, static_cast<std::int64_t>(words.size()));
  }
  b += R"(,"metrics":{"latencyMs":0}})";
  return r;
}

std::string frame(std::string_view event, const std::string& payload) {
  return gp::eventstream::encode_message(
      {{":event-type", std::string(event)}, {":content-type", "application/json"}, {":message-type", "event"}},
      payload);
}

route_response converse_stream(const mock_request& req, const route_env& env) {
  route_response r;
  r.streamed = true;
  r.content_type = "application/vnd.amazon.eventstream";
  auto& c = r.chunks;
  std::int64_t prompt = prompt_tokens(req);
  std::int64_t completion = 0;
  c.push_back(frame("messageStart", R"({"role":"assistant"})"));
  if (wants_tool_call(req)) {
    std::string start = R"({"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"tooluse_mock_)";
    start += std::to_string(env.sequence);
    start += R"(","name":)";
    append_json_string(start, req.tool_name);
    start += "}}}";
    c.push_back(frame("contentBlockStart", start));
    // The input in two fragments of a JSON string, as providers split it.
    std::string args = tool_arguments(req);
    std::size_t half = args.size() / 2;
    for (std::string_view part : {std::string_view(args).substr(0, half), std::string_view(args).substr(half)}) {
      std::string d = R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":)";
      append_json_string(d, part);
      d += "}}}";
      c.push_back(frame("contentBlockDelta", d));
    }
    c.push_back(frame("contentBlockStop", R"({"contentBlockIndex":0})"));
    c.push_back(frame("messageStop", R"({"stopReason":"tool_use"})"));
    completion = 9;
  } else {
    auto words = completion_words(req, env.response_tokens);
    for (std::size_t i = 0; i < words.size(); ++i) {
      std::string piece = words[i];
      if (i + 1 < words.size()) piece += ' ';
      std::string d = R"({"contentBlockIndex":0,"delta":{"text":)";
      append_json_string(d, piece);
      d += "}}";
      c.push_back(frame("contentBlockDelta", d));
    }
    c.push_back(frame("contentBlockStop", R"({"contentBlockIndex":0})"));
    c.push_back(frame("messageStop", R"({"stopReason":"end_turn"})"));
    completion = static_cast<std::int64_t>(words.size());
  }
  c.push_back(frame("metadata", R"({"usage":)" + usage_json(prompt, completion) + R"(,"metrics":{"latencyMs":0}})"));
  // drop_after counts content chunks, as in the OpenAI dialect; messageStart comes first.
  if (req.drop_after >= 0) r.drop_after = req.drop_after + 1;
  // corrupt_after: a transmission error in a later frame (its message CRC no longer matches).
  if (req.corrupt_after >= 0) {
    auto i = static_cast<std::size_t>(req.corrupt_after) + 1;
    if (i < c.size() && !c[i].empty()) c[i].back() = static_cast<char>(c[i].back() ^ 0x5a);
  }
  return r;
}

// -------------------------------------------------------------- embeddings

/// The same unit vector as the OpenAI dialect's embeddings give `text`.
std::string vector_json(std::string_view text, int dims) {
  std::string out;
  append_float_array(out, embedding_vector(text, dims));
  return out;
}

route_response invoke(std::string_view model_id, const mock_request& fault_fields, const route_request& rq,
                      const route_env& env) {
  bool titan = model_id.find("amazon.titan-embed") != std::string_view::npos;
  bool cohere = model_id.find("cohere.embed") != std::string_view::npos;
  if (!titan && !cohere)
    return aws_error(400, "ValidationException",
                     "mock: InvokeModel supports only amazon.titan-embed* and cohere.embed* models", env);
  dom::element doc;
  dom::object root;
  if (auto ec = parse_json(outer_parser(), rq.body, doc))
    return aws_error(400, "ValidationException", std::string("Malformed input request: ") + simdjson::error_message(ec),
                     env);
  if (doc.get_object().get(root))
    return aws_error(400, "ValidationException", "Malformed input request: the body must be a JSON object", env);
  mock_request req;
  req.model.assign(model_id);
  apply_fault(fault_fields, req);
  int dims = env.embedding_dimensions;
  route_response r;
  if (titan) {
    std::string_view text;
    if (root.at_key("inputText").get_string().get(text))
      return aws_error(400, "ValidationException",
                       "Malformed input request: #: required key [inputText] not found", env);
    std::int64_t d = 0;
    if (!root.at_key("dimensions").get_int64().get(d)) {
      if (d < 1 || d > 8192) return aws_error(400, "ValidationException", "Malformed input request: dimensions", env);
      dims = static_cast<int>(d);
    }
    req.inputs.emplace_back(text);
    req.text_bytes = text.size();
    r.body = R"({"embedding":)";
    r.body += vector_json(text, dims);
    r.body += R"(,"inputTextTokenCount":)";
    append_json_number(r.body, prompt_tokens(req));
    r.body += '}';
  } else {
    dom::array texts;
    if (root.at_key("texts").get_array().get(texts) || texts.size() == 0)
      return aws_error(400, "ValidationException", "Malformed input request: #: required key [texts] not found", env);
    if (string_member(root, "input_type").value_or("").empty())
      return aws_error(400, "ValidationException",
                       "Malformed input request: #: required key [input_type] not found", env);
    r.body = R"({"id":"mock-)" + std::to_string(env.sequence) + R"(","embeddings":[)";
    std::string echo = "[";
    bool first = true;
    for (dom::element t : texts) {
      std::string_view s;
      if (t.get_string().get(s))
        return aws_error(400, "ValidationException", "Malformed input request: texts must be strings", env);
      if (!first) {
        r.body += ',';
        echo += ',';
      }
      first = false;
      r.body += vector_json(s, dims);
      append_json_string(echo, s);
    }
    echo += ']';
    r.body += R"(],"texts":)";
    r.body += echo;
    r.body += R"(,"response_type":"embeddings_floats"})";
  }
  return r;
}

/// "/model/{id}/{action}" -> (decoded id, action); nullopt for any other path.
std::optional<std::pair<std::string, std::string_view>> split_path(std::string_view path) {
  constexpr std::string_view prefix = "/model/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  std::string_view action = rest.substr(slash + 1);
  if (action != "converse" && action != "converse-stream" && action != "invoke") return std::nullopt;
  return std::make_pair(gp::uri_decode(rest.substr(0, slash)), action);
}

}  // namespace

std::optional<route_response> bedrock_route(const route_request& r, const route_env& env) {
  if (r.method != "POST") return std::nullopt;
  auto target = split_path(r.path);
  if (!target) return std::nullopt;
  const auto& [model_id, action] = *target;

  if (auto denied = check_auth(r, env)) return denied;

  std::optional<mock_request> fault;
  if (env.take_fault) fault = env.take_fault(model_id);
  mock_request fields;  // the fault's x_mock fields, empty without one
  if (fault) fields = *fault;

  route_response resp;
  if (fields.status != 0) {
    resp = fault_error(fields, env);
  } else if (action == "invoke") {
    resp = invoke(model_id, fields, r, env);
  } else {
    mock_request req;
    req.model = model_id;
    std::string err;
    if (!read_converse(r.body, req, err)) {
      resp = aws_error(400, "ValidationException", err, env);
    } else {
      apply_fault(fields, req);
      if (req.has_raw_body) {
        resp.body = req.raw_body;  // a programmed (possibly broken) answer
        if (!req.content_type.empty()) resp.content_type = req.content_type;
      } else {
        resp = action == "converse" ? converse(req, env) : converse_stream(req, env);
      }
    }
  }
  if (fault)
    for (auto& h : fault->headers) resp.headers.push_back(h);
  if (resp.status < 400) resp.headers.emplace_back("x-amzn-RequestId", "mock-" + std::to_string(env.sequence));
  return resp;
}

gw::providers::sigv4_check verify_with_store(const route_request& r, const route_env& env, std::string_view service) {
  namespace gp = gw::providers;
  gp::aws_key_lookup lookup = [&env](std::string_view akid) -> std::optional<gp::aws_credentials> {
    if (!env.creds) return std::nullopt;
    auto c = env.creds->find_aws(akid);
    if (!c) return std::nullopt;
    gp::aws_credentials out;
    out.access_key_id = c->access_key_id;
    out.secret_access_key = c->secret_access_key;
    out.session_token = c->session_token;
    out.expiration = c->expires;
    return out;
  };
  static const std::vector<std::pair<std::string, std::string>> no_headers;
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(env.now_unix));
  return gp::verify_sigv4(r.method, r.path, r.query, r.headers ? *r.headers : no_headers, r.body, lookup, now,
                          env.clock_skew, service);
}

}  // namespace gw::mock
