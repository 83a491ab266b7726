"""Cluster-wide rate limits through a real Redis shared by three gateway nodes: a key's
rpm and tpm hold across the nodes; Redis killed or hung mid-load fails no request
(limits fall back to each node's share, readiness and metrics say so) and the nodes go
back to Redis when it returns."""

import json
import os
import re
import threading
import time
import unittest

from harness import Gateway, Mock, Redis, TempDir, chat

MASTER = "sk-master-redis"
ADMIN = {"authorization": f"Bearer {MASTER}"}
SHARED_KEY = "sk-shared-cluster-key"


def config(mock, redis, window=4):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
general_settings:
  master_key: {MASTER}
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis.port}
gateway_settings:
  rate_limit_window: {window}
  rate_limit_buckets: 8
  redis_timeout: 0.2
"""


def readiness(gw):
    status, _, raw = gw.request("GET", "/health/readiness")
    return json.loads(raw)


def metric(gw, name):
    _, _, raw = gw.request("GET", "/metrics")
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", raw.decode(), re.M)
    return float(m.group(1)) if m else None


class RedisNodes:
    """A mock, a real redis-server and the gateway nodes a test starts (self.nodes), all
    stopped after each test. Subclasses set mock_args and redis_args."""

    mock_args = ()
    redis_args = {}

    def setUp(self):
        self.tmp = TempDir()
        self.mock = Mock(self.tmp.path, *self.mock_args)
        self.redis = Redis(self.tmp.path, **self.redis_args)
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.terminate()
        self.mock.terminate()
        self.redis.stop()
        self.tmp.cleanup()


class ClusterLimitsTest(RedisNodes, unittest.TestCase):
    mock_args = ("--threads", "2")

    def start_nodes(self, n=3, window=4, **key_fields):
        for i in range(n):
            gw = Gateway(self.tmp.path, config(self.mock, self.redis, window), name=f"node{i}")
            self.nodes.append(gw)
            # Keys live in each node's memory here (no database): the same caller-chosen
            # key on every node is the same scope in Redis (scopes are named by key hash).
            body = {"key": SHARED_KEY, "key_alias": "shared"}
            body.update(key_fields)
            status, _, _, raw = gw.post_json("/key/generate", body, ADMIN)
            self.assertEqual(status, 200, raw)
        deadline = time.time() + 10
        while time.time() < deadline and not all(readiness(g)["dependencies"]["redis"]["status"] == "ok" for g in self.nodes):
            time.sleep(0.05)
        for g in self.nodes:
            self.assertEqual(readiness(g)["dependencies"]["redis"]["status"], "ok")

    def drive(self, seconds, per_node_threads=3, body=None, stop_at=None):
        """Hammers every node for `seconds`; returns the list of statuses."""
        statuses = []
        lock = threading.Lock()
        end = time.time() + seconds

        def worker(gw):
            c = gw.conn()
            while time.time() < end:
                c.request("POST", "/v1/chat/completions", body=json.dumps(body or chat()),
                          headers={"content-type": "application/json", "authorization": "Bearer " + SHARED_KEY})
                r = c.getresponse()
                r.read()
                with lock:
                    statuses.append(r.status)
            c.close()

        threads = [threading.Thread(target=worker, args=(g,)) for g in self.nodes for _ in range(per_node_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses

    def test_a_node_with_redis_exits_cleanly(self):
        # SIGTERM tears down the Redis connections, timers and sockets before the io
        # contexts they belong to (the sanitizer build aborts on a use-after-free).
        self.start_nodes(n=1, rpm_limit=1000)
        status, _, _, raw = self.nodes[0].post_json("/v1/chat/completions", chat(),
                                                    {"authorization": "Bearer " + SHARED_KEY})
        self.assertEqual(status, 200, raw)
        self.assertEqual(self.nodes[0].terminate(), 0, "exit status after SIGTERM (its log is in the test's temp dir)")

    def test_rpm_holds_across_three_nodes(self):
        self.start_nodes(rpm_limit=100, window=6)
        statuses = self.drive(4.5)
        admitted = statuses.count(200)
        self.assertGreaterEqual(admitted, 100)
        self.assertLessEqual(admitted, 102, f"{admitted} admitted for a limit of 100")
        self.assertEqual(set(statuses) - {200, 429}, set())
        self.assertGreater(statuses.count(429), 0)

    def test_tpm_holds_across_three_nodes(self):
        # 16 output tokens per answer; one client per node, so at most 2 requests may be
        # in flight elsewhere when a node checks (tokens count when the answer is known).
        self.start_nodes(tpm_limit=800, window=6)
        statuses = self.drive(4.5, per_node_threads=1)
        tokens = 16 * statuses.count(200)
        self.assertGreaterEqual(tokens, 800)
        self.assertLessEqual(tokens, 800 + 2 * 16, f"{tokens} tokens admitted for a limit of 800")

    def test_redis_killed_mid_load_fails_no_request(self):
        self.start_nodes(rpm_limit=100000)
        results = {}

        def load():
            results["statuses"] = self.drive(4.0, per_node_threads=2)

        t = threading.Thread(target=load)
        t.start()
        time.sleep(1.0)
        self.redis.kill()
        time.sleep(1.0)
        r = readiness(self.nodes[0])
        t.join()
        statuses = results["statuses"]
        self.assertEqual(set(statuses), {200}, f"non-200 answers while Redis was away: {set(statuses)}")
        self.assertEqual(r["status"], "degraded")
        self.assertEqual(r["dependencies"]["redis"]["status"], "unavailable")
        self.assertEqual(metric(self.nodes[0], "llm_gateway_redis_up"), 0)
        self.assertGreater(metric(self.nodes[0], "llm_gateway_rate_limit_local_decisions_total"), 0)
        # Redis returns: the nodes go back to it.
        self.redis.start()
        deadline = time.time() + 15
        while time.time() < deadline and readiness(self.nodes[0])["dependencies"]["redis"]["status"] != "ok":
            time.sleep(0.1)
        self.assertEqual(readiness(self.nodes[0])["dependencies"]["redis"]["status"], "ok")
        self.assertEqual(self.drive(0.5, per_node_threads=1).count(200) > 0, True)

    def test_redis_hung_is_bounded_by_the_timeout(self):
        self.start_nodes(rpm_limit=100000)
        self.redis.pause()
        try:
            t0 = time.time()
            status, _, _, raw = self.nodes[0].post_json("/v1/chat/completions", chat(), {"authorization": "Bearer " + SHARED_KEY})
            elapsed = time.time() - t0
            self.assertEqual(status, 200, raw)
            self.assertLess(elapsed, 2.0)
        finally:
            self.redis.resume()

    def test_fallback_share_while_redis_is_away(self):
        # rpm 30 on 3 live nodes: while Redis is away each node admits its third, 10.
        self.start_nodes(rpm_limit=30, window=30)
        time.sleep(1.5)  # every node has heartbeated: 3 live nodes seen
        self.assertEqual(readiness(self.nodes[0])["dependencies"]["redis"]["live_nodes"], 3)
        self.redis.kill()
        statuses = []
        for _ in range(15):
            s, _, _, _ = self.nodes[0].post_json("/v1/chat/completions", chat(), {"authorization": "Bearer " + SHARED_KEY})
            statuses.append(s)
        self.assertEqual(statuses.count(200), 10, statuses)


def tls_config(mock, redis, url_query, window=6):
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
general_settings:
  master_key: {MASTER}
router_settings:
  redis_url: "rediss://:{redis.password}@localhost:{redis.port}/0{url_query}"
gateway_settings:
  rate_limit_window: {window}
  rate_limit_buckets: 8
  redis_timeout: 0.2
"""


class TlsRedisTest(RedisNodes, unittest.TestCase):
    """rediss://: hiredis 0.14 has no TLS, so the gateway bridges it in process; a real
    redis-server that listens on TLS only, with a certificate from a test CA."""

    redis_args = {"password": "tls-secret", "tls": True}

    def node(self, url_query, name, env=None):
        gw = Gateway(self.tmp.path, tls_config(self.mock, self.redis, url_query), name=name, env=env)
        self.nodes.append(gw)
        status, _, _, raw = gw.post_json("/key/generate", {"key": SHARED_KEY, "rpm_limit": 20}, ADMIN)
        self.assertEqual(status, 200, raw)
        return gw

    def wait_redis(self, gw, want):
        deadline = time.time() + 10
        while time.time() < deadline and readiness(gw)["dependencies"]["redis"]["status"] != want:
            time.sleep(0.05)
        return readiness(gw)["dependencies"]["redis"]["status"]

    def call(self, gw):
        s, _, _, _ = gw.post_json("/v1/chat/completions", chat(), {"authorization": "Bearer " + SHARED_KEY})
        return s

    def test_limits_hold_across_nodes_over_tls(self):
        q = "?ssl_ca_certs=" + self.redis.ca["ca"]
        a, b = self.node(q, "tls-a"), self.node(q, "tls-b")
        self.assertEqual(self.wait_redis(a, "ok"), "ok", a.output())
        self.assertEqual(self.wait_redis(b, "ok"), "ok", b.output())
        self.assertIn("over TLS", a.output())
        statuses = [self.call(g) for _ in range(15) for g in (a, b)]
        # 20 per minute for the key, counted in the one Redis both nodes reach over TLS
        # (each node alone would admit 20).
        self.assertEqual(statuses.count(200), 20, statuses)
        self.assertEqual(set(statuses), {200, 429})
        # The counters really are in that Redis (read back over TLS).
        with self.redis.connect() as s:
            s.sendall(b"AUTH tls-secret\r\nKEYS *\r\n")
            time.sleep(0.3)
            data = s.recv(65536)
        self.assertIn(b"{llm-gateway}:w:", data)

    def test_an_unverifiable_certificate_is_refused_and_served_locally(self):
        # The system's CAs do not know the test CA: no connection; requests are still
        # served on local limits, readiness says Redis is down, the log says why.
        gw = self.node("?ssl_ca_certs=" + self.redis.ca["other_ca"], "tls-bad")
        time.sleep(1.0)
        self.assertNotEqual(readiness(gw)["dependencies"]["redis"]["status"], "ok")
        self.assertEqual(self.call(gw), 200)
        self.assertRegex(gw.output(), r"TLS bridge: TLS handshake: .*certificate verify failed")
        # Verification off (ssl_cert_reqs=none): the same server is accepted.
        ok = self.node("?ssl_cert_reqs=none", "tls-noverify")
        self.assertEqual(self.wait_redis(ok, "ok"), "ok", ok.output())
        self.assertIn("certificate not verified", ok.output())

    def test_redis_restart_over_tls_reconnects(self):
        gw = self.node("?ssl_ca_certs=" + self.redis.ca["ca"], "tls-restart")
        self.assertEqual(self.wait_redis(gw, "ok"), "ok", gw.output())
        self.redis.kill()
        self.assertNotEqual(self.wait_redis(gw, "unavailable"), "ok")
        self.assertEqual(self.call(gw), 200)
        self.redis.start()
        self.assertEqual(self.wait_redis(gw, "ok"), "ok", gw.output())
        # No bridge socket left behind in the temp dir (each is removed once connected).
        leftovers = [d for d in os.listdir(os.environ.get("TMPDIR", "/tmp")) if d.startswith("llm-gateway-redis-")]
        self.assertEqual(self.call(gw), 200)
        self.assertEqual(gw.terminate(), 0)
        after = [d for d in os.listdir(os.environ.get("TMPDIR", "/tmp")) if d.startswith("llm-gateway-redis-")]
        self.assertLessEqual(len(after), len(leftovers))


if __name__ == "__main__":
    unittest.main()
