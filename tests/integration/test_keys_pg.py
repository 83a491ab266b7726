"""Keys, budgets and spend on a real PostgreSQL shared by several gateway nodes:
persistence, changes seen by every node within a second, one budget held exactly by
three nodes driven at once, and no spend lost when the database goes away or the
gateway is stopped while it is away."""

import json
import os
import subprocess
import threading
import time
import unittest
from decimal import Decimal

from harness import GATEWAY_BIN, SLOW, Gateway, Mock, Postgres, TempDir, chat
import test_keys

MASTER = "sk-master-pg"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def bearer(key):
    return {"authorization": f"Bearer {key}"}


class PgKeysTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.pg = Postgres(cls.tmp.path)
        try:
            cls.mock = Mock(cls.tmp.path)
        except BaseException:
            cls.pg.stop()  # tearDownClass does not run when setUpClass fails
            cls.tmp.cleanup()
            raise
        cls.nodes = []

    @classmethod
    def tearDownClass(cls):
        for g in cls.nodes:
            g.terminate()
        cls.mock.terminate()
        cls.pg.stop()
        cls.tmp.cleanup()

    def config(self, name):
        return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {self.mock.base}}}
    model_info: {{input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}}
general_settings:
  master_key: {MASTER}
  database_url: {self.pg.url}
gateway_settings:
  spend_flush_interval: 0.2
  spend_spool_path: {self.tmp.path}/{name}.spool
  budget_enforcement: strict  # the hard ceiling these tests pin; test_budgets.py tests the default
"""

    def node(self, name):
        g = Gateway(self.tmp.path, self.config(name), name=name, env={"TMPDIR": self.tmp.path})
        self.nodes.append(g)
        return g

    def stop(self, g, sig=None):
        rc = g.terminate() if sig is None else g.terminate(sig)
        self.nodes.remove(g)
        return rc

    def admin(self, g, path, body=None, method="POST", expect=200):
        if method == "GET":
            status, _, data = g.request("GET", path, headers=ADMIN)
        else:
            status, _, _, data = g.post_json(path, body if body is not None else {}, ADMIN)
        self.assertEqual(status, expect, data)
        return json.loads(data)

    def key_spend(self, g, key):
        return Decimal(str(self.admin(g, f"/key/info?key={key}", method="GET")["info"]["spend"]))

    def wait_spend(self, g, key, want, timeout=10.0):
        deadline = time.time() + timeout * SLOW
        got = None
        while time.time() < deadline:
            got = self.key_spend(g, key)
            if got == want:
                return got
            time.sleep(0.1)
        return got

    def call(self, g, key, **extra):
        return g.post_json("/v1/chat/completions", chat("spend me", **extra), bearer(key))

    # ------------------------------------------------------------------ tests
    def test_migrate_command(self):
        for _ in range(2):
            out = subprocess.run([GATEWAY_BIN, "migrate"], env={**os.environ, "DATABASE_URL": self.pg.url},
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("database schema at version", out.stdout)
        out = subprocess.run([GATEWAY_BIN, "migrate"], env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"},
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)

    def test_keys_survive_restart(self):
        a = self.node("restart-a")
        k = self.admin(a, "/key/generate", {"key_alias": "survivor", "max_budget": 5})
        status, hdrs, _, raw = self.call(a, k["key"])
        self.assertEqual(status, 200, raw)
        cost = Decimal(hdrs["x-litellm-response-cost"])
        self.assertEqual(self.stop(a), 0)
        a2 = self.node("restart-a")
        status, hdrs, _, raw = self.call(a2, k["key"])
        self.assertEqual(status, 200, raw)
        total = cost + Decimal(hdrs["x-litellm-response-cost"])
        self.assertEqual(self.wait_spend(a2, k["key"], total), total)
        status, _, data = a2.request("GET", "/health/readiness")
        self.assertEqual(json.loads(data)["db"], "connected")
        self.stop(a2)

    def test_change_on_one_node_seen_by_another(self):
        a, b = self.node("change-a"), self.node("change-b")
        k = self.admin(a, "/key/generate", {"key_alias": "shared"})
        key = k["key"]
        self.assertEqual(self.call(b, key)[0], 200, "a key made on A works on B at once")
        for action, want in (("/key/block", 401), ("/key/unblock", 200)):
            self.admin(a, action, {"key": key})
            t0 = time.time()
            status = None
            while time.time() - t0 < 3:
                status = self.call(b, key)[0]
                if status == want:
                    break
                time.sleep(0.02)
            elapsed = time.time() - t0
            self.assertEqual(status, want, action)
            self.assertLess(elapsed, 1.0 * SLOW, f"{action} took {elapsed:.2f}s to reach node B")
        self.admin(a, "/key/update", {"key": key, "models": ["nothing-else"]})
        t0 = time.time()
        while time.time() - t0 < 3 and self.call(b, key)[0] != 401:
            time.sleep(0.02)
        self.assertLess(time.time() - t0, 1.0 * SLOW)
        self.admin(a, "/key/delete", {"keys": [key]})
        t0 = time.time()
        while time.time() - t0 < 3 and self.call(b, key)[0] != 401:
            time.sleep(0.02)
        self.assertLess(time.time() - t0, 1.0 * SLOW)
        self.stop(a)
        self.stop(b)

    def test_three_nodes_one_budget(self):
        nodes = [self.node(f"budget-{i}") for i in range(3)]
        budget = Decimal("0.0003")  # about 25 calls
        k = self.admin(nodes[0], "/key/generate", {"key_alias": "shared-budget", "max_budget": float(budget)})
        key = k["key"]
        costs, refusals, other = [], [], []
        lock = threading.Lock()

        def worker(g):
            for _ in range(200):
                status, hdrs, body, raw = self.call(g, key, max_tokens=20)
                with lock:
                    if status == 200:
                        costs.append(Decimal(hdrs["x-litellm-response-cost"]))
                    elif status == 429 and body["error"]["type"] == "budget_exceeded":
                        refusals.append(body["error"]["message"])
                    else:
                        other.append((status, raw))
                if status == 429:
                    return

        threads = [threading.Thread(target=worker, args=(g,)) for g in nodes for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(other, [])
        self.assertEqual(len(refusals), 9, "every worker was refused in the end")
        total = sum(costs, Decimal(0))
        self.assertLessEqual(total, budget, "the cluster never spent more than the budget")
        self.assertGreater(total, budget * Decimal("0.6"), f"spent {total} of {budget}: slices should not strand it")
        # What the database holds is exactly what the responses said they cost.
        self.assertEqual(self.wait_spend(nodes[1], key, total), total)
        rows = self.admin(nodes[2], f"/spend/logs?api_key={key}&limit=1000", method="GET")
        self.assertEqual(len(rows), len(costs))
        self.assertEqual(sum((Decimal(r["spend_exact"]) for r in rows), Decimal(0)), total)
        for g in nodes:
            self.assertEqual(self.stop(g), 0)

    def test_database_outage_loses_no_spend(self):
        a = self.node("outage-a")
        k = self.admin(a, "/key/generate", {"key_alias": "outage"})
        key = k["key"]
        costs = []

        def drive(n):
            for _ in range(n):
                status, hdrs, _, raw = self.call(a, key)
                self.assertEqual(status, 200, raw)
                costs.append(Decimal(hdrs["x-litellm-response-cost"]))

        drive(10)
        self.pg.pause()
        try:
            drive(20)  # a known key keeps working while the database is away
            time.sleep(0.8)
            status, _, data = a.request("GET", "/health/readiness")
            ready = json.loads(data)
            self.assertEqual(ready["status"], "degraded", ready)
            self.assertEqual(ready["db"], "disconnected")
            metrics = a.request("GET", "/metrics")[2].decode()
            self.assertIn("\nllm_gateway_database_up 0\n", metrics)
        finally:
            self.pg.resume()
        drive(10)
        total = sum(costs, Decimal(0))
        self.assertEqual(self.wait_spend(a, key, total, timeout=20), total)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            ready = json.loads(a.request("GET", "/health/readiness")[2])
            if ready["status"] == "healthy":
                break
            time.sleep(0.1)
        self.assertEqual(ready["status"], "healthy", ready)
        self.assertEqual(self.stop(a), 0)

    def test_sigterm_while_database_is_away(self):
        a = self.node("spool-a")
        k = self.admin(a, "/key/generate", {"key_alias": "spooled"})
        key = k["key"]
        costs = []
        self.pg.pause()
        try:
            for _ in range(15):
                status, hdrs, _, raw = self.call(a, key)
                self.assertEqual(status, 200, raw)
                costs.append(Decimal(hdrs["x-litellm-response-cost"]))
            self.assertEqual(self.stop(a), 0)
            self.assertTrue(os.path.exists(f"{self.tmp.path}/spool-a.spool"), "unwritten spend is on disk")
        finally:
            self.pg.resume()
        a2 = self.node("spool-a")  # same spool path: it writes what the first run kept
        total = sum(costs, Decimal(0))
        self.assertEqual(self.wait_spend(a2, key, total, timeout=20), total)
        deadline = time.time() + 5
        while os.path.exists(f"{self.tmp.path}/spool-a.spool") and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(f"{self.tmp.path}/spool-a.spool"), "the spool is emptied once written")
        self.assertEqual(self.stop(a2), 0)


class AdminOnPostgresTest(test_keys.KeysTest):
    """Every admin route, good and bad input, auth, budgets and spend: the same tests as
    test_keys.py, on a real PostgreSQL."""

    @classmethod
    def start_database(cls):
        cls.pg = Postgres(cls.tmp.path)
        cls.general_extra = f"  database_url: {cls.pg.url}\n"

    @classmethod
    def stop_database(cls):
        cls.pg.stop()

    def test_readiness_says_in_memory(self):
        status, _, data = self.gw.request("GET", "/health/readiness")
        self.assertEqual(status, 200)
        r = json.loads(data)
        self.assertEqual(r["dependencies"]["database"]["status"], "ok", r)
        self.assertEqual(r["db"], "connected")


# Not collected twice: test_keys' own classes run in integration.test_keys.
del test_keys

if __name__ == "__main__":
    unittest.main()
