"""Hostile clients (issue 18, items 5, 6, 9 and 10): a caller without a valid key is
refused on its headers, before the gateway holds its body; the bodies all clients may
hold at once are capped (503); a Transfer-Encoding other than chunked, an HTTP/1.1
request without Host, a head that never completes (408) and duplicate routing keys in
the JSON are refused; the admin API is closed without a master key; connections beyond
what the open-file limit allows are answered 503 instead of hanging."""

import json
import os
import socket
import time
import unittest

from harness import Gateway, Mock, TempDir, chat

MASTER = "sk-master-hostile"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def config(mock, extra="", master=True):
    m = f"general_settings:\n  master_key: {MASTER}\n" if master else ""
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
{m}gateway_settings:
  header_read_timeout: 1
{extra}
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def head(path="/v1/chat/completions", length=None, key=None, extra=b"", host=True, version="1.1"):
    h = f"POST {path} HTTP/{version}\r\n".encode()
    if host:
        h += b"Host: gw\r\n"
    h += b"content-type: application/json\r\n"
    if key:
        h += f"authorization: Bearer {key}\r\n".encode()
    if length is not None:
        h += f"content-length: {length}\r\n".encode()
    return h + extra + b"\r\n"


def read_response(s, timeout=10):
    """Reads one HTTP response head (and as much body as arrives); (status, text)."""
    s.settimeout(timeout)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    head_end = got.find(b"\r\n\r\n")
    if head_end < 0:
        return None, got.decode("latin-1")
    headers = got[:head_end].decode("latin-1").lower()
    length = 0
    for line in headers.split("\r\n"):
        if line.startswith("content-length:"):
            length = int(line.split(":")[1])
    body = got[head_end + 4:]
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(headers.split(" ")[1]), headers + "\n" + body.decode("latin-1")


class HostileHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.mock = Mock(cls.tmp.path)
        cls.gw = Gateway(cls.tmp.path, config(cls.mock, "  max_request_bytes_in_flight: 8000000"),
                         env={"TMPDIR": cls.tmp.path})
        status, _, body, raw = cls.gw.post_json("/key/generate", {}, ADMIN)
        assert status == 200, raw
        cls.key = body["key"]

    @classmethod
    def tearDownClass(cls):
        cls.gw.terminate()
        cls.mock.terminate()
        cls.tmp.cleanup()

    def connect(self, g=None):
        return socket.create_connection(("127.0.0.1", (g or self.gw).port), timeout=10)

    # 5. Authenticated on the headers, before the body.

    def test_a_caller_without_a_key_is_refused_before_sending_its_body(self):
        s = self.connect()
        s.sendall(head(length=32 * 1024 * 1024))  # the body never comes
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 401, text)
        self.assertIn("no API key", text)

    def test_an_unknown_key_is_refused_before_sending_its_body(self):
        s = self.connect()
        s.sendall(head(length=32 * 1024 * 1024, key="sk-not-a-key"))
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 401, text)
        self.assertIn("invalid API key", text)

    def test_fifty_anonymous_32_mb_bodies_do_not_take_the_gateways_memory(self):
        before = rss_kib(self.gw.proc.pid)
        socks = []
        for _ in range(50):
            s = self.connect()
            s.sendall(head(length=32 * 1024 * 1024))
            socks.append(s)
        chunk = b"x" * (1024 * 1024)
        for _ in range(8):  # each client tries to push 8 MB of its body
            for s in socks:
                try:
                    s.setblocking(False)
                    s.send(chunk)
                except OSError:
                    pass
        time.sleep(0.5)
        after = rss_kib(self.gw.proc.pid)
        for s in socks:
            s.close()
        # 50 x 8 MB would be 400 MB held; refused at the head, nothing is.
        self.assertLess(after - before, 64 * 1024, f"RSS grew from {before} KiB to {after} KiB")

    def test_a_valid_key_sends_its_body_after_the_head_and_is_answered(self):
        body = json.dumps(chat("hi")).encode()
        s = self.connect()
        s.sendall(head(length=len(body), key=self.key))
        time.sleep(0.2)  # the head alone first: the gateway waits for the body
        s.sendall(body)
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 200, text)

    def test_expect_100_continue_is_refused_without_a_continue_when_the_key_is_bad(self):
        s = self.connect()
        s.sendall(head(length=1000, key="sk-bad", extra=b"expect: 100-continue\r\n"))
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 401, text)

    def test_bodies_in_flight_beyond_the_cap_are_refused_with_503(self):
        # max_request_bytes_in_flight is 8 MB: one 6 MB body is being received (its
        # client is slow); a second 6 MB body is refused at once, and admitted again
        # once the first is done.
        first = self.connect()
        first.sendall(head(length=6_000_000, key=self.key))
        time.sleep(0.3)
        second = self.connect()
        second.sendall(head(length=6_000_000, key=self.key))
        status, text = read_response(second)
        second.close()
        self.assertEqual(status, 503, text)
        self.assertIn("retry-after: 1", text)
        # A small body still fits.
        body = json.dumps(chat("small")).encode()
        s = self.connect()
        s.sendall(head(length=len(body), key=self.key) + body)
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 200, text)
        first.close()
        time.sleep(0.3)
        metrics = self.gw.request("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r"llm_gateway_rejected_request_bodies(\{[^}]*\})? [1-9]")

    # 9. Protocol.

    def test_a_transfer_encoding_other_than_chunked_is_refused(self):
        s = self.connect()
        body = json.dumps(chat("hi")).encode()
        # Without Content-Length, its end is unknown: what follows must not be read as
        # a second request.
        smuggled = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n"
        s.sendall(head(key=self.key, extra=b"transfer-encoding: gzip\r\n") + body + smuggled)
        status, text = read_response(s)
        self.assertEqual(status, 400, text)
        self.assertIn("Transfer-Encoding", text)
        s.settimeout(3)
        rest = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                rest += c
        except socket.timeout:
            pass
        s.close()
        self.assertNotIn(b"HTTP/1.1 200", rest)

    def test_chunked_bodies_are_still_accepted(self):
        body = json.dumps(chat("hi")).encode()
        s = self.connect()
        s.sendall(head(key=self.key, extra=b"transfer-encoding: chunked\r\n")
                  + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 200, text)

    def test_http_1_1_without_host_is_refused(self):
        body = json.dumps(chat("hi")).encode()
        s = self.connect()
        s.sendall(head(length=len(body), key=self.key, host=False) + body)
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 400, text)
        self.assertIn("Host", text)
        # HTTP/1.0 has no Host requirement.
        s = self.connect()
        s.sendall(head(length=len(body), key=self.key, host=False, version="1.0") + body)
        status, text = read_response(s)
        s.close()
        self.assertEqual(status, 200, text)

    def test_a_head_that_never_completes_gets_408(self):
        s = self.connect()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")
        started = time.time()
        status, text = read_response(s, timeout=10)
        elapsed = time.time() - started
        s.close()
        self.assertEqual(status, 408, text)
        self.assertLess(elapsed, 5, elapsed)
        self.assertGreaterEqual(elapsed, 0.9, elapsed)

    def test_an_idle_keep_alive_connection_is_not_408(self):
        # No byte of a next request: not a slow head. It stays open past the header
        # timeout and still serves a request.
        c = self.gw.conn()
        c.request("GET", "/health/liveliness")
        r = c.getresponse()
        r.read()
        time.sleep(2.2)
        c.request("GET", "/health/liveliness")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        c.close()

    def test_duplicate_routing_keys_are_refused(self):
        for dup in ('"model":"mock-gpt","model":"other"', '"model":"mock-gpt","stream":false,"stream":true',
                    '"model":"mock-gpt","user":"a","user":"b"'):
            raw = '{' + dup + ',"messages":[{"role":"user","content":"hi"}]}'
            status, _, data = self.gw.request("POST", "/v1/chat/completions", raw,
                                              {"authorization": f"Bearer {self.key}"})
            self.assertEqual(status, 400, data)
            err = json.loads(data)["error"]
            self.assertIn("Duplicate key", err["message"])
            self.assertIn(err["param"], ("model", "stream", "user"))
            self.assertEqual(err["type"], "invalid_request_error")

    # 10. The admin API without a master key.

    def test_the_admin_api_is_closed_without_a_master_key(self):
        g = Gateway(self.tmp.path, config(self.mock, master=False), name="open", env={"TMPDIR": self.tmp.path})
        try:
            for method, path, body in (("POST", "/key/generate", {}), ("GET", "/key/list", None),
                                       ("GET", "/spend/logs", None), ("GET", "/traces", None)):
                status, _, data = g.request(method, path, body)
                self.assertEqual(status, 401, (path, data))
                self.assertIn("master_key", json.loads(data)["error"]["message"])
            # Model routes stay open (and the start warning says so).
            status, _, _, raw = g.post_json("/v1/chat/completions", chat("hi"))
            self.assertEqual(status, 200, raw)
            self.assertIn("no master key", g.output())
        finally:
            g.terminate()


class FileLimitTest(unittest.TestCase):
    def test_connections_beyond_the_open_file_limit_are_answered_503(self):
        tmp = TempDir()
        mock = Mock(tmp.path)
        g = Gateway(tmp.path, config(mock), env={"TMPDIR": tmp.path}, prefix=["prlimit", "--nofile=300:300", "--"])
        socks = []
        try:
            out = g.output()
            self.assertIn("lowered to", out)
            answered = hung = 0
            for _ in range(250):
                s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
                socks.append(s)
            # The last ones are over the limit: each gets a 503 at once.
            for s in socks[-20:]:
                try:
                    status, text = read_response(s, timeout=5)
                    if status == 503:
                        answered += 1
                except socket.timeout:
                    hung += 1
            self.assertEqual(hung, 0)
            self.assertEqual(answered, 20)
            for s in socks:
                s.close()
            # And the gateway serves again once they are gone.
            time.sleep(0.5)
            status, _, _ = g.request("GET", "/health/liveliness")
            self.assertEqual(status, 200)
        finally:
            for s in socks:
                s.close()
            g.terminate()
            mock.terminate()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
