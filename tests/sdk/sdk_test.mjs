// The official OpenAI SDK, pointed at the gateway with only baseURL and apiKey changed.
// Run by tests/integration/test_sdk.py with OPENAI_BASE_URL and OPENAI_API_KEY set.
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });

// Chat, plain.
const done = await client.chat.completions.create({
  model: "mock-gpt",
  messages: [{ role: "user", content: "hello from the SDK" }],
});
assert.equal(done.object, "chat.completion");
assert.ok(done.choices[0].message.content.length > 0);
assert.ok(done.usage.total_tokens > 0);

// Chat, streamed, with usage.
const stream = await client.chat.completions.create({
  model: "mock-gpt",
  messages: [{ role: "user", content: "stream please" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
assert.ok(text.length > 0, "streamed text");
assert.ok(usage && usage.completion_tokens > 0, "usage chunk");

// Embeddings (the SDK asks for base64 and decodes it).
const emb = await client.embeddings.create({ model: "mock-embed", input: ["one", "two"] });
assert.equal(emb.data.length, 2);
assert.ok(Array.isArray(emb.data[0].embedding) && emb.data[0].embedding.length > 0);
assert.ok(emb.data[0].embedding.every((x) => Number.isFinite(x)));

// Legacy completions.
const comp = await client.completions.create({ model: "mock-gpt", prompt: "Say this" });
assert.equal(comp.object, "text_completion");

// Models.
const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
assert.deepEqual(ids.sort(), ["mock-embed", "mock-gpt"]);
const one = await client.models.retrieve("mock-gpt");
assert.equal(one.id, "mock-gpt");

// Errors surface as the SDK's typed errors.
await assert.rejects(
  client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
  (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
);
const bad = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: "sk-wrong", maxRetries: 0 });
await assert.rejects(
  bad.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "x" }] }),
  (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
);
await assert.rejects(
  client.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "x" }], x_mock: { status: 429, retry_after: "1" } }),
  (e) => e instanceof OpenAI.RateLimitError,
);

console.log("sdk ok");
