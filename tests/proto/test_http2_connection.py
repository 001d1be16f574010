"""H2Connection (proto/http2), sans I/O: bytes from an ``h2`` client in, events and frames out."""

from __future__ import annotations

import base64
import contextlib
import gc
import struct
import tracemalloc

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http2.connection import (
    _CLOSED_MEMORY,
    ConnectionEnded,
    H2Connection,
    H2Event,
    StreamRejected,
    StreamReset,
)
from bascule.proto.limits import Http2Limits
from tests.support.h2client import split_goaways

Header = tuple[bytes, bytes]

PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

_CODES = h2.settings.SettingCodes


def request_headers(
    method: str = "GET", path: str = "/", extra: tuple[Header, ...] = ()
) -> list[Header]:
    return [
        (b":method", method.encode()),
        (b":path", path.encode()),
        (b":scheme", b"https"),
        (b":authority", b"example.com:8443"),
        *extra,
    ]


class Pair:
    """A bascule server connection and an ``h2`` client, wired by hand (no sockets)."""

    def __init__(
        self,
        limits: Http2Limits | None = None,
        client_settings: dict[h2.settings.SettingCodes, int] | None = None,
    ) -> None:
        self.server = H2Connection(limits)
        self.server.initiate()
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(config=config)
        if client_settings:
            self.client.local_settings = h2.settings.Settings(
                client=True, initial_values=client_settings
            )
        self.client.initiate_connection()
        self.goaways: list[GoAwayFrame] = []
        # preface + SETTINGS both ways, and both ACKs
        self.setup_events = self.to_server()
        self.to_client()
        self.setup_events += self.to_server()
        self.to_client()

    def to_server(self) -> list[H2Event]:
        return self.server.receive_data(self.client.data_to_send())

    def to_client(self) -> list[h2.events.Event]:
        """Feed the client; GOAWAY frames are kept in ``goaways`` (h2 would close on them)."""
        data, found, rest = split_goaways(self.server.data_to_send())
        assert rest == b""
        self.goaways += found
        return self.client.receive_data(data)

    def open(
        self,
        method: str = "GET",
        path: str = "/",
        *,
        end: bool = True,
        extra: tuple[Header, ...] = (),
    ) -> tuple[int, list[H2Event]]:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, request_headers(method, path, extra), end_stream=end)
        return stream_id, self.to_server()


def frames(data: bytes) -> list[Frame]:
    """Parse serialized frames (the peer's view of ``data_to_send()``)."""
    out: list[Frame] = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        out.append(frame)
        view = view[9 + length :]
    return out


def raw_frame(length: int, ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame built byte by byte, for frames hyperframe refuses to build."""
    return (
        struct.pack(">I", length)[1:]
        + bytes([ftype, flags])
        + struct.pack(">I", stream_id)
        + payload
    )


def goaways(data: bytes) -> list[GoAwayFrame]:
    return [f for f in frames(data) if isinstance(f, GoAwayFrame)]


def body_of(events: list[h2.events.Event], stream_id: int) -> bytes:
    return b"".join(
        e.data or b""
        for e in events
        if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
    )


# --- the connection preface ----------------------------------------------------------------


def test_server_settings_advertise_the_limits() -> None:
    limits = Http2Limits(
        max_concurrent_streams=7,
        initial_window_size=100_000,
        max_inbound_frame_size=32768,
        max_header_list_size=20_000,
    )
    server = H2Connection(limits)
    server.initiate()
    client = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    events = client.receive_data(server.data_to_send())
    changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
    values = {int(k): v.new_value for k, v in changed.changed_settings.items()}
    assert values[_CODES.MAX_CONCURRENT_STREAMS] == 7
    assert values[_CODES.INITIAL_WINDOW_SIZE] == 100_000
    assert values[_CODES.MAX_FRAME_SIZE] == 32768
    assert values[_CODES.MAX_HEADER_LIST_SIZE] == 20_000
    # RFC 8441: WebSockets over HTTP/2 (extended CONNECT) are served.
    assert values[_CODES.ENABLE_CONNECT_PROTOCOL] == 1
    # the connection window is opened beyond 65,535 so streams do not starve each other
    window_updates = [e for e in events if isinstance(e, h2.events.WindowUpdated)]
    assert any(e.stream_id == 0 and e.delta > 0 for e in window_updates)


def test_client_settings_are_acknowledged_and_pings_answered() -> None:
    pair = Pair()
    pair.client.update_settings({_CODES.MAX_CONCURRENT_STREAMS: 50})
    pair.client.ping(b"12345678")
    assert pair.to_server() == []
    events = pair.to_client()
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in events)
    acks = [e for e in events if isinstance(e, h2.events.PingAckReceived)]
    assert [a.ping_data for a in acks] == [b"12345678"]


# --- requests ------------------------------------------------------------------------------------


def test_request_received_maps_pseudo_headers() -> None:
    pair = Pair()
    stream_id, events = pair.open(
        "GET",
        "/search/x%20y?q=1&r=2",
        extra=((b"user-agent", b"test"), (b"accept", b"*/*")),
    )
    assert stream_id == 1
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert request.stream_id == 1
    assert request.method == "GET"
    assert request.path == b"/search/x%20y"
    assert request.query == b"q=1&r=2"
    assert request.http_version == "2"
    assert request.keep_alive is True
    assert request.upgrade is False
    # :authority first, as host; pseudo-headers gone; the rest in order
    assert request.headers == [
        (b"host", b"example.com:8443"),
        (b"user-agent", b"test"),
        (b"accept", b"*/*"),
    ]
    assert not any(name.startswith(b":") for name, _ in request.headers)
    assert any(isinstance(e, BodyEnd) and e.stream_id == 1 for e in events)
    assert pair.server.last_stream_id == 1


def test_explicit_host_header_is_not_duplicated() -> None:
    pair = Pair()
    _, events = pair.open(extra=((b"host", b"example.com:8443"),))
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert [v for n, v in request.headers if n == b"host"] == [b"example.com:8443"]


def test_request_without_query() -> None:
    pair = Pair()
    _, events = pair.open("DELETE", "/items/7")
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert (request.method, request.path, request.query) == ("DELETE", b"/items/7", b"")


def test_request_body_as_chunks_then_end() -> None:
    pair = Pair()
    stream_id, events = pair.open("POST", "/upload", end=False)
    assert [type(e) for e in events] == [RequestReceived]
    pair.client.send_data(stream_id, b"hello ")
    pair.client.send_data(stream_id, b"world", end_stream=True)
    events = pair.to_server()
    chunks = [e for e in events if isinstance(e, BodyChunk)]
    assert b"".join(c.data for c in chunks) == b"hello world"
    assert all(c.stream_id == stream_id for c in chunks)
    assert isinstance(events[-1], BodyEnd)
    assert events[-1].stream_id == stream_id
    # chunks come before the end
    first_end = next(i for i, e in enumerate(events) if isinstance(e, BodyEnd))
    assert all(isinstance(e, BodyChunk) for e in events[:first_end])


def test_body_end_is_reported_once() -> None:
    """One BodyEnd per request, whether END_STREAM rode on HEADERS or on DATA."""
    pair = Pair()
    _, on_headers = pair.open("GET", "/a")
    stream_id, _ = pair.open("POST", "/b", end=False)
    pair.client.send_data(stream_id, b"x", end_stream=True)
    on_data = pair.to_server()
    assert [type(e).__name__ for e in on_headers] == ["RequestReceived", "BodyEnd"]
    assert [type(e).__name__ for e in on_data] == ["BodyChunk", "BodyEnd"]


def test_interleaved_streams_keep_their_bodies_apart() -> None:
    pair = Pair()
    a, _ = pair.open("POST", "/a", end=False)
    b, _ = pair.open("POST", "/b", end=False)
    pair.client.send_data(a, b"A1")
    pair.client.send_data(b, b"B1")
    pair.client.send_data(a, b"A2", end_stream=True)
    pair.client.send_data(b, b"B2", end_stream=True)
    events = pair.to_server()
    by_stream: dict[int, bytes] = {a: b"", b: b""}
    for event in events:
        if isinstance(event, BodyChunk):
            by_stream[event.stream_id] += event.data
    assert by_stream == {a: b"A1A2", b: b"B1B2"}
    assert {e.stream_id for e in events if isinstance(e, BodyEnd)} == {a, b}


# --- responses -----------------------------------------------------------------------------------


def test_response_head_body_end_drop_connection_fields() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.send_head(
        stream_id,
        200,
        [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"close"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Upgrade", b"h2c"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"X-Custom", b"v"),
        ],
    )
    pair.server.send_body(stream_id, b"abc")
    pair.server.send_body(stream_id, b"def", end=True)
    assert pair.server.pending(stream_id) == 0
    events = pair.to_client()
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert response.stream_id == stream_id
    assert response.headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"x-custom", b"v"),
    ]
    assert body_of(events, stream_id) == b"abcdef"
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events)


def test_head_only_response_ends_the_stream() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.send_head(stream_id, 204, [], end=True)
    events = pair.to_client()
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert response.headers == [(b":status", b"204")]
    assert response.stream_ended is not None
    assert body_of(events, stream_id) == b""


def test_large_body_is_split_to_the_max_frame_size() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.send_head(stream_id, 200, [])
    body = bytes(range(256)) * 200  # 51200 bytes, inside the 65535 window
    pair.server.send_body(stream_id, body, end=True)
    data = pair.server.data_to_send()
    data_frames = [f for f in frames(data) if isinstance(f, DataFrame)]
    assert len(data_frames) == 4
    assert all(len(f.data) <= 16384 for f in data_frames)
    assert b"".join(f.data for f in data_frames) == body
    assert "END_STREAM" in data_frames[-1].flags
    assert all("END_STREAM" not in f.flags for f in data_frames[:-1])


def test_trailers_follow_the_body() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.send_head(stream_id, 200, [])
    pair.server.send_body(stream_id, b"x" * 70_000)  # more than the client's window
    pair.server.send_trailers(stream_id, [(b"X-Checksum", b"abc")])
    events = pair.to_client()
    assert not any(isinstance(e, h2.events.TrailersReceived) for e in events)
    pair.client.increment_flow_control_window(10_000)
    pair.client.increment_flow_control_window(10_000, stream_id=stream_id)
    pair.to_server()
    events += pair.to_client()
    assert body_of(events, stream_id) == b"x" * 70_000
    trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert len(trailers) == 1
    assert trailers[0].headers == [(b"x-checksum", b"abc")]
    assert events.index(trailers[0]) > max(
        i for i, e in enumerate(events) if isinstance(e, h2.events.DataReceived)
    )
    assert pair.server.pending(stream_id) == 0


# --- outbound flow control -------------------------------------------------------------------------


def test_body_beyond_the_client_window_is_queued_until_window_update() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    body = b"".join(b"%06d" % i for i in range(20_000))  # 120000 bytes
    pair.server.send_head(stream_id, 200, [])
    pair.server.send_body(stream_id, body, end=True)
    assert pair.server.pending(stream_id) > 0
    assert pair.server.pending(stream_id) >= len(body) - 65535
    events = pair.to_client()
    assert len(body_of(events, stream_id)) == 65535  # exactly the client's window
    assert not any(isinstance(e, h2.events.StreamEnded) for e in events)
    # nothing more goes out while the window is closed
    assert pair.server.data_to_send() == b""

    pair.client.increment_flow_control_window(len(body))
    pair.client.increment_flow_control_window(len(body), stream_id=stream_id)
    assert pair.to_server() == []
    assert pair.server.pending(stream_id) == 0
    events += pair.to_client()
    assert body_of(events, stream_id) == body
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events)


def test_settings_growing_the_window_releases_queued_body() -> None:
    pair = Pair(client_settings={_CODES.INITIAL_WINDOW_SIZE: 1000})
    stream_id, _ = pair.open()
    pair.server.send_head(stream_id, 200, [])
    pair.server.send_body(stream_id, b"y" * 5000, end=True)
    assert pair.server.pending(stream_id) == 4000 + 1
    events = pair.to_client()
    assert len(body_of(events, stream_id)) == 1000
    pair.client.update_settings({_CODES.INITIAL_WINDOW_SIZE: 10_000})
    pair.to_server()
    assert pair.server.pending(stream_id) == 0
    events += pair.to_client()
    assert body_of(events, stream_id) == b"y" * 5000
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


# --- inbound flow control ----------------------------------------------------------------------------


def test_receive_window_reopens_only_after_consumed() -> None:
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    pair.client.send_data(stream_id, b"z" * 16384)
    pair.client.send_data(stream_id, b"z" * 16384)
    pair.client.send_data(stream_id, b"z" * 7232)  # 40000 bytes in all
    events = pair.to_server()
    assert sum(len(e.data) for e in events if isinstance(e, BodyChunk)) == 40_000
    # the server read the bytes but the app has not: no credit yet
    assert not any(isinstance(f, WindowUpdateFrame) for f in frames(pair.server.data_to_send()))
    assert pair.client.local_flow_control_window(stream_id) == 65535 - 40_000

    pair.server.consumed(stream_id, 40_000)
    updates = [f for f in frames(pair.server.data_to_send()) if isinstance(f, WindowUpdateFrame)]
    # The stream's window re-opens; the (large) connection window still has room.
    assert sorted((f.stream_id, f.window_increment) for f in updates) == [(stream_id, 40_000)]


def test_receive_window_reopens_through_the_client() -> None:
    """Window updates sent after consumed() let the client send the rest of a big body."""
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    body = bytes(range(256)) * 1024  # 256 KiB
    received = bytearray()
    sent = 0
    for _ in range(100):
        window = pair.client.local_flow_control_window(stream_id)
        if sent < len(body) and window:
            size = min(window, 16384, len(body) - sent)
            pair.client.send_data(
                stream_id, body[sent : sent + size], end_stream=sent + size == len(body)
            )
            sent += size
        events = pair.to_server()
        new = sum(len(e.data) for e in events if isinstance(e, BodyChunk))
        received += b"".join(e.data for e in events if isinstance(e, BodyChunk))
        assert len(received) <= sent
        if new:
            pair.server.consumed(stream_id, new)  # the app read what arrived
        pair.to_client()
        if len(received) == len(body):
            break
    assert bytes(received) == body


def test_unread_body_stalls_the_client() -> None:
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    while pair.client.local_flow_control_window(stream_id):
        size = min(pair.client.local_flow_control_window(stream_id), 16384)
        pair.client.send_data(stream_id, b"q" * size)
    events = pair.to_server()
    assert sum(len(e.data) for e in events if isinstance(e, BodyChunk)) == 65535
    pair.to_client()
    assert pair.client.local_flow_control_window(stream_id) == 0  # no credit while unread


def test_sending_past_the_window_is_a_flow_control_error() -> None:
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    data = b""
    for _ in range(5):
        frame = DataFrame(stream_id)
        frame.data = b"x" * 16384
        data += frame.serialize()
    events = pair.server.receive_data(data)
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].error_code == FLOW_CONTROL_ERROR
    assert [g.error_code for g in goaways(pair.server.data_to_send())] == [FLOW_CONTROL_ERROR]


# --- resets --------------------------------------------------------------------------------------------


def test_client_reset_is_reported_and_drops_queued_body() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    other, _ = pair.open()
    pair.server.send_head(stream_id, 200, [])
    pair.server.send_body(stream_id, b"r" * 100_000)
    assert pair.server.pending(stream_id) > 0
    pair.to_client()
    pair.client.reset_stream(stream_id, CANCEL)
    events = pair.to_server()
    assert len(events) == 1
    reset = events[0]
    assert isinstance(reset, StreamReset)
    assert (reset.stream_id, reset.error_code) == (stream_id, CANCEL)
    assert pair.server.pending(stream_id) == 0
    # the other stream is untouched
    pair.server.send_head(other, 200, [], end=True)
    assert any(
        isinstance(e, h2.events.ResponseReceived) and e.stream_id == other for e in pair.to_client()
    )


def test_server_reset_sends_rst_stream() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.reset(stream_id)
    events = pair.to_client()
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(stream_id, 0x2)]
    pair.server.reset(stream_id)  # twice: harmless
    assert pair.server.data_to_send() == b""


def test_rapid_reset_gets_enhance_your_calm() -> None:
    limits = Http2Limits(max_resets=10, reset_window=1000)
    pair = Pair(limits)
    ended: ConnectionEnded | None = None
    resets = 0
    for i in range(30):
        stream_id = pair.client.get_next_available_stream_id()
        pair.client.send_headers(stream_id, request_headers(path=f"/{i}"), end_stream=True)
        pair.client.reset_stream(stream_id, CANCEL)
        for event in pair.to_server():
            if isinstance(event, StreamReset):
                resets += 1
            elif isinstance(event, ConnectionEnded):
                ended = event
        if ended is not None:
            break
    assert ended is not None
    assert ended.error_code == ENHANCE_YOUR_CALM
    assert resets == limits.max_resets + 1
    assert pair.server.closed
    goaway = goaways(pair.server.data_to_send())
    assert len(goaway) == 1
    assert goaway[0].error_code == ENHANCE_YOUR_CALM
    assert goaway[0].last_stream_id == pair.server.last_stream_id == 2 * resets - 1
    # nothing more is processed
    pair.client.send_headers(
        pair.client.get_next_available_stream_id(), request_headers(), end_stream=True
    )
    assert pair.to_server() == []


def test_rapid_reset_in_one_read() -> None:
    pair = Pair(Http2Limits(max_resets=5))
    for _ in range(20):
        stream_id = pair.client.get_next_available_stream_id()
        pair.client.send_headers(stream_id, request_headers(), end_stream=True)
        pair.client.reset_stream(stream_id, CANCEL)
    events = pair.to_server()
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].error_code == ENHANCE_YOUR_CALM
    assert sum(isinstance(e, StreamReset) for e in events) == 6
    assert [g.error_code for g in goaways(pair.server.data_to_send())] == [ENHANCE_YOUR_CALM]


def test_occasional_resets_are_tolerated() -> None:
    """A reset now and then (a browser cancelling) stays under a sliding budget."""
    pair = Pair(Http2Limits(max_resets=5, reset_window=20))
    for i in range(200):
        stream_id, events = pair.open(path=f"/{i}")
        assert not any(isinstance(e, ConnectionEnded) for e in events)
        if i % 5 == 0:
            pair.client.reset_stream(stream_id, CANCEL)
            events = pair.to_server()
            assert [type(e) for e in events] == [StreamReset]
        else:
            pair.server.send_head(stream_id, 204, [], end=True)
            pair.to_client()
    assert not pair.server.closed


# --- floods ------------------------------------------------------------------------------------------


def _flood(pair: Pair, kind: str, count: int) -> list[H2Event]:
    events: list[H2Event] = []
    if kind == "empty-data":
        stream_id, more = pair.open("POST", "/", end=False)
        events += more
    for i in range(count):
        if kind == "ping":
            pair.client.ping(b"%08d" % i)
        elif kind == "priority":
            pair.client.prioritize(1, weight=1 + i % 200)
        elif kind == "window-update":
            pair.client.increment_flow_control_window(1)
        elif kind == "settings":
            pair.client.update_settings({_CODES.MAX_CONCURRENT_STREAMS: 100 + i})
        else:
            pair.client.send_data(stream_id, b"")
    return events + pair.to_server()


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data", "priority", "window-update"])
def test_control_frame_flood_gets_enhance_your_calm(kind: str) -> None:
    pair = Pair(Http2Limits(control_frame_budget=20))
    events = _flood(pair, kind, 50)
    ended = [e for e in events if isinstance(e, ConnectionEnded)]
    assert len(ended) == 1
    assert ended[0].error_code == ENHANCE_YOUR_CALM
    assert events[-1] is ended[0]
    assert pair.server.closed
    data = pair.server.data_to_send()
    assert [g.error_code for g in goaways(data)] == [ENHANCE_YOUR_CALM]
    if kind == "ping":  # answered up to the budget, not beyond
        acks = [f for f in frames(data) if isinstance(f, PingFrame) and "ACK" in f.flags]
        assert len(acks) <= 50
    assert pair.to_server() == []


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data", "priority", "window-update"])
def test_control_frames_within_budget_are_served(kind: str) -> None:
    pair = Pair(Http2Limits(control_frame_budget=20))
    events = _flood(pair, kind, 10)
    assert not any(isinstance(e, ConnectionEnded) for e in events)
    assert not pair.server.closed
    client_side = pair.to_client()
    if kind == "ping":
        assert len([e for e in client_side if isinstance(e, h2.events.PingAckReceived)]) == 10
    elif kind == "settings":
        assert len([e for e in client_side if isinstance(e, h2.events.SettingsAcknowledged)]) == 10


def test_window_updates_earned_by_a_long_download_are_not_a_flood() -> None:
    """A client with a small window sends WINDOW_UPDATEs all along a big response: fine."""
    pair = Pair(Http2Limits(control_frame_budget=5))
    stream_id, _ = pair.open()
    pair.server.send_head(stream_id, 200, [])
    pair.server.send_body(stream_id, b"x" * 2_000_000, end=True)
    received = 0
    ended = False
    for _ in range(2000):
        for event in pair.to_client():
            if isinstance(event, h2.events.DataReceived):
                received += len(event.data)
                # the most eager client: a stream and a connection WINDOW_UPDATE per frame
                pair.client.increment_flow_control_window(event.flow_controlled_length)
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    pair.client.increment_flow_control_window(
                        event.flow_controlled_length, stream_id
                    )
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        events = pair.to_server()
        assert not any(isinstance(e, ConnectionEnded) for e in events), events
        if ended:
            break
    assert ended
    assert received == 2_000_000
    assert not pair.server.closed


# --- protocol errors ---------------------------------------------------------------------------------


def _headers_with_bad_hpack() -> bytes:
    frame = HeadersFrame(1)
    frame.data = b"\xff\xff\xff\xff\xff\xff"  # an HPACK integer that never ends
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def _headers_on_even_stream() -> bytes:
    frame = HeadersFrame(2)
    frame.data = hpack.Encoder().encode(request_headers())
    frame.flags.add("END_HEADERS")
    return bytes(frame.serialize())


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(raw_frame(3, 0x0, 0, 0, b"abc"), PROTOCOL_ERROR, id="data-on-stream-0"),
        pytest.param(
            raw_frame(16385, 0x0, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR, id="frame-over-max-size"
        ),
        pytest.param(raw_frame(7, 0x6, 0, 0, b"\x00" * 7), FRAME_SIZE_ERROR, id="ping-of-7-bytes"),
        pytest.param(
            raw_frame(5, 0x4, 0, 0, b"\x00" * 5), FRAME_SIZE_ERROR, id="settings-not-multiple-of-6"
        ),
        pytest.param(
            raw_frame(6, 0x4, 0, 0, struct.pack(">HI", 0x4, 2**31)),
            FLOW_CONTROL_ERROR,
            id="settings-window-too-large",
        ),
        pytest.param(
            raw_frame(4, 0x8, 0, 0, b"\x00" * 4), PROTOCOL_ERROR, id="window-update-of-zero"
        ),
        pytest.param(_headers_on_even_stream(), PROTOCOL_ERROR, id="headers-on-even-stream"),
        pytest.param(_headers_with_bad_hpack(), COMPRESSION_ERROR, id="invalid-hpack"),
    ],
)
def test_protocol_errors_end_the_connection_with_the_rfc_code(data: bytes, code: int) -> None:
    pair = Pair()
    events = pair.server.receive_data(data)
    assert len(events) == 1
    ended = events[0]
    assert isinstance(ended, ConnectionEnded)
    assert ended.error_code == code, ended.reason
    assert pair.server.closed
    assert [g.error_code for g in goaways(pair.server.data_to_send())] == [code]
    # a closed connection ignores whatever follows
    pair.client.send_headers(1, request_headers(), end_stream=True)
    assert pair.to_server() == []


def test_bad_preface_is_a_protocol_error() -> None:
    server = H2Connection()
    server.initiate()
    server.data_to_send()
    events = server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(events) == 1
    assert isinstance(events[0], ConnectionEnded)
    assert events[0].error_code == PROTOCOL_ERROR


def test_continuation_flood_ends_the_connection() -> None:
    pair = Pair()
    head = HeadersFrame(1)
    head.data = b""
    data = bytes(head.serialize())
    for _ in range(200):
        frame = ContinuationFrame(1)
        frame.data = b"\x00" * 100
        data += frame.serialize()
    events = pair.server.receive_data(data)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionEnded)
    assert events[0].error_code in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM)
    assert len(goaways(pair.server.data_to_send())) == 1


# --- header list size ----------------------------------------------------------------------------------


def test_header_list_within_the_limit_is_accepted() -> None:
    pair = Pair()
    _, events = pair.open(extra=((b"x-big", b"a" * 30_000),))
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert (b"x-big", b"a" * 30_000) in request.headers


def test_header_list_over_the_hard_cap_ends_the_connection_without_retaining_it() -> None:
    """An HPACK bomb: past 4x the advertised limit, decoding stops and the connection ends."""
    pair = Pair()
    stream_id = pair.client.get_next_available_stream_id()
    cap = Http2Limits().header_list_hard_cap
    pair.client.send_headers(
        stream_id, request_headers(extra=((b"x-big", b"a" * (cap + 1000)),)), end_stream=True
    )
    data = pair.client.data_to_send()  # HEADERS + CONTINUATION frames
    assert len(data) > 16384
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        events = pair.server.receive_data(data)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert not any(isinstance(e, RequestReceived) for e in events)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionEnded)
    assert events[0].error_code == ENHANCE_YOUR_CALM
    assert [g.error_code for g in goaways(pair.server.data_to_send())] == [ENHANCE_YOUR_CALM]
    assert retained < 32 * 1024, f"{retained} bytes retained after refusing the header list"


def _answer_of(pair: Pair, stream_id: int) -> tuple[int, bytes, list[h2.events.Event]]:
    events = pair.to_client()
    status = 0
    body = b""
    for event in events:
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
            status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
            body += event.data
    return status, body, events


def test_oversized_header_list_gets_431_on_its_stream_only() -> None:
    """RFC 9113 §10.5.1: over SETTINGS_MAX_HEADER_LIST_SIZE, 431 for that stream; others go on."""
    pair = Pair()
    stream_id, events = pair.open(extra=((b"x-big", b"a" * 70_000),))
    assert not any(isinstance(e, RequestReceived) for e in events)
    rejected = [e for e in events if isinstance(e, StreamRejected)]
    assert len(rejected) == 1
    assert (rejected[0].stream_id, rejected[0].status) == (stream_id, 431)
    assert "over the 65536-byte limit" in rejected[0].reason
    assert not pair.server.closed
    status, body, client_events = _answer_of(pair, stream_id)
    assert (status, body) == (431, b"Request Header Fields Too Large\n")
    assert any(isinstance(e, h2.events.StreamEnded) for e in client_events)
    # the connection (and its HPACK state) still serves the next request
    second, events = pair.open(extra=((b"x-small", b"b" * 100),))
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert request.stream_id == second
    assert (b"x-small", b"b" * 100) in request.headers


@pytest.mark.parametrize("closer", ["data-after-end", "goaway"])
@pytest.mark.parametrize("status", [431, 400])
def test_stream_closed_later_in_the_same_read_is_not_answered(status: int, closer: str) -> None:
    """Found by scripts/fuzz: a 431/400 answer for a stream that a later frame of the same
    read closed (DATA after END_STREAM: h2 resets the stream; the client's GOAWAY: h2
    closes the connection) raised out of receive_data. The stream is reported rejected."""
    pair = Pair()
    extra = ((b"x-big", b"a" * 70_000),) if status == 431 else ((b"x-ctl", b"a\x01b"),)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, request_headers(extra=extra), end_stream=True)
    data = pair.client.data_to_send()
    if closer == "goaway":  # GOAWAY(last stream 0, NO_ERROR) on stream 0
        data += b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8)
    else:  # an empty DATA frame on the stream that ended
        data += struct.pack("!I", 0)[1:] + bytes([0x0, 0x0]) + struct.pack("!I", stream_id)
    events = pair.server.receive_data(data)
    rejected = [e for e in events if isinstance(e, StreamRejected)]
    assert [(e.stream_id, e.status) for e in rejected] == [(stream_id, status)]
    assert not pair.server.closed
    if closer == "goaway":
        return  # the client is leaving: no new streams
    second, events = pair.open()
    assert isinstance(events[0], RequestReceived)
    assert events[0].stream_id == second


def test_oversized_header_list_with_a_body_is_answered_then_reset() -> None:
    """The request body is not wanted: 431, then RST_STREAM(NO_ERROR) (RFC 9113 §8.1)."""
    pair = Pair()
    stream_id, events = pair.open("POST", "/", end=False, extra=((b"x-big", b"a" * 70_000),))
    assert [type(e) for e in events] == [StreamRejected]
    status, _, client_events = _answer_of(pair, stream_id)
    assert status == 431
    resets = [e for e in client_events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(stream_id, 0)]
    assert not pair.server.closed


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            [(b":method", b"G\x1bET"), (b":path", b"/")], "invalid method", id="esc-in-method"
        ),
        pytest.param(
            [(b":method", b"GE(T"), (b":path", b"/")], "invalid method", id="paren-in-method"
        ),
        pytest.param(
            [(b":method", b"GET"), (b":path", b"/a\x1b[31mb")],
            "invalid character in :path",
            id="esc-in-path",
        ),
        pytest.param(
            [(b":method", b"GET"), (b":path", b"/a b")],
            "invalid character in :path",
            id="space-in-path",
        ),
        pytest.param(
            [(b":method", b"GET"), (b":path", b"/caf\xc3\xa9")],
            "invalid character in :path",
            id="raw-utf8-in-path",
        ),
        pytest.param(
            [(b":method", b"GET"), (b":path", b"/"), (b"user-agent", b"x\x1b]0;pwned\x07")],
            "invalid character in the value of 'user-agent'",
            id="esc-in-header-value",
        ),
    ],
)
def test_malformed_requests_get_400_on_their_stream(
    fields: list[tuple[bytes, bytes]], problem: str
) -> None:
    """What HTTP/1.1's parser refuses is refused over HTTP/2 too (RFC 9113 §8.1.1)."""
    pair = Pair()
    config = h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False
    )
    pair.client.config = config
    stream_id = pair.client.get_next_available_stream_id()
    pseudo = [(b":scheme", b"http"), (b":authority", b"example.com")]
    pair.client.send_headers(stream_id, fields[:2] + pseudo + fields[2:], end_stream=True)
    events = pair.to_server()
    assert [type(e) for e in events] == [StreamRejected]
    rejected = events[0]
    assert isinstance(rejected, StreamRejected)
    assert rejected.status == 400
    assert problem in rejected.reason
    status, body, _ = _answer_of(pair, stream_id)
    assert (status, body) == (400, b"Bad Request\n")
    _, events = pair.open(path="/fine")
    assert isinstance(events[0], RequestReceived)


def test_configured_max_header_list_size_is_enforced() -> None:
    """--h2-max-header-list-size below the 64 KiB default must refuse a bigger list."""
    pair = Pair(Http2Limits(max_header_list_size=4096))
    _, events = pair.open(extra=((b"x-big", b"a" * 10_000),))
    assert not any(isinstance(e, RequestReceived) for e in events), (
        "a 10 KB header list was accepted under a 4096-byte SETTINGS_MAX_HEADER_LIST_SIZE"
    )
    assert [type(e) for e in events] == [StreamRejected]


# --- GOAWAY --------------------------------------------------------------------------------------------


def test_goaway_carries_the_last_stream_id() -> None:
    pair = Pair()
    for _ in range(3):
        pair.open()
    assert pair.server.last_stream_id == 5
    pair.server.goaway()
    pair.to_client()
    assert [(g.error_code, g.last_stream_id) for g in pair.goaways] == [(0, 5)]
    pair.server.goaway()  # once only
    assert pair.server.data_to_send() == b""


def test_open_streams_are_answered_after_goaway() -> None:
    """Graceful GOAWAY: streams up to the last stream id may still finish (RFC 9113 §6.8)."""
    pair = Pair()
    stream_id, _ = pair.open()
    pair.server.goaway()
    pair.server.send_head(stream_id, 200, [(b"content-length", b"4")])
    pair.server.send_body(stream_id, b"late", end=True)
    events = pair.to_client()
    assert [(g.error_code, g.last_stream_id) for g in pair.goaways] == [(0, stream_id)]
    assert body_of(events, stream_id) == b"late"
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events)


def test_streams_opened_after_goaway_are_refused() -> None:
    pair = Pair()
    first, _ = pair.open()
    pair.server.goaway()
    pair.to_client()
    late = pair.client.get_next_available_stream_id()
    pair.client.send_headers(late, request_headers(), end_stream=True)
    events = pair.to_server()
    assert not any(isinstance(e, RequestReceived) for e in events)
    resets = [e for e in pair.to_client() if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(late, 0x7)]  # REFUSED_STREAM
    # the stream opened before GOAWAY is still served
    pair.server.send_head(first, 204, [], end=True)
    assert any(
        isinstance(e, h2.events.StreamEnded) and e.stream_id == first for e in pair.to_client()
    )


def test_goaway_before_any_stream_says_zero() -> None:
    pair = Pair()
    pair.server.goaway()
    goaway = goaways(pair.server.data_to_send())
    assert [(g.error_code, g.last_stream_id) for g in goaway] == [(0, 0)]


def test_client_goaway_lets_open_streams_finish() -> None:
    """RFC 9113 §6.8: after a graceful GOAWAY the open streams may still be answered."""
    pair = Pair()
    stream_id, _ = pair.open()
    pair.client.close_connection()
    events = pair.to_server()
    assert len(events) == 1
    assert isinstance(events[0], ConnectionEnded)
    assert events[0].error_code == 0
    assert not pair.server.closed
    assert pair.server.draining
    pair.server.send_head(stream_id, 200, [(b"content-length", b"2")])
    pair.server.send_body(stream_id, b"ok", end=True)
    assert pair.server.data_to_send()  # frames for the open stream still go out


def test_streams_over_the_advertised_maximum_are_refused_one_by_one() -> None:
    """RFC 9113 §5.1.2: REFUSED_STREAM for the extra stream, the connection goes on."""
    server = H2Connection(Http2Limits(max_concurrent_streams=3))
    server.initiate()
    server.data_to_send()
    # A client that has not seen our SETTINGS yet may open more streams than allowed.
    client = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    for _ in range(4):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(
            stream_id,
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")],
        )
    events = server.receive_data(client.data_to_send())
    opened = [e.stream_id for e in events if isinstance(e, RequestReceived)]
    assert opened == [1, 3, 5]
    assert not any(isinstance(e, ConnectionEnded) for e in events)
    resets = [f for f in frames(server.data_to_send()) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(7, 0x7)]  # REFUSED_STREAM


def test_oversized_frame_is_refused_on_its_header_before_the_payload() -> None:
    """h2 would buffer up to 16 MiB before checking the length; we refuse at the 9-byte header."""
    pair = Pair()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, request_headers(), end_stream=True)
    data = pair.client.data_to_send()
    header = (16 * 1024 * 1024 - 16).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    # the request before it, then the announcing header cut in two reads
    events = pair.server.receive_data(data + header[:5])
    assert isinstance(events[0], RequestReceived)
    events = pair.server.receive_data(header[5:])
    assert len(events) == 1
    ended = events[0]
    assert isinstance(ended, ConnectionEnded)
    assert ended.error_code == FRAME_SIZE_ERROR
    assert "over the 16384-byte SETTINGS_MAX_FRAME_SIZE" in ended.reason
    assert [g.error_code for g in goaways(pair.server.data_to_send())] == [FRAME_SIZE_ERROR]
    assert pair.server.receive_data(b"x" * 100_000) == []


def test_rejection_with_a_closed_client_window_sends_the_status_alone() -> None:
    """Review find: the 400/431 body ignored the client's window (FlowControlError escaped)."""
    pair = Pair(client_settings={_CODES.INITIAL_WINDOW_SIZE: 0})
    stream_id, events = pair.open(extra=((b"x-big", b"a" * 70_000),))
    assert [type(e) for e in events] == [StreamRejected]
    status, body, client_events = _answer_of(pair, stream_id)
    assert (status, body) == (431, b"")
    assert any(isinstance(e, h2.events.StreamEnded) for e in client_events)
    assert not pair.server.closed


# --- bascule's own engine: behaviour h2 did not have --------------------------------------------------


def test_streams_refused_in_a_loop_count_as_resets() -> None:
    """A client that keeps opening streams past the limit is throttled like a rapid reset."""
    server = H2Connection(Http2Limits(max_concurrent_streams=2, max_resets=5))
    server.initiate()
    server.data_to_send()
    client = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    for _ in range(2 + 6):  # two served, then six over the limit
        client.send_headers(client.get_next_available_stream_id(), request_headers())
    events = server.receive_data(client.data_to_send())
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == [1, 3]
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].error_code == ENHANCE_YOUR_CALM
    assert "concurrency limit" in events[-1].reason
    sent = frames(server.data_to_send())
    refused = [f.stream_id for f in sent if isinstance(f, RstStreamFrame)]
    assert refused == [5, 7, 9, 11, 13, 15]
    assert [g.error_code for g in sent if isinstance(g, GoAwayFrame)] == [ENHANCE_YOUR_CALM]


def test_data_after_the_request_ended_resets_that_stream_only() -> None:
    """RFC 9113 §5.1: DATA on a half-closed (remote) stream is a stream error STREAM_CLOSED;
    the app learns of it (StreamReset) and the other streams go on."""
    pair = Pair()
    stream_id, _ = pair.open()  # GET, END_STREAM
    other, _ = pair.open()
    events = pair.server.receive_data(raw_frame(3, 0x0, 0, stream_id, b"abc"))
    assert [(type(e), e.stream_id) for e in events] == [(StreamReset, stream_id)]  # type: ignore[union-attr]
    resets = [f for f in frames(pair.server.data_to_send()) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(stream_id, 0x5)]
    pair.server.send_head(other, 204, [], end=True)
    assert any(
        isinstance(e, h2.events.StreamEnded) and e.stream_id == other for e in pair.to_client()
    )


def test_late_trailers_on_a_reset_stream_keep_the_hpack_state() -> None:
    """A header block on a stream we reset is decoded (HPACK state is per connection) and dropped."""
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    pair.server.reset(stream_id, CANCEL)
    pair.server.data_to_send()  # the client has not seen the RST_STREAM yet
    # Trailers that add a new field to the client's dynamic table...
    pair.client.send_headers(stream_id, [(b"x-late-trailer", b"v" * 40)], end_stream=True)
    assert pair.to_server() == []
    # ...which the next request refers to by index.
    _, events = pair.open(extra=((b"x-late-trailer", b"v" * 40),))
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert (b"x-late-trailer", b"v" * 40) in request.headers
    assert not pair.server.closed


def test_small_reads_do_not_each_send_window_update() -> None:
    """Credit goes back once half a window is owed, not for every read of the app."""
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    pair.client.send_data(stream_id, b"a" * 16_000)
    pair.to_server()
    for _ in range(16):
        pair.server.consumed(stream_id, 1_000)
    assert frames(pair.server.data_to_send()) == []  # 16,000 < 65,535 / 2
    pair.client.send_data(stream_id, b"b" * 16_384)
    pair.to_server()
    pair.server.consumed(stream_id, 16_384)  # 32,384 owed: still under half
    assert frames(pair.server.data_to_send()) == []
    pair.server.consumed(stream_id, 400)
    updates = [f for f in frames(pair.server.data_to_send()) if isinstance(f, WindowUpdateFrame)]
    assert [(f.stream_id, f.window_increment) for f in updates] == [(stream_id, 32_784)]


def test_upgrade_settings_are_applied_and_stream_one_is_open() -> None:
    server = H2Connection()
    settings = struct.pack(">HI", 0x4, 1000) + struct.pack(">HI", 0x2, 0)  # window, no push
    server.initiate_upgrade(base64.urlsafe_b64encode(settings).rstrip(b"="))
    assert not server.push_allowed
    server.send_head(1, 200, [(b"content-length", b"2000")])
    server.send_body(1, b"x" * 2000, end=True)
    assert server.pending(1) == 1000 + 1  # the client's 1,000-byte window, then the end
    sent = frames(server.data_to_send())
    assert [type(f).__name__ for f in sent][:2] == ["SettingsFrame", "WindowUpdateFrame"]
    assert sum(len(f.data) for f in sent if isinstance(f, DataFrame)) == 1000


# not base64; 4 bytes; SETTINGS_ENABLE_PUSH of 2
@pytest.mark.parametrize("header", [b"!!!", b"AAAAAA", b"AAIAAAAC"])
def test_bad_upgrade_settings_raise_value_error(header: bytes) -> None:
    with pytest.raises(ValueError, match=r"HTTP2-Settings|SETTINGS_ENABLE_PUSH"):
        H2Connection().initiate_upgrade(header)


def test_unread_upload_is_refused_once_the_response_is_out() -> None:
    """RFC 9113 §8.1: the app answered without reading the body: RST_STREAM(NO_ERROR) after
    the response, so the upload stops and the stream slot is free."""
    pair = Pair()
    stream_id, _ = pair.open("POST", "/upload", end=False)
    pair.server.send_head(stream_id, 200, [(b"content-length", b"100000")])
    pair.server.send_body(stream_id, b"r" * 100_000, end=True)  # more than the client's window
    pair.server.finish(stream_id)  # the app is done; the response is still queued
    assert pair.server.pending(stream_id)
    fresh = pair.to_client()
    assert not any(isinstance(e, h2.events.StreamReset) for e in fresh)  # not before the body
    events = list(fresh)
    for _ in range(10):
        for event in fresh:  # the client reads: its WINDOW_UPDATEs release the rest
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                pair.client.acknowledge_received_data(event.flow_controlled_length, stream_id)
        pair.to_server()
        fresh = pair.to_client()
        events += fresh
        if any(isinstance(e, h2.events.StreamReset) for e in fresh):
            break
    assert body_of(events, stream_id) == b"r" * 100_000
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(stream_id, 0)]
    assert stream_id not in pair.server.streams


def test_finished_stream_whose_request_ended_is_not_reset() -> None:
    pair = Pair()
    stream_id, _ = pair.open()  # GET, END_STREAM
    pair.server.send_head(stream_id, 204, [], end=True)
    pair.server.finish(stream_id)
    assert not any(isinstance(e, h2.events.StreamReset) for e in pair.to_client())


def test_connection_credit_owed_is_released_before_the_window_runs_dry() -> None:
    """Credit one stream's app gave back goes out once the connection window is below half,
    even if the bytes that drained it belong to a stream whose app does not read."""
    pair = Pair(Http2Limits(max_concurrent_streams=2, initial_window_size=65535))
    reader, _ = pair.open("POST", "/a", end=False)
    idle, _ = pair.open("POST", "/b", end=False)  # connection window: 2 x 65,535
    pair.client.send_data(reader, b"a" * 16384)
    pair.client.send_data(reader, b"a" * 16384)
    pair.to_server()
    pair.server.consumed(reader, 20_000)  # under half of either window: nothing sent yet
    assert frames(pair.server.data_to_send()) == []
    for _ in range(4):
        pair.client.send_data(idle, b"b" * 16000)  # the idle stream's app reads none of it
    pair.to_server()
    updates = [f for f in frames(pair.server.data_to_send()) if isinstance(f, WindowUpdateFrame)]
    assert [(f.stream_id, f.window_increment) for f in updates] == [(0, 20_000)]


def test_push_path_with_control_characters_is_refused() -> None:
    pair = Pair()
    stream_id, _ = pair.open()
    with pytest.raises(LocalProtocolError):
        pair.server.push(stream_id, b"/a\r\nx: y", b"example.com", b"https", [])
    assert pair.server.data_to_send() == b""


def test_large_frame_in_many_small_reads_arrives_whole() -> None:
    """An incomplete frame is kept in pieces and joined once it is complete."""
    limits = Http2Limits(max_inbound_frame_size=131_072, initial_window_size=200_000)
    pair = Pair(limits)
    stream_id, _ = pair.open("POST", "/upload", end=False)
    body = bytes(range(256)) * 400  # 102,400 bytes in one DATA frame
    data = raw_frame(len(body), 0x0, 0x1, stream_id, body)
    events: list[H2Event] = []
    for start in range(0, len(data), 1000):
        events += pair.server.receive_data(data[start : start + 1000])
    chunks = [e for e in events if isinstance(e, BodyChunk)]
    assert [len(c.data) for c in chunks] == [len(body)]
    assert chunks[0].data == body
    assert isinstance(events[-1], BodyEnd)


def _headers_after_the_end(closed: int, late: int) -> list[GoAwayFrame]:
    """Close ``closed`` streams one after the other, then send HEADERS on stream ``late``."""
    pair = Pair()
    for _ in range(closed):
        stream_id, _ = pair.open()
        pair.server.send_head(stream_id, 204, [], end=True)
        pair.to_client()
    block = hpack.Encoder().encode(request_headers())
    pair.server.receive_data(raw_frame(len(block), 0x1, 0x5, late, block))
    return goaways(pair.server.data_to_send())


def test_the_last_streams_closed_are_remembered_and_the_oldest_forgotten() -> None:
    """How a stream closed is kept for the last 256 streams (RFC 9113 §5.1): HEADERS on one
    of them is STREAM_CLOSED; on a stream closed earlier, only "lower than the highest
    stream opened" is left to say (PROTOCOL_ERROR)."""
    closed = _CLOSED_MEMORY + 44
    oldest_kept = 2 * (closed - _CLOSED_MEMORY) + 1
    for late, code in [
        (2 * closed - 1, 0x5),  # the last one closed
        (oldest_kept, 0x5),
        (oldest_kept - 2, PROTOCOL_ERROR),  # the newest of those forgotten
        (1, PROTOCOL_ERROR),
    ]:
        sent = _headers_after_the_end(closed, late)
        assert [g.error_code for g in sent] == [code], late
