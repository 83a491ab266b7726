#!/usr/bin/env python3
"""The gateway benchmark: the same load, in one run on one machine, straight to the
mock provider ("direct"), through nginx as a plain keep-alive reverse proxy ("nginx"),
and through llm-gateway with a master key and metrics ("gateway"). The `full` scenario
adds a second gateway with everything on (a virtual key with a budget and rpm/tpm
limits, spend log, metrics, OTLP export to a local collector) and compares it with the
master-key gateway ("bare") and nginx in paired rounds.

Prints one table (each figure, and the ratios gateway/nginx and gateway/direct), writes
the same as JSON, and checks the targets of docs/PERFORMANCE.md.

  benchmarks/run.sh            full run (about 15 minutes with the 5-minute leak run)
  benchmarks/run.sh --quick    a few seconds: keeps the harness working (CI)
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KEY = "sk-bench-master"


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids):
    """User + system CPU time of the processes so far (all their threads), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def median(vals):
    vals = sorted(vals)
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def nginx_worker_pids(master):
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.bin = os.path.join(ROOT, args.build_dir)
        self.tmp = tempfile.mkdtemp(prefix="gw-bench-")
        self.procs = []
        self.rows = []
        self.errors = []
        self.raw = {}

    # ------------------------------------------------------------------ setup
    def spawn(self, name, argv, **kw):
        logf = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def start(self):
        mock = os.path.join(self.bin, "apps/mock-provider/mock-provider")
        gw = os.path.join(self.bin, "apps/gateway/llm-gateway")
        self.mock_port, self.slow_port = free_port(), free_port()
        self.mock = self.spawn("mock", [mock, "--port", str(self.mock_port), "--threads", "1", "--no-record",
                                        "--response-tokens", "16"])
        self.slow = self.spawn("mock-slow", [mock, "--port", str(self.slow_port), "--threads", "1", "--no-record",
                                             "--latency-ms", "50"])
        wait_port(self.mock_port, self.mock)
        wait_port(self.slow_port, self.slow)

        self.nginx_port, self.nginx_slow_port = free_port(), free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes {self.args.workers};
worker_rlimit_nofile 20000;
daemon off;
user root;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {self.tmp}/body;
  proxy_temp_path {self.tmp}/proxy;
  client_max_body_size 64m;
  client_body_buffer_size 256k;
  keepalive_requests 10000000;
  upstream mock {{ server 127.0.0.1:{self.mock_port}; keepalive 512; keepalive_requests 10000000; }}
  upstream slow {{ server 127.0.0.1:{self.slow_port}; keepalive 512; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{self.nginx_port} reuseport backlog=4096;
    location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }}
  }}
  server {{
    listen 127.0.0.1:{self.nginx_slow_port} reuseport backlog=4096;
    location / {{ proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }}
  }}
}}
""")
        self.nginx = self.spawn("nginx", ["nginx", "-p", self.tmp, "-c", conf])
        wait_port(self.nginx_port, self.nginx)

        self.gw_port = free_port()
        cfg = self.gw_cfg = os.path.join(self.tmp, "gateway.yaml")
        with open(cfg, "w") as f:
            f.write(f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: "http://127.0.0.1:{self.mock_port}/v1"}}
  - model_name: mock-slow
    litellm_params: {{model: openai/mock-slow, api_base: "http://127.0.0.1:{self.slow_port}/v1"}}
general_settings:
  master_key: {KEY}
gateway_settings:
  io_threads: {self.args.workers}
litellm_settings:
  callbacks: ["prometheus"]
""")
        plain = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}  # no tracing
        self.gw = self.spawn("gateway", [gw, "--config", cfg, "--host", "127.0.0.1", "--port", str(self.gw_port)],
                             env={**plain, "LITELLM_LOG": "WARNING"})
        wait_port(self.gw_port, self.gw)
        # Virtual keys for the auth comparison: one plain, one with a (large) budget.
        self.vkey = self.make_key({"key_alias": "bench"})
        self.vkey_budget = self.make_key({"key_alias": "bench-budget", "max_budget": 1000000})
        self.targets = {
            "direct": (self.mock_port, "/v1/chat/completions"),
            "nginx": (self.nginx_port, "/v1/chat/completions"),
            "gateway": (self.gw_port, "/v1/chat/completions"),
        }
        self.slow_targets = {
            "direct": (self.slow_port, "/v1/chat/completions"),
            "nginx": (self.nginx_slow_port, "/v1/chat/completions"),
            "gateway": (self.gw_port, "/v1/chat/completions"),
        }

    def make_key(self, fields, port=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", port or self.gw_port, timeout=10)
        c.request("POST", "/key/generate", body=json.dumps(fields),
                  headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"/key/generate failed: {r.status} {data!r}")
        return json.loads(data)["key"]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.gw.returncode not in (0, None):
            self.errors.append(f"gateway exited with {self.gw.returncode}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ----------------------------------------------------------------- bodies
    def body(self, prompt_bytes=20, model="mock-gpt", stream=False, x_mock=None):
        content = ("Hello, how are you today? " * (prompt_bytes // 26 + 1))[:prompt_bytes]
        b = {"model": model, "messages": [{"role": "user", "content": content}]}
        if stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        if x_mock:
            b["x_mock"] = x_mock
        path = os.path.join(self.tmp, f"body-{len(os.listdir(self.tmp))}.json")
        with open(path, "w") as f:
            json.dump(b, f)
        return path

    # ---------------------------------------------------------------- drivers
    def wrk(self, port, path, body_file, conns, seconds, key=KEY):
        lua = f"{body_file}.{key[-6:]}.lua"
        with open(lua, "w") as f:
            f.write(f'wrk.method = "POST"\nlocal f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
                    f'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", lua,
                              f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        errs = 0
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            errs += int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            errs += sum(int(x) for x in m.groups())
        p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 1, "ms": 1000, "s": 1e6}
        return {"rps": rps, "errors": errs, "p50_us": float(p50.group(1)) * scale[p50.group(2)] if p50 else None}

    def loadgen(self, port, path, body_file, mode="rate", rate=1000, seconds=5, conns=32, warmup=1, key=KEY):
        argv = [os.path.join(self.bin, "benchmarks/gw-loadgen"), "--mode", mode, "--url",
                f"http://127.0.0.1:{port}{path}", "--body-file", body_file, "--header", f"Authorization: Bearer {key}",
                "--rate", str(rate), "--duration", str(seconds), "--connections", str(conns), "--warmup", str(warmup)]
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"gw-loadgen failed: {out.stderr}")
        r = json.loads(out.stdout)
        r["bad"] = r["errors"] + r["non2xx"] + r["unfinished"]
        return r

    def measure(self, targets, body, label, mode="rate", rate=1000, seconds=10, conns=32):
        """Runs the same open-loop load at every target in interleaved rounds (the order
        rotates each round) so that the machine's drift hits all targets alike; returns
        per target the median over rounds of each percentile."""
        rounds = 1 if self.quick else 5
        per_round = max(1.0, seconds / rounds)
        names = list(targets)
        got = {t: [] for t in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for t in order:
                port, path = targets[t]
                res = self.loadgen(port, path, body, mode=mode, rate=rate, seconds=per_round, conns=conns,
                                   warmup=0.5 if self.quick else 1)
                self.check_errors(label, t, res["bad"])
                got[t].append(res)

        def med(vals):
            vals = sorted(vals)
            return vals[len(vals) // 2]

        out = {}
        for t, results in got.items():
            self.raw[f"{label}/{t}"] = results
            out[t] = {k: med([x["latency"][k] for x in results]) for k in ("p50_us", "p99_us", "p999_us")}
            if mode == "stream":
                out[t].update({"ttft_" + k: med([x["first_byte"][k] for x in results]) for k in ("p50_us", "p99_us")})
        return out

    # -------------------------------------------------------------- recording
    def row(self, scenario, metric, unit, values, better="higher", gw_nginx=None):
        """One line of the table. gw_nginx, if given, replaces gateway / nginx (e.g. by the
        median of paired rounds' ratios)."""
        d, n, g = values.get("direct"), values.get("nginx"), values.get("gateway")
        self.rows.append({
            "scenario": scenario, "metric": metric, "unit": unit, "better": better,
            "direct": d, "nginx": n, "gateway": g,
            "gw_nginx": gw_nginx if gw_nginx is not None else ((g / n) if (g is not None and n) else None),
            "gw_direct": (g / d) if (g is not None and d) else None,
        })

    def check_errors(self, what, target, count):
        if count:
            self.errors.append(f"{what} via {target}: {count} errors")

    # --------------------------------------------------------------- scenarios
    def closed_loop(self):
        secs = 2 if self.quick else 10
        conns_list = [32] if self.quick else [8, 32, 128]
        sizes = [("small", 20)] if self.quick else [("small", 20), ("10KB prompt", 10 * 1024), ("100KB prompt", 100 * 1024)]
        for label, size in sizes:
            body = self.body(size)
            for conns in (conns_list if label == "small" else [32]):
                vals, p50s = {}, {}
                for t, (port, path) in self.targets.items():
                    r = self.wrk(port, path, body, conns, secs)
                    vals[t], p50s[t] = r["rps"], r["p50_us"]
                    self.check_errors(f"wrk {label} c={conns}", t, r["errors"])
                    self.raw[f"wrk/{label}/c{conns}/{t}"] = r
                self.row(f"closed loop, {label}, wrk -c{conns}", "throughput", "req/s", vals)
                self.row(f"closed loop, {label}, wrk -c{conns}", "p50 latency", "us", p50s, "lower")

    def auth(self):
        """Master key vs virtual key (and a virtual key with a budget) through the gateway,
        closed loop, in alternating rounds. The ratio is the median of each round's ratio:
        the machine's load drifts between rounds, a pair of adjacent runs shares it."""
        secs = 2 if self.quick else 3
        rounds = 1 if self.quick else 12
        body = self.body(20)
        who = {"master key": KEY, "virtual key": self.vkey, "virtual key with budget": self.vkey_budget}
        got = {w: [] for w in who}
        names = list(who)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for w in order:
                x = self.wrk(self.gw_port, "/v1/chat/completions", body, 32, secs, key=who[w])
                self.check_errors(f"auth {w}", "gateway", x["errors"])
                got[w].append(x["rps"])
        med = {w: sorted(v)[len(v) // 2] for w, v in got.items()}
        for w in names:
            self.row(f"gateway auth, wrk -c32, {w}", "throughput", "req/s", {"gateway": med[w]})

        def paired(w):
            ratios = sorted(a / b for a, b in zip(got[w], got["master key"]))
            n = len(ratios)
            return ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
        self.raw["auth"] = got
        self.auth_ratio = paired("virtual key")
        self.auth_budget_ratio = paired("virtual key with budget")
        self.raw["auth_ratios"] = {"virtual key": self.auth_ratio, "virtual key with budget": self.auth_budget_ratio}

    # The "everything on" gateway of the full scenario: what its virtual key and its
    # deployment get. Budget and limits are far out of reach (a 429 would be a bug in the
    # set-up) but checked and counted on every request.
    FULL_KEY = {"key_alias": "bench-full", "max_budget": 1000000, "rpm_limit": 100000000, "tpm_limit": 100000000}
    FULL_PRICE = ("0.0000025", "0.00001")  # USD per input / output token (gpt-4o's list price)

    def full_setup(self, rounds, secs, rate_secs):
        w = self.args.workers
        return [
            f"nginx: nginx-light, {w} workers, keep-alive upstream pool to the mock, proxy_buffering off, "
            "no access log",
            f"bare:  llm-gateway, {w} io threads, master key, Prometheus metrics, every request costed and logged "
            "to the in-memory spend log (no database), tracing off (deployment unpriced: cost 0)",
            f"full:  a second llm-gateway process, {w} io threads, the same mock upstream; a virtual key made with "
            f"POST /key/generate (master key) with max_budget {self.FULL_KEY['max_budget']} USD, "
            f"rpm_limit {self.FULL_KEY['rpm_limit']} and tpm_limit {self.FULL_KEY['tpm_limit']} (in-process "
            "limiter, no Redis): each request reserves its worst-case cost with the ledger and counts against both "
            f"limits; the deployment is priced ({self.FULL_PRICE[0]} / {self.FULL_PRICE[1]} USD per input / output "
            "token) so every request is charged a non-zero cost; spend logged to the in-memory spend log (no "
            "database); Prometheus metrics; OTLP/HTTP export of every request (protobuf, the default; no sampling; "
            "default batch and flush settings) to OTEL_EXPORTER_OTLP_ENDPOINT, a second mock-provider process "
            "(one thread) as the collector (benchmarks/tracing_ab.py's start_mock)",
            f"load:  wrk -t1 -c32, small chat body (20-byte prompt), {rounds} round{'s' if rounds != 1 else ''} "
            f"of {secs} s, each round running nginx, bare and full back to back (the order rotates); ratios are "
            "the median of each round's ratio, "
            f"req/s the median over rounds; then gw-loadgen at a fixed 5000 req/s, {rate_secs} s per target "
            "(latency from each request's due time)",
            "the mock upstream: one thread, zero latency, 16 completion tokens; all on the same cores",
        ]

    def full(self):
        """The issue's goal, "everything on": a second gateway with a virtual key that has a
        budget and rpm/tpm limits, spend log, metrics and OTLP export to a local collector,
        against the master-key gateway ("bare") and nginx, in paired rounds on the same
        upstream. Reports full/nginx, bare/nginx and full/bare (medians of the per-round
        ratios), the req/s, and p50/p99 at a fixed 5000 req/s."""
        import http.client
        from tracing_ab import otlp_env, sink_bytes, start_mock, trace_records  # the collector, as tracing_ab.py
        rounds = 1 if self.quick else self.args.full_rounds
        secs = 1 if self.quick else self.args.full_seconds
        rate_secs = 1 if self.quick else 5
        self.full_config = self.full_setup(rounds, secs, rate_secs)
        for line in self.full_config:
            log(line)

        sink_port, sink = start_mock(os.path.join(self.bin, "apps/mock-provider/mock-provider"))
        self.procs.append(sink)
        port = free_port()
        cfg = os.path.join(self.tmp, "gateway-full.yaml")
        with open(cfg, "w") as f:
            f.write(f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: "http://127.0.0.1:{self.mock_port}/v1"}}
    model_info: {{input_cost_per_token: {self.FULL_PRICE[0]}, output_cost_per_token: {self.FULL_PRICE[1]}}}
general_settings:
  master_key: {KEY}
gateway_settings:
  io_threads: {self.args.workers}
litellm_settings:
  callbacks: ["prometheus"]
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}
        env.update(otlp_env(sink_port))
        env["LITELLM_LOG"] = "WARNING"
        gw = self.spawn("gateway-full", [os.path.join(self.bin, "apps/gateway/llm-gateway"), "--config", cfg,
                                         "--host", "127.0.0.1", "--port", str(port)], env=env)
        wait_port(port, gw)
        vkey = self.make_key(self.FULL_KEY, port=port)

        def call(method, path, key, body=None):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request(method, path, body=body, headers={"authorization": f"Bearer {key}",
                                                        "content-type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data

        # One request first: the answer must show the limits and a non-zero cost.
        st, hdrs, _ = call("POST", "/v1/chat/completions", vkey,
                           json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}))
        probe = {k: v for k, v in hdrs.items() if k.startswith(("x-ratelimit-", "x-litellm-response-cost"))}
        if st != 200:
            self.errors.append(f"full: the first request answered {st}")
        if "x-ratelimit-remaining-requests" not in probe:
            self.errors.append("full: no x-ratelimit-remaining-requests on the virtual key's answer (limits off?)")
        log(f"full: first answer {st}, " + ", ".join(f"{k}: {v}" for k, v in sorted(probe.items())))

        body = self.body(20)
        path = "/v1/chat/completions"
        who = {"nginx": (self.nginx_port, KEY, lambda: nginx_worker_pids(self.nginx.pid) + [self.nginx.pid]),
               "bare": (self.gw_port, KEY, lambda: [self.gw.pid]),
               "full": (port, vkey, lambda: [gw.pid])}
        self.wrk(port, path, body, 32, 1 if self.quick else 2, key=vkey)  # warm the new gateway and the collector
        names = list(who)
        got = {t: [] for t in names}
        cpu = {t: [] for t in names}  # cores used per run: the target, the mock, the collector
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for t in order:
                tport, key, pids = who[t]
                watched = {"target": pids(), "mock": [self.mock.pid], "collector": [sink.pid]}
                before = {k: cpu_seconds(v) for k, v in watched.items()}
                t0 = time.time()
                x = self.wrk(tport, path, body, 32, secs, key=key)
                wall = time.time() - t0
                cpu[t].append({k: (cpu_seconds(v) - before[k]) / wall for k, v in watched.items()})
                self.check_errors(f"full scenario wrk -c32 round {r + 1}", t, x["errors"])
                got[t].append(x["rps"])
                self.raw.setdefault("full/wrk", []).append({"round": r + 1, "target": t, **x})
            last = {t: got[t][-1] for t in names}
            log(f"full round {r + 1}: " + ", ".join(f"{t} {last[t]:,.0f}" for t in names) + " req/s; "
                f"full/nginx {last['full'] / last['nginx']:.2f}, bare/nginx {last['bare'] / last['nginx']:.2f}, "
                f"full/bare {last['full'] / last['bare']:.2f}; collector {cpu['full'][-1]['collector']:.2f} cores")

        def paired(a, b):
            return median([x / y for x, y in zip(got[a], got[b])])
        ratios = {"full/nginx": paired("full", "nginx"), "bare/nginx": paired("bare", "nginx"),
                  "full/bare": paired("full", "bare")}
        rps = {t: median(v) for t, v in got.items()}

        # Fixed rate: one run per target, the order rotated once more.
        lat = {}
        for t in names[rounds % len(names):] + names[:rounds % len(names)]:
            tport, key, _ = who[t]
            res = self.loadgen(tport, path, body, rate=5000, seconds=rate_secs, conns=32,
                               warmup=0.5 if self.quick else 1, key=key)
            self.check_errors("full scenario fixed rate 5000/s", t, res["bad"])
            lat[t] = res
        self.raw["full/fixed rate 5000/s"] = lat

        # What the everything-on gateway did: the key's spend, refusals, trace records.
        time.sleep(1.5)  # the last trace batch (1 s flush) and spend flush
        st, _, data = call("GET", f"/key/info?key={vkey}", KEY)
        info = json.loads(data) if st == 200 else {"status": st}
        st, _, data = call("GET", "/metrics", KEY)
        counters = {}
        for line in data.decode().splitlines():
            if line.startswith(("llm_gateway_rate_limited_total", "llm_gateway_budget_refusals_total",
                                "llm_gateway_trace_records_total", "llm_gateway_trace_export_batches_total",
                                "llm_gateway_spend_batches_written_total")):
                name, _, value = line.rpartition(" ")
                counters[name] = float(value)
        exported, dropped = trace_records(port, "exported"), trace_records(port, "dropped")
        facts = {"key_spend_usd": info.get("info", {}).get("spend"), "exported_records": exported,
                 "dropped_records": dropped, "collector_bytes": sink_bytes(sink_port),
                 "rss_mb": {"bare": rss_kb([self.gw.pid]) / 1024, "full": rss_kb([gw.pid]) / 1024}}
        log("full: " + json.dumps(facts))
        if not exported:
            self.errors.append("full: the gateway exported no trace record")
        if not facts["key_spend_usd"]:
            self.errors.append("full: the virtual key shows no spend")
        refused = sum(v for k, v in counters.items() if k.startswith(("llm_gateway_rate_limited_total",
                                                                      "llm_gateway_budget_refusals_total")))
        if refused:
            self.errors.append(f"full: {refused:.0f} requests refused by a limit or the budget")
        gw.send_signal(signal.SIGTERM)
        sink.terminate()
        for p in (gw, sink):
            p.wait(timeout=30)
        if gw.returncode != 0:
            self.errors.append(f"full gateway exited with {gw.returncode}")

        label = f"everything on, wrk -c32, {rounds} paired round{'s' if rounds != 1 else ''}"
        self.row(label, "throughput, bare (master key)", "req/s", {"nginx": rps["nginx"], "gateway": rps["bare"]},
                 gw_nginx=ratios["bare/nginx"])
        self.row(label, "throughput, full (everything on)", "req/s", {"nginx": rps["nginx"], "gateway": rps["full"]},
                 gw_nginx=ratios["full/nginx"])
        self.row(label, "full / bare", "x", {"gateway": ratios["full/bare"]})
        for t in ("bare", "full"):
            for k, name in (("p50_us", "p50"), ("p99_us", "p99")):
                self.row("everything on, fixed rate 5000/s", f"{name} latency, {t}", "us",
                         {"nginx": lat["nginx"]["latency"][k], "gateway": lat[t]["latency"][k]}, "lower")
        self.full_ratios = ratios
        med_cpu = {t: {k: median([c[k] for c in cpu[t]]) for k in cpu[t][0]} for t in names}
        self.raw["full"] = {"rps": got, "ratios": ratios, "rps_median": rps, "cores_used": med_cpu,
                            "cores_per_run": cpu, "probe_headers": probe, "counters": counters,
                            "key_info": info, **facts, "setup": self.full_config}
        log("full: cores used (median over runs): " + json.dumps(med_cpu))

    def auth_cost(self):
        """The same three keys, counted instead of timed: instructions per request of a
        gateway under callgrind (valgrind), whatever the machine's load. The figure the
        auth target is judged on when valgrind is there; the throughput above is too
        noisy on a shared 2-core machine for a 3% band."""
        if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
            log("valgrind not installed: skipping the instruction count")
            return
        import http.client
        n = 30 if self.quick else 1500
        port = free_port()
        out = os.path.join(self.tmp, "callgrind.out")
        gw = os.path.join(self.bin, "apps/gateway/llm-gateway")
        p = self.spawn("gateway-callgrind", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", gw,
                                             "--config", self.gw_cfg, "--host", "127.0.0.1", "--port", str(port)],
                       env={**os.environ, "LITELLM_LOG": "WARNING"})
        wait_port(port, p, timeout=120)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body = json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello, how are you today?"}]})

        def call(key, path="/v1/chat/completions", data=body):
            c.request("POST", path, body=data, headers={"authorization": f"Bearer {key}",
                                                         "content-type": "application/json"})
            r = c.getresponse()
            d = r.read()
            if r.status != 200:
                self.errors.append(f"callgrind gateway: {path} answered {r.status}")
            return d

        keys = {"master key": KEY,
                "virtual key": json.loads(call(KEY, "/key/generate", json.dumps({"key_alias": "cg"})))["key"],
                "virtual key with budget": json.loads(call(KEY, "/key/generate", json.dumps(
                    {"key_alias": "cg-budget", "max_budget": 1000000})))["key"]}
        counts = {w: [] for w in keys}
        dumps = []
        for r in range(1 if self.quick else 2):
            for w, key in keys.items():
                for _ in range(max(10, n // 10)):
                    call(key)  # warm: this key's first requests fill caches and tables
                subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True)
                for _ in range(n):
                    call(key)
                tag = f"round{len(dumps)}"  # not a number: callgrind_control would take it for a pid
                subprocess.run(["callgrind_control", "-d", tag, str(p.pid)], capture_output=True)
                dumps.append((w, tag))
        c.close()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        by_tag = {}
        for f in os.listdir(self.tmp):
            if not f.startswith("callgrind.out."):
                continue
            total, tag = None, None
            with open(os.path.join(self.tmp, f)) as fh:
                for line in fh:
                    m = re.match(r"desc: Trigger: .*dump (\S+)", line)
                    if m:
                        tag = m.group(1)
                    if line.startswith("summary:"):
                        total = int(line.split()[1])
                        break
            if tag is not None and total is not None:
                by_tag[tag] = total / n
        for w, tag in dumps:
            if tag in by_tag:
                counts[w].append(by_tag[tag])
        if not all(counts.values()):
            self.errors.append("callgrind: a dump is missing")
            return
        ins = {w: min(v) for w, v in counts.items()}  # timers add to a round, never take away
        for w in keys:
            self.row("gateway auth, instructions per request (callgrind)", w, "instr", {"gateway": ins[w]}, "lower")
        self.raw["auth_instructions"] = counts
        self.auth_instr_ratio = ins["virtual key"] / ins["master key"]

    def limits(self):
        """What a rate limit costs per request: no limit, the in-process limiter, the
        Redis round trip (one Lua script per request), and a key over its limit with
        and without the local pre-check. Closed loop (wrk -c32) for throughput and one
        connection (wrk -c1) for the added latency; alternating rounds, medians."""
        redis_port = free_port()
        self.spawn("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", self.tmp, "--daemonize", "no"])
        wait_port(redis_port, self.procs[-1])
        gws = {}
        for name, precheck in (("redis", "true"), ("redis-noprecheck", "false")):
            port = free_port()
            cfg = os.path.join(self.tmp, f"gateway-{name}.yaml")
            with open(cfg, "w") as f:
                f.write(f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: "http://127.0.0.1:{self.mock_port}/v1"}}
general_settings:
  master_key: {KEY}
router_settings: {{redis_host: 127.0.0.1, redis_port: {redis_port}}}
gateway_settings:
  io_threads: {self.args.workers}
  rate_limit_precheck: {precheck}
litellm_settings:
  callbacks: ["prometheus"]
""")
            p = self.spawn(f"gateway-{name}", [os.path.join(self.bin, "apps/gateway/llm-gateway"), "--config", cfg,
                                               "--host", "127.0.0.1", "--port", str(port)],
                           env={**os.environ, "LITELLM_LOG": "WARNING"})
            wait_port(port, p)
            gws[name] = port
        time.sleep(1)  # connections to Redis made, scripts loaded
        main_port = self.gw_port

        def key(port, fields):
            return self.make_key(fields, port=port)

        big = {"rpm_limit": 1_000_000_000}
        cases = {
            "virtual key, no limit": (main_port, key(main_port, {})),
            "rpm limit, in-process limiter": (main_port, key(main_port, big)),
            "rpm limit, Redis": (gws["redis"], key(gws["redis"], big)),
            "over its limit, Redis + pre-check": (gws["redis"], key(gws["redis"], {"rpm_limit": 0})),
            "over its limit, Redis, no pre-check": (gws["redis-noprecheck"], key(gws["redis-noprecheck"], {"rpm_limit": 0})),
        }
        secs = 1 if self.quick else 5
        rounds = 1 if self.quick else 3
        body = self.body(20)
        got = {c: {"rps": [], "p50_us": []} for c in cases}
        names = list(cases)
        for r in range(rounds):
            for c in names[r % len(names):] + names[:r % len(names)]:
                port, k = cases[c]
                x = self.wrk(port, "/v1/chat/completions", body, 32, secs, key=k)
                y = self.wrk(port, "/v1/chat/completions", body, 1, secs, key=k)
                if not c.startswith("over"):
                    self.check_errors(f"limits {c}", "gateway", x["errors"] + y["errors"])
                got[c]["rps"].append(x["rps"])
                got[c]["p50_us"].append(y["p50_us"])
        med = {c: {m: sorted(v)[len(v) // 2] for m, v in d.items()} for c, d in got.items()}
        for c in names:
            self.row(f"rate limits, wrk -c32, {c}", "throughput", "req/s", {"gateway": med[c]["rps"]})
            self.row(f"rate limits, wrk -c1, {c}", "p50 latency", "us", {"gateway": med[c]["p50_us"]}, "lower")
        base = med["virtual key, no limit"]
        self.raw["limits"] = got
        self.limit_costs = {
            "redis_round_trip_us_c1": med["rpm limit, Redis"]["p50_us"] - base["p50_us"],
            "local_limiter_us_c1": med["rpm limit, in-process limiter"]["p50_us"] - base["p50_us"],
            "redis_throughput_ratio": med["rpm limit, Redis"]["rps"] / base["rps"],
            "local_throughput_ratio": med["rpm limit, in-process limiter"]["rps"] / base["rps"],
            "refusal_precheck_rps": med["over its limit, Redis + pre-check"]["rps"],
            "refusal_no_precheck_rps": med["over its limit, Redis, no pre-check"]["rps"],
        }
        self.raw["limit_costs"] = self.limit_costs
        log("limit costs: " + json.dumps(self.limit_costs))

    def fixed_rate(self):
        secs = 1 if self.quick else 10
        rates = [1000] if self.quick else [1000, 5000, 10000]
        body = self.body(20)
        for rate in rates:
            m = self.measure(self.targets, body, f"fixed rate {rate}/s", rate=rate, seconds=secs)
            for key, name in (("p50_us", "p50 latency"), ("p99_us", "p99 latency"), ("p999_us", "p99.9 latency")):
                self.row(f"fixed rate {rate}/s, small chat", name, "us", {t: v[key] for t, v in m.items()}, "lower")
        if self.quick:
            return
        for label, size in (("10KB prompt", 10 * 1024), ("100KB prompt", 100 * 1024)):
            m = self.measure(self.targets, self.body(size), f"fixed rate {label}", rate=1000, seconds=secs)
            for key, name in (("p50_us", "p50 latency"), ("p99_us", "p99 latency")):
                self.row(f"fixed rate 1000/s, {label}", name, "us", {t: v[key] for t, v in m.items()}, "lower")
        # A 50 ms upstream: the gateway holds ~50 requests in flight at 1000/s.
        m = self.measure(self.slow_targets, self.body(20, model="mock-slow"), "fixed rate, 50 ms upstream",
                         rate=1000, seconds=secs, conns=256)
        for key, name in (("p50_us", "p50 latency"), ("p99_us", "p99 latency")):
            self.row("fixed rate 1000/s, upstream 50 ms", name, "us", {t: v[key] for t, v in m.items()}, "lower")

    def streaming(self):
        secs = 1 if self.quick else 10
        body = self.body(20, stream=True, x_mock={"tokens": 20})
        m = self.measure(self.targets, body, "streams", mode="stream", rate=1000, seconds=secs)
        label = "streams at 1000/s, 20 chunks"
        self.row(label, "time to first token p50", "us", {t: v["ttft_p50_us"] for t, v in m.items()}, "lower")
        self.row(label, "time to first token p99", "us", {t: v["ttft_p99_us"] for t, v in m.items()}, "lower")
        self.row(label, "total p50", "us", {t: v["p50_us"] for t, v in m.items()}, "lower")
        self.row(label, "total p99", "us", {t: v["p99_us"] for t, v in m.items()}, "lower")

    def hold_streams(self, n):
        """Opens n slow streams through the gateway and nginx; returns RSS (KB) with all open."""
        body = self.body(20, stream=True, x_mock={"tokens": 40, "tokens_per_second": 0.25})
        result = {}
        for t in ("nginx", "gateway"):
            port, path = self.targets[t]
            ready = os.path.join(self.tmp, f"ready-{t}-{n}")
            lg = subprocess.Popen([os.path.join(self.bin, "benchmarks/gw-loadgen"), "--mode", "hold", "--url",
                                   f"http://127.0.0.1:{port}{path}", "--body-file", body, "--header",
                                   f"Authorization: Bearer {KEY}", "--connections", str(n), "--hold", "600",
                                   "--ready-file", ready, "--timeout", "120"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 150
            while not os.path.exists(ready) and time.time() < deadline and lg.poll() is None:
                time.sleep(0.2)
            info = json.load(open(ready)) if os.path.exists(ready) else {"established": 0, "errors": n}
            time.sleep(1)
            pids = [self.gw.pid] if t == "gateway" else nginx_worker_pids(self.nginx.pid) + [self.nginx.pid]
            result[t] = rss_kb(pids)
            self.raw[f"hold/{n}/{t}"] = {**info, "rss_kb": result[t]}
            if info["established"] < n:
                self.errors.append(f"{t}: only {info['established']} of {n} streams established")
            lg.send_signal(signal.SIGTERM)
            lg.wait(timeout=30)
            time.sleep(2)  # let both sides close
        return result

    def memory(self):
        time.sleep(0 if self.quick else 3)  # idle: no load for a few seconds
        idle = {"gateway": rss_kb([self.gw.pid]),
                "nginx": rss_kb(nginx_worker_pids(self.nginx.pid) + [self.nginx.pid])}
        self.row("memory", "RSS idle (3 s after all the load)", "MB", {k: v / 1024 for k, v in idle.items()}, "lower")
        counts = [100] if self.quick else [1000, self.args.max_streams]
        for n in counts:
            r = self.hold_streams(n)
            self.row("memory", f"RSS with {n} open streams", "MB", {k: v / 1024 for k, v in r.items()}, "lower")

    def leak(self):
        minutes = self.args.leak_minutes
        if self.quick or minutes <= 0:
            return
        body = self.body(20)
        port, path = self.targets["gateway"]
        samples = []
        argv = [os.path.join(self.bin, "benchmarks/gw-loadgen"), "--url", f"http://127.0.0.1:{port}{path}",
                "--body-file", body, "--header", f"Authorization: Bearer {KEY}", "--rate", "5000",
                "--duration", str(minutes * 60), "--connections", "64", "--warmup", "0"]
        lg = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while lg.poll() is None:
            samples.append((round(time.time() - t0), rss_kb([self.gw.pid])))
            time.sleep(10)
        r = json.loads(lg.stdout.read())
        self.check_errors("leak run", "gateway", r["errors"] + r["non2xx"] + r["unfinished"])
        self.raw["leak"] = {"samples_s_kb": samples, "loadgen": r}
        after_warmup = [kb for s, kb in samples if s >= 30] or [samples[-1][1]]
        growth = (after_warmup[-1] - after_warmup[0]) / 1024
        self.leak_growth_mb = growth
        self.row(f"{minutes} min at 5000/s", "RSS growth after the first 30 s", "MB", {"gateway": growth}, "lower")
        self.row(f"{minutes} min at 5000/s", "RSS at the end", "MB", {"gateway": samples[-1][1] / 1024}, "lower")

    # ------------------------------------------------------------------ report
    def targets_check(self):
        def get(scenario, metric):
            for r in self.rows:
                if r["scenario"] == scenario and r["metric"] == metric:
                    return r
            return None

        checks = []
        tp = get("closed loop, small, wrk -c32", "throughput")
        if tp:
            checks.append(("closed-loop throughput >= 0.75 x nginx (wrk -c32)", tp["gw_nginx"], ">= 0.75",
                           tp["gw_nginx"] >= 0.75))
        p50 = get("fixed rate 5000/s, small chat", "p50 latency")
        p99 = get("fixed rate 5000/s, small chat", "p99 latency")
        if p50:
            added = p50["gateway"] - p50["nginx"]
            checks.append(("p50 at 5000/s <= nginx + 50 us", added, "<= 50 us added", added <= 50))
        if p99:
            checks.append(("p99 at 5000/s <= 1 ms", p99["gateway"], "<= 1000 us", p99["gateway"] <= 1000))
        tt = get("streams at 1000/s, 20 chunks", "time to first token p50")
        if tt:
            added = tt["gateway"] - tt["direct"]
            checks.append(("added time to first token p50 <= 100 us", added, "<= 100 us", added <= 100))
        idle = get("memory", "RSS idle (3 s after all the load)")
        if idle:
            checks.append(("RSS idle <= 30 MB", idle["gateway"], "<= 30 MB", idle["gateway"] <= 30))
        many = get("memory", f"RSS with {self.args.max_streams} open streams")
        if many:
            checks.append((f"RSS with {self.args.max_streams} streams <= 300 MB", many["gateway"], "<= 300 MB",
                           many["gateway"] <= 300))
        if hasattr(self, "auth_ratio"):
            checks.append(("virtual-key throughput >= 0.97 x master-key (median of paired rounds, noise band 3%)",
                           self.auth_ratio, ">= 0.97", self.auth_ratio >= 0.97))
        if hasattr(self, "auth_instr_ratio"):
            checks.append(("virtual-key instructions per request <= 1.02 x master-key (callgrind)",
                           self.auth_instr_ratio, "<= 1.02", self.auth_instr_ratio <= 1.02))
        if hasattr(self, "full_ratios"):
            v = self.full_ratios["full/nginx"]
            checks.append(("everything on (virtual key with budget and rpm/tpm limits, spend log, metrics, OTLP): "
                           "throughput >= 0.9 x nginx (median of paired rounds)", v, ">= 0.9", v >= 0.9))
        if hasattr(self, "leak_growth_mb"):
            checks.append(("no RSS growth over the leak run (< 5 MB)", self.leak_growth_mb, "< 5 MB",
                           self.leak_growth_mb < 5))
        checks.append(("zero errors in every run", len(self.errors), "0", not self.errors))
        return [{"target": c[0], "value": c[1], "limit": c[2], "met": c[3]} for c in checks]

    def report(self):
        def fmt(v, unit):
            if v is None:
                return "-"
            if unit == "req/s":
                return f"{v:,.0f}"
            if unit == "MB":
                return f"{v:.1f}"
            if unit == "x":
                return f"{v:.2f}"
            return f"{v:,.0f}"

        def ratio(v):
            return "-" if v is None else f"{v:.2f}"

        lines = []
        if hasattr(self, "full_config"):
            lines.append("everything on (scenario full):")
            lines += [f"  {line}" for line in self.full_config]
            r = self.full_ratios
            lines.append(f"  => full/nginx {r['full/nginx']:.2f}, bare/nginx {r['bare/nginx']:.2f}, "
                         f"full/bare {r['full/bare']:.2f} (medians of the per-round ratios)")
            lines.append("")
        head = f"{'scenario':<44} {'metric':<32} {'unit':<6} {'direct':>10} {'nginx':>10} {'gateway':>10} {'gw/nginx':>9} {'gw/direct':>9}"
        lines.append(head)
        lines.append("-" * len(head))
        for r in self.rows:
            lines.append(f"{r['scenario']:<44} {r['metric']:<32} {r['unit']:<6} {fmt(r['direct'], r['unit']):>10} "
                         f"{fmt(r['nginx'], r['unit']):>10} {fmt(r['gateway'], r['unit']):>10} "
                         f"{ratio(r['gw_nginx']):>9} {ratio(r['gw_direct']):>9}")
        checks = self.targets_check()
        lines.append("")
        lines.append("targets:")
        for c in checks:
            v = c["value"]
            vs = f"{v:.2f}" if isinstance(v, float) else str(v)
            lines.append(f"  [{'met' if c['met'] else 'MISSED'}] {c['target']}: {vs} (want {c['limit']})")
        for e in self.errors:
            lines.append(f"  error: {e}")
        text = "\n".join(lines)
        print(text)
        doc = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": "quick" if self.quick else "full",
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
            "setup": {"gateway_io_threads": self.args.workers, "nginx_workers": self.args.workers,
                      "mock_threads": 1, "load_generators": "wrk -t1 (closed loop), gw-loadgen (open loop)",
                      **({"full_scenario": self.full_config} if hasattr(self, "full_config") else {})},
            "rows": self.rows, "targets": checks, "errors": self.errors, "raw": self.raw,
        }
        if self.args.out:
            os.makedirs(os.path.dirname(os.path.abspath(self.args.out)), exist_ok=True)
            with open(self.args.out, "w") as f:
                json.dump(doc, f, indent=1)
            log(f"wrote {self.args.out}")
        return doc


def markdown(path):
    """Prints a results JSON as the Markdown tables of docs/PERFORMANCE.md."""
    with open(path) as f:
        doc = json.load(f)

    def fmt(v, unit):
        if v is None:
            return "–"
        return f"{v:.1f}" if unit == "MB" else f"{v:.2f}" if unit == "x" else f"{v:,.0f}"

    def ratio(v):
        return "–" if v is None else f"{v:.2f}"

    print(f"Run {doc['when']} on {doc['machine']['cpus']} cores, kernel {doc['machine']['kernel']}.\n")
    if doc["setup"].get("full_scenario"):
        print("Everything on (`full`):\n")
        for line in doc["setup"]["full_scenario"]:
            name, _, rest = line.partition(":")
            print(f"- **{name}**: {rest.strip()}")
        print()
    print("| scenario | metric | unit | direct | nginx | gateway | gw/nginx | gw/direct |")
    print("|---|---|---|--:|--:|--:|--:|--:|")
    for r in doc["rows"]:
        print(f"| {r['scenario']} | {r['metric']} | {r['unit']} | {fmt(r['direct'], r['unit'])} | "
              f"{fmt(r['nginx'], r['unit'])} | {fmt(r['gateway'], r['unit'])} | {ratio(r['gw_nginx'])} | "
              f"{ratio(r['gw_direct'])} |")
    print("\n| target | value | limit | met |")
    print("|---|--:|---|---|")
    for t in doc["targets"]:
        v = t["value"]
        print(f"| {t['target']} | {v:.2f} | {t['limit']} | {'yes' if t['met'] else '**no**'} |")
    if doc.get("errors"):
        print("\nErrors: " + "; ".join(doc["errors"]))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
        markdown(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds: checks the harness, not the targets")
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--out", default=None, help="JSON output (default benchmarks/results/latest[-quick].json)")
    ap.add_argument("--workers", type=int, default=2, help="gateway io threads and nginx workers")
    ap.add_argument("--max-streams", type=int, default=9900,
                    help="largest number of open streams (2 fds each in a proxy; 20000-fd limit here)")
    ap.add_argument("--leak-minutes", type=float, default=5)
    ap.add_argument("--full-rounds", type=int, default=8, help="paired rounds of the full scenario")
    ap.add_argument("--full-seconds", type=int, default=5, help="seconds per target and round (full scenario)")
    ap.add_argument("--only", default="",
                    help="comma list: closed,auth,full,authcost,limits,rate,stream,memory,leak")
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(ROOT, "benchmarks/results", "latest-quick.json" if args.quick else "latest.json")
    b = Bench(args)
    only = set(filter(None, args.only.split(",")))
    try:
        b.start()
        # Warm up every path once (connections, pools, page faults).
        warm = b.body(20)
        for t, (port, path) in b.targets.items():
            b.wrk(port, path, warm, 32, 1)
        for name, fn in (("closed", b.closed_loop), ("auth", b.auth), ("full", b.full), ("authcost", b.auth_cost),
                         ("limits", b.limits), ("rate", b.fixed_rate), ("stream", b.streaming), ("memory", b.memory),
                         ("leak", b.leak)):
            if not only or name in only:
                log(f"running {name}")
                fn()
    finally:
        b.stop()
    doc = b.report()
    # The quick mode guards the harness and correctness (zero errors), not the figures.
    if args.quick:
        return 1 if doc["errors"] else 0
    return 0 if all(c["met"] for c in doc["targets"]) else 3


if __name__ == "__main__":
    sys.exit(main())
