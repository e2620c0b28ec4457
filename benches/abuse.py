#!/usr/bin/env python3
"""What hostile clients cost the well-behaved ones: one mcp-edge over three replicas, 50
well-behaved clients (mcp-load, open loop) measured alone for as long as the attack lasts (the
baseline, and the warm-up), then beside --hostile connections of hostile clients for --minutes,
then while it recovers.

    benches/abuse [--minutes 5] [--hostile 200] [--rate 300] [--out DIR]

Each class of hostile clients is one user of the service with a valid bearer token; the
well-behaved clients are --clients other users, a token each. mcp-edge runs as a public edge
would: bearer authentication and a rate limit per caller (--rate-limit, default 20 a second,
burst 40; each well-behaved client sends 6). The hostile connections, each a loop on its own
connection until the deadline, about once a second (a fixed mix, one class per connection,
round robin over the classes; the classes marked * also flood requests, past the rate limit's
429s):

- trickle-head   a request head, one header line every 5 s (cut by --header-timeout-ms)
- stall-body     a head declaring 64 KiB, 100 bytes of body, then nothing (408)
- never-read     tools/call payload of 4 MiB with a 4 KiB receive window, never reading the
                 answer (--send-timeout-seconds)
- big-head       64 KiB of one header, never ended (431 before 33 KiB are read)
- made-up-names* tools/call of a 64 KiB tool name nobody listed (counted as `other`)
- subscribe*     a legacy session subscribing to 2 000-byte URIs until refused, then a new one
- hold-listen    2026-07-28 subscriptions/listen streams opened and never read
- forged-peer    POSTs to the admin listener's peer endpoints with a client's own token (403)
- pipeline*      20 pipelined requests in one write, answers read
- mint*          20 legacy sessions initialized as fast as answered, never used
                 (--session-rate-limit)

Verdict (each printed, the run fails when one does not hold): the well-behaved clients see 0
errors during the hostile window, their p99 within 2x of the quiet run's, mcp-edge's RSS under
384 MiB throughout, and back within 10 % of its level after the quiet run within 60 s of the
hostile clients stopping. Loopback only; every loop ends at the deadline. Writes abuse.md and
abuse.json to --out (default results/abuse).
"""

import argparse
import asyncio
import contextvars
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import BINS, HERE, start_edge, start_replicas  # noqa: E402
from memory import rss_kib  # noqa: E402

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def http(method: str, path: str, body: bytes, headers: dict) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: edge\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


# Each hostile class is one user of the service with a valid bearer token of its own (its
# connection loops set it); the well-behaved clients are --clients others, one token each
# (mcp-load's `{client}`).
TOKEN = contextvars.ContextVar("token")


def hostile_token(kind: str) -> str:
    return f"hostile-{kind}-token"


def mcp(body: dict, headers: dict | None = None) -> bytes:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "Authorization": f"Bearer {TOKEN.get()}"}
    h.update(headers or {})
    return http("POST", "/mcp", json.dumps(body).encode(), h)


async def read_head(reader) -> tuple[int, dict, bytes]:
    """Status, headers and whatever body arrived with them (Content-Length bodies read whole)."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


class Hostile:
    def __init__(self, port: int, admin: int, deadline: float):
        self.port, self.admin, self.deadline = port, admin, deadline
        self.counts: dict[str, int] = {}

    def count(self, what: str):
        self.counts[what] = self.counts.get(what, 0) + 1

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def connect(self, port: int | None = None):
        return await asyncio.open_connection("127.0.0.1", port or self.port)

    async def run(self, kind: str):
        TOKEN.set(hostile_token(kind))
        loop = getattr(self, kind.replace("-", "_"))
        while self.left() > 0:
            try:
                await asyncio.wait_for(loop(), timeout=max(0.1, self.left()))
            except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError, OSError,
                    ValueError, IndexError):
                pass
            self.count(kind)
            await asyncio.sleep(PAUSE)

    async def closed(self, reader, writer, seconds: float):
        """Wait (bounded) until the server closes the connection."""
        try:
            while self.left() > 0 and await asyncio.wait_for(reader.read(65536), seconds):
                pass
        finally:
            writer.close()

    async def trickle_head(self):
        reader, writer = await self.connect()
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: edge\r\n")
        try:
            while self.left() > 0:
                writer.write(b"x-slow: 1\r\n")
                await writer.drain()
                data = await asyncio.wait_for(reader.read(1), 5)
                if not data:
                    break
        except asyncio.TimeoutError:
            await self.trickle_head_again(reader, writer)
        finally:
            writer.close()

    async def trickle_head_again(self, reader, writer):
        while self.left() > 0:
            writer.write(b"x-slow: 1\r\n")
            await writer.drain()
            try:
                if not await asyncio.wait_for(reader.read(1), 5):
                    return
            except asyncio.TimeoutError:
                continue

    async def stall_body(self):
        reader, writer = await self.connect()
        head = http("POST", "/mcp", b"", {"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream",
                                          "Authorization": f"Bearer {TOKEN.get()}"})
        head = head.replace(b"Content-Length: 0", b"Content-Length: 65536")
        writer.write(head + b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + b" " * 45)
        await writer.drain()
        await self.closed(reader, writer, 120)

    async def never_read(self):
        # A 4 KiB receive window, as a client that means to stall a server sets it: mcp-edge's
        # writes block after a few MiB of a 4 MiB answer. (With the default window the answer
        # must outgrow some 10 MiB of socket buffers first; 16 MiB answers then cost the
        # replicas more than the holding costs mcp-edge: load, which --rate-limit bounds.)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "payload", "arguments": {"bytes": 4 << 20}}}
        writer.write(mcp(body))
        await writer.drain()
        # Read nothing (asyncio's own buffer stops taking at 64 KiB), past the send timeout.
        writer.transport.pause_reading()
        await asyncio.sleep(min(75, max(0, self.left())))
        writer.close()

    async def big_head(self):
        reader, writer = await self.connect()
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: edge\r\nx-big: " + b"a" * (64 << 10))
        await writer.drain()
        await self.closed(reader, writer, 30)

    async def made_up_names(self):
        reader, writer = await self.connect()
        while self.left() > 0:
            name = f"{random.random()}" + "n" * (64 << 10)
            writer.write(mcp({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": name, "arguments": {}}}))
            await writer.drain()
            await read_head(reader)
            await asyncio.sleep(0.2)
        writer.close()

    async def subscribe(self):
        reader, writer = await self.connect()
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "abuse", "version": "1"}}}
        writer.write(mcp(init))
        await writer.drain()
        _, headers, _ = await read_head(reader)
        token = headers.get("mcp-session-id", "")
        for i in range(1000):
            if self.left() <= 0:
                break
            uri = f"test://{random.random()}/{i}/" + "u" * 2000
            writer.write(mcp({"jsonrpc": "2.0", "id": i + 1, "method": "resources/subscribe",
                              "params": {"uri": uri}}, {"Mcp-Session-Id": token}))
            await writer.drain()
            _, _, body = await read_head(reader)
            if b'"error"' in body:
                break
            await asyncio.sleep(0.05)
        writer.close()

    async def hold_listen(self):
        reader, writer = await self.connect()
        body = {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
                "params": {"_meta": META, "notifications": {"toolsListChanged": True}}}
        writer.write(mcp(body, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "subscriptions/listen"}))
        await writer.drain()
        writer.transport.pause_reading()
        while self.left() > 0 and not writer.transport.is_closing():
            await asyncio.sleep(1)
        writer.close()

    async def forged_peer(self):
        token = "x" * 80
        for path in ("/sessions/revoke", "/bridge/deliver", "/bridge/cancel", "/push/subscribe"):
            reader, writer = await self.connect(self.admin)
            writer.write(http("POST", path, token.encode(), {"Mcp-Session-Id": token, "Mcp-Edge-Peer": "1.00"}))
            await writer.drain()
            await read_head(reader)
            writer.close()
        await asyncio.sleep(0.5)

    async def pipeline(self):
        reader, writer = await self.connect()
        one = mcp({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"message": "p"}}})
        writer.write(one * 20)
        await writer.drain()
        for _ in range(20):
            await read_head(reader)
        writer.close()

    async def mint(self):
        reader, writer = await self.connect()
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "abuse", "version": "1"}}}
        for _ in range(20):
            if self.left() <= 0:
                break
            writer.write(mcp(init))
            await writer.drain()
            await read_head(reader)
        writer.close()


# Each hostile connection repeats its class about once a second: what it holds is the attack.
# A client flooding requests as fast as it can is load, which --rate-limit bounds per caller.
PAUSE = 1.0

KINDS = ["trickle-head", "stall-body", "never-read", "big-head", "made-up-names", "subscribe",
         "hold-listen", "forged-peer", "pipeline", "mint"]


def hostile_thread(port: int, admin: int, n: int, seconds: float, out: dict, kinds: list):
    # The attacker's own CPU is niced: here it shares mcp-edge's 2 cores, where in a deployment
    # it is another machine, and its Python loops would otherwise count against mcp-edge.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)

    async def main():
        h = Hostile(port, admin, time.monotonic() + seconds)
        # --hostile 0, the control run: the same timeline with the well-behaved load alone.
        await asyncio.gather(asyncio.sleep(seconds if n == 0 else 0),
                             *(h.run(kinds[i % len(kinds)]) for i in range(n)))
        out.update(h.counts)
    asyncio.run(main())


def load(url: str, clients: int, rate: float, seconds: float) -> dict:
    argv = [str(BINS / "mcp-load"), "--url", url, "--scenario", "mixed", "-c", str(clients),
            "--rate", str(rate), "-d", str(seconds), "--json", "-H", "Authorization: Bearer well-behaved-user-{client}"]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def rss_parts(pid: int) -> dict:
    """RSS split as the kernel counts it: anonymous (heap, stacks) and file-backed (the binary's
    code and data pages, faulted in by the paths a run executes and kept until memory is short),
    in KiB, and the thread count."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    parts = {k: int(status[k].split()[0]) for k in ("RssAnon", "RssFile", "Threads")}
    # Where the anonymous part sits, by the size of the mapping holding it (KiB of mapping:
    # resident anonymous KiB): mimalloc's arenas are the large mappings, thread stacks the
    # 2 MiB ones, the rest is small.
    by_size: dict = {}
    size = 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line.startswith("Size:"):
            size = int(line.split()[1])
        elif line.startswith("Anonymous:") and int(line.split()[1]):
            by_size[size] = by_size.get(size, 0) + int(line.split()[1])
    parts["anon_by_mapping_kib"] = dict(sorted(by_size.items(), key=lambda kv: -kv[1])[:6])
    return parts


def metric_text(admin: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
        return r.read().decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--hostile", type=int, default=200,
                    help="hostile connections; 0 for a control run (the well-behaved load alone, same timeline)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=float, default=300, help="well-behaved requests per second, all clients")
    ap.add_argument("--quiet-seconds", type=float, default=None,
                    help="the well-behaved clients alone first (default: as long as the attack). They are the "
                         "baseline and the warm-up: under this load alone RSS climbs for minutes (session and "
                         "tool tables, pools), and a shorter quiet run would count that climb against the attack")
    ap.add_argument("--session-idle-seconds", dest="session_idle", type=int, default=20,
                    help="mcp-edge's idle timeout: the hostile clients' sessions end within it")
    ap.add_argument("--watch-seconds", type=float, default=60,
                    help="how long RSS is watched after the hostile clients stop (the verdict is at 60 s)")
    ap.add_argument("--classes", type=lambda v: v.split(","), default=KINDS,
                    help="comma list of the hostile classes to run (default: all)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "abuse")
    ap.add_argument("--edge-flag", action="append", default=[], help="an extra mcp-edge flag (repeatable)")
    ap.add_argument("--rate-limit", type=lambda v: ["--rate-limit", v, "--rate-limit-burst", str(2 * int(float(v)))] if float(v) else [],
                    default=["--rate-limit", "20", "--rate-limit-burst", "40"],
                    help="mcp-edge's --rate-limit per caller, burst twice it (default 20; 0: none). Each well-behaved "
                         "client sends --rate / --clients a second (6)")
    args = ap.parse_args()
    if args.quiet_seconds is None:
        args.quiet_seconds = args.minutes * 60
    args.out.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        replicas = start_replicas(procs)
        tokens = ",".join([*map(hostile_token, KINDS), *(f"well-behaved-user-{i}" for i in range(args.clients))])
        flags = ["--access-log", "off", "--session-key", "ab" * 32, "--auth-tokens", tokens,
                 "--session-idle-seconds", str(args.session_idle), *args.rate_limit, *args.edge_flag]
        url, admin, edge = start_edge(replicas, flags, procs)
        port = edge.port
        pid = edge.proc.pid
        start_rss = rss_kib([pid])
        quiet = load(url, args.clients, args.rate, args.quiet_seconds)
        quiet_rss = rss_kib([pid])
        quiet_parts = rss_parts(pid)
        print(f"quiet: {quiet['requests']} requests, {quiet['errors']} errors, "
              f"p99 {quiet['latency_us']['p99'] / 1000:.2f} ms; RSS {start_rss // 1024} -> {quiet_rss // 1024} MiB")

        seconds = args.minutes * 60
        counts: dict = {}
        t = threading.Thread(target=hostile_thread, args=(port, admin, args.hostile, seconds, counts, args.classes))
        samples = []
        t0 = time.monotonic()
        t.start()
        result = {}
        lt = threading.Thread(target=lambda: result.update(load(url, args.clients, args.rate, seconds - 5)))
        time.sleep(5)  # the hostile clients first take what they can
        lt.start()
        while t.is_alive():
            samples.append((round(time.monotonic() - t0), rss_kib([pid])))
            t.join(timeout=5)
        lt.join()
        stopped = time.monotonic()
        hostile_text = metric_text(admin)
        peak = max(r for _, r in samples)
        back_after = None
        while time.monotonic() - stopped < args.watch_seconds:
            rss = rss_kib([pid])
            samples.append((round(time.monotonic() - t0), rss))
            if back_after is None and abs(rss - quiet_rss) <= 0.10 * quiet_rss:
                back_after = time.monotonic() - stopped
                if time.monotonic() - stopped >= 60:
                    break
            time.sleep(2)
        end_rss = rss_kib([pid])
        end_parts = rss_parts(pid)
        end_text = metric_text(admin)
        gauges = {line.split(" ")[0]: line.rsplit(" ", 1)[1] for line in end_text.splitlines()
                  if line.startswith(("mcp_edge_worker_tasks ", "mcp_edge_open_streams ", "mcp_edge_sessions_tracked ",
                                      "mcp_edge_push_listeners{", "mcp_edge_push_wanted_bytes ",
                                      "mcp_edge_push_resource_subscriptions ", "mcp_edge_session_revocations "))}

        limits = {line.split("{")[1].split("}")[0]: line.rsplit(" ", 1)[1]
                  for line in hostile_text.splitlines() if line.startswith("mcp_edge_client_limits_total{")}
        other = {line.split(" ")[0]: line.rsplit(" ", 1)[1] for line in hostile_text.splitlines()
                 if line.startswith(("mcp_edge_header_timeouts_total", "mcp_edge_peer_requests_refused_total",
                                     "mcp_edge_push_subscriptions_refused_total", "mcp_edge_sessions_minted_total"))}
        p99_quiet, p99_hostile = quiet["latency_us"]["p99"], result["latency_us"]["p99"]
        checks = [
            ("well-behaved errors under attack", result["errors"] == 0, f"{result['errors']} of {result['requests']} ({result['errors_by_kind']})"),
            ("p99 within 2x of quiet", p99_hostile <= 2 * p99_quiet, f"{p99_quiet / 1000:.2f} -> {p99_hostile / 1000:.2f} ms"),
            ("RSS under 384 MiB", peak < 384 * 1024, f"peak {peak / 1024:.1f} MiB"),
            ("RSS back within 10 % in 60 s", back_after is not None and back_after <= 60, f"quiet {quiet_rss / 1024:.1f} MiB, end {end_rss / 1024:.1f} MiB, after {back_after and round(back_after, 1)} s"),
        ]
        git = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        cpu = next((l.split(": ", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
        lines = [
            f"# benches/abuse: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git}, "
            f"{os.cpu_count()} cores ({cpu})",
            "",
            f"`benches/abuse --minutes {args.minutes:g} --hostile {args.hostile} --clients {args.clients} --rate {args.rate:g}`",
            "",
            "| check | holds | figures |", "|---|---|---|",
            *[f"| {name} | {'yes' if ok else 'NO'} | {fig} |" for name, ok, fig in checks],
            "",
            f"well-behaved (mcp-load mixed, {args.clients} clients, {args.rate:g}/s): quiet {quiet['requests']} requests, "
            f"p50 {quiet['latency_us']['p50'] / 1000:.2f} ms, p99 {p99_quiet / 1000:.2f} ms; under attack "
            f"{result['requests']} requests, p50 {result['latency_us']['p50'] / 1000:.2f} ms, p99 {p99_hostile / 1000:.2f} ms",
            f"hostile loops completed: {json.dumps(counts, sort_keys=True)}",
            f"mcp-edge counted: {json.dumps(limits, sort_keys=True)} {json.dumps(other, sort_keys=True)}",
            f"gauges at the end (what is still held): {json.dumps(gauges, sort_keys=True)}",
            f"RSS parts (KiB; threads) after the quiet run: {quiet_parts}; at the end: {end_parts}",
            f"RSS samples (s, KiB): {samples}",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        (args.out / "abuse.md").write_text(text)
        (args.out / "abuse.json").write_text(json.dumps({"quiet": quiet, "hostile": result, "counts": counts,
                                                         "samples": samples, "checks": checks}, indent=1))
        sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
