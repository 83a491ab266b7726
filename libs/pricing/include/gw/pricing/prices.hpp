#pragma once
/// Model prices and the cost of a request, in picodollars (gw::keys::money).
/// A built-in table for the commonly used OpenAI, Azure OpenAI, AWS Bedrock and
/// Anthropic models; a price file in LiteLLM's model_prices_and_context_window.json
/// format overrides or extends it; a deployment's model_info overrides both.
/// Immutable after construction: read by every io thread without locks.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gw/keys/model.hpp"

namespace gw::pricing {

/// Prices of one model, per token, in picodollars (exact: 2.5 USD per million tokens
/// = 2,500,000 pico per token).
struct model_price {
  keys::money input_per_token = 0;
  keys::money output_per_token = 0;
  std::optional<keys::money> cache_read_per_token;      ///< none: input price
  std::optional<keys::money> cache_creation_per_token;  ///< none: input price
  std::int64_t max_input_tokens = 0;   ///< 0: unknown
  std::int64_t max_output_tokens = 0;  ///< 0: unknown
};

namespace detail {
/// Transparent string hash: the table is looked up by std::string_view without building a
/// std::string (find() runs once per request and must not allocate).
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using price_map = std::unordered_map<std::string, model_price, string_hash, std::equal_to<>>;
}  // namespace detail

/// Token counts of one request.
struct token_usage {
  std::int64_t prompt_tokens = 0;      ///< all input tokens, cached ones included
  std::int64_t completion_tokens = 0;
  std::int64_t cache_read_tokens = 0;      ///< of prompt_tokens, read from cache
  std::int64_t cache_creation_tokens = 0;  ///< of prompt_tokens, written to cache
};

/// cost = (prompt - cache_read - cache_creation) * input + cache_read * cache_read_price
///      + cache_creation * cache_creation_price + completion * output. Saturates.
keys::money cost_of(const model_price& p, const token_usage& u) noexcept;

class price_table {
 public:
  /// The built-in table only.
  price_table();

  /// Merges a LiteLLM-format price file: a JSON object mapping model names to objects
  /// with input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
  /// cache_creation_input_token_cost, max_input_tokens, max_output_tokens (numbers in
  /// USD per token; other fields ignored; "sample_spec" skipped). false with `err`
  /// (naming the entry) if the file cannot be read or is not such an object.
  /// Details: numbers are converted from their JSON text exactly (never through double);
  /// null fields count as absent. An entry for a model already in the table replaces only
  /// the fields it gives; a new entry is added only if it gives input_cost_per_token or
  /// output_cost_per_token (entries priced per image, second or query are skipped). On
  /// error nothing is merged.
  bool load_file(const std::string& path, std::string& err);
  bool load_json(std::string_view json, std::string& err);

  /// Looks up a model as written in litellm_params.model ("openai/gpt-4o",
  /// "azure/my-deployment", "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
  /// "anthropic/claude-3-5-haiku-latest", "gpt-4o-mini-2024-07-18"): tries the whole
  /// name, then without the provider prefix, then without a Bedrock region prefix
  /// (us., eu., apac., global.), then without a trailing date or version suffix
  /// (-2024-07-18, -20241022, -v1:0, @20241022, -latest). nullptr if unknown.
  const model_price* find(std::string_view model) const noexcept;

  std::size_t size() const noexcept { return prices_.size(); }

 private:
  detail::price_map prices_;
};

/// Per-token prices from a deployment's model_info (input_cost_per_token,
/// output_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost,
/// max_output_tokens, as text in USD per token, e.g. "0.0000025" or "2.5e-06") applied
/// over `base` (which may be null). Returns nullopt if neither gives input and output
/// prices; false in `ok` with `err` if a value is not a number >= 0.
/// Also reads max_input_tokens. Other keys are ignored. With no base, both
/// input_cost_per_token and output_cost_per_token must be given.
std::optional<model_price> with_overrides(const model_price* base,
                                          const std::map<std::string, std::string>& model_info,
                                          bool& ok, std::string& err);

/// USD per token as text ("2.5e-06", "0.0000025", "0") to exact picodollars per token,
/// rounded to the nearest; false if not a non-negative number.
bool parse_usd(std::string_view text, keys::money& out) noexcept;

}  // namespace gw::pricing
