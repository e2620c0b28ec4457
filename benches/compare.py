#!/usr/bin/env python3
"""What routing costs: the same MCP load, side by side in one run, direct to one replica,
through mcp-edge, through nginx and through HAProxy, in interleaved rounds (each round
starting one path later, so that none always runs first or last).

    benches/compare [--rounds 5] [--seconds 8] [--concurrency 50] [--out DIR]

Three bundled mcp-backend replicas run as their own processes on loopback; every proxy fronts
all three (nginx: round robin, upstream keepalive, proxy_buffering off; HAProxy: roundrobin,
http-reuse always; mcp-edge: its defaults). mcp-load drives the template's request shape
(stateless tools/call echo) closed loop, then one connection alone for the latency each hop
adds. A proxy's CPU per request is its processes' user + system time from /proc over the run,
divided by the requests answered. The table gives each figure's median over the rounds (a busy
neighbour on a shared machine only ever adds cost, so one bad round must not move the result),
the CPU range over the rounds, and the ratio to nginx as the median of each round's own ratio
(the two ran back to back). Prints a markdown table and writes it, the raw figures (JSON)
and a chart (SVG) to --out (default: results/compare). Loopback only; every run is bounded.
"""

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))
from support import Edge, free_port  # noqa: E402
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", HERE / "target"))
# The built binaries: the release profile's, or another profile's (scripts/test's soak stage runs
# its `ci` build).
BINS = Path(os.environ.get("MCP_EDGE_BIN_DIR", TARGET / "release"))
HZ = os.sysconf("SC_CLK_TCK")


def wait_http(url: str, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def ticks(pids) -> int:
    """User + system CPU ticks of these processes and their threads so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, IndexError):
            pass
    return total


def children(pid: int):
    """A process and its direct children (nginx's workers)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def need(tool: str, package: str):
    if shutil.which(tool):
        return
    if os.geteuid() != 0:
        sys.exit(f"{tool} is missing: apt-get install {package}")
    print(f"installing {package} (Debian)", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


class Proc:
    """Any other process of a run (a replica, nginx, HAProxy), quiet."""

    def __init__(self, argv, **kw):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


NGINX = """
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
daemon off;
worker_rlimit_nofile {connections};
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream replicas {{ {servers} keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
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
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend mcp
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
{servers}
"""


NGINX_CONNECTIONS = 4096  # per worker (benches/memory raises it)
EDGE_VARIANTS = {"mcp-edge": (None, [])}  # label → (another mcp-edge binary, flags)


def add_edge_variants(specs, only):
    """`--edge LABEL=FLAGS` (a first word @PATH: another mcp-edge binary) into EDGE_VARIANTS."""
    for spec in specs:
        label, _, flags = spec.partition("=")
        words = flags.split()
        binary = words.pop(0)[1:] if words and words[0].startswith("@") else None
        EDGE_VARIANTS[label] = (binary, words)
        only.append(label)


def start_replicas(procs, n: int = 3, fixtures: bool = False):
    """n mcp-backend replicas on loopback (appended to `procs`); their ports. `fixtures`: they
    also serve the conformance fixtures (a bench calling `test_trigger_tool_change`)."""
    ports = []
    for i in range(1, n + 1):
        port = free_port()
        procs.append(Proc([str(BINS / "mcp-backend"), "--listen", f"127.0.0.1:{port}",
                           "--replica-id", f"r{i}", "--log", "error",
                           *(["--conformance-fixtures"] if fixtures else [])]))
        wait_http(f"http://127.0.0.1:{port}/healthz", 20)
        ports.append(port)
    return ports


# mcp-edge's logging in every run: errors only, and not the connector's refused-connection noise.
EDGE_LOG = ["--log", "error,pingora_core::connectors=off"]


def backend_args(replicas):
    """mcp-edge's --backend flags for replica ports."""
    return [arg for r in replicas for arg in ("--backend", f"http://127.0.0.1:{r}/mcp")]


def start_edge(replicas, flags, procs):
    """mcp-edge (quiet, its flags after) in front of `replicas` (ports), appended to `procs`,
    once every replica is healthy: (url, admin port, the process: tests/support.py's Edge)."""
    edge = Edge(BINS / "mcp-edge", [*EDGE_LOG, *flags, *backend_args(replicas)])
    procs.append(edge)
    return edge.url, edge.admin, edge


def start_proxy(kind: str, replicas, workdir: Path):
    """Start one proxy in front of `replicas` (ports): (url, process)."""
    port = free_port()
    workers = os.cpu_count() or 1
    if kind == "direct":
        return f"http://127.0.0.1:{replicas[0]}/mcp", None
    if kind in EDGE_VARIANTS:
        binary, flags = EDGE_VARIANTS[kind]
        # What routing costs, not the per-caller budgets: every load client here is one caller
        # (127.0.0.1) starting sessions far past a real client's rate. (Another binary may
        # predate the flag.)
        unlimited = [] if binary else ["--session-rate-limit", "0"]
        proc = Edge(binary or BINS / "mcp-edge",
                    [*EDGE_LOG, *unlimited, *flags, *backend_args(replicas)], port=port)
    elif kind == "nginx":
        servers = " ".join(f"server 127.0.0.1:{r};" for r in replicas)
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX.format(workers=workers, dir=workdir, servers=servers, port=port, connections=NGINX_CONNECTIONS))
        proc = Proc(["nginx", "-c", str(conf), "-p", str(workdir)])
    elif kind == "haproxy":
        servers = "\n".join(f"  server r{i} 127.0.0.1:{r}" for i, r in enumerate(replicas, 1))
        conf = workdir / "haproxy.cfg"
        conf.write_text(HAPROXY.format(workers=workers, servers=servers, port=port))
        proc = Proc(["haproxy", "-f", str(conf)])
    else:
        raise ValueError(kind)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_http(url.replace("/mcp", "/healthz"), 20)
    return url, proc


def load(url: str, concurrency: int, seconds: float) -> dict:
    argv = [str(BINS / "mcp-load"), "--url", url, "--scenario", "stateless", "-c", str(concurrency),
            "-d", str(seconds), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout)


def children_cpu_seconds() -> float:
    """CPU of the waited-for children so far: here, the mcp-load runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(kind, replicas, replica_pids, workdir, concurrency, seconds):
    url, proc = start_proxy(kind, replicas, workdir)
    try:
        load(url, concurrency, min(2.0, seconds))  # warm up: connections, pools
        pids = children(proc.proc.pid) if proc else []
        before, replicas_before, load_before = ticks(pids), ticks(replica_pids), children_cpu_seconds()
        report = load(url, concurrency, seconds)
        used = ticks(pids) - before
        replicas_used, load_used = ticks(replica_pids) - replicas_before, children_cpu_seconds() - load_before
        single = load(url, 1, min(seconds, 5.0))
    finally:
        if proc:
            proc.stop()
    ok = max(report["ok"], 1)
    return {
        "rps": report["ok_rps"], "p50": report["latency_us"]["p50"], "p99": report["latency_us"]["p99"],
        "errors": report["errors"], "cpu_us": used / HZ * 1e6 / ok if proc else None,
        "replicas_cpu_us": replicas_used / HZ * 1e6 / ok, "load_cpu_us": load_used * 1e6 / ok,
        "single_p50": single["latency_us"]["p50"], "single_p99": single["latency_us"]["p99"],
        "single_errors": single["errors"],
    }


def median(xs):
    """The median of the figures that were measured (None when none was)."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def svg(rows, path: Path, caption: str):
    """Two bar groups: proxy CPU per request, and latency added at one connection."""
    kinds = [k for k in rows if k in ("mcp-edge", "nginx", "haproxy")]
    colors = {"mcp-edge": "#d9480f", "nginx": "#2b8a3e", "haproxy": "#1864ab"}
    cpu_max = max(rows[k]["cpu_us"] for k in kinds) * 1.15
    add_max = max(max(rows[k]["added_us"], 1) for k in kinds) * 1.15
    w, h, bar = 720, 300, 44
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="10" y="18" font-size="13">{caption}</text>']
    for g, (title, key, top, unit) in enumerate([("proxy CPU per request", "cpu_us", cpu_max, "µs"),
                                                   ("latency added, 1 connection (p50)", "added_us", add_max, "µs")]):
        x0 = 40 + g * 350
        parts.append(f'<text x="{x0}" y="44">{title}</text>')
        for i, k in enumerate(kinds):
            v = max(rows[k][key], 0)
            bh = 200 * v / top
            x = x0 + i * (bar + 30)
            parts.append(f'<rect x="{x}" y="{260 - bh:.1f}" width="{bar}" height="{bh:.1f}" fill="{colors.get(k, "#666")}"/>')
            parts.append(f'<text x="{x + bar / 2}" y="{255 - bh:.1f}" text-anchor="middle">{v:.0f} {unit}</text>')
            parts.append(f'<text x="{x + bar / 2}" y="278" text-anchor="middle">{k}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--out", default=str(HERE / "results" / "compare"))
    parser.add_argument("--only", nargs="*", default=["direct", "mcp-edge", "nginx", "haproxy"],
                        help="which paths to measure (default: all four)")
    parser.add_argument("--edge", action="append", default=[], metavar="LABEL=FLAGS",
                        help="also measure mcp-edge with these flags, e.g. 'stealing=--work-stealing true'; "
                             "a first word @PATH runs another mcp-edge binary (before/after a change, in one run: "
                             "'before=@/tmp/old/mcp-edge')")
    args = parser.parse_args()
    add_edge_variants(args.edge, args.only)
    need("nginx", "nginx-light")
    need("haproxy", "haproxy")
    for binary in ("mcp-backend", "mcp-edge", "mcp-load"):
        if not (BINS / binary).exists():
            sys.exit(f"{BINS}/{binary} is missing: cargo build --release --workspace --all-targets (benches/compare does)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    edges = "".join(f" --edge '{e}'" for e in args.edge)
    context = (f"{when}, {os.cpu_count()} cores ({cpu}), commit {commit}, "
               f"`benches/compare --rounds {args.rounds} --seconds {args.seconds:g} --concurrency {args.concurrency}{edges}`")

    procs = []
    try:
        replicas = start_replicas(procs)
        samples = {k: [] for k in args.only}
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(1, args.rounds + 1):
                # Each round starts one path later: no path always runs first or last.
                shift = (round_ - 1) % len(args.only)
                for kind in args.only[shift:] + args.only[:shift]:
                    workdir = Path(tmp) / f"{kind}-{round_}"
                    workdir.mkdir()
                    m = measure(kind, replicas, [p.proc.pid for p in procs], workdir, args.concurrency, args.seconds)
                    samples[kind].append(m)
                    cpu_text = f", CPU {m['cpu_us']:.1f} µs/req" if m["cpu_us"] else ""
                    print(f"round {round_} {kind}: {m['rps']:.0f} req/s, p50 {m['p50']} µs{cpu_text}, "
                          f"1 conn p50 {m['single_p50']} µs, errors {m['errors'] + m['single_errors']}", file=sys.stderr)
    finally:
        for p in procs:
            p.stop()

    rows = {k: {f: median([s[f] for s in v]) for f in v[0]} for k, v in samples.items()}
    direct, nginx = samples.get("direct"), samples.get("nginx")
    for k, r in rows.items():
        # Per round, against the run beside it; then the median.
        r["added_us"] = median([s["single_p50"] - d["single_p50"] for s, d in zip(samples[k], direct)]) if direct else None
        r["rps_vs_direct"] = median([s["rps"] / d["rps"] for s, d in zip(samples[k], direct)]) if direct else None
        r["cpu_vs_nginx"] = median([s["cpu_us"] / n["cpu_us"] for s, n in zip(samples[k], nginx) if s["cpu_us"] and n["cpu_us"]]) if nginx else None
        cpus = [s["cpu_us"] for s in samples[k] if s["cpu_us"]]
        r["cpu_range"] = (min(cpus), max(cpus)) if cpus else None
    lines = [f"Measured {context}; medians of the rounds, ratios the median of each round's ratio.", "",
             "| path | req/s | p50 | p99 | proxy CPU per request (range) | CPU vs nginx | req/s vs direct | 1 connection p50 | added by the hop | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in rows.items():
        cpu_text = f"{r['cpu_us']:.1f} µs ({r['cpu_range'][0]:.0f}–{r['cpu_range'][1]:.0f})" if r["cpu_us"] else "—"
        vs_nginx = f"{r['cpu_vs_nginx']:.2f}×" if r["cpu_vs_nginx"] else "—"
        vs_direct = f"{r['rps_vs_direct']:.2f}×" if r["rps_vs_direct"] else "—"
        added = f"{r['added_us']:+.0f} µs" if k != "direct" and r["added_us"] is not None else "—"
        errors = sum(s["errors"] + s["single_errors"] for s in samples[k])
        lines.append(f"| {k} | {r['rps']:.0f} | {r['p50'] / 1000:.2f} ms | {r['p99'] / 1000:.2f} ms | {cpu_text} | {vs_nginx} | "
                     f"{vs_direct} | {r['single_p50']:.0f} µs | {added} | {errors} |")
    lines += ["", f"Where the {os.cpu_count()} cores go, CPU per request at {args.concurrency} clients (the same runs):", "",
              "| path | mcp-load | 3 replicas | proxy | sum |", "|---|---|---|---|---|"]
    for k, r in rows.items():
        proxy = r["cpu_us"] or 0.0
        lines.append(f"| {k} | {r['load_cpu_us']:.1f} µs | {r['replicas_cpu_us']:.1f} µs | "
                     f"{f'{proxy:.1f} µs' if r['cpu_us'] else '—'} | {r['load_cpu_us'] + r['replicas_cpu_us'] + proxy:.1f} µs |")
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    (out / "raw.json").write_text(json.dumps({"context": context, "samples": samples, "medians": rows}, indent=1))
    if all(k in rows for k in ("direct", "mcp-edge", "nginx", "haproxy")):
        svg(rows, out / "chart.svg", f"3 mcp-backend replicas, mcp-load stateless -c {args.concurrency}; {when}, commit {commit}")
    print(f"\nwritten: {out}/table.md, raw.json, chart.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
