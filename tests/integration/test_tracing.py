"""Tracing: OTLP/HTTP spans (GenAI conventions, parent links, traceparent continued and
sent upstream) and Langfuse's OTLP endpoint, both received by a capture server in the
test; an exporter that is down (requests unaffected, drops counted, recovery); the
trace store (memory and PostgreSQL) read back through GET /traces; request log lines;
and no key or secret anywhere in what is exported, stored or logged."""

import base64
import http.client
import json
import re
import time
import unittest

from harness import SLOW, Capture, Gateway, Mock, Postgres, TempDir, chat, mock_post

MASTER = "sk-master-tracing-7d1f"
PROVIDER_KEY = "sk-provider-secret-93ab"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PROMPT = "zebra-quartz-prompt-4411"  # a distinctive string to look for
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def config(mock, litellm_extra="", gateway_extra="", db_url=None):
    db = f"  database_url: {db_url}\n" if db_url else ""
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/model-a, api_base: {mock.base}, api_key: {PROVIDER_KEY}}}
    model_info: {{id: dep-a, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: flaky
    litellm_params: {{model: openai/model-f, api_base: {mock.base}, api_key: {PROVIDER_KEY}}}
    model_info: {{id: dep-f}}
litellm_settings:
  num_retries: 1
{litellm_extra}
general_settings:
  master_key: {MASTER}
{db}gateway_settings:
  retry_backoff_base: 0.01
  retry_backoff_max: 0.02
  trace_flush_interval: 0.05
  trace_export_timeout: 2
{gateway_extra}
"""



def metric(gw, name, **labels):
    text = gw.request("GET", "/metrics")[2].decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_until(fn, timeout=10.0):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


class OtlpTest(unittest.TestCase):
    """OTLP/HTTP to a collector named by OTEL_EXPORTER_OTLP_ENDPOINT, with JSON bodies
    (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)."""

    PROTOCOL_ENV = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    CONTENT_TYPE = "application/json"

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.cap = Capture()
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, gateway_extra="  request_log: true"),
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": cls.cap.url,
                              "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=tok%20en,x-team=ml",
                              "OTEL_SERVICE_NAME": "gw-under-test", **cls.PROTOCOL_ENV})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.cap.stop()
        cls.tmp.cleanup()

    def setUp(self):
        mock_post(self.mock, "/_mock/faults", method="DELETE")

    def spans_of(self, request_id):
        server = self.cap.wait_spans(lambda s: s["attrs"].get("llm_gateway.request_id") == request_id)
        self.assertEqual(len(server), 1, f"one server span for {request_id}")
        s = server[0]
        # A record's spans travel in one export: its client spans are here already.
        clients = [c for c in self.cap.spans() if c.get("parentSpanId") == s["spanId"] and c["traceId"] == s["traceId"]]
        return s, sorted(clients, key=lambda c: int(c["startTimeUnixNano"]))

    def test_plain_request_spans_and_traceparent(self):
        status, hdrs, body, raw = self.gw.post_json(
            "/v1/chat/completions", chat(PROMPT, model="gpt", temperature=0.2, max_tokens=20),
            {**ADMIN, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=x"})
        self.assertEqual(status, 200, raw)
        rid = hdrs["x-litellm-call-id"]
        s, clients = self.spans_of(rid)
        # The client's trace continued: same trace id, its span is the parent.
        self.assertEqual(s["traceId"], TRACE_ID)
        self.assertEqual(s["parentSpanId"], PARENT_ID)
        self.assertEqual(s["kind"], 2)
        self.assertEqual(s["name"], "chat gpt")
        a = s["attrs"]
        self.assertEqual(a["gen_ai.operation.name"], "chat")
        self.assertEqual(a["gen_ai.provider.name"], "openai")
        self.assertEqual(a["gen_ai.request.model"], "gpt")
        self.assertEqual(a["gen_ai.response.model"], "model-a")
        self.assertEqual(a["gen_ai.usage.input_tokens"], body["usage"]["prompt_tokens"])
        self.assertEqual(a["gen_ai.usage.output_tokens"], body["usage"]["completion_tokens"])
        self.assertEqual(a["gen_ai.response.finish_reasons"], ["stop"])
        self.assertAlmostEqual(a["gen_ai.request.temperature"], 0.2)
        self.assertEqual(a["gen_ai.request.max_tokens"], 20)
        self.assertEqual(a["http.response.status_code"], 200)
        self.assertNotIn("error.type", a)
        self.assertEqual(s["resource"]["service.name"], "gw-under-test")
        self.assertGreater(int(s["endTimeUnixNano"]), int(s["startTimeUnixNano"]))
        # One upstream attempt, a CLIENT child span.
        self.assertEqual(len(clients), 1)
        c = clients[0]
        self.assertEqual(c["kind"], 3)
        self.assertEqual(c["name"], "chat model-a")
        self.assertEqual(c["attrs"]["server.address"], "127.0.0.1")
        self.assertEqual(c["attrs"]["server.port"], self.mock.port)
        # The provider got a traceparent naming the attempt's span, and the tracestate.
        sent = self.mock.last_headers()
        self.assertEqual(sent["traceparent"], f"00-{TRACE_ID}-{c['spanId']}-01")
        self.assertEqual(sent["tracestate"], "vendor=x")
        # Content is opt-in: not on these spans.
        for r in self.cap.accepted():
            self.assertNotIn(PROMPT.encode(), r["body"])
        # The collector got the configured headers.
        h = self.cap.accepted()[-1]["headers"]
        self.assertEqual(h["x-collector-token"], "tok en")
        self.assertEqual(h["x-team"], "ml")
        self.assertTrue(h["content-type"].startswith(self.CONTENT_TYPE))
        self.assertEqual(self.cap.accepted()[-1]["path"], "/v1/traces")

    def test_no_traceparent_starts_a_new_trace(self):
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("hi", model="gpt"), ADMIN)
        self.assertEqual(status, 200, raw)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertFalse(s.get("parentSpanId"), "a root span")
        self.assertRegex(s["traceId"], r"^[0-9a-f]{32}$")
        self.assertNotEqual(s["traceId"], "0" * 32)
        self.assertEqual(len(clients), 1)

    def test_invalid_traceparent_is_ignored(self):
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("hi", model="gpt"),
                                                 {**ADMIN, "traceparent": "00-" + "0" * 32 + "-" + PARENT_ID + "-01"})
        self.assertEqual(status, 200, raw)
        s, _ = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertNotEqual(s["traceId"], "0" * 32)
        self.assertFalse(s.get("parentSpanId"))

    def test_streamed_request(self):
        status, hdrs, events, _ = self.gw.stream("/v1/chat/completions", chat("stream me", model="gpt", stream=True),
                                                 ADMIN)
        self.assertEqual(status, 200)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        a = s["attrs"]
        self.assertTrue(a["gen_ai.request.stream"])
        self.assertIn("gen_ai.response.time_to_first_chunk", a)
        self.assertGreater(a["gen_ai.response.time_to_first_chunk"], 0)
        self.assertLess(a["gen_ai.response.time_to_first_chunk"], (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e9 + 1e-6)
        self.assertEqual(a["gen_ai.response.finish_reasons"], ["stop"])
        self.assertGreater(a["gen_ai.usage.output_tokens"], 0)
        self.assertEqual(len(clients), 1)

    def test_stream_longer_than_the_capture_limit_keeps_its_finish_reason(self):
        # 3,000 chunks (~400 KB) against a 64 KB capture: the finish reason comes in the
        # last events, which the record keeps past the limit.
        status, hdrs, events, _ = self.gw.stream(
            "/v1/chat/completions", chat("long stream", model="gpt", stream=True, x_mock={"tokens": 3000}), ADMIN)
        self.assertEqual(status, 200)
        self.assertGreater(len(events), 3000)
        s, _ = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(s["attrs"]["gen_ai.response.finish_reasons"], ["stop"])
        self.assertTrue(s["attrs"]["gen_ai.response.id"])

    def test_failed_request(self):
        mock_post(self.mock, "/_mock/faults", {"model": "model-f", "count": -1, "x_mock": {"status": 400}})
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("fail", model="flaky"), ADMIN)
        self.assertEqual(status, 400, raw)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(s["status"]["code"], 2)
        self.assertEqual(s["attrs"]["error.type"], "400")
        self.assertEqual(s["attrs"]["http.response.status_code"], 400)
        self.assertEqual(len(clients), 1)
        self.assertEqual(clients[0]["status"]["code"], 2)

    def test_refused_requests_are_traced(self):
        # Refused before any deployment: a server span with the status and error, no
        # client span; the call id in the answer names it.
        wrong_key = "sk-not-a-key-" + "7" * 20
        status, hdrs, _, raw = self.gw.post_json(
            "/v1/chat/completions", chat("who am i", model="gpt"),
            {"authorization": "Bearer " + wrong_key, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        self.assertEqual(status, 401, raw)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(clients, [])
        self.assertEqual(s["traceId"], TRACE_ID)
        self.assertEqual(s["parentSpanId"], PARENT_ID)
        self.assertEqual(s["status"]["code"], 2)
        self.assertEqual(s["attrs"]["http.response.status_code"], 401)
        self.assertEqual(s["attrs"]["error.type"], "invalid_api_key")
        self.assertEqual(s["attrs"]["gen_ai.operation.name"], "chat")
        status, hdrs, _, raw = self.gw.post_json("/v1/embeddings", {"model": "no-such-model", "input": "x"}, ADMIN)
        self.assertEqual(status, 404, raw)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(clients, [])
        self.assertEqual(s["attrs"]["gen_ai.request.model"], "no-such-model")
        self.assertEqual(s["attrs"]["gen_ai.operation.name"], "embeddings")
        self.assertEqual(s["attrs"]["http.response.status_code"], 404)
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", {"model": "gpt", "messages": "nope"}, ADMIN)
        self.assertEqual(status, 400, raw)
        s, _ = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(s["attrs"]["http.response.status_code"], 400)
        # The wrong key presented is in no export (which does hold the refusal).
        exported = b"".join(r["body"] for r in self.cap.accepted())
        self.assertIn(hdrs["x-litellm-call-id"].encode(), exported)
        self.assertNotIn(wrong_key.encode(), exported)

    def test_unsampled_parent_is_not_exported(self):
        # The default sampler (parentbased_always_on) follows the client's sampled flag.
        trace = "5" * 32
        status, hdrs, _, raw = self.gw.post_json(
            "/v1/chat/completions", chat("quiet", model="gpt"), {**ADMIN, "traceparent": f"00-{trace}-{PARENT_ID}-00"})
        self.assertEqual(status, 200, raw)
        quiet = hdrs["x-litellm-call-id"]
        sent = self.mock.last_headers()
        self.assertRegex(sent["traceparent"], rf"^00-{trace}-[0-9a-f]{{16}}-00$", "the decision goes upstream")
        # A sampled request after it is exported; the unsampled one never is.
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("loud", model="gpt"), ADMIN)
        self.spans_of(hdrs["x-litellm-call-id"])
        time.sleep(0.3)
        self.assertEqual([sp for sp in self.cap.spans() if sp["attrs"].get("llm_gateway.request_id") == quiet], [])

    def test_retried_request_has_one_span_per_attempt(self):
        mock_post(self.mock, "/_mock/faults", {"model": "model-f", "count": 1, "x_mock": {"status": 503}})
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("retry", model="flaky"), ADMIN)
        self.assertEqual(status, 200, raw)
        s, clients = self.spans_of(hdrs["x-litellm-call-id"])
        self.assertEqual(len(clients), 2, clients)
        self.assertEqual(clients[0]["attrs"]["error.type"], "503")
        self.assertEqual(clients[0]["status"]["code"], 2)
        self.assertNotIn("error.type", clients[1]["attrs"])
        self.assertNotEqual(clients[0]["spanId"], clients[1]["spanId"])
        self.assertEqual(s["attrs"]["llm_gateway.attempts"], 2)
        self.assertEqual(s["status"].get("code", 0), 0)

    def test_request_log_line(self):
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat(PROMPT, model="gpt"), ADMIN)
        self.assertEqual(status, 200, raw)
        rid = hdrs["x-litellm-call-id"]

        def line():
            for ln in self.gw.output().splitlines():
                if ln.startswith("{") and rid in ln:
                    return json.loads(ln)
            return None

        rec = wait_until(line)
        self.assertIsNotNone(rec, "a JSON log line for the request")
        self.assertEqual(rec["request_id"], rid)
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["model"], "gpt")
        self.assertEqual(rec["deployment"], "dep-a")
        self.assertGreater(rec["latency_ms"], 0)
        self.assertNotIn(PROMPT, self.gw.output(), "no prompt text in the log unless opted in")

    def test_exporter_metrics(self):
        status, _, _, raw = self.gw.post_json("/v1/chat/completions", chat("count me", model="gpt"), ADMIN)
        self.assertEqual(status, 200, raw)
        self.assertTrue(wait_until(lambda: (metric(self.gw, "llm_gateway_trace_records_total", exporter="otlp",
                                                          outcome="exported") or 0) >= 1))
        self.assertEqual(metric(self.gw, "llm_gateway_trace_records_total", exporter="otlp", outcome="dropped"), 0)


class OtlpProtobufTest(OtlpTest):
    """The same tests with OTLP/HTTP protobuf bodies (the default; here the traces
    variable overrides the general one): the capture server reads them with its own
    protobuf reader (harness.py)."""

    PROTOCOL_ENV = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    CONTENT_TYPE = "application/x-protobuf"

    def test_bodies_are_protobuf(self):
        status, _, _, raw = self.gw.post_json("/v1/chat/completions", chat("hi", model="gpt"), ADMIN)
        self.assertEqual(status, 200, raw)
        got = wait_until(lambda: self.cap.accepted())
        self.assertTrue(got)
        for r in got:
            self.assertEqual(r["headers"]["content-type"], "application/x-protobuf")
            self.assertNotEqual(r["body"][:1], b"{")
            self.assertIsNotNone(r["json"], "the protobuf body could not be read")


class LangfuseTest(unittest.TestCase):
    """success_callback: ["langfuse"] with the seeds' LANGFUSE_* variables."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.cap = Capture()
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, litellm_extra='  success_callback: ["langfuse"]'),
                         env={"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-secret-55",
                              "LANGFUSE_HOST": cls.cap.url})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.cap.stop()
        cls.tmp.cleanup()

    def test_trace_and_generation(self):
        meta = {"trace_name": "support-bot", "session_id": "sess-42", "trace_user_id": "alice",
                "tags": ["prod", "bot"], "generation_name": "answer"}
        status, hdrs, body, raw = self.gw.post_json("/v1/chat/completions",
                                                    chat(PROMPT, model="gpt", metadata=meta), ADMIN)
        self.assertEqual(status, 200, raw)
        rid = hdrs["x-litellm-call-id"]
        server = self.cap.wait_spans(lambda s: s["attrs"].get("llm_gateway.request_id") == rid)
        self.assertEqual(len(server), 1)
        s = server[0]
        req = self.cap.accepted()[-1]
        self.assertEqual(req["path"], "/api/public/otel/v1/traces")
        self.assertEqual(req["headers"]["authorization"],
                         "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-secret-55").decode())
        a = s["attrs"]
        self.assertEqual(a["langfuse.trace.name"], "support-bot")
        self.assertEqual(a["session.id"], "sess-42")
        self.assertEqual(a["user.id"], "alice")
        self.assertEqual(a["langfuse.trace.tags"], ["prod", "bot"])
        gens = self.cap.wait_spans(lambda c: c.get("parentSpanId") == s["spanId"]
                                   and c["attrs"].get("langfuse.observation.type") == "generation")
        self.assertEqual(len(gens), 1)
        g = gens[0]["attrs"]
        self.assertEqual(gens[0]["name"], "answer")
        self.assertEqual(g["langfuse.observation.model.name"], "model-a")
        usage = json.loads(g["langfuse.observation.usage_details"])
        self.assertEqual(usage["input"], body["usage"]["prompt_tokens"])
        self.assertEqual(usage["output"], body["usage"]["completion_tokens"])
        cost = json.loads(g["langfuse.observation.cost_details"])
        self.assertIn("total", cost)
        # Input and output are shown in Langfuse (content on by default for Langfuse).
        self.assertIn(PROMPT, g["langfuse.observation.input"])
        self.assertIn(body["choices"][0]["message"]["content"], g["langfuse.observation.output"])

    def test_failures_not_sent_with_success_callback_only(self):
        mock_post(self.mock, "/_mock/faults", {"model": "model-f", "count": -1, "x_mock": {"status": 400}})
        try:
            status, hdrs, _, _ = self.gw.post_json("/v1/chat/completions", chat("x", model="flaky"), ADMIN)
            self.assertEqual(status, 400)
            rid = hdrs["x-litellm-call-id"]
            status, hdrs2, _, _ = self.gw.post_json("/v1/chat/completions", chat("y", model="gpt"), ADMIN)
            self.assertEqual(status, 200)
            self.assertTrue(self.cap.wait_spans(lambda s: s["attrs"].get("llm_gateway.request_id") == hdrs2["x-litellm-call-id"]))
            self.assertFalse([s for s in self.cap.spans() if s["attrs"].get("llm_gateway.request_id") == rid])
        finally:
            mock_post(self.mock, "/_mock/faults", method="DELETE")


class ExporterDownTest(unittest.TestCase):
    """A collector that is down or refusing: requests do not notice; drops are counted;
    export resumes when it is back."""

    def setUp(self):
        self.tmp = TempDir()
        self.mock = Mock(self.tmp.path)
        self.cap = Capture()

    def tearDown(self):
        self.gw.terminate()
        self.mock.terminate()
        self.cap.stop()
        self.tmp.cleanup()

    def test_down_then_back(self):
        self.cap.stop()  # nothing listens on the port
        self.gw = Gateway(self.tmp.path, config(self.mock, gateway_extra="  trace_export_max_attempts: 2"),
                          env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": self.cap.url + "/v1/traces"})
        t0 = time.time()
        for i in range(20):
            status, _, _, raw = self.gw.post_json("/v1/chat/completions", chat(f"q{i}", model="gpt"), ADMIN)
            self.assertEqual(status, 200, raw)
        self.assertLess(time.time() - t0, 10 * SLOW, "requests were not held up by the exporter")
        dropped = wait_until(lambda: (metric(self.gw, "llm_gateway_trace_records_total", exporter="otlp",
                                                 outcome="dropped") or 0) >= 20, timeout=15)
        self.assertTrue(dropped, self.gw.output()[-2000:])
        self.assertGreaterEqual(metric(self.gw, "llm_gateway_trace_export_batches_total", exporter="otlp",
                                       result="retried"), 1)
        self.assertGreaterEqual(metric(self.gw, "llm_gateway_trace_export_batches_total", exporter="otlp",
                                       result="failed"), 1)
        # Back: new requests are exported.
        self.cap.start()
        status, hdrs, _, _ = self.gw.post_json("/v1/chat/completions", chat("back", model="gpt"), ADMIN)
        self.assertEqual(status, 200)
        rid = hdrs["x-litellm-call-id"]
        self.assertTrue(self.cap.wait_spans(lambda s: s["attrs"].get("llm_gateway.request_id") == rid, timeout=15))

    def test_refusing_collector_is_retried_with_retry_after(self):
        self.cap.status = 503
        self.cap.retry_after = 0
        self.gw = Gateway(self.tmp.path, config(self.mock, gateway_extra="  trace_export_max_attempts: 5"),
                          env={"OTEL_EXPORTER_OTLP_ENDPOINT": self.cap.url})
        status, hdrs, _, _ = self.gw.post_json("/v1/chat/completions", chat("later", model="gpt"), ADMIN)
        self.assertEqual(status, 200)
        rid = hdrs["x-litellm-call-id"]
        self.assertTrue(wait_until(lambda: len(self.cap.requests) >= 1))
        self.cap.status = 200  # recovers before the attempts run out: the batch gets through
        self.assertTrue(self.cap.wait_spans(lambda s: s["attrs"].get("llm_gateway.request_id") == rid, timeout=15))
        self.assertEqual(metric(self.gw, "llm_gateway_trace_records_total", exporter="otlp", outcome="dropped"), 0)

    def test_permanent_rejection_drops_without_retry(self):
        self.cap.status = 400
        self.gw = Gateway(self.tmp.path, config(self.mock), env={"OTEL_EXPORTER_OTLP_ENDPOINT": self.cap.url})
        status, _, _, _ = self.gw.post_json("/v1/chat/completions", chat("bad", model="gpt"), ADMIN)
        self.assertEqual(status, 200)
        self.assertTrue(wait_until(lambda: (metric(self.gw, "llm_gateway_trace_records_total", exporter="otlp",
                                                      outcome="dropped") or 0) >= 1))
        self.assertEqual(metric(self.gw, "llm_gateway_trace_export_batches_total", exporter="otlp", result="retried"), 0)


class SamplingTest(unittest.TestCase):
    """OTEL_TRACES_SAMPLER=traceidratio: the trace id decides (its lower 8 bytes), the
    same way on every node; unsampled requests still reach the trace store."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.cap = Capture()
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, gateway_extra="  trace_store: true"),
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": cls.cap.url, "OTEL_TRACES_SAMPLER": "traceidratio",
                              "OTEL_TRACES_SAMPLER_ARG": "0.5"})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.cap.stop()
        cls.tmp.cleanup()

    def send(self, trace, flags):
        status, hdrs, _, raw = self.gw.post_json(
            "/v1/chat/completions", chat("sampling", model="gpt"), {**ADMIN, "traceparent": f"00-{trace}-{PARENT_ID}-{flags}"})
        self.assertEqual(status, 200, raw)
        sent = self.mock.last_headers()
        return hdrs["x-litellm-call-id"], sent["traceparent"]

    def test_the_trace_id_decides(self):
        low = "ab" * 8 + "0000000000000001"   # lower half small: sampled at 0.5
        high = "ab" * 8 + "ffffffffffffffff"  # lower half large: not sampled
        kept, up_kept = self.send(low, "00")  # not parent-based: the client's flag does not count
        dropped, up_dropped = self.send(high, "01")
        self.assertTrue(up_kept.endswith("-01"), up_kept)
        self.assertTrue(up_dropped.endswith("-00"), up_dropped)
        spans = self.cap.wait_spans(lambda sp: sp["attrs"].get("llm_gateway.request_id") == kept)
        self.assertEqual(len(spans), 1)
        self.assertEqual(spans[0]["traceId"], low)
        # No protocol configured: protobuf, the OpenTelemetry SDKs' default.
        self.assertEqual({r["headers"]["content-type"] for r in self.cap.accepted()}, {"application/x-protobuf"})
        time.sleep(0.3)
        self.assertEqual([sp for sp in self.cap.spans() if sp["attrs"].get("llm_gateway.request_id") == dropped], [])
        # The trace store keeps both.
        for rid in (kept, dropped):
            ok = wait_until(lambda: self.gw.request("GET", f"/traces/{rid}", headers=ADMIN)[0] == 200)
            self.assertTrue(ok, rid)


class TraceStoreMemoryTest(unittest.TestCase):
    """Without a database, GET /traces serves the last requests from memory."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, gateway_extra="  trace_store: true"))

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def get(self, path, headers=ADMIN):
        status, _, data = self.gw.request("GET", path, headers=headers)
        return status, json.loads(data)

    def test_rows_and_detail(self):
        ids = []
        for i in range(3):
            status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat(f"{PROMPT}-{i}", model="gpt"), ADMIN)
            self.assertEqual(status, 200, raw)
            ids.append(hdrs["x-litellm-call-id"])
        page = wait_until(lambda: (lambda p: p if all(i in [r["request_id"] for r in p[1]["data"]] for i in ids) else None)(
            self.get("/traces?limit=1000")))
        self.assertTrue(page)
        status, detail = self.get(f"/traces/{ids[-1]}")
        self.assertEqual(status, 200)
        self.assertEqual(detail["model_group"], "gpt")
        self.assertEqual(detail["model_id"], "dep-a")
        self.assertEqual(detail["status"], "success")
        self.assertEqual(detail["http_status"], 200)
        self.assertIn(f"{PROMPT}-2", detail["request_body"])
        self.assertIn("chat.completion", detail["response_body"])
        self.assertGreater(detail["total_tokens"], 0)
        self.assertRegex(detail["trace_id"], r"^[0-9a-f]{32}$")
        # Paging: limit 2 over the 3 newest, newest first.
        status, p1 = self.get("/traces?limit=2")
        self.assertEqual(status, 200)
        self.assertEqual(len(p1["data"]), 2)
        self.assertNotIn("request_body", p1["data"][0], "list pages have no bodies unless asked")
        status, p2 = self.get("/traces?limit=2&cursor=" + p1["next_cursor"])
        self.assertEqual(status, 200)
        seen = [r["request_id"] for r in p1["data"] + p2["data"]]
        self.assertEqual(len(seen), len(set(seen)))
        starts = [r["start_time"] for r in p1["data"] + p2["data"]]
        self.assertEqual(starts, sorted(starts, reverse=True))
        # Filters.
        status, f = self.get("/traces?status=failure")
        self.assertEqual(status, 200)
        self.assertTrue(all(r["status"] == "failure" for r in f["data"]))
        status, f = self.get("/traces?model=nope")
        self.assertEqual(f["data"], [])

    def test_refusal_is_stored(self):
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", chat("x", model="absent"), ADMIN)
        self.assertEqual(status, 404, raw)
        rid = hdrs["x-litellm-call-id"]
        detail = wait_until(lambda: (lambda r: r[1] if r[0] == 200 else None)(self.get(f"/traces/{rid}")))
        self.assertTrue(detail)
        self.assertEqual(detail["status"], "failure")
        self.assertEqual(detail["http_status"], 404)
        self.assertEqual(detail["model_group"], "absent")
        self.assertIn("does not exist", detail["error_message"])

    def test_errors_and_auth(self):
        self.assertEqual(self.get("/traces/does-not-exist")[0], 404)
        self.assertEqual(self.get("/traces?limit=0")[0], 400)
        self.assertEqual(self.get("/traces?status=maybe")[0], 400)
        self.assertEqual(self.get("/traces?cursor=garbage")[0], 400)
        self.assertEqual(self.get("/traces?start_date=yesterday")[0], 400)
        self.assertEqual(self.get("/traces", headers={})[0], 401)
        status, _, _ = self.gw.request("POST", "/traces", body="{}", headers=ADMIN)
        self.assertEqual(status, 405)

    def test_off_by_default_without_a_database(self):
        gw = Gateway(self.tmp.path, config(self.mock), name="plain")
        try:
            status, _, data = gw.request("GET", "/traces", headers=ADMIN)
            self.assertEqual(status, 404, data)
            self.assertIn("Tracing is off", json.loads(data)["error"]["message"])
        finally:
            gw.terminate()


class TraceStorePostgresTest(unittest.TestCase):
    """With a database: rows written in batches to llm_traces and read back; no secret
    stored or exported anywhere."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.pg = Postgres(cls.tmp.path)
        cls.mock = Mock(cls.tmp.path)
        cls.cap = Capture()
        cls.gw = Gateway(cls.tmp.path,
                         config(cls.mock, db_url=cls.pg.url, litellm_extra='  callbacks: ["otel", "langfuse"]',
                                gateway_extra="  trace_store_bodies: full\n  request_log: true\n  otel_capture_content: true\n"
                                              "  request_log_content: true"),
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": cls.cap.url, "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
                              "LANGFUSE_SECRET_KEY": "sk-lf-secret-9876", "LANGFUSE_HOST": cls.cap.url})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.cap.stop()
        cls.pg.stop()
        cls.tmp.cleanup()

    def test_store_and_secret_scan(self):
        # A virtual key, so that key, user and team are recorded.
        status, _, k, raw = self.gw.post_json("/key/generate", {"key_alias": "tracer", "user_id": "u-7"}, ADMIN)
        self.assertEqual(status, 200, raw)
        vkey = k["key"]
        auth = {"authorization": f"Bearer {vkey}"}
        # The body carries a credential field: it must never be stored or exported.
        body = chat(PROMPT, model="gpt", metadata={"session_id": "s1", "api_key": "sk-in-metadata-secret"},
                    user="end-user-1")
        status, hdrs, _, raw = self.gw.post_json("/v1/chat/completions", body, auth)
        self.assertEqual(status, 200, raw)
        rid = hdrs["x-litellm-call-id"]
        status, hdrs2, events, _ = self.gw.stream("/v1/chat/completions", chat("streamed", model="gpt", stream=True),
                                                  auth)
        self.assertEqual(status, 200)

        def row(r):
            s, _, d = self.gw.request("GET", f"/traces/{r}", headers=ADMIN)
            return json.loads(d) if s == 200 else None

        got = wait_until(lambda: row(rid) and row(hdrs2["x-litellm-call-id"]))
        self.assertTrue(got)
        r = row(rid)
        self.assertEqual(r["key_alias"], "tracer")
        self.assertEqual(r["user_id"], "u-7")
        self.assertEqual(r["end_user"], "end-user-1")
        self.assertEqual(r["metadata"]["session_id"], "s1")
        self.assertIn(PROMPT, r["request_body"])
        self.assertGreater(float(r["spend_exact"]), 0)
        s = row(hdrs2["x-litellm-call-id"])
        self.assertTrue(s["stream"])
        self.assertIsNotNone(s["time_to_first_token_ms"])
        self.assertIn("data:", s["response_body"])
        # Filters against PostgreSQL.
        status, _, d = self.gw.request("GET", f"/traces?api_key={vkey}&limit=10", headers=ADMIN)
        self.assertEqual(status, 200)
        self.assertEqual({x["request_id"] for x in json.loads(d)["data"]}, {rid, hdrs2["x-litellm-call-id"]})
        status, _, d = self.gw.request("GET", "/traces?user_id=u-7&status=failure", headers=ADMIN)
        self.assertEqual(json.loads(d)["data"], [])
        # Both exporters got the request (content on), and the log line was written.
        self.assertTrue(self.cap.wait_spans(lambda x: x["attrs"].get("llm_gateway.request_id") == rid))
        self.assertTrue(wait_until(lambda: any(q["path"].startswith("/api/public/otel") for q in self.cap.accepted())))
        self.assertTrue(wait_until(lambda: rid in self.gw.output()))
        # Secret scan: exports, the trace store (every column), the log.
        secrets = [MASTER, vkey, PROVIDER_KEY, "sk-in-metadata-secret", "sk-lf-secret-9876"]
        exported = b"".join(q["body"] for q in self.cap.requests).decode("utf-8", "replace")
        self.assertIn(PROMPT, exported, "content on: the prompt is exported (the scan is not vacuous)")
        stored = self.pg.query("SELECT row_to_json(t)::text FROM llm_traces t")
        self.assertIn(PROMPT, stored)
        log = self.gw.output()
        for secret in secrets:
            self.assertNotIn(secret, exported, f"{secret[:8]}… exported")
            self.assertNotIn(secret, stored, f"{secret[:8]}… stored")
            self.assertNotIn(secret, log, f"{secret[:8]}… logged")


if __name__ == "__main__":
    unittest.main()
