"""Budget admission as a LiteLLM user expects (issue 17): by default a request is
admitted while spend plus what is in flight (each request at its estimate) is below the
budget, so a key with $0.90 left can call a model whose worst case is $0.96, and a
small-budget key can make its first call; the cluster overshoots by at most the requests
in flight. `budget_enforcement: strict` keeps the worst-case reservation (a hard
ceiling). Budgets are admitted on the io threads from their slices of the node's lease:
three nodes on one PostgreSQL hold one budget, and the database's spend is exactly what
the answers said they cost."""

import json
import threading
import time
import unittest
from decimal import Decimal

from harness import Gateway, Mock, Postgres, TempDir, chat

MASTER = "sk-master-budgets"
ADMIN = {"authorization": f"Bearer {MASTER}"}
# 16 completion tokens at 0.001 + the prompt at 0.0001 per token: about $0.02 a call.
# The model's maximum output (4096 tokens) makes the worst case about $4.10.
MODEL_INFO = "{input_cost_per_token: 0.0001, output_cost_per_token: 0.001, max_output_tokens: 4096}"


def config(mock, extra="", database=""):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
    model_info: {MODEL_INFO}
general_settings:
  master_key: {MASTER}
{database}gateway_settings:
  spend_flush_interval: 0.2
{extra}
"""


def bearer(key):
    return {"authorization": f"Bearer {key}"}


class BudgetModesTest(unittest.TestCase):
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
        return json.loads(data)

    def call(self, g, key, **extra):
        return g.post_json("/v1/chat/completions", chat("hi", **extra), bearer(key))

    def test_a_small_budget_makes_its_first_call_by_default(self):
        key = self.key(self.gw, max_budget=0.5)
        status, h, body, raw = self.call(self.gw, key)
        self.assertEqual(status, 200, raw)
        self.assertEqual(self.info(self.gw, key)["budget_enforcement"], "spend")
        # Strict: the worst case ($4.10) does not fit in $0.50.
        key = self.key(self.strict, max_budget=0.5)
        status, h, body, raw = self.call(self.strict, key)
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["type"], "budget_exceeded")
        self.assertIn("this request may cost up to", body["error"]["message"])
        self.assertEqual(self.info(self.strict, key)["budget_enforcement"], "strict")

    def test_admitted_until_spent_and_never_more_than_one_call_over(self):
        budget = Decimal("0.1")
        key = self.key(self.gw, key_alias="runs-out", max_budget=float(budget))
        total, calls = Decimal(0), 0
        for _ in range(50):
            status, h, body, raw = self.call(self.gw, key)
            if status != 200:
                break
            calls += 1
            last = Decimal(h["x-litellm-response-cost"])
            total += last
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["type"], "budget_exceeded")
        msg = body["error"]["message"]
        self.assertIn("Budget has been exceeded!", msg)
        self.assertIn("runs-out", msg)
        self.assertIn("resets at", msg)
        self.assertGreater(calls, 3)
        # One at a time: admitted while anything was left, so at most the last call over.
        self.assertGreaterEqual(total, budget)
        self.assertLess(total - last, budget)

    def test_parallel_overshoot_is_bounded_by_what_was_in_flight(self):
        budget = Decimal("0.2")
        key = self.key(self.gw, max_budget=float(budget))
        costs, lock = [], threading.Lock()
        workers = 6

        def worker():
            for _ in range(100):
                status, h, body, raw = self.call(self.gw, key)
                if status != 200:
                    self.assertEqual(status, 429, raw)
                    return
                with lock:
                    costs.append(Decimal(h["x-litellm-response-cost"]))

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(costs, Decimal(0))
        self.assertGreaterEqual(total, budget * Decimal("0.9"))
        self.assertLessEqual(total, budget + workers * max(costs))

    def test_a_budget_raised_admits_at_once(self):
        key = self.key(self.gw, max_budget=0.01)
        self.assertEqual(self.call(self.gw, key)[0], 200)
        self.assertEqual(self.call(self.gw, key)[0], 429)
        status, _, _, raw = self.gw.post_json("/key/update", {"key": key, "max_budget": 10}, ADMIN)
        self.assertEqual(status, 200, raw)
        self.assertEqual(self.call(self.gw, key)[0], 200)


class ClusterBudgetTest(unittest.TestCase):
    """Three nodes, one PostgreSQL, one budget, default (spend) admission."""

    def test_three_nodes_hold_one_budget(self):
        tmp = TempDir()
        pg = Postgres(tmp.path)
        mock = Mock(tmp.path)
        nodes = []
        try:
            db = f"  database_url: {pg.url}\n"
            for i in range(3):
                nodes.append(Gateway(tmp.path, config(mock, f"  spend_spool_path: {tmp.path}/n{i}.spool", db),
                                     name=f"n{i}", env={"TMPDIR": tmp.path}))
            budget = Decimal("0.3")  # about 15 calls
            status, _, k, raw = nodes[0].post_json("/key/generate", {"max_budget": float(budget)}, ADMIN)
            self.assertEqual(status, 200, raw)
            key = k["key"]
            costs, other, lock = [], [], threading.Lock()
            per_node = 2

            def worker(g):
                for _ in range(100):
                    status, h, body, raw = g.post_json("/v1/chat/completions", chat("hi"), bearer(key))
                    with lock:
                        if status == 200:
                            costs.append(Decimal(h["x-litellm-response-cost"]))
                        elif not (status == 429 and body["error"]["type"] == "budget_exceeded"):
                            other.append((status, raw))
                    if status != 200:
                        return

            threads = [threading.Thread(target=worker, args=(g,)) for g in nodes for _ in range(per_node)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(other, [])
            total = sum(costs, Decimal(0))
            in_flight = len(threads) * max(costs)
            self.assertLessEqual(total, budget + in_flight, "overshoot beyond what was in flight")
            self.assertGreater(total, budget * Decimal("0.6"), "slices stranded the budget")
            # The database holds exactly what the answers said they cost.
            deadline = time.time() + 10
            while True:
                status, _, data = nodes[1].request("GET", f"/key/info?key={key}", headers=ADMIN)
                spend = Decimal(repr(json.loads(data)["info"]["spend"]))
                if abs(spend - total) < Decimal("1e-12") or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertAlmostEqual(float(spend), float(total), places=12)
            status, _, data = nodes[2].request("GET", f"/spend/logs?api_key={key}&limit=1000", headers=ADMIN)
            rows = json.loads(data)
            self.assertEqual(len(rows), len(costs))
            self.assertEqual(sum((Decimal(r["spend_exact"]) for r in rows), Decimal(0)), total)
        finally:
            for g in nodes:
                g.terminate()
            mock.terminate()
            pg.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
