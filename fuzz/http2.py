"""atheris target: HTTP/2 server connection (H2Connection).

The input is a client preface followed either by raw bytes or by frames
built from the input (every type and unknown ones, any flags and stream ids,
HPACK-encoded requests, length fields that may lie), fed in pieces; each
request is answered.  Crash = any exception out of receive_data (it must turn
every error into a ConnectionEnded event), or events after a connection error.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hpack

from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http2.connection import (
    ConnectionEnded,
    H2Connection,
    StreamRejected,
    StreamReset,
)
from bascule.proto.limits import Http2Limits
from fuzz._bytes import Choices, run

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SMALL = Http2Limits(
    max_concurrent_streams=3,
    initial_window_size=100,
    max_header_list_size=200,
    max_resets=2,
    reset_window=10,
    control_frame_budget=10,
)
NAMES = [
    b":method",
    b":path",
    b":scheme",
    b":authority",
    b":protocol",
    b":status",
    b"content-length",
    b"te",
    b"connection",
    b"host",
    b"cookie",
    b"x-a",
    b"X-Up",
]
VALUES = [
    b"GET",
    b"POST",
    b"CONNECT",
    b"/",
    b"*",
    b"https",
    b"websocket",
    b"x",
    b"0",
    b"5",
    b"trailers",
    b"",
    b"a b",
    b"\r\n",
    b"\x00",
    b"x" * 300,
]
REQUEST = [(b":method", b"GET"), (b":path", b"/p?q"), (b":scheme", b"https"), (b":authority", b"a")]
STREAMS = [0, 1, 3, 5, 7, 2, 0x7FFFFFFF]
EXPECTED = (RequestReceived, BodyChunk, BodyEnd, StreamReset, ConnectionEnded, StreamRejected)


def build_frames(choices: Choices) -> bytes:
    encoder = hpack.Encoder()
    out: list[bytes] = []
    while choices.left and len(out) < 64:
        ftype = choices.byte() % 12  # 10, 11: unknown types
        flags = choices.byte()
        pick = choices.byte()
        stream_id = STREAMS[pick % len(STREAMS)] if pick < 224 else choices.number(4)
        kind = choices.byte()
        if ftype in (1, 5, 9) and kind % 4:  # HEADERS, PUSH_PROMISE, CONTINUATION
            fields = list(REQUEST) if kind % 4 == 1 else []
            for _ in range(choices.byte() % 6):
                fields.append(
                    (NAMES[choices.byte() % len(NAMES)], VALUES[choices.byte() % len(VALUES)])
                )
            payload = encoder.encode(fields)
        elif ftype == 4 and kind % 2:  # SETTINGS entries
            payload = b"".join(
                struct.pack("!HI", choices.byte() % 10, choices.number(4)) for _ in range(kind % 4)
            )
        else:
            payload = choices.take(choices.byte() % 64)
        length = len(payload) if kind < 240 else choices.number(3)
        out.append(
            struct.pack("!I", length)[1:]
            + bytes([ftype, flags])
            + struct.pack("!I", stream_id)
            + payload
        )
    return b"".join(out)


def test_one_input(data: bytes) -> None:
    choices = Choices(data)
    mode = choices.byte()
    conn = H2Connection(SMALL if mode & 1 else None)
    conn.initiate()
    conn.data_to_send()
    body = choices.rest() if mode & 2 else build_frames(choices)
    stream = (b"" if mode & 4 else PREFACE + SETTINGS) + body
    cutter = Choices(data[::-1])  # cut points from the other end of the input
    failed = False
    for piece in cutter.pieces(stream, (mode >> 3) & 7):
        events = conn.receive_data(piece)
        for event in events:
            assert isinstance(event, EXPECTED), event
            if failed:
                assert isinstance(event, ConnectionEnded), ("event after a connection error", event)
            if isinstance(event, ConnectionEnded) and event.error_code:
                failed = True
        reset = {e.stream_id for e in events if isinstance(e, StreamReset)}
        for event in events:
            if (
                isinstance(event, RequestReceived)
                and not conn.closed
                and event.stream_id not in reset
            ):
                conn.send_head(event.stream_id, 200, [(b"x", b"y")])
                conn.send_body(event.stream_id, b"z" * 200, end=True)
        conn.data_to_send()


if __name__ == "__main__":
    run(test_one_input)
