"""Observability files: deploy/prometheus/llm-gateway-rules.yaml passes `promtool check
rules`, deploy/grafana/llm-gateway-dashboard.json is a well-formed dashboard on a
`${datasource}` Prometheus variable, and every metric name either of them queries is
exported by a real gateway's /metrics (mock provider, PostgreSQL, Redis, an OTLP trace
exporter), so neither can drift from what the gateway exports."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import REPO, SLOW, Gateway, Mock, Postgres, Redis, TempDir, chat, free_port

RULES = os.path.join(REPO, "deploy", "prometheus", "llm-gateway-rules.yaml")
PROMETHEUS_YML = os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "llm-gateway-dashboard.json")
MASTER = "sk-master-observability"
ADMIN = {"authorization": f"Bearer {MASTER}"}

# Words of PromQL that look like metric names but are not (functions and aggregations
# are recognised by the parenthesis that follows them).
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "atan2", "inf", "nan", "start", "end"}
# Names that come from Prometheus itself, not from the gateway.
NOT_FROM_THE_GATEWAY = {"up"}
# The dashboard must keep covering these (one panel or more each).
DASHBOARD_MUST_QUERY = {
    "litellm_proxy_total_requests_metric_total",
    "litellm_request_total_latency_metric_bucket",
    "litellm_llm_api_latency_metric_bucket",
    "litellm_overhead_latency_metric_bucket",
    "litellm_llm_api_time_to_first_token_metric_bucket",
    "litellm_input_tokens_metric_total",
    "litellm_output_tokens_metric_total",
    "litellm_in_flight_requests",
    "llm_gateway_rate_limited_total",
    "llm_gateway_deployment_state",
    "llm_gateway_database_up",
    "llm_gateway_redis_up",
    "llm_gateway_trace_records_total",
    "llm_gateway_trace_queue_records",
}


def promql_metric_names(expr):
    """The metric names an expression selects: strings, label matchers, ranges and
    by/without/on/ignoring label lists removed, then every identifier that is not
    followed by "(" (a function or aggregation) and is not a PromQL keyword."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # Grafana variables outside matchers
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def parse_rules(path):
    """The rules of a Prometheus rule file, with the standard library only: a list of
    {"kind": "alert"|"record", "name", "expr", "text"} where text is the rule's block
    (for its for/labels/annotations). Understands one-line and block-scalar exprs."""
    with open(path) as f:
        lines = f.read().splitlines()
    rules = []
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)-\s+(alert|record):\s*(.+?)\s*$", line)
        if m:
            current = {"kind": m.group(2), "name": m.group(3).strip("'\""), "expr": None, "text": [line]}
            rules.append(current)
            i += 1
            continue
        if re.match(r"^\s*-\s+name:", line):
            current = None
        if current is not None:
            current["text"].append(line)
            m = re.match(r"^(\s*)expr:\s*(.*?)\s*$", line)
            if m:
                indent, value = len(m.group(1)), m.group(2)
                if re.fullmatch(r"[|>][-+]?", value):
                    block = []
                    while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                                  len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                        i += 1
                        block.append(lines[i].strip())
                        current["text"].append(lines[i])
                    value = " ".join(b for b in block if b)
                elif len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                current["expr"] = value
        i += 1
    for r in rules:
        r["text"] = "\n".join(r["text"])
    return rules


def dashboard_panels(dash):
    """Every panel, rows' nested panels included."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_queries(dash):
    """(where, PromQL) for every panel target and every query variable."""
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"panel '{p.get('title')}' {t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q)
        out.append((f"variable '{v.get('name')}'", m.group(1) if m else q))
    return out


def substitute_grafana_variables(expr):
    """The expression as Prometheus would receive it from Grafana (for promtool)."""
    e = expr.replace("$__rate_interval", "5m").replace("${__rate_interval}", "5m")
    e = re.sub(r"\$__(?:interval|range)\b", "5m", e)
    return re.sub(r"\$\{?\w+\}?", "x", e)


def exposition_names(text):
    """Metric names in the text exposition format: HELP/TYPE lines and samples
    (histograms as name_bucket, name_sum, name_count)."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^#\s+(?:HELP|TYPE)\s+([A-Za-z_:][\w:]*)", line)
        if not m:
            m = re.match(r"^([A-Za-z_:][\w:]*)(?:\{|\s)", line)
        if m:
            names.add(m.group(1))
    return names


def promtool():
    return shutil.which("promtool")


class ObservabilityFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dash = json.load(f)
        cls.rules = parse_rules(RULES)

    # ------------------------------------------------------------------ promtool

    def test_rules_pass_promtool(self):
        if not promtool():
            self.skipTest("promtool is not installed (Debian: apt-get install prometheus): "
                          "the rules file was not checked")
        r = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, f"promtool check rules failed:\n{r.stdout}\n{r.stderr}")
        # The rules this test reads are the rules promtool found.
        m = re.search(r"SUCCESS: (\d+) rules found", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(int(m.group(1)), len(self.rules), [x["name"] for x in self.rules])

    def test_example_prometheus_config_passes_promtool(self):
        if not promtool():
            self.skipTest("promtool is not installed (Debian: apt-get install prometheus): "
                          "prometheus.yml was not checked")
        r = subprocess.run([promtool(), "check", "config", os.path.basename(PROMETHEUS_YML)], capture_output=True,
                           text=True, timeout=60, cwd=os.path.dirname(PROMETHEUS_YML))
        self.assertEqual(r.returncode, 0, f"promtool check config failed:\n{r.stdout}\n{r.stderr}")

    def test_dashboard_queries_parse(self):
        """Every dashboard query, with Grafana's variables filled in, is valid PromQL."""
        if not promtool():
            self.skipTest("promtool is not installed (Debian: apt-get install prometheus): "
                          "the dashboard's PromQL was not checked")
        queries = dashboard_queries(self.dash)
        text = "groups:\n  - name: dashboard\n    rules:\n"
        for i, (_, expr) in enumerate(queries):
            text += f"      - record: dashboard_query_{i}\n        expr: {json.dumps(substitute_grafana_variables(expr))}\n"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
            path = f.name
        try:
            r = subprocess.run([promtool(), "check", "rules", path], capture_output=True, text=True, timeout=60)
        finally:
            os.remove(path)
        where = "\n".join(f"dashboard_query_{i}: {w}" for i, (w, _) in enumerate(queries))
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}\n{where}")

    # ------------------------------------------------------------------ structure

    def test_dashboard_structure(self):
        d = self.dash
        self.assertGreaterEqual(d.get("schemaVersion", 0), 36)
        self.assertTrue(d.get("title"))
        self.assertTrue(d.get("uid"))
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables.get("datasource")
        self.assertIsNotNone(ds, "no datasource variable")
        self.assertEqual(ds["type"], "datasource")
        self.assertEqual(ds["query"], "prometheus")
        self.assertIn("model_group", variables)
        for name, v in variables.items():
            if v["type"] == "query":
                self.assertIn(v["datasource"]["uid"], ("${datasource}", "$datasource"), name)

        panels = dashboard_panels(d)
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are not unique")
        queried = 0
        for p in panels:
            self.assertIn("gridPos", p, p.get("title"))
            if p["type"] in ("row", "text"):
                continue
            title = p.get("title")
            self.assertTrue(title)
            self.assertIn(p.get("datasource", {}).get("uid"), ("${datasource}", "$datasource"), title)
            self.assertTrue(p.get("targets"), f"panel '{title}' has no targets")
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), title)
            for t in p["targets"]:
                self.assertTrue(t.get("expr"), f"panel '{title}' {t.get('refId')} has no expr")
                self.assertIn(t.get("datasource", p["datasource"])["uid"], ("${datasource}", "$datasource"), title)
            queried += 1
        self.assertGreaterEqual(queried, 10)

        used = set()
        for _, expr in dashboard_queries(d):
            used |= promql_metric_names(expr)
        self.assertFalse(DASHBOARD_MUST_QUERY - used, "the dashboard no longer queries these")
        self.assertTrue(any("$model_group" in e for _, e in dashboard_queries(d)), "model_group is never used")

    def test_rules_structure(self):
        alerts = [r for r in self.rules if r["kind"] == "alert"]
        self.assertGreaterEqual(len(alerts), 8)
        names = [r["name"] for r in self.rules]
        self.assertEqual(len(names), len(set(names)), "duplicate rule names")
        for r in self.rules:
            self.assertTrue(r["expr"], f"{r['name']} has no expr")
        for a in alerts:
            text = a["text"]
            self.assertRegex(text, r"\n\s+for:\s*\d+[smhd]", f"{a['name']} has no `for`")
            self.assertRegex(text, r"\n\s+severity:\s*(critical|warning|info)\b", f"{a['name']} has no severity")
            self.assertRegex(text, r"\n\s+summary:\s*\S", f"{a['name']} has no summary")
            self.assertRegex(text, r"\n\s+description:\s*\S", f"{a['name']} has no description")
        wanted = {"LLMGatewayDown", "LLMGatewayHighErrorRate", "LLMGatewayHighLatency", "LLMGatewayDeploymentCooledDown",
                  "LLMGatewayBudgetRefusals", "LLMGatewayTraceExportDropping", "LLMGatewayDatabaseDown",
                  "LLMGatewayRedisDown"}
        self.assertFalse(wanted - set(names), "alerts missing")

    def test_metric_name_extraction(self):
        self.assertEqual(promql_metric_names(
            'histogram_quantile(0.99, sum by (job, le) (rate(a_metric_bucket{job=~"$job", le!="+Inf"}[$__rate_interval])))'),
            {"a_metric_bucket"})
        self.assertEqual(promql_metric_names(
            'sum without (instance) (rate(x_total[5m] offset 1h)) / on (job) group_left (model) y > bool 1e3'),
            {"x_total", "y"})
        self.assertEqual(promql_metric_names('llm:ratio:rate5m > 0.05 and absent(up{job="a"}) unless z'),
                         {"llm:ratio:rate5m", "up", "z"})

    # ------------------------------------------------------------------ against the gateway

    def used_metric_names(self):
        """name -> where it is used, for every metric the dashboard and the rules query."""
        recorded = {r["name"] for r in self.rules if r["kind"] == "record"}
        used = {}
        for where, expr in dashboard_queries(self.dash):
            for n in promql_metric_names(expr):
                used.setdefault(n, []).append(f"dashboard {where}")
        for r in self.rules:
            for n in promql_metric_names(r["expr"]):
                used.setdefault(n, []).append(f"rule {r['name']}")
        for n in recorded | NOT_FROM_THE_GATEWAY:
            used.pop(n, None)
        return used

    def test_every_metric_used_is_exported(self):
        """Starts the mock, PostgreSQL, Redis and a gateway configured so that every metric
        family exists (a master key, a deployment, a database for llm_gateway_database_up,
        Redis for llm_gateway_redis_*, the OTLP exporter on a closed port for the trace
        export metrics), sends a few requests and compares the scrape with what the
        dashboard and the rules query."""
        used = self.used_metric_names()
        self.assertGreater(len(used), 20)
        tmp = TempDir()
        procs = []
        pg = redis = None
        try:
            pg = Postgres(tmp.path)
            redis = Redis(tmp.path)
            mock = Mock(tmp.path)
            procs.append(mock)
            config = f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/upstream-gpt, api_base: {mock.base}}}
    model_info: {{input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}}
general_settings:
  master_key: {MASTER}
  database_url: {pg.url}
litellm_settings: {{callbacks: ["otel"]}}
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis.port}
gateway_settings:
  spend_flush_interval: 0.2
  spend_spool_path: {tmp.path}/spend.spool
"""
            gw = Gateway(tmp.path, config,
                         env={"TMPDIR": tmp.path, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
            procs.append(gw)

            status, _, key, raw = gw.post_json("/key/generate", {"key_alias": "obs", "max_budget": 1, "rpm_limit": 2},
                                               ADMIN)
            self.assertEqual(status, 200, raw)
            user = {"authorization": f"Bearer {key['key']}"}
            statuses = [gw.post_json("/v1/chat/completions", chat(), user)[0] for _ in range(3)]
            self.assertEqual(statuses, [200, 200, 429])  # the key's rpm_limit
            status, _, events, _ = gw.stream("/v1/chat/completions", chat(stream=True), ADMIN)
            self.assertEqual(status, 200)
            self.assertTrue(events)
            self.assertEqual(gw.post_json("/v1/chat/completions", chat(), {"authorization": "Bearer sk-nope"})[0], 401)

            status, _, raw = gw.request("GET", "/metrics", timeout=10 * SLOW)
            self.assertEqual(status, 200)
            exported = exposition_names(raw.decode())
            self.assertIn("litellm_request_total_latency_metric_bucket", exported)

            missing = {n: w for n, w in used.items() if n not in exported}
            if missing:
                self.fail("used by the dashboard or the rules but not in /metrics:\n" +
                          "\n".join(f"  {n}  (used by: {'; '.join(w)})" for n, w in sorted(missing.items())))
        finally:
            for p in reversed(procs):
                p.terminate()
            if redis:
                redis.stop()
            if pg:
                pg.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
