#!/usr/bin/env python3
"""What server push costs mcp-edge with many listeners: N 2026-07-28 `subscriptions/listen`
streams held on one mcp-edge over 3 mcp-backend replicas.

    benches/listeners [--clients 10000] [--changes 5] [--out DIR]

Reports the upstream listen streams mcp-edge holds (its metric, and the replicas' own count of
open streams: at most one per replica however many clients listen), mcp-edge's RSS before and
with the N listeners held, and for each of --changes tool-list changes made directly on one
replica (round robin over the three) the time from the trigger's answer to the last client's
notification: as the clients read it (this process, asyncio, on the same two cores), and as
mcp-edge counted it written (its relayed counter, polled from a thread). Loopback only; every wait has a deadline; the file descriptor limit is raised as
far as the hard limit allows. Prints a markdown table and writes it and the raw figures (JSON)
to --out (default: results/listeners).
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import BINS, HERE, start_edge, start_replicas  # noqa: E402
from memory import rss_kib, settle  # noqa: E402

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def post(port: int, body: dict, method: str, name: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    extra = f"Mcp-Name: {name}\r\n" if name else ""
    return (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            f"Mcp-Method: {method}\r\n{extra}Content-Length: {len(data)}\r\n\r\n").encode() + data


def metric(admin: int, series: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(series))


def open_streams(port: int) -> int:
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5))["open_streams"]


class Listener:
    def __init__(self, i: int):
        self.i, self.reader, self.writer, self.seen = i, None, None, []

    async def open(self, port: int):
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        body = {"jsonrpc": "2.0", "id": self.i, "method": "subscriptions/listen",
                "params": {"_meta": META, "notifications": {"toolsListChanged": True}}}
        self.writer.write(post(port, body, "subscriptions/listen"))
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:80])
        buf = b""
        while b"subscriptions/acknowledged" not in buf:
            chunk = await asyncio.wait_for(self.reader.read(4096), 30)
            if not chunk:
                raise ConnectionError("closed before the acknowledgement")
            buf += chunk

    async def read(self):
        """Record when each tools/list_changed arrives, until the connection closes."""
        buf = b""
        while True:
            chunk = await self.reader.read(4096)
            if not chunk:
                return
            buf += chunk
            while b"list_changed" in buf:
                self.seen.append(time.monotonic())
                buf = buf[buf.index(b"list_changed") + 12:]


async def run(clients: int, changes: int) -> dict:
    procs = []
    try:
        replicas = start_replicas(procs, fixtures=True)
        url, admin, edge = start_edge(replicas, ["--access-log", "off", "--max-streams", str(clients + 100)], procs)
        port = edge.port
        pid = edge.proc.pid
        before = await settle([pid])
        listeners = [Listener(i) for i in range(clients)]
        gate = asyncio.Semaphore(200)
        failed = 0

        async def opened(l):
            nonlocal failed
            async with gate:
                try:
                    await l.open(port)
                    return True
                except (OSError, asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError) as e:
                    failed += 1
                    if failed <= 3:
                        print(f"  listener {l.i}: {e!r}", file=sys.stderr)
                    return False

        t = time.monotonic()
        ok = await asyncio.wait_for(asyncio.gather(*(opened(l) for l in listeners)), 300)
        took_open = time.monotonic() - t
        held = [l for l, up in zip(listeners, ok) if up]
        readers = [asyncio.ensure_future(l.read()) for l in held]
        with_listeners = await settle([pid])
        upstream = metric(admin, "mcp_edge_push_upstream_streams")
        replica_streams = sum(open_streams(r) for r in replicas)
        latencies = []
        for k in range(changes):
            target = replicas[k % len(replicas)]
            body = {"jsonrpc": "2.0", "id": k, "method": "tools/call",
                    "params": {"name": "test_trigger_tool_change", "arguments": {}, "_meta": META}}
            r, w = await asyncio.open_connection("127.0.0.1", target)
            w.write(post(target, body, "tools/call", "test_trigger_tool_change"))
            await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            t0 = time.monotonic()
            w.close()
            target_count = (k + 1) * len(held)
            written = {}

            def poll_written():
                end = t0 + 30
                while time.monotonic() < end:
                    if metric(admin, 'mcp_edge_push_notifications_total{outcome="relayed"}') >= target_count:
                        written["ms"] = (time.monotonic() - t0) * 1000
                        return
                    time.sleep(0.002)

            poller = asyncio.get_running_loop().run_in_executor(None, poll_written)
            deadline = t0 + 30
            while sum(len(l.seen) > k for l in held) < len(held) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            heard = [l.seen[k] for l in held if len(l.seen) > k]
            await poller
            latencies.append({"replica": target, "heard": len(heard), "written_ms": written.get("ms"),
                              "last_ms": (max(heard) - t0) * 1000 if heard else None,
                              "median_ms": (sorted(heard)[len(heard) // 2] - t0) * 1000 if heard else None})
        relayed = metric(admin, 'mcp_edge_push_notifications_total{outcome="relayed"}')
        dropped = metric(admin, 'mcp_edge_push_notifications_total{outcome="dropped"}')
        for l in held:
            l.writer.close()
        for f in readers:
            f.cancel()
        return {"clients": clients, "held": len(held), "failed": failed, "open_seconds": took_open,
                "rss_before_kib": before, "rss_with_kib": with_listeners,
                "per_listener_bytes": (with_listeners - before) * 1024 / max(1, len(held)),
                "upstream_streams_metric": upstream, "replica_open_streams": replica_streams,
                "changes": latencies, "relayed": relayed, "dropped": dropped}
    finally:
        for p in procs:
            p.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "listeners")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    r = asyncio.run(run(a.clients, a.changes))
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    r["meta"] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "commit": commit, "cpus": os.cpu_count(), "binary": str(BINS / "mcp-edge")}
    lines = [f"{r['held']} listeners held ({r['failed']} failed, opened in {r['open_seconds']:.1f} s); "
             f"upstream listen streams: {r['upstream_streams_metric']:.0f} (metric), {r['replica_open_streams']} (replicas' count)",
             f"mcp-edge RSS {r['rss_before_kib'] / 1024:.1f} → {r['rss_with_kib'] / 1024:.1f} MiB "
             f"({r['per_listener_bytes']:.0f} B per listener)",
             "", "| change | on replica port | clients notified | median read | last read | all written by mcp-edge |",
             "|---|---|---|---|---|---|"]
    for k, c in enumerate(r["changes"], 1):
        wrote = f"{c['written_ms']:.0f} ms" if c["written_ms"] is not None else "—"
        lines.append(f"| {k} | {c['replica']} | {c['heard']} | {c['median_ms']:.0f} ms | {c['last_ms']:.0f} ms | {wrote} |"
                     if c["heard"] else f"| {k} | {c['replica']} | 0 | — | — | {wrote} |")
    lines.append(f"\nrelayed {r['relayed']:.0f}, dropped {r['dropped']:.0f}; {r['meta']}")
    text = "\n".join(lines)
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "listeners.md").write_text(text + "\n")
    (a.out / "listeners.json").write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
