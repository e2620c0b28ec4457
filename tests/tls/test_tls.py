"""TLS and HTTP/2 at mcp-edge's MCP listener, with real clients: Python's ssl module, httpx2 over
HTTP/2 (ALPN, and prior knowledge in clear text), and raw HTTP/2 frames for what no polite
client sends (the floods). Every mcp-edge here runs on loopback over its bundled replicas, with a
certificate authority made for the run (`ca.py`)."""

import json
import os
import shutil
import socket
import ssl
import sys
import time
from pathlib import Path

import httpx2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ca  # noqa: E402
from support import Edge, wait_until  # noqa: E402

BIN = os.environ.get("MCP_EDGE_BIN", str(Path(__file__).resolve().parents[2] / "target/ci/mcp-edge"))
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
EDGE_ARGS = ["--log", "warn,rmcp::service=error,pingora_core::connectors=off"]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    ca.write(directory)
    return directory


def install(certs: Path, name: str, into: Path, key_of: str | None = None):
    """Put `name`'s certificate (and `key_of`'s key, by default its own) in place as a rotation
    does: written beside, then renamed over the files mcp-edge reads."""
    into.mkdir(exist_ok=True)
    for source, target in [(f"{name}.pem", "cert.pem"), (f"{key_of or name}-key.pem", "key.pem")]:
        shutil.copyfile(certs / source, into / f".{target}")
        os.replace(into / f".{target}", into / target)


@pytest.fixture
def tls_edge(certs, tmp_path):
    live = tmp_path / "live"
    install(certs, "edge", live)
    edge = Edge(BIN, [*EDGE_ARGS, "--tls-cert", live / "cert.pem", "--tls-key", live / "key.pem",
                      "--tls-handshake-timeout-ms", "1000"])
    edge.live = live
    yield edge
    edge.stop()


def context(certs, alpn=("h2", "http/1.1"), maximum=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(list(alpn))
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def handshake(edge, ctx) -> dict:
    """One TLS handshake with `edge`: the version, the protocol ALPN chose, the serial presented."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            serial = int(tls.getpeercert()["serialNumber"], 16)
            return {"version": tls.version(), "alpn": tls.selected_alpn_protocol(), "serial": serial}


ECHO = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "hello"}, "_meta": META}}
MODERN = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo"}


def http1_exchange(tls: ssl.SSLSocket, body: dict, headers: dict | None = None) -> int:
    """One keep-alive HTTP/1.1 POST on an open TLS socket: the status."""
    data = json.dumps(body).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    tls.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
                b"accept: application/json, text/event-stream\r\n" + extra.encode()
                + f"content-length: {len(data)}\r\n\r\n".encode() + data)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(65536)
        assert chunk, "the connection closed"
        head += chunk
    top, rest = head.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in top.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += tls.recv(65536)
    return int(top.split(b" ")[1])


def test_alpn_gives_each_client_the_protocol_it_offers(tls_edge, certs):
    assert handshake(tls_edge, context(certs))["alpn"] == "h2"
    assert handshake(tls_edge, context(certs, alpn=("http/1.1",)))["alpn"] == "http/1.1"
    assert tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="h2"}') >= 1
    assert tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="http1"}') >= 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 and 1.0, on purpose
def test_tls_1_3_and_1_2_are_served_and_older_versions_refused(tls_edge, certs):
    assert handshake(tls_edge, context(certs))["version"] == "TLSv1.3"
    assert handshake(tls_edge, context(certs, maximum=ssl.TLSVersion.TLSv1_2))["version"] == "TLSv1.2"
    old = context(certs, maximum=ssl.TLSVersion.TLSv1_1)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(tls_edge, old)


def test_a_client_that_trusts_another_authority_fails_its_handshake(tls_edge, certs, tmp_path):
    other = tmp_path / "other-ca"
    ca.write(other)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_edge, context(other))


def test_a_handshake_not_done_in_time_closes_the_connection(tls_edge):
    before = tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="timed_out"}')
    with socket.create_connection(("127.0.0.1", tls_edge.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        assert raw.recv(1024) == b"", "mcp-edge closes the connection at the handshake deadline"
    wait_until(lambda: tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="timed_out"}') > before, 5,
               "the late handshake to be counted")


def test_plaintext_to_the_tls_listener_is_refused_without_reaching_a_replica(tls_edge):
    before = tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="failed"}')
    with socket.create_connection(("127.0.0.1", tls_edge.port), timeout=10) as raw:
        raw.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\ncontent-length: 2\r\n\r\n{}")
        received = raw.recv(1024)
        assert not received.startswith(b"HTTP/"), received
    wait_until(lambda: tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="failed"}') > before, 5,
               "the failed handshake to be counted")


def test_a_rotated_certificate_reaches_new_handshakes_while_open_connections_go_on(tls_edge, certs):
    ctx = context(certs, alpn=("http/1.1",))
    with socket.create_connection(("127.0.0.1", tls_edge.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as kept:
            assert int(kept.getpeercert()["serialNumber"], 16) == 1001
            assert http1_exchange(kept, INIT) == 200
            install(certs, "rotated", tls_edge.live)
            wait_until(lambda: handshake(tls_edge, ctx)["serial"] == 1002, 20,
                       "new handshakes to present the rotated certificate")
            assert http1_exchange(kept, INIT) == 200, "a connection made before the rotation goes on"
    assert tls_edge.metric('mcp_edge_tls_certificate_reloads_total{outcome="loaded"}') == 1


def test_a_certificate_rotated_under_load_fails_no_request(tls_edge, certs):
    """Four clients call a tool without pause (2026-07-28, stateless), two on kept-alive
    connections and two with a new connection (a new handshake) for every call, while the pair
    is replaced: no call fails, and
    the new connections move to the rotated certificate. Bounded: at most 60 s, 500 000 calls."""
    import threading
    ctx = context(certs, alpn=("http/1.1",))
    failures, calls, serials = [], [0], set()
    stop, deadline = threading.Event(), time.monotonic() + 60

    def going() -> bool:
        return not stop.is_set() and calls[0] < 500_000 and time.monotonic() < deadline

    def kept():
        with socket.create_connection(("127.0.0.1", tls_edge.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                while going():
                    status = http1_exchange(tls, ECHO, MODERN)
                    calls[0] += 1
                    if status != 200:
                        failures.append(status)

    def fresh():
        while going():
            try:
                with socket.create_connection(("127.0.0.1", tls_edge.port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        serials.add(int(tls.getpeercert()["serialNumber"], 16))
                        status = http1_exchange(tls, ECHO, MODERN)
                calls[0] += 1
                if status != 200:
                    failures.append(status)
            except (OSError, AssertionError) as e:
                failures.append(repr(e))

    def guarded(work):
        def run():
            try:
                work()
            except (OSError, AssertionError) as e:
                failures.append(repr(e))
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (kept, kept, fresh, fresh)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: calls[0] >= 50, 20, "the load to start")
        install(certs, "rotated", tls_edge.live)
        try:
            wait_until(lambda: 1002 in serials or failures, 30, "new connections to get the rotated certificate")
        except TimeoutError as e:
            reloads = tls_edge.metric('mcp_edge_tls_certificate_reloads_total{outcome="loaded"}')
            raise AssertionError(f"{e}: {calls[0]} calls, serials {serials}, {reloads} reloads, "
                                 f"threads alive {[t.is_alive() for t in threads]}") from None
        served = calls[0]
        wait_until(lambda: calls[0] >= served + 50 or failures, 20, "more calls after the rotation")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:5]
    assert serials == {1001, 1002}, serials


def test_a_rotation_whose_key_does_not_fit_keeps_the_certificate_in_use(tls_edge, certs):
    ctx = context(certs)
    install(certs, "rotated", tls_edge.live, key_of="edge")
    wait_until(lambda: tls_edge.metric('mcp_edge_tls_certificate_reloads_total{outcome="refused"}') >= 1, 20,
               "the mismatched pair to be refused")
    assert handshake(tls_edge, ctx)["serial"] == 1001
    # The rest of the rotation arrives: the matching key.
    install(certs, "rotated", tls_edge.live)
    wait_until(lambda: handshake(tls_edge, ctx)["serial"] == 1002, 20, "the completed rotation to load")


def test_a_certificate_that_cannot_be_read_stops_the_start_with_a_clear_error(certs, tmp_path):
    import subprocess
    install(certs, "rotated", tmp_path, key_of="edge")
    run = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                          "--tls-cert", tmp_path / "cert.pem", "--tls-key", tmp_path / "key.pem"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "does not fit the certificate" in run.stderr, run.stderr
    run = subprocess.run([BIN, "--tls-cert", tmp_path / "missing.pem", "--tls-key", tmp_path / "key.pem",
                          "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "cannot read" in run.stderr and "--tls-cert" in run.stderr, run.stderr


async def initialize(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    response = await http.post(url, json=INIT, headers=HEADERS)
    assert response.status_code == 200, response.text
    return response


async def test_http2_over_tls_and_h2c_in_clear_text_serve_mcp(tls_edge, certs):
    plain = Edge(BIN, EDGE_ARGS)
    try:
        async with httpx2.AsyncClient(http1=False, http2=True, verify=context(certs)) as http:
            response = await initialize(http, tls_edge.url)
            assert response.http_version == "HTTP/2"
            assert response.headers["mcp-session-id"]
        async with httpx2.AsyncClient(http1=False, http2=True) as http:
            response = await initialize(http, plain.url)
            assert response.http_version == "HTTP/2", "prior knowledge on the plaintext listener"
        async with httpx2.AsyncClient() as http:
            response = await initialize(http, plain.url)
            assert response.http_version == "HTTP/1.1", "HTTP/1.1 on the same listener"
    finally:
        plain.stop()


async def test_one_http2_connection_carries_long_streams_and_calls_at_once(tls_edge, certs):
    """Ten listens held open on one connection, and tool calls beside them: over HTTP/1.1 each
    listen would take a connection of its own."""
    async with httpx2.AsyncClient(http1=False, http2=True, verify=context(certs), timeout=30,
                                  limits=httpx2.Limits(max_connections=1)) as http:
        listen = {"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
                  "params": {"notifications": {"toolsListChanged": True}, "_meta": META}}
        modern = {**HEADERS, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen"}
        streams = []
        for _ in range(10):
            request = http.build_request("POST", tls_edge.url, json=listen, headers=modern)
            response = await http.send(request, stream=True)
            assert response.status_code == 200 and response.http_version == "HTTP/2"
            streams.append(response)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "beside ten streams"}, "_meta": META}}
        for _ in range(5):
            response = await http.post(tls_edge.url, json=call,
                                       headers={**HEADERS, "mcp-protocol-version": "2026-07-28",
                                                "mcp-method": "tools/call", "mcp-name": "echo"})
            assert response.status_code == 200, response.text
            assert "beside ten streams" in response.text
        assert tls_edge.metric('mcp_edge_tls_handshakes_total{outcome="h2"}') == 1, "one connection"
        for stream in streams:
            await stream.aclose()
