"""Static checks of deploy/docker/Dockerfile (no Docker engine here), plus its HEALTHCHECK
and CMD run against the real binary.

Environment: GW_GATEWAY_BIN (the llm-gateway binary), GW_DEPLOY_WORK (a writable directory).
"""

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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DOCKERFILE = os.path.join(REPO, "deploy", "docker", "Dockerfile")
DOCKERIGNORE = os.path.join(REPO, ".dockerignore")

# Packages the runtime image may install beyond the owners of the binary's NEEDED libraries,
# each with evidence in the binary that it needs them.
ALLOWED_EXTRAS = {
    # HTTPS to providers verifies against the system trust store.
    "ca-certificates": [b"SSL_CTX_set_default_verify_paths", b"/etc/ssl/certs"],
    # litellm_settings.timezone: IANA zone files.
    "tzdata": [b"/usr/share/zoneinfo"],
}


# ---------------------------------------------------------------- Dockerfile parsing


class Instr:
    def __init__(self, kw, args, stage, line):
        self.kw, self.args, self.stage, self.line = kw, args, stage, line

    def __repr__(self):
        return "%d: %s %s" % (self.line, self.kw, self.args)


def parse_dockerfile(text):
    """Returns (global_args, stages); a stage is {"name", "image", "instrs"}.
    Line continuations (backslash-newline) are joined as Docker does; comment lines and
    empty lines inside a continuation are dropped."""
    instrs = []
    cur, start = None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if cur is None:
            if not s or s.startswith("#"):
                continue
            cur, start = "", n
        elif not s or s.startswith("#"):
            continue
        body = raw.rstrip()
        if body.endswith("\\"):
            cur += body[:-1]
            continue
        cur += body
        kw, _, rest = cur.strip().partition(" ")
        instrs.append((kw.upper(), rest.strip(), start))
        cur = None
    if cur is not None:
        raise AssertionError("Dockerfile ends inside a line continuation")
    global_args, stages = [], []
    for kw, rest, line in instrs:
        if kw == "FROM":
            toks = rest.split()
            toks = [t for t in toks if not t.startswith("--platform")]
            name = toks[2] if len(toks) >= 3 and toks[1].upper() == "AS" else None
            stages.append({"name": name, "image": toks[0], "instrs": [], "line": line})
        elif not stages:
            if kw != "ARG":
                raise AssertionError("instruction before the first FROM: %s" % kw)
            global_args.append(Instr(kw, rest, -1, line))
        else:
            stages[-1]["instrs"].append(Instr(kw, rest, len(stages) - 1, line))
    return global_args, stages


def exec_form(args):
    """The JSON (exec) form of CMD/ENTRYPOINT/RUN/HEALTHCHECK CMD, or None for shell form."""
    if args.startswith("["):
        v = json.loads(args)
        assert isinstance(v, list) and all(isinstance(x, str) for x in v), args
        return v
    return None


def copy_parts(instr):
    """(flags, sources, dest) of a COPY/ADD."""
    toks = exec_form(instr.args)
    if toks is None:
        toks = shlex.split(instr.args)
    flags = {}
    while toks and toks[0].startswith("--"):
        k, _, v = toks.pop(0)[2:].partition("=")
        flags[k] = v
    assert len(toks) >= 2, "COPY needs a source and a destination: %r" % instr
    return flags, toks[:-1], toks[-1]


# ---------------------------------------------------------------- .dockerignore


def glob_to_re(pat):
    out, i = "", 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**", i):
            i += 2
            if i < len(pat) and pat[i] == "/":
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pat.find("]", i)
            if j < 0:
                out += re.escape(c)
            else:
                out += pat[i:j + 1]
                i = j + 1
                continue
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def load_dockerignore():
    rules = []
    with open(DOCKERIGNORE) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            neg = s.startswith("!")
            if neg:
                s = s[1:].strip()
            s = os.path.normpath(s.lstrip("/"))
            rules.append((neg, glob_to_re(s)))
    return rules


def ignored(rules, rel):
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    rel = os.path.normpath(rel)
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for neg, rx in rules:
        if any(rx.match(c) for c in candidates):
            result = not neg
    return result


# ---------------------------------------------------------------- the binary's packages


def needed_libs(binary):
    out = subprocess.run(["readelf", "-d", "-W", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def resolve_libs(binary, names):
    """NEEDED name -> file, from ldd (the loader's own answer), else ldconfig -p."""
    paths = {}
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
    for m in re.finditer(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.M):
        paths[m.group(1)] = m.group(2)
    for m in re.finditer(r"^\s*(/\S+) \(0x", ldd.stdout, re.M):  # the loader itself
        paths.setdefault(os.path.basename(m.group(1)), m.group(1))
    missing = [n for n in names if n not in paths]
    if missing:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        for n in missing:
            m = re.search(r"^\s*" + re.escape(n) + r" \([^)]*\) => (\S+)", cache, re.M)
            if m:
                paths[n] = m.group(1)
    return {n: paths.get(n) for n in names}


def owning_package(path):
    """dpkg -S, trying the path, its real path, and their /usr-merged twins."""
    cands = []
    for p in (path, os.path.realpath(path)):
        cands.append(p)
        if p.startswith("/usr/lib/"):
            cands.append(p[len("/usr"):])
        elif p.startswith("/lib"):
            cands.append("/usr" + p)
    for c in dict.fromkeys(cands):
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            owners, sep, owned = line.partition(": ")
            if sep and owned.strip() == c and not owners.startswith("diversion"):
                return {o.strip().split(":")[0] for o in owners.split(",")}
    return None


# ---------------------------------------------------------------- running the binary


def free_port_holder():
    """A TCP socket bound to an ephemeral port and not listening: connections are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


class Gateway:
    """The real binary with the embedded default config, on an ephemeral port."""

    def __init__(self, binary, tmp, extra_env=None):
        self.port_file = os.path.join(tmp, "port")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp}
        env.update(extra_env or {})
        self.log = open(os.path.join(tmp, "gateway.log"), "wb")
        self.proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--port-file", self.port_file],
                                     cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        self.port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited with %s: %s" % (self.proc.returncode, self.read_log()))
            try:
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise AssertionError("gateway wrote no port file: " + self.read_log())

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# ---------------------------------------------------------------- tests


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOCKERFILE) as f:
            cls.text = f.read()
        cls.global_args, cls.stages = parse_dockerfile(cls.text)
        assert len(cls.stages) >= 2, "a multi-stage Dockerfile is expected"
        cls.build = cls.stages[0]
        cls.runtime = cls.stages[-1]
        cls.ignore = load_dockerignore()

    def instrs(self, stage, kw):
        return [i for i in stage["instrs"] if i.kw == kw]

    def one(self, stage, kw):
        found = self.instrs(stage, kw)
        self.assertTrue(found, "%s missing in stage %s" % (kw, stage["name"]))
        return found[-1]  # the last one is the one that counts

    def stage_names(self):
        return [s["name"] for s in self.stages if s["name"]]

    # ---- stages and context

    def test_parser_joins_continuations(self):
        _, st = parse_dockerfile("FROM a AS b\nRUN x \\\n  # comment\n\n  y\nCMD [\"z\"]\n")
        self.assertEqual([(i.kw, i.args) for i in st[0]["instrs"]], [("RUN", "x   y"), ("CMD", '["z"]')])
        self.assertEqual(st[0]["name"], "b")

    def test_stages_are_debian_bookworm(self):
        self.assertEqual(self.build["image"], "debian:bookworm")
        self.assertTrue(self.build["name"], "the build stage needs a name for COPY --from")
        self.assertEqual(self.runtime["image"], "debian:bookworm-slim")

    def test_context_sources_exist_and_are_not_ignored(self):
        copies = 0
        for stage in self.stages:
            for ins in stage["instrs"]:
                if ins.kw not in ("COPY", "ADD"):
                    continue
                flags, sources, _ = copy_parts(ins)
                if "from" in flags:
                    continue
                for src in sources:
                    copies += 1
                    rel = os.path.normpath(src)
                    path = os.path.join(REPO, rel)
                    self.assertTrue(os.path.exists(path), "%r copies %s, which does not exist" % (ins, src))
                    self.assertFalse(ignored(self.ignore, rel), "%r copies %s, excluded by .dockerignore" % (ins, src))
                    if os.path.isdir(path):
                        kept = [os.path.relpath(os.path.join(d, f), REPO) for d, _, fs in os.walk(path) for f in fs]
                        kept = [k for k in kept if not ignored(self.ignore, k)]
                        self.assertTrue(kept, "%r: every file under %s is excluded by .dockerignore" % (ins, src))
        self.assertGreater(copies, 0)

    def test_dockerignore_keeps_junk_out(self):
        for rel in ["build", "build/dev/apps/gateway/llm-gateway", ".git", ".git/config",
                    "tests/sdk/node_modules/x/index.js", ".env", "libs/x/__pycache__/a.pyc"]:
            self.assertTrue(ignored(self.ignore, rel), rel + " should be excluded from the build context")
        for rel in ["CMakeLists.txt", "libs", "apps", "cmake", "scripts/build.sh", "configs/model-config-mock.yaml"]:
            self.assertFalse(ignored(self.ignore, rel), rel + " must stay in the build context")

    def test_build_stage_copies_every_cmake_input(self):
        copied = set()
        for ins in self.instrs(self.build, "COPY"):
            flags, sources, _ = copy_parts(ins)
            if "from" not in flags:
                copied |= {os.path.normpath(s) for s in sources}
        if "." in copied:
            return  # the whole context
        with open(os.path.join(REPO, "CMakeLists.txt")) as f:
            top = f.read()
        dirs = set()
        for m in re.finditer(r"foreach\(\s*\w+\s+([^)]*)\)", top):
            dirs |= set(m.group(1).split())
        dirs |= set(re.findall(r"add_subdirectory\(\s*([\w/.-]+)\s*\)", top))
        self.assertIn("libs/gateway", dirs, "CMakeLists.txt layout changed: update this test")
        run_text = " ".join(i.args for i in self.instrs(self.build, "RUN"))
        optional = {"tests": "-DGW_BUILD_TESTS=OFF", "benchmarks": "-DGW_BUILD_BENCHMARKS=OFF"}
        for d in sorted(dirs | {"CMakeLists.txt", "cmake"}):
            covered = any(d == c or d.startswith(c + "/") for c in copied)
            if not covered and d.split("/")[0] in optional:
                self.assertIn(optional[d.split("/")[0]], run_text, d + " is not copied, so it must be turned off")
                continue
            self.assertTrue(covered, d + " (a CMake input) is not copied into the build stage")

    def test_run_scripts_exist_and_are_executable(self):
        seen = []
        copied = []
        for ins in self.build["instrs"]:
            if ins.kw == "COPY":
                flags, sources, _ = copy_parts(ins)
                if "from" not in flags:
                    copied += [os.path.normpath(s) for s in sources]
            if ins.kw != "RUN":
                continue
            for m in re.finditer(r"(?:^|[\s;&|(])(?:\./)?(scripts/[\w./-]+)", ins.args):
                rel = m.group(1)
                path = os.path.join(REPO, rel)
                self.assertTrue(os.path.isfile(path), "%r runs %s, which does not exist" % (ins, rel))
                self.assertTrue(os.access(path, os.X_OK), rel + " is not executable")
                self.assertTrue(any(rel == c or rel.startswith(c + "/") for c in copied),
                                "%r runs %s before it is copied" % (ins, rel))
                seen.append((rel, ins.args))
        cmds = " ".join(a for _, a in seen)
        self.assertRegex(cmds, r"scripts/install-deps\.sh --run\b")
        self.assertRegex(cmds, r"scripts/build\.sh release llm-gateway\b")

    def test_gw_march_reaches_cmake(self):
        args = {}
        for ins in self.global_args + self.instrs(self.build, "ARG"):
            k, _, v = ins.args.partition("=")
            args[k.strip()] = v.strip().strip('"')
        with open(os.path.join(REPO, "cmake", "GatewayTarget.cmake")) as f:
            m = re.search(r'set\(GW_MARCH "([^"]*)"', f.read())
        self.assertIsNotNone(m, "cmake/GatewayTarget.cmake no longer sets a GW_MARCH default")
        self.assertEqual(args.get("GW_MARCH"), m.group(1), "ARG GW_MARCH default must match the project's")
        run_text = " ".join(i.args for i in self.instrs(self.build, "RUN"))
        self.assertRegex(run_text, r'GW_CMAKE_ARGS="[^"]*-DGW_MARCH=\$\{?\w+\}?')
        with open(os.path.join(REPO, "scripts", "build.sh")) as f:
            self.assertIn("GW_CMAKE_ARGS", f.read(), "scripts/build.sh ignores GW_CMAKE_ARGS")

    def test_binary_is_copied_from_the_build_stage(self):
        names = []
        found = None
        for stage in self.stages:
            for ins in self.instrs(stage, "COPY"):
                flags, sources, dest = copy_parts(ins)
                if "from" in flags:
                    self.assertIn(flags["from"], names, "%r: COPY --from names no earlier stage" % ins)
                    if dest == "/usr/local/bin/llm-gateway":
                        found = (flags["from"], sources[0])
            names.append(stage["name"])
        self.assertIsNotNone(found, "the runtime stage does not install /usr/local/bin/llm-gateway")
        stage = next(s for s in self.stages if s["name"] == found[0])
        workdir = self.one(stage, "WORKDIR").args
        flavour = re.search(r"scripts/build\.sh (\w+)", " ".join(i.args for i in self.instrs(stage, "RUN"))).group(1)
        self.assertEqual(os.path.normpath(found[1]),
                         os.path.join(workdir, "build", flavour, "apps", "gateway", "llm-gateway"),
                         "COPY --from copies something the build did not produce")

    # ---- runtime stage

    def apt_install(self):
        runs = [i for i in self.instrs(self.runtime, "RUN") if "apt-get install" in i.args]
        self.assertEqual(len(runs), 1, "one apt-get install in the runtime stage")
        toks = shlex.split(runs[0].args)
        i = toks.index("install")
        pkgs, opts = [], []
        for t in toks[i + 1:]:
            if t in ("&&", ";", "||", "|"):
                break
            (opts if t.startswith("-") else pkgs).append(t)
        return runs[0], pkgs, opts

    def test_runtime_packages_are_exactly_the_binarys(self):
        binary = gateway_bin()
        names = needed_libs(binary)
        self.assertTrue(names, "no NEEDED entries: a static binary?")
        files = resolve_libs(binary, names)
        unresolved = [n for n, p in files.items() if not p]
        self.assertEqual(unresolved, [], "NEEDED libraries not found on this system")
        owners = {}
        for n, p in files.items():
            pk = owning_package(p)
            self.assertTrue(pk, "no Debian package owns %s (%s)" % (p, n))
            owners[n] = pk
        wanted = set()
        for pk in owners.values():
            wanted |= pk
        with open(binary, "rb") as f:
            data = f.read()
        for extra, evidence in ALLOWED_EXTRAS.items():
            self.assertTrue(any(e in data for e in evidence), "%s is allowed but nothing in the binary needs it" % extra)
        ins, pkgs, opts = self.apt_install()
        listed = set(pkgs)
        self.assertEqual(len(pkgs), len(listed), "a package is listed twice")
        self.assertIn("ca-certificates", listed)
        missing = wanted - listed
        extra = listed - wanted - set(ALLOWED_EXTRAS)
        self.assertEqual(missing, set(), "runtime stage lacks packages of NEEDED libraries: %s" % owners)
        self.assertEqual(extra, set(), "runtime stage installs packages the binary does not need")
        self.assertIn("--no-install-recommends", opts)
        self.assertRegex(ins.args, r"apt-get update\b.*&&.*apt-get install")
        self.assertRegex(ins.args, r"rm -rf /var/lib/apt/lists/\*")

    def test_runs_as_numeric_non_root(self):
        user = self.one(self.runtime, "USER").args
        m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
        self.assertIsNotNone(m, "USER must be numeric (uid[:gid]) so runAsNonRoot / ECS can verify it: " + user)
        self.assertNotEqual(int(m.group(1)), 0)
        if m.group(2):
            self.assertNotEqual(int(m.group(2)), 0)
        run_text = " ".join(i.args for i in self.instrs(self.runtime, "RUN"))
        self.assertRegex(run_text, r"useradd\b[^&;]*--uid %s\b" % m.group(1), "the user is not created with that uid")
        if m.group(2):
            self.assertRegex(run_text, r"groupadd\b[^&;]*--gid %s\b" % m.group(2))

    def test_entrypoint_cmd_expose(self):
        ep = exec_form(self.one(self.runtime, "ENTRYPOINT").args)
        self.assertEqual(ep, ["/usr/local/bin/llm-gateway"])
        cmd = exec_form(self.one(self.runtime, "CMD").args)
        self.assertIsNotNone(cmd, "CMD in exec form")
        exposed = self.one(self.runtime, "EXPOSE").args.split()
        self.assertEqual(len(exposed), 1, "one port")
        self.assertEqual(exposed[0].split("/")[0], flag_value(cmd, "--port"), "EXPOSE and CMD --port differ")
        self.assertEqual(flag_value(cmd, "--host"), "0.0.0.0", "a container must listen on every interface")
        # The real binary accepts CMD's flags.
        with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
            r = subprocess.run([gateway_bin()] + cmd + ["--check-config"], cwd=tmp, capture_output=True, text=True,
                               timeout=20, env={"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("is valid", r.stdout)

    def test_stopsignal_volume_labels_workdir(self):
        self.assertEqual(self.one(self.runtime, "STOPSIGNAL").args, "SIGTERM")
        vols = []
        for ins in self.instrs(self.runtime, "VOLUME"):
            vols += exec_form(ins.args) or ins.args.split()
        self.assertIn("/tmp", vols, "VOLUME /tmp: the only writable path (spend spool)")
        labels = " ".join(i.args for i in self.instrs(self.runtime, "LABEL"))
        self.assertIn("org.opencontainers.image.title=", labels)
        self.assertIn("org.opencontainers.image.description=", labels)
        self.assertNotEqual(self.one(self.runtime, "WORKDIR").args, "/tmp")
        self.assertIn("configs/", [copy_parts(i)[1][0] for i in self.instrs(self.runtime, "COPY")])

    def healthcheck_argv(self):
        hc = self.one(self.runtime, "HEALTHCHECK").args
        m = re.match(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.*)", hc, re.S)
        self.assertIsNotNone(m, "HEALTHCHECK [options] CMD ...: " + hc)
        opts = dict(re.findall(r"--([\w-]+)=(\S+)", m.group(1)))
        argv = exec_form(m.group(2).strip())
        self.assertIsNotNone(argv, "HEALTHCHECK CMD in exec form (no shell, no curl)")
        return opts, argv

    def test_healthcheck_uses_the_binary(self):
        opts, argv = self.healthcheck_argv()
        ep = exec_form(self.one(self.runtime, "ENTRYPOINT").args)
        self.assertEqual(argv[0], ep[0])
        self.assertEqual(argv[1], "healthcheck")
        self.assertNotIn("curl", " ".join(argv))
        exposed = self.one(self.runtime, "EXPOSE").args.split()[0].split("/")[0]
        self.assertEqual(flag_value(argv, "--port") or "4000", exposed, "the health check probes another port")
        self.assertIn(flag_value(argv, "--path") or "/health/liveliness", ("/health/liveliness", "/health/readiness"))
        for k in ("interval", "timeout"):
            self.assertIn(k, opts)
        secs = lambda v: float(v.rstrip("s"))
        self.assertLess(secs(opts["timeout"]), secs(opts["interval"]))

    def test_healthcheck_command_works_against_the_real_binary(self):
        _, argv = self.healthcheck_argv()
        binary = gateway_bin()

        def run(port, **kw):
            a = [binary] + argv[1:]
            if "--port" in a:
                a[a.index("--port") + 1] = str(port)
            else:
                a += ["--port", str(port)]
            for k, v in kw.items():
                a += ["--" + k, v]
            return subprocess.run(a, capture_output=True, text=True, timeout=15)

        with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
            gw = Gateway(binary, tmp)
            try:
                r = run(gw.port)
                self.assertEqual(r.returncode, 0, "healthcheck failed against a running gateway: " + r.stdout + r.stderr)
                r = run(gw.port, path="/health/readiness")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = run(gw.port, path="/no/such/route")
                self.assertEqual(r.returncode, 1, "a non-200 answer must fail the health check")
            finally:
                rc = gw.stop()
                self.assertEqual(rc, 0, "SIGTERM should exit 0: " + gw.read_log())
            holder, closed = free_port_holder()
            try:
                r = run(closed)
                self.assertEqual(r.returncode, 1, "healthcheck against a closed port must exit 1: " + r.stdout + r.stderr)
            finally:
                holder.close()


if __name__ == "__main__":
    unittest.main()
