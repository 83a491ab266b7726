"""Rate limits on one node (no Redis): rpm, tpm and max_parallel_requests on keys,
users and teams, per-key per-model limits, deployment rpm from the config, the
x-ratelimit-* headers, 429 with retry-after naming the scope, bad values refused."""

import json
import re
import threading
import time
import unittest

from harness import Gateway, Mock, TempDir, chat, run_parallel

MASTER = "sk-master-limits"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, extra=""):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
  - model_name: other
    litellm_params: {{model: openai/other, api_base: {mock.base}}}
  - model_name: limited
    litellm_params: {{model: openai/lim-1, api_base: {mock.base}, rpm: 2}}
    model_info: {{id: lim-1}}
  - model_name: limited
    litellm_params: {{model: openai/lim-2, api_base: {mock.base}, rpm: 2}}
    model_info: {{id: lim-2}}
general_settings:
  master_key: {MASTER}
gateway_settings:
  rate_limit_window: 3
  rate_limit_buckets: 6
{extra}"""


def bearer(key):
    return {"authorization": f"Bearer {key}"}


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock))

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def key(self, **fields):
        status, _, body, raw = self.gw.post_json("/key/generate", fields, ADMIN)
        self.assertEqual(status, 200, raw)
        return body["key"]

    def call(self, key, model="mock-gpt", **extra):
        return self.gw.post_json("/v1/chat/completions", chat(model=model, **extra), bearer(key))

    def test_key_rpm_limit_refuses_the_next_request_with_retry_after(self):
        k = self.key(key_alias="rpm3", rpm_limit=3)
        remaining = []
        for _ in range(3):
            status, h, _, raw = self.call(k)
            self.assertEqual(status, 200, raw)
            self.assertEqual(h["x-ratelimit-limit-requests"], "3")
            remaining.append(int(h["x-ratelimit-remaining-requests"]))
            self.assertRegex(h["x-ratelimit-reset-requests"], r"^\d+(\.\d+)?(ms|s)$")
        self.assertEqual(remaining, [2, 1, 0])
        status, h, body, raw = self.call(k)
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["type"], "rate_limit_error")
        msg = body["error"]["message"]
        self.assertIn("api_key 'rpm3'", msg)
        self.assertIn("requests", msg)
        self.assertIn("3", msg)
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        self.assertLessEqual(int(h["retry-after"]), 4)
        # The window slides: after it has passed the key is admitted again.
        time.sleep(3.6)
        status, h, _, raw = self.call(k)
        self.assertEqual(status, 200, raw)

    def test_tpm_counts_the_tokens_used(self):
        # The mock answers 16 completion tokens; LiteLLM's default counts output tokens.
        k = self.key(key_alias="tpm40", tpm_limit=40)
        statuses = [self.call(k)[0] for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        status, h, body, raw = self.call(k)
        self.assertIn("tokens", body["error"]["message"])

    def test_tokens_and_slots_are_counted_before_the_answer_ends(self):
        # The limiter is settled before the last byte leaves, so a client's next
        # request (on a new connection, maybe another io thread) sees this one's tokens
        # and its parallel slot given back: streamed and buffered, many times over.
        k = self.key(key_alias="tpm-stream", tpm_limit=40)
        statuses = []
        for _ in range(4):
            status, _, events, raw = self.gw.stream("/v1/chat/completions", chat(model="mock-gpt", stream=True),
                                                    bearer(k))
            statuses.append(status)
        self.assertEqual(statuses, [200, 200, 200, 429])
        k = self.key(key_alias="par1-seq", max_parallel_requests=1)
        for i in range(20):
            if i % 2:
                status, _, _, raw = self.gw.stream("/v1/chat/completions", chat(model="mock-gpt", stream=True),
                                                   bearer(k))
            else:
                status, _, _, raw = self.call(k)
            self.assertEqual(status, 200, (i, raw))

    def test_max_parallel_requests(self):
        k = self.key(key_alias="par1", max_parallel_requests=1)
        results = run_parallel(4, lambda i: self.call(k, x_mock={"latency_ms": 400})[0])
        self.assertEqual(sorted(results), [200, 429, 429, 429])
        # Released when finished.
        self.assertEqual(self.call(k)[0], 200)

    def test_team_limit_applies_to_its_keys(self):
        status, _, team, raw = self.gw.post_json("/team/new", {"team_alias": "t-rpm2", "rpm_limit": 2}, ADMIN)
        self.assertEqual(status, 200, raw)
        k1 = self.key(team_id=team["team_id"])
        k2 = self.key(team_id=team["team_id"])
        self.assertEqual(self.call(k1)[0], 200)
        self.assertEqual(self.call(k2)[0], 200)
        status, h, body, raw = self.call(k1)
        self.assertEqual(status, 429, raw)
        self.assertIn("team 't-rpm2'", body["error"]["message"])

    def test_user_limit(self):
        status, _, user, raw = self.gw.post_json("/user/new", {"user_id": "u-lim", "rpm_limit": 1}, ADMIN)
        self.assertEqual(status, 200, raw)
        k = self.key(user_id="u-lim")
        self.assertEqual(self.call(k)[0], 200)
        status, h, body, raw = self.call(k)
        self.assertEqual(status, 429, raw)
        self.assertIn("user 'u-lim'", body["error"]["message"])

    def test_model_rpm_limit_per_key(self):
        k = self.key(key_alias="per-model", model_rpm_limit={"mock-gpt": 1})
        self.assertEqual(self.call(k)[0], 200)
        status, h, body, raw = self.call(k)
        self.assertEqual(status, 429, raw)
        self.assertIn("for model 'mock-gpt'", body["error"]["message"])
        self.assertEqual(self.call(k, model="other")[0], 200)

    def test_deployment_rpm_from_the_config(self):
        # Two deployments with rpm 2 each: 4 requests in the window, then 429.
        statuses = [self.gw.post_json("/v1/chat/completions", chat(model="limited"), ADMIN)[0] for _ in range(5)]
        self.assertEqual(statuses, [200, 200, 200, 200, 429])
        status, h, body, raw = self.gw.post_json("/v1/chat/completions", chat(model="limited"), ADMIN)
        self.assertIn("deployment 'lim-", body["error"]["message"])
        self.assertIn("retry-after", h)

    def test_master_key_is_not_limited_by_key_limits(self):
        for _ in range(5):
            self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(), ADMIN)[0], 200)

    def test_bad_limit_values_are_refused(self):
        for field, value in (("rpm_limit", -1), ("tpm_limit", "many"), ("max_parallel_requests", 1.5),
                             ("model_rpm_limit", {"mock-gpt": -2}), ("model_tpm_limit", [1])):
            status, _, body, raw = self.gw.post_json("/key/generate", {field: value}, ADMIN)
            self.assertEqual(status, 400, (field, raw))
            self.assertIn(field, body["error"]["message"] + str(body["error"].get("param")))

    def test_limits_show_in_metrics(self):
        k = self.key(rpm_limit=0)
        self.assertEqual(self.call(k)[0], 429)
        status, _, metrics = self.gw.request("GET", "/metrics")
        m = re.search(r'llm_gateway_rate_limited_total\{limit="requests"\} (\d+)', metrics.decode())
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 1)


class ConfigLimitErrorsTest(unittest.TestCase):
    def test_bad_deployment_limits_stop_the_start(self):
        tmp = TempDir()
        try:
            for bad in ("rpm: -5", "tpm: lots", "max_parallel_requests: -1"):
                cfg = f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/x, api_base: http://127.0.0.1:9/v1, {bad}}}
"""
                gw = Gateway(tmp.path, cfg, expect_start=False)
                rc = gw.proc.wait(timeout=20)
                out = gw.output()
                gw.terminate()
                self.assertNotEqual(rc, 0, out)
                self.assertIn(bad.split(":")[0], out)
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
