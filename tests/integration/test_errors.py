"""Bad input, authentication, upstream failures, dropped streams, timeouts and
admission limits: every one answered with an OpenAI-shaped error, never a crash."""

import json
import socket
import time
import unittest

from harness import Gateway, Mock, TempDir, chat, free_port, run_parallel

KEY = "sk-test-master"
AUTH = {"authorization": f"Bearer {KEY}"}


def assert_openai_error(tc, status, body, want_status, want_type=None, want_code=None, want_param=None):
    tc.assertEqual(status, want_status, body)
    tc.assertIsInstance(body, dict, body)
    err = body["error"]
    for field in ("message", "type", "param", "code"):
        tc.assertIn(field, err)
    tc.assertTrue(err["message"])
    if want_type:
        tc.assertEqual(err["type"], want_type)
    if want_code:
        tc.assertEqual(err["code"], want_code)
    if want_param is not None:
        tc.assertEqual(err["param"], want_param)


class ErrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        dead = free_port()
        cls.gw = Gateway(cls.tmp.path, f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/m, api_base: {cls.mock.base}, timeout: 1, stream_timeout: 1}}
  - model_name: dead
    litellm_params: {{model: openai/m, api_base: "http://127.0.0.1:{dead}/v1"}}
  - model_name: limited
    litellm_params: {{model: openai/m, api_base: {cls.mock.base}, rpm: 2}}
  - model_name: one-at-a-time
    litellm_params: {{model: openai/m, api_base: {cls.mock.base}, max_parallel_requests: 1}}
  - model_name: gemini
    litellm_params: {{model: vertex_ai/gemini-1.5-pro}}
  - model_name: claude
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_region_name: us-east-1, aws_profile_name: no-such-profile}}
general_settings:
  master_key: {KEY}
  max_request_size_mb: 0.01
""")

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()
        assert rc == 0, f"gateway exited with {rc}"

    # ---------------------------------------------------------------- auth
    def test_auth_missing_and_wrong_key(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat())
        assert_openai_error(self, status, body, 401, "auth_error")
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(), {"authorization": "Bearer sk-wrong"})
        assert_openai_error(self, status, body, 401, "auth_error")
        self.assertNotIn("sk-wrong", json.dumps(body))
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(), {"authorization": KEY})
        assert_openai_error(self, status, body, 401, "auth_error")  # no "Bearer ": not a key
        status, _, _ = self.gw.request("GET", "/v1/models")
        self.assertEqual(status, 401)

    def test_auth_headers_accepted(self):
        for h in ({"authorization": f"Bearer {KEY}"}, {"api-key": KEY}, {"x-api-key": KEY},
                  {"x-litellm-api-key": KEY}, {"x-litellm-api-key": f"Bearer {KEY}"}):
            status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(), h)
            self.assertEqual(status, 200, (h, body))

    def test_open_routes_need_no_key(self):
        self.assertEqual(self.gw.request("GET", "/health/liveliness")[0], 200)
        status, _, body = self.gw.request("GET", "/health/readiness")
        self.assertEqual(status, 200)
        ready = json.loads(body)
        self.assertEqual(ready["status"], "healthy")
        self.assertIn("dependencies", ready)
        self.assertEqual(self.gw.request("GET", "/metrics")[0], 200)

    def test_master_key_never_logged(self):
        self.gw.post_json("/v1/chat/completions", chat(), {"authorization": "Bearer sk-wrong-secret"})
        out = self.gw.output()
        self.assertNotIn(KEY, out)
        self.assertNotIn("sk-wrong-secret", out)

    # ----------------------------------------------------------- bad input
    def test_bad_bodies(self):
        cases = [
            ("{not json", 400, "invalid_json", None),
            ("", 400, "invalid_json", None),
            ("[1,2]", 400, "invalid_request", None),
            (json.dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "missing_required_parameter", "model"),
            (json.dumps({"model": "mock-gpt"}), 400, "missing_required_parameter", "messages"),
            (json.dumps({"model": "mock-gpt", "messages": "hi"}), 400, "invalid_type", "messages"),
            (json.dumps({"model": 5, "messages": [{"role": "user", "content": "x"}]}), 400, "invalid_type", "model"),
            (json.dumps(chat(stream="yes")), 400, "invalid_type", "stream"),
            (json.dumps(chat(model="no-such-model")), 404, "model_not_found", "model"),
        ]
        for raw, want_status, want_code, want_param in cases:
            status, _, body, data = self.gw.post_json("/v1/chat/completions", raw, AUTH)
            with self.subTest(raw=raw):
                assert_openai_error(self, status, body, want_status, want_code=want_code, want_param=want_param)
        status, _, body, _ = self.gw.post_json("/v1/embeddings", {"model": "mock-gpt"}, AUTH)
        assert_openai_error(self, status, body, 400, want_param="input")
        status, _, body, _ = self.gw.post_json("/v1/completions", {"model": "mock-gpt"}, AUTH)
        assert_openai_error(self, status, body, 400, want_param="prompt")

    def test_wrong_method_and_unknown_route(self):
        status, hdrs, body = self.gw.request("GET", "/v1/chat/completions", headers=AUTH)
        assert_openai_error(self, status, json.loads(body), 405)
        self.assertEqual(hdrs.get("allow"), "POST")
        status, _, body = self.gw.request("POST", "/v1/models", body="{}", headers=AUTH)
        assert_openai_error(self, status, json.loads(body), 405)
        status, _, body = self.gw.request("GET", "/v1/nothing-here", headers=AUTH)
        assert_openai_error(self, status, json.loads(body), 404, want_code="route_not_found")

    def test_oversized_body(self):
        big = chat("x" * 20000)  # over max_request_size_mb: 0.01 (10 KiB)
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", big, AUTH)
        assert_openai_error(self, status, body, 413, want_code="request_too_large")
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)

    def test_malformed_http_is_answered_and_gateway_survives(self):
        for junk in (b"GARBAGE\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                     b"\x00\x01\x02\xff" * 100):
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
            s.sendall(junk)
            data = s.recv(4096)
            s.close()
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 400"), data[:80])
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)

    def test_mutated_bodies_never_crash(self):
        import random
        rng = random.Random(1234)
        base = json.dumps(chat("fuzz me", temperature=0.5, stream=False, n=1, stop=["x"], tools=[]))
        tokens = ['"', "{", "}", "[", "]", ",", ":", "\\", "\\u12", "null", "true", "1e999", "-", "\x00", "\xff",
                  '"model"', '"messages"', '"stream":true']
        for i in range(300):
            b = bytearray(base.encode())
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                pos = rng.randrange(len(b) + 1)
                if op < 0.3 and len(b) > 1:
                    del b[pos % len(b)]
                elif op < 0.6:
                    b[pos:pos] = rng.choice(tokens).encode("latin-1")
                elif op < 0.8 and len(b) > 1:
                    b[pos % len(b)] = rng.randrange(256)
                else:
                    b = b[:pos]
            status, _, body, raw = self.gw.post_json("/v1/chat/completions", bytes(b), AUTH)
            with self.subTest(i=i, body=bytes(b)[:200]):
                self.assertIn(status, (200, 400, 404, 413), raw[:200])
                self.assertIsInstance(body, dict, raw[:200])
                if status != 200:
                    self.assertIn("error", body)
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)

    # ------------------------------------------------------ upstream errors
    def test_upstream_status_and_retry_after_are_kept(self):
        status, hdrs, body, _ = self.gw.post_json(
            "/v1/chat/completions", chat(x_mock={"status": 429, "retry_after": "7"}), AUTH)
        assert_openai_error(self, status, body, 429)
        self.assertEqual(body["error"]["message"], "mock error 429", "the upstream's error body is passed on")
        self.assertEqual(hdrs.get("retry-after"), "7")
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(x_mock={"status": 503}), AUTH)
        assert_openai_error(self, status, body, 503)

    def test_upstream_non_json_error_is_wrapped(self):
        status, _, body, _ = self.gw.post_json(
            "/v1/chat/completions",
            chat(x_mock={"status": 502, "raw_body": "<html>bad gateway</html>", "content_type": "text/html"}), AUTH)
        assert_openai_error(self, status, body, 502, want_code="502")
        self.assertIn("bad gateway", body["error"]["message"])

    def test_upstream_unreachable(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(model="dead"), AUTH)
        assert_openai_error(self, status, body, 502, want_code="upstream_connection_error")

    def test_upstream_timeout(self):
        t0 = time.time()
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(x_mock={"hang": True}), AUTH)
        assert_openai_error(self, status, body, 504, want_code="upstream_timeout")
        self.assertLess(time.time() - t0, 10)

    def test_stream_timeout_mid_stream(self):
        # 1 token/s with stream_timeout 1 s: the gap after the first chunk is too long... use hang-like pacing
        status, _, events, raw = self.gw.stream(
            "/v1/chat/completions", chat(stream=True, x_mock={"tokens": 3, "tokens_per_second": 0.4}), AUTH)
        self.assertEqual(status, 200)
        err = json.loads(events[-1])
        self.assertEqual(err["error"]["code"], "upstream_stream_error")
        self.assertIn("timed out", err["error"]["message"])

    def test_dropped_stream_ends_with_error_event(self):
        status, _, events, raw = self.gw.stream(
            "/v1/chat/completions", chat(stream=True, x_mock={"tokens": 10, "drop_after": 3}), AUTH)
        self.assertEqual(status, 200)
        self.assertNotIn("[DONE]", events)
        err = json.loads(events[-1])
        self.assertEqual(err["error"]["code"], "upstream_stream_error")
        content = [json.loads(e) for e in events[:-1]]
        words = [c["choices"][0]["delta"].get("content") for c in content if c.get("choices")]
        self.assertEqual(len([w for w in words if w]), 3, "every whole event before the drop is delivered")
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)

    def test_dropped_non_streamed_response(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(x_mock={"drop_after": 0}), AUTH)
        assert_openai_error(self, status, body, 502, want_code="upstream_bad_response")

    def test_client_disconnect_mid_stream(self):
        c = self.gw.conn()
        c.request("POST", "/v1/chat/completions",
                  body=json.dumps(chat(stream=True, x_mock={"tokens": 50, "tokens_per_second": 50})),
                  headers={**AUTH, "content-type": "application/json"})
        r = c.getresponse()
        r.readline()
        c.sock.close()
        c.close()
        time.sleep(0.3)
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), AUTH)[0], 200)
        deadline = time.time() + 5
        while time.time() < deadline:
            m = self.gw.request("GET", "/metrics")[2].decode()
            if "litellm_in_flight_requests 0" in m:
                break
            time.sleep(0.1)
        self.assertIn("litellm_in_flight_requests 0", m)

    def test_unsupported_provider(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(model="gemini"), AUTH)
        assert_openai_error(self, status, body, 501)
        self.assertIn("vertex_ai", body["error"]["message"])

    def test_missing_cloud_credentials_are_a_clear_error(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(model="claude"), AUTH)
        assert_openai_error(self, status, body, 502)
        self.assertIn("could not authenticate to the provider", body["error"]["message"])
        self.assertIn("no-such-profile", body["error"]["message"])

    # ------------------------------------------------------------ admission
    def test_deployment_rpm_limit(self):
        results = [self.gw.post_json("/v1/chat/completions", chat(model="limited"), AUTH) for _ in range(3)]
        self.assertEqual([r[0] for r in results[:2]], [200, 200])
        assert_openai_error(self, results[2][0], results[2][2], 429, "rate_limit_error")

    def test_deployment_parallel_limit(self):
        def one(i):
            return self.gw.post_json("/v1/chat/completions", chat(model="one-at-a-time", x_mock={"latency_ms": 300}),
                                     AUTH)[0]
        statuses = run_parallel(4, one)
        self.assertIn(200, statuses)
        self.assertIn(429, statuses)


if __name__ == "__main__":
    unittest.main()
