"""Start-up, configuration, shutdown and the upstream transport: the embedded default,
.env files, config checks, SIGTERM drain, metrics format, HTTPS upstreams and stale
pooled connections."""

import glob
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

from harness import GATEWAY_BIN, SLOW, Gateway, Mock, TempDir, chat, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60 * SLOW, **kw)


class StartupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def test_embedded_default_answers_at_once(self):
        gw = Gateway(self.tmp.path)  # no --config, empty cwd
        try:
            status, _, body, _ = gw.post_json("/v1/chat/completions", chat("hello"))
            self.assertEqual(status, 200, body)
            self.assertEqual(body["object"], "chat.completion")
            status, _, events, _ = gw.stream("/v1/chat/completions", chat("hello", stream=True))
            self.assertEqual(events[-1], "[DONE]")
            status, _, body, _ = gw.post_json("/v1/embeddings", {"model": "mock-embed", "input": "x"})
            self.assertEqual(status, 200, body)
            self.assertIn("no master key", gw.output())
        finally:
            self.assertEqual(gw.terminate(), 0)

    def test_dotenv_master_key(self):
        envfile = os.path.join(self.tmp.path, "my.env")
        with open(envfile, "w") as f:
            f.write("LITELLM_MASTER_KEY=sk-from-dotenv\n")
        argv = [GATEWAY_BIN, "--host", "127.0.0.1", "--port", "0", "--port-file",
                os.path.join(self.tmp.path, "p"), "--env-file", envfile]
        env = {k: v for k, v in os.environ.items() if k != "LITELLM_MASTER_KEY"}
        proc = subprocess.Popen(argv, cwd=self.tmp.path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            from harness import wait_for_port_file
            import http.client
            port = wait_for_port_file(os.path.join(self.tmp.path, "p"), proc)
            for key, want in ((None, 401), ("sk-from-dotenv", 200)):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                h = {"content-type": "application/json"}
                if key:
                    h["authorization"] = "Bearer " + key
                c.request("POST", "/v1/chat/completions", body=json.dumps(chat()), headers=h)
                self.assertEqual(c.getresponse().status, want)
                c.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)

    def test_every_starter_config_checks(self):
        configs = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
        self.assertGreaterEqual(len(configs), 4)
        for cfg in configs:
            r = run([GATEWAY_BIN, "--check-config", "--config", cfg], cwd=self.tmp.path)
            with self.subTest(config=os.path.basename(cfg)):
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("is valid", r.stdout)

    def test_check_config_with_redis_and_database_exits_at_once(self):
        # Nothing is started: no Redis connection to close, no database to reach.
        env = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(free_port()),
               "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/x"}
        t0 = time.monotonic()
        r = subprocess.run([GATEWAY_BIN, "--check-config"], capture_output=True, text=True, timeout=30 * SLOW,
                           env=env, cwd=self.tmp.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stdout)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)

    def test_healthcheck_subcommand(self):
        gw = Gateway(self.tmp.path)
        try:
            hc = [GATEWAY_BIN, "healthcheck", "--port", str(gw.port)]
            out = run(hc)
            self.assertEqual(out.returncode, 0, out.stderr)
            out = run(hc + ["--path", "/health/readiness", "--host", "localhost"])
            self.assertEqual(out.returncode, 0, out.stderr)
            out = run(hc + ["--path", "/no/such/route"])
            self.assertEqual(out.returncode, 1)
            self.assertIn("answered 404", out.stderr)
        finally:
            gw.terminate()
        out = run([GATEWAY_BIN, "healthcheck", "--port", str(free_port())])
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot connect", out.stderr)
        # A listener that never answers: the deadline holds.
        import socket
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            t0 = time.monotonic()
            out = run([GATEWAY_BIN, "healthcheck", "--port", str(silent.getsockname()[1]), "--timeout", "1"])
            self.assertEqual(out.returncode, 1)
            self.assertIn("timed out", out.stderr)
            self.assertLess(time.monotonic() - t0, 10)
        out = run([GATEWAY_BIN, "healthcheck", "--path", "no-slash"])
        self.assertEqual(out.returncode, 2)

    def test_invalid_config_names_path_and_line(self):
        cfg = os.path.join(self.tmp.path, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      rpm: lots\n")
        r = run([GATEWAY_BIN, "--config", cfg], cwd=self.tmp.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.yaml:5", r.stderr)
        self.assertIn("model_list[0].litellm_params.rpm", r.stderr)

    def test_unknown_budget_time_zone_fails_at_start(self):
        cfg = os.path.join(self.tmp.path, "tz.yaml")
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1'}\n"
                    "litellm_settings:\n  timezone: Mars/Olympus_Mons\n")
        r = run([GATEWAY_BIN, "--check-config", "--config", cfg], cwd=self.tmp.path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("litellm_settings.timezone", r.stderr)
        self.assertIn("Mars/Olympus_Mons", r.stderr)
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1'}\n"
                    "litellm_settings:\n  timezone: US/Eastern\n")
        r = run([GATEWAY_BIN, "--check-config", "--config", cfg], cwd=self.tmp.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("timezone", r.stderr)

    def test_unimplemented_keys_warn_but_load(self):
        cfg = os.path.join(self.tmp.path, "future.yaml")
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1'}\n"
                    "  - model_name: b\n    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:1/v1'}\n"
                    "litellm_settings:\n  cache: true\n  fallbacks: [{a: [b]}]\n"
                    "router_settings:\n  enable_pre_call_checks: true\n")
        r = run([GATEWAY_BIN, "--check-config", "--config", cfg], cwd=self.tmp.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("litellm_settings.cache", r.stderr)
        self.assertIn("router_settings.enable_pre_call_checks", r.stderr)
        self.assertNotIn("fallbacks", r.stderr)  # implemented
        # A fallback to a group that does not exist stops the start.
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1'}\n"
                    "router_settings:\n  fallbacks: [{a: [nope]}]\n")
        r = run([GATEWAY_BIN, "--check-config", "--config", cfg], cwd=self.tmp.path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("fallback target 'nope'", r.stderr)

    def test_cli_errors(self):
        for argv in (["--port", "x"], ["--bogus"], ["--config"], ["--config", "/no/such/file.yaml"]):
            r = run([GATEWAY_BIN, *argv], cwd=self.tmp.path)
            with self.subTest(argv=argv):
                self.assertIn(r.returncode, (1, 2))
                self.assertTrue(r.stderr.strip())
        r = run([GATEWAY_BIN, "--version"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("llm-gateway", r.stdout)
        r = run([GATEWAY_BIN, "--help"])
        self.assertIn("--config", r.stdout)

    def test_port_in_use_fails_clearly(self):
        import socket
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        try:
            port = blocker.getsockname()[1]
            r = run([GATEWAY_BIN, "--host", "127.0.0.1", "--port", str(port)], cwd=self.tmp.path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(str(port), r.stderr)
        finally:
            blocker.close()


class DrainTest(unittest.TestCase):
    def test_sigterm_drains_streams_then_exits_zero(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: {mock.base}}}
""")
        results = {}

        def slow_stream(i):
            results[i] = gw.stream("/v1/chat/completions",
                                   chat(model="m", stream=True, x_mock={"tokens": 10, "tokens_per_second": 10}))

        def slow_plain(i):
            results[i] = gw.post_json("/v1/chat/completions", chat(model="m", x_mock={"latency_ms": 800}))

        threads = [threading.Thread(target=slow_stream, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=slow_plain, args=(i,)) for i in range(3, 5)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        # Readiness says draining (or the listener is already closed).
        try:
            status, _, _ = gw.request("GET", "/health/readiness", timeout=2)
            self.assertEqual(status, 503)
        except OSError:
            pass
        # ... and so does the container health check on the readiness route.
        hc = run([GATEWAY_BIN, "healthcheck", "--port", str(gw.port), "--path", "/health/readiness"])
        self.assertEqual(hc.returncode, 1, hc.stderr)
        for t in threads:
            t.join()
        rc = gw.proc.wait(timeout=20)
        mock.terminate()
        try:
            self.assertEqual(rc, 0)
            for i in range(3):
                status, _, events, _ = results[i]
                self.assertEqual(status, 200)
                self.assertEqual(events[-1], "[DONE]", "a stream in flight at SIGTERM completes")
            for i in range(3, 5):
                self.assertEqual(results[i][0], 200)
            self.assertIn("draining", gw.output())
        finally:
            gw.terminate()
            tmp.cleanup()


class LimitsTest(unittest.TestCase):
    """Connection cap, idle keep-alive timeout and request read timeout."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: {cls.mock.base}}}
gateway_settings:
  max_connections: 3
  keepalive_timeout: 1
  request_read_timeout: 1
""")

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def connect(self):
        import socket
        return socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)

    def test_connection_cap_answers_503(self):
        held = [self.connect() for _ in range(3)]
        time.sleep(0.2)
        extra = self.connect()
        data = extra.recv(4096)
        extra.close()
        for s in held:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 503"), data[:60])
        self.assertIn(b'"error"', data)
        time.sleep(0.3)
        self.assertEqual(self.gw.post_json("/v1/chat/completions", chat(model="m"))[0], 200)

    def test_idle_connection_is_closed(self):
        s = self.connect()
        t0 = time.time()
        self.assertEqual(s.recv(1), b"")
        s.close()
        self.assertGreater(time.time() - t0, 0.8)
        self.assertLess(time.time() - t0, 5)

    def test_slow_body_gets_408(self):
        s = self.connect()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":")
        data = s.recv(4096)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:60])


class MetricsTest(unittest.TestCase):
    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: {mock.base}}}
""")
        try:
            gw.post_json("/v1/chat/completions", chat(model="m"))
            gw.stream("/v1/chat/completions", chat(model="m", stream=True, stream_options={"include_usage": True}))
            gw.post_json("/v1/chat/completions", chat(model="nope"))
            status, hdrs, body = gw.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(hdrs["content-type"].startswith("text/plain"))
            text = body.decode()
            for name in ("litellm_proxy_total_requests_metric_total", "litellm_request_total_latency_metric_bucket",
                         "litellm_llm_api_latency_metric_bucket", "litellm_overhead_latency_metric_bucket",
                         "litellm_llm_api_time_to_first_token_metric_bucket", "litellm_input_tokens_metric_total",
                         "litellm_output_tokens_metric_total", "litellm_in_flight_requests"):
                self.assertIn(name, text)
            self.assertRegex(text, r'litellm_proxy_total_requests_metric_total\{[^}]*requested_model="m"[^}]*status_code="200"[^}]*\} 2')
            self.assertRegex(text, r'litellm_proxy_total_requests_metric_total\{[^}]*status_code="404"[^}]*\} 1')
            r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()


class TransportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def make_certs(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl CLI missing")
        d = self.tmp.path
        cmds = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out",
             f"{d}/ca.pem", "-days", "2", "-subj", "/CN=gw-test-ca"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/srv.key", "-out", f"{d}/srv.csr",
             "-subj", "/CN=localhost"],
        ]
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        with open(f"{d}/ext.cnf", "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
                        "-CAcreateserial", "-out", f"{d}/srv.pem", "-days", "2", "-extfile", f"{d}/ext.cnf"],
                       check=True, capture_output=True)
        return f"{d}/ca.pem", f"{d}/srv.pem", f"{d}/srv.key"

    def test_https_upstream_verified_against_trust_store(self):
        ca, cert, key = self.make_certs()
        mock = Mock(self.tmp.path, "--tls-cert", cert, "--tls-key", key)
        cfg = f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "https://localhost:{mock.port}/v1"}}
"""
        trusted = Gateway(self.tmp.path, cfg, env={"SSL_CERT_FILE": ca}, name="trusted")
        untrusted = Gateway(self.tmp.path, cfg, env={"SSL_CERT_FILE": "/dev/null", "SSL_CERT_DIR": "/nonexistent"},
                            name="untrusted")
        try:
            status, _, body, _ = trusted.post_json("/v1/chat/completions", chat(model="m"))
            self.assertEqual(status, 200, body)
            status, _, events, _ = trusted.stream("/v1/chat/completions", chat(model="m", stream=True))
            self.assertEqual(events[-1], "[DONE]")
            status, _, body, _ = untrusted.post_json("/v1/chat/completions", chat(model="m"))
            self.assertEqual(status, 502, body)
            self.assertEqual(body["error"]["code"], "upstream_connection_error")
            self.assertIn("TLS", body["error"]["message"])
        finally:
            trusted.terminate()
            untrusted.terminate()
            mock.terminate()

    def test_stale_pooled_connection_is_retried(self):
        port = free_port()
        mock = Mock(self.tmp.path, port=port)
        gw = Gateway(self.tmp.path, f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "http://127.0.0.1:{port}/v1"}}
""")
        try:
            self.assertEqual(gw.post_json("/v1/chat/completions", chat(model="m"))[0], 200)
            mock.terminate()  # the pooled connection is now dead
            mock = Mock(self.tmp.path, port=port, name="mock2")
            status, _, body, _ = gw.post_json("/v1/chat/completions", chat(model="m"))
            self.assertEqual(status, 200, body)
        finally:
            gw.terminate()
            mock.terminate()


if __name__ == "__main__":
    unittest.main()
