// Costs of the per-request pure work: request inspection (JSON validation + model
// span) at several body sizes, and SSE scanning of a relayed stream.
#include <benchmark/benchmark.h>

#include <string>

#include "gw/http/sse.hpp"
#include "gw/providers/openai.hpp"

namespace {

std::string chat_body(std::size_t prompt_bytes) {
  std::string content(prompt_bytes, 'a');
  for (std::size_t i = 7; i < content.size(); i += 8) content[i] = ' ';
  std::string b = R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are helpful."},)"
                  R"({"role":"user","content":")" +
                  content + R"("}],"temperature":0.2,"stream":false})";
  b.reserve(b.size() + 64);
  return b;
}

void BM_InspectChat(benchmark::State& state) {
  auto body = chat_body(static_cast<std::size_t>(state.range(0)));
  gw::providers::inspected_request r;
  for (auto _ : state) {
    auto e = gw::providers::inspect_request(gw::providers::operation::chat, body, r);
    benchmark::DoNotOptimize(e);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_InspectChat)->Arg(100)->Arg(10 * 1024)->Arg(100 * 1024);

void BM_SseScan(benchmark::State& state) {
  std::string stream;
  for (int i = 0; i < 100; ++i)
    stream += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]})"
              "\n\n";
  for (auto _ : state) {
    gw::http::sse_scanner sc;
    int n = 0;
    auto b = sc.scan(stream, 0, [&](std::string_view) { ++n; });
    benchmark::DoNotOptimize(b);
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_SseScan);

void BM_ReadUsageChunk(benchmark::State& state) {
  std::string chunk =
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}})";
  gw::providers::usage u;
  for (auto _ : state) {
    benchmark::DoNotOptimize(gw::providers::read_usage(chunk, u));
  }
}
BENCHMARK(BM_ReadUsageChunk);

}  // namespace

BENCHMARK_MAIN();
