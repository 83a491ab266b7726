"""The Helm chart (deploy/helm/llm-gateway), rendered without Helm.

Helm is not installable here, so tests/deploy/helmrender (Go text/template + Sprig, the
way `helm template` renders) is built into $GW_DEPLOY_WORK and renders the chart with the
default values, with values-production.yaml and with targeted overrides. The rendered
objects are checked for what Kubernetes requires and for what the chart promises; the
rendered gateway config is validated by the real binary ($GW_GATEWAY_BIN --check-config).

Environment: GW_GATEWAY_BIN (llm-gateway), GW_DEPLOY_WORK (writable, for the Go build).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CHART = os.path.join(REPO, "deploy", "helm", "llm-gateway")
RULES = os.path.join(REPO, "deploy", "prometheus", "llm-gateway-rules.yaml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "llm-gateway-dashboard.json")
RENDERER_SRC = os.path.join(HERE, "helmrender")

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_state = {}


def setUpModule():
    work = os.environ.get("GW_DEPLOY_WORK")
    if not work:
        work = tempfile.mkdtemp(prefix="gw-helm-work-")
        _state["own_work"] = work
    os.makedirs(work, exist_ok=True)
    out_dir = os.path.join(work, "helmrender")
    os.makedirs(out_dir, exist_ok=True)
    binary = os.path.join(out_dir, "helmrender")
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=os.path.join(work, "gopath") + ":/usr/share/gocode",
        GOCACHE=os.path.join(work, "gocache"),
        GOFLAGS="",
        CGO_ENABLED="0",
    )
    if shutil.which("go") is None:
        raise RuntimeError("go is not installed (Debian package golang-go)")
    r = subprocess.run(
        ["go", "build", "-o", binary, "."],
        cwd=RENDERER_SRC, env=env, capture_output=True, text=True, timeout=300,
    )
    if r.returncode != 0:
        raise RuntimeError("building helmrender failed:\n" + r.stdout + r.stderr)
    _state["renderer"] = binary
    gw = os.environ.get("GW_GATEWAY_BIN") or os.path.join(
        REPO, "build", "dev", "apps", "gateway", "llm-gateway")
    _state["gateway"] = gw
    _state["tmp"] = tempfile.mkdtemp(prefix="gw-helm-test-")


def tearDownModule():
    shutil.rmtree(_state.pop("tmp", ""), ignore_errors=True)
    if "own_work" in _state:
        shutil.rmtree(_state.pop("own_work"), ignore_errors=True)


# ------------------------------------------------------------------ helpers

def run_renderer(chart, values=(), release="gw", namespace="llm", extra=(), json_out=True):
    """Runs helmrender; values are file paths or dicts (written to temp files)."""
    args = [_state["renderer"], chart, "--release-name", release, "--namespace", namespace]
    for i, v in enumerate(values):
        if isinstance(v, dict):
            fd, p = tempfile.mkstemp(suffix=".yaml", dir=_state["tmp"])
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(v, f)
            v = p
        args += ["-f", v]
    args += list(extra)
    if json_out:
        args.append("--json")
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def render(values=(), release="gw", namespace="llm", extra=()):
    r = run_renderer(CHART, values, release, namespace, extra)
    if r.returncode != 0:
        raise AssertionError("helmrender failed: " + r.stderr)
    return json.loads(r.stdout)


def docs_of(entries):
    return [e["doc"] for e in entries]


def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def only(docs, kind, name=None):
    found = find(docs, kind, name)
    if len(found) != 1:
        raise AssertionError("expected one %s %s, got %d" % (kind, name or "", len(found)))
    return found[0]


def hook_info(doc):
    ann = doc["metadata"].get("annotations") or {}
    events = [h.strip() for h in str(ann.get("helm.sh/hook", "")).split(",") if h.strip()]
    return events, int(ann.get("helm.sh/hook-weight", "0")), ann.get("helm.sh/hook-delete-policy", "")


def non_hook(docs):
    return [d for d in docs if not hook_info(d)[0]]


def gateway_deployment(docs):
    return only(docs, "Deployment")


def gateway_container(deploy):
    cs = [c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"]
    if len(cs) != 1:
        raise AssertionError("no container named gateway")
    return cs[0]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def read_text(path):
    with open(path) as f:
        return f.read()


def chart_values():
    return load_yaml(os.path.join(CHART, "values.yaml"))


def prestop_seconds(container):
    pre = (container.get("lifecycle") or {}).get("preStop")
    if not pre:
        return 0
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    cmd = pre["exec"]["command"]
    if cmd[0] not in ("sleep", "/bin/sleep", "/usr/bin/sleep") or len(cmd) != 2:
        raise AssertionError("preStop exec is not a plain sleep: %r" % cmd)
    return int(cmd[1])


def rendered_config(docs, deploy):
    """The config.yaml the pods get: (configmap name, key, parsed config or None)."""
    vols = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    c = gateway_container(deploy)
    args = c["args"]
    cfg_path = args[args.index("--config") + 1]
    mount = [m for m in c["volumeMounts"] if cfg_path.startswith(m["mountPath"].rstrip("/") + "/")]
    if len(mount) != 1:
        raise AssertionError("--config %s is not under exactly one volume mount" % cfg_path)
    vol = vols[mount[0]["name"]]
    if "configMap" not in vol:
        raise AssertionError("the --config file is not from a ConfigMap volume")
    rel = cfg_path[len(mount[0]["mountPath"].rstrip("/")) + 1:]
    key = rel
    for item in vol["configMap"].get("items") or []:
        if item["path"] == rel:
            key = item["key"]
            break
    else:
        if vol["configMap"].get("items"):
            raise AssertionError("no item of the config volume is mounted at %s" % rel)
    name = vol["configMap"]["name"]
    cms = find(non_hook(docs), "ConfigMap", name)
    if not cms:
        return name, key, None
    data = cms[0]["data"]
    if key not in data:
        raise AssertionError("ConfigMap %s has no key %s" % (name, key))
    return name, key, yaml.safe_load(data[key])


def write_tmp(text, suffix=".yaml"):
    fd, p = tempfile.mkstemp(suffix=suffix, dir=_state["tmp"])
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return p


# ------------------------------------------------------------------ common checks

class ChartChecks:
    """Checks every rendering must pass. existing_secret / existing_configmap: names the
    user creates before installing (not rendered by the chart)."""

    def check_release(self, entries, existing_secret=None, existing_configmap=None, drain=None):
        docs = docs_of(entries)
        self.assertTrue(docs, "nothing rendered")
        self.check_objects(docs)
        deploy = gateway_deployment(docs)
        self.check_deployment(docs, deploy)
        self.check_service(docs, deploy)
        self.check_hpa_pdb(docs, deploy)
        self.check_probes(deploy)
        self.check_security(deploy)
        self.check_secret_refs(docs, existing_secret)
        self.check_migrate_job(docs, deploy, existing_secret)
        self.check_config(docs, deploy, existing_configmap, drain)
        self.check_grace(docs, deploy, drain)
        return docs, deploy

    def check_objects(self, docs):
        seen = set()
        for d in docs:
            for f in ("apiVersion", "kind", "metadata"):
                self.assertIn(f, d, ("a document has no %s: %r" % (f, d))[:300])
            name = d["metadata"].get("name")
            self.assertTrue(name, "%s without metadata.name" % d["kind"])
            self.assertLessEqual(len(name), 63, "%s name too long: %s" % (d["kind"], name))
            self.assertRegex(name, DNS1123_LABEL, "%s name is not DNS-1123: %s" % (d["kind"], name))
            key = (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), name)
            self.assertNotIn(key, seen, "rendered twice: %r" % (key,))
            seen.add(key)
            for where in (d["metadata"].get("labels") or {},):
                for k, v in where.items():
                    self.assertIsInstance(v, str, "label %s of %s is not a string" % (k, name))
                    self.assertLessEqual(len(v), 63, "label %s=%s too long" % (k, v))
                    self.assertRegex(v, LABEL_VALUE, "label value %s=%s invalid" % (k, v))
            for k, v in (d["metadata"].get("annotations") or {}).items():
                self.assertIsInstance(v, str, "annotation %s of %s is not a string" % (k, name))
            if d["kind"] == "Secret":
                for k, v in (d.get("data") or {}).items():
                    base64.b64decode(v, validate=True)
            if d["kind"] in ("ConfigMap", "Secret"):
                for k, v in (d.get("data") or {}).items():
                    self.assertIsInstance(v, str, "%s %s key %s is not a string" % (d["kind"], name, k))

    def check_pod_spec(self, spec, what):
        self.assertTrue(spec.get("containers"), "%s has no containers" % what)
        vols = {v["name"] for v in spec.get("volumes") or []}
        for c in spec["containers"]:
            self.assertTrue(c.get("name"), "%s: container without name" % what)
            self.assertTrue(c.get("image"), "%s: container %s without image" % (what, c.get("name")))
            self.assertNotIn(":None", c["image"])
            names = [e["name"] for e in c.get("env") or []]
            self.assertEqual(len(names), len(set(names)), "%s: duplicate env %r" % (what, names))
            for n in names:
                self.assertRegex(n, ENV_NAME)
            for m in c.get("volumeMounts") or []:
                self.assertIn(m["name"], vols, "%s: mount of unknown volume %s" % (what, m["name"]))

    def check_deployment(self, docs, deploy):
        self.assertEqual(deploy["apiVersion"], "apps/v1")
        sel = deploy["spec"]["selector"]["matchLabels"]
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(sel)
        self.assertTrue(matches(sel, labels), "Deployment selector %r does not match %r" % (sel, labels))
        self.check_pod_spec(deploy["spec"]["template"]["spec"], "Deployment")
        c = gateway_container(deploy)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertIn("http", ports)
        args = c["args"]
        self.assertEqual(str(ports["http"]), args[args.index("--port") + 1],
                         "--port differs from the container port")
        # Pods of other workloads (the migrate Job) must not be taken for gateway pods.
        for job in find(docs, "Job"):
            self.assertFalse(matches(sel, job["spec"]["template"]["metadata"]["labels"]),
                             "the Deployment's selector matches the migrate Job's pods")
        for tsc in deploy["spec"]["template"]["spec"].get("topologySpreadConstraints") or []:
            self.assertTrue(matches(tsc["labelSelector"]["matchLabels"], labels))

    def check_service(self, docs, deploy):
        svc = only(docs, "Service")
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        sel = svc["spec"]["selector"]
        self.assertTrue(sel and matches(sel, labels), "Service selector does not match the pods")
        for job in find(docs, "Job"):
            self.assertFalse(matches(sel, job["spec"]["template"]["metadata"]["labels"]),
                             "the Service would send traffic to migrate Job pods")
        c = gateway_container(deploy)
        port = [p for p in svc["spec"]["ports"] if p["name"] == "http"]
        self.assertEqual(len(port), 1, "no Service port named http")
        target = port[0]["targetPort"]
        cports = c["ports"]
        self.assertTrue(any(p["name"] == target or p["containerPort"] == target for p in cports),
                        "Service targetPort %r is not a container port" % target)

    def check_hpa_pdb(self, docs, deploy):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        for hpa in find(docs, "HorizontalPodAutoscaler"):
            self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
            ref = hpa["spec"]["scaleTargetRef"]
            self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"]),
                             ("apps/v1", "Deployment", deploy["metadata"]["name"]))
            self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
            self.assertTrue(hpa["spec"]["metrics"])
            self.assertNotIn("replicas", deploy["spec"], "replicas set while the HPA owns them")
        for pdb in find(docs, "PodDisruptionBudget"):
            self.assertEqual(pdb["apiVersion"], "policy/v1")
            sel = pdb["spec"]["selector"]["matchLabels"]
            self.assertTrue(sel and matches(sel, labels), "PDB selector does not match the pods")
            self.assertEqual(len({"minAvailable", "maxUnavailable"} & set(pdb["spec"])), 1)
            for job in find(docs, "Job"):
                self.assertFalse(matches(sel, job["spec"]["template"]["metadata"]["labels"]))

    def check_probes(self, deploy):
        c = gateway_container(deploy)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        want = {"livenessProbe": "/health/liveliness", "readinessProbe": "/health/readiness",
                "startupProbe": "/health/liveliness"}
        for probe, path in want.items():
            self.assertIn(probe, c, "no %s" % probe)
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], path, probe)
            self.assertIn(get["port"], list(ports) + list(ports.values()),
                          "%s port %r is not the container's" % (probe, get["port"]))

    def check_container_security(self, spec, c, what):
        psc = spec.get("securityContext") or {}
        csc = c.get("securityContext") or {}

        def eff(k):
            return csc[k] if k in csc else psc.get(k)
        self.assertIs(eff("runAsNonRoot"), True, what)
        self.assertNotEqual(eff("runAsUser"), 0, what)
        self.assertIs(csc.get("readOnlyRootFilesystem"), True, what)
        self.assertIs(csc.get("allowPrivilegeEscalation"), False, what)
        self.assertNotEqual(csc.get("privileged"), True, what)
        self.assertIn("ALL", (csc.get("capabilities") or {}).get("drop") or [], what)
        self.assertFalse((csc.get("capabilities") or {}).get("add"), what)
        self.assertEqual((eff("seccompProfile") or {}).get("type"), "RuntimeDefault", what)
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        tmp = [m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
        self.assertEqual(len(tmp), 1, "%s: /tmp is not a volume" % what)
        self.assertIn("emptyDir", vols[tmp[0]["name"]], "%s: /tmp is not an emptyDir" % what)
        env = {e["name"]: e.get("value") for e in c.get("env") or []}
        self.assertEqual(env.get("TMPDIR", "/tmp"), "/tmp")

    def check_security(self, deploy):
        spec = deploy["spec"]["template"]["spec"]
        self.check_container_security(spec, gateway_container(deploy), "gateway")
        self.assertIs(spec.get("automountServiceAccountToken"), False)

    def secret_refs(self, spec):
        for c in spec["containers"]:
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield e["name"], ref["name"], ref["key"]

    def check_secret_refs(self, docs, existing_secret):
        secrets = {d["metadata"]["name"]: d for d in find(docs, "Secret")}
        for w in find(docs, "Deployment") + find(docs, "Job"):
            for env, name, key in self.secret_refs(w["spec"]["template"]["spec"]):
                if name in secrets:
                    self.assertIn(key, secrets[name].get("data") or {},
                                  "%s: %s -> secret %s has no key %s" % (w["kind"], env, name, key))
                else:
                    self.assertEqual(name, existing_secret,
                                     "%s: %s refers to secret %s, neither rendered nor the existing one"
                                     % (w["kind"], env, name))
            for ef in [x for c in w["spec"]["template"]["spec"]["containers"] for x in c.get("envFrom") or []]:
                if "secretRef" in ef:
                    self.assertIn(ef["secretRef"]["name"], list(secrets) + [existing_secret])

    def check_migrate_job(self, docs, deploy, existing_secret):
        c = gateway_container(deploy)
        has_db = any(e["name"] == "DATABASE_URL" for e in c.get("env") or [])
        jobs = find(docs, "Job")
        self.assertEqual(len(jobs), 1 if has_db else 0,
                         "a migrate Job is expected exactly when the gateway has DATABASE_URL")
        for job in jobs:
            events, weight, policy = hook_info(job)
            self.assertIn("pre-install", events)
            self.assertIn("pre-upgrade", events)
            self.assertIn("before-hook-creation", policy)
            spec = job["spec"]["template"]["spec"]
            self.check_pod_spec(spec, "Job")
            self.assertIn(spec["restartPolicy"], ("Never", "OnFailure"))
            (jc,) = spec["containers"]
            self.assertEqual(jc["image"], c["image"])
            self.assertEqual(jc.get("command"), c.get("command"))
            self.assertEqual(jc["args"][0], "migrate", "the Job does not run `migrate`")
            self.check_container_security(spec, jc, "migrate")
            refs = {env: (name, key) for env, name, key in self.secret_refs(spec)}
            self.assertIn("DATABASE_URL", refs)
            # Everything the Job's pod needs must exist when pre-install hooks run: the
            # chart's normal resources do not yet.
            needed = [("Secret", n) for n, _ in refs.values()]
            needed += [("Secret", v["secret"]["secretName"]) for v in spec.get("volumes") or [] if "secret" in v]
            needed += [("ConfigMap", v["configMap"]["name"]) for v in spec.get("volumes") or [] if "configMap" in v]
            if spec.get("serviceAccountName"):
                needed.append(("ServiceAccount", spec["serviceAccountName"]))
            for kind, name in needed:
                rendered = find(docs, kind, name)
                if not rendered:
                    self.assertEqual(name, existing_secret if kind == "Secret" else None,
                                     "the Job needs %s %s that nobody creates" % (kind, name))
                    continue
                ok = False
                for d in rendered:
                    ev, w, pol = hook_info(d)
                    if "pre-install" in ev and "pre-upgrade" in ev and w < weight:
                        self.assertIn("before-hook-creation", pol)
                        ok = True
                self.assertTrue(ok, "%s %s does not exist yet when the pre-install Job runs "
                                    "(not a hook with a lower weight)" % (kind, name))
            # The hook copy holds the same DATABASE_URL as the gateway's source.
            name, key = refs["DATABASE_URL"]
            gw = [(n, k) for e, n, k in self.secret_refs(deploy["spec"]["template"]["spec"]) if e == "DATABASE_URL"]
            hook_secret = find(docs, "Secret", name)
            if hook_secret:
                (gn, gk), = gw
                main = only(non_hook(docs), "Secret", gn)
                self.assertEqual(hook_secret[0]["data"][key], main["data"][gk])
            else:
                self.assertEqual(gw, [(name, key)])

    def check_config(self, docs, deploy, existing_configmap, drain):
        name, key, cfg = rendered_config(docs, deploy)
        if existing_configmap:
            self.assertEqual(name, existing_configmap)
            self.assertIsNone(cfg, "the chart rendered a ConfigMap although an existing one is used")
            return
        self.assertIsNotNone(cfg, "the --config ConfigMap %s is not rendered" % name)
        self.assertIn("model_list", cfg)
        if drain is not None:
            self.assertEqual(cfg["gateway_settings"]["drain_timeout"], drain)

    def check_grace(self, docs, deploy, drain):
        spec = deploy["spec"]["template"]["spec"]
        _, _, cfg = rendered_config(docs, deploy)
        if cfg is not None:
            drain_cfg = cfg["gateway_settings"]["drain_timeout"]
            if drain is not None:
                self.assertEqual(drain_cfg, drain)
            drain = drain_cfg
        self.assertIsNotNone(drain)
        pre = prestop_seconds(gateway_container(deploy))
        self.assertGreater(pre, 0, "no preStop sleep")
        self.assertGreaterEqual(spec["terminationGracePeriodSeconds"], pre + drain,
                                "terminationGracePeriodSeconds does not cover preStop + drain_timeout")


# ------------------------------------------------------------------ tests

class DefaultValues(ChartChecks, unittest.TestCase):
    def test_default_render(self):
        v = chart_values()
        entries = render()
        docs, deploy = self.check_release(entries, drain=v["gracefulShutdown"]["drainTimeoutSeconds"])
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, sorted(["ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment",
                                        "HorizontalPodAutoscaler", "PodDisruptionBudget"]))
        c = gateway_container(deploy)
        self.assertEqual(c["image"], "%s:%s" % (v["image"]["repository"],
                                                 load_yaml(os.path.join(CHART, "Chart.yaml"))["appVersion"]))
        secret = only(docs, "Secret")
        key = base64.b64decode(secret["data"]["LITELLM_MASTER_KEY"]).decode()
        self.assertTrue(key.startswith("sk-") and len(key) > 20, "generated master key %r" % key)
        spec = deploy["spec"]["template"]["spec"]
        self.assertEqual(spec["terminationGracePeriodSeconds"],
                         sum(v["gracefulShutdown"][k] for k in
                             ("preStopSleepSeconds", "drainTimeoutSeconds", "marginSeconds")))
        zones = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"] == "topology.kubernetes.io/zone"]
        hosts = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"] == "kubernetes.io/hostname"]
        self.assertEqual((len(zones), len(hosts)), (1, 1))
        ann = deploy["spec"]["template"]["metadata"]["annotations"]
        self.assertRegex(ann["checksum/config"], r"^[0-9a-f]{64}$")
        self.assertRegex(ann["checksum/secret"], r"^[0-9a-f]{64}$")
        sa = only(docs, "ServiceAccount")
        self.assertEqual(spec["serviceAccountName"], sa["metadata"]["name"])
        self.assertNotIn("eks.amazonaws.com/role-arn", sa["metadata"].get("annotations") or {})
        svc = only(docs, "Service")
        self.assertEqual(svc["spec"]["ports"][0]["port"], 4000)

    def test_yaml_output_like_helm(self):
        r = run_renderer(CHART, json_out=False, release="gw")
        self.assertEqual(r.returncode, 0, r.stderr)
        sources = re.findall(r"^# Source: (.*)$", r.stdout, re.M)
        self.assertIn("llm-gateway/templates/deployment.yaml", sources)
        self.assertNotIn("llm-gateway/templates/NOTES.txt", sources)
        self.assertFalse([s for s in sources if os.path.basename(s).startswith("_")])
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        self.assertEqual(len(docs), len(sources))
        self.assertEqual(json.dumps(sorted(d["kind"] for d in docs)),
                         json.dumps(sorted(d["kind"] for d in docs_of(render()))))
        kinds = [d["kind"] for d in docs]
        self.assertLess(kinds.index("Secret"), kinds.index("Deployment"))   # Helm's install order
        self.assertLess(kinds.index("ConfigMap"), kinds.index("Deployment"))

    def test_production_values(self):
        prod_file = os.path.join(CHART, "values-production.yaml")
        prod = load_yaml(prod_file)
        entries = render([prod_file], release="llm-gateway", namespace="llm-gateway")
        existing = prod["secrets"]["existingSecret"]
        docs, deploy = self.check_release(entries, existing_secret=existing,
                                          drain=prod["gracefulShutdown"]["drainTimeoutSeconds"])
        self.assertFalse(find(docs, "Secret"), "the chart made a Secret although existingSecret is set")
        sa = only(docs, "ServiceAccount")
        self.assertEqual(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
                         prod["serviceAccount"]["irsaRoleArn"])
        self.assertEqual(deploy["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"])
        c = gateway_container(deploy)
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["REDIS_HOST"]["value"], prod["redis"]["host"])
        self.assertEqual(env["REDIS_PORT"]["value"], str(prod["redis"]["port"]))
        for name in ("LITELLM_MASTER_KEY", "DATABASE_URL", "AZURE_CLIENT_SECRET"):
            self.assertEqual(env[name]["valueFrom"]["secretKeyRef"]["name"], existing, name)
        for name, value in prod["env"].items():
            self.assertEqual(env[name]["value"], str(value))
        job = only(docs, "Job")
        jenv = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertEqual(jenv["DATABASE_URL"]["valueFrom"]["secretKeyRef"],
                         {"name": existing, "key": prod["secrets"]["existingSecretKeys"]["databaseUrl"]})
        spec = deploy["spec"]["template"]["spec"]
        g = prod["gracefulShutdown"]
        self.assertEqual(spec["terminationGracePeriodSeconds"],
                         g["preStopSleepSeconds"] + g["drainTimeoutSeconds"] + g["marginSeconds"])
        self.assertEqual(prestop_seconds(c), g["preStopSleepSeconds"])
        zone = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"] == "topology.kubernetes.io/zone"]
        self.assertEqual(zone[0]["whenUnsatisfiable"], "DoNotSchedule")
        cfg = rendered_config(docs, deploy)[2]
        models = {m["litellm_params"]["model"].split("/")[0] for m in cfg["model_list"]}
        self.assertEqual(models, {"bedrock", "azure"})
        for kind in ("ServiceMonitor", "PrometheusRule", "Ingress", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget"):
            self.assertEqual(len(find(docs, kind)), 1, kind)
        self.assertEqual(only(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"],
                         prod["autoscaling"]["minReplicas"])
        ing = only(docs, "Ingress")
        self.assertEqual(ing["spec"]["ingressClassName"], "alb")


class Overrides(ChartChecks, unittest.TestCase):
    def test_existing_secret_configmap_monitoring_ingress_no_hpa(self):
        vals = {
            "secrets": {"existingSecret": "my-secrets",
                        "existingSecretKeys": {"masterKey": "master", "databaseUrl": "db-url",
                                               "redisPassword": "", "providerKeys": ["OPENAI_API_KEY"]}},
            "config": {"existingConfigMap": "my-config", "existingConfigMapKey": "litellm.yaml"},
            "autoscaling": {"enabled": False},
            "replicaCount": 4,
            "ingress": {"enabled": True, "className": "nginx",
                        "hosts": [{"host": "gw.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                        "tls": [{"secretName": "gw-tls", "hosts": ["gw.example.com"]}]},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
                        "grafanaDashboard": {"enabled": True}},
        }
        entries = render([vals])
        drain = chart_values()["gracefulShutdown"]["drainTimeoutSeconds"]
        docs, deploy = self.check_release(entries, existing_secret="my-secrets",
                                          existing_configmap="my-config", drain=drain)
        self.assertFalse(find(docs, "Secret"))
        self.assertFalse(find(docs, "HorizontalPodAutoscaler"))
        self.assertEqual(deploy["spec"]["replicas"], 4)
        refs = {e: (n, k) for e, n, k in self.secret_refs(deploy["spec"]["template"]["spec"])}
        self.assertEqual(refs, {"LITELLM_MASTER_KEY": ("my-secrets", "master"),
                                "DATABASE_URL": ("my-secrets", "db-url"),
                                "OPENAI_API_KEY": ("my-secrets", "OPENAI_API_KEY")})
        vol = [v for v in deploy["spec"]["template"]["spec"]["volumes"] if "configMap" in v][0]
        self.assertEqual(vol["configMap"]["name"], "my-config")
        self.assertEqual(vol["configMap"]["items"], [{"key": "litellm.yaml", "path": "config.yaml"}])
        self.assertNotIn("checksum/config", deploy["spec"]["template"]["metadata"].get("annotations") or {})
        self.assertNotIn("checksum/secret", deploy["spec"]["template"]["metadata"].get("annotations") or {})
        # Migrations read the existing Secret.
        job = only(docs, "Job")
        self.assertEqual([(n, k) for e, n, k in self.secret_refs(job["spec"]["template"]["spec"])],
                         [("my-secrets", "db-url")])
        # Ingress -> Service port http.
        svc = only(docs, "Service")
        ing = only(docs, "Ingress")
        self.assertEqual(ing["apiVersion"], "networking.k8s.io/v1")
        backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        self.assertEqual(backend["name"], svc["metadata"]["name"])
        self.assertIn(backend["port"].get("name"), [p["name"] for p in svc["spec"]["ports"]])
        self.assertEqual(ing["spec"]["tls"], [{"hosts": ["gw.example.com"], "secretName": "gw-tls"}])
        self.assertEqual(ing["spec"]["rules"][0]["host"], "gw.example.com")
        # ServiceMonitor -> the Service, port http, /metrics, job relabelled for the rules.
        sm = only(docs, "ServiceMonitor")
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")
        self.assertTrue(matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]))
        ep = sm["spec"]["endpoints"][0]
        self.assertEqual((ep["port"], ep["path"]), ("http", "/metrics"))
        self.assertIn({"action": "replace", "targetLabel": "job", "replacement": "llm-gateway"},
                      ep["relabelings"])
        with open(RULES) as f:
            rules = yaml.safe_load(f)
        self.assertTrue(any('job="llm-gateway"' in r.get("expr", "") for g in rules["groups"] for r in g["rules"]),
                        "the rules no longer expect job=\"llm-gateway\": change metrics.serviceMonitor.jobName")
        # PrometheusRule = the repo's rules.
        pr = only(docs, "PrometheusRule")
        self.assertEqual(pr["metadata"]["labels"]["release"], "prom")
        self.assertEqual(pr["spec"]["groups"], rules["groups"])
        # Dashboard ConfigMap = the repo's dashboard, with the sidecar's label.
        dash = only(docs, "ConfigMap")
        self.assertEqual(dash["metadata"]["labels"]["grafana_dashboard"], "1")
        (djson,) = dash["data"].values()
        with open(DASHBOARD) as f:
            self.assertEqual(json.loads(djson), json.load(f))

    def test_dashboard_label_configurable(self):
        docs = docs_of(render([{"metrics": {"grafanaDashboard": {
            "enabled": True, "label": "my_dashboards", "labelValue": "yes", "namespace": "monitoring",
            "annotations": {"grafana_folder": "LLM"}}}}]))
        dash = [d for d in find(docs, "ConfigMap") if "my_dashboards" in d["metadata"]["labels"]]
        self.assertEqual(len(dash), 1)
        self.assertEqual(dash[0]["metadata"]["labels"]["my_dashboards"], "yes")
        self.assertNotIn("grafana_dashboard", dash[0]["metadata"]["labels"])
        self.assertEqual(dash[0]["metadata"]["namespace"], "monitoring")
        self.assertEqual(dash[0]["metadata"]["annotations"], {"grafana_folder": "LLM"})

    def test_redis_tls(self):
        for tls, verify, want in ((True, True, {"REDIS_SSL": "true"}),
                                  (True, False, {"REDIS_SSL": "true", "REDIS_SSL_CERT_REQS": "none"}),
                                  (False, False, {})):
            entries = render([{"redis": {"host": "cache.example", "tls": tls, "tlsVerify": verify}}])
            _, deploy = self.check_release(entries)
            env = {e["name"]: e.get("value") for e in gateway_container(deploy)["env"]}
            got = {k: v for k, v in env.items() if k.startswith("REDIS_SSL")}
            self.assertEqual(got, want, (tls, verify))

    def test_chart_secret_with_database_and_provider_keys(self):
        vals = {"secrets": {"masterKey": "sk-test-master", "databaseUrl": "postgresql://u:p@db:5432/gw",
                            "redisPassword": "rpw",
                            "providerKeys": {"OPENAI_API_KEY": "sk-openai", "AZURE_CLIENT_SECRET": "az"}},
                "redis": {"host": "redis.example", "port": 6380, "username": "gw", "db": 3},
                "migrations": {"hookWeight": 5}}
        entries = render([vals])
        docs, deploy = self.check_release(entries)
        main = only(non_hook(docs), "Secret")
        data = {k: base64.b64decode(v).decode() for k, v in main["data"].items()}
        self.assertEqual(data, {"LITELLM_MASTER_KEY": "sk-test-master",
                                "DATABASE_URL": "postgresql://u:p@db:5432/gw", "REDIS_PASSWORD": "rpw",
                                "OPENAI_API_KEY": "sk-openai", "AZURE_CLIENT_SECRET": "az"})
        c = gateway_container(deploy)
        refs = {e: (n, k) for e, n, k in self.secret_refs(deploy["spec"]["template"]["spec"])}
        self.assertEqual(set(refs), set(data))
        self.assertTrue(all(n == main["metadata"]["name"] for n, _ in refs.values()))
        env = {e["name"]: e.get("value") for e in c["env"]}
        self.assertEqual((env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_USERNAME"], env["REDIS_DB"]),
                         ("redis.example", "6380", "gw", "3"))
        # The Job reads a hook Secret created before it (lower weight), not the main Secret.
        job = only(docs, "Job")
        self.assertEqual(hook_info(job)[1], 5)
        (jref,) = [(n, k) for e, n, k in self.secret_refs(job["spec"]["template"]["spec"]) if e == "DATABASE_URL"]
        self.assertNotEqual(jref[0], main["metadata"]["name"])
        hook = only(docs, "Secret", jref[0])
        events, weight, _ = hook_info(hook)
        self.assertEqual(sorted(events), ["pre-install", "pre-upgrade"])
        self.assertLess(weight, 5)
        self.assertEqual(set(hook["data"]), {"DATABASE_URL"}, "the hook Secret should hold only DATABASE_URL")
        self.assertNotIn("serviceAccountName", job["spec"]["template"]["spec"])

    def test_migrations_disabled_or_no_database(self):
        docs = docs_of(render([{"secrets": {"databaseUrl": "postgresql://x"}, "migrations": {"enabled": False}}]))
        self.assertFalse(find(docs, "Job"))
        self.assertEqual(len(find(docs, "Secret")), 1)
        docs = docs_of(render())
        self.assertFalse(find(docs, "Job"))

    def test_irsa_and_service_account(self):
        arn = "arn:aws:iam::123456789012:role/bedrock"
        docs = docs_of(render([{"serviceAccount": {"irsaRoleArn": arn, "annotations": {"x": "y"}}}]))
        sa = only(docs, "ServiceAccount")
        self.assertEqual(sa["metadata"]["annotations"], {"eks.amazonaws.com/role-arn": arn, "x": "y"})
        docs = docs_of(render([{"serviceAccount": {"create": False, "name": "pre-made"}}]))
        self.assertFalse(find(docs, "ServiceAccount"))
        self.assertEqual(gateway_deployment(docs)["spec"]["template"]["spec"]["serviceAccountName"], "pre-made")

    def test_graceful_shutdown_values_line_up(self):
        for pre, drain, margin, kube, mode in ((15, 90, 7, "v1.31.0", "sleep"),
                                               (5, 300, 0, "v1.28.4", "exec")):
            entries = render([{"gracefulShutdown": {"preStopSleepSeconds": pre, "drainTimeoutSeconds": drain,
                                                    "marginSeconds": margin}}],
                             extra=["--kube-version", kube])
            docs, deploy = self.check_release(entries, drain=drain)
            c = gateway_container(deploy)
            self.assertIn(mode, c["lifecycle"]["preStop"])
            self.assertEqual(prestop_seconds(c), pre)
            self.assertEqual(deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
                             pre + drain + margin)
        docs = docs_of(render([{"gracefulShutdown": {"preStopSleepSeconds": 0}}]))
        self.assertNotIn("lifecycle", gateway_container(gateway_deployment(docs)))

    def test_checksums_roll_pods_on_changes(self):
        def ann(vals):
            d = gateway_deployment(docs_of(render(vals)))
            return d["spec"]["template"]["metadata"]["annotations"]
        base = ann([{"secrets": {"masterKey": "sk-a"}}])
        self.assertEqual(base, ann([{"secrets": {"masterKey": "sk-a"}}]), "checksums are not stable")
        more = {"config": {"inline": {"router_settings": {"num_retries": 3}}}, "secrets": {"masterKey": "sk-a"}}
        changed = ann([more])
        self.assertNotEqual(base["checksum/config"], changed["checksum/config"])
        self.assertEqual(base["checksum/secret"], changed["checksum/secret"])
        self.assertNotEqual(base["checksum/config"],
                            ann([{"secrets": {"masterKey": "sk-a"},
                                  "gracefulShutdown": {"drainTimeoutSeconds": 31}}])["checksum/config"])
        self.assertNotEqual(base["checksum/secret"], ann([{"secrets": {"masterKey": "sk-b"}}])["checksum/secret"])
        extra = ann([{"secrets": {"masterKey": "sk-a"}, "podAnnotations": {"team": "ml"}}])
        self.assertEqual(extra["team"], "ml")

    def test_config_values_merge_into_config(self):
        vals = {"config": {"inline": {"model_list": [{"model_name": "m", "litellm_params": {
            "model": "openai/m", "api_base": "http://mock:8090/v1", "rpm": 600000}}],
            "gateway_settings": {"io_threads": 3}, "general_settings": {"master_key": None}}}}
        docs, deploy = self.check_release(render([vals]), drain=30)
        cfg = rendered_config(docs, deploy)[2]
        self.assertEqual(cfg["gateway_settings"], {"io_threads": 3, "drain_timeout": 30})
        self.assertEqual(cfg["model_list"][0]["litellm_params"]["rpm"], 600000)
        self.assertNotIn("master_key", cfg["general_settings"] or {}, "a null value must delete the key")

    def test_pod_scheduling_and_extras(self):
        vals = {"nodeSelector": {"pool": "gw"}, "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}},
                "imagePullSecrets": [{"name": "regcred"}], "podLabels": {"team": "ml"},
                "extraEnv": [{"name": "LITELLM_LOG", "value": "DEBUG"}],
                "extraEnvFrom": [{"configMapRef": {"name": "more"}}],
                "extraVolumes": [{"name": "ca", "configMap": {"name": "ca-bundle"}}],
                "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}],
                "image": {"repository": "r.example/gw", "tag": "1.2.3"}, "extraArgs": ["--detailed_debug"],
                "numWorkers": 6, "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone",
                                                                "whenUnsatisfiable": "DoNotSchedule",
                                                                "labelSelector": {"matchLabels": {"x": "y"}}}]}
        docs = docs_of(render([vals]))
        deploy = gateway_deployment(docs)
        spec = deploy["spec"]["template"]["spec"]
        self.assertEqual(spec["nodeSelector"], {"pool": "gw"})
        self.assertEqual(spec["tolerations"], vals["tolerations"])
        self.assertEqual(spec["affinity"], vals["affinity"])
        self.assertEqual(spec["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual(spec["topologySpreadConstraints"], vals["topologySpreadConstraints"])
        self.assertEqual(deploy["spec"]["template"]["metadata"]["labels"]["team"], "ml")
        c = gateway_container(deploy)
        self.assertEqual(c["image"], "r.example/gw:1.2.3")
        self.assertIn({"name": "LITELLM_LOG", "value": "DEBUG"}, c["env"])
        self.assertEqual(c["envFrom"], [{"configMapRef": {"name": "more"}}])
        self.assertIn({"name": "ca", "mountPath": "/etc/ca"}, c["volumeMounts"])
        self.assertIn({"name": "ca", "configMap": {"name": "ca-bundle"}}, spec["volumes"])
        self.assertEqual(c["args"][-1], "--detailed_debug")
        self.assertEqual(c["args"][c["args"].index("--num_workers") + 1], "6")

    def test_long_release_name_fits(self):
        release = "a-very-long-release-name-that-is-fifty-three-chars-xx"[:53]   # Helm's limit
        vals = {"secrets": {"databaseUrl": "postgresql://x"},
                "metrics": {"grafanaDashboard": {"enabled": True}}}
        entries = render([vals], release=release)
        docs, deploy = self.check_release(entries)   # names <= 63, DNS-1123
        full = deploy["metadata"]["name"]
        self.assertEqual(len(full), 63)
        for kind, suffix in (("Job", "-migrate"), ("ConfigMap", "-config"), ("ConfigMap", "-dashboard")):
            self.assertEqual(len([d for d in find(docs, kind) if d["metadata"]["name"].endswith(suffix)]), 1,
                             "no %s named *%s" % (kind, suffix))

    def test_fullname_override_and_name_override(self):
        docs = docs_of(render([{"fullnameOverride": "edge-gw"}]))
        self.assertEqual(gateway_deployment(docs)["metadata"]["name"], "edge-gw")
        docs = docs_of(render(release="llm-gateway-prod"))
        self.assertEqual(gateway_deployment(docs)["metadata"]["name"], "llm-gateway-prod")


class GatewayAcceptsConfig(unittest.TestCase):
    """The rendered config.yaml passes the real binary's --check-config."""

    CASES = {
        "default": [],
        "production": [os.path.join(CHART, "values-production.yaml")],
        "overrides": [{"gracefulShutdown": {"drainTimeoutSeconds": 90},
                       "config": {"inline": {
                           "model_list": [{"model_name": "m", "litellm_params": {
                               "model": "openai/m", "api_base": "http://mock:8090/v1", "rpm": 600000,
                               "api_key": "os.environ/OPENAI_API_KEY"},
                               "model_info": {"input_cost_per_token": 0.00000015, "output_cost_per_token": 0}},
                               {"model_name": "n", "litellm_params": {"model": "openai/n",
                                                                      "api_base": "http://mock:8090/v1"}}],
                           "router_settings": {"num_retries": 2, "fallbacks": [{"m": ["n"]}]},
                           "gateway_settings": {"io_threads": 3, "spend_spool_path": "/tmp/spool.jsonl"}}}}],
    }

    def test_check_config(self):
        gw = _state["gateway"]
        self.assertTrue(os.access(gw, os.X_OK), "GW_GATEWAY_BIN %s is not executable" % gw)
        procs = {}
        try:
            for name, values in self.CASES.items():
                docs = docs_of(render(values))
                _, _, cfg = rendered_config(docs, gateway_deployment(docs))
                path = write_tmp(yaml.safe_dump(cfg))
                procs[name] = subprocess.Popen([gw, "--check-config", "--config", path],
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, p in procs.items():
                out, err = p.communicate(timeout=60)
                self.assertEqual(p.returncode, 0, "%s: llm-gateway --check-config refused the rendered config:\n%s%s"
                                 % (name, out, err))
                self.assertIn("is valid", out)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def test_check_config_can_fail(self):
        """The binary does refuse a bad config (so the test above means something)."""
        path = write_tmp("model_list:\n  - model_name: x\ngateway_settings:\n  drain_timeout: soon\n")
        r = subprocess.run([_state["gateway"], "--check-config", "--config", path],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)


class Negative(unittest.TestCase):
    def assertFails(self, vals, message):
        r = run_renderer(CHART, [vals])
        self.assertNotEqual(r.returncode, 0, "rendering should have failed: %r" % vals)
        self.assertIn(message, r.stderr)

    def test_required_image_repository(self):
        self.assertFails({"image": {"repository": ""}}, "image.repository is required")

    def test_secret_needed(self):
        self.assertFails({"secrets": {"create": False}}, "secrets.existingSecret is required")

    def test_drain_timeout_conflict(self):
        self.assertFails({"config": {"inline": {"gateway_settings": {"drain_timeout": 99}}}},
                         "differs from gracefulShutdown.drainTimeoutSeconds")

    def test_rediss_refused(self):
        self.assertFails({"redis": {"host": "rediss://cache:6379"}}, "set redis.tls: true")


    def test_bad_provider_key_name(self):
        self.assertFails({"secrets": {"providerKeys": {"not-an-env": "x"}}}, "not an environment variable name")

    def test_pdb_both(self):
        self.assertFails({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}, "not both")

    def test_old_kubernetes(self):
        r = run_renderer(CHART, extra=["--kube-version", "v1.21.0"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("kubeVersion", r.stderr)


class ChartFiles(unittest.TestCase):
    def test_files_are_copies(self):
        for copy, orig in (("files/llm-gateway-rules.yaml", RULES),
                           ("files/llm-gateway-dashboard.json", DASHBOARD)):
            with open(os.path.join(CHART, copy), "rb") as a, open(orig, "rb") as b:
                self.assertTrue(a.read() == b.read(),
                                "%s differs from %s: copy it again" % (copy, os.path.relpath(orig, REPO)))

    def test_values_documented(self):
        """Every value of values.yaml has a comment (a "# --" comment on a map value covers
        its fields; the example config under config.inline is exempt)."""
        lines = read_text(os.path.join(CHART, "values.yaml")).split("\n")
        undocumented = []
        stack = []  # (indent, key, documented as a whole)
        for i, line in enumerate(lines):
            m = re.match(r"^( *)([A-Za-z_][\w.-]*):(.*)$", line)
            if not m:
                continue
            indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([k for _, k, _ in stack] + [key])
            covered = any(doc for _, _, doc in stack)
            comments = []
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("#"):
                comments.append(lines[j].strip())
                j -= 1
            if "#" in rest:
                comments.append(rest[rest.index("#"):])
            stack.append((indent, key, any(c.startswith("# --") for c in comments)))
            if path.startswith("config.inline.") or covered:
                continue
            value = rest.split("#")[0].strip()
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            leaf = value != "" or nxt.strip().startswith("- ")
            if leaf and not comments:
                undocumented.append(path)
        self.assertEqual(undocumented, [], "values without a comment")

    def test_readme_covers_values(self):
        readme = read_text(os.path.join(CHART, "README.md"))
        for key in chart_values():
            self.assertIn(key, readme, "README does not mention %s" % key)
        for needle in ("helm upgrade --install", "create secret generic", "eks.amazonaws.com/role-arn",
                       "rediss", "terminationGracePeriodSeconds", "migrate", "Aurora", "ElastiCache"):
            self.assertTrue(needle in readme, "README does not mention %s" % needle)


# ------------------------------------------------------------------ the renderer itself

FIXTURE = {
    "Chart.yaml": "apiVersion: v2\nname: fixture\nversion: 1.2.3\nappVersion: \"9.9\"\n",
    "values.yaml": "a: {b: 1, c: keep, d: [1, 2]}\ngone: {x: 1}\nbig: 1000000\n"
                   "tplText: \"{{ .Release.Name }}-x\"\nbroken: false\nneed: {}\n",
    "files/f.txt": "line1\nline2\n",
    "files/g.txt": "g\n",
    "templates/_h.tpl": "{{- define \"fx.name\" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end }}\n",
    "templates/NOTES.txt": "notes for {{ .Release.Name }}\n",
    "templates/aaa-service.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"fx.name\" . }}\n",
    "templates/cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "fx.name" . }}
data:
  chart: {{ .Chart.Name | quote }}
  appVersion: {{ .Chart.AppVersion | quote }}
  ns: {{ .Release.Namespace | quote }}
  service: {{ .Release.Service | quote }}
  install: {{ .Release.IsInstall | quote }}
  minor: {{ .Capabilities.KubeVersion.Minor | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
  hasMon: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  template: {{ .Template.Name | quote }}
  basePath: {{ .Template.BasePath | quote }}
  missing: "{{ .Values.nothing }}"
  big: "{{ .Values.big }}"
  b: {{ .Values.a.b | quote }}
  c: {{ .Values.a.c | quote }}
  d: {{ toJson .Values.a.d | quote }}
  gone: {{ hasKey .Values "gone" | quote }}
  tpl: {{ tpl .Values.tplText . | quote }}
  file: {{ .Files.Get "files/f.txt" | quote }}
  lines: {{ len (.Files.Lines "files/f.txt") | quote }}
  lookup: {{ len (lookup "v1" "Secret" "ns" "x") | quote }}
  yaml: {{ toYaml .Values.a | quote }}
  fromYaml: {{ (fromYaml "k: v").k | quote }}
  {{- if .Values.need.flag }}
  req: {{ required "need.value is required" .Values.need.value }}
  {{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: globbed
data:
  {{- (.Files.Glob "files/*.txt").AsConfig | nindent 2 }}
""",
    "templates/sub/broken.yaml": "{{- if .Values.broken }}\nkind: ConfigMap\nmetadata: [unclosed\n{{- end }}\n",
}


class Renderer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fixture-", dir=_state["tmp"])
        for rel, text in FIXTURE.items():
            p = os.path.join(cls.dir, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)

    def test_objects_values_and_functions(self):
        r = run_renderer(self.dir, [{"a": {"b": 2}, "gone": None}, {"a": {"b": 3, "d": [9]}}],
                         release="rel", namespace="ns1")
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = json.loads(r.stdout)
        self.assertEqual([e["source"] for e in entries],
                         ["fixture/templates/cm.yaml", "fixture/templates/cm.yaml",
                          "fixture/templates/aaa-service.yaml"])
        data = entries[0]["doc"]["data"]
        self.assertEqual(entries[0]["doc"]["metadata"]["name"], "fixture-rel")
        self.assertEqual(data, {
            "chart": "fixture", "appVersion": "9.9", "ns": "ns1", "service": "Helm", "install": "true",
            "minor": "30", "hasApps": "true", "hasMon": "false",
            "template": "fixture/templates/cm.yaml", "basePath": "fixture/templates",
            "missing": "", "big": "1e+06", "b": "3", "c": "keep", "d": "[9]", "gone": "false",
            "tpl": "rel-x", "file": "line1\nline2\n", "lines": "2", "lookup": "0",
            "yaml": "b: 3\nc: keep\nd:\n- 9", "fromYaml": "v"})
        self.assertEqual(entries[1]["doc"]["data"], {"f.txt": "line1\nline2\n", "g.txt": "g\n"})

    def test_yaml_stream_and_options(self):
        r = run_renderer(self.dir, extra=["--kube-version", "v1.27.1", "--api-versions",
                                          "monitoring.coreos.com/v1"], json_out=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(re.findall(r"^# Source: (.*)$", r.stdout, re.M),
                         ["fixture/templates/cm.yaml", "fixture/templates/cm.yaml",
                          "fixture/templates/aaa-service.yaml"])
        self.assertNotIn("notes for", r.stdout)
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        self.assertEqual((docs[0]["data"]["minor"], docs[0]["data"]["hasMon"]), ("27", "true"))
        self.assertEqual(docs[0]["data"]["install"], "true")
        r = run_renderer(self.dir, extra=["--is-upgrade"])
        self.assertEqual(json.loads(r.stdout)[0]["doc"]["data"]["install"], "false")

    def test_invalid_yaml_names_the_file(self):
        r = run_renderer(self.dir, [{"broken": True}])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("fixture/templates/sub/broken.yaml", r.stderr)

    def test_required_fails(self):
        r = run_renderer(self.dir, [{"need": {"flag": True}}])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("need.value is required", r.stderr)
        r = run_renderer(self.dir, [{"need": {"flag": True, "value": "ok"}}])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)[0]["doc"]["data"]["req"], "ok")

    def test_env_functions_removed(self):
        d = tempfile.mkdtemp(prefix="fixture-env-", dir=_state["tmp"])
        shutil.copytree(self.dir, d, dirs_exist_ok=True)
        with open(os.path.join(d, "templates", "env.yaml"), "w") as f:
            f.write("x: {{ env \"HOME\" }}\n")
        r = run_renderer(d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("env", r.stderr)


if __name__ == "__main__":
    unittest.main()
