"""Helpers for integration tests: real llm-gateway and mock-provider processes on
ephemeral ports, talked to over real sockets with Python's standard library only."""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

GATEWAY_BIN = os.environ.get("GW_GATEWAY_BIN", "build/dev/apps/gateway/llm-gateway")
MOCK_BIN = os.environ.get("GW_MOCK_BIN", "build/dev/apps/mock-provider/mock-provider")
# Sanitizer builds are slower; give processes more time.
SLOW = float(os.environ.get("GW_TEST_SLOWDOWN", "1"))


def wait_for_port_file(path, proc, timeout=15.0):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"no port file {path}")


class Process:
    """A child process with its output captured to a file in `workdir`."""

    def __init__(self, name, argv, workdir, env=None, cwd=None):
        self.name = name
        self.workdir = workdir
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        # None removes a variable (e.g. so that a .env file can set it).
        full_env = {k: v for k, v in full_env.items() if v is not None}
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=cwd or workdir)

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def terminate(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Mock(Process):
    def __init__(self, workdir, *args, name="mock", port=0, env=None):
        port_file = os.path.join(workdir, name + ".port")
        if os.path.exists(port_file):
            os.remove(port_file)
        super().__init__(name, [MOCK_BIN, "--port", str(port), "--port-file", port_file, *args], workdir, env=env)
        self.port = wait_for_port_file(port_file, self.proc)
        self.scheme = "https" if "--tls-cert" in args else "http"
        self.base = f"{self.scheme}://127.0.0.1:{self.port}/v1"

    def get_json(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)

    def last_headers(self):
        """The headers of the last request the mock got, names in lower case."""
        sent = self.get_json("/_mock/last_request")["headers"]
        pairs = sent.items() if isinstance(sent, dict) else sent
        return {k.lower(): v for k, v in pairs}


class Gateway(Process):
    def __init__(self, workdir, config_text=None, args=(), env=None, name="gateway", cwd=None, expect_start=True,
                 prefix=()):
        port_file = os.path.join(workdir, name + ".port")
        if os.path.exists(port_file):
            os.remove(port_file)
        argv = list(prefix) + [GATEWAY_BIN, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file]
        if config_text is not None:
            cfg = os.path.join(workdir, name + ".yaml")
            with open(cfg, "w") as f:
                f.write(config_text)
            argv += ["--config", cfg]
        argv += list(args)
        base_env = {"LITELLM_MASTER_KEY": ""}
        if env:
            base_env.update(env)
        super().__init__(name, argv, workdir, env=base_env, cwd=cwd)
        self.port = wait_for_port_file(port_file, self.proc) if expect_start else None

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a new connection; returns (status, headers dict, body bytes)."""
        c = self.conn(timeout)
        h = {"content-type": "application/json"}
        if headers:
            h.update(headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def post_json(self, path, body, headers=None, timeout=30):
        status, hdrs, data = self.request("POST", path, body, headers, timeout)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed, data

    def stream(self, path, body, headers=None, timeout=30):
        """POSTs and reads an SSE response; returns (status, headers, events, raw)."""
        c = self.conn(timeout)
        h = {"content-type": "application/json"}
        if headers:
            h.update(headers)
        c.request("POST", path, body=json.dumps(body), headers=h)
        r = c.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        raw = r.read()  # http.client undoes the chunked encoding and fails if it is broken
        c.close()
        return r.status, hdrs, parse_sse(raw.decode()), raw


def parse_sse(text):
    """Returns the `data:` payloads of an SSE body, in order."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") if line.startswith("data:") else None for line in block.split("\n")]
        data = [d for d in data if d is not None]
        if data:
            events.append("\n".join(data))
    return events


def mock_post(mock, path, body=None, method="POST"):
    """A request to the mock's control API (/_mock/faults, ...); returns its JSON."""
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 200, data
    return json.loads(data)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chat(content="hello", model="mock-gpt", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="gw-it-")

    def cleanup(self):
        if os.environ.get("GW_KEEP_TMP"):  # keep logs for a post-mortem
            print(f"kept {self.path}", file=sys.stderr)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def run_parallel(n, fn):
    """Runs fn(i) for i in range(n) on n threads; returns results (or raises the first error)."""
    results = [None] * n
    errors = []

    def worker(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"{len(errors)} of {n} failed; first: {errors[0]}")
    return results


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Postgres:
    """A real PostgreSQL server in a temp dir on an ephemeral port (scripts/pg-temp.sh).
    pause()/resume() stop and start the same cluster on the same port (an outage)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "pg")
        script = os.path.join(REPO, "scripts", "pg-temp.sh")
        self.script = script
        out = subprocess.run([script, "start", self.dir], check=True, capture_output=True, text=True, timeout=120)
        self.url = out.stdout.strip().splitlines()[-1]
        with open(os.path.join(self.dir, "port")) as f:
            self.port = int(f.read().strip())

    def _pg_ctl(self, *args):
        bin_dir = subprocess.run(["bash", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r | head -1"],
                                 capture_output=True, text=True).stdout.strip()
        argv = [os.path.join(bin_dir, "pg_ctl"), "-D", os.path.join(self.dir, "data"), *args]
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def pause(self):
        # Fast, not immediate: the test server runs with synchronous_commit=off, and an
        # immediate stop would also lose the last commits, which a real outage does not.
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")

    def resume(self):
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], capture_output=True, timeout=120)

    def query(self, sql):
        """Runs `sql` with psql; returns its unaligned output (rows on lines)."""
        bin_dir = subprocess.run(["bash", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r | head -1"],
                                 capture_output=True, text=True).stdout.strip()
        out = subprocess.run([os.path.join(bin_dir, "psql"), self.url, "-At", "-c", sql], check=True,
                             capture_output=True, text=True, timeout=60)
        return out.stdout


def make_test_ca(d):
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it (openssl CLI),
    in directory d: returns the paths {"ca", "cert", "key"} and a second, unrelated CA
    ("other_ca") for verification failures."""
    paths = {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
             "key": os.path.join(d, "server.key"), "other_ca": os.path.join(d, "other-ca.pem")}
    ca_key, other_key, csr = (os.path.join(d, n) for n in ("ca.key", "other-ca.key", "server.csr"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", paths["ca"], "-days", "2",
        "-subj", "/CN=llm-gateway test CA")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", other_key, "-out", paths["other_ca"], "-days",
        "2", "-subj", "/CN=unrelated CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["key"], "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", ca_key, "-CAcreateserial", "-out", paths["cert"],
        "-days", "2", "-extfile", ext)
    return paths


class Redis:
    """A real redis-server in a temp dir on an ephemeral port. kill() then start() is an
    outage on the same port; pause()/resume() (SIGSTOP/SIGCONT) make it hang instead."""

    def __init__(self, workdir, password=None, tls=False):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.proc = None
        if tls:
            self.ca = make_test_ca(self.dir)
        self.start()

    def connect(self, timeout=5):
        """A socket to the server: over TLS (trusting the test CA) when it is a TLS server."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if not self.tls:
            return raw
        try:
            return ssl.create_default_context(cafile=self.ca["ca"]).wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise

    def start(self):
        argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        if self.tls:
            # TLS only: the plain port is closed. Server certificate for localhost and
            # 127.0.0.1, signed by the test CA (self.ca["ca"]); clients need no certificate.
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.ca["cert"],
                     "--tls-key-file", self.ca["key"], "--tls-ca-cert-file", self.ca["ca"], "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with self.connect(timeout=0.5) as s:
                    if self.password:
                        s.sendall(f"AUTH {self.password}\r\n".encode())
                        s.recv(64)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
        self.kill()


class Capture:
    """An HTTP server in the test process that records what exporters send (OTLP/HTTP
    JSON, Langfuse's OTLP endpoint). `status` (and `retry_after`) set what it answers;
    stop() closes the port (an exporter that is down), start() opens it again on the
    same port."""

    def __init__(self, port=0):
        import http.server

        self.requests = []  # dicts: path, headers (lower-case names), body (bytes), json
        self.status = 200
        self.retry_after = None
        self.lock = threading.Lock()
        cap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                try:
                    if self.headers.get("content-type", "").startswith("application/x-protobuf"):
                        parsed = otlp_protobuf_to_json(body)
                    else:
                        parsed = json.loads(body)
                except ValueError:
                    parsed = None
                status = cap.status
                with cap.lock:
                    cap.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body, "json": parsed, "status": status})
                out = b"{}" if status == 200 else b'{"error":"capture says no"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                if cap.retry_after is not None and status != 200:
                    self.send_header("retry-after", str(cap.retry_after))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self._handler = Handler
        self.port = port
        self.server = None
        self.start()

    def start(self):
        import http.server

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def accepted(self):
        """The JSON bodies answered 200."""
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def spans(self):
        """Every span accepted so far, each with its resource attributes as `resource`
        and its attributes as a plain dict `attrs` (values unwrapped)."""
        out = []
        for r in self.accepted():
            for rs in (r["json"] or {}).get("resourceSpans", []):
                res = otlp_attrs(rs.get("resource", {}).get("attributes", []))
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        sp = dict(sp)
                        sp["attrs"] = otlp_attrs(sp.get("attributes", []))
                        sp["resource"] = res
                        out.append(sp)
        return out

    def wait_spans(self, pred, timeout=10.0):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            got = [s for s in self.spans() if pred(s)]
            if got:
                return got
            time.sleep(0.05)
        return []


def protobuf_fields(b):
    """A protobuf message's fields, in order: (number, wire type, int or bytes).
    Written from the wire format (varint, fixed64, length-delimited, fixed32); raises
    ValueError on anything malformed."""
    out, i = [], 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            if i >= len(b) or shift > 63:
                raise ValueError("bad varint")
            c = b[i]
            i += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v

    while i < len(b):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            out.append((num, 0, varint()))
        elif wire == 1:
            if i + 8 > len(b):
                raise ValueError("short fixed64")
            out.append((num, 1, int.from_bytes(b[i:i + 8], "little")))
            i += 8
        elif wire == 2:
            n = varint()
            if i + n > len(b):
                raise ValueError("length past the end")
            out.append((num, 2, bytes(b[i:i + n])))
            i += n
        elif wire == 5:
            out.append((num, 5, int.from_bytes(b[i:i + 4], "little")))
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
    return out


def _pb_any(b):
    """AnyValue (opentelemetry-proto common.proto: string 1, bool 2, int 3, double 4,
    array 5) in the OTLP/JSON shape."""
    import struct

    for num, wire, v in protobuf_fields(b):
        if num == 1:
            return {"stringValue": v.decode("utf-8")}  # strict: invalid UTF-8 fails the test
        if num == 2:
            return {"boolValue": bool(v)}
        if num == 3:
            return {"intValue": str(v - (1 << 64) if v >= 1 << 63 else v)}
        if num == 4:
            return {"doubleValue": struct.unpack("<d", v.to_bytes(8, "little"))[0]}
        if num == 5:
            return {"arrayValue": {"values": [_pb_any(x) for n, _, x in protobuf_fields(v) if n == 1]}}
    return {}


def _pb_kvs(fields, number):
    out = []
    for num, _, v in fields:
        if num == number:
            kv = dict((n, x) for n, _, x in protobuf_fields(v))
            out.append({"key": kv.get(1, b"").decode("utf-8"), "value": _pb_any(kv.get(2, b""))})
    return out


def otlp_protobuf_to_json(body):
    """An OTLP/HTTP protobuf ExportTraceServiceRequest turned into its OTLP/JSON form
    (hex ids, int64 as strings), from the field numbers of opentelemetry-proto's
    trace.proto, resource.proto and common.proto."""
    rss = []
    for num, _, rs in protobuf_fields(body):
        if num != 1:
            continue
        f = protobuf_fields(rs)
        res = {"attributes": []}
        scopes = []
        for n, _, v in f:
            if n == 1:
                res = {"attributes": _pb_kvs(protobuf_fields(v), 1)}
            elif n == 2:
                ss = {"scope": {}, "spans": []}
                for sn, _, sv in protobuf_fields(v):
                    if sn == 1:
                        sc = dict((k, x) for k, _, x in protobuf_fields(sv))
                        ss["scope"] = {"name": sc.get(1, b"").decode()}
                        if 2 in sc:
                            ss["scope"]["version"] = sc[2].decode()
                    elif sn == 2:
                        sf = protobuf_fields(sv)
                        sp = {"attributes": _pb_kvs(sf, 9), "status": {"code": 0}}
                        for k, wire, x in sf:
                            if k == 1:
                                sp["traceId"] = x.hex()
                            elif k == 2:
                                sp["spanId"] = x.hex()
                            elif k == 3:
                                sp["traceState"] = x.decode("utf-8")
                            elif k == 4:
                                sp["parentSpanId"] = x.hex()
                            elif k == 5:
                                sp["name"] = x.decode("utf-8")
                            elif k == 6:
                                sp["kind"] = x
                            elif k in (7, 8):
                                if wire != 1:
                                    raise ValueError("span times are fixed64")
                                sp["startTimeUnixNano" if k == 7 else "endTimeUnixNano"] = str(x)
                            elif k == 15:
                                st = dict((a, y) for a, _, y in protobuf_fields(x))
                                sp["status"] = {"code": st.get(3, 0)}
                                if 2 in st:
                                    sp["status"]["message"] = st[2].decode("utf-8")
                        ss["spans"].append(sp)
                scopes.append(ss)
        rss.append({"resource": res, "scopeSpans": scopes})
    return {"resourceSpans": rss}


def otlp_value(v):
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [otlp_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return otlp_attrs(v["kvlistValue"].get("values", []))
    return None


def otlp_attrs(kvs):
    return {kv["key"]: otlp_value(kv.get("value", {})) for kv in kvs}
