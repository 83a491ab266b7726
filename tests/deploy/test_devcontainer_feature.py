"""deploy/devcontainer-feature: the llm-gateway dev-container feature.

- devcontainer-feature.json has the seed feature's four options, types and defaults;
- install.sh, for each of the 16 option combinations (packages skipped, a temp prefix), writes
  the layout the seed documents: bin/llm-gateway, configs/ (the repository's starter set),
  .env with the seed's variables and defaults, the startWithDefaults keys only with that
  option, Redis wiring only with enableRedis, the Presidio / Langfuse compose files and
  instructions exactly when enabled, an executable start_llm_gateway.sh;
- every starter config passes `llm-gateway --check-config`;
- install.sh is idempotent: a second run succeeds and keeps an edited .env and config;
- bad options and a missing binary make install.sh fail;
- start_llm_gateway.sh, run for real: it creates and starts PostgreSQL (as the postgres user
  when root) and Redis on ephemeral ports, migrates, serves the embedded default; readiness
  is healthy with the database connected; the startWithDefaults virtual key
  sk-TE5BPNfSh4IOCNpW3I5EDQ works for a chat completion on mock-gpt and the master key
  sk-password for /key/generate; SIGTERM stops the gateway, --stop-services stops PostgreSQL
  and Redis."""

import concurrent.futures
import ctypes
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FEATURE = os.path.join(ROOT, "deploy", "devcontainer-feature")
INSTALL = os.path.join(FEATURE, "install.sh")
REPO_CONFIGS = os.path.join(ROOT, "configs")
GATEWAY_BIN = os.environ.get("GW_GATEWAY_BIN", os.path.join(ROOT, "build", "dev", "apps", "gateway", "llm-gateway"))

OPTIONS = ["enablePresidio", "enableRedis", "enableLangfuse", "startWithDefaults"]
SEED_DEFAULTS = {"enablePresidio": False, "enableRedis": True, "enableLangfuse": True, "startWithDefaults": False}
VIRTUAL_KEY = "sk-TE5BPNfSh4IOCNpW3I5EDQ"
MASTER_KEY = "sk-password"
# The seed's .env: every install has these (REDIS_HOST and the Langfuse keys depend on options).
SEED_ENV = {
    "DATABASE_URL": "postgresql://postgres:postgres@localhost:5432/litellm",
    "LANGFUSE_HOST": "http://localhost:3000",
    "REDIS_PASSWORD": "",
    "REDIS_PORT": "6379",
    "OPENAI_API_KEY": "",
    "PRESIDIO_ANALYZER_API_BASE": "http://localhost:5001",
    "PRESIDIO_ANONYMIZER_API_BASE": "http://localhost:5002",
    "LITELLM_MASTER_KEY": MASTER_KEY,
}
# Variables of the caller that must not leak into install.sh / the start script.
SCRUB_PREFIXES = ("DATABASE_URL", "REDIS_", "LANGFUSE_", "LITELLM_", "LLM_GATEWAY_", "OPENAI_", "PRESIDIO_",
                  "_REMOTE_USER", "ENABLE", "STARTWITHDEFAULTS", "PG_BIN", "OTEL_")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    env.update(extra)
    return env


# A private copy of GW_GATEWAY_BIN (made in setUpClass): a rebuild during the test cannot
# change the binary under it.
BINARY_COPY = None


def install(prefix, options, **extra):
    env = clean_env(LLM_GATEWAY_PREFIX=prefix, LLM_GATEWAY_SKIP_PACKAGES="1", LLM_GATEWAY_BINARY=BINARY_COPY)
    for name, value in options.items():
        env[name.upper()] = "true" if value else "false"
    env.update(extra)
    return subprocess.run([INSTALL], env=env, capture_output=True, text=True, timeout=120)


def parse_env_file(path):
    """KEY=VALUE lines as the gateway reads them: quotes, 'export ', # comments."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].strip()
            key, _, raw = line.partition("=")
            raw = raw.strip()
            if raw[:1] in ("'", '"'):
                end = raw.index(raw[0], 1)
                rest = raw[end + 1:].strip()
                assert not rest or rest.startswith("#"), "text after a quoted value: " + line
                out[key.strip()] = raw[1:end]
            else:
                out[key.strip()] = raw.split(" #")[0].strip()
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def become_subreaper():
    """PostgreSQL and Redis daemonize: their orphans come to this process (not to an init
    that may never reap them), so the test can reap what it caused."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap(pid=-1):
    """Reaps the exited child `pid` (or every exited child); never blocks."""
    try:
        while True:
            got, _ = os.waitpid(pid, os.WNOHANG)
            if got == 0 or pid != -1:
                return
    except ChildProcessError:
        pass


def pid_running(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def call(port, path, body=None, key=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method="POST" if data is not None else "GET")
    if key:
        req.add_header("authorization", "Bearer " + key)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:
            return e.code, raw.decode(errors="replace")


class argparse_namespace:
    """A bag of attributes."""


def files_equal(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


class DevcontainerFeatureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(GATEWAY_BIN, os.X_OK):
            raise AssertionError("no gateway binary at %s (set GW_GATEWAY_BIN)" % GATEWAY_BIN)
        global BINARY_COPY
        become_subreaper()
        cls.tmp = tempfile.mkdtemp(prefix="gw-devcontainer-")
        BINARY_COPY = os.path.join(cls.tmp, "llm-gateway")
        shutil.copy2(GATEWAY_BIN, BINARY_COPY)
        r = subprocess.run([BINARY_COPY, "--version"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("%s does not run: %s" % (GATEWAY_BIN, r.stdout + r.stderr))
        cls.starter = sorted(f for f in os.listdir(REPO_CONFIGS) if f.endswith(".yaml"))
        if not cls.starter:
            raise AssertionError("no starter configs in " + REPO_CONFIGS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        reap()

    def new_prefix(self, name):
        d = tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)
        return os.path.join(d, "llm_gateway")

    # ---------------------------------------------------------------------------------

    def test_feature_json(self):
        with open(os.path.join(FEATURE, "devcontainer-feature.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["id"], "llm-gateway")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+$")
        self.assertTrue(doc.get("name"))
        self.assertTrue(doc.get("description"))
        self.assertEqual(sorted(doc["options"]), sorted(OPTIONS))
        for name, default in SEED_DEFAULTS.items():
            with self.subTest(option=name):
                self.assertEqual(doc["options"][name]["type"], "boolean")
                self.assertIs(doc["options"][name]["default"], default)
                self.assertTrue(doc["options"][name].get("description"))
        self.assertIn("ghcr.io/devcontainers/features/common-utils", doc["installsAfter"])
        self.assertIn("/opt/llm_gateway/bin", doc["containerEnv"]["PATH"])
        for name in ("install.sh", "start_llm_gateway.sh"):
            self.assertTrue(os.access(os.path.join(FEATURE, name), os.X_OK), name + " is not executable")

    # ---------------------------------------------------------------------------------

    def check_install(self, prefix, opts, result):
        out = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, out)
        presidio, redis, langfuse, defaults = (opts[o] for o in OPTIONS)

        gw = os.path.join(prefix, "bin", "llm-gateway")
        self.assertTrue(os.access(gw, os.X_OK))
        self.assertEqual(os.path.getsize(gw), os.path.getsize(BINARY_COPY))

        # configs/: exactly the starter set, as in the repository.
        self.assertEqual(sorted(os.listdir(os.path.join(prefix, "configs"))), self.starter)
        for name in self.starter:
            self.assertTrue(files_equal(os.path.join(prefix, "configs", name), os.path.join(REPO_CONFIGS, name)), name)

        script = os.path.join(prefix, "start_llm_gateway.sh")
        self.assertTrue(os.access(script, os.X_OK))
        self.assertTrue(files_equal(script, os.path.join(FEATURE, "start_llm_gateway.sh")))

        # .env: the seed's variables and defaults; options decide the rest.
        env = parse_env_file(os.path.join(prefix, ".env"))
        for key, value in SEED_ENV.items():
            self.assertEqual(env.get(key), value, key)
        self.assertEqual(env.get("REDIS_HOST"), "localhost" if redis else "")
        if defaults:
            self.assertEqual(env.get("LLM_GATEWAY_DEFAULT_VIRTUAL_KEY"), VIRTUAL_KEY)
        else:
            self.assertNotIn("LLM_GATEWAY_DEFAULT_VIRTUAL_KEY", env)
            with open(os.path.join(prefix, ".env")) as f:
                self.assertNotIn(VIRTUAL_KEY, f.read())
        if defaults and langfuse:
            self.assertRegex(env.get("LANGFUSE_PUBLIC_KEY", ""), r"^pk-lf-.+")
            self.assertRegex(env.get("LANGFUSE_SECRET_KEY", ""), r"^sk-lf-.+")
        else:
            self.assertEqual(env.get("LANGFUSE_PUBLIC_KEY"), "")
            self.assertEqual(env.get("LANGFUSE_SECRET_KEY"), "")
        self.assertTrue(files_equal(os.path.join(prefix, ".env"), os.path.join(prefix, ".env.example")))

        with open(os.path.join(prefix, "feature-options.env")) as f:
            recorded = dict(line.strip().split("=", 1) for line in f if "=" in line and not line.startswith("#"))
        self.assertEqual(recorded["ENABLE_REDIS"], "true" if redis else "false")
        self.assertEqual(recorded["START_WITH_DEFAULTS"], "true" if defaults else "false")

        with open(os.path.join(prefix, "README.md")) as f:
            readme = f.read()
        self.assertIn("start_llm_gateway.sh", readme)
        self.assertEqual("Redis Stack" in readme, redis)
        self.assertEqual(VIRTUAL_KEY in readme, defaults)

        # Presidio: compose file + instructions exactly when enabled.
        presidio_compose = os.path.join(prefix, "external", "presidio", "docker-compose.yml")
        self.assertEqual(os.path.exists(presidio_compose), presidio)
        self.assertEqual("external/presidio/docker-compose.yml" in readme, presidio)
        self.assertEqual("does not mask PII" in readme, presidio)
        if presidio:
            with open(presidio_compose) as f:
                services = yaml.safe_load(f)["services"]
            images = {s["image"].split(":")[0]: s["ports"] for s in services.values()}
            self.assertEqual(images.get("mcr.microsoft.com/presidio-analyzer"), ["5001:3000"])
            self.assertEqual(images.get("mcr.microsoft.com/presidio-anonymizer"), ["5002:3000"])

        # Langfuse: compose file (with its own PostgreSQL) + instructions exactly when enabled.
        langfuse_dir = os.path.join(prefix, "external", "langfuse")
        self.assertEqual(os.path.isdir(langfuse_dir), langfuse)
        self.assertEqual("external/langfuse/docker-compose.yml" in readme, langfuse)
        if langfuse:
            with open(os.path.join(langfuse_dir, "docker-compose.yml")) as f:
                services = yaml.safe_load(f)["services"]
            web = [s for s in services.values() if s["image"].split(":")[0].endswith("langfuse/langfuse")]
            self.assertEqual(len(web), 1)
            self.assertIn("3000:3000", web[0]["ports"])
            self.assertTrue(any(s["image"].split(":")[0].endswith("/postgres") for s in services.values()))
            # Nothing else published on the gateway's PostgreSQL / Redis ports.
            published = [p for s in services.values() for p in s.get("ports", [])]
            self.assertFalse([p for p in published if p.split(":")[-2] in ("5432", "6379")], published)
            with open(os.path.join(langfuse_dir, "gateway-callbacks.yaml")) as f:
                self.assertIn("langfuse", yaml.safe_load(f)["litellm_settings"]["success_callback"])
            init = parse_env_file(os.path.join(langfuse_dir, ".env"))
            if defaults:
                self.assertEqual(init.get("LANGFUSE_INIT_PROJECT_PUBLIC_KEY"), env["LANGFUSE_PUBLIC_KEY"])
                self.assertEqual(init.get("LANGFUSE_INIT_PROJECT_SECRET_KEY"), env["LANGFUSE_SECRET_KEY"])
                self.assertEqual(init.get("LANGFUSE_INIT_USER_EMAIL"), "admin@dep.com")
                self.assertEqual(init.get("LANGFUSE_INIT_USER_PASSWORD"), "password")
            else:
                self.assertFalse([k for k in init if k.startswith("LANGFUSE_INIT_")], init)
        if not presidio and not langfuse:
            self.assertFalse(os.path.exists(os.path.join(prefix, "external")))

    def test_install_every_option_combination(self):
        combos = [dict(zip(OPTIONS, values)) for values in itertools.product([False, True], repeat=4)]
        prefixes = [self.new_prefix("combo%d" % i) for i in range(len(combos))]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda a: install(*a), zip(prefixes, combos)))
        for prefix, opts, result in zip(prefixes, combos, results):
            with self.subTest(**opts):
                self.check_install(prefix, opts, result)
            shutil.rmtree(os.path.dirname(prefix), ignore_errors=True)

    def test_option_defaults_when_unset(self):
        # No option variables at all: the seed's defaults (Redis and Langfuse on, the rest off).
        prefix = self.new_prefix("unset")
        self.check_install(prefix, SEED_DEFAULTS, install(prefix, {}))

    # ---------------------------------------------------------------------------------

    def test_starter_configs_pass_check_config(self):
        prefix = self.new_prefix("check")
        result = install(prefix, {"startWithDefaults": True})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        gw = os.path.join(prefix, "bin", "llm-gateway")

        # Without the .env: with REDIS_HOST set, --check-config of this gateway build hangs at exit
        # (found while writing this test). cwd has no .env either. A timeout kills (SIGKILL).
        def check(name):
            return subprocess.run([gw, "--check-config", "--config", os.path.join(prefix, "configs", name)],
                                  env=clean_env(), cwd=self.tmp, capture_output=True, text=True, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.starter)) as pool:
            results = list(pool.map(check, self.starter))
        for name, r in zip(self.starter, results):
            with self.subTest(config=name):
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("is valid", r.stdout)

    # ---------------------------------------------------------------------------------

    def test_install_is_idempotent(self):
        prefix = self.new_prefix("idem")
        first = install(prefix, {})
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        env_path = os.path.join(prefix, ".env")
        with open(env_path, "a") as f:
            f.write('OPENAI_API_KEY="sk-user-edited"\n')
        with open(env_path, "rb") as f:
            edited_env = f.read()
        edited_cfg = os.path.join(prefix, "configs", "model-config-openai.yaml")
        with open(edited_cfg, "a") as f:
            f.write("# edited by the user\n")
        with open(edited_cfg, "rb") as f:
            edited_cfg_bytes = f.read()
        os.remove(os.path.join(prefix, "configs", "model-config-local.yaml"))  # restored by a rerun

        extra = {}
        if os.geteuid() == 0:
            extra["_REMOTE_USER"] = "nobody"
        second = install(prefix, {"startWithDefaults": True, "enablePresidio": True}, **extra)
        self.assertEqual(second.returncode, 0, second.stdout + second.stderr)
        with open(env_path, "rb") as f:
            self.assertEqual(f.read(), edited_env, ".env was overwritten")
        self.assertEqual(parse_env_file(env_path)["OPENAI_API_KEY"], "sk-user-edited")
        with open(edited_cfg, "rb") as f:
            self.assertEqual(f.read(), edited_cfg_bytes, "an edited config was overwritten")
        self.assertTrue(files_equal(os.path.join(prefix, "share", "configs", "model-config-openai.yaml"),
                                    os.path.join(REPO_CONFIGS, "model-config-openai.yaml")))
        self.assertTrue(files_equal(os.path.join(prefix, "configs", "model-config-local.yaml"),
                                    os.path.join(REPO_CONFIGS, "model-config-local.yaml")))
        # The new options show in what a fresh install would write, and in the new files.
        self.assertEqual(parse_env_file(os.path.join(prefix, ".env.example")).get("LLM_GATEWAY_DEFAULT_VIRTUAL_KEY"),
                         VIRTUAL_KEY)
        self.assertTrue(os.path.exists(os.path.join(prefix, "external", "presidio", "docker-compose.yml")))
        if extra:
            nobody = pwd.getpwnam("nobody").pw_uid
            for rel in (".env", "configs/model-config-openai.yaml", "start_llm_gateway.sh", "data"):
                self.assertEqual(os.stat(os.path.join(prefix, rel)).st_uid, nobody, rel)

        # A third run with Presidio off again removes its files.
        third = install(prefix, {"startWithDefaults": True})
        self.assertEqual(third.returncode, 0, third.stdout + third.stderr)
        self.assertFalse(os.path.exists(os.path.join(prefix, "external", "presidio")))
        with open(env_path, "rb") as f:
            self.assertEqual(f.read(), edited_env)

    def test_install_rejects_bad_input(self):
        prefix = self.new_prefix("bad")
        r = install(prefix, {}, ENABLEREDIS="maybe")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("enableRedis", r.stderr)
        r = install(prefix, {}, LLM_GATEWAY_BINARY=os.path.join(self.tmp, "no-such-binary"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("LLM_GATEWAY_BINARY", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(prefix, "bin", "llm-gateway")))

    def test_binary_from_release_layout_or_source_tree(self):
        # The published form: bin/llm-gateway and configs/ shipped next to install.sh.
        release = os.path.join(self.tmp, "release", "llm-gateway")
        shutil.copytree(FEATURE, release)
        os.mkdir(os.path.join(release, "bin"))
        shutil.copy2(BINARY_COPY, os.path.join(release, "bin", "llm-gateway"))
        shutil.copytree(REPO_CONFIGS, os.path.join(release, "configs"))
        no_binary = clean_env(LLM_GATEWAY_SKIP_PACKAGES="1")
        prefix = self.new_prefix("release")
        r = subprocess.run([os.path.join(release, "install.sh")], env=dict(no_binary, LLM_GATEWAY_PREFIX=prefix),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(os.path.join(release, "bin", "llm-gateway"), r.stdout)
        self.assertEqual(sorted(os.listdir(os.path.join(prefix, "configs"))), self.starter)

        # Neither a binary nor a source tree: a clear failure.
        shutil.rmtree(os.path.join(release, "bin"))
        r = subprocess.run([os.path.join(release, "install.sh")],
                           env=dict(no_binary, LLM_GATEWAY_PREFIX=self.new_prefix("none")),
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no llm-gateway binary", r.stderr)

        # A source tree: built with scripts/build.sh release llm-gateway (a stub here: the test
        # never compiles); install-deps.sh is skipped with the packages.
        src = os.path.join(self.tmp, "src")
        os.makedirs(os.path.join(src, "scripts"))
        os.makedirs(os.path.join(src, "apps", "gateway"))
        open(os.path.join(src, "CMakeLists.txt"), "w").close()
        shutil.copytree(REPO_CONFIGS, os.path.join(src, "configs"))
        stubs = {
            "build.sh": '#!/bin/sh\necho "$@" > "$(dirname "$0")/../build-args"\n'
                        'mkdir -p build/release/apps/gateway && cp "%s" build/release/apps/gateway/llm-gateway\n'
                        % BINARY_COPY,
            "install-deps.sh": '#!/bin/sh\ntouch "$(dirname "$0")/../install-deps-ran"\n',
        }
        for name, text in stubs.items():
            with open(os.path.join(src, "scripts", name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(src, "scripts", name), 0o755)
        prefix = self.new_prefix("source")
        r = subprocess.run([os.path.join(release, "install.sh")],
                           env=dict(no_binary, LLM_GATEWAY_PREFIX=prefix, LLM_GATEWAY_SOURCE=src),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(src, "build-args")) as f:
            self.assertEqual(f.read().split(), ["release", "llm-gateway"])
        self.assertFalse(os.path.exists(os.path.join(src, "install-deps-ran")))
        self.assertTrue(os.access(os.path.join(prefix, "bin", "llm-gateway"), os.X_OK))

    def test_packages_present_means_no_apt(self):
        wanted = ["libprometheus-cpp-core1.0", "libpqxx-6.4", "libhiredis0.14", "libcaf-core0.17", "libyaml-cpp0.7",
                  "libjemalloc2", "zlib1g", "libssl3", "libsimdjson14", "libstdc++6", "libgcc-s1", "ca-certificates", "postgresql",
                  "redis-server"]
        missing = [p for p in wanted if "install ok installed" not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
        if missing:
            self.skipTest("not all packages installed here (%s): install.sh would run apt-get" % " ".join(missing))
        # apt-get on the PATH is a stub that records any call: there must be none.
        fakebin = os.path.join(self.tmp, "fakebin")
        os.makedirs(fakebin, exist_ok=True)
        marker = os.path.join(self.tmp, "apt-called")
        with open(os.path.join(fakebin, "apt-get"), "w") as f:
            f.write('#!/bin/sh\necho "$@" >> "%s"\nexit 1\n' % marker)
        os.chmod(os.path.join(fakebin, "apt-get"), 0o755)
        prefix = self.new_prefix("pkgs")
        r = install(prefix, {"enableRedis": True}, LLM_GATEWAY_SKIP_PACKAGES="",
                    PATH=fakebin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"all {len(wanted)} Debian packages present", r.stdout)
        self.assertFalse(os.path.exists(marker), "apt-get was called")

    # ---------------------------------------------------------------------------------

    def test_start_script_help_and_missing_config(self):
        prefix = self.new_prefix("help")
        r = install(prefix, {})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        script = os.path.join(prefix, "start_llm_gateway.sh")
        r = subprocess.run([script, "--help"], env=clean_env(), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--config", r.stdout)
        r = subprocess.run([script, "--config", "configs/no-such-config.yaml"], env=clean_env(), cwd=self.tmp,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no-such-config.yaml", r.stderr)
        self.assertIn("not found", r.stderr)
        self.assertIn("model-config-openai.yaml", r.stderr)  # lists the starter configs
        self.assertFalse(os.path.exists(os.path.join(prefix, "data", "postgres")), "services started anyway")

    # ---------------------------------------------------------------------------------

    def start_for_real(self, name, user=None):
        """Installs (startWithDefaults, Redis on) and runs start_llm_gateway.sh without --config,
        as `user` (runuser) or as the caller, with PostgreSQL, Redis and the gateway on ephemeral
        ports; returns once readiness is healthy. Cleanups stop everything."""
        prefix = self.new_prefix(name)
        extra = {"_REMOTE_USER": user} if user else {}
        r = install(prefix, {"startWithDefaults": True, "enableRedis": True, "enableLangfuse": False}, **extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        run = argparse_namespace()
        run.prefix = prefix
        run.script = os.path.join(prefix, "start_llm_gateway.sh")
        run.pg_port, run.redis_port, run.gw_port = free_port(), free_port(), free_port()
        spool = os.path.join(os.path.dirname(prefix), "tmp")
        os.mkdir(spool)
        run.env = clean_env(DATABASE_URL="postgresql://postgres:postgres@localhost:%d/litellm" % run.pg_port,
                            REDIS_PORT=str(run.redis_port), LLM_GATEWAY_PORT=str(run.gw_port), TMPDIR=spool)
        run.as_user = {}
        if user:
            # The user must reach the prefix (the test's temp dirs are mode 700) and write the spool.
            for d in (self.tmp, os.path.dirname(prefix)):
                os.chmod(d, 0o711)
            pw = pwd.getpwnam(user)
            os.chown(spool, pw.pw_uid, -1)
            run.as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        log_path = os.path.join(os.path.dirname(prefix), "start.log")

        def stop_services():
            subprocess.run([run.script, "--stop-services"], env=run.env, capture_output=True, timeout=90,
                           **run.as_user)
            time.sleep(0.2)
            reap()

        self.addCleanup(stop_services)  # also after a failure: no PostgreSQL / Redis left behind
        with open(log_path, "w") as log:
            run.proc = subprocess.Popen([run.script], env=run.env, cwd=prefix, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, **run.as_user)

        def kill_gateway():
            if run.proc.poll() is None:
                os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()

        self.addCleanup(kill_gateway)

        def log_text():
            with open(log_path) as f:
                return f.read()

        run.log = log_text
        run.ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if run.proc.poll() is not None:
                self.fail("start_llm_gateway.sh exited with %s:\n%s" % (run.proc.returncode, log_text()))
            try:
                status, body = call(run.gw_port, "/health/readiness")
                if status == 200 and body.get("status") == "healthy":
                    run.ready = body
                    break
            except OSError:
                pass
            time.sleep(0.2)
        self.assertIsNotNone(run.ready, "not ready in time:\n" + log_text())
        with open(os.path.join(prefix, "data", "postgres", "postmaster.pid")) as f:
            run.pg_pid = int(f.readline())
        with open(os.path.join(prefix, "data", "run", "redis.pid")) as f:
            run.redis_pid = int(f.read())
        return run

    def stop_for_real(self, run):
        # SIGTERM: the script exec'd the gateway, which drains and exits 0.
        os.kill(run.proc.pid, signal.SIGTERM)
        self.assertEqual(run.proc.wait(timeout=40), 0, run.log())
        self.assertFalse(port_open(run.gw_port))
        r = subprocess.run([run.script, "--stop-services"], env=run.env, capture_output=True, text=True,
                           timeout=90, **run.as_user)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (pid_running(run.pg_pid) or pid_running(run.redis_pid)):
            time.sleep(0.1)
            reap(run.pg_pid)
            reap(run.redis_pid)
        self.assertFalse(pid_running(run.pg_pid), "PostgreSQL still runs")
        self.assertFalse(pid_running(run.redis_pid), "Redis still runs")
        self.assertFalse(port_open(run.pg_port) or port_open(run.redis_port))

    def test_start_script_runs_gateway_with_postgres_and_redis(self):
        run = self.start_for_real("run")
        self.assertEqual(run.ready["status"], "healthy")
        self.assertEqual(run.ready["db"], "connected")
        self.assertEqual(run.ready["dependencies"]["redis"]["status"], "ok", run.ready)
        log = run.log()
        # The script migrated before it started the gateway.
        self.assertIn("database schema at version", log.split("start_llm_gateway: LLM Gateway on")[0], log)

        # The script started both servers from the prefix, PostgreSQL not as root.
        self.assertTrue(pid_running(run.pg_pid))
        pg_uid = os.stat("/proc/%d" % run.pg_pid).st_uid
        if os.geteuid() == 0:
            self.assertEqual(pg_uid, pwd.getpwnam("postgres").pw_uid)
        else:
            self.assertEqual(pg_uid, os.geteuid())
        with open("/proc/%d/comm" % run.redis_pid) as f:
            self.assertTrue(f.read().startswith("redis-server"))
        self.assertTrue(port_open(run.pg_port) and port_open(run.redis_port))

        # The startWithDefaults virtual key on the embedded default's mock-gpt; a wrong key fails.
        chat = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}
        status, body = call(run.gw_port, "/v1/chat/completions", chat, key=VIRTUAL_KEY)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["choices"][0]["message"]["content"])
        status, _ = call(run.gw_port, "/v1/chat/completions", chat, key="sk-not-a-key")
        self.assertEqual(status, 401)

        # The master key makes keys; the virtual key may not.
        status, body = call(run.gw_port, "/key/generate", {"models": ["mock-gpt"]}, key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["key"].startswith("sk-"))
        new_key = body["key"]
        status, _ = call(run.gw_port, "/key/generate", {}, key=VIRTUAL_KEY)
        self.assertIn(status, (401, 403))
        status, body = call(run.gw_port, "/v1/chat/completions", chat, key=new_key)
        self.assertEqual(status, 200, body)

        self.stop_for_real(run)

    def test_start_script_as_the_container_user(self):
        # The dev container's user (the feature's _REMOTE_USER) runs the script without root:
        # PostgreSQL runs as that user. Run as root, the other test covers the postgres-user path.
        if os.geteuid() != 0:
            self.skipTest("needs root to switch to another user (as a normal user the other test covers this)")
        run = self.start_for_real("user", user="nobody")
        self.assertEqual(run.ready["db"], "connected")
        self.assertEqual(run.ready["dependencies"]["redis"]["status"], "ok", run.ready)
        nobody = pwd.getpwnam("nobody").pw_uid
        self.assertEqual(os.stat("/proc/%d" % run.pg_pid).st_uid, nobody)
        self.assertEqual(os.stat("/proc/%d" % run.redis_pid).st_uid, nobody)
        status, body = call(run.gw_port, "/v1/chat/completions",
                            {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}, key=VIRTUAL_KEY)
        self.assertEqual(status, 200, body)
        self.stop_for_real(run)

if __name__ == "__main__":
    unittest.main()
