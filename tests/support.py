"""The Python harness the test suites and the benchmarks share: free loopback ports, waits with
a deadline, and mcp-edge processes (tests/*/conftest.py and benches/compare.py build on it).
Everything listens on loopback."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def get_json(url: str):
    """The JSON body at `url` (an error status's too); `None` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())
    except OSError:
        return None


class Edge:
    """One mcp-edge process on loopback ports (given, or free ones), `args` after its listen
    addresses, `env` added to the environment; ready once every replica it has is healthy.
    `url` is https:// when `args` give it a certificate."""

    def __init__(self, binary, args=(), *, port: int | None = None, admin: int | None = None,
                 env: dict | None = None, ready_seconds: float = 30):
        self.port, self.admin = port or free_port(), admin or free_port()
        scheme = "https" if "--tls-cert" in map(str, args) else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/mcp"
        self.admin_url = f"http://127.0.0.1:{self.admin}"
        command = [str(binary), "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                   *map(str, args)]
        self.proc = subprocess.Popen(command, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ready, ready_seconds, f"mcp-edge on port {self.port} to be ready")

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"mcp-edge exited with {self.proc.returncode}"
        state = get_json(f"{self.admin_url}/readyz")
        return bool(state) and state["status"] == "ready" and state["healthy_replicas"] == state["replicas"]

    def metric(self, line_start: str) -> float:
        """The value of the first /metrics sample whose line starts with `line_start` (0 when
        there is none)."""
        with urllib.request.urlopen(f"{self.admin_url}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(line_start):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def rss_kib(self) -> int:
        """The process's resident memory now, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            return int(next(line for line in status if line.startswith("VmRSS")).split()[1])

    def stop(self, timeout: float = 30):
        """SIGTERM and wait (killed past `timeout`): the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
