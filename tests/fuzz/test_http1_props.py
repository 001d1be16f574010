"""HTTP/1.1 request parsing (H1Connection), property-based.

Requests are generated field by field (method, target, headers, Content-Length
or chunked bodies with chunk extensions and trailers, pipelined sequences); the
events the parser hands out must be the ones the generator meant, however the
bytes are cut.  Garbage and mutated requests may only ever raise the
protocol's own RemoteProtocolError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.proto import NEED_DATA, PAUSED, H1Connection
from bascule.proto.errors import RemoteProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, Event, RequestReceived, ResponseHead
from bascule.proto.http1.writer import WRITERS, BodyWriter, Framing
from tests.fuzz.strategies import FUZZ, field_values, tokens
from tests.support.h1 import (
    Described,
    ResponseParser,
    converse,
    describe,
    feed,
    feed_split,
    respond,
)

Header = tuple[bytes, bytes]

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "REPORT"]
# Names whose meaning changes the framing or the cycle; generated explicitly, never at random.
SPECIAL = {
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"upgrade",
    b"expect",
    b"te",
    b"http2-settings",
    b"keep-alive",
    b"proxy-connection",
}
PCHARS = "abcxyzABCXYZ0189-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class Chunk:
    data: bytes
    size_text: bytes  # the hex size as sent (case, leading zeros)
    extension: bytes  # b"" or b";name=value..."


@dataclass(frozen=True)
class Req:
    """One generated request and what the parser must make of it."""

    method: str
    path: bytes
    query: bytes | None
    fragment: bytes | None
    headers: tuple[Header, ...]  # as sent, Host included, framing not
    framing: str  # "none", "content-length", "chunked"
    body: bytes
    chunks: tuple[Chunk, ...]
    last_extension: bytes
    trailers: tuple[Header, ...]

    def encode(self) -> bytes:
        target = self.path
        if self.query is not None:
            target += b"?" + self.query
        if self.fragment is not None:
            target += b"#" + self.fragment
        lines = [b"%s %s HTTP/1.1" % (self.method.encode(), target)]
        lines += [b"%s: %s" % pair for pair in self.headers]
        if self.framing == "content-length":
            lines.append(b"Content-Length: %d" % len(self.body))
        elif self.framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked")
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if self.framing != "chunked":
            return head + self.body
        body = b"".join(b"%s%s\r\n%s\r\n" % (c.size_text, c.extension, c.data) for c in self.chunks)
        trailers = b"".join(b"%s: %s\r\n" % pair for pair in self.trailers)
        return head + body + b"0" + self.last_extension + b"\r\n" + trailers + b"\r\n"

    def expected(self) -> list[Described]:
        headers = [(name.lower(), value) for name, value in self.headers]
        if self.framing == "content-length":
            headers.append((b"content-length", b"%d" % len(self.body)))
        elif self.framing == "chunked":
            headers.append((b"transfer-encoding", b"chunked"))
        out: list[Described] = [
            (
                "request",
                self.method,
                self.path,
                self.query or b"",
                headers,
                "1.1",
                True,
                False,
            )
        ]
        if self.body:
            out.append(("body", self.body))
        out.append(("end",))
        return out


header_names = tokens.map(str.encode).filter(lambda n: n.lower() not in SPECIAL)
headers = st.lists(st.tuples(header_names, field_values), max_size=6)
segments = st.text(alphabet=PCHARS, max_size=8).map(str.encode) | st.just(b"%2F%41")
paths = st.lists(segments, min_size=1, max_size=4).map(lambda s: b"/" + b"/".join(s))
queries = st.none() | st.text(alphabet=PCHARS + "/?", max_size=20).map(str.encode)
fragments = st.none() | st.text(alphabet=PCHARS + "/?", max_size=8).map(str.encode)
chunk_exts = st.lists(
    st.tuples(
        tokens.map(str.encode),
        st.none() | tokens.map(str.encode) | st.just(b'"quoted ; , value"'),
    ),
    max_size=2,
).map(lambda exts: b"".join(b";" + n + (b"" if v is None else b"=" + v) for n, v in exts))


@st.composite
def chunk_list(draw: st.DrawFn, body: bytes) -> tuple[Chunk, ...]:
    chunks = []
    pos = 0
    while pos < len(body):
        size = draw(st.integers(1, max(1, len(body) - pos)))
        data = body[pos : pos + size]
        pos += size
        hexsize = b"%x" % len(data)
        if draw(st.booleans()):
            hexsize = hexsize.upper()
        hexsize = b"0" * draw(st.integers(0, 3)) + hexsize
        chunks.append(Chunk(data, hexsize, draw(chunk_exts)))
    return tuple(chunks)


@st.composite
def requests(draw: st.DrawFn) -> Req:
    method = draw(st.sampled_from(METHODS))
    fields = draw(headers)
    host = (draw(st.sampled_from([b"Host", b"host", b"HOST"])), b"example.com")
    fields.insert(draw(st.integers(0, len(fields))), host)
    framing = draw(st.sampled_from(["none", "content-length", "chunked"]))
    body = b"" if framing == "none" else draw(st.binary(max_size=200))
    chunks: tuple[Chunk, ...] = ()
    last_ext = b""
    trailers: tuple[Header, ...] = ()
    if framing == "chunked":
        chunks = draw(chunk_list(body))
        last_ext = draw(chunk_exts)
        trailers = tuple(draw(st.lists(st.tuples(header_names, field_values), max_size=2)))
    return Req(
        method,
        draw(paths),
        draw(queries),
        draw(fragments),
        tuple(fields),
        framing,
        body,
        chunks,
        last_ext,
        trailers,
    )


def random_cuts(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


# generated requests ----------------------------------------------------------------


@FUZZ
@given(requests())
def test_request_parses_to_what_was_sent_cut_at_every_byte(req: Req) -> None:
    data = req.encode()
    expected = req.expected()
    for label, events in feed_split(data):
        assert describe(events) == expected, label


@FUZZ
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=8))
def test_pipelined_requests_cut_anywhere(reqs: list[Req], cuts: list[int]) -> None:
    data = b"".join(r.encode() for r in reqs)
    expected = [item for r in reqs for item in r.expected()]
    events, written = converse(random_cuts(data, cuts))
    assert describe(events) == expected
    # One whole response per request, in order.
    responses = ResponseParser().feed(written)
    assert len(responses) == len(reqs)
    assert all(r.complete and r.status == 200 for r in responses)
    whole, _ = converse([data])
    assert describe(whole) == expected


# chunked bodies round trip -----------------------------------------------------------


@FUZZ
@given(
    st.binary(max_size=3000),
    st.lists(st.integers(1, 700), min_size=1, max_size=10),
    st.lists(st.integers(0, 10_000), max_size=6),
)
def test_chunked_request_body_round_trip(body: bytes, sizes: list[int], cuts: list[int]) -> None:
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = []
    pos = 0
    i = 0
    while pos < len(body):
        piece = body[pos : pos + sizes[i % len(sizes)]]
        chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        pos += len(piece)
        i += 1
    data = head + b"".join(chunks) + b"0\r\n\r\n"
    events = feed(H1Connection(), random_cuts(data, cuts))
    assert isinstance(events[0], RequestReceived)
    assert isinstance(events[-1], BodyEnd)
    assert all(isinstance(e, BodyChunk) for e in events[1:-1])
    assert b"".join(e.data for e in events if isinstance(e, BodyChunk)) == body


@FUZZ
@given(st.lists(st.binary(max_size=500), max_size=10), st.binary(max_size=300))
def test_chunked_response_writer_round_trip(pieces: list[bytes], last: bytes) -> None:
    """What the chunked writer produces, a client parser reads back byte for byte."""
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    feed(conn, [])
    assert isinstance(conn.next_event(), RequestReceived)
    assert isinstance(conn.next_event(), BodyEnd)
    out = conn.send(ResponseHead(1, 200, [(b"x-a", b"1")]))
    assert b"transfer-encoding: chunked" in out
    for piece in pieces:
        out += conn.send(BodyChunk(1, piece))
    out += conn.send(BodyEnd(1, data=last))
    (response,) = ResponseParser().feed(out)
    assert response.complete
    assert response.body == b"".join(pieces) + last
    chunk_writer, _end_writer = WRITERS[Framing.CHUNKED]
    assert chunk_writer(BodyWriter(0), b"") == b""  # an empty chunk would end the body


# garbage -------------------------------------------------------------------------------

INTERESTING = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b" ",
    b"\t",
    b"\x0b",
    b":",
    b";",
    b",",
    b'"',
    b"\xff",
    b"0",
    b"-",
    b"+",
    b"chunked",
    b"\r\nContent-Length: 3",
    b"\r\nTransfer-Encoding: chunked",
    b"\r\nContent-Length: 0",
    b"\r\n Folded",
    b"\r\nConnection: close",
    b"\r\nUpgrade: websocket\r\nConnection: upgrade",
    b"\r\nExpect: 100-continue",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"ffffffffffffffffff",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    reqs = draw(st.lists(requests(), min_size=1, max_size=2))
    data = bytearray(b"".join(r.encode() for r in reqs))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            piece = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=4))
            if action == "replace":
                data[pos : pos + len(piece)] = piece
            else:
                data[pos:pos] = piece
    return bytes(data)


def serve(pieces: Sequence[bytes], eof: bool = True) -> tuple[list[Described], str | None]:
    """Serve ``pieces`` like the driver; returns the events and how it ended.

    The only exception allowed out of the parser is RemoteProtocolError.
    """
    conn = H1Connection(accept_upgrades=frozenset({b"websocket"}))
    events: list[Event] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if event is PAUSED:
                    respond(conn)
                    if not conn.keep_alive:
                        return describe(events), "closed"
                    conn.start_next_cycle()
                    continue
                assert isinstance(event, RequestReceived | BodyChunk | BodyEnd)
                events.append(event)
                if isinstance(event, RequestReceived) and event.upgrade:
                    return describe(events), "upgrade"
        if eof:
            conn.receive_eof()
    except RemoteProtocolError as exc:
        status = exc.status_hint
    else:
        return describe(events), None
    assert 400 <= status <= 599
    return describe(events), "error"


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 10_000), max_size=5))
def test_random_bytes_only_raise_remote_protocol_error(data: bytes, cuts: list[int]) -> None:
    serve(random_cuts(data, cuts))


@FUZZ
@given(mutated(), st.lists(st.integers(0, 10_000), min_size=1, max_size=5))
def test_mutated_requests_same_outcome_however_cut(data: bytes, cuts: list[int]) -> None:
    """Only RemoteProtocolError, and the same complete requests whole or cut.

    Cut, the parser may hand out the start of a request (head, body chunks)
    before the bytes that break it arrive; whole, it never hands that request
    out.  The complete requests, and the outcome, must be the same.
    """
    whole, whole_end = serve([data])
    cut, cut_end = serve(random_cuts(data, cuts))
    assert cut_end == whole_end
    if whole_end == "error":
        assert cut[: len(whole)] == whole
        assert ("end",) not in cut[len(whole) :], "a request completed only when cut"
    else:
        assert cut == whole


@pytest.mark.parametrize("pieces", [[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[:i]] for i in range(30)])
def test_eof_anywhere_in_a_request(pieces: list[bytes]) -> None:
    events, outcome = serve(pieces)
    if pieces[0].endswith(b"\r\n\r\n"):
        assert outcome is None
        assert len(events) == 2
    else:
        assert outcome == ("error" if pieces[0] else None)


# findings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # two Host
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",  # unsupported version (505)
    ],
    ids=["no-host", "two-hosts", "bad-version"],
)
def test_bad_request_after_declined_upgrade_is_a_protocol_error(second: bytes) -> None:
    data = b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n" + second
    events, outcome = serve([data])
    assert outcome == "error"
    assert [e[0] for e in events] == ["request", "end"]
