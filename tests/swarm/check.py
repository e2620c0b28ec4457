#!/usr/bin/env python3
"""The Swarm stack's promises, checked on a running stack (`scripts/swarm up` deploys it).

Load comes from mcp-load tasks inside the stack's overlay network, reaching the edge tasks
through `tasks.edge` (every task's address: this kernel has no IPVS, so Swarm's virtual IPs and
routing mesh cannot work here) with `--spread`, the way DNS round robin spreads real clients.
Each check starts its loads, does what it tests to the stack, and reads the loads' reports:
requests, errors by kind, and which backend task answered and when (first and last seen).
Every load is bounded in time, every wait has a deadline. The figures are printed as a table
and written to results/swarm/figures.json.

    python3 tests/swarm/check.py --docker docker --stack mcp --token-file F ...
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ARGS: argparse.Namespace
FIGURES: list[dict] = []
FAILURES: list[str] = []


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run([ARGS.docker, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def wait(what: str, seconds: float, condition):
    """Poll `condition` until it returns something true; fail after `seconds`."""
    deadline = time.time() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.2)


def service(name: str) -> str:
    return f"{ARGS.stack}_{name}"


def tasks(name: str, healthy: bool = True) -> dict[str, str]:
    """Running containers of a stack service: replica id (the container's host name) → id."""
    filters = ["--filter", f"label=com.docker.swarm.service.name={service(name)}"]
    if healthy:
        filters += ["--filter", "health=healthy"]
    ids = docker("ps", "-q", *filters).split()
    if not ids:
        return {}
    out = {}
    for line in docker("inspect", "--format", "{{.Config.Hostname}} {{.Id}}", *ids).splitlines():
        hostname, cid = line.split()
        out[hostname] = cid
    return out


def healthy_since(cid: str) -> float:
    """When a container's first health check passed (UNIX time)."""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", cid))
    passed = [entry["End"] for entry in (state.get("Health") or {}).get("Log", []) if entry["ExitCode"] == 0]
    return parse_time(min(passed)) if passed else time.time()


def parse_time(text: str) -> float:
    # Docker's RFC 3339 with nanoseconds: keep microseconds for Python.
    date, _, rest = text.partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    zone = rest[len("".join(c for c in rest if c.isdigit())):]
    zone = "+00:00" if zone in ("Z", "") else zone
    from datetime import datetime

    return datetime.fromisoformat(f"{date}.{fraction or '0'}{zone}").timestamp()


class Load:
    """An mcp-load task inside the overlay network."""

    count = 0

    def __init__(self, label: str, *args: str, seconds: float):
        Load.count += 1
        self.label = label
        self.name = f"check-{os.getpid()}-{Load.count}-{label}"
        token = Path(ARGS.token_file).read_text().strip()
        self.id = docker(
            "service", "create", "--detach", "--name", self.name, "--label", "mcp-edge-check",
            "--mode", "replicated-job", "--restart-condition", "none", "--network", f"{ARGS.stack}_{ARGS.network}",
            ARGS.load_image,
            "--url", "http://tasks.edge:8150/mcp", "--spread", "--json", "--progress-interval", "0.5",
            "-H", f"Authorization: Bearer {token}", "-d", str(seconds), "--timeout", "10", *args,
        ).strip()
        self.cid = wait(f"{self.name} to start", 60, self._container)

    def _container(self) -> str | None:
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.id={self.id}").split()
        return ids[0] if ids else None

    def progress(self) -> dict:
        """The load's last progress line (sent, errors, replicas that answered so far)."""
        done = subprocess.run([ARGS.docker, "logs", self.cid], capture_output=True, text=True, timeout=30)
        lines = [line for line in done.stderr.splitlines() if line.startswith('{"elapsed_s"')]
        return json.loads(lines[-1]) if lines else {"sent": 0, "errors": 0, "replicas": []}

    def running(self, at_least: int = 100):
        wait(f"{self.label} to send {at_least} requests", 60, lambda: self.progress()["sent"] >= at_least)
        return self

    def answered_by(self, replicas: set[str], seconds: float = 60):
        """Wait until every one of `replicas` has answered this load."""
        wait(f"{self.label} to be answered by {sorted(replicas)}", seconds, lambda: replicas <= set(self.progress()["replicas"]))

    def stop(self):
        docker("kill", "--signal", "TERM", self.cid, check=False)

    def report(self, seconds: float = 180) -> dict:
        wait(f"{self.label} to finish", seconds, lambda: docker("inspect", "--format", "{{.State.Status}}", self.cid).strip() == "exited")
        out = subprocess.run([ARGS.docker, "logs", self.cid], capture_output=True, text=True, timeout=30).stdout
        docker("service", "rm", self.name, check=False)
        docker("rm", "--force", self.cid, check=False)
        reports = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"requests"' in line]
        if not reports:
            raise RuntimeError(f"{self.label}: no report in the load's output:\n{out[-2000:]}")
        return reports[-1]


def stateless(seconds: float, *extra: str) -> Load:
    # The template's workload: tools/call echo from 50 clients at once.
    return Load("stateless", "--scenario", "stateless", "-c", "50", *extra, seconds=seconds)


def legacy(seconds: float, *extra: str) -> Load:
    # 5 legacy sessions held for the whole run: a session lost is a 404, counted as an error.
    return Load("legacy", "--scenario", "legacy-session", "-c", "5", "--calls-per-session", "100000000", *extra, seconds=seconds)


def record(check: str, loads: list[tuple[str, dict]], ok: bool, **figures):
    row = {"check": check, "ok": ok, **figures}
    for label, report in loads:
        row[label] = {
            "requests": report["requests"],
            "errors": report["errors"],
            "errors_by_kind": report["errors_by_kind"],
            "rps": round(report["throughput_rps"]),
            "retried": report.get("retried", 0),
            "served_by": report["served_by"],
        }
    FIGURES.append(row)
    print(f"[{'ok' if ok else 'FAILED'}] {check}: " + "; ".join(
        f"{label} {r['requests']} requests, {r['errors']} errors" + (f", {r['retried']} retried" if r.get("retried") else "")
        for label, r in loads) + "".join(f"; {k} {v}" for k, v in figures.items()), flush=True)
    if not ok:
        FAILURES.append(check)


def no_errors(*reports: dict) -> bool:
    return all(r["errors"] == 0 and r["requests"] > 0 for r in reports)


def shares(report: dict) -> dict[str, float]:
    total = sum(report["served_by"].values()) or 1
    return {k: round(100 * v / total, 1) for k, v in sorted(report["served_by"].items())}


def check_spread():
    backends = tasks("backend")
    a, b = stateless(10), legacy(10)
    ra, rb = a.report(), b.report()
    every = set(ra["served_by"]) == set(backends) and all(v > 0 for v in ra["served_by"].values())
    record("template workload and legacy sessions over 3 backend tasks", [("stateless", ra), ("legacy", rb)],
           no_errors(ra, rb) and every, share_percent=shares(ra))


def check_backend_killed():
    before = tasks("backend")
    a, b = stateless(150).running(), legacy(150).running(20)
    victim, cid = sorted(before.items())[0]
    killed_at = time.time()
    docker("kill", cid)
    new = wait("a replacement backend task to be healthy", 90, lambda: set(tasks("backend")) - set(before))
    replacement = sorted(new)[0]
    healthy_at = healthy_since(tasks("backend")[replacement])
    try:
        a.answered_by({replacement})
    finally:
        a.stop(); b.stop()
    ra, rb = a.report(), b.report()
    first = ra["first_seen_unix_s"].get(replacement)
    readmitted = first is not None
    record("a backend task killed under load", [("stateless", ra), ("legacy", rb)], no_errors(ra, rb) and readmitted,
           killed=victim, replacement=replacement,
           replacement_healthy_after_kill_s=round(healthy_at - killed_at, 1),
           traffic_after_healthy_s=round(first - healthy_at, 1) if readmitted else None,
           traffic_after_kill_s=round(first - killed_at, 1) if readmitted else None)


def check_update(name: str, *extra: str):
    before = set(tasks(name))
    a, b = stateless(150, *extra).running(), legacy(150, *extra).running(20)
    started = time.time()
    docker("service", "update", "--force", "--detach=false", service(name), timeout=240)
    took = time.time() - started
    after = wait(f"{name} tasks to be healthy", 60, lambda: (lambda t: set(t) if len(t) >= len(before) and not set(t) & before else None)(tasks(name)))
    try:
        if name == "backend":
            a.answered_by(after)
    finally:
        a.stop(); b.stop()
    ra, rb = a.report(), b.report()
    figures = {"update_s": round(took, 1)}
    if name == "backend":
        figures["new_tasks_serving"] = sum(1 for t in after if t in ra["served_by"])
        ok = no_errors(ra, rb) and figures["new_tasks_serving"] == len(after)
    else:
        ok = no_errors(ra, rb)
    what = {"backend": "docker service update --force backend (rolling, start-first) under load",
            "edge": "docker service update --force edge under load, live legacy sessions, clients retrying refused connections"}[name]
    record(what, [("stateless", ra), ("legacy", rb)], ok, **figures)


def check_scale():
    before = set(tasks("backend"))
    a = stateless(150).running()
    scaled_at = time.time()
    docker("service", "scale", "--detach=false", f"{service('backend')}=5", timeout=180)
    current = wait("5 healthy backend tasks", 90, lambda: (lambda t: t if len(t) >= 5 else None)(tasks("backend")))
    new = sorted(set(current) - before)
    if len(new) != 2:
        raise RuntimeError(f"scaling 3 → 5 started {len(new)} new tasks: {new}")
    healthy = {t: healthy_since(current[t]) for t in new}
    try:
        a.answered_by(set(new))
        docker("service", "scale", "--detach=false", f"{service('backend')}=3", timeout=180)
        wait("3 backend tasks", 90, lambda: len(tasks("backend", healthy=False)) == 3)
        # Answered again after the scale-down: the load went on through it.
        sent = a.progress()["sent"]
        wait("the load to go on after the scale-down", 30, lambda: a.progress()["sent"] > sent + 100)
    finally:
        a.stop()
    ra = a.report()
    delays = {t: round(ra["first_seen_unix_s"][t] - healthy[t], 1) for t in new if t in ra["first_seen_unix_s"]}
    ok = no_errors(ra) and len(delays) == len(new) and all(d <= 10 for d in delays.values())
    record("docker service scale backend=5, then back to 3, under load", [("stateless", ra)], ok,
           scale_up_s=round(min(healthy.values(), default=scaled_at) - scaled_at, 1),
           new_task_traffic_after_healthy_s=delays)


def check_revoke():
    # One caller (the load's one token) mints a session every loop: at full speed that is past
    # --session-rate-limit (50 a second per caller, 500 at once, per edge task), which answers
    # 429 by design. 150 requests a second (initialize, DELETE, the other task's 404: some 50
    # sessions a second over two tasks) stays within it.
    load = Load("revoke", "--scenario", "revoke", "-c", "4", "--rate", "150", seconds=3)
    r = load.report()
    ok = no_errors(r)
    record("a DELETE on one edge task ends the session on the other", [("revoke", r)], ok,
           refused_elsewhere_after_ms={"p50": round(r["latency_us"]["p50"] / 1000, 1), "max": round(r["latency_us"]["max"] / 1000, 1)})


def check_published_port():
    # The routing mesh (ingress) needs IPVS, which this kernel lacks: say what 8150 does here.
    try:
        with socket.create_connection(("127.0.0.1", 8150), timeout=2) as s:
            s.settimeout(2)
            s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            ingress = "answers" if s.recv(1) else "closes"
    except OSError as e:
        ingress = f"does not answer ({type(e).__name__})"
    # The closest real thing: an edge publishing its port in host mode, reached on loopback.
    port = free_port()
    token = Path(ARGS.token_file).read_text().strip()
    name = "check-edge-host"
    docker("service", "create", "--detach", "--name", name, "--label", "mcp-edge-check", "--mode", "global",
           "--network", f"{ARGS.stack}_{ARGS.network}", "--publish", f"mode=host,target=8150,published={port}",
           "--secret", "mcp_edge_session_key", "--secret", "mcp_edge_auth_tokens",
           "--env", "MCP_EDGE_SESSION_KEY_FILE=/run/secrets/mcp_edge_session_key",
           "--env", "MCP_EDGE_AUTH_TOKENS_FILE=/run/secrets/mcp_edge_auth_tokens",
           ARGS.image, "--discover", "dns://tasks.backend:8000/mcp")
    try:
        wait(f"{name} to be healthy", 90, lambda: docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}", "--filter", "health=healthy").strip())
        done = subprocess.run([ARGS.load_bin, "--url", f"http://127.0.0.1:{port}/mcp", "-c", "20", "-d", "5", "--json",
                               "-H", f"Authorization: Bearer {token}"], capture_output=True, text=True, timeout=60)
        r = json.loads(done.stdout)
    finally:
        docker("service", "rm", name, check=False)
    ok = no_errors(r) and set(r["served_by"]) == set(tasks("backend"))
    record("the published port: ingress (routing mesh) here, and host mode on loopback", [("host-mode", r)], ok,
           ingress_8150=ingress, host_mode_port=port)


def as_deployed():
    """Every check starts from the stack as stack.yml deploys it: 3 backend and 2 edge tasks."""
    for name, want in (("backend", 3), ("edge", 2)):
        if len(tasks(name, healthy=False)) != want or len(tasks(name)) != want:
            docker("service", "scale", "--detach=false", f"{service(name)}={want}", timeout=180)
            wait(f"{want} healthy {name} tasks", 120, lambda: len(tasks(name, healthy=False)) == want and len(tasks(name)) == want)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHECKS = {
    "spread": check_spread,
    "backend-killed": check_backend_killed,
    "backend-update": lambda: check_update("backend"),
    "edge-update": lambda: check_update("edge", "--retries", "3"),
    "scale": check_scale,
    "revoke": check_revoke,
    "published-port": check_published_port,
}


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--stack", default="mcp")
    parser.add_argument("--network", default="mcp", help="the stack's overlay network (stack.yml's name)")
    parser.add_argument("--image", default="mcp-edge:latest")
    parser.add_argument("--load-image", default="mcp-edge-load:latest")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--edge-bin")
    parser.add_argument("--load-bin", required=True, help="mcp-load on this machine (for the host-mode port)")
    parser.add_argument("--results", default="results/swarm")
    parser.add_argument("checks", nargs="*", help=f"a subset of: {', '.join(CHECKS)}")
    ARGS = parser.parse_args()
    started = time.time()
    for name in ARGS.checks or CHECKS:
        try:
            as_deployed()
            CHECKS[name]()
        except Exception as e:  # a check that cannot finish has failed; the others still run
            print(f"[FAILED] {name}: {e}", flush=True)
            FAILURES.append(name)
        finally:
            leftover = docker("service", "ls", "-q", "--filter", "label=mcp-edge-check").split()
            if leftover:
                docker("service", "rm", *leftover, check=False)
    out = Path(ARGS.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                                                  "seconds": round(time.time() - started), "checks": FIGURES}, indent=2))
    print(f"figures: {out / 'figures.json'} ({time.time() - started:.0f} s)")
    total = len(ARGS.checks or CHECKS)
    print(f"swarm: {total - len(FAILURES)} passed, {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
