"""The known HTTP/2 floods against mcp-edge's clear-text listener (h2c, prior knowledge): each is
bounded, reaches no replica beyond its bound, and leaves the edge serving everyone else. Frames
are written by hand (`frames.py`): no client library would send them. Loopback only; every loop
is bounded in count and in time."""

import json
import signal
import socket
import struct
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from frames import (  # noqa: E402
    CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS, PING,
    REFUSED_STREAM, RST_STREAM, SETTINGS, Connection, frame, header_block, request_fields)
from support import Edge, wait_until  # noqa: E402
from test_tls import BIN, EDGE_ARGS, INIT, META  # noqa: E402

# A short header deadline: an idle HTTP/2 connection ends after it.
HEADER_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def edge():
    edge = Edge(BIN, [*EDGE_ARGS, "--http2-max-streams", "4", "--header-timeout-ms", HEADER_TIMEOUT_MS])
    yield edge
    edge.stop()


def requests_reaching_replicas(edge) -> int:
    with urllib.request.urlopen(f"{edge.admin_url}/metrics", timeout=5) as r:
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in r.read().decode().splitlines()
                   if line.startswith("mcp_edge_requests_total{") and 'replica="edge"' not in line)


def assert_serves_others(edge):
    request = urllib.request.Request(edge.url, json.dumps(INIT).encode(), method="POST", headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200


def goaway_code(frames) -> int | None:
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


def call(name: str, arguments: dict) -> tuple[bytes, bytes]:
    """A 2026-07-28 tools/call: its header block and body."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments, "_meta": META}}).encode()
    block = header_block(request_fields(extra=[
        ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", name),
        ("content-length", str(len(body)))]))
    return block, body


def test_streams_opened_and_reset_at_once_end_the_connection_before_they_load_the_replicas(edge):
    """Rapid reset (CVE-2023-44487): 3 000 tool calls, each cancelled as soon as sent."""
    before = requests_reaching_replicas(edge)
    block, body = call("sleep", {"seconds": 2})
    connection = Connection(edge.port)
    sent = 0
    for i in range(3000):
        stream = 2 * i + 1
        burst = (frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, END_STREAM, stream, body)
                 + frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
        if not connection.send(burst):
            break
        sent += 1
    code = goaway_code(connection.frames(time.monotonic() + 20))
    connection.close()
    assert code == ENHANCE_YOUR_CALM, f"GOAWAY {code} after {sent} streams"
    reached = requests_reaching_replicas(edge) - before
    assert reached < 100, f"{reached} of {sent} reset streams reached a replica"
    assert_serves_others(edge)


def test_a_header_block_that_never_ends_is_cut_after_a_few_frames(edge):
    """Endless CONTINUATION frames (CVE-2024-27316 and kin), sent one at a time, each followed
    by a look for the edge's GOAWAY: the block is cut within a few frames of the header budget
    (h2 counts the frames a block of the allowed size needs, plus a quarter, at least five)."""
    before = requests_reaching_replicas(edge)
    connection = Connection(edge.port)
    connection.send(frame(HEADERS, 0, 1, header_block(request_fields())))
    more = frame(CONTINUATION, 0, 1, header_block([(f"x-junk-{i}", "v" * 100) for i in range(140)]))
    code, frames = None, 0
    while code is None and frames < 200:
        if not connection.send(more):
            break
        frames += 1
        code = goaway_code(connection.frames(time.monotonic() + 0.2))
    connection.close()
    assert code == ENHANCE_YOUR_CALM, f"GOAWAY {code} after {frames} frames"
    assert frames <= 8, f"{frames} CONTINUATION frames of {len(more)} bytes were read"
    assert requests_reaching_replicas(edge) == before
    assert_serves_others(edge)


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_a_control_frame_flood_from_a_client_that_reads_nothing_holds_no_memory(edge, flood):
    """PING or SETTINGS frames as fast as the socket takes them, their answers never read: h2
    answers one at a time and stops reading while an answer waits, so the client's own socket
    buffers fill; the edge holds nothing more and ends the idle connection."""
    start = edge.rss_kib()
    one = {"ping": frame(PING, 0, 0, b"8 bytes!"),
           "settings": frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535))}[flood]
    connection = Connection(edge.port, timeout=2)
    sent, deadline = 0, time.monotonic() + 20
    while time.monotonic() < deadline and sent < 2_000_000:
        try:
            connection.sock.sendall(one * 1000)
        except OSError:  # the socket's buffers are full (timeout), or it closed
            break
        sent += 1000
    grown = edge.rss_kib() - start
    assert grown < 8 * 1024, f"RSS grew {grown} KiB during {sent} {flood} frames"
    assert_serves_others(edge)
    # Not reading at all: the connection ends at the idle deadline (no stream was ever open).
    connection.sock.settimeout(60)
    while True:
        try:
            if not connection.sock.recv(1 << 20):
                break
        except socket.timeout:
            pytest.fail("the connection was not closed within 60 s")
        except OSError:  # reset: closed too
            break
    connection.close()


def test_streams_past_the_limit_are_refused_and_the_others_go_on(edge):
    """--http2-max-streams 4: a fifth listen opened while four are held gets REFUSED_STREAM."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
                       "params": {"notifications": {"toolsListChanged": True}, "_meta": META}}).encode()
    block = header_block(request_fields(extra=[
        ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen"),
        ("content-length", str(len(body)))]))
    connection = Connection(edge.port)
    # The edge's SETTINGS first (a client that waits for them, as h2 clients do).
    settings = next((f for f in connection.frames(time.monotonic() + 5) if f[0] == SETTINGS), None)
    assert settings is not None, "the edge sent no SETTINGS"
    for stream in (1, 3, 5, 7, 9):
        connection.send(frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, END_STREAM, stream, body))
    refused, answered = set(), set()
    deadline = time.monotonic() + 15
    for kind, _, stream, payload in connection.frames(deadline):
        if kind == RST_STREAM and int.from_bytes(payload, "big") == REFUSED_STREAM:
            refused.add(stream)
        elif kind == HEADERS:
            answered.add(stream)
        if len(answered) == 4 and refused:
            break
    connection.close()
    assert refused == {9}, (refused, answered)
    assert answered == {1, 3, 5, 7}


def test_an_http2_connection_with_no_stream_ends_with_goaway_at_the_header_deadline(edge):
    connection = Connection(edge.port)
    begun = time.monotonic()
    code = goaway_code(connection.frames(begun + 30))
    connection.close()
    assert code == 0, f"GOAWAY NO_ERROR expected, got {code}"
    assert time.monotonic() - begun >= HEADER_TIMEOUT_MS / 1000 * 0.9


def test_a_shutdown_sends_goaway_and_lets_the_streams_in_flight_finish():
    """SIGTERM while a 2 s tool call runs on an HTTP/2 connection: the client gets GOAWAY at
    once, the call still completes with its answer, and the process exits once it has."""
    edge = Edge(BIN, [*EDGE_ARGS, "--grace-seconds", "20"])
    block, body = call("sleep", {"ms": 2000})
    connection = Connection(edge.port)
    connection.send(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, END_STREAM, 1, body))
    # The connection accepted (its SETTINGS arrived; one still in the listen backlog at a
    # shutdown is closed unserved, as by nginx): whenever the signal lands from here, the call
    # was sent before the GOAWAY and must be answered.
    settings = next((f for f in connection.frames(time.monotonic() + 10) if f[0] == SETTINGS), None)
    assert settings is not None, "the edge sent no SETTINGS"
    edge.proc.send_signal(signal.SIGTERM)
    goaway, answered, ended = None, b"", False
    for kind, flags, stream, payload in connection.frames(time.monotonic() + 20):
        if kind == GOAWAY and goaway is None:
            goaway = int.from_bytes(payload[4:8], "big")
        if kind == DATA and stream == 1:
            answered += payload
            ended = ended or bool(flags & END_STREAM)
        if ended and goaway is not None:
            break
    connection.close()
    assert goaway == 0, f"GOAWAY NO_ERROR at the shutdown, got {goaway}"
    assert ended and b'"result"' in answered, answered[:200]
    assert edge.proc.wait(timeout=20) == 0
