"""Providers end to end, offline: the gateway in front of the mock provider speaking
Azure OpenAI (api-key and an Entra ID service principal through the fake token
endpoint), AWS Bedrock (SigV4 with a known secret, a Bedrock API key, event-stream
frames) and Anthropic's Messages API. Every provider must give an OpenAI client the
same shape of answer, plain and streamed, with tool calls and usage; Azure-style and
Anthropic-style ingress routes work against any deployment."""

import ipaddress
import json
import socket
import time
import unittest
from decimal import Decimal

from harness import Gateway, Mock, TempDir, mock_post

MASTER = "sk-master-providers"
AUTH = {"authorization": f"Bearer {MASTER}"}
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]

CHAT_GROUPS = ["openai-gpt", "azure-key", "azure-v1", "azure-sp", "bedrock-claude", "bedrock-bearer", "anthropic-claude"]


def config(mock_port, extra_models="", router=""):
    base = f"http://127.0.0.1:{mock_port}"
    return f"""
model_list:
  - model_name: openai-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}/v1}}
  - model_name: azure-key
    litellm_params: {{model: azure/dep-key, api_base: {base}, api_version: "2024-10-21", api_key: mock-azure-key}}
  - model_name: azure-v1
    litellm_params: {{model: azure/dep-v1, api_base: {base}/openai/v1, api_key: mock-azure-key}}
  - model_name: azure-sp
    litellm_params:
      model: azure/dep-sp
      api_base: {base}
      api_version: "2024-10-21"
      tenant_id: tenant-1
      client_id: mock-client-id
      client_secret: mock-client-secret
      azure_authority_host: {base}
  - model_name: azure-safe
    litellm_params: {{model: azure/dep-safe, api_base: {base}, api_key: mock-azure-key}}
  - model_name: bedrock-claude
    litellm_params:
      model: bedrock/{BEDROCK_MODEL}
      aws_region_name: us-east-1
      api_base: {base}
      aws_access_key_id: AKIDMOCK
      aws_secret_access_key: mock-aws-secret
  - model_name: bedrock-bearer
    litellm_params: {{model: bedrock/amazon.nova-pro-v1:0, aws_region_name: us-west-2, api_base: {base}, api_key: mock-bedrock-key}}
  - model_name: bedrock-wrong-secret
    litellm_params:
      model: bedrock/{BEDROCK_MODEL}
      aws_region_name: us-east-1
      api_base: {base}
      aws_access_key_id: AKIDMOCK
      aws_secret_access_key: not-the-secret
  - model_name: titan-embed
    litellm_params: {{model: bedrock/amazon.titan-embed-text-v2:0, aws_region_name: us-east-1, api_base: {base}, api_key: mock-bedrock-key}}
    model_info: {{mode: embedding}}
  - model_name: anthropic-claude
    litellm_params: {{model: anthropic/claude-sonnet-4-20250514, api_base: {base}, api_key: sk-ant-mock}}
{extra_models}
router_settings:
  num_retries: 1
  content_policy_fallbacks: [{{"azure-key": ["azure-safe"]}}]
{router}
general_settings:
  master_key: {MASTER}
gateway_settings:
  retry_backoff_base: 0.01
  retry_backoff_max: 0.05
"""


def chat_body(model, content="hello there", **extra):
    b = {"model": model, "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": content}]}
    b.update(extra)
    return b


class ProvidersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path, "--anthropic-api-key", "sk-ant-mock")
        cls.gw = Gateway(cls.tmp.path, config(cls.mock.port))

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def setUp(self):
        c = self.mock
        import http.client
        h = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
        h.request("DELETE", "/_mock/faults")
        h.getresponse().read()
        h.close()

    def fault(self, model, x_mock, count=1):
        import http.client
        h = http.client.HTTPConnection("127.0.0.1", self.mock.port, timeout=10)
        h.request("POST", "/_mock/faults", body=json.dumps({"model": model, "count": count, "x_mock": x_mock}),
                  headers={"content-type": "application/json"})
        r = h.getresponse()
        r.read()
        h.close()
        self.assertEqual(r.status, 200)

    def last_request(self):
        return self.mock.get_json("/_mock/last_request")

    # ------------------------------------------------------------ OpenAI shape from every provider

    def check_completion(self, group, data):
        self.assertEqual(data["object"], "chat.completion", data)
        self.assertTrue(isinstance(data["model"], str) and data["model"], data)  # the model that answered
        msg = data["choices"][0]["message"]
        self.assertEqual(msg["role"], "assistant")
        self.assertTrue(msg["content"], data)
        self.assertEqual(data["choices"][0]["finish_reason"], "stop")
        u = data["usage"]
        self.assertGreater(u["prompt_tokens"], 0)
        self.assertGreater(u["completion_tokens"], 0)
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])

    def test_plain_chat_from_every_provider(self):
        for group in CHAT_GROUPS:
            with self.subTest(group=group):
                status, hdrs, data, raw = self.gw.post_json("/v1/chat/completions", chat_body(group), AUTH)
                self.assertEqual(status, 200, raw)
                self.check_completion(group, data)

    def test_streamed_chat_from_every_provider(self):
        for group in CHAT_GROUPS:
            with self.subTest(group=group):
                status, hdrs, events, raw = self.gw.stream(
                    "/v1/chat/completions", chat_body(group, stream=True, stream_options={"include_usage": True}), AUTH)
                self.assertEqual(status, 200, raw)
                self.assertTrue(hdrs["content-type"].startswith("text/event-stream"))
                self.assertEqual(events[-1], "[DONE]")
                chunks = [json.loads(e) for e in events[:-1]]
                for c in chunks:
                    self.assertEqual(c["object"], "chat.completion.chunk")
                with_choices = [c for c in chunks if c["choices"]]
                # No chunk without choices except the usage chunk (Azure's prompt-filter chunk is dropped).
                self.assertEqual(len(chunks) - len(with_choices), 1, chunks)
                self.assertEqual(with_choices[0]["choices"][0]["delta"].get("role"), "assistant")
                text = "".join(c["choices"][0]["delta"].get("content") or "" for c in with_choices)
                self.assertTrue(text.strip(), chunks)
                self.assertEqual(with_choices[-1]["choices"][0]["finish_reason"], "stop")
                usage = chunks[-1]["usage"]
                self.assertGreater(usage["completion_tokens"], 0)
                self.assertGreater(usage["prompt_tokens"], 0)

    def test_stream_without_usage_option_has_no_usage_chunk(self):
        for group in ["azure-key", "bedrock-claude", "anthropic-claude"]:
            with self.subTest(group=group):
                status, _, events, raw = self.gw.stream("/v1/chat/completions", chat_body(group, stream=True), AUTH)
                self.assertEqual(status, 200, raw)
                chunks = [json.loads(e) for e in events[:-1]]
                self.assertTrue(all(c["choices"] for c in chunks), chunks)

    def test_tool_calls_plain_streamed_and_results(self):
        for group in CHAT_GROUPS:
            with self.subTest(group=group):
                body = chat_body(group, "Paris", tools=TOOLS)
                status, _, data, raw = self.gw.post_json("/v1/chat/completions", body, AUTH)
                self.assertEqual(status, 200, raw)
                choice = data["choices"][0]
                self.assertEqual(choice["finish_reason"], "tool_calls", data)
                call = choice["message"]["tool_calls"][0]
                self.assertEqual(call["type"], "function")
                self.assertEqual(call["function"]["name"], "get_weather")
                self.assertEqual(json.loads(call["function"]["arguments"]), {"query": "Paris"})
                self.assertTrue(call["id"])
                # Streamed: the call assembled from deltas.
                status, _, events, raw = self.gw.stream("/v1/chat/completions", dict(body, stream=True), AUTH)
                self.assertEqual(status, 200, raw)
                chunks = [json.loads(e) for e in events[:-1]]
                name, args, ids = "", "", set()
                for c in chunks:
                    for tc in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
                        self.assertEqual(tc["index"], 0)
                        if tc.get("id"):
                            ids.add(tc["id"])
                        fn = tc.get("function") or {}
                        name += fn.get("name") or ""
                        args += fn.get("arguments") or ""
                self.assertEqual(name, "get_weather")
                self.assertEqual(json.loads(args), {"query": "Paris"})
                self.assertEqual(len(ids), 1)
                self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1], "tool_calls")
                # The tool's result goes back; the model answers with text.
                follow = chat_body(group, "Paris", tools=TOOLS)
                follow["messages"] += [
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": call["id"], "content": "sunny 21C"},
                ]
                status, _, data, raw = self.gw.post_json("/v1/chat/completions", follow, AUTH)
                self.assertEqual(status, 200, raw)
                self.assertEqual(data["choices"][0]["finish_reason"], "stop")
                self.assertIn("sunny", data["choices"][0]["message"]["content"])

    # ------------------------------------------------------------ Azure

    def test_azure_paths_auth_and_filter_annotations(self):
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("azure-key"), AUTH)
        self.assertEqual(status, 200, raw)
        self.assertIn("prompt_filter_results", data)  # Azure's annotations pass through
        sent = self.last_request()
        self.assertEqual(sent["target"], "/openai/deployments/dep-key/chat/completions?api-version=2024-10-21")
        self.assertEqual(sent["headers"]["api-key"], "mock-azure-key")
        self.assertNotIn("authorization", sent["headers"])
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("azure-v1"), AUTH)
        self.assertEqual(status, 200, raw)
        sent = self.last_request()
        self.assertEqual(sent["target"], "/openai/v1/chat/completions")
        self.assertEqual(json.loads(sent["body"])["model"], "dep-v1")

    def test_azure_service_principal_token_cached(self):
        before = self.mock.get_json("/_mock/stats")["entra_tokens_issued"]
        for _ in range(5):
            status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("azure-sp"), AUTH)
            self.assertEqual(status, 200, raw)
        sent = self.last_request()
        self.assertTrue(sent["headers"]["authorization"].startswith("Bearer mock-entra-"), sent["headers"])
        self.assertNotIn("api-key", sent["headers"])
        after = self.mock.get_json("/_mock/stats")["entra_tokens_issued"]
        self.assertLessEqual(after - before, 1, "one token serves many calls")
        self.assertGreaterEqual(after, 1)

    def test_azure_content_filter_is_400_and_falls_back(self):
        refusal = {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                             "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                             "innererror": {"code": "ResponsibleAIPolicyViolation",
                                            "content_filter_result": {"hate": {"filtered": True, "severity": "high"}}}}}
        self.fault("dep-key", {"status": 400, "raw_body": json.dumps(refusal), "content_type": "application/json"})
        status, hdrs, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("azure-key"), AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual(hdrs["x-litellm-model-group"], "azure-safe")
        self.assertEqual(hdrs["x-litellm-attempted-fallbacks"], "1")
        # Without a fallback the refusal reaches the client as a clear 400.
        self.fault("dep-safe", {"status": 400, "raw_body": json.dumps(refusal), "content_type": "application/json"})
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("azure-safe"), AUTH)
        self.assertEqual(status, 400, raw)
        self.assertEqual(data["error"]["code"], "content_filter")
        self.assertIsInstance(data["error"]["type"], str)
        self.assertIn("content", data["error"]["message"])

    # ------------------------------------------------------------ Bedrock

    def test_bedrock_sigv4_and_paths(self):
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("bedrock-claude"), AUTH)
        self.assertEqual(status, 200, raw)
        sent = self.last_request()
        self.assertEqual(sent["target"], "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
        self.assertTrue(sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDMOCK/"), sent["headers"])
        self.assertIn("/us-east-1/bedrock/aws4_request", sent["headers"]["authorization"])
        self.assertIn("x-amz-date", sent["headers"])
        body = json.loads(sent["body"])
        self.assertEqual(body["system"], [{"text": "Be terse."}])
        # A wrong secret: the mock rejects the signature; the client learns it was the provider's auth.
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("bedrock-wrong-secret"), AUTH)
        self.assertIn(status, (401, 403), raw)
        self.assertIn("Bedrock", data["error"]["message"])

    def test_bedrock_throttling_is_429_and_retried(self):
        self.fault(BEDROCK_MODEL, {"status": 429})
        status, hdrs, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("bedrock-claude"), AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual(hdrs["x-litellm-attempted-retries"], "1")
        self.fault(BEDROCK_MODEL, {"status": 429}, count=2)
        status, hdrs, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("bedrock-claude"), AUTH)
        self.assertEqual(status, 429, raw)
        self.assertEqual(data["error"]["type"], "rate_limit_error")
        self.assertIn("Throttling", data["error"]["message"])

    def test_bedrock_stream_broken_mid_way(self):
        self.fault(BEDROCK_MODEL, {"drop_after": 2})
        status, _, events, raw = self.gw.stream(
            "/v1/chat/completions", chat_body("bedrock-claude", stream=True), AUTH)
        self.assertEqual(status, 200)
        last = json.loads(events[-1])
        self.assertIn("error", last)

    def test_bedrock_corrupt_frame(self):
        # Before the client saw anything (all frames in one read): the attempt is
        # retried and the client gets a whole answer.
        self.fault(BEDROCK_MODEL, {"corrupt_after": 3})
        status, hdrs, events, raw = self.gw.stream(
            "/v1/chat/completions", chat_body("bedrock-claude", stream=True), AUTH)
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["x-litellm-attempted-retries"], "1")
        self.assertEqual(events[-1], "[DONE]")
        # Mid-stream (frames paced): the good frames were relayed, then a clear error event.
        self.fault(BEDROCK_MODEL, {"corrupt_after": 3, "tokens_per_second": 100})
        status, _, events, raw = self.gw.stream(
            "/v1/chat/completions", chat_body("bedrock-claude", stream=True), AUTH)
        self.assertEqual(status, 200)
        chunks = [json.loads(e) for e in events]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        self.assertEqual(len(text.split()), 3, "the three good frames were relayed")
        self.assertIn("CRC", chunks[-1]["error"]["message"])
        # The gateway is fine afterwards.
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("bedrock-claude"), AUTH)
        self.assertEqual(status, 200, raw)

    def test_bedrock_image_urls(self):
        def body(url):
            return {"model": "bedrock-claude", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]}]}
        # Off by default: a clear 400 saying so.
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", body(f"http://127.0.0.1:{self.mock.port}/_mock/image.png"), AUTH)
        self.assertEqual(status, 400, raw)
        self.assertIn("fetch_image_urls", data["error"]["message"])
        # On, with private addresses allowed (the mock is on loopback): fetched and sent inline.
        tmp = TempDir()
        gw = Gateway(tmp.path, config(self.mock.port).replace("gateway_settings:", "gateway_settings:\n  fetch_image_urls: true\n  image_fetch_allow_private: true"))
        try:
            status, _, data, raw = gw.post_json("/v1/chat/completions", body(f"http://127.0.0.1:{self.mock.port}/_mock/image.png"), AUTH)
            self.assertEqual(status, 200, raw)
            sent = json.loads(self.last_request()["body"])
            image = sent["messages"][0]["content"][1]["image"]
            self.assertEqual(image["format"], "png")
            self.assertTrue(image["source"]["bytes"].startswith("iVBORw0KGgo"), image)  # base64 of the PNG magic
            status, _, data, raw = gw.post_json("/v1/chat/completions", body(f"http://127.0.0.1:{self.mock.port}/health"), AUTH)
            self.assertEqual(status, 400, raw)
            self.assertIn("not a png", data["error"]["message"])
        finally:
            gw.terminate()
            tmp.cleanup()
        # On, private addresses refused (the default): instance metadata is out of reach.
        tmp = TempDir()
        gw = Gateway(tmp.path, config(self.mock.port).replace("gateway_settings:", "gateway_settings:\n  fetch_image_urls: true"))
        try:
            for url in ["http://169.254.169.254/latest/meta-data/", f"http://127.0.0.1:{self.mock.port}/_mock/image.png",
                        "http://localhost/x.png", "http://[::1]/x.png", "http://10.0.0.1/x.png"]:
                status, _, data, raw = gw.post_json("/v1/chat/completions", body(url), AUTH)
                self.assertEqual(status, 400, raw)
                self.assertIn("private", data["error"]["message"])
            # A name is checked on the addresses it resolves to (the ones dialled): this
            # machine's host name resolves to loopback through /etc/hosts.
            host = socket.gethostname()
            try:
                looped = all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, 80))
            except OSError:
                looped = False
            if looped:
                before = self.mock.get_json("/_mock/stats")["requests"]
                status, _, data, raw = gw.post_json(
                    "/v1/chat/completions", body(f"http://{host}:{self.mock.port}/_mock/image.png"), AUTH)
                self.assertEqual(status, 400, raw)
                self.assertIn("resolves only to loopback, private or link-local", data["error"]["message"])
                self.assertEqual(self.mock.get_json("/_mock/stats")["requests"], before,
                                 "nothing was fetched or sent upstream")
        finally:
            gw.terminate()
            tmp.cleanup()

    def test_bedrock_embeddings(self):
        status, _, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-embed", "input": "hello"}, AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual(data["object"], "list")
        self.assertEqual(len(data["data"]), 1)
        self.assertGreater(len(data["data"][0]["embedding"]), 0)
        # Several inputs: one InvokeModel call each (CompletionsAndTitanTest has the details).
        status, _, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-embed", "input": ["a", "b"]}, AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual([d["index"] for d in data["data"]], [0, 1])

    # ------------------------------------------------------------ Anthropic

    def test_anthropic_headers_and_errors(self):
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("anthropic-claude"), AUTH)
        self.assertEqual(status, 200, raw)
        sent = self.last_request()
        self.assertEqual(sent["target"], "/v1/messages")
        self.assertEqual(sent["headers"]["x-api-key"], "sk-ant-mock")
        self.assertEqual(sent["headers"]["anthropic-version"], "2023-06-01")
        body = json.loads(sent["body"])
        self.assertEqual(body["system"], "Be terse.")
        self.assertGreater(body["max_tokens"], 0)
        self.fault("claude-sonnet-4-20250514", {"status": 529}, count=2)
        status, _, data, raw = self.gw.post_json("/v1/chat/completions", chat_body("anthropic-claude"), AUTH)
        self.assertEqual(status, 503, raw)
        self.assertIn("overloaded", data["error"]["message"].lower())

    def test_unsupported_operation_is_clear_400(self):
        status, _, data, raw = self.gw.post_json("/v1/embeddings", {"model": "anthropic-claude", "input": "x"}, AUTH)
        self.assertEqual(status, 400, raw)
        self.assertIn("do not serve", data["error"]["message"])

    # ------------------------------------------------------------ ingress

    def test_azure_style_ingress(self):
        path = "/openai/deployments/openai-gpt/chat/completions?api-version=2024-10-21"
        status, _, data, raw = self.gw.post_json(path, {"messages": [{"role": "user", "content": "hi"}]},
                                                 {"api-key": MASTER})
        self.assertEqual(status, 200, raw)
        self.check_completion("openai-gpt", data)
        status, _, data, raw = self.gw.post_json("/openai/deployments/titan-embed/embeddings?api-version=2024-10-21",
                                                 {"input": "hi"}, {"api-key": MASTER})
        self.assertEqual(status, 200, raw)
        status, _, data, raw = self.gw.post_json(path, {"messages": [{"role": "user", "content": "hi"}]},
                                                 {"api-key": "wrong"})
        self.assertEqual(status, 401, raw)

    def anthropic_request(self, model, stream=False, tools=False, key=MASTER):
        body = {"model": model, "max_tokens": 100, "system": "Be terse.",
                "messages": [{"role": "user", "content": "Paris"}]}
        if stream:
            body["stream"] = True
        if tools:
            body["tools"] = [{"name": "get_weather", "description": "Weather",
                              "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]
        return body, {"x-api-key": key, "anthropic-version": "2023-06-01"}

    def test_anthropic_ingress_plain_and_tools(self):
        for group in ["openai-gpt", "anthropic-claude", "bedrock-claude"]:
            with self.subTest(group=group):
                body, headers = self.anthropic_request(group)
                status, _, data, raw = self.gw.post_json("/v1/messages", body, headers)
                self.assertEqual(status, 200, raw)
                self.assertEqual(data["type"], "message")
                self.assertEqual(data["role"], "assistant")
                self.assertEqual(data["content"][0]["type"], "text")
                self.assertTrue(data["content"][0]["text"])
                self.assertEqual(data["stop_reason"], "end_turn")
                self.assertGreater(data["usage"]["output_tokens"], 0)
                self.assertGreater(data["usage"]["input_tokens"], 0)
                body, headers = self.anthropic_request(group, tools=True)
                status, _, data, raw = self.gw.post_json("/v1/messages", body, headers)
                self.assertEqual(status, 200, raw)
                self.assertEqual(data["stop_reason"], "tool_use")
                use = [b for b in data["content"] if b["type"] == "tool_use"][0]
                self.assertEqual(use["name"], "get_weather")
                self.assertEqual(use["input"], {"query": "Paris"})

    def test_anthropic_ingress_stream(self):
        for group in ["openai-gpt", "anthropic-claude"]:
            with self.subTest(group=group):
                body, headers = self.anthropic_request(group, stream=True)
                c = self.gw.conn()
                c.request("POST", "/v1/messages", body=json.dumps(body), headers={**headers, "content-type": "application/json"})
                r = c.getresponse()
                text = r.read().decode()
                c.close()
                self.assertEqual(r.status, 200, text)
                names = [line[7:].strip() for line in text.split("\n") if line.startswith("event: ")]
                self.assertEqual(names[0], "message_start")
                self.assertEqual(names[-1], "message_stop")
                self.assertIn("content_block_delta", names)
                self.assertIn("message_delta", names)
                deltas = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
                words = "".join(d["delta"].get("text", "") for d in deltas if d["type"] == "content_block_delta")
                self.assertTrue(words.strip())
                md = [d for d in deltas if d["type"] == "message_delta"][0]
                self.assertEqual(md["delta"]["stop_reason"], "end_turn")
                self.assertGreater(md["usage"]["output_tokens"], 0)

    def test_anthropic_ingress_errors_in_anthropic_shape(self):
        body, headers = self.anthropic_request("openai-gpt", key="sk-wrong")
        status, _, data, raw = self.gw.post_json("/v1/messages", body, headers)
        self.assertEqual(status, 401, raw)
        self.assertEqual(data["type"], "error")
        self.assertEqual(data["error"]["type"], "authentication_error")
        body, headers = self.anthropic_request("openai-gpt")
        del body["max_tokens"]
        status, _, data, raw = self.gw.post_json("/v1/messages", body, headers)
        self.assertEqual(status, 400, raw)
        self.assertEqual(data["error"]["type"], "invalid_request_error")
        body, headers = self.anthropic_request("no-such-model")
        status, _, data, raw = self.gw.post_json("/v1/messages", body, headers)
        self.assertEqual(status, 404, raw)
        self.assertEqual(data["type"], "error")
        status, _, data, raw = self.gw.post_json("/v1/messages", b"{not json", headers)
        self.assertEqual(status, 400, raw)
        self.assertEqual(data["type"], "error")
        status, hdrs, raw = self.gw.request("GET", "/v1/messages", headers=headers)
        self.assertEqual(status, 405, raw)
        self.assertEqual(json.loads(raw)["type"], "error")
        self.assertEqual(hdrs["allow"], "POST")


def priced_models(port):
    base = f"http://127.0.0.1:{port}"
    return f"""
  - model_name: bedrock-priced
    litellm_params:
      model: bedrock/{BEDROCK_MODEL}
      aws_region_name: us-east-1
      api_base: {base}
      aws_access_key_id: AKIDMOCK
      aws_secret_access_key: mock-aws-secret
    model_info: {{input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}}
  - model_name: anthropic-priced
    litellm_params: {{model: anthropic/claude-sonnet-4-20250514, api_base: {base}, api_key: sk-ant-mock}}
    model_info: {{input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}}
  - model_name: titan-sigv4
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v2:0
      aws_region_name: us-east-1
      api_base: {base}
      aws_access_key_id: AKIDMOCK
      aws_secret_access_key: mock-aws-secret
    model_info: {{mode: embedding, input_cost_per_token: 0.0000001}}
"""


TITAN_MODEL = "amazon.titan-embed-text-v2:0"


class CompletionsAndTitanTest(unittest.TestCase):
    """/v1/completions on Bedrock and Anthropic deployments (served through chat), and
    Titan embeddings with several inputs (one InvokeModel call per input)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path, "--anthropic-api-key", "sk-ant-mock")
        cfg = config(cls.mock.port, extra_models=priced_models(cls.mock.port))
        cfg = cfg.replace("gateway_settings:", "gateway_settings:\n  spend_flush_interval: 0.1")
        cls.gw = Gateway(cls.tmp.path, cfg)

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def setUp(self):
        mock_post(self.mock, "/_mock/faults", method="DELETE")

    def fault(self, model, x_mock, count=1):
        mock_post(self.mock, "/_mock/faults", {"model": model, "count": count, "x_mock": x_mock})

    def titan_calls(self):
        return self.mock.get_json("/_mock/stats")["models"].get(TITAN_MODEL, 0)

    def new_key(self):
        status, _, data, raw = self.gw.post_json("/key/generate", {}, AUTH)
        self.assertEqual(status, 200, raw)
        return data["key"]

    def spend_log(self, key, request_id, timeout=10.0):
        deadline = time.time() + timeout
        while True:
            status, _, raw = self.gw.request("GET", f"/spend/logs?api_key={key}", headers=AUTH)
            self.assertEqual(status, 200, raw)
            rows = [r for r in json.loads(raw) if r["request_id"] == request_id]
            if rows or time.time() > deadline:
                return rows[0] if rows else None
            time.sleep(0.05)

    # ------------------------------------------------------------ completions through chat

    def check_usage_and_spend(self, key, hdrs, usage):
        self.assertGreater(usage["prompt_tokens"], 0)
        self.assertGreater(usage["completion_tokens"], 0)
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])
        want = usage["prompt_tokens"] * Decimal("0.000003") + usage["completion_tokens"] * Decimal("0.000015")
        if "x-litellm-response-cost" in hdrs:  # not for streams: their head goes before the usage
            self.assertEqual(Decimal(hdrs["x-litellm-response-cost"]), want)
        row = self.spend_log(key, hdrs["x-litellm-call-id"])
        self.assertIsNotNone(row, "no spend log row")
        self.assertEqual(row["call_type"], "text_completion")
        self.assertEqual(row["prompt_tokens"], usage["prompt_tokens"])
        self.assertEqual(row["completion_tokens"], usage["completion_tokens"])
        self.assertEqual(Decimal(row["spend_exact"]), want)

    def test_plain_completions_on_bedrock_and_anthropic(self):
        key = self.new_key()
        for group in ["bedrock-priced", "anthropic-priced"]:
            for path in ["/v1/completions", "/completions"]:
                with self.subTest(group=group, path=path):
                    status, hdrs, data, raw = self.gw.post_json(
                        path, {"model": group, "prompt": "hello there", "max_tokens": 50, "temperature": 0.2},
                        {"authorization": f"Bearer {key}"})
                    self.assertEqual(status, 200, raw)
                    self.assertEqual(data["object"], "text_completion", data)
                    self.assertTrue(data["id"].startswith("cmpl-"), data)
                    self.assertTrue(data["model"])
                    choice = data["choices"][0]
                    self.assertEqual(set(choice), {"text", "index", "logprobs", "finish_reason"}, choice)
                    self.assertTrue(choice["text"].strip(), data)
                    self.assertEqual(choice["index"], 0)
                    self.assertIsNone(choice["logprobs"])
                    self.assertEqual(choice["finish_reason"], "stop")
                    self.check_usage_and_spend(key, hdrs, data["usage"])
                    # The provider got a chat request with the prompt as the one user message.
                    sent = json.loads(self.mock.get_json("/_mock/last_request")["body"])
                    if group.startswith("bedrock"):
                        self.assertEqual(sent["messages"], [{"role": "user", "content": [{"text": "hello there"}]}])
                        self.assertEqual(sent["inferenceConfig"]["maxTokens"], 50)
                    else:
                        self.assertEqual(sent["messages"], [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
                        self.assertEqual(sent["max_tokens"], 50)

    def test_streamed_completions_on_bedrock_and_anthropic(self):
        key = self.new_key()
        for group in ["bedrock-priced", "anthropic-priced"]:
            for include_usage in [True, False]:
                with self.subTest(group=group, include_usage=include_usage):
                    body = {"model": group, "prompt": "hello there", "stream": True}
                    if include_usage:
                        body["stream_options"] = {"include_usage": True}
                    status, hdrs, events, raw = self.gw.stream("/v1/completions", body, {"authorization": f"Bearer {key}"})
                    self.assertEqual(status, 200, raw)
                    self.assertTrue(hdrs["content-type"].startswith("text/event-stream"))
                    self.assertEqual(events[-1], "[DONE]")
                    chunks = [json.loads(e) for e in events[:-1]]
                    for c in chunks:
                        self.assertEqual(c["object"], "text_completion", c)
                        self.assertTrue(c["id"].startswith("cmpl-"), c)
                        for ch in c["choices"]:
                            self.assertNotIn("delta", ch)
                            self.assertIsNone(ch["logprobs"])
                    with_choices = [c for c in chunks if c["choices"]]
                    text = "".join(c["choices"][0]["text"] for c in with_choices)
                    self.assertTrue(text.strip(), chunks)
                    self.assertEqual([c["choices"][0]["finish_reason"] for c in with_choices][-1], "stop")
                    self.assertTrue(all(c["choices"][0]["text"] or c["choices"][0]["finish_reason"] for c in with_choices))
                    if include_usage:
                        self.assertEqual(len(chunks) - len(with_choices), 1, chunks)
                        usage = chunks[-1]["usage"]
                        self.check_usage_and_spend(key, hdrs, usage)
                    else:
                        self.assertEqual(len(chunks), len(with_choices), chunks)
                        # No usage for the client, but the gateway still charges what the provider reported.
                        row = self.spend_log(key, hdrs["x-litellm-call-id"])
                        self.assertIsNotNone(row)
                        self.assertGreater(row["completion_tokens"], 0)
                        self.assertGreater(Decimal(row["spend_exact"]), 0)

    def test_completions_azure_style_path_and_throttling_retried(self):
        status, _, data, raw = self.gw.post_json("/openai/deployments/anthropic-priced/completions?api-version=2024-10-21",
                                                 {"prompt": "hi"}, {"api-key": MASTER})
        self.assertEqual(status, 200, raw)
        self.assertEqual(data["object"], "text_completion")
        # Retries work as for chat: each attempt translates the client's body again.
        self.fault(BEDROCK_MODEL, {"status": 429})
        status, hdrs, data, raw = self.gw.post_json("/v1/completions", {"model": "bedrock-priced", "prompt": "hi"}, AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual(hdrs["x-litellm-attempted-retries"], "1")
        self.assertEqual(data["object"], "text_completion")

    def test_completions_refusals(self):
        cases = [({"prompt": ["a", "b"]}, "prompt"), ({"prompt": [1, 2]}, "prompt"), ({"prompt": "x", "suffix": "y"}, "suffix"),
                 ({"prompt": "x", "echo": True}, "echo"), ({"prompt": "x", "best_of": 2}, "best_of"),
                 ({"prompt": "x", "logprobs": 1}, "logprobs")]
        for group, provider in [("bedrock-priced", "Bedrock"), ("anthropic-priced", "Anthropic")]:
            for extra, param in cases:
                with self.subTest(group=group, param=param):
                    before = self.mock.get_json("/_mock/stats")["requests"]
                    status, _, data, raw = self.gw.post_json("/v1/completions", dict(extra, model=group), AUTH)
                    self.assertEqual(status, 400, raw)
                    self.assertEqual(data["error"]["param"], param)
                    self.assertEqual(data["error"]["type"], "invalid_request_error")
                    self.assertIn(provider, data["error"]["message"])
                    self.assertIn(param, data["error"]["message"])
                    self.assertEqual(self.mock.get_json("/_mock/stats")["requests"], before, "nothing was sent")

    # ------------------------------------------------------------ Titan, several inputs

    def single_embedding(self, text):
        status, _, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-sigv4", "input": text}, AUTH)
        self.assertEqual(status, 200, raw)
        return data["data"][0]["embedding"], data["usage"]["prompt_tokens"]

    def test_titan_several_inputs_one_call_each(self):
        texts = ["first text", "the second one", "third"]
        singles = [self.single_embedding(t) for t in texts]
        for group in ["titan-sigv4", "titan-embed"]:  # SigV4 (each call signed), a Bedrock API key
            with self.subTest(group=group):
                before = self.titan_calls()
                status, hdrs, data, raw = self.gw.post_json("/v1/embeddings", {"model": group, "input": texts}, AUTH)
                self.assertEqual(status, 200, raw)
                self.assertEqual(self.titan_calls() - before, 3)
                self.assertEqual(data["object"], "list")
                self.assertEqual([d["index"] for d in data["data"]], [0, 1, 2])
                # In input order: each is what the text alone gives.
                for d, (vector, _) in zip(data["data"], singles):
                    self.assertEqual(d["embedding"], vector)
                self.assertEqual(data["usage"]["prompt_tokens"], sum(t for _, t in singles))
                self.assertEqual(data["usage"]["total_tokens"], data["usage"]["prompt_tokens"])
                if group == "titan-sigv4":
                    self.assertEqual(Decimal(hdrs["x-litellm-response-cost"]),
                                     data["usage"]["prompt_tokens"] * Decimal("0.0000001"))
        status, _, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-embed", "input": ["x"] * 2049}, AUTH)
        self.assertEqual(status, 400, raw)
        self.assertIn("2048", data["error"]["message"])

    def test_titan_failing_second_call_fails_the_attempt(self):
        texts = ["one", "two", "three"]
        # The first call passes (an empty fault), the second is refused: the attempt's
        # answer is that call's error, and the third call is never sent.
        self.fault(TITAN_MODEL, {}, count=1)
        self.fault(TITAN_MODEL, {"status": 400}, count=1)
        before = self.titan_calls()
        status, hdrs, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-embed", "input": texts}, AUTH)
        self.assertEqual(status, 400, raw)
        self.assertIn("Bedrock ValidationException", data["error"]["message"])
        self.assertEqual(hdrs["x-litellm-attempted-retries"], "0")
        self.assertEqual(self.titan_calls() - before, 2)
        # A retryable failure of the second call: the retry starts again from input 0.
        self.fault(TITAN_MODEL, {}, count=1)
        self.fault(TITAN_MODEL, {"status": 503}, count=1)
        before = self.titan_calls()
        status, hdrs, data, raw = self.gw.post_json("/v1/embeddings", {"model": "titan-embed", "input": texts}, AUTH)
        self.assertEqual(status, 200, raw)
        self.assertEqual(hdrs["x-litellm-attempted-retries"], "1")
        self.assertEqual(self.titan_calls() - before, 2 + 3)
        self.assertEqual([d["index"] for d in data["data"]], [0, 1, 2])


class EntraRefreshTest(unittest.TestCase):
    def test_token_refreshed_before_expiry(self):
        """Tokens living 2 s are renewed in the background before they expire: no
        request fails or waits for a token, and one token request serves many calls."""
        tmp = TempDir()
        mock = Mock(tmp.path, "--entra-token-ttl-s", "2")
        gw = Gateway(tmp.path, config(mock.port))
        try:
            n = 0
            deadline = time.time() + 4.5
            while time.time() < deadline:
                status, _, data, raw = gw.post_json("/v1/chat/completions", chat_body("azure-sp"), AUTH)
                self.assertEqual(status, 200, raw)
                n += 1
                time.sleep(0.05)
            issued = mock.get_json("/_mock/stats")["entra_tokens_issued"]
            self.assertGreaterEqual(issued, 2, "renewed at least once in 4.5 s")
            self.assertLessEqual(issued, 5, "renewed near the end of each lifetime, not per call")
            self.assertGreater(n, 20)
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()


class AwsCredentialChainTest(unittest.TestCase):
    """SigV4 credentials found the way AWS SDKs find them, through the fake STS,
    container-credentials and instance-metadata endpoints of the mock."""

    def run_chain(self, env_for, stat):
        tmp = TempDir()
        mock = Mock(tmp.path, "--aws-temp-ttl-s", "3600")
        cfg = f"""
model_list:
  - model_name: claude
    litellm_params: {{model: bedrock/{BEDROCK_MODEL}, aws_region_name: us-east-1, api_base: http://127.0.0.1:{mock.port}}}
general_settings:
  master_key: {MASTER}
"""
        env = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": tmp.path + "/none",
               "AWS_CONFIG_FILE": tmp.path + "/none", "HOME": tmp.path}
        env.update(env_for(tmp, mock))
        gw = Gateway(tmp.path, cfg, env=env)
        try:
            for _ in range(3):
                status, _, data, raw = gw.post_json("/v1/chat/completions", chat_body("claude"), AUTH)
                self.assertEqual(status, 200, raw)
            sent = mock.get_json("/_mock/last_request")
            self.assertIn("x-amz-security-token", sent["headers"])
            self.assertEqual(mock.get_json("/_mock/stats")[stat], 1, "fetched once, then cached")
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()

    def test_web_identity_through_sts(self):
        def env(tmp, mock):
            with open(tmp.path + "/token", "w") as f:
                f.write("eyJ.web.identity")
            return {"AWS_WEB_IDENTITY_TOKEN_FILE": tmp.path + "/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/gw",
                    "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{mock.port}"}
        self.run_chain(env, "sts_calls")

    def test_container_credentials(self):
        def env(tmp, mock):
            return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{mock.port}/_creds/container"}
        self.run_chain(env, "container_calls")

    def test_instance_metadata(self):
        def env(tmp, mock):
            return {"AWS_EC2_METADATA_DISABLED": "false",
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{mock.port}"}
        self.run_chain(env, "imds_calls")


if __name__ == "__main__":
    unittest.main()
