"""Helpers for driving ``WsConnection`` with hand-made frames (no sockets, no event loop).

* ``client_frame()`` builds one client frame byte for byte (masked by default, any
  opcode, FIN and RSV bits), so tests can also build frames a real client never sends.
* ``close_payload()`` is the payload of a close frame: a 2-byte code and a reason.
* ``deflate()`` compresses a message the way a permessage-deflate client does
  (raw deflate, sync flush, the trailing ``00 00 ff ff`` removed; RFC 7692 §7.2.1).
* ``parse_server_frames()`` is the client peer: it parses what the server wrote,
  checks the server did not mask (RFC 6455 §5.1), and notes whether EOF (``b""``)
  came after the frames.
* ``feed()`` plays a driver whose app reads every message at once: it hands
  ``pieces`` over one by one, calls ``resume()`` whenever bytes were held back,
  and collects both the events and what the server wrote.
* ``ways_to_feed()`` (from ``tests.support.h1``) cuts bytes every possible way.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from bascule.proto.limits import WsLimits
from bascule.proto.ws.connection import WsClosed, WsConnection, WsEvent, WsMessage, WsPong
from tests.support.h1 import ways_to_feed

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "MASK",
    "PING",
    "PONG",
    "RSV1",
    "RSV2",
    "RSV3",
    "TEXT",
    "Fed",
    "ServerFrame",
    "ServerOutput",
    "client_close",
    "client_frame",
    "close_payload",
    "deflate",
    "describe",
    "feed",
    "mask_bytes",
    "parse_server_frames",
    "ways_to_feed",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: ``rsv`` values for ``client_frame``: RSV1 is the high bit of the three.
RSV1, RSV2, RSV3 = 0b100, 0b010, 0b001

#: A mask with four different, non-zero bytes, so a wrong mask offset shows.
MASK = b"\x37\xfa\x21\x3d"


def mask_bytes(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` (RFC 6455 §5.3); it is its own inverse."""
    assert len(mask) == 4
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def client_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes = MASK,
) -> bytes:
    """One frame as a client would send it (RFC 6455 §5.2), masked unless told not to."""
    assert 0 <= opcode <= 0xF
    assert 0 <= rsv <= 0b111
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 1 << 16:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    if masked:
        return head + mask + mask_bytes(payload, mask)
    return head + payload


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    """Payload of a close frame: the code in network order, then the reason (§5.5.1)."""
    raw = reason.encode() if isinstance(reason, str) else reason
    return struct.pack("!H", code) + raw


def client_close(code: int, reason: str | bytes = b"") -> bytes:
    """A masked close frame from the client."""
    return client_frame(CLOSE, close_payload(code, reason))


def deflate(data: bytes, compressor: zlib._Compress | None = None, final: bool = True) -> bytes:
    """``data`` compressed as one permessage-deflate message (RFC 7692 §7.2.1).

    With ``final=False`` the result is a middle part of a message compressed in
    fragments: the sync-flush tail ``00 00 ff ff`` stays, only the end drops it.
    """
    if compressor is None:
        compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4] if final else out


@dataclass
class ServerFrame:
    """One frame the server wrote."""

    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The close code (None for a close frame without one, or not a close frame)."""
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code

    @property
    def close_reason(self) -> str:
        assert self.opcode == CLOSE
        return self.payload[2:].decode()


@dataclass
class ServerOutput:
    """Everything the server wrote, parsed."""

    frames: list[ServerFrame] = field(default_factory=list)
    eof: bool = False

    @property
    def close(self) -> ServerFrame | None:
        """The server's close frame, if it sent one (there is at most one)."""
        closes = [f for f in self.frames if f.opcode == CLOSE]
        assert len(closes) <= 1, closes
        return closes[0] if closes else None

    def ends_with_close(self, code: int) -> bool:
        """True when the last frame is a close frame with ``code`` and EOF follows it."""
        return (
            bool(self.frames)
            and self.frames[-1].opcode == CLOSE
            and self.frames[-1].close_code == code
            and self.eof
        )


def parse_server_frames(chunks: Sequence[bytes]) -> ServerOutput:
    """Parse ``data_to_send()`` output: whole unmasked frames, then maybe ``b""`` (EOF).

    Fails the test if a frame is masked or cut short, or if bytes follow the EOF.
    """
    out = ServerOutput()
    data = b""
    for i, chunk in enumerate(chunks):
        if chunk == b"":
            assert i == len(chunks) - 1, f"bytes written after EOF: {chunks[i + 1 :]!r}"
            out.eof = True
        else:
            data += chunk
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 2, f"truncated frame header: {data[pos:]!r}"
        first, second = data[pos], data[pos + 1]
        assert not second & 0x80, "the server masked a frame (RFC 6455 §5.1 forbids it)"
        length = second & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        payload = data[pos : pos + length]
        assert len(payload) == length, f"truncated frame payload: {data[pos - 2 :]!r}"
        pos += length
        out.frames.append(
            ServerFrame(bool(first & 0x80), (first >> 4) & 0b111, first & 0xF, payload)
        )
    return out


@dataclass
class Fed:
    """What one ``feed()`` produced."""

    conn: WsConnection
    events: list[WsEvent]
    written: ServerOutput
    #: ``len(events)`` and the server output right after each piece was fed.
    progress: list[tuple[int, ServerOutput]]


def feed(
    pieces: Sequence[bytes],
    limits: WsLimits | None = None,
    conn: WsConnection | None = None,
) -> Fed:
    """Feed ``pieces`` as a driver whose app reads each message at once would."""
    if conn is None:
        conn = WsConnection(limits or WsLimits())
    events: list[WsEvent] = []
    chunks: list[bytes] = []
    progress: list[tuple[int, ServerOutput]] = []
    for piece in pieces:
        events += conn.receive_data(piece)
        while conn.buffered and conn.open:
            before = conn.buffered
            events += conn.resume()
            if conn.buffered == before:
                break  # an incomplete frame: wait for more bytes
        chunks += conn.data_to_send()
        progress.append((len(events), parse_server_frames(chunks)))
    return Fed(conn, events, parse_server_frames(chunks), progress)


def describe(events: Sequence[WsEvent]) -> list[tuple[object, ...]]:
    """Comparable tuples for ``events``."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, WsMessage):
            out.append(("message", event.data))
        elif isinstance(event, WsPong):
            out.append(("pong", event.data))
        else:
            assert isinstance(event, WsClosed)
            out.append(("closed", event.code, event.by_peer))
    return out
