"""H2Connection against RFC 9113 and RFC 7541, rule by rule, in the manner of h2spec (sans I/O).

Each case feeds raw frames to a server that has finished its handshake and
checks exactly what comes back: a GOAWAY with the RFC's code (a connection
error, after which nothing more is read), a RST_STREAM with the code (a stream
error; another request is then served to prove the connection goes on), or
nothing at all (the frame is ignored).  Where the RFC allows a stream error or
a connection error, the case lists both and accepts either.  Case ids are
h2spec's section numbers.  Header blocks are built from literals that do not
touch the HPACK dynamic table, so any case can follow any other.

Then: byte streams cut anywhere, 5,000 streams through one pair of HPACK
tables, and the stream table not growing.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http2.connection import (
    CANCEL,
    COMPRESSION_ERROR,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PREFACE,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    ConnectionEnded,
    H2Connection,
    H2Event,
    StreamReset,
)
from bascule.proto.limits import Http2Limits
from tests.proto.test_http2_connection import (
    _CODES,
    Header,
    Pair,
    frames,
    raw_frame,
    request_headers,
)

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0x0, 0x1, 0x2, 0x3, 0x4, 0x5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x6, 0x7, 0x8, 0x9
ES = ACK = 0x1
EH, PADDED, PRIO = 0x4, 0x8, 0x20
# SETTINGS identifiers (RFC 9113 §6.5.2).
TABLE_SIZE, ENABLE_PUSH, MAX_STREAMS, INITIAL_WINDOW, MAX_FRAME, MAX_LIST = 1, 2, 3, 4, 5, 6
MAX_WINDOW = 2**31 - 1


def fr(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return raw_frame(len(payload), ftype, flags, stream_id, payload)


def setting(key: int, value: int) -> bytes:
    return struct.pack(">HI", key, value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def literal(name: bytes, value: bytes, kind: int = 0x00) -> bytes:
    """An HPACK literal with a new name (RFC 7541 §6.2); 0x00: without indexing."""
    assert len(name) < 127
    assert len(value) < 127
    return bytes([kind, len(name)]) + name + bytes([len(value)]) + value


def block(fields: list[Header] | None = None) -> bytes:
    return b"".join(literal(n, v) for n, v in (request_headers() if fields is None else fields))


def req(stream_id: int, flags: int = ES | EH, fields: list[Header] | None = None) -> bytes:
    return fr(HEADERS, flags, stream_id, block(fields))


def kinds(items: list[Frame] | list[H2Event]) -> list[str]:
    return [type(item).__name__ for item in items]


class Conn:
    """A server past its handshake, fed raw frames; its HEADERS are decoded as a client would."""

    def __init__(self, limits: Http2Limits | None = None, settings: bytes = b"") -> None:
        self.server = H2Connection(limits)
        self.server.initiate()
        self.decoder = hpack.Decoder()
        self.responses: list[list[Header]] = []
        #: serve() opens streams from 101 up, above every stream id the cases use.
        self.next_id = 101
        #: An HPACK representation and the field it must decode to, added to the next serve().
        self.carry: tuple[bytes, Header] | None = None
        assert self.send(PREFACE, fr(SETTINGS, 0, 0, settings), fr(SETTINGS, ACK, 0)) == []
        assert kinds(self.out())[-1] == "SettingsFrame"  # our SETTINGS (+ WINDOW_UPDATE), the ACK

    def send(self, *data: bytes) -> list[H2Event]:
        return self.server.receive_data(b"".join(data))

    def out(self) -> list[Frame]:
        sent = frames(self.server.data_to_send())
        for frame in sent:
            if isinstance(frame, HeadersFrame):
                decoded = self.decoder.decode(bytes(frame.data), raw=True)
                self.responses.append([(bytes(n), bytes(v)) for n, v in decoded])
        return sent

    def open(self, stream_id: int = 1, end: bool = False) -> None:
        events = self.send(req(stream_id, EH | (ES if end else 0)))
        assert kinds(events) == ["RequestReceived"] + (["BodyEnd"] if end else [])

    def answer(self, stream_id: int = 1) -> None:
        """The app answers with an empty 200 (the stream closes if the request ended)."""
        self.server.send_head(stream_id, 200, [], end=True)
        assert kinds(self.out()) == ["HeadersFrame"]

    def serve(self) -> None:
        """One more request, answered (the body if the client's window allows): the connection goes on."""
        stream_id = self.next_id
        self.next_id += 2
        extra = b"" if self.carry is None else self.carry[0]
        events = self.send(fr(HEADERS, ES | EH, stream_id, block() + extra))
        assert kinds(events) == ["RequestReceived", "BodyEnd"], events
        request = events[0]
        assert isinstance(request, RequestReceived)
        if self.carry is not None:
            assert self.carry[1] in request.headers
        self.server.send_head(stream_id, 200, [(b"x-served", b"%d" % stream_id)])
        self.server.send_body(stream_id, b"ok", end=True)
        sent = self.out()
        queued = self.server.pending(stream_id) > 0  # SETTINGS_INITIAL_WINDOW_SIZE of 0
        assert kinds(sent) == ["HeadersFrame", "DataFrame"][: 2 - queued]
        assert self.responses[-1] == [(b":status", b"200"), (b"x-served", b"%d" % stream_id)]
        assert (stream_id in self.server.streams) == queued


@dataclass(frozen=True)
class Expect:
    goaway: tuple[int, ...] = ()  # connection error codes accepted
    reset: tuple[int, ...] = ()  # stream error codes accepted, on stream ``on``
    on: int = 1
    events: tuple[str, ...] = ()  # otherwise: exactly these events, and these frames sent
    out: tuple[str, ...] = ()


def G(*codes: int) -> Expect:
    """A connection error (GOAWAY) with one of ``codes``."""
    return Expect(goaway=codes)


def R(*codes: int, on: int = 1, events: tuple[str, ...] = ()) -> Expect:
    """A stream error (RST_STREAM) with one of ``codes``, and the connection goes on."""
    return Expect(reset=codes, on=on, events=events)


def GR(*codes: int, events: tuple[str, ...] = ()) -> Expect:
    """The RFC allows either a stream error or a connection error with one of ``codes``."""
    return Expect(goaway=codes, reset=codes, events=events)


def OK(*events: str, out: tuple[str, ...] = ()) -> Expect:
    """Accepted or ignored: exactly these events and frames, and the connection goes on."""
    return Expect(events=events, out=out)


#: The frames a case sends (after any set-up), or how to build them from the connection.
Build = bytes | Callable[["Conn"], bytes]


def run(conn: Conn, build: Build) -> bytes:
    return build if isinstance(build, bytes) else build(conn)


def case(
    rule: str,
    build: Build,
    expect: Expect = Expect(),
    limits: Http2Limits | None = None,
) -> object:
    return pytest.param(build, expect, limits, id=rule)


def verdict(conn: Conn, events: list[H2Event], expect: Expect) -> None:
    sent = conn.out()
    gone = [f for f in sent if isinstance(f, GoAwayFrame)]
    if gone:
        code = gone[0].error_code
        assert expect.goaway, f"GOAWAY {code} where {expect} was expected"
        assert len(gone) == 1
        assert sent[-1] is gone[0]
        assert code in expect.goaway, f"GOAWAY {code}, not one of {expect.goaway}"
        assert conn.server.closed
        assert [e.error_code for e in events if isinstance(e, ConnectionEnded)] == [code]
        # nothing more is read or answered
        assert conn.send(fr(PING, 0, 0, bytes(8)), req(conn.next_id)) == []
        assert conn.server.data_to_send() == b""
        return
    assert not conn.server.closed
    if expect.goaway and not expect.reset:
        raise AssertionError(f"no connection error: sent {kinds(sent)}, events {events}")
    resets = [(f.stream_id, f.error_code) for f in sent if isinstance(f, RstStreamFrame)]
    if expect.reset:
        assert len(resets) == 1, f"sent {kinds(sent)}, events {events}"
        assert resets[0][0] == expect.on
        assert resets[0][1] in expect.reset, resets
        for event in events:
            if isinstance(event, StreamReset):
                assert (event.stream_id, event.error_code) == resets[0]
        events = [e for e in events if not isinstance(e, StreamReset)]
        sent = [f for f in sent if not isinstance(f, RstStreamFrame)]
    assert kinds(events) == list(expect.events)
    assert kinds(sent) == list(expect.out)
    conn.serve()


# --- the cases ------------------------------------------------------------------------------------


def opened(then: Build, end: bool = False) -> Build:
    """Open stream 1 first (request head, body to come unless ``end``)."""

    def build(conn: Conn) -> bytes:
        conn.open(1, end=end)
        return run(conn, then)

    return build


def half_closed(then: Build) -> Build:
    return opened(then, end=True)


def closed(then: Build) -> Build:
    """Stream 1 closed both ways (END_STREAM received and sent) first."""

    def build(conn: Conn) -> bytes:
        conn.open(1, end=True)
        conn.answer(1)
        assert 1 not in conn.server.streams
        return run(conn, then)

    return build


def client_reset(then: Build) -> Build:
    def build(conn: Conn) -> bytes:
        conn.open(1)
        assert kinds(conn.send(fr(RST_STREAM, 0, 1, u32(CANCEL)))) == ["StreamReset"]
        return run(conn, then)

    return build


def server_reset(then: Build) -> Build:
    def build(conn: Conn) -> bytes:
        conn.open(1)
        conn.server.reset(1, CANCEL)
        assert kinds(conn.out()) == ["RstStreamFrame"]
        return run(conn, then)

    return build


def in_block(then: Build) -> Build:
    """A HEADERS frame on stream 1 without END_HEADERS first: a header block in progress."""

    def build(conn: Conn) -> bytes:
        whole = block()
        assert conn.send(fr(HEADERS, ES, 1, whole[:10])) == []
        return run(conn, then) + fr(CONTINUATION, EH, 1, whole[10:])

    return build


def indexed_carry(conn: Conn) -> bytes:
    """A late HEADERS on a stream we reset: ignored, but its HPACK entry must be kept."""
    conn.carry = (b"\xbe", (b"x-kept", b"yes"))  # index 62: the newest dynamic entry
    return fr(HEADERS, ES | EH, 1, literal(b"x-kept", b"yes", 0x40))


def fields(*extra: Header, drop: bytes = b"", first: tuple[Header, ...] = ()) -> Build:
    """A request on stream 1: the usual fields but ``drop``, then ``extra`` (``first`` before)."""
    head = [f for f in request_headers() if f[0] != drop]
    return req(1, fields=[*first, *head, *extra])


def post(length: bytes, then: bytes = b"", flags: int = EH) -> Build:
    head = [*request_headers("POST"), (b"content-length", length)]
    return fr(HEADERS, flags, 1, block(head)) + then


def settings_frame(key: int, value: int) -> Build:
    def build(conn: Conn) -> bytes:
        if key == TABLE_SIZE:  # our encoder must shrink its table to the client's (RFC 7541 §4.2)
            conn.decoder.max_allowed_table_size = min(value, 4096)
        return fr(SETTINGS, 0, 0, setting(key, value))

    return build


def wu(stream_id: int, increment: int) -> bytes:
    return fr(WINDOW_UPDATE, 0, stream_id, u32(increment))


DATA4 = fr(DATA, ES, 1, b"test")
CONT = fr(CONTINUATION, EH, 1, block([(b"x-a", b"b")]))
PRIO_OK = fr(PRIORITY, 0, 1, u32(0) + b"\x10")
RST = fr(RST_STREAM, 0, 1, u32(CANCEL))
TRAILER = block([(b"x-checksum", b"abc")])
PE, FCE, SC, FSE = PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR
REQ = ("RequestReceived", "BodyEnd")
ACKED = OK(out=("SettingsFrame",))
PONG = OK(out=("PingFrame",))
HEAD = ("RequestReceived",)

# fmt: off
FRAME_CASES = [
    # 4.1 frame format: unknown types, unknown flags and the reserved bit are ignored
    case("4.1/unknown-type", fr(0xFA, 0, 0, bytes(8))),
    case("4.1/undefined-flags", fr(PING, 0x16, 0, bytes(8)), PONG),
    case("4.1/reserved-bit", fr(PING, 0, 1 << 31, bytes(8)), PONG),
    # 4.2 frame size
    case("4.2/data-of-max-size", opened(fr(DATA, ES, 1, bytes(16384))), OK("BodyChunk", "BodyEnd")),
    case("4.2/data-over-max-size", opened(fr(DATA, ES, 1, bytes(16385))), GR(FSE)),
    case("4.2/headers-over-max-size", fr(HEADERS, ES | EH, 1, bytes(16385)), G(FSE)),
    # 4.3 header compression: a block is one unit (CONTINUATION only, same stream)
    case("4.3/invalid-block", fr(HEADERS, ES | EH, 1, b"\x40\x85"), G(COMPRESSION_ERROR)),
    case("4.3/priority-inside-block", in_block(PRIO_OK), G(PE)),
    case("4.3/headers-of-another-stream-inside-block", in_block(req(3)), G(PE)),
    # 5.1 stream states: idle
    case("5.1/idle-data", DATA4, G(PE)),
    case("5.1/idle-rst-stream", RST, G(PE)),
    case("5.1/idle-window-update", wu(1, 100), G(PE)),
    case("5.1/idle-continuation", CONT, G(PE)),
    case("5.1/idle-priority", PRIO_OK),
    # half-closed (remote): STREAM_CLOSED, but WINDOW_UPDATE, PRIORITY, RST_STREAM are fine
    case("5.1/half-closed-data", half_closed(DATA4), R(SC)),
    case("5.1/half-closed-headers", half_closed(req(1)), R(SC)),
    case("5.1/half-closed-continuation", half_closed(CONT), Expect((PE, SC), (SC,))),
    case("5.1/half-closed-window-update", half_closed(wu(1, 1))),
    case("5.1/half-closed-priority", half_closed(PRIO_OK)),
    case("5.1/half-closed-rst-stream", half_closed(RST), OK("StreamReset")),
    # closed by the client's RST_STREAM: anything but PRIORITY is a stream error STREAM_CLOSED
    case("5.1/data-after-client-reset", client_reset(DATA4), GR(SC)),
    case("5.1/headers-after-client-reset", client_reset(req(1)), GR(SC)),
    case("5.1/continuation-after-client-reset", client_reset(CONT), Expect((PE, SC), (SC,))),
    case("5.1/priority-after-client-reset", client_reset(PRIO_OK)),
    # closed by END_STREAM both ways (§5.1: connection error STREAM_CLOSED; §6.1: DATA a stream error)
    case("5.1/closed-data", closed(DATA4), GR(SC)),
    case("5.1/closed-headers", closed(req(1)), G(SC)),
    case("5.1/closed-continuation", closed(CONT), G(SC, PE)),
    case("5.1/closed-window-update", closed(wu(1, 1))),
    case("5.1/closed-rst-stream", closed(RST)),
    case("5.1/closed-priority", closed(PRIO_OK)),
    # closed by our RST_STREAM: frames are ignored (and header blocks still decoded)
    case("5.1/data-after-server-reset", server_reset(DATA4)),
    case("5.1/headers-after-server-reset", server_reset(indexed_carry)),
    case("5.1/window-update-after-server-reset", server_reset(wu(1, 1))),
    # 5.1.1 stream identifiers
    case("5.1.1/even-stream", fr(HEADERS, ES | EH, 2, block()), G(PE)),
    case("5.1.1/smaller-than-previous", req(5) + req(3), G(PE)),
    case("5.1.1/half-closed-again", req(5) + req(5), R(SC, on=5, events=REQ)),
    # 5.3.1 a stream cannot depend on itself (stream error PROTOCOL_ERROR)
    case("5.3.1/headers", fr(HEADERS, ES | EH | PRIO, 1, u32(1) + b"\x10" + block()), GR(PE)),
    case("5.3.1/priority", fr(PRIORITY, 0, 1, u32(1) + b"\x10"), GR(PE)),
    # 5.5 extensions: unknown frames (but not inside a header block) and settings are ignored
    case("5.5/unknown-frame-on-a-stream", fr(0xFA, 0xFF, 1, b"ext")),
    case("5.5/unknown-frame-inside-block", in_block(fr(0xFA, 0, 0, b"ext")), G(PE)),
    case("5.5/unknown-setting", fr(SETTINGS, 0, 0, setting(0xFF, 7)), ACKED),
    case("5.5/unknown-data-flags", opened(fr(DATA, 0xF6, 1, b"abc")), OK("BodyChunk")),
    # 6.1 DATA
    case("6.1/stream-0", fr(DATA, ES, 0, b"test"), G(PE)),
    case("6.1/padding-too-long", opened(fr(DATA, ES | PADDED, 1, b"\x05test")), G(PE)),
    case("6.1/padded-without-pad-length", opened(fr(DATA, PADDED, 1)), Expect((FSE, PE), (FSE,))),
    case("6.1/padding-is-not-body", opened(fr(DATA, ES | PADDED, 1, b"\x04test" + bytes(4))), OK("BodyChunk", "BodyEnd")),
    # 6.2 HEADERS
    case("6.2/stream-0", fr(HEADERS, ES | EH, 0, block()), G(PE)),
    case("6.2/padding-too-long", fr(HEADERS, ES | EH | PADDED, 1, b"\xff" + block()), G(PE)),
    case("6.2/padding-too-long-after-priority", fr(HEADERS, ES | EH | PADDED | PRIO, 1, b"\x03" + u32(0) + b"\x10"), G(PE)),
    case("6.2/priority-cut-short", fr(HEADERS, ES | EH | PRIO, 1, b"\x00\x00"), G(FSE)),
    case("6.2/padded-and-prioritised", fr(HEADERS, ES | EH | PADDED | PRIO, 1, b"\x02" + u32(0) + b"\x10" + block() + b"\0\0"), OK(*REQ)),
    # 6.3 PRIORITY, 6.4 RST_STREAM
    case("6.3/stream-0", fr(PRIORITY, 0, 0, u32(1) + b"\x10"), G(PE)),
    case("6.3/length-4", opened(fr(PRIORITY, 0, 1, u32(0))), GR(FSE)),
    case("6.4/stream-0", fr(RST_STREAM, 0, 0, u32(CANCEL)), G(PE)),
    case("6.4/length-3", opened(fr(RST_STREAM, 0, 1, b"\x00\x00\x08")), G(FSE)),
    case("6.4/length-5", opened(fr(RST_STREAM, 0, 1, u32(CANCEL) + b"\x00")), G(FSE)),
    # 6.5 SETTINGS
    case("6.5/ack-with-payload", fr(SETTINGS, ACK, 0, setting(MAX_STREAMS, 1)), G(FSE)),
    case("6.5/on-a-stream", fr(SETTINGS, 0, 1, setting(MAX_STREAMS, 1)), G(PE)),
    case("6.5/length-not-6n", fr(SETTINGS, 0, 0, setting(MAX_STREAMS, 1)[:5]), G(FSE)),
    case("6.5/unsolicited-ack", fr(SETTINGS, ACK, 0)),
    # 6.5.2 each value's range (an ACK if accepted)
    case("6.5.2/enable-push-0", settings_frame(ENABLE_PUSH, 0), ACKED),
    case("6.5.2/enable-push-1", settings_frame(ENABLE_PUSH, 1), ACKED),
    case("6.5.2/enable-push-2", settings_frame(ENABLE_PUSH, 2), G(PE)),
    case("6.5.2/initial-window-0", settings_frame(INITIAL_WINDOW, 0), ACKED),
    case("6.5.2/initial-window-max", settings_frame(INITIAL_WINDOW, MAX_WINDOW), ACKED),
    case("6.5.2/initial-window-over-max", settings_frame(INITIAL_WINDOW, 2**31), G(FCE)),
    case("6.5.2/max-frame-size-16383", settings_frame(MAX_FRAME, 16383), G(PE)),
    case("6.5.2/max-frame-size-16384", settings_frame(MAX_FRAME, 16384), ACKED),
    case("6.5.2/max-frame-size-max", settings_frame(MAX_FRAME, 2**24 - 1), ACKED),
    case("6.5.2/max-frame-size-over-max", settings_frame(MAX_FRAME, 2**24), G(PE)),
    case("6.5.2/header-table-size-0", settings_frame(TABLE_SIZE, 0), ACKED),
    case("6.5.2/header-table-size-100", settings_frame(TABLE_SIZE, 100), ACKED),
    case("6.5.2/header-table-size-max", settings_frame(TABLE_SIZE, 2**32 - 1), ACKED),
    case("6.5.2/max-concurrent-streams-0", settings_frame(MAX_STREAMS, 0), ACKED),
    case("6.5.2/max-header-list-size-0", settings_frame(MAX_LIST, 0), ACKED),
    # 6.7 PING, 6.8 GOAWAY, 8.4 PUSH_PROMISE from a client
    case("6.7/ack-is-not-answered", fr(PING, ACK, 0, bytes(8))),
    case("6.7/on-a-stream", fr(PING, 0, 1, bytes(8)), G(PE)),
    case("6.7/length-7", fr(PING, 0, 0, bytes(7)), G(FSE)),
    case("6.7/length-9", fr(PING, 0, 0, bytes(9)), G(FSE)),
    case("6.8/on-a-stream", fr(GOAWAY, 0, 1, u32(0) + u32(0)), G(PE)),
    case("6.8/under-8-bytes", fr(GOAWAY, 0, 0, u32(0)), G(FSE)),
    case("8.4/push-promise", opened(fr(PUSH_PROMISE, EH, 1, u32(2) + block())), G(PE)),
    # 6.9 WINDOW_UPDATE and flow control
    case("6.9/zero-on-connection", wu(0, 0), G(PE)),
    case("6.9/zero-on-stream", opened(wu(1, 0)), R(PE)),
    case("6.9/length-3", fr(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), G(FSE)),
    case("6.9/length-5", opened(fr(WINDOW_UPDATE, 0, 1, u32(1) + b"\x00")), G(FSE)),
    case("6.9/reserved-bit-ignored", wu(0, 0x80000001)),
    case("6.9.1/connection-window-overflow", wu(0, MAX_WINDOW), G(FCE)),
    case("6.9.1/connection-window-to-max", wu(0, MAX_WINDOW - 65535)),
    case("6.9.1/stream-window-overflow", opened(wu(1, MAX_WINDOW)), R(FCE)),
    case("6.9.1/stream-window-overflow-in-two", opened(wu(1, MAX_WINDOW - 65535) + wu(1, 1)), R(FCE)),
    case("6.9.1/data-over-stream-window", opened(fr(DATA, 0, 1, bytes(17))), GR(FCE), limits=Http2Limits(initial_window_size=16)),
    case("6.9.1/data-over-connection-window", opened(fr(DATA, 0, 1, bytes(16384)) * 4), G(FCE), limits=Http2Limits(max_concurrent_streams=1)),
    case("6.9.2/initial-window-overflows-open-stream", opened(wu(1, MAX_WINDOW - 65535) + fr(SETTINGS, 0, 0, setting(INITIAL_WINDOW, 65536))), G(FCE)),
    # 6.10 CONTINUATION
    case("6.10/three-continuations", (fr(HEADERS, ES, 1, block()[:5]) + fr(CONTINUATION, 0, 1, block()[5:20]) + fr(CONTINUATION, EH, 1, block()[20:])), OK(*REQ)),
    case("6.10/data-inside-block", in_block(DATA4), G(PE)),
    case("6.10/ping-inside-block", in_block(fr(PING, 0, 0, bytes(8))), G(PE)),
    case("6.10/continuation-on-stream-0", in_block(fr(CONTINUATION, 0, 0)), G(PE)),
    case("6.10/continuation-of-another-stream", in_block(fr(CONTINUATION, 0, 3)), G(PE)),
    case("6.10/after-end-headers", req(1) + CONT, G(PE)),
    case("6.10/after-ended-continuation", fr(HEADERS, ES, 1, block()[:5]) + fr(CONTINUATION, EH, 1, block()[5:]) + CONT, G(PE)),
    case("6.10/after-data", opened(fr(DATA, 0, 1, b"x") + CONT), G(PE)),
    # 8.1 message exchange: trailers end the stream; a second HEADERS must carry END_STREAM
    case("8.1/trailers", opened(fr(DATA, 0, 1, b"x") + fr(HEADERS, ES | EH, 1, TRAILER)), OK("BodyChunk", "BodyEnd")),
    case("8.1/trailers-in-continuation", opened(fr(HEADERS, ES, 1, TRAILER[:4]) + fr(CONTINUATION, EH, 1, TRAILER[4:])), OK("BodyEnd")),
    case("8.1/second-headers-without-end-stream", opened(fr(HEADERS, EH, 1, TRAILER)), R(PE)),
    case("8.1/pseudo-header-in-trailers", opened(fr(HEADERS, ES | EH, 1, block([(b":path", b"/")]))), GR(PE)),
    case("8.1.1/content-length-over-data", post(b"1", DATA4), GR(PE, events=HEAD)),
    case("8.1.1/content-length-under-data", post(b"9", DATA4), GR(PE, events=HEAD)),
    case("8.1.1/content-length-without-body", post(b"9", flags=ES | EH), GR(PE)),
    # 8.2 / 8.3 fields, end to end (the rules themselves: test_http2_fields.py)
    case("8.2/uppercase-name", fields((b"X-Upper", b"1")), GR(PE)),
    case("8.2.2/connection-specific", fields((b"connection", b"keep-alive")), GR(PE)),
    case("8.2.2/te-not-trailers", fields((b"te", b"gzip")), GR(PE)),
    case("8.2.2/te-trailers", fields((b"te", b"trailers")), OK(*REQ)),
    case("8.3/unknown-pseudo-header", fields(first=((b":foo", b"x"),)), GR(PE)),
    case("8.3/status-in-request", fields((b":status", b"200")), GR(PE)),
    case("8.3/pseudo-after-regular", fields((b"accept", b"*/*"), (b":authority", b"a"), drop=b":authority"), GR(PE)),
    case("8.3.1/missing-path", fields(drop=b":path"), GR(PE)),
    case("8.3.1/empty-path", fields((b":path", b""), drop=b":path"), GR(PE)),
    case("8.3.1/duplicate-method", fields(first=((b":method", b"GET"),)), GR(PE)),
]
# fmt: on


@pytest.mark.parametrize(("build", "expect", "limits"), FRAME_CASES)
def test_rfc9113(build: Build, expect: Expect, limits: Http2Limits | None) -> None:
    conn = Conn(limits)
    data = run(conn, build)
    verdict(conn, conn.send(data), expect)


# --- RFC 7541: any decoding error is a connection error COMPRESSION_ERROR (RFC 9113 §4.3) ----------

HPACK_ERRORS = [
    pytest.param(b"\xbe", id="2.3.3/index-beyond-both-tables"),
    pytest.param(b"\x80", id="6.1/index-0"),
    pytest.param(b"\x0f\x50\x01a", id="6.2/literal-name-index-beyond-both-tables"),
    pytest.param(b"\x3f\xe2\x1f", id="4.2/size-update-over-settings-limit"),
    pytest.param(b"\x20", id="4.2/size-update-after-a-field"),
    pytest.param(b"\x00\x01a\x84\xff\xff\xff\xff", id="5.2/huffman-eos"),
    pytest.param(b"\x00\x01a\x82\x1f\xff", id="5.2/huffman-padding-over-7-bits"),
    pytest.param(b"\x00\x01a\x81\x18", id="5.2/huffman-padding-not-eos-prefix"),
    pytest.param(b"\xbf" + b"\xff" * 10 + b"\x01", id="5.1/integer-overflow"),
    pytest.param(b"\x00\x05ab", id="5.2/string-past-the-block"),
    pytest.param(b"\x00\x01", id="5.2/block-ends-inside-a-field"),
]


@pytest.mark.parametrize("bad", HPACK_ERRORS)
def test_rfc7541_decoding_errors(bad: bytes) -> None:
    conn = Conn()
    events = conn.send(fr(HEADERS, ES | EH, 1, block() + bad))
    verdict(conn, events, Expect(goaway=(COMPRESSION_ERROR,)))


def test_rfc7541_size_updates_at_the_start_are_accepted() -> None:
    conn = Conn()
    events = conn.send(fr(HEADERS, ES | EH, 1, b"\x20\x3f\xe1\x1f" + block()))  # 0, then 4096
    verdict(conn, events, Expect(events=("RequestReceived", "BodyEnd")))


# --- 3.5 preface, 5.1.2 concurrency, 5.4.1 connection errors, 6.5.2 values, 6.7 PING ------------


# fmt: off
PREFACES = [
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + fr(SETTINGS, 0, 0), id="bad-magic"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http1"),
    pytest.param(PREFACE + fr(PING, 0, 0, bytes(8)), id="no-settings-first"),
]
# fmt: on


@pytest.mark.parametrize("data", PREFACES)
def test_3_5_invalid_preface_is_a_protocol_error(data: bytes) -> None:
    server = H2Connection()
    server.initiate()
    server.data_to_send()
    events = server.receive_data(data)
    assert kinds(events) == ["ConnectionEnded"]
    sent = frames(server.data_to_send())
    assert [(f.error_code, f.last_stream_id) for f in sent if isinstance(f, GoAwayFrame)] == [
        (PROTOCOL_ERROR, 0)
    ]
    assert kinds(sent) == ["GoAwayFrame"]


def test_5_1_2_streams_over_max_concurrent_are_refused_not_the_connection() -> None:
    conn = Conn(Http2Limits(max_concurrent_streams=2))
    conn.open(1)
    conn.open(3)
    events = conn.send(req(5))
    sent = conn.out()
    assert events == []
    assert kinds(sent) == ["RstStreamFrame"]
    assert [(f.stream_id, f.error_code) for f in sent if isinstance(f, RstStreamFrame)] == [
        (5, REFUSED_STREAM)
    ]
    # one finishes: a slot is free again
    assert kinds(conn.send(fr(DATA, ES, 1, b""))) == ["BodyEnd"]
    conn.answer(1)
    conn.serve()


def test_5_4_1_goaway_names_the_last_stream_processed_and_nothing_more_is_read() -> None:
    conn = Conn()
    conn.open(1, end=True)
    conn.open(3)
    events = conn.send(fr(PING, 0, 0, bytes(7)), req(5))
    assert kinds(events) == ["ConnectionEnded"]
    sent = conn.out()
    assert kinds(sent) == ["GoAwayFrame"]
    assert isinstance(sent[0], GoAwayFrame)
    assert (sent[0].last_stream_id, sent[0].error_code) == (3, FRAME_SIZE_ERROR)
    assert conn.send(req(7)) == []
    assert conn.server.data_to_send() == b""


def test_6_7_ping_is_answered_with_its_payload() -> None:
    conn = Conn()
    assert conn.send(fr(PING, 0, 0, b"h2spec!!")) == []
    (pong,) = conn.out()
    assert isinstance(pong, PingFrame)
    assert set(pong.flags) == {"ACK"}
    assert pong.opaque_data == b"h2spec!!"
    assert pong.stream_id == 0


# --- 6.9 flow control of what we send -----------------------------------------------------------


def data_sizes(sent: list[Frame]) -> list[int]:
    return [len(f.data) for f in sent if isinstance(f, DataFrame)]


def respond(conn: Conn, body: bytes = b"0123456789") -> list[Frame]:
    conn.open(1, end=True)
    conn.server.send_head(1, 200, [])
    conn.server.send_body(1, body, end=True)
    return conn.out()


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(setting(INITIAL_WINDOW, 1), id="6.9.1/initial-window-1"),
        pytest.param(
            setting(INITIAL_WINDOW, 100) + setting(INITIAL_WINDOW, 1), id="6.5.3/last-wins"
        ),
    ],
)
def test_initial_window_of_1_sends_1_byte(values: bytes) -> None:
    conn = Conn(settings=values)
    assert data_sizes(respond(conn)) == [1]
    assert conn.server.pending(1) == 10  # 9 bytes and the end


def test_6_9_2_initial_window_change_applies_to_open_streams() -> None:
    conn = Conn(settings=setting(INITIAL_WINDOW, 0))
    assert data_sizes(respond(conn)) == []
    assert conn.send(fr(SETTINGS, 0, 0, setting(INITIAL_WINDOW, 3))) == []
    sent = conn.out()
    assert kinds(sent) == ["SettingsFrame", "DataFrame"]
    assert data_sizes(sent) == [3]


def test_6_9_2_initial_window_change_may_make_a_window_negative() -> None:
    conn = Conn(settings=setting(INITIAL_WINDOW, 5))
    assert data_sizes(respond(conn)) == [5]
    conn.send(fr(SETTINGS, 0, 0, setting(INITIAL_WINDOW, 3)))  # window: 3 - 5 = -2
    assert kinds(conn.out()) == ["SettingsFrame"]
    conn.send(fr(WINDOW_UPDATE, 0, 1, u32(2)))  # -2 + 2 = 0: still nothing
    assert conn.out() == []
    conn.send(fr(WINDOW_UPDATE, 0, 1, u32(1)))
    assert data_sizes(conn.out()) == [1]
    conn.send(fr(WINDOW_UPDATE, 0, 1, u32(100)))
    sent = conn.out()
    assert data_sizes(sent) == [4]
    assert "END_STREAM" in sent[-1].flags
    assert 1 not in conn.server.streams
    conn.serve()


# --- byte streams cut anywhere ------------------------------------------------------------------

Action = tuple[str, int]

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(0, 3000)),
        st.tuples(st.just("ping"), st.integers(0, 2**64 - 1)),
        st.tuples(st.just("settings"), st.integers(1, 100_000)),
        st.tuples(st.just("window"), st.integers(1, 100_000)),
    ),
    min_size=1,
    max_size=8,
)


def client_stream(actions: list[Action]) -> bytes:
    """What an ``h2`` client sends for ``actions`` (it never hears the server: all fits its windows)."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    client = h2.connection.H2Connection(config=config)
    client.initiate_connection()
    data = client.data_to_send() + fr(SETTINGS, ACK, 0)  # and it acknowledges our SETTINGS
    for kind, n in actions:
        if kind == "request":
            stream_id = client.get_next_available_stream_id()
            extra = ((b"content-length", b"%d" % n), (b"x-n", b"%d" % n))
            client.send_headers(
                stream_id, request_headers("POST", f"/u/{n}", extra), end_stream=not n
            )
            for start in range(0, n, 1000):
                client.send_data(
                    stream_id, bytes([n % 251]) * min(1000, n - start), end_stream=start + 1000 >= n
                )
            if stream_id > 1:
                client.increment_flow_control_window(n + 1, stream_id=stream_id - 2)
        elif kind == "ping":
            client.ping(n.to_bytes(8, "big"))
        elif kind == "settings":
            client.update_settings(
                {_CODES.INITIAL_WINDOW_SIZE: n, _CODES.MAX_CONCURRENT_STREAMS: n}
            )
        else:
            client.increment_flow_control_window(n)
    return data + client.data_to_send()


def describe(event: H2Event) -> tuple[object, ...]:
    if isinstance(event, RequestReceived):
        return ("request", event.stream_id, event.method, event.path, event.headers)
    if isinstance(event, BodyChunk):
        return ("chunk", event.stream_id, event.data)
    if isinstance(event, BodyEnd):
        return ("end", event.stream_id)
    return (repr(event),)


def feed(data: bytes, sizes: list[int]) -> tuple[list[tuple[object, ...]], bytes]:
    server = H2Connection()
    server.initiate()
    events: list[tuple[object, ...]] = []
    out = [server.data_to_send()]
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            break
        events += map(describe, server.receive_data(data[pos : pos + size]))
        out.append(server.data_to_send())
        pos += size
    assert not server.closed
    return events, b"".join(out)


@settings(max_examples=60, deadline=None)
@given(ACTIONS, st.lists(st.integers(1, 200), min_size=1, max_size=20))
def test_any_chunking_gives_the_same_events_and_bytes(
    actions: list[Action], sizes: list[int]
) -> None:
    data = client_stream(actions)
    whole = feed(data, [len(data)])
    assert feed(data, sizes) == whole
    requests = [a for a in actions if a[0] == "request"]
    assert [e[0] for e in whole[0]].count("request") == len(requests)


def test_byte_at_a_time_gives_the_same_events_and_bytes() -> None:
    actions = [("request", 2500), ("ping", 7), ("settings", 9), ("request", 0), ("window", 5)]
    data = client_stream(actions)
    whole = feed(data, [len(data)])
    assert feed(data, [1]) == whole
    assert [e[0] for e in whole[0]].count("chunk") == 3
    # our SETTINGS and WINDOW_UPDATE, then the ACKs of a SETTINGS, the PING, a SETTINGS
    assert kinds(frames(whole[1])) == [
        "SettingsFrame",
        "WindowUpdateFrame",
        "SettingsFrame",
        "PingFrame",
        "SettingsFrame",
    ]


# --- one HPACK context over many streams, and no growth -------------------------------------------


def test_5000_streams_keep_both_hpack_tables_in_step() -> None:
    pair = Pair()
    agents = [b"agent/%d-" % k + b"a" * (25 * k) for k in range(7)]
    kinds_ = [b"text/html", b"application/json", b"image/png", b"text/plain; charset=utf-8"]
    for i in range(5000):
        extra = (
            (b"user-agent", agents[i % 7]),
            (b"x-request-id", b"%08d-" % i + b"r" * (i % 90)),  # new each time: the table evicts
            (b"cookie", b"session=%d" % (i // 10)),
        )
        stream_id, events = pair.open("GET", f"/item/{i}?page={i % 17}", extra=extra)
        request = events[0]
        assert isinstance(request, RequestReceived)
        assert (request.path, request.query) == (b"/item/%d" % i, b"page=%d" % (i % 17))
        assert request.headers == [(b"host", b"example.com:8443"), *extra]
        response = [
            (b"content-type", kinds_[i % 4]),
            (b"etag", b'"%d-' % i + b"e" * (i % 150) + b'"'),
            (b"x-shard", b"%d" % (i % 13)),
        ]
        pair.server.send_head(stream_id, 200, response, end=True)
        (received,) = [e for e in pair.to_client() if isinstance(e, h2.events.ResponseReceived)]
        assert received.headers == [(b":status", b"200"), *response]
    assert pair.server.streams == {}
    assert pair.goaways == []


def test_streams_are_forgotten_after_exchanges_and_resets() -> None:
    limits = Http2Limits(max_resets=10_000)
    pair = Pair(limits, client_settings={_CODES.INITIAL_WINDOW_SIZE: 10})
    server = pair.server
    for _ in range(1000):  # completed exchanges, with bodies both ways
        stream_id, _ = pair.open("POST", end=False)
        pair.client.send_data(stream_id, b"hello", end_stream=True)
        assert kinds(pair.to_server()) == ["BodyChunk", "BodyEnd"]
        server.send_head(stream_id, 200, [])
        server.send_body(stream_id, b"world", end=True)
        pair.to_client()
    assert server.streams == {}
    for i in range(1000):  # client resets: mid-request, or with our body waiting for window
        stream_id, _ = pair.open("POST" if i % 2 else "GET", end=not i % 2)
        if i % 2:
            pair.client.send_data(stream_id, b"part")
        else:
            server.send_head(stream_id, 200, [])
            server.send_body(stream_id, b"x" * 100, end=True)  # 90 bytes queued
            assert server.pending(stream_id) > 0
        pair.to_client()
        pair.client.reset_stream(stream_id, CANCEL)
        assert any(isinstance(e, StreamReset) for e in pair.to_server())
    assert server.streams == {}
    assert server.queue.streams() == []
    assert pair.goaways == []
    assert not server.closed
