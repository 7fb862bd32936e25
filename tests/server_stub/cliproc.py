"""Run ``imager-server`` admin commands as a user does: a separate process against a real server on loopback."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra):
    """The environment without the IMAGER_* settings the caller may have, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGER_")}
    env["PYTHONPATH"] = str(REPO)  # the checkout's code, from any working directory
    env.update(extra)
    return env


def cli(server, *args, token=True, cwd=None, env=None, stdin="", timeout=30):
    """``python -m server_stub --server URL [--token-file <data>/admin.token] ARGS``."""
    argv = [sys.executable, "-m", "server_stub", "--server", server["url"]]
    if token:
        argv += ["--token-file", str(server["data"] / "admin.token")]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, input=stdin,
                          cwd=cwd or REPO, env=env or clean_env())
