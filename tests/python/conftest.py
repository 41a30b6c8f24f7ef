"""Shared fixtures of the Python tests: a real JobManager daemon on a free port with a private SAGE_HOME."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PYTHON = os.environ.get("SAGE_PYTHON", sys.executable)
UNDER_ASAN = os.environ.get("SAGE_SANITIZE") == "address"


def sage_cli() -> str:
    cli = os.environ.get("SAGE_CLI")
    if not cli:
        cand = HERE.parent.parent / "build" / "cli" / "sage"
        cli = str(cand)
    if not os.access(cli, os.X_OK):
        pytest.skip(f"the sage program is not built ({cli}); ctest sets SAGE_CLI")
    return cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JobManager:
    """A daemon started with `sage jobmanager start` (which returns once it listens), stopped at teardown."""

    def __init__(self, config: str | None = None) -> None:
        self.cli = sage_cli()
        self.home = tempfile.mkdtemp(prefix="sage-pytest-jm-")
        self.env = dict(os.environ, SAGE_HOME=self.home)
        self.env.pop("SAGE_TOKEN_FILE", None)
        self.port = 0
        last = ""
        for _ in range(3):  # another test may take the port between our probe and the daemon's bind
            port = free_port()
            cmd = [self.cli, "jobmanager", "start", "--port", str(port), "--home", self.home]
            if config:
                cmd += ["--config", config]
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                self.port = port
                break
            last = r.stdout + r.stderr
        if not self.port:
            raise RuntimeError(f"the JobManager did not start: {last}")

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command of the sage CLI against this daemon."""
        return subprocess.run([self.cli, *args, "--port", str(self.port)], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def python(self, script: str, *args: str, timeout: float = 240, cwd: str | None = None) -> subprocess.CompletedProcess:
        """Run a Python script (which uses a RemoteEnvironment on this daemon) as a program of its own: the
        JobManager relaunches it per worker."""
        return subprocess.run([PYTHON, script, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd)

    def stop(self) -> None:
        if self.port:
            self.run("jobmanager", "stop", timeout=60)
            self.port = 0
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def jobmanager():
    jm = JobManager('{"node": {"cpus": 4, "gpus": 2, "memory": "16GB"}}')
    try:
        yield jm
    finally:
        jm.stop()
