"""Virtual keys, users, teams, budgets and spend without a database (keys live in
memory): the LiteLLM-compatible admin API, authentication on the model routes,
per-key model access, expiry, blocking, exact spend and budget refusals."""

import hashlib
import json
import re
import time
import unittest
from decimal import Decimal

from harness import Gateway, Mock, TempDir, chat

MASTER = "sk-master-1234"
ADMIN = {"authorization": f"Bearer {MASTER}"}
IN_PRICE = Decimal("0.00000015")
OUT_PRICE = Decimal("0.0000006")


def config(mock, general_extra=""):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
    model_info: {{input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006,
                  cache_read_input_token_cost: 0.000000075}}
  - model_name: other-model
    litellm_params: {{model: openai/other, api_base: {mock.base}}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {MASTER}
{general_extra}gateway_settings:
  spend_flush_interval: 0.2
  budget_enforcement: strict  # these tests pin today's worst-case rule; test_budgets.py the default
"""


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def expected_cost(body, in_price=IN_PRICE, out_price=OUT_PRICE):
    u = body["usage"]
    return u["prompt_tokens"] * in_price + u["completion_tokens"] * out_price


class KeysTest(unittest.TestCase):
    general_extra = ""  # a subclass runs the same tests on PostgreSQL (test_keys_pg.py)

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.start_database()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, cls.general_extra),
                         env={"TMPDIR": cls.tmp.path})

    @classmethod
    def start_database(cls):
        pass

    @classmethod
    def stop_database(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.terminate()
        cls.mock.terminate()
        cls.stop_database()
        cls.tmp.cleanup()
        assert rc == 0, f"gateway exited with {rc}"

    # ------------------------------------------------------------ helpers
    def admin(self, path, body=None, method="POST", expect=200):
        if method == "GET":
            status, _, data = self.gw.request("GET", path, headers=ADMIN)
            parsed = json.loads(data) if data else None
        else:
            status, _, parsed, data = self.gw.post_json(path, body if body is not None else {}, ADMIN)
        self.assertEqual(status, expect, data)
        return parsed

    def new_key(self, **fields):
        return self.admin("/key/generate", fields)

    def call(self, key, **extra):
        return self.gw.post_json("/v1/chat/completions", chat("hello there, budget", **extra), bearer(key))

    def wait_spend(self, key, want, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            info = self.admin(f"/key/info?key={key}", method="GET")["info"]
            got = Decimal(repr(info["spend"]))
            if abs(got - want) < Decimal("1e-12") or time.time() > deadline:
                return got
            time.sleep(0.05)

    # ------------------------------------------------------------ keys
    def test_generate_and_use(self):
        k = self.new_key(key_alias="alpha", metadata={"team": "x"})
        key = k["key"]
        self.assertTrue(key.startswith("sk-"))
        self.assertEqual(k["token"], hashlib.sha256(key.encode()).hexdigest())
        self.assertEqual(k["key_alias"], "alpha")
        status, hdrs, body, raw = self.call(key)
        self.assertEqual(status, 200, raw)
        cost = Decimal(hdrs["x-litellm-response-cost"])
        self.assertEqual(cost, expected_cost(body))
        self.assertGreater(cost, 0)
        self.assertEqual(self.wait_spend(key, cost), cost)
        # The spend log has the row, with the same request id and tokens.
        rows = self.admin(f"/spend/logs?api_key={key}", method="GET")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["request_id"], hdrs["x-litellm-call-id"])
        self.assertEqual(rows[0]["prompt_tokens"], body["usage"]["prompt_tokens"])
        self.assertEqual(Decimal(rows[0]["spend_exact"]), cost)
        self.assertEqual(rows[0]["metadata"]["user_api_key_alias"], "alpha")

    def test_caller_chosen_key_and_duplicates(self):
        self.new_key(key="sk-my-own-key-1", key_alias="own")
        self.assertEqual(self.call("sk-my-own-key-1")[0], 200)
        err = self.admin("/key/generate", {"key": "sk-my-own-key-1"}, expect=400)
        self.assertIn("already exists", err["error"]["message"])
        err = self.admin("/key/generate", {"key_alias": "own"}, expect=400)
        self.assertIn("already exists", err["error"]["message"])
        err = self.admin("/key/generate", {"key": "no-prefix"}, expect=400)
        self.assertEqual(err["error"]["param"], "key")

    def test_auth_errors(self):
        status, _, body, _ = self.gw.post_json("/v1/chat/completions", chat(), {})
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["type"], "auth_error")
        status, _, body, _ = self.call("sk-does-not-exist")
        self.assertEqual(status, 401)
        self.assertIn("invalid API key", body["error"]["message"])
        # A virtual key cannot use the admin API.
        k = self.new_key()
        status, _, body, _ = self.gw.post_json("/key/generate", {}, bearer(k["key"]))
        self.assertEqual(status, 403)
        self.assertEqual(body["error"]["type"], "permission_error")

    def test_keys_change_on_one_connection(self):
        # The gateway hashes a connection's key once and remembers it; a different key on
        # the same keep-alive connection must be looked up as itself, and a key blocked
        # meanwhile must be refused although the connection presented it before.
        a, b = self.new_key(key_alias="conn-a"), self.new_key(key_alias="conn-b")
        c = self.gw.conn()

        def call(key):
            c.request("POST", "/v1/chat/completions", body=json.dumps(chat("same connection")),
                      headers={"content-type": "application/json", **bearer(key)})
            r = c.getresponse()
            r.read()
            return r.status

        self.assertEqual(call(a["key"]), 200)
        self.assertEqual(call(a["key"] + "x"), 401)
        self.assertEqual(call(a["key"][:-1]), 401)
        self.assertEqual(call(b["key"]), 200)
        self.assertEqual(call(a["key"]), 200)
        self.admin("/key/block", {"key": a["key"]})
        self.assertEqual(call(a["key"]), 401)
        self.assertEqual(call(b["key"]), 200)
        status, _, data = self.gw.request("POST", "/key/generate", {}, headers=ADMIN)
        self.assertEqual(status, 200, data)
        self.assertEqual(call(MASTER), 200)
        self.assertEqual(call(b["key"]), 200)
        c.close()
        deadline = time.time() + 5
        while True:  # spend-log rows are written in batches
            rows = self.admin(f"/spend/logs?api_key={b['key']}", method="GET")
            if len(rows) >= 3 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(rows), 3, "each request of key b is charged to b")

    def test_model_access(self):
        k = self.new_key(models=["other-model"])
        status, _, body, _ = self.call(k["key"])
        self.assertEqual(status, 401)
        self.assertIn("key not allowed to access model", body["error"]["message"])
        status, _, body, _ = self.call(k["key"], model="other-model")
        self.assertEqual(status, 200)
        status, _, data = self.gw.request("GET", "/v1/models", headers=bearer(k["key"]))
        self.assertEqual([m["id"] for m in json.loads(data)["data"]], ["other-model"])
        # Widening the key's models through /key/update takes effect at once.
        self.admin("/key/update", {"key": k["key"], "models": []})
        self.assertEqual(self.call(k["key"])[0], 200)

    def test_block_unblock_delete(self):
        k = self.new_key()
        key = k["key"]
        self.assertEqual(self.call(key)[0], 200)
        self.admin("/key/block", {"key": key})
        status, _, body, _ = self.call(key)
        self.assertEqual(status, 401)
        self.assertIn("blocked", body["error"]["message"])
        self.admin("/key/unblock", {"key": key})
        self.assertEqual(self.call(key)[0], 200)
        out = self.admin("/key/delete", {"keys": [key]})
        self.assertEqual(out["deleted_keys"], [key])
        self.assertEqual(self.call(key)[0], 401)
        self.admin(f"/key/info?key={key}", method="GET", expect=404)

    def test_expiry(self):
        k = self.new_key(duration="1s")
        self.assertIsNotNone(k["expires"])
        self.assertEqual(self.call(k["key"])[0], 200)
        time.sleep(1.3)
        status, _, body, _ = self.call(k["key"])
        self.assertEqual(status, 401)
        self.assertIn("Expired Key", body["error"]["message"])

    def test_regenerate(self):
        k = self.new_key(key_alias="regen")
        new = self.admin("/key/regenerate", {"key": k["key"]})
        self.assertNotEqual(new["key"], k["key"])
        self.assertEqual(self.call(k["key"])[0], 401)
        self.assertEqual(self.call(new["key"])[0], 200)
        self.assertEqual(new["key_alias"], "regen")
        # LiteLLM's path form
        newer = self.admin(f"/key/{new['key']}/regenerate", {})
        self.assertEqual(self.call(newer["key"])[0], 200)
        self.assertEqual(self.call(new["key"])[0], 401)

    def test_list(self):
        self.new_key(key_alias="listed-1", user_id="lister")
        self.new_key(key_alias="listed-2", user_id="lister")
        out = self.admin("/key/list?user_id=lister&return_full_object=true", method="GET")
        self.assertEqual(out["total_count"], 2)
        self.assertEqual(sorted(k["key_alias"] for k in out["keys"]), ["listed-1", "listed-2"])
        out = self.admin("/key/list?user_id=lister&size=1&page=2", method="GET")
        self.assertEqual(len(out["keys"]), 1)
        self.assertEqual(out["total_pages"], 2)

    def test_bad_admin_input(self):
        cases = [
            ({"max_budget": -1}, "max_budget"),
            ({"max_budget": "lots"}, "max_budget"),
            ({"budget_duration": "30x"}, "budget_duration"),
            ({"duration": "soon"}, "duration"),
            ({"models": "gpt-4"}, "models"),
            ({"metadata": [1, 2]}, "metadata"),
            ({"rpm_limit": 1.5}, "rpm_limit"),
            ({"tpm_limit": -3}, "tpm_limit"),
        ]
        for body, param in cases:
            err = self.admin("/key/generate", body, expect=400)
            self.assertEqual(err["error"]["param"], param, body)
            self.assertTrue(err["error"]["message"], body)
        status, _, body, _ = self.gw.post_json("/key/generate", "{not json", ADMIN)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_json")
        status, _, body, _ = self.gw.post_json("/key/generate", [1, 2], ADMIN)
        self.assertEqual(status, 400)
        self.admin("/key/info?key=sk-unknown", method="GET", expect=404)
        self.admin("/key/info", method="GET", expect=400)
        self.admin("/key/update", {"key": "sk-unknown", "max_budget": 1}, expect=404)
        self.admin("/key/delete", {"keys": []}, expect=400)
        self.admin("/key/delete", {"keys": ["sk-unknown"]}, expect=404)
        self.admin("/team/new", {"team_id": "t-bad", "max_budget": -2}, expect=400)
        self.admin("/user/new", {"user_role": "emperor"}, expect=400)
        self.admin("/key/generate", {"team_id": "no-such-team"}, expect=400)
        self.admin("/spend/logs?start_date=yesterday", method="GET", expect=400)
        status, hdrs, _ = self.gw.request("GET", "/key/generate", headers=ADMIN)
        self.assertEqual(status, 405)

    # ------------------------------------------------------------ budgets
    def test_key_budget_refusal(self):
        # Each call costs about 1e-5 USD; its worst case (max_tokens=20) a bit more.
        k = self.new_key(key_alias="small-budget", max_budget=0.00003)
        key = k["key"]
        total, ok = Decimal(0), 0
        for _ in range(20):
            status, hdrs, body, raw = self.call(key, max_tokens=20)
            if status != 200:
                break
            ok += 1
            total += Decimal(hdrs["x-litellm-response-cost"])
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["type"], "budget_exceeded")
        msg = body["error"]["message"]
        self.assertIn("Budget has been exceeded!", msg)
        self.assertIn("small-budget", msg)
        self.assertIn("Max budget: $0.00003", msg)
        self.assertGreater(ok, 0)
        self.assertLessEqual(total, Decimal("0.00003"))
        self.assertEqual(self.wait_spend(key, total), total)
        info = self.admin(f"/key/info?key={key}", method="GET")
        budgets = [b for b in info["budgets"] if b["scope"] == "key"]
        self.assertEqual(len(budgets), 1)
        self.assertAlmostEqual(budgets[0]["remaining"], float(Decimal("0.00003") - total), places=12)
        # Raising the budget lets the key through again at once.
        self.admin("/key/update", {"key": key, "max_budget": 1})
        self.assertEqual(self.call(key, max_tokens=20)[0], 200)
        self.assertGreaterEqual(self.metric("llm_gateway_budget_refusals_total"), 1)

    def metric(self, name):
        text = self.gw.request("GET", "/metrics")[2].decode()
        m = re.search(rf"^{name} (\d+)$", text, re.M)
        self.assertIsNotNone(m, f"{name} not in /metrics")
        return int(m.group(1))

    def test_soft_budget_is_followed_not_enforced(self):
        before = self.metric("llm_gateway_soft_budget_crossings_total")
        k = self.new_key(key_alias="soft", soft_budget=0.000001)
        for _ in range(3):
            self.assertEqual(self.call(k["key"], max_tokens=20)[0], 200)
        deadline = time.time() + 5
        while self.metric("llm_gateway_soft_budget_crossings_total") == before and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.metric("llm_gateway_soft_budget_crossings_total"), before + 1, "counted once per period")

    def test_budget_reset(self):
        k = self.new_key(max_budget=0.00004, budget_duration="2s")
        key = k["key"]
        self.assertIsNotNone(k["budget_reset_at"])
        statuses = [self.call(key, max_tokens=20)[0] for _ in range(10)]
        self.assertIn(429, statuses)
        time.sleep(2.5)
        deadline = time.time() + 5
        status = 0
        while time.time() < deadline:
            status = self.call(key, max_tokens=20)[0]
            if status == 200:
                break
            time.sleep(0.2)
        self.assertEqual(status, 200, "the budget came back after its period")

    def test_user_and_team_budgets(self):
        self.admin("/team/new", {"team_id": "team-a", "team_alias": "Team A", "max_budget": 0.00002,
                                 "models": ["mock-gpt"]})
        u = self.admin("/user/new", {"user_id": "user-a", "max_budget": 10, "auto_create_key": False})
        self.assertEqual(u["user_id"], "user-a")
        self.admin("/team/member_add", {"team_id": "team-a", "member": {"user_id": "user-a", "role": "user"}})
        info = self.admin("/team/info?team_id=team-a", method="GET")
        self.assertEqual([m["user_id"] for m in info["team_info"]["members_with_roles"]], ["user-a"])
        uinfo = self.admin("/user/info?user_id=user-a", method="GET")
        self.assertEqual([t["team_id"] for t in uinfo["teams"]], ["team-a"])
        k = self.new_key(user_id="user-a", team_id="team-a")
        key = k["key"]
        # The team allows mock-gpt only.
        self.assertEqual(self.call(key, model="other-model")[0], 401)
        statuses = [self.call(key, max_tokens=20)[0] for _ in range(8)]
        self.assertIn(200, statuses)
        self.assertEqual(statuses[-1], 429)
        status, _, body, _ = self.call(key, max_tokens=20)
        self.assertIn("team 'Team A'", body["error"]["message"])
        self.admin("/team/member_delete", {"team_id": "team-a", "user_id": "user-a"})
        info = self.admin("/team/info?team_id=team-a", method="GET")
        self.assertEqual(info["team_info"]["members_with_roles"], [])
        teams = self.admin("/team/list", method="GET")
        self.assertIn("team-a", [t["team_id"] for t in teams])
        # Blocking the team through /team/update blocks its keys.
        self.admin("/team/update", {"team_id": "team-a", "max_budget": 5, "blocked": True})
        self.assertEqual(self.call(key)[0], 401)
        self.admin("/team/delete", {"team_ids": ["team-a"]})
        self.admin("/team/info?team_id=team-a", method="GET", expect=404)
        self.admin("/user/delete", {"user_ids": ["user-a"]})
        self.admin("/user/info?user_id=user-a", method="GET", expect=404)

    def test_cached_prompt_tokens_cost_less(self):
        k = self.new_key(key_alias="cache-reader")
        raw = json.dumps({"id": "chatcmpl-c", "object": "chat.completion", "model": "upstream-gpt",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
                                    "prompt_tokens_details": {"cached_tokens": 600}}})
        status, hdrs, body, data = self.call(k["key"], x_mock={"status": 200, "raw_body": raw, "content_type": "application/json"})
        self.assertEqual(status, 200, data)
        # 400 uncached at 0.15/M, 600 cached at 0.075/M, 10 out at 0.6/M.
        want = 400 * IN_PRICE + 600 * Decimal("0.000000075") + 10 * OUT_PRICE
        self.assertEqual(Decimal(hdrs["x-litellm-response-cost"]), want)
        self.assertEqual(self.wait_spend(k["key"], want), want)

    def test_stream_spend_when_the_client_asks_no_usage(self):
        k = self.new_key(key_alias="streamer")
        key = k["key"]
        status, hdrs, _, raw = self.call(key, x_mock={"tokens": 5})
        self.assertEqual(status, 200, raw)
        cost = Decimal(hdrs["x-litellm-response-cost"])
        status, _, events, raw = self.gw.stream("/v1/chat/completions",
                                                chat("hello there, budget", stream=True, x_mock={"tokens": 5}),
                                                bearer(key))
        self.assertEqual(status, 200, raw)
        # The gateway asked the provider for usage...
        last = self.mock.get_json("/_mock/last_request")
        self.assertTrue(last["body"].startswith('{"stream_options":{"include_usage":true},'), last["body"][:80])
        # ...and the client, which did not, gets no usage-only chunk.
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertTrue(all(c["choices"] for c in chunks), events)
        self.assertEqual(len("".join(c["choices"][0]["delta"].get("content", "") for c in chunks).split()), 5)
        # The stream cost what the same call cost unstreamed.
        self.assertEqual(self.wait_spend(key, 2 * cost), 2 * cost)
        # A client that set stream_options itself gets exactly what it asked for.
        status, _, events, _ = self.gw.stream(
            "/v1/chat/completions",
            chat("hello there, budget", stream=True, stream_options={"include_usage": True}, x_mock={"tokens": 5}),
            bearer(key))
        self.assertEqual(json.loads(events[-2])["choices"], [])
        self.assertEqual(self.wait_spend(key, 3 * cost), 3 * cost)

    def test_stream_without_usage_is_estimated_not_free(self):
        k = self.new_key(key_alias="no-usage-stream")
        chunk = lambda delta: "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                                                    "choices": [{"index": 0, "delta": delta,
                                                                 "finish_reason": None}]}) + "\n\n"
        sse = chunk({"role": "assistant"}) + "".join(chunk({"content": w}) for w in ["a ", "b ", "c ", "d"])
        sse += "data: [DONE]\n\n"
        status, _, events, raw = self.gw.stream(
            "/v1/chat/completions",
            chat("hello", stream=True, x_mock={"status": 200, "raw_body": sse, "content_type": "text/event-stream"}),
            bearer(k["key"]))
        self.assertEqual(status, 200, raw)
        self.assertEqual(events[-1], "[DONE]")
        deadline = time.time() + 5
        got = Decimal(0)
        while got == 0 and time.time() < deadline:
            got = Decimal(repr(self.admin(f"/key/info?key={k['key']}", method="GET")["info"]["spend"]))
            time.sleep(0.05)
        self.assertGreaterEqual(got, 4 * OUT_PRICE + IN_PRICE, "4 content chunks and a prompt")
        self.assertLess(got, 4 * OUT_PRICE + 100 * IN_PRICE)

    def test_global_spend(self):
        k = self.new_key(key_alias="global-spender")
        status, hdrs, body, _ = self.call(k["key"])
        self.assertEqual(status, 200)
        cost = Decimal(hdrs["x-litellm-response-cost"])
        self.wait_spend(k["key"], cost)
        keys = self.admin("/global/spend/keys?limit=1000", method="GET")
        mine = [r for r in keys if r["key_alias"] == "global-spender"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(Decimal(mine[0]["total_spend_exact"]), cost)
        models = self.admin("/global/spend/models", method="GET")
        self.assertIn("mock-gpt", [m["model"] for m in models])
        total = self.admin("/global/spend", method="GET")
        self.assertGreaterEqual(Decimal(total["spend_exact"]), cost)

    def test_readiness_says_in_memory(self):
        status, _, data = self.gw.request("GET", "/health/readiness")
        self.assertEqual(status, 200)
        r = json.loads(data)
        self.assertEqual(r["dependencies"]["database"]["status"], "in_memory")
        self.assertIn("lost at restart", r["dependencies"]["database"]["note"])


class DefaultKeyTest(unittest.TestCase):
    """startWithDefaults: a known virtual key from the environment (.env)."""

    def test_default_key_from_env(self):
        tmp = TempDir()
        try:
            with open(f"{tmp.path}/.env", "w") as f:
                f.write("LITELLM_MASTER_KEY=sk-password\nLLM_GATEWAY_DEFAULT_VIRTUAL_KEY=sk-TE5BPNfSh4IOCNpW3I5EDQ\n")
            gw = Gateway(tmp.path, None, env={"LITELLM_MASTER_KEY": None, "TMPDIR": tmp.path}, cwd=tmp.path)
            try:
                status, _, body, raw = gw.post_json("/v1/chat/completions", chat(),
                                                    bearer("sk-TE5BPNfSh4IOCNpW3I5EDQ"))
                self.assertEqual(status, 200, raw)
                status, _, _, _ = gw.post_json("/v1/chat/completions", chat(), bearer("sk-wrong"))
                self.assertEqual(status, 401)
            finally:
                self.assertEqual(gw.terminate(), 0)
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
