// Costs of the per-request pure work: request inspection (JSON validation + model
// span) at several body sizes, SSE scanning of a relayed stream, and what the
// translating providers add: OpenAI <-> Bedrock Converse and Anthropic Messages
// (requests, answers, streams), SigV4 signing, Anthropic ingress; OTLP/JSON encoding of
// trace records (no content, as exported by default).
#include <benchmark/benchmark.h>

#include <string>

#include "gw/http/sse.hpp"
#include "gw/providers/anthropic.hpp"
#include "gw/providers/anthropic_ingress.hpp"
#include "gw/providers/bedrock.hpp"
#include "gw/providers/eventstream.hpp"
#include "gw/providers/openai.hpp"
#include "gw/providers/sigv4.hpp"
#include "gw/tracing/otlp.hpp"

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

gw::providers::translate_context ctx(bool stream) {
  gw::providers::translate_context c;
  c.upstream_model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  c.response_model = c.upstream_model;
  c.response_id = "chatcmpl-bench";
  c.created = 1700000000;
  c.stream = stream;
  c.include_usage = true;
  return c;
}

void BM_ToConverse(benchmark::State& state) {
  auto body = chat_body(static_cast<std::size_t>(state.range(0)));
  auto c = ctx(false);
  for (auto _ : state) benchmark::DoNotOptimize(gw::providers::to_converse(c, body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ToConverse)->Arg(100)->Arg(10 * 1024);

void BM_FromConverse(benchmark::State& state) {
  std::string body = R"({"output":{"message":{"role":"assistant","content":[{"text":"The quick brown fox jumps over the lazy dog while mock tokens flow through a gateway"}]}},)"
                     R"("stopReason":"end_turn","usage":{"inputTokens":120,"outputTokens":16,"totalTokens":136},"metrics":{"latencyMs":412}})";
  auto c = ctx(false);
  for (auto _ : state) benchmark::DoNotOptimize(gw::providers::from_converse(c, 200, body, ""));
}
BENCHMARK(BM_FromConverse);

/// A ConverseStream of 100 text deltas, translated to OpenAI chunks (per stream).
void BM_ConverseStream(benchmark::State& state) {
  namespace es = gw::providers::eventstream;
  auto frame = [](const char* type, std::string payload) {
    return es::encode_message({{":message-type", "event"}, {":event-type", type}, {":content-type", "application/json"}},
                              payload);
  };
  std::string stream = frame("messageStart", R"({"role":"assistant"})");
  for (int i = 0; i < 100; ++i) stream += frame("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"word "}})");
  stream += frame("contentBlockStop", R"({"contentBlockIndex":0})");
  stream += frame("messageStop", R"({"stopReason":"end_turn"})");
  stream += frame("metadata", R"({"usage":{"inputTokens":12,"outputTokens":100,"totalTokens":112},"metrics":{"latencyMs":1}})");
  auto c = ctx(true);
  std::string out;
  for (auto _ : state) {
    auto t = gw::providers::converse_stream_translator(c);
    out.clear();
    benchmark::DoNotOptimize(t->feed(stream, out));
    benchmark::DoNotOptimize(t->finish(out));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 104));  // events
}
BENCHMARK(BM_ConverseStream);

void BM_SigV4Sign(benchmark::State& state) {
  auto body = chat_body(static_cast<std::size_t>(state.range(0)));
  gw::providers::aws_credentials cr{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token", {}};
  gw::providers::sigv4_input in;
  in.method = "POST";
  in.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";
  in.headers = {{"host", "bedrock-runtime.us-east-1.amazonaws.com"}, {"content-type", "application/json"}};
  in.body = body;
  auto now = std::chrono::system_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(gw::providers::sigv4_sign(in, cr, "us-east-1", "bedrock", now));
}
BENCHMARK(BM_SigV4Sign)->Arg(100)->Arg(10 * 1024);

void BM_ToAnthropic(benchmark::State& state) {
  auto body = chat_body(static_cast<std::size_t>(state.range(0)));
  auto c = ctx(false);
  for (auto _ : state) benchmark::DoNotOptimize(gw::providers::to_anthropic(c, body));
}
BENCHMARK(BM_ToAnthropic)->Arg(100)->Arg(10 * 1024);

/// An Anthropic stream of 100 text deltas, translated to OpenAI chunks (per stream).
void BM_AnthropicStream(benchmark::State& state) {
  std::string stream =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
  for (int i = 0; i < 100; ++i)
    stream += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n";
  stream += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":100}}\n\n"
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto c = ctx(true);
  std::string out;
  for (auto _ : state) {
    auto t = gw::providers::anthropic_stream_translator(c);
    out.clear();
    benchmark::DoNotOptimize(t->feed(stream, out));
    benchmark::DoNotOptimize(t->finish(out));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 105));
}
BENCHMARK(BM_AnthropicStream);

/// OpenAI chunks -> Anthropic events (the /v1/messages ingress), 100 deltas per stream.
void BM_AnthropicIngressWriter(benchmark::State& state) {
  std::string stream;
  auto chunk = [&](const std::string& choice) {
    stream += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[)" + choice + "]}\n\n";
  };
  chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})");
  for (int i = 0; i < 100; ++i) chunk(R"({"index":0,"delta":{"content":"word "},"finish_reason":null})");
  chunk(R"({"index":0,"delta":{},"finish_reason":"stop"})");
  stream += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":100,"total_tokens":112}})"
            "\n\ndata: [DONE]\n\n";
  gw::providers::anthropic_request_info info;
  info.model = "m";
  info.stream = true;
  std::string out;
  for (auto _ : state) {
    gw::providers::anthropic_stream_writer w(info);
    out.clear();
    w.feed(stream, out);
    w.finish(out);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 104));
}
BENCHMARK(BM_AnthropicIngressWriter);

/// A typical record as the gateway makes it for a small chat call (no bodies: content
/// capture is off by default), encoded in batches of 256 as the exporter sends them.
void BM_OtlpEncode(benchmark::State& state) {
  using namespace gw::tracing;
  trace_record r;
  for (std::size_t i = 0; i < r.trace.size(); ++i) r.trace[i] = static_cast<std::uint8_t>(i + 1);
  for (std::size_t i = 0; i < r.span.size(); ++i) r.span[i] = static_cast<std::uint8_t>(i + 7);
  r.request_id = "5b1c3f0e-8d7a-4c61-9a55-0f3b2e7d9c41";
  r.node_id = "gateway-7f9c4-12345";
  r.operation = "chat";
  r.route = "/v1/chat/completions";
  r.model_group = "gpt-4o-mini";
  r.key_hash = std::string(64, 'a');
  r.key_alias = "team-search-prod";
  r.user_id = "user-1234";
  r.team_id = "team-search";
  r.start = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));
  r.end = r.start + std::chrono::milliseconds(412);
  r.status = 200;
  r.response_model = "gpt-4o-mini-2024-07-18";
  r.deployment_id = "openai-gpt-4o-mini-eastus";
  r.provider = "openai";
  r.input_tokens = 25;
  r.output_tokens = 117;
  r.cost_pico = 74'025'000;
  auto& a = r.attempts.emplace_back();
  a.span = r.span;
  a.span[0] ^= 0xff;
  a.model_group = r.model_group;
  a.deployment_id = r.deployment_id;
  a.provider = r.provider;
  a.upstream_model = "gpt-4o-mini";
  a.server_address = "api.openai.com";
  a.server_port = 443;
  a.start = r.start + std::chrono::microseconds(40);
  a.end = r.end - std::chrono::microseconds(30);
  a.http_status = 200;
  std::vector<const trace_record*> batch(256, &r);
  otlp_options opt;
  opt.service_version = "0.1.0";
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto json = encode_otlp_json(batch, opt);
    bytes = json.size();
    benchmark::DoNotOptimize(json);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch.size()));
  state.counters["bytes_per_span"] = static_cast<double>(bytes) / static_cast<double>(batch.size());
}
BENCHMARK(BM_OtlpEncode);

}  // namespace

BENCHMARK_MAIN();
