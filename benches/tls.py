#!/usr/bin/env python3
"""What terminating TLS costs: mcp-edge, nginx and HAProxy each terminating TLS with the same
certificate in front of the same three replicas, side by side in one run.

    benches/tls [--rounds 3] [--seconds 8] [--idle 1000] [--streams 1000] [--out DIR]

- CPU per request over TLS, HTTP/1.1 keep-alive (h2load --h1, 50 connections) and HTTP/2
  (h2load, 10 connections x 10 streams), the template's stateless `tools/call echo`; rounds
  interleaved (each round starts one proxy later), medians over rounds, and the ratio to nginx
  as the median of each round's own ratio.
- Handshakes: `openssl s_time -new` (full TLS 1.3 handshakes, one at a time) for --seconds: the
  handshakes a second the client managed, and the proxy's CPU per handshake.
- Memory: RSS (nginx: master and workers) after a warm-up, then with --idle TLS connections
  that made one HTTP/1.1 call each and wait, and with --streams HTTP/2 streams held open (100
  2026-07-28 `subscriptions/listen` per connection, each acknowledged): the difference over N.

A proxy's CPU is its processes' user + system time from /proc over the run. The certificate is
made for the run (tests/tls/ca.py, P-256). Loopback only; every run and wait is bounded. Prints a
markdown table and writes it and the raw figures (JSON) to --out (default: results/tls).
"""

import argparse
import datetime
import json
import os
import re
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "tls"))
import compare  # noqa: E402
from compare import BINS, EDGE_LOG, HERE, Edge, Proc, backend_args, children, free_port, need, start_replicas, ticks  # noqa: E402
from frames import DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS, WINDOW_UPDATE, Connection, frame, header_block  # noqa: E402
from memory import rss_kib  # noqa: E402

KINDS = ["mcp-edge", "nginx", "haproxy"]
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
ECHO = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "hello"}, "_meta": META}}
ECHO_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo"}
LISTEN = {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
          "params": {"notifications": {"toolsListChanged": True}, "_meta": META}}

NGINX = """
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
daemon off;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream replicas {{ {servers} keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000;
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }}
  }}
}}
"""

HAPROXY = """
global
  nbthread {workers}
  maxconn 8192
defaults
  mode http
  timeout connect 1s
  timeout client 600s
  timeout server 600s
  http-reuse always
frontend mcp
  bind 127.0.0.1:{port} ssl crt {combined} alpn h2,http/1.1
  default_backend replicas
backend replicas
  balance roundrobin
{servers}
"""


def start(kind: str, replicas, certs: Path, workdir: Path):
    """One proxy terminating TLS in front of `replicas`: (port, process, pids to measure)."""
    port, workers = free_port(), os.cpu_count() or 1
    if kind == "mcp-edge":
        proc = Edge(BINS / "mcp-edge", [*EDGE_LOG, "--session-rate-limit", "0", "--tls-cert", certs / "edge.pem",
                                        "--tls-key", certs / "edge-key.pem", *backend_args(replicas)], port=port)
    elif kind == "nginx":
        servers = " ".join(f"server 127.0.0.1:{r};" for r in replicas)
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX.format(workers=workers, dir=workdir, servers=servers, port=port,
                                     cert=certs / "edge.pem", key=certs / "edge-key.pem"))
        proc = Proc(["nginx", "-c", str(conf), "-p", str(workdir)])
    else:
        servers = "\n".join(f"  server r{i} 127.0.0.1:{r}" for i, r in enumerate(replicas, 1))
        combined = workdir / "combined.pem"
        combined.write_bytes((certs / "edge.pem").read_bytes() + (certs / "edge-key.pem").read_bytes())
        conf = workdir / "haproxy.cfg"
        conf.write_text(HAPROXY.format(workers=workers, servers=servers, port=port, combined=combined))
        proc = Proc(["haproxy", "-f", str(conf)])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return port, proc, children(proc.proc.pid)


def h2load(port: int, body: Path, seconds: float, h1: bool) -> int:
    """Requests answered 2xx in `seconds` of h2load against the proxy."""
    shape = ["--h1", "-c", "50"] if h1 else ["-c", "10", "-m", "10"]
    headers = [arg for name, value in ECHO_HEADERS.items() for arg in ("-H", f"{name}: {value}")]
    argv = ["h2load", *shape, "-t", "1", "-D", f"{seconds:g}", "--warm-up-time", "1", "-d", str(body), *headers,
            f"https://127.0.0.1:{port}/mcp"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    done = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", run.stdout)
    if not done:
        raise RuntimeError(f"h2load said: {run.stdout[-400:]} {run.stderr[-400:]}")
    if int(done.group(3)) or int(done.group(4)):
        raise RuntimeError(f"errors from {port}: {done.group(0)}")
    return int(done.group(1))


def handshakes(port: int, seconds: int) -> int:
    out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-tls1_3",
                          "-time", str(seconds)], capture_output=True, text=True, timeout=seconds + 60).stdout
    found = re.search(r"(\d+) connections in [\d.]+s", out)
    if not found:
        raise RuntimeError(f"s_time said: {out[-400:]}")
    return int(found.group(1))


def context(certs: Path, alpn) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(alpn)
    return ctx


def idle_connections(port: int, certs: Path, n: int):
    """n TLS connections, each after one HTTP/1.1 call (kept alive): the sockets, to close later."""
    ctx, held = context(certs, ["http/1.1"]), []
    body = json.dumps(ECHO).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in ECHO_HEADERS.items())
    request = (f"POST /mcp HTTP/1.1\r\nhost: localhost\r\n{head}content-length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(n):
        tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
        tls.sendall(request)
        got = b""
        while b"hello" not in got:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the answer")
            got += chunk
        held.append(tls)
    return held


def open_streams(port: int, certs: Path, n: int):
    """n HTTP/2 streams held open: 2026-07-28 listens, 100 per connection, each acknowledged."""
    body = json.dumps(LISTEN).encode()
    block = header_block([(":method", "POST"), (":scheme", "https"), (":path", "/mcp"), (":authority", "localhost"),
                          ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
                          ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen"),
                          ("content-length", str(len(body)))])
    held, left = [], n
    while left > 0:
        count = min(100, left)
        connection = Connection(port, timeout=30, tls=context(certs, ["h2"]))
        # 1 MiB windows: 100 streams' acknowledgements must not wait for window updates.
        connection.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big"))
                        + frame(WINDOW_UPDATE, 0, 0, (16 << 20).to_bytes(4, "big")))
        for i in range(count):
            connection.send(frame(HEADERS, END_HEADERS, 2 * i + 1, block) + frame(DATA, END_STREAM, 2 * i + 1, body))
        acknowledged = set()
        for kind, flags, stream, payload in connection.frames(time.monotonic() + 60):
            if kind == SETTINGS and not flags & 1:
                connection.send(frame(SETTINGS, 1, 0))
            if kind == DATA and b"subscriptions/acknowledged" in payload:
                acknowledged.add(stream)
                if len(acknowledged) == count:
                    break
        if len(acknowledged) < count:
            raise TimeoutError(f"{len(acknowledged)} of {count} listens acknowledged")
        held.append(connection)
        left -= count
    return held


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "results" / "tls"))
    args = parser.parse_args()
    need("nginx", "nginx-light")
    need("haproxy", "haproxy")
    need("h2load", "nghttp2-client")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context_line = (f"{when}, {os.cpu_count()} cores ({cpu}), commit {commit}, `benches/tls --rounds {args.rounds} "
                    f"--seconds {args.seconds:g} --idle {args.idle} --streams {args.streams}`; "
                    f"nginx {subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.split('/')[-1].strip()}, "
                    f"HAProxy {subprocess.run(['haproxy', '-v'], capture_output=True, text=True).stdout.split()[2]}")
    procs, raw = [], {k: {"h1": [], "h2": [], "handshakes": [], "idle_kib": None, "stream_kib": None} for k in KINDS}
    tools = Path(os.environ.get("MCP_EDGE_TOOLS", HERE / ".tools"))
    try:
        replicas = start_replicas(procs)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            certs = tmp / "certs"
            subprocess.run([str(tools / "py-mcp2" / "bin" / "python"), str(HERE / "tests" / "tls" / "ca.py"), str(certs)], check=True)
            body = tmp / "echo.json"
            body.write_text(json.dumps(ECHO))
            for round_ in range(args.rounds):
                order = KINDS[round_ % 3:] + KINDS[:round_ % 3]
                for kind in order:
                    work = tmp / f"{kind}-{round_}"
                    work.mkdir()
                    port, proc, pids = start(kind, replicas, certs, work)
                    try:
                        for proto in ("h1", "h2"):
                            h2load(port, body, 2, proto == "h1")  # warm: pools, caches
                            before = ticks(pids)
                            done = h2load(port, body, args.seconds, proto == "h1")
                            raw[kind][proto].append({"requests": done, "cpu_us": (ticks(pids) - before) / compare.HZ * 1e6 / done,
                                                     "rps": done / args.seconds})
                        before = ticks(pids)
                        made = handshakes(port, int(args.seconds))
                        raw[kind]["handshakes"].append({"per_second": made / int(args.seconds),
                                                        "cpu_us": (ticks(pids) - before) / compare.HZ * 1e6 / max(made, 1)})
                    finally:
                        proc.stop()
                    print(f"round {round_ + 1}: {kind} done", file=sys.stderr)
            for kind in KINDS:
                work = tmp / f"{kind}-memory"
                work.mkdir()
                port, proc, pids = start(kind, replicas, certs, work)
                try:
                    h2load(port, body, 2, True)
                    pids = children(proc.proc.pid)
                    base = rss_kib(pids)
                    held = idle_connections(port, certs, args.idle)
                    time.sleep(1)  # let the proxy's own buffers settle after the last answer
                    raw[kind]["idle_kib"] = (rss_kib(pids) - base) / args.idle
                    for s in held:
                        s.close()
                    base = rss_kib(pids)
                    held = open_streams(port, certs, args.streams)
                    raw[kind]["stream_kib"] = (rss_kib(pids) - base) / args.streams
                    for s in held:
                        s.close()
                finally:
                    proc.stop()
                print(f"memory: {kind} done", file=sys.stderr)
    finally:
        for p in procs:
            p.stop()

    def med(kind, key, field):
        return statistics.median(r[field] for r in raw[kind][key])

    def ratio(kind, key):
        return statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(raw[kind][key], raw["nginx"][key]))

    lines = [context_line, "",
             "| proxy | HTTP/1.1: req/s | CPU µs/req | × nginx | HTTP/2: req/s | CPU µs/req | × nginx | handshakes/s | CPU µs/handshake | KiB per idle TLS connection | KiB per open h2 stream |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        lines.append(
            f"| {kind} | {med(kind, 'h1', 'rps'):,.0f} | {med(kind, 'h1', 'cpu_us'):.1f} | {ratio(kind, 'h1'):.2f} "
            f"| {med(kind, 'h2', 'rps'):,.0f} | {med(kind, 'h2', 'cpu_us'):.1f} | {ratio(kind, 'h2'):.2f} "
            f"| {med(kind, 'handshakes', 'per_second'):,.0f} | {med(kind, 'handshakes', 'cpu_us'):.0f} "
            f"| {raw[kind]['idle_kib']:.1f} | {raw[kind]['stream_kib']:.1f} |".replace(",", " "))
    table = "\n".join(lines)
    print(table)
    (out / "tls.md").write_text(table + "\n")
    (out / "tls.json").write_text(json.dumps({"context": context_line, "raw": raw}, indent=1))


if __name__ == "__main__":
    main()
