"""Per-request routing controls, as LiteLLM documents them: fallbacks in the body (its
three shapes, replacing the router's), num_retries and timeout in the body or in
x-litellm-* headers (capped by the operator's settings), the testing controls
(mock_response, mock_testing_fallbacks, mock_testing_rate_limit_error, mock_timeout) and
the headers that say what happened. A fallback is checked against the key's model
access, budget and limits like the group it replaces. Bad values answer 400 naming the
field."""

import json
import time
import unittest

from harness import Gateway, Mock, TempDir, chat, mock_post

MASTER = "sk-master-controls"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, extra=""):
    return f"""
model_list:
  - model_name: solo
    litellm_params: {{model: openai/model-s, api_base: {mock.base}}}
    model_info: {{id: dep-s}}
  - model_name: primary
    litellm_params: {{model: openai/model-p, api_base: {mock.base}, num_retries: 2}}
    model_info: {{id: dep-p, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: second
    litellm_params: {{model: openai/model-2, api_base: {mock.base}}}
    model_info: {{id: dep-2}}
  - model_name: third
    litellm_params: {{model: openai/model-3, api_base: {mock.base}}}
    model_info: {{id: dep-3}}
router_settings:
  fallbacks: [{{"primary": ["second", "third"]}}]
  num_retries: 1
general_settings:
  master_key: {MASTER}
gateway_settings:
  retry_backoff_base: 0.01
  retry_backoff_max: 0.05
{extra}
"""


def fault(mock, model, count=-1, **x_mock):
    mock_post(mock, "/_mock/faults", {"model": model, "count": count, "x_mock": x_mock})


def model_counts(mock):
    return mock.get_json("/_mock/stats")["models"]


class RequestControlsTest(unittest.TestCase):
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

    def post(self, body, headers=None, key=MASTER):
        h = {"authorization": f"Bearer {key}"}
        h.update(headers or {})
        return self.gw.post_json("/v1/chat/completions", body, h)

    def key(self, **fields):
        status, _, body, raw = self.gw.post_json("/key/generate", fields, ADMIN)
        self.assertEqual(status, 200, raw)
        return body["key"]

    def sent(self):
        return json.loads(self.mock.get_json("/_mock/last_request")["body"])

    # ---------------------------------------------------------------- fallbacks

    def test_client_fallbacks_as_a_list_of_names(self):
        fault(self.mock, "model-s", status=500)
        status, h, body, raw = self.post(chat(model="solo", fallbacks=["third"]))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")
        self.assertEqual(h["x-litellm-attempted-fallbacks"], "1")
        self.assertEqual(h["x-litellm-attempted-retries"], "1")  # router num_retries first
        sent = self.sent()
        self.assertEqual(sent["model"], "model-3")
        self.assertNotIn("fallbacks", sent)

    def test_client_fallbacks_replace_the_routers(self):
        fault(self.mock, "model-p", status=503)
        before = model_counts(self.mock)
        status, h, body, raw = self.post(chat(model="primary", fallbacks=["third"], num_retries=0))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")
        after = model_counts(self.mock)
        self.assertEqual(after.get("model-2", 0), before.get("model-2", 0), "the router's fallback was used")

    def test_a_fallback_object_replaces_members_of_the_request(self):
        fault(self.mock, "model-s", status=500)
        status, h, body, raw = self.post(chat(
            "original question", model="solo", num_retries=0,
            fallbacks=[{"model": "second", "messages": [{"role": "user", "content": "for the fallback"}],
                        "temperature": 0.25}]))
        self.assertEqual(status, 200, raw)
        sent = self.sent()
        self.assertEqual(sent["model"], "model-2")
        self.assertEqual(sent["messages"], [{"role": "user", "content": "for the fallback"}])
        self.assertEqual(sent["temperature"], 0.25)

    def test_the_mapping_shape_is_looked_up_by_the_requested_group(self):
        fault(self.mock, "model-s", status=500)
        status, h, body, raw = self.post(chat(model="solo", num_retries=0,
                                              fallbacks=[{"other": ["second"]}, {"solo": ["third"]}]))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")

    def test_unknown_fallback_groups_and_bad_shapes_are_refused(self):
        status, h, body, raw = self.post(chat(model="solo", fallbacks=["nope"]))
        self.assertEqual(status, 400, raw)
        self.assertEqual(body["error"]["param"], "fallbacks")
        self.assertIn("nope", body["error"]["message"])
        for bad in (5, "second", [5], [{"solo": "second"}]):
            status, h, body, raw = self.post(chat(model="solo", fallbacks=bad))
            self.assertEqual(status, 400, raw)
            self.assertEqual(body["error"]["param"], "fallbacks")

    def test_a_client_fallback_the_key_may_not_use_is_refused_at_once(self):
        k = self.key(models=["solo"])
        before = model_counts(self.mock).get("model-s", 0)
        status, h, body, raw = self.post(chat(model="solo", fallbacks=["second"]), key=k)
        self.assertEqual(status, 401, raw)
        self.assertEqual(body["error"]["param"], "fallbacks")
        self.assertEqual(model_counts(self.mock).get("model-s", 0), before, "the primary was tried anyway")

    def test_the_routers_fallbacks_are_checked_against_the_key_too(self):
        # LiteLLM sends a key limited to some models to any configured fallback.
        k = self.key(models=["primary", "third"])
        fault(self.mock, "model-p", status=503)
        before = model_counts(self.mock)
        status, h, body, raw = self.post(chat(model="primary", num_retries=0), key=k)
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")
        self.assertEqual(model_counts(self.mock).get("model-2", 0), before.get("model-2", 0))

    def test_a_fallback_is_refused_by_the_keys_limit_on_its_group(self):
        k = self.key(model_rpm_limit={"second": 1})
        status, _, _, raw = self.post(chat(model="second"), key=k)  # uses the one request a minute
        self.assertEqual(status, 200, raw)
        fault(self.mock, "model-p", status=503)
        status, h, body, raw = self.post(chat(model="primary", num_retries=0), key=k)
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "third")
        # With only that fallback, its refusal is the answer.
        status, h, body, raw = self.post(chat(model="primary", num_retries=0, fallbacks=["second"]), key=k)
        self.assertEqual(status, 429, raw)
        self.assertIn("second", body["error"]["message"])

    def test_disable_fallbacks(self):
        fault(self.mock, "model-p", status=503)
        status, h, body, raw = self.post(chat(model="primary", num_retries=0, disable_fallbacks=True))
        self.assertEqual(status, 503, raw)

    # ---------------------------------------------------------------- retries, timeouts

    def test_num_retries_in_a_header_wins_over_the_body_and_is_capped(self):
        fault(self.mock, "model-p", status=503)
        # primary allows 2; the header asks 0: no retry, the router's fallbacks answer.
        status, h, body, raw = self.post(chat(model="primary", num_retries=2),
                                         headers={"x-litellm-num-retries": "0"})
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-attempted-retries"], "0")
        # A client asking 10 gets the deployment's 2.
        before = model_counts(self.mock).get("model-p", 0)
        status, h, body, raw = self.post(chat(model="primary", num_retries=10, disable_fallbacks=True))
        self.assertEqual(status, 503, raw)
        self.assertEqual(model_counts(self.mock)["model-p"] - before, 3)

    def test_x_litellm_timeout_header(self):
        t0 = time.time()
        status, h, body, raw = self.post(chat(model="solo", num_retries=0, x_mock={"latency_ms": 1500}),
                                         headers={"x-litellm-timeout": "0.3"})
        self.assertEqual(status, 504, raw)
        self.assertLess(time.time() - t0, 1.4)
        self.assertEqual(h["x-litellm-timeout"], "0.3")

    def test_bad_header_values_name_the_header(self):
        for name, value in (("x-litellm-timeout", "soon"), ("x-litellm-timeout", "-1"),
                            ("x-litellm-num-retries", "many"), ("x-litellm-num-retries", "-1"),
                            ("x-litellm-stream-timeout", "0")):
            status, h, body, raw = self.post(chat(model="solo"), headers={name: value})
            self.assertEqual(status, 400, f"{name}: {value}: {raw}")
            self.assertEqual(body["error"]["param"], name)
            self.assertEqual(body["error"]["type"], "invalid_request_error")

    # ---------------------------------------------------------------- testing controls

    def test_mock_response_answers_without_the_provider_and_is_costed(self):
        before = model_counts(self.mock).get("model-p", 0)
        status, h, body, raw = self.post(chat(model="primary", mock_response="It is mocked."))
        self.assertEqual(status, 200, raw)
        self.assertEqual(body["choices"][0]["message"]["content"], "It is mocked.")
        self.assertEqual(body["usage"], {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30})
        self.assertEqual(model_counts(self.mock).get("model-p", 0), before)
        # 10 x 0.000001 + 20 x 0.000002
        self.assertEqual(h["x-litellm-response-cost"], "0.00005")

    def test_mock_response_streams(self):
        status, h, events, raw = self.gw.stream(
            "/v1/chat/completions",
            chat(model="solo", stream=True, mock_response="streamed text", stream_options={"include_usage": True}),
            ADMIN)
        self.assertEqual(status, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                       for e in events[:-1] if json.loads(e)["choices"])
        self.assertEqual(text, "streamed text")
        self.assertEqual(json.loads(events[-2])["usage"]["total_tokens"], 30)

    def test_mock_response_error_strings(self):
        status, h, body, raw = self.post(chat(model="solo", num_retries=0, mock_response="litellm.RateLimitError"))
        self.assertEqual(status, 429, raw)
        self.assertIn("mock rate limit error", body["error"]["message"])

    def test_mock_testing_fallbacks_goes_straight_to_the_fallbacks(self):
        before = model_counts(self.mock)
        status, h, body, raw = self.post(chat(model="primary", mock_testing_fallbacks=True))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "second")
        self.assertEqual(h["x-litellm-attempted-retries"], "0")
        self.assertEqual(h["x-litellm-attempted-fallbacks"], "1")
        after = model_counts(self.mock)
        self.assertEqual(after.get("model-p", 0), before.get("model-p", 0), "the primary was called")
        # Without fallbacks: the mock failure is the answer (LiteLLM: 500, Fallbacks=None).
        status, h, body, raw = self.post(chat(model="solo", mock_testing_fallbacks=True))
        self.assertEqual(status, 500, raw)
        self.assertIn("Fallbacks=None", body["error"]["message"])

    def test_mock_testing_rate_limit_error_is_retried(self):
        status, h, body, raw = self.post(chat(model="primary", mock_testing_rate_limit_error=True))
        self.assertEqual(status, 200, raw)
        self.assertEqual(h["x-litellm-model-group"], "primary")
        self.assertEqual(h["x-litellm-attempted-retries"], "1")

    def test_mock_timeout_then_the_fallback(self):
        t0 = time.time()
        status, h, body, raw = self.post(chat(model="primary", mock_timeout=True, timeout=0.2, num_retries=0))
        self.assertEqual(status, 200, raw)
        self.assertGreaterEqual(time.time() - t0, 0.2)
        self.assertEqual(h["x-litellm-model-group"], "second")

    def test_mock_failures_do_not_cool_the_deployment_down(self):
        for _ in range(6):
            self.post(chat(model="solo", num_retries=0, mock_response="litellm.InternalServerError"))
        status, _, data = self.gw.request("GET", "/health/readiness")
        ready = json.loads(data)
        states = {d["model_id"]: d["status"] for d in ready["deployments"]["health"]}
        self.assertEqual(states["dep-s"], "healthy")


class MockParamsOffTest(unittest.TestCase):
    def test_an_operator_can_refuse_the_testing_controls(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, config(mock, "  allow_client_mock_params: false"))
        try:
            status, h, body, raw = gw.post_json("/v1/chat/completions",
                                                chat(model="solo", mock_testing_fallbacks=True), ADMIN)
            self.assertEqual(status, 400, raw)
            self.assertEqual(body["error"]["param"], "mock_testing_fallbacks")
            status, h, body, raw = gw.post_json("/v1/chat/completions", chat(model="solo"), ADMIN)
            self.assertEqual(status, 200, raw)
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
