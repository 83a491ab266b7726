"""Checks of the AWS ECS (Fargate) definitions in deploy/ecs/ against each other, against
deploy/docker/Dockerfile and against the real binary (no AWS here).

Environment: GW_GATEWAY_BIN (the llm-gateway binary), GW_DEPLOY_WORK (a writable directory).
"""

import fnmatch
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from deploytools import flag_value, gateway_bin, work_dir

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
ECS = os.path.join(REPO, "deploy", "ecs")
DOCKERFILE = os.path.join(REPO, "deploy", "docker", "Dockerfile")
CONFIG_DOCKERFILE = os.path.join(ECS, "config", "Dockerfile")

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ESSENTIAL_SECRETS = ("LITELLM_MASTER_KEY", "DATABASE_URL")
FARGATE_MAX_STOP_TIMEOUT = 120
# Fargate's valid cpu -> memory (MiB) combinations (up to 4 vCPU).
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
}
HEALTH_ROUTES = ("/health/liveliness", "/health/readiness")


def load_json(rel):
    with open(os.path.join(ECS, rel)) as f:
        return json.load(f)


def dockerfile_instrs(path):
    """(KEYWORD, args) with continuations joined and comment lines dropped."""
    out, cur = [], None
    with open(path) as f:
        for raw in f:
            s = raw.strip()
            if not s or s.startswith("#"):
                continue
            body = raw.rstrip()
            cur = (cur or "") + (body[:-1] if body.endswith("\\") else body)
            if body.endswith("\\"):
                continue
            kw, _, rest = cur.strip().partition(" ")
            out.append((kw.upper(), rest.strip()))
            cur = None
    return out


def iam_match(pattern, value):
    """IAM's ARN wildcards: * any run of characters, ? one character."""
    return re.fullmatch(".*".join(".".join(re.escape(q) for q in p.split("?")) for p in pattern.split("*")),
                        value) is not None


def allows(policy, action, resource):
    for st in policy["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in acts) and any(iam_match(r, resource) for r in res):
            return True
    return False


def container(td):
    cs = td["containerDefinitions"]
    assert len(cs) == 1, "one container per task definition expected"
    return cs[0]


def pg_temp(cmd, d):
    return subprocess.run([os.path.join(REPO, "scripts", "pg-temp.sh"), cmd, d], capture_output=True, text=True,
                          timeout=90)


class EcsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.json_files = sorted(os.path.relpath(p, ECS) for p in glob.glob(os.path.join(ECS, "**", "*.json"), recursive=True))
        cls.td = load_json("task-definition.json")
        cls.migrate_td = load_json("task-definition-migrate.json")
        cls.service = load_json("service-definition.json")
        cls.tg = load_json("target-group.json")
        cls.tg_attrs = {a["Key"]: a["Value"] for a in load_json("target-group-attributes.json")["Attributes"]}
        cls.lb_attrs = {a["Key"]: a["Value"] for a in load_json("load-balancer-attributes.json")["Attributes"]}
        with open(os.path.join(ECS, "README.md")) as f:
            cls.readme = f.read()
        # The documented placeholders: | `${NAME}` | meaning | `example` |
        cls.placeholders = {m.group(1): m.group(2) for m in re.finditer(
            r"^\|\s*`\$\{([A-Z0-9_]+)\}`\s*\|.*\|\s*`([^`]*)`\s*\|\s*$", cls.readme, re.M)}
        cls.main = container(cls.td)
        cls.config_path_in_image = flag_value(cls.main["command"], "--config")
        cls.config_file = cls.config_source()
        with open(cls.config_file) as f:
            cls.config = yaml.safe_load(f)
        cls.docker = dockerfile_instrs(DOCKERFILE)

    @classmethod
    def config_source(cls):
        """The repository file the derived image copies to the task's --config path."""
        for kw, args in dockerfile_instrs(CONFIG_DOCKERFILE):
            if kw == "COPY":
                toks = [t for t in shlex.split(args) if not t.startswith("--")]
                if toks[-1] == cls.config_path_in_image:
                    return os.path.join(os.path.dirname(CONFIG_DOCKERFILE), toks[0])
        raise AssertionError("deploy/ecs/config/Dockerfile does not put a config at " + str(cls.config_path_in_image))

    def render(self, obj):
        """A JSON value with every documented placeholder replaced by its example."""
        text = json.dumps(obj)
        return json.loads(PLACEHOLDER.sub(lambda m: self.placeholders[m.group(1)], text))

    def config_env_refs(self):
        """The NAMEs of every os.environ/NAME value in the task's config."""
        refs = set()

        def walk(v):
            if isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, str) and v.startswith("os.environ/"):
                refs.add(v[len("os.environ/"):])

        walk(self.config)
        return refs

    def drain_timeout(self):
        return float((self.config.get("gateway_settings") or {}).get("drain_timeout", 30))

    def task_env(self, td, secrets):
        """The environment a container of td gets: environment rendered, secrets from `secrets`."""
        c = container(self.render(td))
        env = {e["name"]: e["value"] for e in c.get("environment", [])}
        for s in c.get("secrets", []):
            env[s["name"]] = secrets[s["name"]]
        return env

    def docker_port(self):
        return next(a for k, a in self.docker if k == "EXPOSE").split()[0].split("/")[0]

    def docker_user(self):
        return [a for k, a in self.docker if k == "USER"][-1]

    def docker_entrypoint(self):
        return json.loads([a for k, a in self.docker if k == "ENTRYPOINT"][-1])

    # ---- files

    def test_every_json_file_parses(self):
        self.assertGreaterEqual(len(self.json_files), 8)
        for rel in self.json_files:
            with self.subTest(rel):
                with open(os.path.join(ECS, rel)) as f:
                    text = f.read()
                json.loads(text)
                # envsubst-safe: no $ other than ${PLACEHOLDER}
                self.assertNotIn("$", PLACEHOLDER.sub("", text), rel + ": a stray $")

    def test_placeholders_are_documented(self):
        self.assertIn("AWS_ACCOUNT_ID", self.placeholders)
        self.assertIn("AWS_REGION", self.placeholders)
        used = set()
        files = [os.path.join(ECS, r) for r in self.json_files] + [CONFIG_DOCKERFILE, self.config_file]
        for path in files:
            with open(path) as f:
                text = f.read()
            names = set(PLACEHOLDER.findall(text))
            if path.endswith("Dockerfile"):  # the Dockerfile's own ARGs are not placeholders
                names -= {a.split("=")[0].strip() for k, a in dockerfile_instrs(path) if k == "ARG"}
            undocumented = names - set(self.placeholders)
            self.assertEqual(undocumented, set(), "%s: placeholders missing from deploy/ecs/README.md" % path)
            used |= names
        self.assertEqual(set(self.placeholders) - used, set(), "documented placeholders no file uses")
        for rel in self.json_files:
            rendered = json.dumps(self.render(load_json(rel)))
            self.assertNotIn("${", rendered, rel)

    # ---- task definition

    def test_task_definitions_are_fargate(self):
        for td in (self.td, self.migrate_td):
            with self.subTest(td["family"]):
                self.assertEqual(td["networkMode"], "awsvpc")
                self.assertEqual(td["requiresCompatibilities"], ["FARGATE"])
                self.assertIn(int(td["memory"]), FARGATE_SIZES[int(td["cpu"])], "not a Fargate cpu/memory size")
                self.assertEqual(td["runtimePlatform"]["operatingSystemFamily"], "LINUX")
                self.assertIn(td["runtimePlatform"]["cpuArchitecture"], ("X86_64", "ARM64"))
                r = self.render(td)
                self.assertRegex(r["executionRoleArn"], r"^arn:aws:iam::\d{12}:role/[\w+=,.@-]+$")
                c = container(td)
                self.assertTrue(c["essential"])
                self.assertEqual(c["image"], self.main["image"], "both task definitions run the same image")
                self.assertEqual(c["logConfiguration"]["logDriver"], "awslogs")
                for k in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
                    self.assertIn(k, c["logConfiguration"]["options"])
        self.assertRegex(self.render(self.td)["taskRoleArn"], r"^arn:aws:iam::\d{12}:role/",
                         "the gateway needs a task role (Bedrock)")

    def test_ports_agree(self):
        ports = {m["containerPort"] for m in self.main["portMappings"]}
        self.assertEqual(len(ports), 1)
        port = ports.pop()
        self.assertEqual(self.main["portMappings"][0].get("protocol", "tcp"), "tcp")
        self.assertEqual(str(port), flag_value(self.main["command"], "--port"), "command --port")
        self.assertEqual(str(port), self.docker_port(), "the image's EXPOSE")
        lbs = self.service["loadBalancers"]
        self.assertEqual([lb["containerPort"] for lb in lbs], [port], "service loadBalancers containerPort")
        self.assertEqual(self.tg["Port"], port, "target group port")
        self.assertIn(self.tg.get("HealthCheckPort", "traffic-port"), ("traffic-port", str(port)))
        hc = self.main["healthCheck"]["command"]
        self.assertEqual(flag_value(hc, "--port") or "4000", str(port), "container health check port")

    def test_target_group(self):
        self.assertEqual(self.tg["TargetType"], "ip", "awsvpc tasks register by IP")
        self.assertEqual(self.tg["Protocol"], "HTTP")
        self.assertTrue(self.tg["HealthCheckEnabled"])
        self.assertEqual(self.tg["HealthCheckPath"], "/health/readiness")
        self.assertEqual(self.tg["Matcher"]["HttpCode"], "200")
        self.assertLess(self.tg["HealthCheckTimeoutSeconds"], self.tg["HealthCheckIntervalSeconds"])
        r = self.render({"svc": self.service, "tga": load_json("target-group-attributes.json")})
        self.assertEqual(r["svc"]["loadBalancers"][0]["targetGroupArn"], r["tga"]["TargetGroupArn"])
        self.assertRegex(r["tga"]["TargetGroupArn"], r"^arn:aws:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[\w-]+/[0-9a-f]+$")

    def test_container_health_check_uses_the_binary(self):
        hc = self.main["healthCheck"]
        cmd = hc["command"]
        self.assertEqual(cmd[0], "CMD", "exec form: the image has no curl, and needs no shell")
        self.assertIn(cmd[1], (self.docker_entrypoint()[0], "llm-gateway"))
        self.assertEqual(cmd[2], "healthcheck")
        self.assertIn(flag_value(cmd, "--path") or "/health/liveliness", HEALTH_ROUTES)
        self.assertLess(hc["timeout"], hc["interval"])
        self.assertGreaterEqual(self.service["healthCheckGracePeriodSeconds"], hc.get("startPeriod", 0))

    def test_service_names_the_container(self):
        names = {c["name"]: c for c in self.td["containerDefinitions"]}
        for lb in self.service["loadBalancers"]:
            self.assertIn(lb["containerName"], names)
            ports = {m["containerPort"] for m in names[lb["containerName"]]["portMappings"]}
            self.assertIn(lb["containerPort"], ports)
        self.assertEqual(self.service["taskDefinition"].split(":")[0], self.td["family"])

    def test_env_and_secret_names_are_read_by_the_binary(self):
        with open(gateway_bin(), "rb") as f:
            data = f.read()
        config_refs = self.config_env_refs()
        for td in (self.td, self.migrate_td):
            c = container(td)
            env = [e["name"] for e in c.get("environment", [])]
            sec = [s["name"] for s in c.get("secrets", [])]
            with self.subTest(td["family"]):
                self.assertEqual(len(env + sec), len(set(env + sec)), "a name is set twice")
                for name in env + sec:
                    in_binary = re.search(rb"(?<![A-Za-z0-9_])" + re.escape(name.encode()) + rb"(?![A-Za-z0-9_])", data)
                    self.assertTrue(in_binary or name in config_refs,
                                    name + " is read neither by the binary nor through the task's config")
                for name in ESSENTIAL_SECRETS:
                    self.assertNotIn(name, env, name + " must come from secrets, not environment")
                for s in c.get("secrets", []):
                    self.assertRegex(self.render(s)["valueFrom"],
                                     r"^arn:aws:(secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+"
                                     r"|ssm:[a-z0-9-]+:\d{12}:parameter/[\w/.-]+)$")
        main_secrets = {s["name"] for s in self.main["secrets"]}
        main_env = {e["name"] for e in self.main["environment"]}
        for name in ESSENTIAL_SECRETS:
            self.assertIn(name, main_secrets)
        self.assertIn("DATABASE_URL", {s["name"] for s in container(self.migrate_td)["secrets"]})
        self.assertEqual(config_refs - main_secrets - main_env, set(),
                         "the config reads variables the task does not set")

    def test_stop_timeout_covers_the_drain(self):
        drain = self.drain_timeout()
        stop = self.main["stopTimeout"]
        self.assertGreater(stop, drain, "ECS would SIGKILL before the drain ends")
        self.assertLessEqual(stop, FARGATE_MAX_STOP_TIMEOUT)
        dereg = float(self.tg_attrs["deregistration_delay.timeout_seconds"])
        self.assertGreaterEqual(dereg, drain, "the ALB should keep in-flight requests as long as the drain")
        idle = float(self.lb_attrs["idle_timeout.timeout_seconds"])
        gs = self.config.get("gateway_settings") or {}
        self.assertGreater(float(gs.get("keepalive_timeout", 75)), idle,
                           "the gateway's keep-alive must outlast the ALB idle timeout")
        rs = self.config.get("router_settings") or {}
        if "timeout" in rs:
            self.assertLess(float(rs["timeout"]), idle, "calls longer than the ALB idle timeout end as ALB 504s")

    def test_read_only_root_with_writable_tmp(self):
        for td in (self.td, self.migrate_td):
            c = container(td)
            with self.subTest(td["family"]):
                self.assertIs(c["readonlyRootFilesystem"], True)
                vols = {v["name"]: v for v in td.get("volumes", [])}
                tmp = [m for m in c.get("mountPoints", []) if m["containerPath"] == "/tmp"]
                self.assertEqual(len(tmp), 1, "a /tmp mount")
                self.assertFalse(tmp[0].get("readOnly", False))
                vol = vols.get(tmp[0]["sourceVolume"])
                self.assertIsNotNone(vol, "mountPoints names an undefined volume")
                self.assertFalse({"host", "efsVolumeConfiguration", "dockerVolumeConfiguration"} & set(vol),
                                 "a task-scoped Fargate bind mount (ephemeral storage) is expected")
        vols = []
        for k, a in self.docker:
            if k == "VOLUME":
                vols += json.loads(a) if a.startswith("[") else a.split()
        self.assertIn("/tmp", vols, "without VOLUME /tmp the bind mount is root-owned 0755 on Fargate")

    def test_runs_as_the_images_non_root_user(self):
        for td in (self.td, self.migrate_td):
            user = container(td).get("user", "")
            self.assertRegex(user, r"^[1-9]\d*(:[1-9]\d*)?$", "numeric, non-root")
            self.assertEqual(user.split(":")[0], self.docker_user().split(":")[0], "the image's USER")
        nofile = [u for u in self.main.get("ulimits", []) if u["name"] == "nofile"]
        self.assertEqual(len(nofile), 1)
        self.assertGreaterEqual(nofile[0]["softLimit"], 65535)
        self.assertLessEqual(nofile[0]["softLimit"], nofile[0]["hardLimit"])

    def test_config_is_baked_into_the_deployed_image(self):
        self.assertIsNotNone(self.config_path_in_image)
        self.assertTrue(self.config_path_in_image.startswith("/etc/llm-gateway/"))
        self.assertTrue(os.path.isfile(self.config_file))
        froms = [a for k, a in dockerfile_instrs(CONFIG_DOCKERFILE) if k == "FROM"]
        self.assertEqual(froms, ["${BASE_IMAGE}"], "the derived image builds on the llm-gateway image")
        self.assertEqual(flag_value(container(self.migrate_td)["command"], "--config"), self.config_path_in_image)
        self.assertEqual(self.config.get("general_settings", {}).get("database_url"), "os.environ/DATABASE_URL")
        text = open(self.config_file).read()
        self.assertNotRegex(text, r"sk-[A-Za-z0-9]{8,}|postgres(ql)?://\w+:[^@\s]+@", "a secret in the config")

    def test_iam_policies_cover_what_the_tasks_use(self):
        exec_pol = self.render(load_json("iam/execution-role-policy.json"))
        for td in (self.td, self.migrate_td):
            for s in self.render(container(td)).get("secrets", []):
                arn = s["valueFrom"]
                action = "secretsmanager:GetSecretValue" if ":secretsmanager:" in arn else "ssm:GetParameters"
                self.assertTrue(allows(exec_pol, action, arn), "execution role cannot read " + arn)
        self.assertFalse(allows(exec_pol, "secretsmanager:GetSecretValue",
                                self.render("arn:aws:secretsmanager:${AWS_REGION}:${AWS_ACCOUNT_ID}:secret:other-app/x")),
                         "the execution role should read only the gateway's secrets")
        task_pol = self.render(load_json("iam/task-role-policy.json"))
        region = self.placeholders["AWS_REGION"]
        models = [m["litellm_params"]["model"][len("bedrock/"):] for m in self.config["model_list"]
                  if m["litellm_params"]["model"].startswith("bedrock/")]
        self.assertTrue(models)
        for mid in models:
            arn = "arn:aws:bedrock:%s::foundation-model/%s" % (region, mid)
            for action in ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"):
                self.assertTrue(allows(task_pol, action, arn), "task role: %s on %s" % (action, arn))
        self.assertFalse(allows(task_pol, "bedrock:DeleteCustomModel", "arn:aws:bedrock:%s::foundation-model/x" % region))
        trust = load_json("iam/ecs-tasks-trust-policy.json")
        self.assertEqual(trust["Statement"][0]["Principal"]["Service"], "ecs-tasks.amazonaws.com")
        self.assertEqual(trust["Statement"][0]["Action"], "sts:AssumeRole")

    def test_service_and_autoscaling(self):
        svc = self.service
        dc = svc["deploymentConfiguration"]
        self.assertEqual(dc["deploymentCircuitBreaker"], {"enable": True, "rollback": True})
        self.assertGreaterEqual(dc["minimumHealthyPercent"], 50)
        self.assertGreater(dc["maximumPercent"], 100, "a rolling deploy needs room for new tasks")
        self.assertTrue(svc.get("launchType") == "FARGATE" or svc.get("capacityProviderStrategy"))
        self.assertFalse(svc.get("launchType") and svc.get("capacityProviderStrategy"), "mutually exclusive")
        net = svc["networkConfiguration"]["awsvpcConfiguration"]
        self.assertGreaterEqual(len(net["subnets"]), 2, "two AZs")
        self.assertTrue(net["securityGroups"])
        resource = "service/%s/%s" % (svc["cluster"], svc["serviceName"])
        target = load_json("autoscaling-target.json")
        self.assertEqual(target["ResourceId"], resource)
        self.assertEqual(target["ScalableDimension"], "ecs:service:DesiredCount")
        self.assertLessEqual(target["MinCapacity"], svc["desiredCount"])
        self.assertLessEqual(svc["desiredCount"], target["MaxCapacity"])
        metrics = {}
        for rel in self.json_files:
            p = load_json(rel)
            if isinstance(p, dict) and p.get("PolicyType") == "TargetTrackingScaling":
                self.assertEqual(p["ResourceId"], resource, rel)
                spec = p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
                metrics[spec["PredefinedMetricType"]] = spec
        self.assertIn("ECSServiceAverageCPUUtilization", metrics)
        self.assertIn("ALBRequestCountPerTarget", metrics)
        r = self.render({"label": metrics["ALBRequestCountPerTarget"]["ResourceLabel"], "svc": svc})
        self.assertRegex(r["label"], r"^app/[\w-]+/[0-9a-f]+/targetgroup/[\w-]+/[0-9a-f]+$")
        self.assertTrue(r["svc"]["loadBalancers"][0]["targetGroupArn"].endswith(":" + r["label"].split("/", 3)[3]),
                        "the request-count policy tracks another target group")

    # ---- against the real binary

    def test_command_is_accepted_by_the_binary(self):
        cmd = list(self.main["command"])
        cmd[cmd.index("--config") + 1] = self.config_file
        env = self.task_env(self.td, {"LITELLM_MASTER_KEY": "sk-ecs-test-master", "OPENAI_API_KEY": "sk-test",
                                      "DATABASE_URL": "postgresql://gw:pw@db.invalid:5432/gw?sslmode=require"})
        env.update({"PATH": "/usr/bin:/bin"})
        with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
            env.update({"HOME": tmp, "TMPDIR": tmp})
            try:
                r = subprocess.run([gateway_bin()] + cmd + ["--check-config"], cwd=tmp, env=env, capture_output=True,
                                   text=True, timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("--check-config did not exit within 10 s with the task's environment (%s)"
                          % ", ".join(sorted(k for k in env if k not in ("PATH", "HOME", "TMPDIR"))))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("is valid", r.stdout)
        self.assertNotIn("is not set", out, "the task leaves a variable of its config unset")

    def test_health_check_and_migrate_against_the_real_binary(self):
        binary = gateway_bin()
        with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
            pgdir = os.path.join(tmp, "pg")
            r = pg_temp("start", pgdir)
            self.assertEqual(r.returncode, 0, r.stderr)
            db_url = r.stdout.strip().splitlines()[-1]
            try:
                self._migrate(binary, tmp, db_url)
                self._serve_and_probe(binary, tmp, db_url)
            finally:
                pg_temp("stop", pgdir)

    def _migrate(self, binary, tmp, db_url):
        c = container(self.migrate_td)
        cmd = list(c["command"])
        self.assertEqual(cmd[0], "migrate")
        cmd[cmd.index("--config") + 1] = self.config_file
        env = self.task_env(self.migrate_td, {"DATABASE_URL": db_url})
        env.update({"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp})
        for attempt in (1, 2):  # once per release; running it again is harmless
            r = subprocess.run([binary] + cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, "migrate task, run %d: %s" % (attempt, r.stdout + r.stderr))
            self.assertIn("database schema at version", r.stdout)

    def _serve_and_probe(self, binary, tmp, db_url):
        """The task's command, config and environment (Redis replaced by a closed local port,
        the database by a temporary PostgreSQL), then the task's health check command."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        closed = holder.getsockname()[1]
        try:
            cmd = list(self.main["command"])
            cmd[cmd.index("--config") + 1] = self.config_file
            cmd[cmd.index("--port") + 1] = "0"
            cmd[cmd.index("--host") + 1] = "127.0.0.1"
            port_file = os.path.join(tmp, "port")
            env = self.task_env(self.td, {"LITELLM_MASTER_KEY": "sk-ecs-test-master", "OPENAI_API_KEY": "sk-test",
                                          "DATABASE_URL": db_url})
            env.update({"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "REDIS_HOST": "127.0.0.1",
                        "REDIS_PORT": str(closed), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:%d" % closed})
            log = open(os.path.join(tmp, "gateway.log"), "wb")
            proc = subprocess.Popen([binary] + cmd + ["--port-file", port_file], cwd=tmp, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            try:
                port = None
                deadline = time.time() + 15
                while time.time() < deadline and proc.poll() is None:
                    if os.path.exists(port_file) and open(port_file).read().strip():
                        port = int(open(port_file).read())
                        break
                    time.sleep(0.05)
                self.assertIsNotNone(port, "the task's command did not start: " + open(log.name).read()[-2000:])
                hc = self.main["healthCheck"]["command"][1:]

                def probe(p, path=None):
                    a = [binary] + hc[1:]
                    a[a.index("--port") + 1] = str(p)
                    if path:
                        a[a.index("--path") + 1] = path
                    return subprocess.run(a, capture_output=True, text=True, timeout=10)

                r = probe(port)
                self.assertEqual(r.returncode, 0, "container health check: " + r.stdout + r.stderr)
                r = probe(port, self.tg["HealthCheckPath"])
                self.assertEqual(r.returncode, 0, "target group health check route: " + r.stdout + r.stderr)
                r = probe(closed)
                self.assertEqual(r.returncode, 1, "health check against a closed port must fail")
                r = probe(port, "/no/such/route")
                self.assertEqual(r.returncode, 1, "a non-200 answer must fail the health check")
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                log.close()
            self.assertEqual(proc.returncode, 0, "SIGTERM should drain and exit 0: " + open(log.name).read()[-2000:])
        finally:
            holder.close()


if __name__ == "__main__":
    unittest.main()
