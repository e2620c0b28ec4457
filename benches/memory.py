#!/usr/bin/env python3
"""What holding clients costs a proxy: resident memory per open SSE stream, per idle keep-alive
connection and (mcp-edge only) per tracked legacy session, measured side by side with nginx in
one run over the same three replicas.

    benches/memory [--streams 10000] [--idle 10000] [--sessions 200000] [--only mcp-edge nginx]
                   [--edge LABEL=FLAGS] [--limit-mb 256] [--out DIR]

Each figure is taken on a fresh proxy process: its RSS (for nginx: master and workers) once it
has served a short warm-up, then again with N clients held: N SSE streams (tools/call
`progress`, one notification a second, each held until its first notification arrived), N
keep-alive connections that made one call each and now wait, and for mcp-edge N legacy
sessions initialized and abandoned. The difference over N is the figure. The proxies run with
their memory-relevant defaults (nginx: proxy_buffering off, upstream keepalive 64). With
--limit-mb, mcp-edge holds the streams once more inside a memory cgroup of that limit, as a
container of the stack does, and the peak and any OOM kill are reported. Loopback
only; every wait has a deadline; file descriptor limits are raised for this process and its
children. Prints a markdown table and writes it and the raw figures (JSON) to --out (default:
results/memory).
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import HERE, children, need, start_proxy, EDGE_VARIANTS  # noqa: E402


def rss_kib(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def request(port: int, body: dict, accept: str, session: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    extra = f"Mcp-Session-Id: {session}\r\n" if session else ""
    return (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: {accept}\r\n{extra}Content-Length: {len(data)}\r\n\r\n").encode() + data


async def read_response(reader) -> bytes:
    """One whole response with a Content-Length body (the JSON answers this bench asks for)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class Held:
    """Clients held open, closed together."""

    def __init__(self):
        self.writers = []
        self.failed = 0

    def close(self):
        for w in self.writers:
            w.close()
        self.writers.clear()


async def hold(port: int, n: int, kind: str, deadline: float, held: Held, parallel: int = 200):
    """Open n clients of `kind` ("stream" or "idle"), `parallel` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int):
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
                if kind == "stream":
                    call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "progress", "arguments": {"steps": 60, "interval_ms": 1000},
                                       "_meta": {"progressToken": i}}}
                    writer.write(request(port, call, "application/json, text/event-stream"))
                    seen = b""
                    while b"notifications/progress" not in seen:
                        chunk = await asyncio.wait_for(reader.read(4096), 10)
                        if not chunk:
                            raise ConnectionError("closed before the first notification")
                        seen = seen[-64:] + chunk
                else:
                    call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "hi"}}}
                    writer.write(request(port, call, "application/json"))
                    answer = await asyncio.wait_for(read_response(reader), 10)
                    if b" 200 " not in answer.split(b"\r\n", 1)[0]:
                        raise ConnectionError(answer[:80])
                held.writers.append(writer)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
                held.failed += 1
                if held.failed <= 3:
                    print(f"  {kind} client {i}: {e!r}", file=sys.stderr)

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), max(1.0, deadline - time.monotonic()))


async def sessions(port: int, n: int, parallel: int = 50) -> int:
    """Initialize n legacy sessions and abandon them; returns how many were minted."""
    minted = 0
    queue = iter(range(n))

    async def worker():
        nonlocal minted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in queue:
                init = {"jsonrpc": "2.0", "id": i, "method": "initialize",
                        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "memory-bench", "version": "1"}}}
                writer.write(request(port, init, "application/json, text/event-stream"))
                answer = await asyncio.wait_for(read_response(reader), 10)
                if b"mcp-session-id:" in answer.lower():
                    minted += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return minted


async def settle(pids, seconds: float = 3.0) -> int:
    """RSS once it stops moving (or after `seconds`)."""
    last, deadline = rss_kib(pids), time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = rss_kib(pids)
        if abs(now - last) < 64:
            return now
        last = now
    return last


async def held_rss(pids, port: int, what: str, n: int):
    """(RSS before, RSS with n clients of `what` held, how many held, how many failed)."""
    # Warm-up: pools, allocator arenas, the worker threads' first connections.
    warm = Held()
    await hold(port, 200, "idle", time.monotonic() + 30, warm)
    warm.close()
    before = await settle(pids)
    if what == "sessions":
        minted = await sessions(port, n)
        return before, await settle(pids), minted, n - minted
    held = Held()
    try:
        await hold(port, n, what, time.monotonic() + 120, held)
        return before, await settle(pids), len(held.writers), held.failed
    finally:
        held.close()
        await asyncio.sleep(0.1)


class Confined:
    """A process in a memory cgroup of its own with a hard limit, as a container's (cgroup v2,
    or v1's memory controller): what it used at most, and whether the limit was hit."""

    def __init__(self, pid: int, limit_mb: int):
        self.dir, v2 = None, Path("/sys/fs/cgroup/cgroup.controllers").exists()
        base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/memory")
        self.v2, self.dir = v2, base / f"mcp-edge-bench-{pid}"
        self.dir.mkdir()
        (self.dir / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_mb << 20))
        (self.dir / "cgroup.procs").write_text(str(pid))

    def report(self) -> dict:
        if self.v2:
            peak = int((self.dir / "memory.peak").read_text()) if (self.dir / "memory.peak").exists() else -1
            events = dict(l.split() for l in (self.dir / "memory.events").read_text().splitlines())
            return {"peak_mib": peak / 2**20, "limit_hits": int(events.get("max", 0)), "oom_kills": int(events.get("oom_kill", 0))}
        oom = dict(l.split() for l in (self.dir / "memory.oom_control").read_text().splitlines())
        return {"peak_mib": int((self.dir / "memory.max_usage_in_bytes").read_text()) / 2**20,
                "limit_hits": int((self.dir / "memory.failcnt").read_text()), "oom_kills": int(oom.get("oom_kill", 0))}

    def remove(self):
        try:
            self.dir.rmdir()
        except OSError:
            pass


def measure(kind: str, what: str, n: int, replicas, workdir: Path, limit_mb: int = 0) -> dict:
    url, proc = start_proxy(kind, replicas, workdir)
    port = int(url.split(":")[2].split("/")[0])
    started = time.monotonic()
    confined = Confined(proc.proc.pid, limit_mb) if limit_mb else None
    try:
        before, after, count, failed = asyncio.run(held_rss(children(proc.proc.pid), port, what, n))
        if confined:
            confined.alive = proc.proc.poll() is None
            confined.result = confined.report()
    finally:
        proc.stop()
        if confined:
            confined.remove()
    took = time.monotonic() - started
    per = (after - before) * 1024 / max(count, 1)
    print(f"{kind} {what}: {count} held ({failed} failed) in {took:.1f} s: RSS {before} → {after} KiB, "
          f"{per:.0f} B each", file=sys.stderr)
    row = {"before_kib": before, "after_kib": after, "held": count, "failed": failed, "bytes_each": per}
    if confined:
        row["confined"] = {"limit_mib": limit_mb, "alive": confined.alive, **confined.result}
        print(f"  in a {limit_mb} MiB cgroup: {row['confined']}", file=sys.stderr)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--sessions", type=int, default=200000)
    parser.add_argument("--only", nargs="*", default=["mcp-edge", "nginx"])
    parser.add_argument("--edge", action="append", default=[], metavar="LABEL=FLAGS",
                        help="also measure mcp-edge with these flags (a first word @PATH: another binary)")
    parser.add_argument("--limit-mb", type=int, default=0,
                        help="also hold --streams SSE streams with mcp-edge in a memory cgroup of this limit "
                             "(as the stack's), and report its peak and whether it survived")
    parser.add_argument("--out", default=str(HERE / "results" / "memory"))
    args = parser.parse_args()
    compare.add_edge_variants(args.edge, args.only)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * max(args.streams, args.idle) + 512
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        # Raising the hard limit needs CAP_SYS_RESOURCE: a proxy holds two fds per stream.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        most = (hard - 512) // 2
        if args.streams > most or args.idle > most:
            print(f"file descriptor limit {hard}: holding at most {most} clients", file=sys.stderr)
            args.streams, args.idle = min(args.streams, most), min(args.idle, most)
        want = hard
    compare.NGINX_CONNECTIONS = want
    if "nginx" in args.only:
        need("nginx", "nginx-light")

    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context = (f"{when}, {os.cpu_count()} cores ({cpu}), commit {commit}, "
               f"`benches/memory --streams {args.streams} --idle {args.idle} --sessions {args.sessions}"
               + "".join(f" --edge '{e}'" for e in args.edge) + "`")
    procs, rows = [], {}
    try:
        replicas = compare.start_replicas(procs)
        with tempfile.TemporaryDirectory() as tmp:
            for what, n in (("stream", args.streams), ("idle", args.idle), ("sessions", args.sessions)):
                if n <= 0:
                    continue
                for kind in args.only:
                    if what == "sessions" and kind not in EDGE_VARIANTS:
                        continue
                    workdir = Path(tmp) / f"{kind}-{what}"
                    workdir.mkdir()
                    rows.setdefault(kind, {})[what] = measure(kind, what, n, replicas, workdir)
            if args.limit_mb and args.streams > 0:
                workdir = Path(tmp) / "confined"
                workdir.mkdir()
                rows["mcp-edge"]["confined"] = measure("mcp-edge", "stream", args.streams, replicas, workdir, args.limit_mb)
    finally:
        for p in procs:
            p.stop()

    def cell(kind, what):
        m = rows.get(kind, {}).get(what)
        if not m:
            return "—"
        failed = f", {m['failed']} failed" if m["failed"] else ""
        each = f"{m['bytes_each']:.0f} B" if m["bytes_each"] < 1024 else f"{m['bytes_each'] / 1024:.1f} KiB"
        return f"{each} ({m['before_kib'] / 1024:.0f} → {m['after_kib'] / 1024:.0f} MiB, {m['held']} held{failed})"

    lines = [f"Resident memory per client held, {context}:", "",
             f"| proxy | per open SSE stream | per idle keep-alive connection | per abandoned legacy session |",
             "|---|---|---|---|"]
    for kind in rows:
        lines.append(f"| {kind} | {cell(kind, 'stream')} | {cell(kind, 'idle')} | {cell(kind, 'sessions')} |")
    confined = rows.get("mcp-edge", {}).get("confined")
    if confined:
        c = confined["confined"]
        lines += ["", f"mcp-edge holding {confined['held']} SSE streams ({confined['failed']} failed) in a memory cgroup "
                  f"limited to {c['limit_mib']} MiB: peak {c['peak_mib']:.0f} MiB, limit reached {c['limit_hits']} times, "
                  f"OOM kills {c['oom_kills']}, {'alive' if c['alive'] else 'DEAD'} at the end."]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.md").write_text(table + "\n")
    (out / "memory.json").write_text(json.dumps({"context": context, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
