// The official OpenAI and Anthropic SDKs, unchanged, against the gateway in front of
// every provider (the mock speaking OpenAI, Azure, Bedrock and Anthropic). Run by
// tests/integration/test_sdk.py with GATEWAY_URL, GATEWAY_KEY and GROUPS set.
import assert from "node:assert/strict";
import OpenAI, { AzureOpenAI } from "openai";
import Anthropic from "@anthropic-ai/sdk";

const base = process.env.GATEWAY_URL;
const key = process.env.GATEWAY_KEY;
const groups = process.env.GROUPS.split(",");
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const tools = [{
  type: "function",
  function: { name: "get_weather", description: "Weather in a city",
              parameters: { type: "object", properties: { query: { type: "string" } } } },
}];

for (const model of groups) {
  // Plain.
  const done = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "hello" }] });
  assert.equal(done.object, "chat.completion", model);
  assert.ok(done.choices[0].message.content.length > 0, model);
  assert.equal(done.choices[0].finish_reason, "stop", model);
  assert.ok(done.usage.prompt_tokens > 0 && done.usage.completion_tokens > 0, model);

  // Streamed with usage.
  const stream = await openai.chat.completions.create({
    model, messages: [{ role: "user", content: "stream" }], stream: true, stream_options: { include_usage: true },
  });
  let text = "", usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) {
      text += chunk.choices[0].delta?.content ?? "";
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(text.length > 0, `${model}: streamed text`);
  assert.equal(finish, "stop", model);
  assert.ok(usage && usage.completion_tokens > 0, `${model}: usage chunk`);

  // Tool call, plain and streamed (the SDK's stream helper assembles the deltas).
  const call = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Paris" }], tools });
  assert.equal(call.choices[0].finish_reason, "tool_calls", model);
  const tc = call.choices[0].message.tool_calls[0];
  assert.equal(tc.function.name, "get_weather", model);
  assert.deepEqual(JSON.parse(tc.function.arguments), { query: "Paris" }, model);
  const runner = openai.chat.completions.stream({ model, messages: [{ role: "user", content: "Paris" }], tools });
  const final = await runner.finalChatCompletion();
  const stc = final.choices[0].message.tool_calls[0];
  assert.equal(stc.function.name, "get_weather", `${model}: streamed tool call`);
  assert.deepEqual(JSON.parse(stc.function.arguments), { query: "Paris" }, model);
}

// Azure SDK clients point at the gateway's Azure-style routes.
const azure = new AzureOpenAI({ endpoint: base, apiKey: key, apiVersion: "2024-10-21", deployment: groups[0], maxRetries: 0 });
const az = await azure.chat.completions.create({ model: groups[0], messages: [{ role: "user", content: "hi" }] });
assert.equal(az.object, "chat.completion");

// Anthropic SDK clients use /v1/messages, whatever the provider behind the group.
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
for (const model of groups) {
  const msg = await anthropic.messages.create({ model, max_tokens: 64, messages: [{ role: "user", content: "hello" }] });
  assert.equal(msg.type, "message", model);
  assert.equal(msg.content[0].type, "text", model);
  assert.ok(msg.content[0].text.length > 0, model);
  assert.ok(msg.usage.output_tokens > 0, model);

  const s = anthropic.messages.stream({ model, max_tokens: 64, messages: [{ role: "user", content: "stream" }] });
  let streamed = "";
  s.on("text", (t) => { streamed += t; });
  const fin = await s.finalMessage();
  assert.ok(streamed.length > 0, `${model}: anthropic stream text`);
  assert.equal(fin.stop_reason, "end_turn", model);

  const use = await anthropic.messages.create({
    model, max_tokens: 64, messages: [{ role: "user", content: "Paris" }],
    tools: [{ name: "get_weather", description: "Weather", input_schema: { type: "object", properties: { query: { type: "string" } } } }],
  });
  assert.equal(use.stop_reason, "tool_use", model);
  const block = use.content.find((b) => b.type === "tool_use");
  assert.deepEqual(block.input, { query: "Paris" }, model);
}
await assert.rejects(
  new Anthropic({ baseURL: base, apiKey: "sk-wrong", maxRetries: 0 }).messages.create({
    model: groups[0], max_tokens: 8, messages: [{ role: "user", content: "x" }] }),
  (e) => e instanceof Anthropic.AuthenticationError && e.status === 401,
);

console.log("providers sdk ok");
