#!/usr/bin/env python3
"""What tracing costs: one gateway binary, the same mock provider, alternating
configurations in interleaved rounds (so the machine's drift hits them alike):

  off        no exporter, no store: the request path does no tracing work
  store      the in-memory trace store (bodies truncated)
  otlp       OTLP/HTTP protobuf (the default) to a collector (a second mock process,
             which reads and accepts every batch), every request sampled
  otlp-json  the same with OTEL_EXPORTER_OTLP_PROTOCOL=http/json
  otlp-10%   protobuf, with OTEL_TRACES_SAMPLER=traceidratio, ARG=0.1

For each: closed-loop throughput (wrk -t1 -c32, small chat body) and fixed-rate latency
(gw-loadgen at --rate req/s: p50/p99 measured from each request's due time), and for
the OTLP configurations the bytes the collector received per exported record. Prints
a table with ratios to `off` and writes JSON.

  python3 benchmarks/tracing_ab.py [--build-dir build/dev] [--rounds 2] [--seconds 8] [--rate 5000]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from run import free_port, wait_port  # benchmarks/run.py: the same helpers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KEY = "sk-bench-master"
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hello to the benchmark."}]})


def start_mock(mock_bin):
    """A one-threaded mock provider on a free port: (port, process)."""
    port = free_port()
    p = subprocess.Popen([mock_bin, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return port, p


def write_config(tmp, mock_port):
    """The gateway config both tracing benchmarks use: one deployment on the mock, the
    master key, a 0.2 s trace flush. Returns its path."""
    cfg = os.path.join(tmp, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model_list:
  - model_name: bench
    litellm_params: {{model: openai/bench, api_base: "http://127.0.0.1:{mock_port}/v1", api_key: x}}
general_settings:
  master_key: {KEY}
gateway_settings:
  trace_flush_interval: 0.2
""")
    return cfg


def otlp_env(sink_port):
    """The environment that turns OTLP export on (protobuf, the default protocol) to a
    collector at 127.0.0.1:sink_port, e.g. a second mock from start_mock()."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"}


def sink_bytes(sink_port):
    """Bytes of OTLP batches (POST /v1/traces) the mock collector has received so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{sink_port}/_mock/stats", timeout=10) as r:
        return json.loads(r.read())["otlp_bytes"]


def trace_records(gw_port, outcome="exported"):
    """The gateway's OTLP trace records by outcome ("exported" or "dropped"), from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/metrics", timeout=10) as r:
        m = re.search(r'^llm_gateway_trace_records_total\{exporter="otlp",outcome="%s"\} (\S+)$' % outcome,
                      r.read().decode(), re.M)
    return float(m.group(1)) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/dev")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    bindir = os.path.join(ROOT, a.build_dir)
    gw_bin = os.path.join(bindir, "apps/gateway/llm-gateway")
    mock_bin = os.path.join(bindir, "apps/mock-provider/mock-provider")
    loadgen = os.path.join(bindir, "benchmarks/gw-loadgen")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing (scripts/install-deps.sh)")
    tmp = tempfile.mkdtemp(prefix="gw-trace-ab-")
    body_file = os.path.join(tmp, "body.json")
    with open(body_file, "w") as f:
        f.write(BODY)
    lua = os.path.join(tmp, "post.lua")
    with open(lua, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {KEY}"\nwrk.body = [[{BODY}]]\n')

    mock_port, mock = start_mock(mock_bin)
    # The collector is its own process (a second mock, whose /v1/traces accepts and
    # counts batches): exports must not queue behind the upstream's requests.
    sink_port, sink = start_mock(mock_bin)
    cfg = write_config(tmp, mock_port)
    otlp = otlp_env(sink_port)
    configs = [
        ("off", {}, []),
        ("store", {}, ["trace_store"]),
        ("otlp", otlp, []),
        ("otlp-json", {**otlp, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, []),
        ("otlp-10%", {**otlp, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, []),
    ]
    results = {name: {"rps": [], "p50_us": [], "p99_us": [], "errors": 0, "bytes_per_record": []}
               for name, _, _ in configs}

    try:
        for rnd in range(a.rounds):
            order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
            for name, env_extra, flags in order:
                c = cfg
                if "trace_store" in flags:
                    c = os.path.join(tmp, "config-store.yaml")
                    with open(cfg) as src, open(c, "w") as dst:
                        dst.write(src.read() + "  trace_store: true\n")
                port = free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}
                env.update(env_extra)
                gw = subprocess.Popen([gw_bin, "--config", c, "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_port(port, gw)
                    bytes_before = sink_bytes(sink_port)
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    subprocess.run(["wrk", "-t1", "-c32", "-d2s", "-s", lua, url], capture_output=True)  # warm-up
                    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{a.seconds}s", "-s", lua, url],
                                         capture_output=True, text=True).stdout
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                    results[name]["errors"] += int(non2xx.group(1)) if non2xx else 0
                    results[name]["rps"].append(rps)
                    lg = subprocess.run([loadgen, "--mode", "rate", "--url", url, "--body-file", body_file, "--header",
                                         f"Authorization: Bearer {KEY}", "--rate", str(a.rate), "--duration",
                                         str(a.seconds), "--connections", "64", "--warmup", "1"],
                                        capture_output=True, text=True)
                    r = json.loads(lg.stdout)
                    r.update(r["latency"])
                    results[name]["p50_us"].append(r["p50_us"])
                    results[name]["p99_us"].append(r["p99_us"])
                    results[name]["errors"] += r["errors"] + r["non2xx"] + r["unfinished"]
                    if "OTEL_EXPORTER_OTLP_ENDPOINT" in env_extra:
                        time.sleep(0.5)  # the last batch
                        n = trace_records(port)
                        if n > 0:
                            results[name]["bytes_per_record"].append((sink_bytes(sink_port) - bytes_before) / n)
                    print(f"[trace-ab] round {rnd + 1} {name}: {rps:,.0f} req/s, p50 {r['p50_us']:.0f} us, "
                          f"p99 {r['p99_us']:.0f} us", file=sys.stderr, flush=True)
                finally:
                    gw.send_signal(signal.SIGTERM)
                    gw.wait(timeout=30)
    finally:
        for p in (mock, sink):
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def mean(v):
        return sum(v) / len(v) if v else float("nan")

    base = {k: mean(results["off"][k]) for k in ("rps", "p50_us", "p99_us")}
    print(f"{'configuration':<12} {'req/s (wrk -c32)':>17} {'vs off':>7} {'p50 us @' + str(a.rate):>13} "
          f"{'p99 us @' + str(a.rate):>13} {'errors':>7} {'bytes/record':>13}")
    for name, _, _ in configs:
        r = results[name]
        bpr = f"{mean(r['bytes_per_record']):,.0f}" if r["bytes_per_record"] else "-"
        print(f"{name:<12} {mean(r['rps']):>17,.0f} {mean(r['rps']) / base['rps']:>7.2f} {mean(r['p50_us']):>13.0f} "
              f"{mean(r['p99_us']):>13.0f} {r['errors']:>7} {bpr:>13}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"rate": a.rate, "seconds": a.seconds, "rounds": a.rounds, "results": results}, f, indent=1)
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
