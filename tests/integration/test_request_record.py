"""The request as the client sent it (issue 17): the trace record and the spend log keep
the client's original body and dialect, so that a request can be replayed exactly as
sent. Anthropic's /v1/messages, Azure's paths and bodies with the gateway's own fields
(timeout, num_retries, fallbacks) are translated or stripped before they go upstream;
what is recorded is what the client sent."""

import json
import time
import unittest

from harness import Gateway, Mock, Postgres, TempDir

MASTER = "sk-master-record"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, database=""):
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/model-g, api_base: {mock.base}}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {MASTER}
  store_prompts_in_spend_logs: true
{database}gateway_settings:
  spend_flush_interval: 0.2
  trace_store: true
  trace_store_bodies: full
"""


class RequestRecordTest(unittest.TestCase):
    database = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.pg = Postgres(cls.tmp.path) if cls.database else None
        cls.mock = Mock(cls.tmp.path)
        db = f"  database_url: {cls.pg.url}\n" if cls.pg else ""
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, db), env={"TMPDIR": cls.tmp.path})

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        if cls.pg:
            cls.pg.stop()
        cls.tmp.cleanup()

    def spend_row(self, request_id):
        deadline = time.time() + 10
        while True:
            status, _, data = self.gw.request("GET", "/spend/logs?limit=1000", headers=ADMIN)
            self.assertEqual(status, 200, data)
            rows = [r for r in json.loads(data) if r["request_id"] == request_id]
            if rows or time.time() > deadline:
                self.assertEqual(len(rows), 1, f"no spend-log row for {request_id}")
                return rows[0]
            time.sleep(0.1)

    def trace(self, request_id):
        deadline = time.time() + 10
        while True:
            status, _, data = self.gw.request("GET", f"/traces/{request_id}", headers=ADMIN)
            if status == 200 or time.time() > deadline:
                self.assertEqual(status, 200, data)
                return json.loads(data)
            time.sleep(0.1)

    def check(self, path, raw_body, headers=None):
        h = {"authorization": f"Bearer {MASTER}"}
        h.update(headers or {})
        status, hdrs, data = self.gw.request("POST", path, raw_body, h)
        self.assertEqual(status, 200, data)
        rid = hdrs["x-litellm-call-id"]
        row = self.spend_row(rid)
        route = path.split("?")[0]
        self.assertEqual(row["route"], route)
        # What the client sent, byte for byte the same JSON (jsonb keeps the value, not the text).
        self.assertEqual(row["proxy_server_request"], json.loads(raw_body))
        t = self.trace(rid)
        self.assertEqual(t["route"], route)
        self.assertEqual(json.loads(t["request_body"]), json.loads(raw_body))
        return json.loads(self.mock.get_json("/_mock/last_request")["body"])

    def test_anthropic_messages_are_recorded_as_sent(self):
        body = json.dumps({"model": "gpt", "max_tokens": 50, "system": "be brief",
                           "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        sent = self.check("/v1/messages", body, {"anthropic-version": "2023-06-01"})
        self.assertIn("messages", sent)
        self.assertNotIn("system", sent, "the provider got the OpenAI translation")

    def test_azure_paths_are_recorded_as_sent(self):
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
        sent = self.check("/openai/deployments/gpt/chat/completions?api-version=2024-06-01", body)
        self.assertEqual(sent["model"], "model-g")

    def test_the_gateways_own_fields_are_recorded_not_sent(self):
        body = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "num_retries": 0,
                           "timeout": 30, "fallbacks": ["gpt"]})
        sent = self.check("/v1/chat/completions", body)
        for k in ("num_retries", "timeout", "fallbacks"):
            self.assertNotIn(k, sent)


class RequestRecordPgTest(RequestRecordTest):
    """The same on PostgreSQL (the spend log's route and proxy_server_request columns)."""
    database = True


if __name__ == "__main__":
    unittest.main()
