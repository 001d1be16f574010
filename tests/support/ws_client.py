"""A hand-made WebSocket client over a plain socket, for tests that need exact bytes.

* ``upgrade_request()`` builds an opening handshake (any version, key, extra headers).
* ``frame()`` builds one client frame: any opcode, FIN, reserved bits, masked or not,
  so a test can send frames a real client never would.
* ``RawWs`` does the handshake by hand, then sends frames and parses the server's
  frames (unmasked) one by one; ``expect_close()`` reads up to the server's close
  frame and ``wait_eof()`` checks that the server then closes TCP.
"""

from __future__ import annotations

import base64
import select
import socket
import struct
import time
import zlib
from typing import NamedTuple

KEY = base64.b64encode(b"0123456789abcdef")
MASK = b"\x37\xfa\x21\x3d"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def upgrade_request(
    path: str = "/",
    *,
    http_version: bytes = b"1.1",
    key: bytes = KEY,
    ws_version: bytes = b"13",
    extra: bytes = b"",
) -> bytes:
    """The bytes of an opening handshake request (``extra``: header lines ending in CRLF)."""
    return (
        b"GET %b HTTP/%b\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: %b\r\n%b\r\n"
        % (path.encode(), http_version, key, ws_version, extra)
    )


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask`` (RFC 6455 §5.3)."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
) -> bytes:
    """One frame as a client would send it (``mask=None``: unmasked, a protocol error)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def deflate(data: bytes) -> bytes:
    """A permessage-deflate payload (RFC 7692 §7.2.1: the final empty block stripped)."""
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


class Frame(NamedTuple):
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(response head up to the blank line, bytes already read after it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed before the response head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def header_values(head: bytes, name: bytes) -> list[bytes]:
    """Values of header ``name`` (lowercase) in a response head."""
    out = []
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            out.append(value.strip())
    return out


class RawWs:
    """A WebSocket client that speaks frames by hand over ``sock``."""

    def __init__(self, sock: socket.socket, head: bytes = b"", buffered: bytes = b"") -> None:
        self.sock = sock
        self.head = head
        self._buf = bytearray(buffered)

    @classmethod
    def open(cls, sock: socket.socket, path: str = "/", extra: bytes = b"") -> RawWs:
        """Do the opening handshake on ``sock``; the server must answer 101."""
        sock.sendall(upgrade_request(path, extra=extra))
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(sock, head, rest)

    # sending -------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bytes | None = MASK,
    ) -> None:
        self.sock.sendall(frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))

    # receiving -----------------------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        buf = self._buf
        while len(buf) < n:
            data = self.sock.recv(max(65536, n - len(buf)))
            if not data:
                raise EOFError("the server closed the connection")
            buf += data
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def recv_frame(self) -> Frame:
        """The next frame from the server (bounded by the socket's timeout)."""
        first, second = self._read_exact(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        masked = bool(second & 0x80)
        mask = self._read_exact(4) if masked else b""
        payload = self._read_exact(length)
        if masked:
            payload = apply_mask(payload, mask)
        return Frame(bool(first & 0x80), first & 0x70, first & 0x0F, payload, masked)

    def recv_message(self) -> Frame:
        """The next data frame, answering pings on the way."""
        while True:
            got = self.recv_frame()
            if got.opcode == PING:
                self.send_frame(PONG, got.payload)
            elif got.opcode != PONG:
                return got

    def expect_close(self) -> tuple[int, str]:
        """Read frames up to the server's close frame; its (code, reason)."""
        while True:
            got = self.recv_frame()
            if got.opcode == CLOSE:
                assert not got.masked, "server frames must not be masked"
                assert len(got.payload) >= 2, got
                (code,) = struct.unpack("!H", got.payload[:2])
                return code, got.payload[2:].decode()

    def wait_eof(self, timeout: float = 5) -> bool:
        """True if the server closes the TCP connection within ``timeout`` (data is discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], left)
            if not readable:
                return False
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not data:
                return True
