#include "gw/providers/completion_bridge.hpp"

#include <simdjson.h>

#include <string>
#include <utility>

#include "gw/core/json_writer.hpp"
#include "gw/providers/json_dom.hpp"

namespace gw::providers {

namespace dom = simdjson::dom;

namespace {

using namespace json_dom;

provider_error bad_request(std::string message, std::string param, std::string code = "invalid_request") {
  return provider_error{400, "invalid_request_error", std::move(code), std::move(message), std::move(param)};
}

/// A completions parameter chat cannot express: the client's to drop, not ours to ignore.
provider_error cannot_take(std::string_view provider, std::string_view param, std::string_view why) {
  std::string m = std::string(provider) + " deployments cannot take '" + std::string(param) +
                  "' on /v1/completions: the gateway serves text completions there through chat, which has ";
  m += why;
  m += '.';
  return bad_request(std::move(m), std::string(param), "unsupported_parameter");
}

provider_error wrong_type(std::string_view param, std::string_view expected) {
  return bad_request("Invalid type for '" + std::string(param) + "': expected " + std::string(expected) + ".",
                     std::string(param), "invalid_type");
}

/// Members of a chat request that a completions request does not have: copying them
/// would let a completion call tools or carry a conversation.
bool chat_only(std::string_view key) {
  return key == "messages" || key == "tools" || key == "tool_choice" || key == "functions" || key == "function_call" ||
         key == "response_format";
}

/// The prompt's one text, or the error for what chat cannot take.
std::optional<provider_error> read_prompt(dom::element v, std::string_view provider, std::string_view& text) {
  if (v.is_string()) {
    text = v.get_string().value_unsafe();
    return std::nullopt;
  }
  dom::array a;
  if (v.get_array().get(a)) return wrong_type("prompt", "a string or an array of one string");
  if (a.size() == 0) return bad_request("Invalid 'prompt': empty array.", "prompt");
  bool tokens = false, other = false;
  for (dom::element e : a) {
    if (is_number(e) || e.is_array())
      tokens = true;
    else if (!e.is_string())
      other = true;
  }
  if (tokens) return cannot_take(provider, "prompt", "no token-id prompts (send the text)");
  if (other) return wrong_type("prompt", "a string or an array of one string");
  if (a.size() > 1)
    return cannot_take(
        provider, "prompt",
        "one prompt per request (this array has " + std::to_string(a.size()) + "; send one request per prompt)");
  text = a.at(0).get_string().value_unsafe();
  return std::nullopt;
}

/// A completions-only parameter: nullopt when its value asks for nothing chat lacks.
std::optional<provider_error> check_completions_only(std::string_view key, dom::element v, std::string_view provider) {
  if (v.is_null()) return std::nullopt;
  if (key == "suffix") {
    std::string_view s;
    if (!v.get_string().get(s) && s.empty()) return std::nullopt;
    return cannot_take(provider, key, "no text after the insertion point");
  }
  if (key == "echo") {
    bool b = false;
    if (v.get_bool().get(b)) return wrong_type(key, "a boolean");
    if (b) return cannot_take(provider, key, "no echo of the prompt");
    return std::nullopt;
  }
  if (key == "best_of") {
    std::int64_t n = 0;
    if (v.get_int64().get(n)) return wrong_type(key, "an integer");
    if (n < 1) return bad_request("Invalid 'best_of': expected an integer >= 1.", "best_of");
    if (n > 1) return cannot_take(provider, key, "no server-side best-of sampling");
    return std::nullopt;
  }
  // logprobs: an integer here (0 still asks for the sampled tokens' log probabilities);
  // false asks for nothing.
  bool b = true;
  if (!v.get_bool().get(b) && !b) return std::nullopt;
  return cannot_take(provider, key, "no log probabilities from this provider");
}

}  // namespace

chat_request_result completion_to_chat(std::string_view body, std::string_view provider) {
  chat_request_result r;
  dom::element doc;
  dom::object root;
  if (auto ec = parse_json(outer_parser(), body, doc)) {
    r.error =
        bad_request(std::string("We could not parse the JSON body of your request: ") + simdjson::error_message(ec), "",
                    "invalid_json");
    return r;
  }
  if (doc.get_object().get(root)) {
    r.error = bad_request("The request body must be a JSON object.", "", "invalid_json");
    return r;
  }
  std::string out = "{";
  bool has_prompt = false;
  for (auto field : root) {
    std::string_view key = field.key;
    dom::element v = field.value;
    std::optional<provider_error> e;
    if (key == "prompt") {
      if (v.is_null()) continue;  // as if absent: reported below
      if (has_prompt) {
        r.error = bad_request("'prompt' appears more than once.", "prompt");
        return r;
      }
      std::string_view text;
      if ((e = read_prompt(v, provider, text))) {
        r.error = std::move(e);
        return r;
      }
      if (out.size() > 1) out += ',';
      out += R"("messages":[{"role":"user","content":)";
      append_json_string(out, text);
      out += "}]";
      has_prompt = true;
      continue;
    }
    if (key == "suffix" || key == "echo" || key == "best_of" || key == "logprobs") {
      // Not copied: chat has no such member ("logprobs" is a boolean there).
      if ((e = check_completions_only(key, v, provider))) {
        r.error = std::move(e);
        return r;
      }
      continue;
    }
    if (chat_only(key)) {
      if (v.is_null()) continue;
      r.error =
          bad_request("'" + std::string(key) + "' is not a parameter of /v1/completions; use /v1/chat/completions.",
                      std::string(key), "unsupported_parameter");
      return r;
    }
    if (out.size() > 1) out += ',';
    append_json_string(out, key);
    out += ':';
    out += simdjson::minify(v);
  }
  if (!has_prompt) {
    r.error = bad_request("Missing required parameter: 'prompt'.", "prompt", "missing_parameter");
    return r;
  }
  out += '}';
  r.body = std::move(out);
  return r;
}

translated_response completion_from_chat(translated_response chat) {
  if (chat.status < 200 || chat.status > 299) return chat;
  auto unreadable = [&](std::string_view what) {
    translated_response r;
    r.status = 502;
    r.body = provider_error{502, "api_error", "bad_response",
                            "The provider's answer could not be turned into a text completion: " + std::string(what)}
                 .json();
    return r;
  };
  dom::element doc;
  dom::object root;
  dom::array choices;
  if (parse_json(outer_parser(), chat.body, doc) || doc.get_object().get(root)) return unreadable("not a JSON object");
  if (root.at_key("choices").get_array().get(choices)) return unreadable("no 'choices'");
  std::string out = "{";
  if (auto id = member(root, "id")) {
    out += R"("id":)";
    out += simdjson::minify(*id);
    out += ',';
  }
  out += R"("object":"text_completion")";
  for (std::string_view key : {"created", "model"}) {
    if (auto v = member(root, key)) {
      out += ',';
      append_json_string(out, key);
      out += ':';
      out += simdjson::minify(*v);
    }
  }
  out += R"(,"choices":[)";
  std::int64_t position = 0;
  for (dom::element c : choices) {
    dom::object co;
    if (c.get_object().get(co)) return unreadable("a choice that is not an object");
    std::string_view text;
    dom::object message;
    if (auto m = member(co, "message"); m && !m->get_object().get(message))
      text = string_member(message, "content").value_or("");
    if (position) out += ',';
    out += R"({"text":)";
    append_json_string(out, text);
    out += R"(,"index":)";
    append_json_number(out, int_member(co, "index", position));
    out += R"(,"logprobs":null,"finish_reason":)";
    if (auto f = string_member(co, "finish_reason"))
      append_json_string(out, *f);
    else
      out += "null";
    out += '}';
    ++position;
  }
  out += ']';
  if (auto u = member(root, "usage")) {
    out += R"(,"usage":)";
    out += simdjson::minify(*u);
  }
  out += '}';
  chat.body = std::move(out);
  return chat;
}

namespace {

/// See completion_stream_translator().
class completion_stream final : public stream_translator {
 public:
  explicit completion_stream(std::unique_ptr<stream_translator> chat) : chat_(std::move(chat)) {}

  std::optional<provider_error> feed(std::string_view bytes, std::string& out) override {
    auto e = chat_->feed(bytes, pending_);
    rewrite(out, false);  // what came before an error still reaches the client
    return e;
  }

  std::optional<provider_error> finish(std::string& out) override {
    auto e = chat_->finish(pending_);
    rewrite(out, true);
    return e;
  }

  const usage& tokens() const noexcept override { return chat_->tokens(); }

 private:
  /// Rewrites the whole events ("...\n\n") in pending_. The wrapped translators emit
  /// whole events only, but a tail is kept for the next call all the same (passed
  /// as it is at the end).
  void rewrite(std::string& out, bool last) {
    std::size_t start = 0;
    for (;;) {
      auto end = pending_.find("\n\n", start);
      if (end == std::string::npos) break;
      rewrite_event(std::string_view(pending_).substr(start, end + 2 - start), out);
      start = end + 2;
    }
    pending_.erase(0, start);
    if (last) {
      out += pending_;
      pending_.clear();
    }
  }

  static void rewrite_event(std::string_view event, std::string& out) {
    constexpr std::string_view prefix = "data: ";
    std::string_view payload = event.substr(0, event.size() - 2);
    // One "data: {...}" line is a chat chunk; [DONE], comments and anything else pass.
    if (payload.substr(0, prefix.size()) != prefix || payload.find('\n') != std::string_view::npos) {
      out += event;
      return;
    }
    payload.remove_prefix(prefix.size());
    dom::element doc;
    dom::object root;
    dom::array choices;
    if (payload.empty() || payload.front() != '{' || parse_json(outer_parser(), payload, doc) ||
        doc.get_object().get(root) || member(root, "error") || root.at_key("choices").get_array().get(choices)) {
      out += event;
      return;
    }
    std::string chunk = "data: {";
    bool kept_any = false;
    for (auto field : root) {
      if (chunk.size() > 7) chunk += ',';
      append_json_string(chunk, field.key);
      chunk += ':';
      if (field.key == "object") {
        chunk += R"("text_completion")";
      } else if (field.key == "choices") {
        chunk += '[';
        std::int64_t position = 0;
        for (dom::element c : choices) {
          dom::object co, delta;
          if (c.get_object().get(co)) continue;
          std::string_view text;
          if (auto d = member(co, "delta"); d && !d->get_object().get(delta))
            text = string_member(delta, "content").value_or("");
          auto finish = string_member(co, "finish_reason");
          std::int64_t index = int_member(co, "index", position++);
          if (text.empty() && !finish) continue;  // the role chunk, reasoning: nothing for a completion
          if (kept_any) chunk += ',';
          kept_any = true;
          chunk += R"({"text":)";
          append_json_string(chunk, text);
          chunk += R"(,"index":)";
          append_json_number(chunk, index);
          chunk += R"(,"logprobs":null,"finish_reason":)";
          if (finish)
            append_json_string(chunk, *finish);
          else
            chunk += "null";
          chunk += '}';
        }
        chunk += ']';
      } else {
        chunk += simdjson::minify(field.value);
      }
    }
    if (!kept_any && choices.size() > 0) return;  // every choice dropped: no event
    chunk += "}\n\n";
    out += chunk;
  }

  std::unique_ptr<stream_translator> chat_;
  std::string pending_;  ///< the wrapped translator's events not yet rewritten
};

}  // namespace

std::unique_ptr<stream_translator> completion_stream_translator(std::unique_ptr<stream_translator> chat) {
  return std::make_unique<completion_stream>(std::move(chat));
}

}  // namespace gw::providers
