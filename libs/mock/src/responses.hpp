#pragma once
// The mock provider's request reading and response bodies: pure functions that append
// to caller-owned strings, so a connection reuses its buffers from request to request.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gw::mock {

enum class kind { chat, completion, embedding };

/// What the mock needs from a request, x_mock included. reset() keeps the capacity.
struct mock_request {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::string last_text;         // last message's text (chat) or the last prompt (completion)
  std::size_t text_bytes = 0;    // all prompt text, for prompt_tokens (a token id counts 4)
  std::string input_data;        // embeddings: the inputs' text, back to back ...
  std::vector<std::pair<std::size_t, std::size_t>> inputs;  // ... as (offset, length)
  int dimensions = 0;            // 0 = the server's default
  bool base64 = false;
  // x_mock
  int status = 0;
  std::string retry_after;
  bool has_raw_body = false;
  std::string raw_body;
  std::string content_type;
  std::string extra_headers;     // "name: value\r\n" lines, validated
  int latency_ms = -1;           // -1 = the server's option
  bool hang = false;
  int tokens = -1;               // -1 = the server's option
  double tokens_per_second = -1; // < 0 = the server's option
  int drop_after = -1;           // -1 = no drop
  bool echo = false;

  void reset();
  std::string_view input(std::size_t i) const { return std::string_view(input_data).substr(inputs[i].first, inputs[i].second); }
};

/// Parses `body`, which must be followed by at least SIMDJSON_PADDING readable bytes
/// (`capacity` counts them). The whole document is validated. False with `err` set on
/// invalid JSON or a field of the wrong type.
bool parse_request(const char* body, std::size_t size, std::size_t capacity, kind k, mock_request& out,
                   std::string& err);
/// Same, copying `body` into a padded buffer first.
bool parse_request(std::string_view body, kind k, mock_request& out, std::string& err);

/// The completion: either `n` generated words, or (echo) the pieces of a text, each a
/// word with the whitespace before the next one, so that the pieces add up to the text.
class completion_text {
 public:
  void generate(int n);
  void echo(std::string_view text);
  std::size_t count() const noexcept { return echo_ ? starts_.size() : static_cast<std::size_t>(n_); }
  /// Piece i as streamed ("word " / last "word").
  std::string_view piece(std::size_t i) const noexcept;
  /// The whole text as a JSON string.
  void append_json(std::string& out) const;

 private:
  bool echo_ = false;
  int n_ = 0;
  std::string_view text_;
  std::vector<std::uint32_t> starts_;
};

std::int64_t prompt_tokens(const mock_request& r);

void append_chat_body(std::string& out, std::string_view id, std::int64_t created, std::string_view model,
                      const completion_text& text, std::int64_t prompt);
void append_completion_body(std::string& out, std::string_view id, std::int64_t created, std::string_view model,
                            const completion_text& text, std::int64_t prompt);

/// SSE events for a chat or completion stream. Event i, in order: (chat) the role chunk,
/// one per piece, the finish chunk, (include_usage) the usage chunk, then [DONE].
class stream_events {
 public:
  void begin(kind k, std::string_view id, std::int64_t created, std::string_view model, bool include_usage,
             std::int64_t prompt, const completion_text* text);
  std::size_t count() const noexcept;
  /// Index of the first content event, and one past the last.
  std::size_t first_content() const noexcept { return k_ == kind::chat ? 1 : 0; }
  std::size_t end_content() const noexcept { return first_content() + text_->count(); }
  /// Appends "data: ...\n\n" for event i.
  void append(std::string& out, std::size_t i) const;

 private:
  kind k_ = kind::chat;
  std::string prefix_;          // the chunk up to and including "choices":[
  std::size_t head_len_ = 0;    // the chunk up to "choices" (for the usage chunk)
  bool include_usage_ = false;
  std::int64_t prompt_ = 0;
  const completion_text* text_ = nullptr;
};

void append_embeddings_body(std::string& out, const mock_request& r, int default_dims);
std::string models_body(const std::vector<std::string>& models);
/// {"error":{"message":"mock error <status>","type":"mock_error","param":null,"code":"<status>"}}
std::string error_body(int status);
std::string error_body(std::string_view message, std::string_view type, std::string_view code);

/// Standard base64 with padding.
void base64_append(std::string& out, const unsigned char* p, std::size_t n);

}  // namespace gw::mock
