"""Money that must not leak (issue 18, items 1 and 2): a stream that ends abnormally
(the client hangs up: 499; the provider breaks it: 502) is charged for what was
delivered; the reservation of a request saturates instead of overflowing and counts
every part of the body (tools, response formats, images), and a budget stops admitting
once actual spend has crossed it, even when the provider answered far more than was
reserved."""

import json
import socket
import threading
import time
import unittest

from harness import Gateway, Mock, TempDir, chat

MASTER = "sk-master-money"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, extra=""):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.00001, max_output_tokens: 256}}
general_settings:
  master_key: {MASTER}
gateway_settings:
  spend_flush_interval: 0.1
{extra}
"""


def bearer(key):
    return {"authorization": f"Bearer {key}"}


class MoneyLeaksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock), env={"TMPDIR": cls.tmp.path})
        cls.strict = Gateway(cls.tmp.path, config(cls.mock, "  budget_enforcement: strict"), name="strict",
                             env={"TMPDIR": cls.tmp.path})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.strict.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def key(self, g, **fields):
        status, _, body, raw = g.post_json("/key/generate", fields, ADMIN)
        self.assertEqual(status, 200, raw)
        return body["key"]

    def info(self, g, key):
        status, _, data = g.request("GET", f"/key/info?key={key}", headers=ADMIN)
        self.assertEqual(status, 200, data)
        return json.loads(data)["info"]

    def rows(self, g, key, want=1, timeout=10):
        deadline = time.time() + timeout
        while True:
            status, _, data = g.request("GET", f"/spend/logs?api_key={key}", headers=ADMIN)
            self.assertEqual(status, 200, data)
            rows = json.loads(data)
            if len(rows) >= want or time.time() > deadline:
                return rows
            time.sleep(0.1)

    def hang_up_after(self, g, key, body, events):
        """Sends a streamed request on a raw socket, reads `events` SSE events, closes."""
        payload = json.dumps(body).encode()
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                  + f"authorization: Bearer {key}\r\ncontent-length: {len(payload)}\r\n\r\n".encode() + payload)
        got = b""
        while got.count(b"data:") < events:
            chunk = s.recv(65536)
            self.assertTrue(chunk, got)
            got += chunk
        s.close()
        return got

    # 1. Abnormal stream endings are charged for what was delivered.

    def test_a_client_hanging_up_mid_stream_is_charged_for_what_it_received(self):
        key = self.key(self.gw, max_budget=10)
        body = chat("tell me a long story", stream=True,
                    x_mock={"tokens": 400, "tokens_per_second": 200})
        self.hang_up_after(self.gw, key, body, 6)
        rows = self.rows(self.gw, key)
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual(row["http_status"], 499, row)
        self.assertGreater(row["completion_tokens"], 0, row)
        self.assertGreater(row["prompt_tokens"], 0, row)
        self.assertGreater(float(row["spend"]), 0, row)
        # Delivered, not the whole answer: at most what was relayed before the hang-up
        # was noticed (the mock would have sent 400).
        self.assertLess(row["completion_tokens"], 400, row)
        deadline = time.time() + 10
        while float(self.info(self.gw, key)["spend"]) <= 0 and time.time() < deadline:
            time.sleep(0.1)
        self.assertAlmostEqual(float(self.info(self.gw, key)["spend"]), float(row["spend"]), places=12)

    def test_ten_hang_ups_exhaust_a_small_budget(self):
        # Each hang-up delivers some chunks at $0.00001 a token; $0.0002 is 20 tokens.
        key = self.key(self.gw, max_budget=0.0002)
        refused = 0
        for _ in range(10):
            body = chat("go", stream=True, x_mock={"tokens": 200, "tokens_per_second": 400})
            payload = json.dumps(body).encode()
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                      + f"authorization: Bearer {key}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
                      + payload)
            got = b""
            while b"\r\n\r\n" not in got or (b" 200 " in got.split(b"\r\n")[0] and got.count(b"data:") < 8):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            s.close()
            if b" 429 " in got.split(b"\r\n")[0] or b" 400 " in got.split(b"\r\n")[0]:
                refused += 1
            time.sleep(0.3)  # the charge lands (spend flush 0.1 s)
        spend = float(self.info(self.gw, key)["spend"])
        self.assertGreater(spend, 0.0002 * 0.5, "hang-ups were charged little or nothing")
        self.assertGreater(refused, 0, "the budget never stopped the hang-ups")

    def test_a_stream_the_provider_breaks_is_charged_for_what_was_delivered(self):
        key = self.key(self.gw, max_budget=10)
        status, _, events, raw = self.gw.stream("/v1/chat/completions",
                                                chat("go", stream=True, x_mock={"tokens": 50, "drop_after": 10}),
                                                bearer(key))
        self.assertEqual(status, 200)
        self.assertIn("upstream_stream_error", raw.decode(), raw)
        rows = self.rows(self.gw, key)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["http_status"], 502, rows[0])
        self.assertGreaterEqual(rows[0]["completion_tokens"], 5, rows[0])
        self.assertLessEqual(rows[0]["completion_tokens"], 12, rows[0])
        self.assertGreater(float(rows[0]["spend"]), 0, rows[0])

    # 2. Reservations that neither overflow nor undercount.

    def test_max_tokens_near_two_to_the_63_with_n_2_does_not_wrap_to_a_small_reservation(self):
        # Strict: the worst case saturates and no $1 budget holds it.
        key = self.key(self.strict, max_budget=1)
        status, _, body, raw = self.strict.post_json(
            "/v1/chat/completions", chat("hi", max_tokens=2**63 - 1, n=2), bearer(key))
        self.assertEqual(status, 429, raw)
        self.assertIn("budget", body["error"]["message"].lower(), raw)
        status, _, body, raw = self.strict.post_json("/v1/chat/completions", chat("hi", max_tokens=8), bearer(key))
        self.assertEqual(status, 200, raw)
        # Spend mode admits while something is left (LiteLLM's rule), and the request
        # reserves its whole (saturated) estimate while in flight: a second request on
        # the key is refused until it ends, then admitted again.
        key = self.key(self.gw, max_budget=1)
        result = {}

        def big():
            result["big"] = self.gw.post_json(
                "/v1/chat/completions", chat("hi", max_tokens=2**63 - 1, n=2, x_mock={"latency_ms": 1500}),
                bearer(key))
        t = threading.Thread(target=big)
        t.start()
        time.sleep(0.5)
        status, _, body, raw = self.gw.post_json("/v1/chat/completions", chat("hi", max_tokens=8), bearer(key))
        self.assertEqual(status, 429, raw)
        self.assertIn("reserved by requests in flight", body["error"]["message"], raw)
        t.join()
        self.assertEqual(result["big"][0], 200, result["big"][3])
        status, _, body, raw = self.gw.post_json("/v1/chat/completions", chat("hi", max_tokens=8), bearer(key))
        self.assertEqual(status, 200, raw)

    def test_a_prompt_in_tools_is_reserved_at_its_size(self):
        # 300 kB of tool definitions is about 100k tokens, $0.10 at $0.000001; a key
        # with $0.05 cannot reserve it in strict mode, while the two-word message alone
        # would have been estimated at a few tokens.
        tools = [{"type": "function", "function": {"name": f"f{i}", "description": "x" * 3000,
                                                   "parameters": {"type": "object", "properties": {}}}}
                 for i in range(100)]
        key = self.key(self.strict, max_budget=0.05)
        status, _, body, raw = self.strict.post_json(
            "/v1/chat/completions", chat("hi there", max_tokens=4, tools=tools), bearer(key))
        self.assertEqual(status, 429, raw)
        status, _, body, raw = self.strict.post_json(
            "/v1/chat/completions", chat("hi there", max_tokens=4), bearer(key))
        self.assertEqual(status, 200, raw)

    def test_images_are_reserved_beyond_their_urls_bytes(self):
        # 40 image parts at 1,500 tokens each: 60k tokens, $0.06 > $0.05.
        parts = [{"type": "image_url", "image_url": {"url": "https://e.x/i.png"}} for _ in range(40)]
        key = self.key(self.strict, max_budget=0.05)
        body = {"model": "mock-gpt", "max_tokens": 4,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "what"}] + parts}]}
        status, _, _, raw = self.strict.post_json("/v1/chat/completions", body, bearer(key))
        self.assertEqual(status, 429, raw)

    def test_a_budget_held_idle_by_one_io_thread_serves_requests_on_the_others(self):
        # Each io thread keeps a slice of a budget for its next request. Strict mode
        # with a budget one thread's slice can take whole: requests on fresh
        # connections (spread over the io threads) are all admitted, the idle slice
        # being asked back; in spend mode too.
        for g in (self.strict, self.gw):
            key = self.key(g, max_budget=0.01)
            # A request whose worst case ($1) is more than the budget: in strict mode
            # refused, after its thread was given all that is left of the budget.
            status, _, _, raw = g.post_json("/v1/chat/completions", chat("hi", max_tokens=100000), bearer(key))
            self.assertEqual(status, 429 if g is self.strict else 200, raw)
            for i in range(24):
                status, _, _, raw = g.post_json("/v1/chat/completions", chat("hi", max_tokens=8), bearer(key))
                self.assertEqual(status, 200, (i, raw))

    def test_a_budget_stops_admitting_once_actual_spend_crosses_it(self):
        # Reserved: max_tokens 1 ($0.00001 + prompt). Answered: 400 tokens ($0.004),
        # 4 x a $0.001 budget. The next request is refused, in both modes.
        for g in (self.gw, self.strict):
            key = self.key(g, max_budget=0.001)
            status, h, _, raw = g.post_json("/v1/chat/completions",
                                            chat("hi", max_tokens=1, x_mock={"tokens": 400}), bearer(key))
            self.assertEqual(status, 200, raw)
            self.assertGreater(float(h["x-litellm-response-cost"]), 0.001)
            status, _, body, raw = g.post_json("/v1/chat/completions", chat("hi", max_tokens=1), bearer(key))
            self.assertEqual(status, 429, raw)
            deadline = time.time() + 10
            while float(self.info(g, key)["spend"]) <= 0.001 and time.time() < deadline:
                time.sleep(0.1)
            self.assertGreater(float(self.info(g, key)["spend"]), 0.001)


if __name__ == "__main__":
    unittest.main()
