"""HTTP/2 frames written by hand, for the clients no library would be: streams opened and reset
at once, header blocks that never end, PING and SETTINGS floods (RFC 9113 §4, §6; header blocks
in HPACK's literal form, RFC 7541 §6.2.2)."""

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL, ENHANCE_YOUR_CALM, REFUSED_STREAM = 0x8, 0xB, 0x7


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _integer(value: int, prefix: int) -> bytes:
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([value])
    out, value = [limit], value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes(out + [value])


def header_block(fields) -> bytes:
    """Each (name, value) as a literal field without indexing, new name."""
    out = b""
    for name, value in fields:
        name, value = name.encode(), value.encode()
        out += b"\x00" + _integer(len(name), 7) + name + _integer(len(value), 7) + value
    return out


def request_fields(method: str = "POST", extra=()) -> list:
    return [(":method", method), (":scheme", "http"), (":path", "/mcp"), (":authority", "localhost"),
            ("content-type", "application/json"), ("accept", "application/json, text/event-stream"), *extra]


class Connection:
    """An HTTP/2 connection to 127.0.0.1:`port`: clear text with prior knowledge (h2c), or over
    TLS with `tls` (a context offering h2 in ALPN)."""

    def __init__(self, port: int, timeout: float = 10, tls=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.buffer = b""

    def send(self, data: bytes) -> bool:
        """Write `data`; False when the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def frames(self, until: float):
        """The frames the server sends, until it closes or `until` (a time.monotonic()) passes."""
        import time
        while True:
            while len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + length:
                    break
                kind, flags = self.buffer[3], self.buffer[4]
                stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                payload, self.buffer = self.buffer[9:9 + length], self.buffer[9 + length:]
                yield kind, flags, stream, payload
            left = until - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except (socket.timeout, OSError):
                return
            if not chunk:
                return
            self.buffer += chunk

    def close(self):
        self.sock.close()
