"""Fixtures for the session tests: mcp-edge processes the tests start, stop and restart
themselves ($MCP_EDGE_BIN), and stateful Python SDK replicas (tests/backends/mcp_stateful_server.py).
Everything listens on loopback; every wait has a deadline.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import free_port, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
STATEFUL_SERVER = HERE.parent / "backends" / "mcp_stateful_server.py"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())
    except OSError:
        return None


class Edge:
    """One mcp-edge process on given loopback ports."""

    def __init__(self, key: str, args=(), port: int | None = None, admin: int | None = None):
        binary = os.environ.get("MCP_EDGE_BIN")
        if not binary:
            pytest.fail("set MCP_EDGE_BIN (scripts/test does)")
        self.port, self.admin = port or free_port(), admin or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.admin_url = f"http://127.0.0.1:{self.admin}"
        command = [binary, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}"]
        command += ["--health-interval-ms", "200", "--grace-seconds", "1", "--log", "error", *args]
        self.proc = subprocess.Popen(
            command,
            env={**os.environ, "MCP_EDGE_SESSION_KEY": key},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ready, 30, f"mcp-edge on port {self.port} to be ready")

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"mcp-edge exited with {self.proc.returncode}"
        state = get_json(f"{self.admin_url}/readyz")
        return bool(state) and state["status"] == "ready" and state["healthy_replicas"] == state["replicas"]

    def stop(self) -> int:
        """SIGTERM and wait: the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class StatefulReplica:
    """The official Python SDK server in its default stateful mode."""

    def __init__(self, name: str):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, str(STATEFUL_SERVER), "--port", str(self.port), "--name", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.listening, 30, f"stateful replica {name}")

    def listening(self) -> bool:
        assert self.proc.poll() is None, f"replica {self.name} exited with {self.proc.returncode}"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def key() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def edges():
    """Start edges with `edges(key, ...)`; all are killed at the end of the test."""
    started = []

    def start(key, args=(), port=None, admin=None):
        edge = Edge(key, args, port, admin)
        started.append(edge)
        return edge

    yield start
    for edge in started:
        edge.kill()


@pytest.fixture
def stateful_replicas():
    replicas = [StatefulReplica(f"s{i}") for i in (1, 2, 3)]
    yield replicas
    for replica in replicas:
        replica.kill()
