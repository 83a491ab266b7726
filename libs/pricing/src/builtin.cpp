// The built-in price table: public list prices of the commonly used OpenAI, Azure OpenAI,
// Anthropic and AWS Bedrock models (standard tier, pay as you go, no batch discount).
//
// Prices are written as decimal text in USD per million tokens, as the providers publish
// them, and converted exactly: "2.50" per 1M tokens = 2.5e-6 USD per token = 2,500,000
// picodollars per token. The conversion is checked at compile time (static_assert below),
// so a typo in the table fails the build instead of pricing a model at 0.
//
// Sources: platform.openai.com/docs/pricing, anthropic.com/pricing (docs "Pricing"),
// aws.amazon.com/bedrock/pricing, cross-checked against LiteLLM's
// model_prices_and_context_window.json. Where they differ the provider's current list
// price wins (e.g. Llama 3.1 70B on Bedrock is 0.72, LiteLLM still has 0.99).
// Tiered prices (Anthropic's 1M-context tier above 200k input tokens, Bedrock's regional
// surcharge on the newest models, OpenAI's flex/priority tiers) are not modelled: the table
// holds the standard price and the standard 200k/272k context.

#include "builtin.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "decimal.hpp"

namespace gw::pricing::detail {
namespace {

struct row {
  std::string_view name;
  std::string_view input;        ///< USD per million input tokens
  std::string_view output;       ///< USD per million output tokens
  std::string_view cache_read;   ///< USD per million cached input tokens; "": input price
  std::string_view cache_write;  ///< USD per million tokens written to cache; "": input price
  std::int64_t max_input_tokens;
  std::int64_t max_output_tokens;
};

/// USD per million tokens -> picodollars per token: 10^12 / 10^6 = scale by 10^6.
constexpr int per_million_scale = 6;

// OpenAI: cache_read is OpenAI's "cached input" price; OpenAI does not charge for writing
// the cache, so cache_write stays empty (= input price, which is what a non-cached token
// costs). Every row here is also added as "azure/<name>": Azure OpenAI uses the OpenAI
// model names as base models and its global-deployment list prices are OpenAI's.
constexpr row openai_rows[] = {
    // GPT-4o: the 2024-05-13 snapshot kept the launch price and a 4k output limit.
    {"gpt-4o", "2.50", "10.00", "1.25", "", 128000, 16384},
    {"gpt-4o-2024-11-20", "2.50", "10.00", "1.25", "", 128000, 16384},
    {"gpt-4o-2024-08-06", "2.50", "10.00", "1.25", "", 128000, 16384},
    {"gpt-4o-2024-05-13", "5.00", "15.00", "", "", 128000, 4096},
    {"chatgpt-4o-latest", "5.00", "15.00", "", "", 128000, 4096},
    {"gpt-4o-mini", "0.15", "0.60", "0.075", "", 128000, 16384},
    {"gpt-4o-mini-2024-07-18", "0.15", "0.60", "0.075", "", 128000, 16384},
    // GPT-4.1 family: 1,047,576-token context.
    {"gpt-4.1", "2.00", "8.00", "0.50", "", 1047576, 32768},
    {"gpt-4.1-2025-04-14", "2.00", "8.00", "0.50", "", 1047576, 32768},
    {"gpt-4.1-mini", "0.40", "1.60", "0.10", "", 1047576, 32768},
    {"gpt-4.1-mini-2025-04-14", "0.40", "1.60", "0.10", "", 1047576, 32768},
    {"gpt-4.1-nano", "0.10", "0.40", "0.025", "", 1047576, 32768},
    {"gpt-4.1-nano-2025-04-14", "0.10", "0.40", "0.025", "", 1047576, 32768},
    // GPT-4 Turbo and GPT-4 (no prompt caching).
    {"gpt-4-turbo", "10.00", "30.00", "", "", 128000, 4096},
    {"gpt-4-turbo-2024-04-09", "10.00", "30.00", "", "", 128000, 4096},
    {"gpt-4-turbo-preview", "10.00", "30.00", "", "", 128000, 4096},
    {"gpt-4-0125-preview", "10.00", "30.00", "", "", 128000, 4096},
    {"gpt-4-1106-preview", "10.00", "30.00", "", "", 128000, 4096},
    {"gpt-4", "30.00", "60.00", "", "", 8192, 4096},
    {"gpt-4-0613", "30.00", "60.00", "", "", 8192, 4096},
    {"gpt-4-0314", "30.00", "60.00", "", "", 8192, 4096},
    {"gpt-4-32k", "60.00", "120.00", "", "", 32768, 4096},
    // GPT-3.5 Turbo: the alias points at 0125.
    {"gpt-3.5-turbo", "0.50", "1.50", "", "", 16385, 4096},
    {"gpt-3.5-turbo-0125", "0.50", "1.50", "", "", 16385, 4096},
    {"gpt-3.5-turbo-1106", "1.00", "2.00", "", "", 16385, 4096},
    {"gpt-3.5-turbo-16k", "3.00", "4.00", "", "", 16385, 4096},
    // Reasoning models (reasoning tokens are billed as output tokens).
    {"o1", "15.00", "60.00", "7.50", "", 200000, 100000},
    {"o1-2024-12-17", "15.00", "60.00", "7.50", "", 200000, 100000},
    {"o1-preview", "15.00", "60.00", "7.50", "", 128000, 32768},
    {"o1-preview-2024-09-12", "15.00", "60.00", "7.50", "", 128000, 32768},
    {"o1-mini", "1.10", "4.40", "0.55", "", 128000, 65536},
    {"o1-mini-2024-09-12", "1.10", "4.40", "0.55", "", 128000, 65536},
    {"o3", "2.00", "8.00", "0.50", "", 200000, 100000},
    {"o3-2025-04-16", "2.00", "8.00", "0.50", "", 200000, 100000},
    {"o3-mini", "1.10", "4.40", "0.55", "", 200000, 100000},
    {"o3-mini-2025-01-31", "1.10", "4.40", "0.55", "", 200000, 100000},
    {"o4-mini", "1.10", "4.40", "0.275", "", 200000, 100000},
    {"o4-mini-2025-04-16", "1.10", "4.40", "0.275", "", 200000, 100000},
    // GPT-5 family: 400k context = 272k input + 128k output.
    {"gpt-5", "1.25", "10.00", "0.125", "", 272000, 128000},
    {"gpt-5-2025-08-07", "1.25", "10.00", "0.125", "", 272000, 128000},
    {"gpt-5-mini", "0.25", "2.00", "0.025", "", 272000, 128000},
    {"gpt-5-mini-2025-08-07", "0.25", "2.00", "0.025", "", 272000, 128000},
    {"gpt-5-nano", "0.05", "0.40", "0.005", "", 272000, 128000},
    {"gpt-5-nano-2025-08-07", "0.05", "0.40", "0.005", "", 272000, 128000},
    {"gpt-5-chat-latest", "1.25", "10.00", "0.125", "", 128000, 16384},
    // Embeddings: input only.
    {"text-embedding-3-small", "0.02", "0", "", "", 8191, 0},
    {"text-embedding-3-large", "0.13", "0", "", "", 8191, 0},
    {"text-embedding-ada-002", "0.10", "0", "", "", 8191, 0},
};

// Azure's own spelling of GPT-3.5 Turbo (the OpenAI spellings come from openai_rows).
constexpr row azure_rows[] = {
    {"azure/gpt-35-turbo", "0.50", "1.50", "", "", 16385, 4096},
    {"azure/gpt-35-turbo-0125", "0.50", "1.50", "", "", 16385, 4096},
    {"azure/gpt-35-turbo-1106", "1.00", "2.00", "", "", 16385, 4096},
    {"azure/gpt-35-turbo-16k", "3.00", "4.00", "", "", 16385, 4096},
};

// Anthropic API: cache_read = 0.1 x input ("cache hits"), cache_write = 1.25 x input
// (5-minute cache writes). Claude 3 Haiku is the exception Anthropic publishes: writes
// 0.30 (1.2 x) and hits 0.03 per million. The undated names are Anthropic's aliases
// ("claude-3-5-sonnet-latest" finds "claude-3-5-sonnet" once "-latest" is stripped).
constexpr row other_rows[] = {
    {"claude-3-haiku-20240307", "0.25", "1.25", "0.03", "0.30", 200000, 4096},
    {"claude-3-haiku", "0.25", "1.25", "0.03", "0.30", 200000, 4096},
    {"claude-3-5-haiku-20241022", "0.80", "4.00", "0.08", "1.00", 200000, 8192},
    {"claude-3-5-haiku", "0.80", "4.00", "0.08", "1.00", 200000, 8192},
    {"claude-3-5-sonnet-20241022", "3.00", "15.00", "0.30", "3.75", 200000, 8192},
    {"claude-3-5-sonnet-20240620", "3.00", "15.00", "0.30", "3.75", 200000, 8192},
    {"claude-3-5-sonnet", "3.00", "15.00", "0.30", "3.75", 200000, 8192},
    {"claude-3-7-sonnet-20250219", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-3-7-sonnet", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-sonnet-4-20250514", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-sonnet-4", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-sonnet-4-0", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-4-sonnet-20250514", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-sonnet-4-5-20250929", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-sonnet-4-5", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"claude-haiku-4-5-20251001", "1.00", "5.00", "0.10", "1.25", 200000, 64000},
    {"claude-haiku-4-5", "1.00", "5.00", "0.10", "1.25", 200000, 64000},
    {"claude-opus-4-20250514", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-opus-4", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-opus-4-0", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-4-opus-20250514", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-opus-4-1-20250805", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-opus-4-1", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"claude-opus-4-5-20251101", "5.00", "25.00", "0.50", "6.25", 200000, 64000},
    {"claude-opus-4-5", "5.00", "25.00", "0.50", "6.25", 200000, 64000},
    {"claude-3-opus-20240229", "15.00", "75.00", "1.50", "18.75", 200000, 4096},
    {"claude-3-opus", "15.00", "75.00", "1.50", "18.75", 200000, 4096},

    // Anthropic on Bedrock: the same prices. Bedrock offers prompt caching (same 0.1x /
    // 1.25x) for Claude 3.5 Haiku, 3.5 Sonnet v2 and the 3.7/4.x models, not for Claude 3
    // Haiku, 3 Opus and 3.5 Sonnet v1 (their rows leave the cache prices empty).
    // Cross-region ids (us., eu., apac., global.) are found by stripping the prefix.
    {"anthropic.claude-3-haiku-20240307-v1:0", "0.25", "1.25", "", "", 200000, 4096},
    {"anthropic.claude-3-5-haiku-20241022-v1:0", "0.80", "4.00", "0.08", "1.00", 200000, 8192},
    {"anthropic.claude-3-5-sonnet-20240620-v1:0", "3.00", "15.00", "", "", 200000, 8192},
    {"anthropic.claude-3-5-sonnet-20241022-v2:0", "3.00", "15.00", "0.30", "3.75", 200000, 8192},
    {"anthropic.claude-3-7-sonnet-20250219-v1:0", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"anthropic.claude-sonnet-4-20250514-v1:0", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"anthropic.claude-sonnet-4-5-20250929-v1:0", "3.00", "15.00", "0.30", "3.75", 200000, 64000},
    {"anthropic.claude-haiku-4-5-20251001-v1:0", "1.00", "5.00", "0.10", "1.25", 200000, 64000},
    {"anthropic.claude-opus-4-20250514-v1:0", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"anthropic.claude-opus-4-1-20250805-v1:0", "15.00", "75.00", "1.50", "18.75", 200000, 32000},
    {"anthropic.claude-3-opus-20240229-v1:0", "15.00", "75.00", "", "", 200000, 4096},

    // Amazon Titan and Nova (Nova: cached reads at 0.25x, cache writes at the input price).
    {"amazon.titan-text-express-v1", "0.20", "0.60", "", "", 8192, 8192},
    {"amazon.titan-text-lite-v1", "0.15", "0.20", "", "", 4096, 4096},
    {"amazon.titan-text-premier-v1:0", "0.50", "1.50", "", "", 32000, 3072},
    {"amazon.titan-embed-text-v1", "0.10", "0", "", "", 8192, 0},
    {"amazon.titan-embed-text-v2:0", "0.02", "0", "", "", 8192, 0},
    {"amazon.nova-micro-v1:0", "0.035", "0.14", "0.00875", "", 128000, 10000},
    {"amazon.nova-lite-v1:0", "0.06", "0.24", "0.015", "", 300000, 10000},
    {"amazon.nova-pro-v1:0", "0.80", "3.20", "0.20", "", 300000, 10000},

    // Meta Llama 3.1 on Bedrock.
    {"meta.llama3-1-8b-instruct-v1:0", "0.22", "0.22", "", "", 128000, 2048},
    {"meta.llama3-1-70b-instruct-v1:0", "0.72", "0.72", "", "", 128000, 2048},
    {"meta.llama3-1-405b-instruct-v1:0", "2.40", "2.40", "", "", 128000, 4096},

    // Mistral on Bedrock.
    {"mistral.mistral-large-2402-v1:0", "8.00", "24.00", "", "", 32000, 8191},
    {"mistral.mistral-7b-instruct-v0:2", "0.15", "0.20", "", "", 32000, 8191},
    {"mistral.mixtral-8x7b-instruct-v0:1", "0.45", "0.70", "", "", 32000, 8191},

    // Cohere embeddings on Bedrock.
    {"cohere.embed-english-v3", "0.10", "0", "", "", 512, 0},
    {"cohere.embed-multilingual-v3", "0.10", "0", "", "", 512, 0},
};

constexpr std::string_view azure_prefix = "azure/";

constexpr bool valid_price(std::string_view text, bool optional) {
  std::int64_t ignored = 0;
  if (text.empty()) return optional;
  return parse_scaled_decimal(text, per_million_scale, ignored);
}

template <std::size_t N>
constexpr bool valid_rows(const row (&rows)[N]) {
  for (const row& r : rows) {
    if (r.name.empty() || !valid_price(r.input, false) || !valid_price(r.output, false) ||
        !valid_price(r.cache_read, true) || !valid_price(r.cache_write, true) || r.max_input_tokens < 0 ||
        r.max_output_tokens < 0) {
      return false;
    }
  }
  return true;
}

template <std::size_t N>
constexpr bool unique_names(const row (&rows)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = i + 1; j < N; ++j) {
      if (rows[i].name == rows[j].name) return false;
    }
  }
  return true;
}

/// The "azure/" copies of openai_rows must not collide with azure_rows, and no other row
/// may carry a provider prefix (find() would not need it and the copy would be silent).
constexpr bool no_cross_collisions() {
  for (const row& a : azure_rows) {
    if (a.name.substr(0, azure_prefix.size()) != azure_prefix) return false;
    for (const row& o : openai_rows) {
      if (a.name.substr(azure_prefix.size()) == o.name) return false;
    }
  }
  for (const row& o : openai_rows) {
    for (const row& x : other_rows) {
      if (o.name == x.name) return false;
    }
  }
  for (const row& x : other_rows) {
    if (x.name.find('/') != std::string_view::npos) return false;
  }
  return true;
}

static_assert(valid_rows(openai_rows) && valid_rows(azure_rows) && valid_rows(other_rows),
              "a built-in price is not a non-negative decimal");
static_assert(unique_names(openai_rows) && unique_names(azure_rows) && unique_names(other_rows),
              "a built-in model is listed twice");
static_assert(no_cross_collisions(), "a built-in model name collides across tables");

/// Converts checked decimal text (the static_asserts above guarantee it parses).
keys::money per_token(std::string_view usd_per_million) {
  std::int64_t pico = 0;
  parse_scaled_decimal(usd_per_million, per_million_scale, pico);
  return pico;
}

model_price to_price(const row& r) {
  model_price p;
  p.input_per_token = per_token(r.input);
  p.output_per_token = per_token(r.output);
  if (!r.cache_read.empty()) p.cache_read_per_token = per_token(r.cache_read);
  if (!r.cache_write.empty()) p.cache_creation_per_token = per_token(r.cache_write);
  p.max_input_tokens = r.max_input_tokens;
  p.max_output_tokens = r.max_output_tokens;
  return p;
}

}  // namespace

void add_builtin_prices(price_map& out) {
  out.reserve(out.size() + 2 * std::size(openai_rows) + std::size(azure_rows) + std::size(other_rows));
  for (const row& r : openai_rows) {
    const model_price p = to_price(r);
    out.insert_or_assign(std::string(r.name), p);
    std::string azure_name;
    azure_name.reserve(azure_prefix.size() + r.name.size());
    azure_name.append(azure_prefix).append(r.name);
    out.insert_or_assign(std::move(azure_name), p);
  }
  for (const row& r : azure_rows) out.insert_or_assign(std::string(r.name), to_price(r));
  for (const row& r : other_rows) out.insert_or_assign(std::string(r.name), to_price(r));
}

}  // namespace gw::pricing::detail
