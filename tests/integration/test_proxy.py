"""The gateway as a transparent OpenAI proxy: chat, streams, embeddings, completions,
models, transparency of bodies and headers, connection reuse, concurrency."""

import base64
import json
import struct
import time
import unittest

from harness import Gateway, Mock, TempDir, chat, run_parallel

KEY = "sk-test-master"
AUTH = {"authorization": f"Bearer {KEY}"}


def config(mock, extra=""):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/upstream-gpt
      api_base: {mock.base}
      api_key: sk-upstream
  - model_name: mock-embed
    litellm_params:
      model: openai/upstream-embed
      api_base: {mock.base}
  - model_name: pair
    litellm_params: {{model: openai/pair-a, api_base: {mock.base}}}
    model_info: {{id: dep-a}}
  - model_name: pair
    litellm_params: {{model: openai/pair-b, api_base: {mock.base}}}
    model_info: {{id: dep-b}}
  - model_name: "wild/*"
    litellm_params: {{model: "openai/*", api_base: {mock.base}}}
general_settings:
  master_key: {KEY}
{extra}
"""


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock))

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()
        assert rc == 0, f"gateway exited with {rc}"

    def test_chat_plain(self):
        status, hdrs, body, _ = self.gw.post_json("/v1/chat/completions", chat("hi there"), AUTH)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["model"], "upstream-gpt", "the upstream saw the deployment's model name")
        self.assertEqual(body["choices"][0]["message"]["role"], "assistant")
        u = body["usage"]
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertEqual(hdrs["x-litellm-model-group"], "mock-gpt")
        self.assertIn("x-litellm-call-id", hdrs)
        self.assertEqual(hdrs["content-type"], "application/json")

    def test_without_v1_prefix(self):
        status, _, body, _ = self.gw.post_json("/chat/completions", chat(), AUTH)
        self.assertEqual(status, 200, body)

    def test_request_body_reaches_upstream_unchanged_except_model(self):
        raw = ('{ "messages" : [ {"role":"user","content":"caf\\u00e9 \\"q\\""} ],\n'
               '  "model":"mock-gpt" , "temperature":0.25,"x_unknown":{"nested":[1,2.5e3,null,true]},'
               '"logit_bias":{"50256":-100} }')
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", raw, AUTH)
        self.assertEqual(status, 200, body)
        last = self.mock.get_json("/_mock/last_request")
        expected = raw.replace('"model":"mock-gpt"', '"model":"upstream-gpt"')
        self.assertEqual(last["body"], expected, "only the model value may change, byte for byte")
        self.assertEqual(last["headers"].get("authorization"), "Bearer sk-upstream")
        self.assertNotIn(KEY, json.dumps(last["headers"]), "the master key must not reach the provider")
        self.assertEqual(last["target"], "/v1/chat/completions")

    def test_response_body_reaches_client_unchanged(self):
        # The mock's answer is deterministic apart from id and created; compare the rest.
        status, _, _, raw = self.gw.post_json("/v1/chat/completions", chat("same", x_mock={"echo": True}), AUTH)
        self.assertEqual(status, 200)
        direct = json.loads(raw)
        self.assertEqual(direct["choices"][0]["message"]["content"], "same")
        self.assertTrue(raw.startswith(b'{"id":"chatcmpl-mock-'), raw[:40])

    def test_chat_stream_with_usage(self):
        status, hdrs, events, _ = self.gw.stream(
            "/v1/chat/completions", chat("stream me", stream=True, stream_options={"include_usage": True},
                                        x_mock={"tokens": 5}), AUTH)
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/event-stream"))
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        self.assertEqual(len(text.split()), 5)
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 5)
        # Usage was read from the stream: the token counter moved.
        metrics = self.gw.request("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r'litellm_output_tokens_metric_total\{[^}]*requested_model="mock-gpt"[^}]*\} [1-9]')

    def test_stream_is_relayed_as_it_arrives(self):
        # 8 tokens at 20/s: the first must arrive long before the last.
        c = self.gw.conn()
        c.request("POST", "/v1/chat/completions",
                  body=json.dumps(chat("x", stream=True, x_mock={"tokens": 8, "tokens_per_second": 20})),
                  headers={**AUTH, "content-type": "application/json"})
        r = c.getresponse()
        t0 = time.time()
        first = r.readline()
        t_first = time.time() - t0
        rest = r.read()
        t_all = time.time() - t0
        c.close()
        self.assertTrue(first.startswith(b"data: "), first)
        self.assertLess(t_first, t_all / 2, f"first event after {t_first:.3f}s of {t_all:.3f}s: buffered?")
        self.assertIn(b"[DONE]", rest)

    def test_completions_plain_and_stream(self):
        status, _, body, _ = self.gw.post_json("/v1/completions", {"model": "mock-gpt", "prompt": "Say"}, AUTH)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["object"], "text_completion")
        status, _, events, _ = self.gw.stream("/v1/completions", {"model": "mock-gpt", "prompt": "Say", "stream": True},
                                              AUTH)
        self.assertEqual(status, 200)
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(json.loads(events[0])["object"], "text_completion")

    def test_embeddings_float_and_base64(self):
        status, _, body, _ = self.gw.post_json("/v1/embeddings", {"model": "mock-embed", "input": ["a", "b"]}, AUTH)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["data"]), 2)
        self.assertEqual(body["model"], "upstream-embed")
        vec = body["data"][0]["embedding"]
        status, _, b64, _ = self.gw.post_json(
            "/v1/embeddings", {"model": "mock-embed", "input": ["a", "b"], "encoding_format": "base64"}, AUTH)
        self.assertEqual(status, 200)
        raw = base64.b64decode(b64["data"][0]["embedding"])
        floats = struct.unpack(f"<{len(raw) // 4}f", raw)
        self.assertEqual(len(floats), len(vec))
        for x, y in zip(floats, vec):
            self.assertAlmostEqual(x, y, places=5)

    def test_models(self):
        status, _, body = self.gw.request("GET", "/v1/models", headers=AUTH)
        self.assertEqual(status, 200)
        models = json.loads(body)
        self.assertEqual(models["object"], "list")
        ids = sorted(m["id"] for m in models["data"])
        self.assertEqual(ids, ["mock-embed", "mock-gpt", "pair"])
        status, _, one = self.gw.request("GET", "/v1/models/mock-gpt", headers=AUTH)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(one)["id"], "mock-gpt")
        status, _, missing = self.gw.request("GET", "/v1/models/nope", headers=AUTH)
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(missing)["error"]["code"], "model_not_found")

    def test_model_group_spreads_over_deployments(self):
        seen = set()
        for _ in range(40):
            status, hdrs, body, _ = self.gw.post_json("/v1/chat/completions", chat(model="pair"), AUTH)
            self.assertEqual(status, 200)
            seen.add((hdrs["x-litellm-model-id"], body["model"]))
        self.assertEqual(seen, {("dep-a", "pair-a"), ("dep-b", "pair-b")})

    def test_wildcard_group(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(model="wild/some-model"), AUTH)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["model"], "some-model")

    def test_upstream_connections_are_reused(self):
        before = self.mock.get_json("/_mock/stats")["connections_accepted"]
        for _ in range(30):
            self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)
        after = self.mock.get_json("/_mock/stats")["connections_accepted"]
        self.assertLessEqual(after - before, 4, "keep-alive pool should serve sequential calls on few connections")

    def test_client_keep_alive(self):
        c = self.gw.conn()
        for i in range(5):
            c.request("POST", "/v1/chat/completions", body=json.dumps(chat(f"k{i}")),
                      headers={**AUTH, "content-type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        c.close()

    def test_200_concurrent_clients_get_their_own_answers(self):
        def one(i):
            content = f"client-{i}-" + "x" * (i % 17)
            if i % 3 == 0:
                status, _, events, _ = self.gw.stream(
                    "/v1/chat/completions", chat(content, stream=True, x_mock={"echo": True}), AUTH, timeout=60)
                text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                               for e in events[:-1] if json.loads(e)["choices"])
            else:
                status, _, body, _ = self.gw.post_json(
                    "/v1/chat/completions", chat(content, x_mock={"echo": True, "latency_ms": 20}), AUTH, timeout=60)
                text = body["choices"][0]["message"]["content"]
            return status, content, text

        for status, sent, got in run_parallel(200, one):
            self.assertEqual(status, 200)
            self.assertEqual(got, sent)


if __name__ == "__main__":
    unittest.main()
