"""HTTP/2 (H2Connection), property-based: whatever frames follow a valid
client preface, ``receive_data`` returns events and never raises.

Frames are generated as a client might get them wrong: every frame type
(and unknown ones), random flags, stream ids (0, odd, even, huge), payloads
that are well-formed (HPACK-encoded requests, SETTINGS entries, window
increments) or not, and length fields that sometimes lie.  Each request the
connection reports is answered at once, so the send side runs too.
"""

from __future__ import annotations

import itertools
import struct

import hpack
from hypothesis import given
from hypothesis import strategies as st

from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http2.connection import (
    ConnectionEnded,
    H2Connection,
    StreamRejected,
    StreamReset,
)
from bascule.proto.limits import Http2Limits
from tests.fuzz.strategies import FUZZ

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)

stream_ids = st.sampled_from([0, 1, 1, 3, 3, 5, 2, 4, 0x7FFFFFFF]) | st.integers(0, 0xFFFFFFFF)

header_fields = st.lists(
    st.tuples(
        st.sampled_from(
            [
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
                b"x-a",
                b"X-Upper",
                b"cookie",
            ]
        ),
        st.sampled_from(
            [
                b"GET",
                b"POST",
                b"CONNECT",
                b"/",
                b"*",
                b"https",
                b"x",
                b"0",
                b"10",
                b"trailers",
                b"websocket",
                b"",
                b"a\r\nb",
                b"\x00",
            ]
        ),
    ),
    max_size=8,
)
GOOD_REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"https"),
    (b":authority", b"x"),
]


def frame(length: int, ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack("!I", length)[1:]
        + bytes([ftype, flags])
        + struct.pack("!I", stream_id)
        + payload
    )


@st.composite
def payloads(draw: st.DrawFn, ftype: int, encoder: hpack.Encoder) -> bytes:
    if ftype in (HEADERS, CONT, PUSH):
        fields = draw(
            st.just(GOOD_REQUEST)
            | header_fields
            | st.just([*GOOD_REQUEST, (b"content-length", b"3")])
        )
        return encoder.encode(fields) if draw(st.integers(0, 4)) else draw(st.binary(max_size=40))
    if ftype == SETTINGS:
        entries = draw(
            st.lists(st.tuples(st.integers(0, 9), st.integers(0, 0xFFFFFFFF)), max_size=4)
        )
        return b"".join(struct.pack("!HI", k, v) for k, v in entries)
    if ftype in (WINDOW, RST):
        return struct.pack(
            "!I", draw(st.integers(0, 0xFFFFFFFF) | st.sampled_from([0, 1, 65535, 0x7FFFFFFF]))
        )
    if ftype == PING:
        return draw(st.binary(min_size=8, max_size=8))
    if ftype == GOAWAY:
        return struct.pack("!II", draw(stream_ids), draw(st.integers(0, 14))) + draw(
            st.binary(max_size=8)
        )
    if ftype == PRIORITY:
        return struct.pack("!IB", draw(stream_ids), draw(st.integers(0, 255)))
    return draw(st.binary(max_size=64))


@st.composite
def frame_sequences(draw: st.DrawFn) -> bytes:
    encoder = hpack.Encoder()  # one per connection: HPACK state is per connection
    out = []
    for _ in range(draw(st.integers(1, 12))):
        ftype = draw(st.sampled_from(range(10)) | st.integers(10, 255))
        payload = draw(payloads(ftype, encoder))
        length = len(payload) if draw(st.integers(0, 9)) else draw(st.integers(0, 0xFFFFFF))
        flags = draw(st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x25]) | st.integers(0, 255))
        out.append(frame(length, ftype, flags, draw(stream_ids), payload))
    return b"".join(out)


def serve(pieces: list[bytes], limits: Http2Limits | None = None) -> list[object]:
    conn = H2Connection(
        limits or Http2Limits(max_concurrent_streams=4, max_resets=3, control_frame_budget=20)
    )
    conn.initiate()
    conn.data_to_send()
    seen: list[object] = []
    for piece in pieces:
        events = conn.receive_data(piece)
        assert all(
            isinstance(
                e,
                RequestReceived
                | BodyChunk
                | BodyEnd
                | StreamReset
                | ConnectionEnded
                | StreamRejected,
            )
            for e in events
        ), events
        reset = {e.stream_id for e in events if isinstance(e, StreamReset)}
        for event in events:
            if (
                isinstance(event, RequestReceived)
                and not conn.closed
                and event.stream_id not in reset
            ):
                conn.send_head(event.stream_id, 200, [(b"content-type", b"text/plain")])
                conn.send_body(event.stream_id, b"hello", end=True)
        conn.data_to_send()
        seen += events
    return seen


@FUZZ
@given(frame_sequences(), st.lists(st.integers(0, 4000), max_size=4))
def test_random_frames_after_preface_never_raise(frames: bytes, cuts: list[int]) -> None:
    data = PREFACE + EMPTY_SETTINGS + frames
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    events = serve([data[a:b] for a, b in itertools.pairwise(bounds)])
    failed = [i for i, e in enumerate(events) if isinstance(e, ConnectionEnded) and e.error_code]
    if failed:
        # After a connection error, nothing but the end is reported.
        assert all(isinstance(e, ConnectionEnded) for e in events[failed[0] :])


@FUZZ
@given(st.binary(max_size=500))
def test_random_bytes_after_preface_never_raise(data: bytes) -> None:
    serve([PREFACE + EMPTY_SETTINGS + data])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_instead_of_preface_end_the_connection(data: bytes) -> None:
    events = serve([data])
    if not PREFACE.startswith(data[:24]):
        assert len(events) == 1
        assert isinstance(events[0], ConnectionEnded)
        assert events[0].error_code == 1  # PROTOCOL_ERROR
