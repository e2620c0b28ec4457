"""Fixtures for the session tests: mcp-edge processes the tests start, stop and restart
themselves ($MCP_EDGE_BIN), and stateful Python SDK replicas (tests/backends/mcp_stateful_server.py).
Everything listens on loopback; every wait has a deadline.
"""

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import support  # noqa: E402
from support import free_port, get_json, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
STATEFUL_SERVER = HERE.parent / "backends" / "mcp_stateful_server.py"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Edge(support.Edge):
    """mcp-edge ($MCP_EDGE_BIN) with session key `key`, quick health checks and a short grace."""

    def __init__(self, key: str, args=(), port: int | None = None, admin: int | None = None):
        binary = os.environ.get("MCP_EDGE_BIN")
        if not binary:
            pytest.fail("set MCP_EDGE_BIN (scripts/test does)")
        super().__init__(binary, ["--health-interval-ms", "200", "--grace-seconds", "1", "--log", "error", *args],
                         port=port, admin=admin, env={"MCP_EDGE_SESSION_KEY": key})


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
