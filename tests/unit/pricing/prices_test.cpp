#include "gw/pricing/prices.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <string>

// Counts heap allocations so that the test can check find() allocates nothing. Every
// (non-aligned) form is replaced so that allocation and release always pair up. Not
// under AddressSanitizer: it owns the allocator there (and GCC's -O1 inlining then
// flags the malloc/free pairing as mismatched).
#if defined(__SANITIZE_ADDRESS__)
#define GW_COUNT_ALLOCATIONS 0
#else
#define GW_COUNT_ALLOCATIONS 1
#endif

#if GW_COUNT_ALLOCATIONS
namespace {
std::atomic<long> g_allocations{0};

void* counted_alloc(std::size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#else
namespace {
std::atomic<long> g_allocations{0};
}  // namespace
#endif

namespace gw::pricing {
namespace {

constexpr keys::money max_money = std::numeric_limits<keys::money>::max();

keys::money usd(std::string_view text) {
  keys::money out = -1;
  EXPECT_TRUE(parse_usd(text, out)) << text;
  return out;
}

bool rejects(std::string_view text) {
  keys::money out = 12345;
  const bool parsed = parse_usd(text, out);
  return !parsed && out == 12345;  // a refused value leaves `out` alone
}

// ---------------------------------------------------------------- parse_usd

TEST(ParseUsd, PlainAndExponentFormsAreExact) {
  EXPECT_EQ(usd("0.0000025"), 2'500'000);
  EXPECT_EQ(usd("2.5e-06"), 2'500'000);
  EXPECT_EQ(usd("2.5E-6"), 2'500'000);
  EXPECT_EQ(usd("25e-7"), 2'500'000);
  EXPECT_EQ(usd("0.25e-5"), 2'500'000);
  EXPECT_EQ(usd("1e-7"), 100'000);
  EXPECT_EQ(usd("1.5E-7"), 150'000);
  EXPECT_EQ(usd("1.5e-05"), 15'000'000);
  EXPECT_EQ(usd("7.5e-08"), 75'000);
  EXPECT_EQ(usd("2e-08"), 20'000);
  EXPECT_EQ(usd("1.875e-05"), 18'750'000);
  EXPECT_EQ(usd("0.00000875e-3"), 8'750);  // 8.75e-9 USD
  EXPECT_EQ(usd("+1e-6"), 1'000'000);
  EXPECT_EQ(usd("1E+2"), 100'000'000'000'000);
  EXPECT_EQ(usd("3"), 3'000'000'000'000);
  EXPECT_EQ(usd("5."), 5'000'000'000'000);
  EXPECT_EQ(usd(".5"), 500'000'000'000);
  EXPECT_EQ(usd("0"), 0);
  EXPECT_EQ(usd("0.0"), 0);
  EXPECT_EQ(usd("-0"), 0);
  EXPECT_EQ(usd("0e-999999999999"), 0);
  EXPECT_EQ(usd("000000.000000000001"), 1);
  // Many digits, still exact (a double would have dropped the tail).
  EXPECT_EQ(usd("0.000002500000000000000000000000001"), 2'500'000);
  EXPECT_EQ(usd("1234567.890123456789"), 1'234'567'890'123'456'789);
  EXPECT_EQ(usd("1234.5678901234565"), 1'234'567'890'123'457);  // .5 pico rounds up
  EXPECT_EQ(usd("9223372.036854775807"), max_money);            // exactly int64 max
}

TEST(ParseUsd, RoundsToNearestPicodollar) {
  EXPECT_EQ(usd("0.0000000000005"), 1);   // 0.5 pico rounds up
  EXPECT_EQ(usd("0.00000000000049"), 0);  // 0.49 pico rounds down
  EXPECT_EQ(usd("5e-13"), 1);
  EXPECT_EQ(usd("4.99999e-13"), 0);
  EXPECT_EQ(usd("1.2345678901234567e-6"), 1'234'568);  // 1234567.89... pico
  EXPECT_EQ(usd("1.2345674e-6"), 1'234'567);
  EXPECT_EQ(usd("1e-300"), 0);
}

TEST(ParseUsd, RejectsWhatIsNotANonNegativeNumber) {
  EXPECT_TRUE(rejects(""));
  EXPECT_TRUE(rejects("abc"));
  EXPECT_TRUE(rejects("-1e-6"));
  EXPECT_TRUE(rejects("-0.0000025"));
  EXPECT_TRUE(rejects("."));
  EXPECT_TRUE(rejects("e5"));
  EXPECT_TRUE(rejects("1e"));
  EXPECT_TRUE(rejects("1e+"));
  EXPECT_TRUE(rejects("1.2.3"));
  EXPECT_TRUE(rejects(" 1"));
  EXPECT_TRUE(rejects("1 "));
  EXPECT_TRUE(rejects("0x10"));
  EXPECT_TRUE(rejects("inf"));
  EXPECT_TRUE(rejects("nan"));
  EXPECT_TRUE(rejects("1,5"));
  EXPECT_TRUE(rejects("$1"));
  EXPECT_TRUE(rejects("+-1"));
  // Beyond int64 picodollars (9.2 million USD).
  EXPECT_TRUE(rejects("9223372.036854775808"));
  EXPECT_TRUE(rejects("1e7"));
  EXPECT_TRUE(rejects("1e999999999999"));
}

// ---------------------------------------------------------------- cost_of

model_price price(keys::money in, keys::money out, std::optional<keys::money> read = {},
                  std::optional<keys::money> write = {}) {
  model_price p;
  p.input_per_token = in;
  p.output_per_token = out;
  p.cache_read_per_token = read;
  p.cache_creation_per_token = write;
  return p;
}

TEST(CostOf, WithoutCacheTokens) {
  const model_price gpt4o = price(2'500'000, 10'000'000, 1'250'000);
  token_usage u;
  u.prompt_tokens = 1000;
  u.completion_tokens = 500;
  // 1000 * 2.5e-6 + 500 * 1e-5 = 0.0075 USD
  EXPECT_EQ(cost_of(gpt4o, u), 7'500'000'000);
  EXPECT_EQ(cost_of(gpt4o, token_usage{}), 0);
}

TEST(CostOf, CacheReadAndCreationUseTheirPrices) {
  const model_price sonnet = price(3'000'000, 15'000'000, 300'000, 3'750'000);
  token_usage u;
  u.prompt_tokens = 10'000;
  u.cache_read_tokens = 6'000;
  u.cache_creation_tokens = 2'000;
  u.completion_tokens = 100;
  // 2000 * 3e-6 + 6000 * 3e-7 + 2000 * 3.75e-6 + 100 * 1.5e-5 = 0.006 + 0.0018 + 0.0075 + 0.0015
  EXPECT_EQ(cost_of(sonnet, u), 16'800'000'000);

  const model_price gpt4o = price(2'500'000, 10'000'000, 1'250'000);
  token_usage v;
  v.prompt_tokens = 1000;
  v.cache_read_tokens = 400;
  v.completion_tokens = 500;
  EXPECT_EQ(cost_of(gpt4o, v), 600 * 2'500'000LL + 400 * 1'250'000LL + 500 * 10'000'000LL);
}

TEST(CostOf, MissingCachePricesFallBackToInputPrice) {
  const model_price gpt4 = price(30'000'000, 60'000'000);
  token_usage u;
  u.prompt_tokens = 100;
  u.cache_read_tokens = 30;
  u.cache_creation_tokens = 20;
  u.completion_tokens = 10;
  EXPECT_EQ(cost_of(gpt4, u), 100 * 30'000'000LL + 10 * 60'000'000LL);
}

TEST(CostOf, InconsistentOrNegativeCountsNeverGoNegative) {
  const model_price p = price(1'000'000, 2'000'000, 100'000, 1'250'000);
  token_usage u;
  u.prompt_tokens = 10;
  u.cache_read_tokens = 50;  // more cached than prompt tokens
  EXPECT_EQ(cost_of(p, u), 50 * 100'000LL);
  token_usage neg;
  neg.prompt_tokens = -5;
  neg.completion_tokens = -7;
  neg.cache_read_tokens = -1;
  EXPECT_EQ(cost_of(p, neg), 0);
}

TEST(CostOf, Saturates) {
  const model_price p = price(2'500'000, 10'000'000);
  token_usage u;
  u.prompt_tokens = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(cost_of(p, u), max_money);
  u.prompt_tokens = 4'000'000'000'000;  // 4e12 * 2.5e6 = 1e19 overflows
  u.completion_tokens = 1;
  EXPECT_EQ(cost_of(p, u), max_money);
  token_usage w;
  w.prompt_tokens = 3'000'000'000'000 / 2'500'000;                              // product fits...
  w.completion_tokens = std::numeric_limits<std::int64_t>::max() / 10'000'000;  // ...sum does not
  EXPECT_EQ(cost_of(p, w), max_money);
}

// ---------------------------------------------------------------- built-in table

TEST(BuiltinTable, OpenAiListPrices) {
  const price_table t;
  const model_price* p = t.find("gpt-4o");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->input_per_token, 2'500'000);
  EXPECT_EQ(p->output_per_token, 10'000'000);
  EXPECT_EQ(p->cache_read_per_token, 1'250'000);
  EXPECT_FALSE(p->cache_creation_per_token.has_value());
  EXPECT_EQ(p->max_input_tokens, 128'000);
  EXPECT_EQ(p->max_output_tokens, 16'384);

  const model_price* may = t.find("gpt-4o-2024-05-13");  // the launch snapshot
  ASSERT_NE(may, nullptr);
  EXPECT_EQ(may->input_per_token, 5'000'000);
  EXPECT_EQ(may->output_per_token, 15'000'000);
  EXPECT_FALSE(may->cache_read_per_token.has_value());
  EXPECT_EQ(may->max_output_tokens, 4096);
  for (const char* dated : {"gpt-4o-2024-08-06", "gpt-4o-2024-11-20"}) {
    const model_price* d = t.find(dated);
    ASSERT_NE(d, nullptr) << dated;
    EXPECT_EQ(d->input_per_token, 2'500'000) << dated;
    EXPECT_EQ(d->cache_read_per_token, 1'250'000) << dated;
  }

  struct expected {
    const char* name;
    keys::money in, out;
    std::optional<keys::money> cached;
  };
  for (const expected& e : {
           expected{"gpt-4o-mini", 150'000, 600'000, 75'000},
           expected{"gpt-4.1", 2'000'000, 8'000'000, 500'000},
           expected{"gpt-4.1-mini", 400'000, 1'600'000, 100'000},
           expected{"gpt-4.1-nano", 100'000, 400'000, 25'000},
           expected{"gpt-4-turbo", 10'000'000, 30'000'000, std::nullopt},
           expected{"gpt-4", 30'000'000, 60'000'000, std::nullopt},
           expected{"gpt-3.5-turbo", 500'000, 1'500'000, std::nullopt},
           expected{"o1", 15'000'000, 60'000'000, 7'500'000},
           expected{"o1-mini", 1'100'000, 4'400'000, 550'000},
           expected{"o3", 2'000'000, 8'000'000, 500'000},
           expected{"o3-mini", 1'100'000, 4'400'000, 550'000},
           expected{"o4-mini", 1'100'000, 4'400'000, 275'000},
           expected{"gpt-5", 1'250'000, 10'000'000, 125'000},
           expected{"gpt-5-mini", 250'000, 2'000'000, 25'000},
           expected{"gpt-5-nano", 50'000, 400'000, 5'000},
           expected{"text-embedding-3-small", 20'000, 0, std::nullopt},
           expected{"text-embedding-3-large", 130'000, 0, std::nullopt},
           expected{"text-embedding-ada-002", 100'000, 0, std::nullopt},
       }) {
    const model_price* m = t.find(e.name);
    ASSERT_NE(m, nullptr) << e.name;
    EXPECT_EQ(m->input_per_token, e.in) << e.name;
    EXPECT_EQ(m->output_per_token, e.out) << e.name;
    EXPECT_EQ(m->cache_read_per_token, e.cached) << e.name;
    EXPECT_GT(m->max_input_tokens, 0) << e.name;
  }
  EXPECT_EQ(t.find("gpt-4.1")->max_input_tokens, 1'047'576);
  EXPECT_EQ(t.find("gpt-5")->max_output_tokens, 128'000);
}

TEST(BuiltinTable, AzureCarriesTheOpenAiNames) {
  const price_table t;
  for (const char* name : {"gpt-4o", "gpt-4o-2024-05-13", "gpt-4o-mini", "gpt-4.1-nano", "o3-mini", "gpt-5",
                           "text-embedding-3-large", "gpt-3.5-turbo"}) {
    const model_price* openai = t.find(name);
    const model_price* azure = t.find(std::string("azure/") + name);
    ASSERT_NE(openai, nullptr) << name;
    ASSERT_NE(azure, nullptr) << name;
    EXPECT_NE(openai, azure) << "azure/" << name << " should be its own entry";
    EXPECT_EQ(azure->input_per_token, openai->input_per_token) << name;
    EXPECT_EQ(azure->output_per_token, openai->output_per_token) << name;
    EXPECT_EQ(azure->cache_read_per_token, openai->cache_read_per_token) << name;
    EXPECT_EQ(azure->max_output_tokens, openai->max_output_tokens) << name;
  }
  const model_price* gpt35 = t.find("azure/gpt-35-turbo");
  ASSERT_NE(gpt35, nullptr);
  EXPECT_EQ(gpt35->input_per_token, 500'000);
}

TEST(BuiltinTable, AnthropicCachePricesFollowTheMultipliers) {
  const price_table t;
  for (const char* name : {"claude-3-5-haiku-20241022", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20240620",
                           "claude-3-7-sonnet-20250219", "claude-sonnet-4-20250514", "claude-opus-4-20250514",
                           "claude-3-opus-20240229", "anthropic.claude-3-5-haiku-20241022-v1:0",
                           "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-7-sonnet-20250219-v1:0",
                           "anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-opus-4-20250514-v1:0"}) {
    const model_price* p = t.find(name);
    ASSERT_NE(p, nullptr) << name;
    ASSERT_TRUE(p->cache_read_per_token.has_value()) << name;
    ASSERT_TRUE(p->cache_creation_per_token.has_value()) << name;
    EXPECT_EQ(*p->cache_read_per_token * 10, p->input_per_token) << name;
    EXPECT_EQ(*p->cache_creation_per_token * 4, p->input_per_token * 5) << name;
    EXPECT_EQ(p->max_input_tokens, 200'000) << name;
  }
  const model_price* sonnet = t.find("claude-3-5-sonnet-20241022");
  EXPECT_EQ(sonnet->input_per_token, 3'000'000);
  EXPECT_EQ(sonnet->output_per_token, 15'000'000);
  const model_price* opus = t.find("claude-opus-4-20250514");
  EXPECT_EQ(opus->input_per_token, 15'000'000);
  EXPECT_EQ(opus->output_per_token, 75'000'000);
  EXPECT_EQ(opus->max_output_tokens, 32'000);
  const model_price* haiku35 = t.find("claude-3-5-haiku-20241022");
  EXPECT_EQ(haiku35->input_per_token, 800'000);
  EXPECT_EQ(haiku35->output_per_token, 4'000'000);
  // Claude 3 Haiku: Anthropic publishes 0.30 (writes) and 0.03 (hits) per million.
  const model_price* haiku3 = t.find("claude-3-haiku-20240307");
  ASSERT_NE(haiku3, nullptr);
  EXPECT_EQ(haiku3->input_per_token, 250'000);
  EXPECT_EQ(haiku3->output_per_token, 1'250'000);
  EXPECT_EQ(haiku3->cache_read_per_token, 30'000);
  EXPECT_EQ(haiku3->cache_creation_per_token, 300'000);
}

TEST(BuiltinTable, OtherBedrockModels) {
  const price_table t;
  struct expected {
    const char* name;
    keys::money in, out;
    std::int64_t max_in;
  };
  for (const expected& e : {
           expected{"amazon.titan-text-express-v1", 200'000, 600'000, 8192},
           expected{"amazon.titan-embed-text-v1", 100'000, 0, 8192},
           expected{"amazon.titan-embed-text-v2:0", 20'000, 0, 8192},
           expected{"amazon.nova-micro-v1:0", 35'000, 140'000, 128'000},
           expected{"amazon.nova-lite-v1:0", 60'000, 240'000, 300'000},
           expected{"amazon.nova-pro-v1:0", 800'000, 3'200'000, 300'000},
           expected{"meta.llama3-1-8b-instruct-v1:0", 220'000, 220'000, 128'000},
           expected{"meta.llama3-1-70b-instruct-v1:0", 720'000, 720'000, 128'000},
           expected{"mistral.mistral-large-2402-v1:0", 8'000'000, 24'000'000, 32'000},
           expected{"cohere.embed-english-v3", 100'000, 0, 512},
           expected{"anthropic.claude-3-haiku-20240307-v1:0", 250'000, 1'250'000, 200'000},
       }) {
    const model_price* p = t.find(e.name);
    ASSERT_NE(p, nullptr) << e.name;
    EXPECT_EQ(p->input_per_token, e.in) << e.name;
    EXPECT_EQ(p->output_per_token, e.out) << e.name;
    EXPECT_EQ(p->max_input_tokens, e.max_in) << e.name;
  }
  EXPECT_EQ(t.find("amazon.nova-micro-v1:0")->cache_read_per_token, 8'750);
  EXPECT_GE(t.size(), 150u);
}

// ---------------------------------------------------------------- find()

TEST(Find, WholeNameThenProviderPrefix) {
  const price_table t;
  const model_price* mini = t.find("gpt-4o-mini");
  ASSERT_NE(mini, nullptr);
  EXPECT_EQ(t.find("openai/gpt-4o-mini"), mini);
  EXPECT_EQ(t.find("gpt-4o-mini-2024-07-18")->input_per_token, 150'000);
  // "azure/gpt-4o" is an entry of its own (the whole name matches first).
  const model_price* azure = t.find("azure/gpt-4o");
  ASSERT_NE(azure, nullptr);
  EXPECT_NE(azure, t.find("gpt-4o"));
  EXPECT_EQ(azure->input_per_token, 2'500'000);
  // Anthropic names through the provider prefix.
  EXPECT_EQ(t.find("anthropic/claude-3-5-sonnet-20241022"), t.find("claude-3-5-sonnet-20241022"));
  // Only the text before the first '/' is a provider.
  EXPECT_EQ(t.find("bedrock/amazon.nova-pro-v1:0"), t.find("amazon.nova-pro-v1:0"));
}

TEST(Find, BedrockRegionPrefixes) {
  const price_table t;
  const model_price* v2 = t.find("anthropic.claude-3-5-sonnet-20241022-v2:0");
  ASSERT_NE(v2, nullptr);
  EXPECT_EQ(t.find("bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"), v2);
  EXPECT_EQ(t.find("us.anthropic.claude-3-5-sonnet-20241022-v2:0"), v2);
  EXPECT_EQ(t.find("bedrock/eu.anthropic.claude-3-5-sonnet-20241022-v2:0"), v2);
  EXPECT_EQ(t.find("bedrock/apac.anthropic.claude-3-5-sonnet-20241022-v2:0"), v2);
  EXPECT_EQ(t.find("bedrock/global.anthropic.claude-sonnet-4-20250514-v1:0"),
            t.find("anthropic.claude-sonnet-4-20250514-v1:0"));
  EXPECT_EQ(t.find("us.amazon.nova-lite-v1:0"), t.find("amazon.nova-lite-v1:0"));
  // Not a region prefix: "usa." or a region without a model after it.
  EXPECT_EQ(t.find("usa.anthropic.claude-3-5-sonnet-20241022-v2:0"), nullptr);
}

TEST(Find, DateAndVersionSuffixes) {
  const price_table t;
  const model_price* haiku = t.find("claude-3-5-haiku");
  ASSERT_NE(haiku, nullptr);
  EXPECT_EQ(t.find("anthropic/claude-3-5-haiku-latest"), haiku);
  EXPECT_EQ(t.find("claude-3-5-haiku-latest"), haiku);
  EXPECT_EQ(t.find("claude-3-7-sonnet-latest"), t.find("claude-3-7-sonnet"));
  // -YYYY-MM-DD
  EXPECT_EQ(t.find("openai/gpt-4.1-2099-12-31"), t.find("gpt-4.1"));
  EXPECT_EQ(t.find("gpt-4o-mini-2030-01-01"), t.find("gpt-4o-mini"));
  // -YYYYMMDD
  EXPECT_EQ(t.find("claude-3-5-sonnet-20991231"), t.find("claude-3-5-sonnet"));
  // @YYYYMMDD (Vertex AI's spelling)
  EXPECT_EQ(t.find("vertex_ai/claude-3-5-sonnet@20241022"), t.find("claude-3-5-sonnet"));
  // -vN:N, then the date before it
  EXPECT_EQ(t.find("claude-3-7-sonnet-20250219-v1:0"), t.find("claude-3-7-sonnet-20250219"));
  EXPECT_EQ(t.find("bedrock/us.claude-opus-4-20250514-v1:0"), t.find("claude-opus-4-20250514"));
  EXPECT_EQ(t.find("claude-sonnet-4-20991231-v3:12"), t.find("claude-sonnet-4"));
  // Versions are part of Bedrock names that differ only by them.
  EXPECT_NE(t.find("amazon.titan-embed-text-v1"), t.find("amazon.titan-embed-text-v2:0"));
  // Exact names win over stripping.
  EXPECT_EQ(t.find("gpt-4o-2024-05-13")->input_per_token, 5'000'000);
}

TEST(Find, UnknownModels) {
  const price_table t;
  EXPECT_EQ(t.find(""), nullptr);
  EXPECT_EQ(t.find("my-deployment"), nullptr);
  EXPECT_EQ(t.find("azure/my-deployment"), nullptr);
  EXPECT_EQ(t.find("openai/"), nullptr);
  EXPECT_EQ(t.find("us."), nullptr);
  EXPECT_EQ(t.find("-latest"), nullptr);
  EXPECT_EQ(t.find("gpt-4o-mini-"), nullptr);
  EXPECT_EQ(t.find("GPT-4O"), nullptr);  // names are case-sensitive
  EXPECT_EQ(t.find("gpt-4o-2024-0806"), nullptr);
  EXPECT_EQ(t.find("anthropic.claude-3-5-sonnet-20241022"), nullptr);
}

TEST(Find, DoesNotAllocate) {
  const price_table t;
  const char* names[] = {"gpt-4o-mini",
                         "openai/gpt-4o-mini",
                         "azure/gpt-4o",
                         "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                         "anthropic/claude-3-5-haiku-latest",
                         "gpt-4o-mini-2024-07-18-some-very-long-unknown-name-past-sso",
                         "unknown-model-with-a-name-longer-than-the-small-string-buffer"};
  if (!GW_COUNT_ALLOCATIONS) GTEST_SKIP() << "allocation counting is off under AddressSanitizer";
  const long before = g_allocations.load();
  int found = 0;
  for (int i = 0; i < 100; ++i) {
    for (const char* name : names) found += t.find(name) != nullptr ? 1 : 0;
  }
  const long after = g_allocations.load();
  EXPECT_EQ(after - before, 0);
  EXPECT_EQ(found, 500);
}

// ---------------------------------------------------------------- price files

constexpr const char* sample_file = R"json({
  "sample_spec": {
    "input_cost_per_token": 0.0,
    "max_input_tokens": "max input tokens, if the provider specifies it",
    "litellm_provider": "one of https://docs.litellm.ai/docs/providers"
  },
  "gpt-4o": { "input_cost_per_token": 3e-06, "litellm_provider": "openai" },
  "my-custom-model": {
    "input_cost_per_token": 1.5e-07,
    "output_cost_per_token": 0.0000006,
    "cache_read_input_token_cost": 7.5e-08,
    "cache_creation_input_token_cost": null,
    "max_input_tokens": 32000,
    "max_output_tokens": 4096,
    "mode": "chat",
    "supports_vision": true,
    "supported_endpoints": ["/v1/chat/completions"],
    "search_context_cost_per_query": {"search_context_size_low": 0.01}
  },
  "string-priced-model": { "input_cost_per_token": "2.5e-06", "output_cost_per_token": "1e-05" },
  "dall-e-9": { "output_cost_per_image": 0.04, "mode": "image_generation" }
})json";

TEST(PriceFile, MergesOverridesAndNewModels) {
  price_table t;
  const std::size_t before = t.size();
  std::string err;
  ASSERT_TRUE(t.load_json(sample_file, err)) << err;
  EXPECT_EQ(t.size(), before + 2);  // my-custom-model and string-priced-model

  // Override: only the fields the entry gives change.
  const model_price* gpt4o = t.find("gpt-4o");
  ASSERT_NE(gpt4o, nullptr);
  EXPECT_EQ(gpt4o->input_per_token, 3'000'000);
  EXPECT_EQ(gpt4o->output_per_token, 10'000'000);
  EXPECT_EQ(gpt4o->cache_read_per_token, 1'250'000);
  EXPECT_EQ(gpt4o->max_output_tokens, 16'384);
  EXPECT_EQ(t.find("openai/gpt-4o"), gpt4o);

  const model_price* custom = t.find("openai/my-custom-model");
  ASSERT_NE(custom, nullptr);
  EXPECT_EQ(custom->input_per_token, 150'000);
  EXPECT_EQ(custom->output_per_token, 600'000);
  EXPECT_EQ(custom->cache_read_per_token, 75'000);
  EXPECT_FALSE(custom->cache_creation_per_token.has_value());
  EXPECT_EQ(custom->max_input_tokens, 32'000);
  EXPECT_EQ(custom->max_output_tokens, 4096);

  const model_price* strings = t.find("string-priced-model");
  ASSERT_NE(strings, nullptr);
  EXPECT_EQ(strings->input_per_token, 2'500'000);
  EXPECT_EQ(strings->output_per_token, 10'000'000);

  EXPECT_EQ(t.find("dall-e-9"), nullptr);     // not priced per token
  EXPECT_EQ(t.find("sample_spec"), nullptr);  // skipped
}

TEST(PriceFile, BadEntryIsNamedAndNothingIsMerged) {
  price_table t;
  const std::size_t before = t.size();
  std::string err;
  EXPECT_FALSE(t.load_json(R"({
      "new-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
      "gpt-4o": {"input_cost_per_token": 9e-06},
      "broken-model": {"input_cost_per_token": -1e-06, "output_cost_per_token": 2e-06}
    })",
                           err));
  EXPECT_NE(err.find("broken-model"), std::string::npos) << err;
  EXPECT_NE(err.find("input_cost_per_token"), std::string::npos) << err;
  EXPECT_EQ(t.size(), before);
  EXPECT_EQ(t.find("new-model"), nullptr);
  EXPECT_EQ(t.find("gpt-4o")->input_per_token, 2'500'000);

  err.clear();
  EXPECT_FALSE(t.load_json(R"({"ok": {"input_cost_per_token": 1e-6}, "weird": 5})", err));
  EXPECT_NE(err.find("weird"), std::string::npos) << err;

  err.clear();
  EXPECT_FALSE(t.load_json(R"({"textual": {"output_cost_per_token": "cheap"}})", err));
  EXPECT_NE(err.find("textual"), std::string::npos) << err;
  EXPECT_NE(err.find("output_cost_per_token"), std::string::npos) << err;

  err.clear();
  EXPECT_FALSE(t.load_json(R"({"flag": {"input_cost_per_token": true}})", err));
  EXPECT_NE(err.find("flag"), std::string::npos) << err;

  err.clear();
  EXPECT_FALSE(t.load_json(R"({"tokens": {"max_output_tokens": "lots"}})", err));
  EXPECT_NE(err.find("tokens"), std::string::npos) << err;
  EXPECT_NE(err.find("max_output_tokens"), std::string::npos) << err;

  for (const char* bad : {"", "{", "[1, 2]", "42", R"({"a": {}} trailing)", R"({"a": {"x": tru}})"}) {
    err.clear();
    EXPECT_FALSE(t.load_json(bad, err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
  EXPECT_EQ(t.size(), before);
}

TEST(PriceFile, LoadFile) {
  const std::string path = ::testing::TempDir() + "pricing_test_prices.json";
  {
    std::ofstream out(path);
    out << sample_file;
  }
  price_table t;
  std::string err;
  ASSERT_TRUE(t.load_file(path, err)) << err;
  ASSERT_NE(t.find("my-custom-model"), nullptr);
  EXPECT_EQ(t.find("gpt-4o")->input_per_token, 3'000'000);
  std::remove(path.c_str());

  err.clear();
  EXPECT_FALSE(t.load_file(path, err));  // gone now
  EXPECT_NE(err.find(path), std::string::npos) << err;

  const std::string bad_path = ::testing::TempDir() + "pricing_test_bad.json";
  {
    std::ofstream out(bad_path);
    out << R"({"bad-entry": {"input_cost_per_token": "1e-6e"}})";
  }
  err.clear();
  EXPECT_FALSE(t.load_file(bad_path, err));
  EXPECT_NE(err.find("bad-entry"), std::string::npos) << err;
  EXPECT_NE(err.find(bad_path), std::string::npos) << err;
  std::remove(bad_path.c_str());
}

// ---------------------------------------------------------------- model_info overrides

TEST(WithOverrides, PartialOverrideOverABase) {
  const price_table t;
  const model_price* base = t.find("gpt-4o");
  bool ok = false;
  std::string err;
  const auto p = with_overrides(base,
                                {{"input_cost_per_token", "0.000003"},
                                 {"cache_read_input_token_cost", "1.5e-6"},
                                 {"max_output_tokens", "8192"},
                                 {"mode", "chat"}},
                                ok, err);
  ASSERT_TRUE(ok) << err;
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->input_per_token, 3'000'000);
  EXPECT_EQ(p->output_per_token, 10'000'000);  // from the base
  EXPECT_EQ(p->cache_read_per_token, 1'500'000);
  EXPECT_EQ(p->max_output_tokens, 8192);
  EXPECT_EQ(p->max_input_tokens, 128'000);      // from the base
  EXPECT_EQ(base->input_per_token, 2'500'000);  // the table is untouched

  const auto same = with_overrides(base, {}, ok, err);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->input_per_token, base->input_per_token);
  EXPECT_EQ(same->cache_read_per_token, base->cache_read_per_token);
}

TEST(WithOverrides, NoBase) {
  bool ok = false;
  std::string err;
  const auto p = with_overrides(nullptr,
                                {{"input_cost_per_token", "2.5e-06"},
                                 {"output_cost_per_token", "0.00001"},
                                 {"cache_creation_input_token_cost", "3.125E-6"}},
                                ok, err);
  ASSERT_TRUE(ok) << err;
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->input_per_token, 2'500'000);
  EXPECT_EQ(p->output_per_token, 10'000'000);
  EXPECT_EQ(p->cache_creation_per_token, 3'125'000);
  EXPECT_FALSE(p->cache_read_per_token.has_value());

  // Without a base both prices are needed; missing ones are not an error.
  EXPECT_FALSE(with_overrides(nullptr, {{"input_cost_per_token", "1e-6"}}, ok, err).has_value());
  EXPECT_TRUE(ok);
  EXPECT_FALSE(with_overrides(nullptr, {}, ok, err).has_value());
  EXPECT_TRUE(ok);
}

TEST(WithOverrides, BadValuesAreErrors) {
  const price_table t;
  const model_price* base = t.find("gpt-4o-mini");
  for (const auto& [key, value] : std::initializer_list<std::pair<const char*, const char*>>{
           {"input_cost_per_token", "abc"},
           {"output_cost_per_token", "-0.000001"},
           {"cache_read_input_token_cost", ""},
           {"cache_creation_input_token_cost", "1e-6 "},
           {"max_output_tokens", "many"},
       }) {
    bool ok = true;
    std::string err;
    const auto p = with_overrides(base, {{key, value}}, ok, err);
    EXPECT_FALSE(ok) << key << "=" << value;
    EXPECT_FALSE(p.has_value()) << key;
    EXPECT_NE(err.find(key), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace gw::pricing
