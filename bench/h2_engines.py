"""In-process comparison of sans-I/O HTTP/2 server engines: ``h2``, ``zttp`` and bascule's own.

Run it from the repository root::

    python bench/h2_engines.py              # full run (best of 5; about 15 s on 2 cores)
    python bench/h2_engines.py --quick      # smaller run, for a smoke test

No socket is opened. The ``h2`` package, in CLIENT mode, produces the client's
bytes: the connection preface and SETTINGS, then batches of concurrent requests
(GET, or POST with a 16 KiB body), plus the SETTINGS ack and WINDOW_UPDATEs the
client owes. Those bytes are recorded once per engine, in lockstep with that
engine (so every WINDOW_UPDATE lands where that engine's flow control needs it),
and the recording is checked there by the h2 client: every stream answered 200
with the body ``Hello, world!``. The timed part replays the recorded client
bytes into fresh server connections, one ``receive_data`` per recorded chunk,
answering each request with 200 and a 13-byte body, and collects
``data_to_send()``. An untimed replay must reproduce the recorded server output
byte for byte. Requests/s is the best of ``--runs`` runs (``time.perf_counter``).

Then it probes each engine against attack patterns (rapid reset, CONTINUATION
flood, oversized header lists, an HPACK bomb, SETTINGS and PING floods, DATA
past the flow-control window, a long-lived connection) and the protocol
features an ASGI server needs (extended CONNECT, server push, trailers, 103
early hints, GOAWAY with a last stream id, app-driven flow control,
configurable SETTINGS), and prints three Markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Final, Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import zttp

from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http2.connection import ConnectionEnded, H2Connection
from bascule.proto.limits import Http2Limits

BODY: Final = b"Hello, world!"
POST_BODY_SIZE: Final = 16 * 1024
REQUEST_HEADERS: Final[list[tuple[bytes, bytes]]] = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b":path", b"/"),
    (b"user-agent", b"bascule-bench/1.0 (h2 engines)"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-language", b"en-US,en;q=0.5"),
]
RESPONSE_FIELDS: Final[list[tuple[bytes, bytes]]] = [
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]
H2_RESPONSE_HEADERS: Final = [(b":status", b"200"), *RESPONSE_FIELDS]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_DATA, FRAME_HEADERS, FRAME_RST, FRAME_SETTINGS = 0x0, 0x1, 0x3, 0x4
FRAME_PUSH, FRAME_PING, FRAME_GOAWAY, FRAME_WINDOW, FRAME_CONT = 0x5, 0x6, 0x7, 0x8, 0x9
FLAG_END_STREAM, FLAG_ACK, FLAG_END_HEADERS = 0x1, 0x1, 0x4
ERROR_NAMES: Final = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
}
SETTINGS_ENABLE_CONNECT_PROTOCOL: Final = 0x8
ENGINES: Final = ("h2", "zttp", "bascule")


# --------------------------------------------------------------------------
# Benchmark server adapters: answer every request with 200 + "Hello, world!"
# --------------------------------------------------------------------------


class BenchServer(Protocol):
    def feed(self, data: bytes) -> bytes:
        """Take client bytes, answer every complete request, return bytes to send."""
        ...


class H2BenchServer:
    """h2 in server mode; request bodies are credited as they are consumed."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.body_bytes = 0

    def feed(self, data: bytes) -> bytes:
        conn = self.conn
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.body_bytes += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                conn.send_headers(event.stream_id, H2_RESPONSE_HEADERS)
                conn.send_data(event.stream_id, BODY, end_stream=True)
        return conn.data_to_send()


class ZttpBenchServer:
    """zttp in server mode (it credits HTTP/2 receive windows by itself while parsing)."""

    def __init__(self) -> None:
        self.conn = zttp.Connection(zttp.SERVER, zttp.HTTP2)
        self.conn.initiate_connection()
        self.body_bytes = 0

    def _respond(self, stream_id: int) -> None:
        stream = self.conn.stream(stream_id)
        stream.send_response(200, RESPONSE_FIELDS)
        stream.send_data(BODY)
        stream.end_message()

    def feed(self, data: bytes) -> bytes:
        conn = self.conn
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if isinstance(event, zttp.Request):
                if event.end_stream:
                    self._respond(event.stream_id)
            elif isinstance(event, zttp.Data):
                self.body_bytes += len(event.data)
            elif isinstance(event, zttp.EndOfMessage):
                self._respond(event.stream_id)
            elif isinstance(event, zttp.NeedData | zttp.ConnectionClosed):
                break
        return conn.data_to_send()


class BasculeBenchServer:
    """bascule's own engine (proto/http2/connection.py), answering as its driver does."""

    def __init__(self) -> None:
        self.conn = H2Connection()
        self.conn.initiate()
        self.body_bytes = 0

    def feed(self, data: bytes) -> bytes:
        conn = self.conn
        for event in conn.receive_data(data):
            if isinstance(event, BodyChunk):
                self.body_bytes += len(event.data)
                conn.consumed(event.stream_id, len(event.data))
            elif isinstance(event, BodyEnd):
                conn.send_head(event.stream_id, 200, RESPONSE_FIELDS, checked=True)
                conn.send_body(event.stream_id, BODY, end=True)
        return conn.data_to_send()


BENCH_SERVERS: Final[dict[str, Callable[[], BenchServer]]] = {
    "h2": H2BenchServer,
    "zttp": ZttpBenchServer,
    "bascule": BasculeBenchServer,
}


# --------------------------------------------------------------------------
# Recording the client side once (lockstep with the engine), then replaying it
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    batches: int
    streams: int
    body_size: int  # 0 = GET without body, else POST with that many body bytes


@dataclass
class Recording:
    chunks: list[bytes]  # client -> server, one receive_data() call each
    replies: list[bytes]  # server -> client after each chunk
    requests: int

    @property
    def client_bytes(self) -> int:
        return sum(map(len, self.chunks))

    @property
    def server_bytes(self) -> int:
        return sum(map(len, self.replies))


class _ClientCheck:
    """The h2 client that records the workload and checks every response."""

    def __init__(self, server: BenchServer) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.server = server
        self.recording = Recording([], [], 0)
        self.status: dict[int, bytes] = {}
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()

    def exchange(self) -> bool:
        out = self.conn.data_to_send()
        if not out:
            return False
        reply = self.server.feed(out)
        self.recording.chunks.append(out)
        self.recording.replies.append(reply)
        for event in self.conn.receive_data(reply):
            if isinstance(event, h2.events.ResponseReceived):
                assert event.stream_id is not None
                assert event.headers is not None
                self.status[event.stream_id] = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None
                assert event.data is not None
                assert event.flow_controlled_length is not None
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                raise AssertionError(f"server aborted: {event!r}")
        return True


def record(engine: str, workload: Workload) -> Recording:
    """Drive one engine with an h2 client; keep the client bytes; check the answers."""
    client = _ClientCheck(BENCH_SERVERS[engine]())
    conn = client.conn
    client.exchange()  # preface + SETTINGS <-> server SETTINGS + ack
    method = b"POST" if workload.body_size else b"GET"
    headers = [(b":method", method), *REQUEST_HEADERS[1:]]
    if workload.body_size:
        headers += [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(workload.body_size).encode()),
        ]
    payload = bytes(range(256)) * (workload.body_size // 256 + 1)
    all_streams: list[int] = []
    for _ in range(workload.batches):
        pending: dict[int, memoryview] = {}
        batch: list[int] = []
        for _ in range(workload.streams):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, headers, end_stream=not workload.body_size)
            batch.append(stream_id)
            if workload.body_size:
                pending[stream_id] = memoryview(payload)[: workload.body_size]
        while True:
            for stream_id in list(pending):  # send as much body as the windows allow
                rest = pending[stream_id]
                while rest:
                    size = min(
                        conn.local_flow_control_window(stream_id),
                        conn.max_outbound_frame_size,
                        len(rest),
                    )
                    if size <= 0:
                        break
                    conn.send_data(stream_id, bytes(rest[:size]), end_stream=size == len(rest))
                    rest = rest[size:]
                if rest:
                    pending[stream_id] = rest
                    break
                del pending[stream_id]
            progressed = client.exchange()
            if client.ended.issuperset(batch):
                break
            if not progressed:
                raise AssertionError(f"{engine}: stalled with {len(pending)} bodies unsent")
        all_streams += batch
    client.exchange()  # the client's last WINDOW_UPDATEs
    for stream_id in all_streams:
        status = client.status.get(stream_id)
        body = bytes(client.bodies.get(stream_id, b""))
        assert status == b"200", f"{engine}: stream {stream_id} status {status!r}"
        assert body == BODY, f"{engine}: stream {stream_id} body {body!r}"
    expected_body = len(all_streams) * workload.body_size
    got_body = getattr(client.server, "body_bytes", -1)
    assert got_body == expected_body, f"{engine}: server saw {got_body} body bytes"
    client.recording.requests = len(all_streams)
    return client.recording


def replay(engine: str, recording: Recording) -> list[bytes]:
    server = BENCH_SERVERS[engine]()
    return [server.feed(chunk) for chunk in recording.chunks]


def time_replays(engine: str, recording: Recording, connections: int, runs: int) -> float:
    """Best wall time of `runs` runs, each replaying the recording on fresh connections."""
    factory = BENCH_SERVERS[engine]
    chunks = recording.chunks
    expected = recording.server_bytes * connections
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        sent = 0
        start = time.perf_counter()
        for _ in range(connections):
            feed = factory().feed
            for chunk in chunks:
                sent += len(feed(chunk))
        elapsed = time.perf_counter() - start
        assert sent == expected, f"{engine}: replay produced {sent} bytes, expected {expected}"
        best = min(best, elapsed)
    return best


@dataclass
class ThroughputRow:
    workload: str
    rates: dict[str, float]
    notes: dict[str, str]


def run_throughput(args: argparse.Namespace) -> list[ThroughputRow]:
    rows = []
    for workload in (
        Workload("GET", args.batches, args.streams, 0),
        Workload(f"POST {POST_BODY_SIZE // 1024} KiB", args.batches, args.streams, POST_BODY_SIZE),
    ):
        row = ThroughputRow(workload.name, {}, {})
        for engine in ENGINES:
            recording = record(engine, workload)  # correctness check, outside the timing
            assert replay(engine, recording) == recording.replies, f"{engine}: not deterministic"
            best = time_replays(engine, recording, args.connections, args.runs)
            row.rates[engine] = recording.requests * args.connections / best
            row.notes[engine] = (
                f"{len(recording.chunks)} feeds, in {recording.client_bytes / 1024:.0f} KiB"
                f" / out {recording.server_bytes / 1024:.0f} KiB per conn"
            )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------
# Raw frames for the probes (built by hand: the h2 client refuses to misbehave)
# --------------------------------------------------------------------------


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal(name: bytes, value: bytes, *, index: bool = False) -> bytes:
    """A literal field with a literal name, no Huffman; `index` adds it to the table."""
    first = 0x40 if index else 0x00
    prefix = 6 if index else 4
    return (
        hpack_int(0, prefix, first)
        + hpack_int(len(name), 7)
        + name
        + hpack_int(len(value), 7)
        + value
    )


@dataclass
class Wire:
    """A summary of the frames a server wrote."""

    counts: Counter[str] = field(default_factory=Counter)
    goaway: tuple[int, int] | None = None  # (last_stream_id, error_code)
    rst_codes: Counter[int] = field(default_factory=Counter)
    blocks: list[tuple[int, int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    data: dict[int, bytes] = field(default_factory=dict)
    settings: dict[int, int] = field(default_factory=dict)


def parse_wire(raw: bytes, decoder: hpack.Decoder | None = None) -> Wire:
    wire = Wire()
    decoder = decoder or hpack.Decoder()
    decoder.max_header_list_size = 1 << 24
    names = {
        FRAME_DATA: "DATA",
        FRAME_HEADERS: "HEADERS",
        FRAME_RST: "RST_STREAM",
        FRAME_SETTINGS: "SETTINGS",
        FRAME_PUSH: "PUSH_PROMISE",
        FRAME_PING: "PING",
        FRAME_GOAWAY: "GOAWAY",
        FRAME_WINDOW: "WINDOW_UPDATE",
        FRAME_CONT: "CONTINUATION",
    }
    pos = 0
    while pos + 9 <= len(raw):
        length = int.from_bytes(raw[pos : pos + 3], "big")
        kind, flags = raw[pos + 3], raw[pos + 4]
        stream_id = int.from_bytes(raw[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        payload = raw[pos + 9 : pos + 9 + length]
        pos += 9 + length
        name = names.get(kind, f"type{kind}")
        if kind in (FRAME_SETTINGS, FRAME_PING) and flags & FLAG_ACK:
            name += "(ack)"
        wire.counts[name] += 1
        if kind == FRAME_GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            wire.goaway = (last, int.from_bytes(payload[4:8], "big"))
        elif kind == FRAME_RST:
            wire.rst_codes[int.from_bytes(payload[:4], "big")] += 1
        elif kind == FRAME_DATA:
            wire.data[stream_id] = wire.data.get(stream_id, b"") + payload
        elif kind == FRAME_SETTINGS and not flags & FLAG_ACK:
            for i in range(0, len(payload) - 5, 6):
                key = int.from_bytes(payload[i : i + 2], "big")
                wire.settings[key] = int.from_bytes(payload[i + 2 : i + 6], "big")
        elif kind in (FRAME_HEADERS, FRAME_PUSH):
            assert flags & FLAG_END_HEADERS, "probe servers send small header blocks"
            block = payload[4:] if kind == FRAME_PUSH else payload
            fields = [(bytes(k), bytes(v)) for k, v in decoder.decode(block, raw=True)]
            wire.blocks.append((stream_id, kind, fields))
    return wire


class RawClient:
    """Builds client frames by hand, sharing one HPACK encoder."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    @staticmethod
    def preface() -> bytes:
        return PREFACE + frame(FRAME_SETTINGS, 0, 0)

    def headers(
        self,
        stream_id: int,
        method: bytes = b"GET",
        *,
        end_stream: bool = True,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> bytes:
        fields = [(b":method", method), *REQUEST_HEADERS[1:4], *extra]
        flags = FLAG_END_HEADERS | (FLAG_END_STREAM if end_stream else 0)
        return frame(FRAME_HEADERS, flags, stream_id, self.encoder.encode(fields))

    def pseudo_block(self, method: bytes = b"GET") -> bytes:
        return self.encoder.encode([(b":method", method), *REQUEST_HEADERS[1:4]])


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------
# Probe server adapters: drain every event, answer only when asked to
# --------------------------------------------------------------------------


class H2Probe:
    name = "h2"

    def __init__(
        self,
        *,
        ack_data: bool = True,
        respond: bool = False,
        settings: dict[h2.settings.SettingCodes, int] | None = None,
    ) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.conn.initiate_connection()
        self.ack_data = ack_data
        self.respond = respond
        self.events: Counter[str] = Counter()
        self.requests: list[h2.events.RequestReceived] = []
        self.data: dict[int, bytes] = {}
        self.error: str | None = None
        self.out = bytearray(self.conn.data_to_send())

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:70]
            events = []
        for event in events:
            self.events[type(event).__name__] += 1
            if isinstance(event, h2.events.RequestReceived):
                self.requests.append(event)
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None
                assert event.data is not None
                assert event.flow_controlled_length is not None
                self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
                if self.ack_data:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            elif isinstance(event, h2.events.StreamEnded) and self.respond:
                assert event.stream_id is not None
                self.conn.send_headers(event.stream_id, [(b":status", b"200")], end_stream=True)
        self.out += self.conn.data_to_send()

    @property
    def request_count(self) -> int:
        return self.events["RequestReceived"]


class ZttpProbe:
    name = "zttp"

    def __init__(self, *, respond: bool = False) -> None:
        self.conn = zttp.Connection(zttp.SERVER, zttp.HTTP2)
        self.conn.initiate_connection()
        self.respond = respond
        self.events: Counter[str] = Counter()
        self.requests: list[zttp.Request] = []
        self.data: dict[int, bytes] = {}
        self.error: str | None = None
        self.out = bytearray(self.conn.data_to_send())

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        conn = self.conn
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if isinstance(event, zttp.NeedData | zttp.ConnectionClosed):
                    break
                self.events[type(event).__name__] += 1
                if isinstance(event, zttp.Request):
                    self.requests.append(event)
                    if self.respond and event.end_stream:
                        conn.stream(event.stream_id).send_response(200, [], end_stream=True)
                elif isinstance(event, zttp.Data):
                    self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
        except zttp.ProtocolError as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:70]
        self.out += conn.data_to_send()

    @property
    def request_count(self) -> int:
        return self.events["Request"]


class BasculeProbe:
    """bascule's engine; a connection error it reports is shown as "raised"."""

    name = "bascule"

    def __init__(self, *, ack_data: bool = True, respond: bool = False) -> None:
        self.conn = H2Connection()
        self.conn.initiate()
        self.ack_data = ack_data
        self.respond = respond
        self.events: Counter[str] = Counter()
        self.requests: list[RequestReceived] = []
        self.data: dict[int, bytes] = {}
        self.error: str | None = None
        self.out = bytearray(self.conn.data_to_send())

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        conn = self.conn
        for event in conn.receive_data(data):
            self.events[type(event).__name__] += 1
            if isinstance(event, RequestReceived):
                self.requests.append(event)
            elif isinstance(event, BodyChunk):
                self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
                if self.ack_data:
                    conn.consumed(event.stream_id, len(event.data))
            elif isinstance(event, BodyEnd) and self.respond:
                conn.send_head(event.stream_id, 200, [], end=True)
            elif isinstance(event, ConnectionEnded) and event.error_code:
                self.error = f"ConnectionEnded: {event.reason}"[:70]
        self.out += conn.data_to_send()

    @property
    def request_count(self) -> int:
        return self.events["RequestReceived"]


AnyProbe = H2Probe | ZttpProbe | BasculeProbe


def probe_servers(*, ack_data: bool = True, respond: bool = False) -> list[AnyProbe]:
    return [
        H2Probe(ack_data=ack_data, respond=respond),
        ZttpProbe(respond=respond),
        BasculeProbe(ack_data=ack_data, respond=respond),
    ]


@dataclass
class ProbeRow:
    probe: str
    engine: str
    outcome: str
    requests: str
    wire: str
    ms: float
    memory: str = ""


def describe(server: AnyProbe, wire: Wire) -> str:
    parts = []
    if wire.goaway is not None:
        last, code = wire.goaway
        parts.append(f"GOAWAY {ERROR_NAMES.get(code, hex(code))} last={last}")
    if server.error is not None:
        parts.append(f"raised {server.error}")
    return "; ".join(parts) or "accepted, no error"


def wire_summary(wire: Wire, keys: Iterable[str]) -> str:
    return ", ".join(f"{key} {wire.counts[key]}" for key in keys if wire.counts[key]) or "-"


def timed_feed(server: AnyProbe, chunks: Iterable[bytes]) -> float:
    start = time.perf_counter()
    for chunk in chunks:
        server.feed(chunk)
        if server.error is not None:
            break
    return (time.perf_counter() - start) * 1000


def probe_rapid_reset(count: int) -> list[ProbeRow]:
    rows = []
    for server in probe_servers():
        client = RawClient()
        parts = [client.preface()]
        for i in range(count):
            parts.append(client.headers(2 * i + 1))
            parts.append(frame(FRAME_RST, 0, 2 * i + 1, (0x8).to_bytes(4, "big")))
        ms = timed_feed(server, [b"".join(parts)])
        wire = parse_wire(bytes(server.out))
        resets = server.events["StreamReset"] + server.events["RstStream"]
        rows.append(
            ProbeRow(
                f"rapid reset x{count} (1 feed)",
                server.name,
                describe(server, wire),
                f"{server.request_count} req, {resets} resets",
                wire_summary(wire, ["RST_STREAM", "GOAWAY"]),
                ms,
            )
        )
    return rows


def probe_continuation_flood(count: int) -> list[ProbeRow]:
    """One HEADERS without END_HEADERS, then `count` 16 KiB CONTINUATIONs (valid HPACK)."""
    name, size = b"x-flood", 16384
    overhead = len(hpack_literal(name, b"v" * (size - 16))) - (size - 16)
    continuation = frame(FRAME_CONT, 0, 1, hpack_literal(name, b"v" * (size - overhead)))
    assert len(continuation) == size + 9
    rows = []
    for server in probe_servers():
        client = RawClient()
        server.feed(client.preface())
        head = frame(FRAME_HEADERS, FLAG_END_STREAM, 1, client.pseudo_block())
        gc.collect()
        rss_before = rss_peak = rss_bytes()
        tracemalloc.start()
        start = time.perf_counter()
        out_before = len(server.out)
        server.feed(head)
        accepted = 0
        for _ in range(count):
            server.feed(continuation)
            if server.error is not None or len(server.out) > out_before:
                break
            accepted += 1
            if accepted % 64 == 0:
                rss_peak = max(rss_peak, rss_bytes())
        ms = (time.perf_counter() - start) * 1000
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_peak = max(rss_peak, rss_bytes())
        wire = parse_wire(bytes(server.out))
        rows.append(
            ProbeRow(
                f"CONTINUATION flood x{count} x 16 KiB",
                server.name,
                describe(server, wire),
                f"{server.request_count} req",
                f"{accepted} CONT frames taken",
                ms,
                f"tracemalloc {peak / 1024:.0f} KiB, RSS +{(rss_peak - rss_before) / 1024:.0f} KiB",
            )
        )
    return rows


def header_block_frames(stream_id: int, block: bytes, *, max_frame: int = 16384) -> bytes:
    pieces = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        last = FLAG_END_HEADERS if i == len(pieces) - 1 else 0
        if i == 0:
            out.append(frame(FRAME_HEADERS, FLAG_END_STREAM | last, stream_id, piece))
        else:
            out.append(frame(FRAME_CONT, last, stream_id, piece))
    return b"".join(out)


def probe_big_headers() -> list[ProbeRow]:
    rows = []
    for label in ("1 MiB header list (1024 x 1 KiB)", "HPACK bomb: 4 KiB wire -> 1 MiB"):
        for server in probe_servers():
            client = RawClient()
            server.feed(client.preface())
            block = client.pseudo_block()
            if label.startswith("1 MiB"):
                block += b"".join(hpack_literal(b"x-h%04d" % i, b"v" * 1018) for i in range(1024))
            else:  # one 4000-byte field into the dynamic table, then 262 one-byte references
                block += hpack_literal(b"x-bomb", b"b" * 4000, index=True) + b"\xbe" * 262
            payload = header_block_frames(1, block)
            ms = timed_feed(server, [payload])
            wire = parse_wire(bytes(server.out))
            rst = ", ".join(f"RST {ERROR_NAMES.get(c, c)}" for c in wire.rst_codes)
            outcome = describe(server, wire)
            rows.append(
                ProbeRow(
                    label,
                    server.name,
                    outcome + (f"; {rst}" if rst else ""),
                    f"{server.request_count} req",
                    f"{len(payload) // 1024} KiB in; " + wire_summary(wire, ["HEADERS"]),
                    ms,
                )
            )
    return rows


def probe_control_floods(count: int) -> list[ProbeRow]:
    rows = []
    settings = frame(FRAME_SETTINGS, 0, 0, (1).to_bytes(2, "big") + (4096).to_bytes(4, "big"))
    ping = frame(FRAME_PING, 0, 0, b"12345678")
    for label, unit, ack in (
        ("SETTINGS", settings, "SETTINGS(ack)"),
        ("PING", ping, "PING(ack)"),
    ):
        for server in probe_servers():
            server.feed(RawClient.preface())
            before = parse_wire(bytes(server.out)).counts[ack]
            ms = timed_feed(server, [unit * count])
            wire = parse_wire(bytes(server.out))
            rows.append(
                ProbeRow(
                    f"{label} flood x{count} (1 feed)",
                    server.name,
                    describe(server, wire),
                    "-",
                    f"{wire.counts[ack] - before} acks ({len(server.out) // 1024} KiB)",
                    ms,
                )
            )
    return rows


def probe_flow_control() -> list[ProbeRow]:
    """5 x 16 KiB DATA on one stream (80 KiB > 64 KiB window); the app consumes nothing."""
    rows = []
    for server in probe_servers(ack_data=False):
        client = RawClient()
        chunk = client.preface() + client.headers(1, b"POST", end_stream=False)
        chunk += b"".join(frame(FRAME_DATA, 0, 1, b"d" * 16384) for _ in range(5))
        ms = timed_feed(server, [chunk])
        wire = parse_wire(bytes(server.out))
        rst = ", ".join(f"RST {ERROR_NAMES.get(c, c)}" for c in wire.rst_codes)
        rows.append(
            ProbeRow(
                "DATA past window, app not reading",
                server.name,
                describe(server, wire) + (f"; {rst}" if rst else ""),
                f"{sum(map(len, server.data.values())) // 1024} KiB body surfaced",
                wire_summary(wire, ["WINDOW_UPDATE"]),
                ms,
            )
        )
    return rows


def probe_long_connection(count: int) -> list[ProbeRow]:
    """`count` well-behaved sequential GETs on one connection, each answered."""
    rows = []
    for server in probe_servers(respond=True):
        client = RawClient()
        server.feed(client.preface())
        start = time.perf_counter()
        for i in range(count):
            server.feed(client.headers(2 * i + 1))
            if server.error is not None:
                break
        ms = (time.perf_counter() - start) * 1000
        wire = parse_wire(bytes(server.out))
        rows.append(
            ProbeRow(
                f"{count} sequential GETs, 1 connection",
                server.name,
                describe(server, wire),
                f"{server.request_count} req",
                f"{wire.counts['HEADERS']} responses",
                ms,
            )
        )
    return rows


# --------------------------------------------------------------------------
# API coverage probes for the ASGI extensions bascule needs
# --------------------------------------------------------------------------


@dataclass
class ApiRow:
    feature: str
    results: dict[str, str]


def _open(server: AnyProbe, client: RawClient, *, end_stream: bool = True) -> None:
    server.feed(client.preface() + client.headers(1, end_stream=end_stream))


def api_extended_connect() -> ApiRow:
    results = {}
    extra = [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")]
    for server in (
        H2Probe(settings={h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1}),
        ZttpProbe(),
        BasculeProbe(),
    ):
        advertised = parse_wire(bytes(server.out)).settings.get(SETTINGS_ENABLE_CONNECT_PROTOCOL)
        client = RawClient()
        hdr = client.headers(1, b"CONNECT", end_stream=False, extra=extra)
        server.feed(client.preface() + hdr)
        if isinstance(server, H2Probe):
            seen = [dict(r.headers).get(b":protocol") for r in server.requests if r.headers]
            server.conn.send_headers(1, [(b":status", b"200")])
            server.conn.send_data(1, b"\x81\x02hi")
        elif isinstance(server, BasculeProbe):
            seen = [r.protocol for r in server.requests]
            server.conn.send_head(1, 200, [])
            server.conn.send_body(1, b"\x81\x02hi")
        else:
            seen = [r.protocol for r in server.requests]
            stream = server.conn.stream(1)
            stream.send_response(200, [])
            stream.send_data(b"\x81\x02hi")
        server.feed(frame(FRAME_DATA, 0, 1, b"\x81\x82mask"))
        server.out += server.conn.data_to_send()
        wire = parse_wire(bytes(server.out))
        tunnel = wire.data.get(1) == b"\x81\x02hi" and server.data.get(1) == b"\x81\x82mask"
        ok = seen == [b"websocket"] and tunnel and server.error is None
        how = "opt-in local setting" if isinstance(server, H2Probe) else "on by default"
        results[server.name] = (
            f"{'yes' if ok else 'NO'}: SETTINGS 0x8={advertised} ({how}), "
            f":protocol={seen[0] if seen else None!r}, 2-way DATA {'ok' if tunnel else 'failed'}"
        )
    return ApiRow("extended CONNECT (RFC 8441)", results)


def api_push() -> ApiRow:
    server = H2Probe()
    _open(server, RawClient())
    promised = [(b":method", b"GET"), *REQUEST_HEADERS[1:3], (b":path", b"/style.css")]
    server.conn.push_stream(1, 2, promised)
    server.conn.send_headers(2, [(b":status", b"200")], end_stream=True)
    server.out += server.conn.data_to_send()
    wire = parse_wire(bytes(server.out))
    ours = BasculeProbe()
    _open(ours, RawClient())
    pushed = ours.conn.push(1, b"/style.css", b"127.0.0.1:8000", b"http", [])
    if pushed is not None:
        ours.conn.send_head(pushed, 200, [], end=True)
    ours.out += ours.conn.data_to_send()
    our_wire = parse_wire(bytes(ours.out))
    zttp_api = sorted(
        name
        for cls in (zttp.H2Connection, zttp.Stream)
        for name in dir(cls)
        if "push" in name.lower() or "promise" in name.lower()
    )
    return ApiRow(
        "server push (PUSH_PROMISE)",
        {
            "h2": f"{'yes' if wire.counts['PUSH_PROMISE'] else 'NO'}: push_stream()",
            "zttp": f"no: no push method on H2Connection or Stream {zttp_api}",
            "bascule": f"{'yes' if our_wire.counts['PUSH_PROMISE'] else 'NO'}: push()",
        },
    )


def _final_blocks(server: AnyProbe) -> list[dict[bytes, bytes]]:
    server.out += server.conn.data_to_send()
    wire = parse_wire(bytes(server.out))
    return [dict(fields) for stream_id, _, fields in wire.blocks if stream_id == 1]


def api_trailers_and_hints() -> list[ApiRow]:
    trailers: dict[str, str] = {}
    hints: dict[str, str] = {}
    link = (b"link", b"</style.css>; rel=preload; as=style")
    for server in probe_servers():
        _open(server, RawClient())
        if isinstance(server, H2Probe):
            conn = server.conn
            conn.send_headers(1, [(b":status", b"103"), link])
            conn.send_headers(1, [(b":status", b"200"), (b"trailer", b"x-checksum")])
            conn.send_data(1, BODY)
            conn.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
            how = ("send_headers(end_stream=True)", "send_headers(:status 103)")
        elif isinstance(server, BasculeProbe):
            ours = server.conn
            ours.send_head(1, 103, [link])
            ours.send_head(1, 200, [(b"trailer", b"x-checksum")])
            ours.send_body(1, BODY)
            ours.send_trailers(1, [(b"x-checksum", b"abc")])
            how = ("send_trailers()", "send_head(103)")
        else:
            stream = server.conn.stream(1)
            stream.send_informational(103, [link])
            stream.send_response(200, [(b"trailer", b"x-checksum")])
            stream.send_data(BODY)
            stream.end_message([(b"x-checksum", b"abc")])
            how = ("end_message(trailers)", "send_informational(103)")
        blocks = _final_blocks(server)
        has_hint = len(blocks) == 3 and blocks[0].get(b":status") == b"103"
        has_trailer = bool(blocks) and blocks[-1] == {b"x-checksum": b"abc"}
        trailers[server.name] = f"{'yes' if has_trailer else 'NO'}: {how[0]}"
        hints[server.name] = f"{'yes' if has_hint else 'NO'}: {how[1]}"
    return [ApiRow("response trailers", trailers), ApiRow("103 Early Hints (1xx)", hints)]


def api_goaway() -> ApiRow:
    results = {}
    for server in probe_servers():
        client = RawClient()
        server.feed(client.preface() + client.headers(1) + client.headers(3))
        if isinstance(server, H2Probe):
            server.conn.close_connection(error_code=0, last_stream_id=3)
            try:  # h2 moves the whole connection to CLOSED on GOAWAY
                server.conn.send_headers(3, H2_RESPONSE_HEADERS)
                server.conn.send_data(3, BODY, end_stream=True)
            except h2.exceptions.ProtocolError:
                pass
            how = "close_connection(code, last_stream_id)"
        elif isinstance(server, BasculeProbe):
            server.conn.goaway(0)
            server.conn.send_head(3, 200, RESPONSE_FIELDS, checked=True)
            server.conn.send_body(3, BODY, end=True)
            how = "goaway() (last stream id: the last processed)"
        else:
            server.conn.close(0, 3)
            stream = server.conn.stream(3)
            stream.send_response(200, RESPONSE_FIELDS)
            stream.send_data(BODY)
            stream.end_message()
            how = "close(code, last_stream_id)"
        server.out += server.conn.data_to_send()
        wire = parse_wire(bytes(server.out))
        drained = wire.data.get(3) == BODY
        ok = wire.goaway == (3, 0)
        results[server.name] = (
            f"{'yes' if ok else 'NO'}: {how}; in-flight stream finished after it: "
            f"{'yes' if drained else 'no'}"
        )
    return ApiRow("GOAWAY with last stream id", results)


def api_flow_control() -> ApiRow:
    """128 KiB on one stream, the app reads nothing: does the engine credit anyway?"""
    results = {}
    for server in probe_servers(ack_data=False):
        client = RawClient()
        chunk = client.preface() + client.headers(1, b"POST", end_stream=False)
        sent = 0
        for _ in range(8):
            server.feed(chunk + frame(FRAME_DATA, 0, 1, b"d" * 16384))
            chunk = b""
            sent += 16384
            if server.error is not None:
                break
        wire = parse_wire(bytes(server.out))
        credits = wire.counts["WINDOW_UPDATE"]
        if isinstance(server, H2Probe):
            results[server.name] = (
                f"yes: {credits} WINDOW_UPDATE until acknowledge_received_data(); "
                "window sizes via local_settings/increment_flow_control_window"
            )
        elif isinstance(server, BasculeProbe):
            results[server.name] = (
                f"yes: {credits} WINDOW_UPDATE (the initial ones) until consumed(); "
                "window sizes from Http2Limits"
            )
        else:
            has_consume = hasattr(zttp.H2Connection, "consume_data")
            results[server.name] = (
                f"no: {credits} WINDOW_UPDATEs for {sent // 1024} KiB nobody read "
                f"(credits at 50% while parsing); H2 consume_data: {has_consume}"
            )
    return ApiRow("request-body credit only as the app consumes", results)


def api_settings() -> ApiRow:
    h2_settings = H2Probe(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 250})
    configured = parse_wire(bytes(h2_settings.out)).settings
    advertised = parse_wire(bytes(ZttpProbe().out)).settings
    ours = H2Connection(Http2Limits(max_concurrent_streams=250))
    ours.initiate()
    our_settings = parse_wire(ours.data_to_send()).settings
    names = {1: "table", 3: "streams", 4: "window", 5: "frame", 6: "hdr-list", 8: "connect"}
    shown = ", ".join(f"{names.get(k, k)}={v}" for k, v in sorted(advertised.items()))
    return ApiRow(
        "configurable local SETTINGS / limits",
        {
            "h2": f"yes: local_settings/update_settings (streams={configured.get(3)} set)",
            "zttp": f"no Python API; fixed: {shown}",
            "bascule": f"yes: Http2Limits / --h2-* (streams={our_settings.get(3)} set)",
        },
    )


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=20, help="batches per connection (20)")
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (100)")
    parser.add_argument("--connections", type=int, default=5, help="connections per run (5)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs, best is kept (5)")
    parser.add_argument("--flood", type=int, default=10_000, help="frames per flood (10000)")
    parser.add_argument("--quick", action="store_true", help="2 batches, 1 connection, 2 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.connections, args.runs = 2, 1, 2
    if args.batches * args.streams > 4000:
        parser.error(
            "zttp 0.0.35 ends a connection after 4096 streams: keep batches*streams <= 4000"
        )

    versions = f"h2 {metadata.version('h2')}, zttp {metadata.version('zttp')}"
    per_run = args.batches * args.streams * args.connections
    print(f"## HTTP/2 server engines, in-process ({versions})\n")
    print(
        f"{args.connections} connection(s) x {args.batches} batches x {args.streams} concurrent "
        f"streams = {per_run} requests per run; best of {args.runs} runs.\n"
    )
    throughput = run_throughput(args)
    print_table(
        [
            "workload",
            "h2 req/s",
            "zttp req/s",
            "bascule req/s",
            "zttp / h2",
            "bascule / h2",
            "bascule / zttp",
        ],
        (
            [
                row.workload,
                f"{row.rates['h2']:,.0f}",
                f"{row.rates['zttp']:,.0f}",
                f"{row.rates['bascule']:,.0f}",
                f"{row.rates['zttp'] / row.rates['h2']:.1f}x",
                f"{row.rates['bascule'] / row.rates['h2']:.1f}x",
                f"{row.rates['bascule'] / row.rates['zttp']:.2f}x",
            ]
            for row in throughput
        ),
    )
    for row in throughput:
        for engine in ENGINES:
            print(f"- {row.workload}, {engine}: {row.notes[engine]}")
    print()

    probes = [
        *probe_rapid_reset(args.flood),
        *probe_continuation_flood(args.flood),
        *probe_big_headers(),
        *probe_control_floods(args.flood),
        *probe_flow_control(),
        *probe_long_connection(5000),
    ]
    print_table(
        ["probe", "engine", "outcome", "app-visible", "server wrote", "ms", "memory"],
        (
            [p.probe, p.engine, p.outcome, p.requests, p.wire, f"{p.ms:.1f}", p.memory or "-"]
            for p in probes
        ),
    )
    api = [
        api_extended_connect(),
        api_push(),
        *api_trailers_and_hints(),
        api_goaway(),
        api_flow_control(),
        api_settings(),
    ]
    print_table(
        ["feature", "h2", "zttp", "bascule"],
        ([a.feature, a.results["h2"], a.results["zttp"], a.results["bascule"]] for a in api),
    )


if __name__ == "__main__":
    main()
