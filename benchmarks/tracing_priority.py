#!/usr/bin/env python3
"""Where tracing's p99 comes from: latency at a fixed rate with OTLP export on, with the
background work (the gateway's trace exporter threads, its actor threads, and the
collector process that shares this machine) at its normal priority and then at
SCHED_IDLE, alternated on one running gateway. If the p99 with everything background at
SCHED_IDLE matches a gateway without tracing, no request waits for tracing: the tail is
CPU contention, on a machine where the collector shares the gateway's cores.

  python3 benchmarks/tracing_priority.py [--build-dir build/release] [--rounds 3] [--rate 5000]

Needs chrt (util-linux) and permission to change the threads' policy (own processes:
lowering is always allowed; going back to SCHED_OTHER needs root or CAP_SYS_NICE).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from run import free_port, wait_port
from tracing_ab import BODY, KEY, ROOT, start_mock, write_config


def threads(pid):
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                out.append((t, f.read().strip()))
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=6)
    a = ap.parse_args()
    bindir = os.path.join(ROOT, a.build_dir)
    mock_bin = os.path.join(bindir, "apps/mock-provider/mock-provider")
    gw_bin = os.path.join(bindir, "apps/gateway/llm-gateway")
    loadgen = os.path.join(bindir, "benchmarks/gw-loadgen")
    tmp = tempfile.mkdtemp(prefix="gw-trace-prio-")
    procs = []

    mock_port, mock = start_mock(mock_bin)
    sink_port, sink = start_mock(mock_bin)  # the collector: POST /v1/traces read and accepted
    procs += [mock, sink]
    cfg = write_config(tmp, mock_port)
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        f.write(BODY)

    def gateway(env_extra):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}
        env.update(env_extra)
        p = subprocess.Popen([gw_bin, "--config", cfg, "--host", "127.0.0.1", "--port", str(port)], env=env,
                             cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_port(port, p)
        return port, p

    def latency(port):
        r = subprocess.run([loadgen, "--mode", "rate", "--url", f"http://127.0.0.1:{port}/v1/chat/completions",
                            "--body-file", body, "--header", f"Authorization: Bearer {KEY}", "--rate", str(a.rate),
                            "--duration", str(a.seconds), "--connections", "64", "--warmup", "1"],
                           capture_output=True, text=True)
        lat = json.loads(r.stdout)["latency"]
        return lat["p50_us"], lat["p99_us"]

    def set_background(gw, idle):
        """The gateway's non-io threads and the collector's: SCHED_IDLE, or back to
        SCHED_OTHER (exporters at their own nice 10, the rest at 0)."""
        targets = [(t, n) for t, n in threads(gw.pid) if n.startswith(("caf", "gw-trace"))]
        targets += [(t, "collector") for t, _ in threads(sink.pid)]
        for t, name in targets:
            if idle:
                subprocess.run(["chrt", "-i", "-p", "0", t], check=True, capture_output=True)
            else:
                subprocess.run(["chrt", "-o", "-p", "0", t], check=True, capture_output=True)
                nice = "10" if name.startswith("gw-trace-export") else "0"
                subprocess.run(["renice", "-n", nice, "-p", t], check=True, capture_output=True)

    try:
        off_port, _ = gateway({})
        otlp_port, otlp = gateway({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"})
        res = {"off": [], "otlp": [], "otlp, background at SCHED_IDLE": []}
        for rnd in range(a.rounds):
            res["off"].append(latency(off_port))
            set_background(otlp, False)
            res["otlp"].append(latency(otlp_port))
            set_background(otlp, True)
            res["otlp, background at SCHED_IDLE"].append(latency(otlp_port))
            print(f"[trace-prio] round {rnd + 1}: " + ", ".join(f"{k} p99 {v[-1][1]:.0f} us" for k, v in res.items()),
                  file=sys.stderr, flush=True)
        print(f"{'configuration':<34} {'p50 us':>8} {'p99 us':>8}   (fixed {a.rate}/s, mean of {a.rounds} rounds)")
        for k, v in res.items():
            print(f"{k:<34} {sum(x[0] for x in v) / len(v):>8.0f} {sum(x[1] for x in v) / len(v):>8.0f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
