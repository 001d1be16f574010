"""Helpers for driving ``H1Connection`` with plain bytes (no sockets, no event loop).

* ``request()`` builds the bytes of one request (Content-Length, chunked or no body).
* ``ways_to_feed()`` yields the same bytes cut every possible way: whole, split at
  every offset, one byte at a time (STYLE habit 7).
* ``drain()`` collects events until ``NEED_DATA`` or ``PAUSED``; ``describe()`` turns
  events into comparable tuples, merging adjacent body chunks (their boundaries
  depend on how the bytes arrived, their concatenation does not).
* ``converse()`` plays the server: feeds pieces, answers each request as soon as
  it is complete, and starts the next cycle, so pipelined input is served in order.
* ``ResponseParser`` is the peer: it parses what the writer produced with
  httptools' response parser, so a test can check that framing round-trips.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import httptools

from bascule.proto import (
    NEED_DATA,
    PAUSED,
    BodyChunk,
    BodyEnd,
    H1Connection,
    Http1Limits,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.events import Event
from bascule.proto.headers import NO_DEFAULT_HEADERS, DefaultHeaders

Header = tuple[bytes, bytes]
Framing = Literal["content-length", "chunked", "none"]
Described = tuple[object, ...]

HOST: tuple[Header, ...] = ((b"Host", b"example.com"),)


def request(
    method: str = "GET",
    target: str = "/",
    headers: Sequence[Header] = HOST,
    body: bytes = b"",
    *,
    framing: Framing | None = None,
    chunk_sizes: Sequence[int] = (),
    version: str = "1.1",
) -> bytes:
    """The bytes of one request.

    ``framing`` defaults to Content-Length when there is a body and to none
    otherwise; the framing header is added after ``headers``.  A chunked body is
    cut at ``chunk_sizes`` (cycled), or sent as one chunk.
    """
    if framing is None:
        framing = "content-length" if body else "none"
    lines = [f"{method} {target} HTTP/{version}".encode("ascii")]
    lines += [b"%b: %b" % pair for pair in headers]
    if framing == "content-length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if framing == "chunked":
        return head + chunked(body, chunk_sizes)
    return head + body


def chunked(body: bytes, chunk_sizes: Sequence[int] = ()) -> bytes:
    """``body`` in chunked framing, cut at ``chunk_sizes`` (cycled; sizes >= 1)."""
    out = []
    pos = 0
    i = 0
    while pos < len(body):
        size = chunk_sizes[i % len(chunk_sizes)] if chunk_sizes else len(body)
        piece = body[pos : pos + size]
        out.append(b"%x\r\n%b\r\n" % (len(piece), piece))
        pos += size
        i += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def ways_to_feed(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """``data`` whole, split in two at every offset, and one byte at a time."""
    yield "whole", [data]
    for i in range(1, len(data)):
        yield f"split at {i}", [data[:i], data[i:]]
    yield "byte by byte", [data[i : i + 1] for i in range(len(data))]


def drain(conn: H1Connection) -> list[Event]:
    """Events handed out until ``NEED_DATA`` or ``PAUSED`` (not included)."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return events
        assert isinstance(event, RequestReceived | BodyChunk | BodyEnd), event
        events.append(event)


def feed(conn: H1Connection, pieces: Sequence[bytes]) -> list[Event]:
    """Feed ``pieces`` one after the other, draining after each, as the driver does."""
    events: list[Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn)
    return events


def feed_split(data: bytes, limits: Http1Limits | None = None) -> Iterator[tuple[str, list[Event]]]:
    """For each way of cutting ``data``: a fresh connection's events (no response sent)."""
    for label, pieces in ways_to_feed(data):
        yield label, feed(H1Connection(limits), pieces)


def describe(events: Sequence[Event], merge_body: bool = True) -> list[Described]:
    """Comparable tuples for ``events``; adjacent body chunks merged unless told not to."""
    out: list[Described] = []
    for event in events:
        if isinstance(event, RequestReceived):
            out.append(
                (
                    "request",
                    event.method,
                    event.path,
                    event.query,
                    list(event.headers),
                    event.http_version,
                    event.keep_alive,
                    event.expect_continue,
                )
            )
        elif isinstance(event, BodyChunk):
            if merge_body and out and out[-1][0] == "body":
                previous = out[-1][1]
                assert isinstance(previous, bytes)
                out[-1] = ("body", previous + event.data)
            else:
                out.append(("body", event.data))
        else:
            out.append(("end",))
    return out


def respond(
    conn: H1Connection,
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[Header] | None = None,
    defaults: DefaultHeaders = NO_DEFAULT_HEADERS,
) -> bytes:
    """Send a whole response (Content-Length framing unless ``headers`` say otherwise)."""
    if headers is None:
        headers = [(b"content-length", b"%d" % len(body))]
    out = conn.send(ResponseHead(1, status, list(headers)), defaults)
    if body:
        out += conn.send(BodyChunk(1, body))
    return out + conn.send(BodyEnd(1))


def converse(
    pieces: Sequence[bytes], limits: Http1Limits | None = None
) -> tuple[list[Event], bytes]:
    """Serve ``pieces`` on one connection; every request gets an empty 200 once complete.

    Returns the events handed out, in order, and the bytes written.
    """
    conn = H1Connection(limits)
    events: list[Event] = []
    written = b""
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            events += drain(conn)
            if conn.next_event() is not PAUSED:
                break
            written += respond(conn)
            if not conn.keep_alive:
                return events, written
            conn.start_next_cycle()
    return events, written


class ParsedResponse:
    """What ``ResponseParser`` saw of one response."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[Header] = []
        self.body = b""
        self.complete = False


class ResponseParser:
    """httptools' response parser as the client peer of our writer."""

    def __init__(self) -> None:
        self.responses: list[ParsedResponse] = []
        self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> list[ParsedResponse]:
        self._parser.feed_data(data)
        return self.responses

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.responses.append(ParsedResponse())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        self.responses[-1].complete = True
