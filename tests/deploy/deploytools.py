"""Helpers shared by the deployment tests."""

import os
import tempfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def gateway_bin():
    """The llm-gateway under test (GW_GATEWAY_BIN, else the dev build); missing is a failure."""
    b = os.environ.get("GW_GATEWAY_BIN") or os.path.join(REPO, "build", "dev", "apps", "gateway", "llm-gateway")
    if not os.access(b, os.X_OK):
        raise AssertionError("no executable llm-gateway at " + b + " (set GW_GATEWAY_BIN)")
    return b


def work_dir():
    """A writable directory for tool builds and caches (GW_DEPLOY_WORK)."""
    d = os.environ.get("GW_DEPLOY_WORK") or tempfile.gettempdir()
    os.makedirs(d, exist_ok=True)
    return d


def flag_value(argv, flag):
    """The value of `flag` in an argument list ("--flag value" or "--flag=value"), or None."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None
