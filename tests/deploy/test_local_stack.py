"""scripts/local-stack.sh: PostgreSQL and Redis from Debian's packages and three gateway
nodes sharing them, on one machine. The nodes must pass the readiness check and behave as
one cluster: a key made on one node works on another, a block on one node is seen by the
others, a key's rate limit is counted across nodes, spend made on two nodes is seen on a
third. `down` leaves no process and no directory behind."""

import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "local-stack.sh")
GATEWAY_BIN = os.environ.get("GW_GATEWAY_BIN", os.path.join(ROOT, "build", "dev", "apps", "gateway", "llm-gateway"))
APPS_DIR = os.path.dirname(os.path.dirname(GATEWAY_BIN))
MASTER = "sk-stack-test-master"


def run(args, timeout=120):
    return subprocess.run([SCRIPT] + args, capture_output=True, text=True, timeout=timeout)


def call(url, path, body=None, key=MASTER, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("authorization", "Bearer " + key)
    if data:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def chat(url, key):
    return call(url, "/v1/chat/completions",
                {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}, key=key)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class LocalStackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.parent = tempfile.mkdtemp(prefix="gw-stack-")
        cls.dir = os.path.join(cls.parent, "stack")
        out = run(["up", "--nodes", "3", "--port", "0", "--dir", cls.dir, "--bin", APPS_DIR,
                   "--master-key", MASTER])
        cls.up_output = out.stdout + out.stderr
        if out.returncode != 0:
            run(["down", "--dir", cls.dir])
            raise AssertionError("local-stack.sh up failed:\n" + cls.up_output)
        env = subprocess.run(["bash", "-c", 'source "$1"; printf "%s\\n" "$NODE_URLS" "$DATABASE_URL" "$REDIS_PORT"',
                              "_", os.path.join(cls.dir, "stack.env")], capture_output=True, text=True, check=True)
        urls, cls.db_url, cls.redis_port = env.stdout.splitlines()
        cls.urls = urls.split()
        cls.pids = {}
        for name in os.listdir(cls.dir):
            if name.endswith(".pid"):
                with open(os.path.join(cls.dir, name)) as f:
                    cls.pids[name] = int(f.read().strip())
        with open(os.path.join(cls.dir, "pg", "data", "postmaster.pid")) as f:
            cls.pids["postgres"] = int(f.readline().strip())

    @classmethod
    def tearDownClass(cls):
        run(["down", "--dir", cls.dir])
        for pid in cls.pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", cls.parent])

    def test_1_three_nodes_ready_sharing_database_and_redis(self):
        self.assertEqual(len(self.urls), 3, self.up_output)
        self.assertEqual(len(set(self.urls)), 3)
        for url in self.urls:
            # Each node counts the others by their heartbeats in Redis (a few seconds apart).
            deadline = time.time() + 20
            while True:
                with urllib.request.urlopen(url + "/health/readiness", timeout=10) as r:
                    body = json.loads(r.read())
                if body["dependencies"]["redis"].get("live_nodes") == 3 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(body["status"], "healthy", body)
            self.assertEqual(body["db"], "connected", body)
            self.assertEqual(body["dependencies"]["redis"]["status"], "ok", body)
            self.assertEqual(body["dependencies"]["redis"]["live_nodes"], 3, body)
        self.assertTrue(self.db_url.startswith("postgresql://"))
        self.assertIn(self.urls[0], self.up_output)
        out = run(["status", "--dir", self.dir])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual(out.stdout.count(" ready"), 3, out.stdout)

    def test_2_nodes_act_as_one_cluster(self):
        a, b, c = self.urls
        status, body = call(a, "/key/generate", {"key_alias": "stack", "rpm_limit": 4})
        self.assertEqual(status, 200, body)
        key = body["key"]
        # Made on node 1, used on node 3 (keys live in PostgreSQL).
        status, body = chat(c, key)
        self.assertEqual(status, 200, body)
        # One rate limit across the nodes (Redis): 4 per minute in all.
        results = [chat(url, key)[0] for url in (a, b, c)]
        self.assertEqual(results, [200, 200, 200])
        status, body = chat(b, key)
        self.assertEqual(status, 429, body)
        # Spend made on nodes 1 and 3 is seen from node 2.
        deadline = time.time() + 15
        spend = 0
        while time.time() < deadline:
            status, body = call(b, "/key/info?key=" + key)
            self.assertEqual(status, 200, body)
            spend = body["info"]["spend"]
            if spend > 0:
                break
            time.sleep(0.3)
        self.assertGreater(spend, 0)
        # Blocked on node 2: refused on node 1 within a couple of seconds.
        status, body = call(b, "/key/block", {"key": key})
        self.assertEqual(status, 200, body)
        deadline = time.time() + 5
        status = None
        while time.time() < deadline:
            status, _ = call(a, "/v1/models", key=key)
            if status == 401:
                break
            time.sleep(0.1)
        self.assertEqual(status, 401)

    def test_3_status_reports_a_node_that_is_down(self):
        out = run(["up", "--dir", self.dir, "--bin", APPS_DIR])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("exists", out.stderr)
        pid = self.pids["node-3.pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 20
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        out = run(["status", "--dir", self.dir])
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("node 3", out.stdout)
        self.assertIn("NOT READY", out.stdout)

    def test_4_down_stops_everything(self):
        out = run(["down", "--dir", self.dir])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertFalse(os.path.exists(self.dir))
        deadline = time.time() + 10
        alive = []
        while time.time() < deadline:
            alive = [name for name, pid in self.pids.items() if pid_alive(pid)]
            if not alive:
                break
            time.sleep(0.1)
        self.assertEqual(alive, [], "still running after down")


class BadInputTest(unittest.TestCase):
    def test_bad_options_are_refused(self):
        for args, msg in ((["up", "--nodes", "0"], "--nodes"), (["up", "--port", "x"], "--port"),
                          (["up", "--bogus"], "unknown option"), (["launch"], "unknown command"),
                          (["up", "--config", "/no/such.yaml", "--dir", "/tmp/gw-never", "--bin", APPS_DIR],
                           "no such file")):
            out = run(args)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn(msg, out.stderr, args)
        self.assertFalse(os.path.exists("/tmp/gw-never"))


if __name__ == "__main__":
    unittest.main()
