"""Routing: retries (backoff, retry-after, another deployment), fallbacks (in order,
context window, content policy, default, access checked again), cooldowns with a
half-open probe, streams that fail before or after their first byte, and the headers
that say what happened. Faults are programmed in the mock per upstream model."""

import http.client
import json
import time
import unittest

from harness import Gateway, Mock, TempDir, chat, mock_post, run_parallel

MASTER = "sk-master-routing"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, router_extra="", litellm_extra="", num_retries=1):
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/model-a, api_base: {mock.base}}}
    model_info: {{id: dep-a}}
  - model_name: gpt
    litellm_params: {{model: openai/model-b, api_base: {mock.base}}}
    model_info: {{id: dep-b}}
  - model_name: solo
    litellm_params: {{model: openai/model-s, api_base: {mock.base}, timeout: 0.5}}
    model_info: {{id: dep-s}}
  - model_name: primary
    litellm_params: {{model: openai/model-p, api_base: {mock.base}}}
    model_info: {{id: dep-p}}
  - model_name: second
    litellm_params: {{model: openai/model-2, api_base: {mock.base}}}
    model_info: {{id: dep-2}}
  - model_name: third
    litellm_params: {{model: openai/model-3, api_base: {mock.base}}}
    model_info: {{id: dep-3}}
  - model_name: big
    litellm_params: {{model: openai/model-big, api_base: {mock.base}}}
    model_info: {{id: dep-big}}
  - model_name: safe
    litellm_params: {{model: openai/model-safe, api_base: {mock.base}}}
    model_info: {{id: dep-safe}}
litellm_settings:
  num_retries: {num_retries}
{litellm_extra}
router_settings:
  allowed_fails: 1
  cooldown_time: 2
  fallbacks: [{{"primary": ["second", "third"]}}]
  context_window_fallbacks: [{{"primary": ["big"]}}]
  content_policy_fallbacks: [{{"primary": ["safe"]}}]
{router_extra}
general_settings:
  master_key: {MASTER}
gateway_settings:
  retry_backoff_base: 0.01
  retry_backoff_max: 0.05
"""



def fault(mock, model, count=-1, **x_mock):
    mock_post(mock, "/_mock/faults", {"model": model, "count": count, "x_mock": x_mock})


def model_counts(mock):
    return mock.get_json("/_mock/stats")["models"]


class RoutingTest(unittest.TestCase):
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

    def setUp(self):
        mock_post(self.mock, "/_mock/faults", method="DELETE")

    def post(self, body, headers=None):
        h = dict(ADMIN)
        h.update(headers or {})
        return self.gw.post_json("/v1/chat/completions", body, h)

    def test_retry_goes_to_the_other_deployment(self):
        fault(self.mock, "model-a", status=500)
        retried = 0
        for _ in range(40):  # until the shuffle has chosen dep-a at least once
            status, h, body, raw = self.post(chat(model="gpt"))
            self.assertEqual(status, 200, raw)
            self.assertEqual(h["x-litellm-model-id"], "dep-b")
            retried += int(h["x-litellm-attempted-retries"])
            self.assertEqual(h["x-litellm-attempted-fallbacks"], "0")
            if retried:
                break
        self.assertGreater(retried, 0, "simple-shuffle never chose the failing deployment")

    def test_no_retry_on_a_client_error(self):
        before = model_counts(self.mock).get("model-s", 0)
        fault(self.mock, "model-s", status=400)
        status, h, body, raw = self.post(chat(model="solo"))
        self.assertEqual(status, 400, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "0")
        self.assertEqual(model_counts(self.mock)["model-s"], before + 1)

    def test_retry_after_is_honoured(self):
        fault(self.mock, "model-s", count=1, status=429, retry_after="1")
        t0 = time.time()
        status, h, body, raw = self.post(chat(model="solo"))
        elapsed = time.time() - t0
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "1")
        self.assertGreaterEqual(elapsed, 0.95, "the retry did not wait for retry-after")

    def test_retries_exhausted_relay_the_provider_error(self):
        fault(self.mock, "model-s", status=503)
        before = model_counts(self.mock).get("model-s", 0)
        status, h, body, raw = self.post(chat(model="solo"))
        self.assertEqual(status, 503, raw)
        self.assertIn("error", body)
        self.assertEqual(h["x-litellm-attempted-retries"], "1")
        self.assertEqual(model_counts(self.mock)["model-s"], before + 2)  # first try + one retry

    def test_timeout_is_retried(self):
        fault(self.mock, "model-s", count=1, latency_ms=3000)
        status, h, body, raw = self.post(chat(model="solo"))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "1")

    def test_fallbacks_are_taken_in_order(self):
        fault(self.mock, "model-p", status=500)
        fault(self.mock, "model-2", status=502)
        before = model_counts(self.mock)
        status, h, body, raw = self.post(chat(model="primary"))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-id"], "dep-3")
        self.assertEqual(h["x-litellm-model-group"], "third")
        self.assertEqual(h["x-litellm-attempted-fallbacks"], "2")
        after = model_counts(self.mock)
        self.assertEqual(after["model-p"] - before.get("model-p", 0), 2)  # try + retry
        self.assertEqual(after["model-2"] - before.get("model-2", 0), 2)
        self.assertEqual(after["model-3"] - before.get("model-3", 0), 1)

    def test_fallback_target_access_is_checked_again(self):
        status, _, key, raw = self.gw.post_json("/key/generate", {"models": ["primary", "third"]}, ADMIN)
        self.assertEqual(status, 200, raw)
        fault(self.mock, "model-p", status=500)
        before = model_counts(self.mock).get("model-2", 0)
        status, h, body, raw = self.gw.post_json("/v1/chat/completions", chat(model="primary"),
                                                 {"authorization": "Bearer " + key["key"]})
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")
        self.assertEqual(model_counts(self.mock).get("model-2", 0), before, "fallback went to a model the key may not use")

    def test_context_window_fallback(self):
        err = json.dumps({"error": {"message": "This model's maximum context length is 8192 tokens.",
                                    "type": "invalid_request_error", "param": "messages",
                                    "code": "context_length_exceeded"}})
        fault(self.mock, "model-p", status=400, raw_body=err, content_type="application/json")
        status, h, body, raw = self.post(chat(model="primary"))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "big")
        self.assertEqual(h["x-litellm-attempted-retries"], "0")  # a 400 is not retried

    def test_content_policy_fallback(self):
        err = json.dumps({"error": {"message": "The response was filtered (content_filter).",
                                    "type": "invalid_request_error", "param": "prompt",
                                    "code": "content_policy_violation"}})
        fault(self.mock, "model-p", status=400, raw_body=err, content_type="application/json")
        status, h, body, raw = self.post(chat(model="primary"))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "safe")

    def test_every_fallback_failing_returns_the_last_error(self):
        for m in ("model-p", "model-2", "model-3"):
            fault(self.mock, m, status=500)
        status, h, body, raw = self.post(chat(model="primary"))
        self.assertEqual(status, 500, raw)
        self.assertEqual(h["x-litellm-attempted-fallbacks"], "2")
        self.assertIn("error", body)

    def test_stream_failing_before_its_first_byte_falls_back(self):
        fault(self.mock, "model-p", status=500)
        status, h, events, raw = self.gw.stream("/v1/chat/completions", chat(model="primary", stream=True), ADMIN)
        self.assertEqual(status, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        self.assertNotIn(b'"error"', raw)
        self.assertEqual(h["x-litellm-model-group"], "second")
        self.assertEqual(h["x-litellm-attempted-fallbacks"], "1")

    def test_stream_silent_before_its_first_event_falls_back(self):
        # The provider never sends an event: stream_timeout, then the fallback answers.
        fault(self.mock, "model-p", hang=True)
        status, h, events, raw = self.gw.stream(
            "/v1/chat/completions", chat(model="primary", stream=True, stream_timeout=0.3, num_retries=0), ADMIN)
        self.assertEqual(status, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(h["x-litellm-model-group"], "second")

    def test_stream_failing_after_its_first_byte_does_not_fall_back(self):
        fault(self.mock, "model-p", drop_after=2)
        before = model_counts(self.mock)
        status, h, events, raw = self.gw.stream("/v1/chat/completions", chat(model="primary", stream=True), ADMIN)
        self.assertEqual(status, 200)
        self.assertIn('"error"', events[-1])
        after = model_counts(self.mock)
        self.assertEqual(after.get("model-2", 0), before.get("model-2", 0))
        self.assertEqual(after["model-p"] - before.get("model-p", 0), 1)

    def test_per_request_timeout_and_num_retries(self):
        t0 = time.time()
        status, h, body, raw = self.post(chat(model="solo", timeout=0.3, num_retries=0, x_mock={"latency_ms": 1500}))
        self.assertEqual(status, 504, raw)
        self.assertLess(time.time() - t0, 1.4)
        self.assertEqual(h["x-litellm-attempted-retries"], "0")
        sent = json.loads(self.mock.get_json("/_mock/last_request")["body"])
        self.assertNotIn("timeout", sent)
        self.assertNotIn("num_retries", sent)
        self.assertEqual(sent["x_mock"], {"latency_ms": 1500})
        self.assertEqual(sent["model"], "model-s")

    def test_bad_request_timeout_values_are_refused(self):
        status, h, body, raw = self.post(chat(model="gpt", timeout="soon"))
        self.assertEqual(status, 400, raw)
        self.assertEqual(body["error"]["param"], "timeout")


class CooldownTest(unittest.TestCase):
    """A deployment failing more than allowed_fails times cools down: traffic moves to
    the other one; after cooldown_time one probe brings it back when it works again."""

    def test_cooldown_moves_traffic_and_a_probe_brings_it_back(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, config(mock))
        try:
            fault(mock, "model-a", status=500)
            # Until dep-a has failed enough to cool down (the shuffle may send every one of
            # ten requests to dep-b: a CI run failed on that). Each failure is retried on
            # dep-b, so the client always sees 200.
            def health():
                _, _, raw = gw.request("GET", "/health/readiness")
                return {d["model_id"]: d for d in json.loads(raw)["deployments"]["health"]}
            for _ in range(100):
                status, h, _, raw = gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
                self.assertEqual(status, 200, raw)
                if health()["dep-a"]["status"] == "cooling_down":
                    break
            now = health()
            self.assertEqual(now["dep-a"]["status"], "cooling_down", now)
            self.assertEqual(now["dep-b"]["status"], "healthy")
            a_before = model_counts(mock)["model-a"]
            for _ in range(20):
                status, h, _, raw = gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
                self.assertEqual(status, 200, raw)
                self.assertEqual(h["x-litellm-model-id"], "dep-b")
                self.assertEqual(h["x-litellm-attempted-retries"], "0")
            self.assertEqual(model_counts(mock)["model-a"], a_before, "a cooling deployment got traffic")
            status, _, metrics = gw.request("GET", "/metrics")
            self.assertIn('llm_gateway_deployment_state{model_group="gpt",model_id="dep-a"} 1', metrics.decode())
            # Healthy again: after the cooldown one probe goes through and it is back.
            mock_post(mock, "/_mock/faults", method="DELETE")
            time.sleep(2.2)
            seen_a = False
            for _ in range(40):
                status, h, _, raw = gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
                self.assertEqual(status, 200, raw)
                seen_a |= h["x-litellm-model-id"] == "dep-a"
            self.assertTrue(seen_a, "the deployment never came back")
            status, _, raw = gw.request("GET", "/health/readiness")
            health = {d["model_id"]: d for d in json.loads(raw)["deployments"]["health"]}
            self.assertEqual(health["dep-a"]["status"], "healthy")
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()

    def test_a_failed_probe_cools_down_again(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, config(mock))
        try:
            fault(mock, "model-a", status=500)
            # Until dep-a has failed enough to cool down (the shuffle may pick dep-b many
            # times in a row: ten requests were once not enough).
            def cooling():
                _, _, raw = gw.request("GET", "/health/readiness")
                health = {d["model_id"]: d for d in json.loads(raw)["deployments"]["health"]}
                return health["dep-a"]["status"] == "cooling_down"
            for _ in range(100):
                gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
                if cooling():
                    break
            self.assertTrue(cooling(), "dep-a never cooled down")
            time.sleep(2.3)
            a0 = model_counts(mock)["model-a"]
            results = run_parallel(20, lambda i: gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)[0])
            self.assertEqual(results, [200] * 20)
            time.sleep(0.2)
            self.assertEqual(model_counts(mock)["model-a"] - a0, 1, "more than one probe went to the deployment")
            status, _, raw = gw.request("GET", "/health/readiness")
            health = {d["model_id"]: d for d in json.loads(raw)["deployments"]["health"]}
            self.assertEqual(health["dep-a"]["status"], "cooling_down")
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()


class PolicyTest(unittest.TestCase):
    """router_settings.retry_policy, model_group_retry_policy and allowed_fails_policy,
    LiteLLM's per-error-class retries and cooldown thresholds."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, num_retries=3, router_extra="""
  retry_policy: {BadRequestErrorRetries: 2, RateLimitErrorRetries: 0}
  model_group_retry_policy:
    primary: {RateLimitErrorRetries: 1}
  allowed_fails_policy: {AuthenticationErrorAllowedFails: 0}
"""))

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def setUp(self):
        mock_post(self.mock, "/_mock/faults", method="DELETE")

    def post(self, model):
        return self.gw.post_json("/v1/chat/completions", chat(model=model), ADMIN)

    def test_a_class_the_policy_names_is_retried_that_many_times(self):
        # A 400 is not retried by default; the policy asks for 2 retries.
        before = model_counts(self.mock).get("model-s", 0)
        fault(self.mock, "model-s", count=2, status=400)
        status, h, _, raw = self.post("solo")
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "2")
        fault(self.mock, "model-s", status=400)
        status, h, _, raw = self.post("solo")
        self.assertEqual(status, 400, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "2")
        self.assertEqual(model_counts(self.mock)["model-s"], before + 3 + 3)
        # The request's own num_retries does not override the policy (as in LiteLLM).
        status, h, _, raw = self.gw.post_json("/v1/chat/completions", chat(model="solo", num_retries=0), ADMIN)
        self.assertEqual(h["x-litellm-attempted-retries"], "2")

    def test_the_policy_overrides_num_retries(self):
        # num_retries is 3, RateLimitErrorRetries 0: a 429 is answered at once.
        fault(self.mock, "model-s", status=429)
        before = model_counts(self.mock).get("model-s", 0)
        status, h, _, raw = self.post("solo")
        self.assertEqual(status, 429, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "0")
        self.assertEqual(model_counts(self.mock)["model-s"], before + 1)
        # A class the policy does not name keeps num_retries: 3 retries of a 500.
        mock_post(self.mock, "/_mock/faults", method="DELETE")
        fault(self.mock, "model-s", count=3, status=500)
        status, h, _, raw = self.post("solo")
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "3")

    def test_the_groups_own_policy_wins(self):
        fault(self.mock, "model-p", count=1, status=429)
        status, h, _, raw = self.post("primary")
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "1")
        self.assertEqual(h["x-litellm-model-id"], "dep-p")

    def test_allowed_fails_policy_cools_down_on_its_class(self):
        # 401s do not count towards a cooldown by default; with
        # AuthenticationErrorAllowedFails: 0 the first one cools the deployment down.
        fault(self.mock, "model-a", status=401)
        for _ in range(100):  # until the shuffle picks dep-a
            status, h, _, raw = self.post("gpt")
            if h.get("x-litellm-model-id") == "dep-a":
                self.assertEqual(status, 401, raw)
                break
        time.sleep(0.2)
        status, _, raw = self.gw.request("GET", "/health/readiness")
        health = {d["model_id"]: d for d in json.loads(raw)["deployments"]["health"]}
        self.assertEqual(health["dep-a"]["status"], "cooling_down", health)
        self.assertIn("AuthenticationError failures", self.gw.output())


class DefaultFallbacksTest(unittest.TestCase):
    def test_default_fallbacks_apply_to_groups_without_their_own(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, config(mock, router_extra="  default_fallbacks: [\"third\"]", num_retries=0))
        try:
            fault(mock, "model-s", status=500)
            status, h, body, raw = gw.post_json("/v1/chat/completions", chat(model="solo"), ADMIN)
            self.assertEqual(status, 200, raw)
            self.assertEqual(h["x-litellm-model-group"], "third")
            self.assertEqual(h["x-litellm-attempted-fallbacks"], "1")
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
