"""H1Connection: the server side of one HTTP/1.1 connection, sans I/O.

How to drive it (the asyncio driver in ``bascule.aio.transport`` does exactly
this; tests do it with plain bytes)::

    conn = H1Connection(limits)
    conn.receive_data(data)          # may raise RemoteProtocolError (status_hint)
    while (ev := conn.next_event()) not in (NEED_DATA, PAUSED):
        ...                          # RequestReceived, BodyChunk*, BodyEnd
    out = conn.send(ResponseHead(...), defaults)   # bytes to write
    out += conn.send(BodyChunk(...)) ; out += conn.send(BodyEnd(1))
    if conn.our_state is DONE and conn.their_done:
        if conn.keep_alive: conn.start_next_cycle()
        else: close the transport

``PAUSED`` means the current request is fully handed out and the next one
(pipelined) waits until our response is done and ``start_next_cycle`` runs.
Nothing here reads the clock, logs, or touches a socket.
"""

from collections import deque
from collections.abc import Callable
from typing import Final

import httptools

from bascule.proto.errors import LocalProtocolError, RemoteProtocolError
from bascule.proto.events import (
    BodyChunk,
    BodyEnd,
    Event,
    InformationalResponse,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    NO_DEFAULT_HEADERS,
    TRANSFER_ENCODING,
    DefaultHeaders,
    length_value,
)
from bascule.proto.http1.reader import RequestReader
from bascule.proto.http1.state import DONE, ERROR, IDLE, OUR_TRANSITIONS, SEND_BODY, State
from bascule.proto.http1.writer import (
    KNOWN_NAMES,
    WRITERS,
    BodyWriter,
    Framing,
    check_value,
    check_values,
    lower_name,
    status_line,
)
from bascule.proto.limits import Http1Limits


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: ``next_event`` result: feed more bytes.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: ``next_event`` result: finish the current response first.
PAUSED: Final = _Sentinel("PAUSED")

_NO_BODY_STATUS: Final = frozenset({204, 304})
# Body writers by framing (looked up once per response, not through the Framing enum).
_NO_BODY: Final = WRITERS[Framing.NONE]
_CONTENT_LENGTH: Final = WRITERS[Framing.CONTENT_LENGTH]
_CHUNKED: Final = WRITERS[Framing.CHUNKED]
_CLOSE_DELIMITED: Final = WRITERS[Framing.CLOSE]
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class H1Connection:
    """Server side of an HTTP/1.1 connection."""

    __slots__ = (
        "_body",
        "_chunk_writer",
        "_dribble",
        "_end_writer",
        "_error",
        "_ignore_rest",
        "_limits",
        "_reader",
        "_replaying",
        "continue_pending",
        "keep_alive",
        "method",
        "our_state",
        "request_version",
        "response_status",
        "their_done",
        "trailers_ok",
        "upgrade_data",
    )

    def __init__(
        self, limits: Http1Limits | None = None, accept_upgrades: frozenset[bytes] = frozenset()
    ) -> None:
        self._limits = limits or Http1Limits()
        self._reader = RequestReader(self._limits, accept_upgrades)
        self._dribble = 0
        self._error: RemoteProtocolError | None = None
        self._ignore_rest = False
        #: True while a declined upgrade request is being parsed again (receive_data).
        self._replaying = False
        self._body = BodyWriter(0)
        self._chunk_writer: Callable[[BodyWriter, bytes], bytes] = BodyWriter.nothing
        self._end_writer: Callable[[BodyWriter], bytes] = BodyWriter.end_nothing
        self.our_state: State = IDLE
        #: True once this cycle's BodyEnd was handed out.
        self.their_done = False
        self.keep_alive = True
        self.method = "GET"
        self.request_version = "1.1"
        self.continue_pending = False
        self.response_status = 0
        self.trailers_ok = False
        #: Bytes received after an upgrade request (the new protocol's first bytes).
        self.upgrade_data: bytearray | None = None

    # receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer.

        Raises RemoteProtocolError on bad input, unless complete requests
        parsed before the bad bytes are still queued: then they are handed
        out first, and ``next_event`` raises the error after them.
        """
        if self._ignore_rest:
            upgrade_data = self.upgrade_data
            if upgrade_data is not None:
                upgrade_data += data
                if len(upgrade_data) > self._limits.max_header_size:
                    raise RemoteProtocolError("too much data sent before the protocol switch")
            return
        reader = self._reader
        reader.progress = False
        replay = None
        try:
            reader.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            rest = data[int(exc.args[0]) :]
            if reader.declined_upgrade:
                # An upgrade we do not serve: read the request again as plain
                # HTTP, body included (outside this except block, so that the
                # errors of that parse keep their own context).
                replay = reader.head_without_upgrade() + rest
                reader.new_parser()
            else:
                # The request asked to switch protocols; bytes after it are not
                # HTTP/1.1.  Keep them for the new protocol, if it is accepted.
                self._ignore_rest = True
                self.upgrade_data = bytearray(rest)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, RemoteProtocolError):  # pragma: no cover
                raise  # our callbacks raise nothing else
            self._fail(cause)
        except httptools.HttpParserError as exc:
            if not reader.keep_alive and reader.last_complete:
                # "Connection: close" followed by more bytes: answer the
                # complete request, ignore the rest (RFC 9112 §9.6).
                self._ignore_rest = True
                return
            self._fail(RemoteProtocolError(f"malformed request: {_llhttp_reason(exc)}"))
        if replay is not None:
            if self._replaying:
                # Read again without its upgrade tokens, the request still upgrades: never
                # loop on it (each pass would parse it once more).
                self._fail(RemoteProtocolError("upgrade request that cannot be read as plain HTTP"))
                return
            self._replaying = True
            try:
                self.receive_data(replay)
            finally:
                self._replaying = False
            return
        if reader.in_head and data[-1:] == b"\n" and reader.parser.get_http_version() == "0.0":
            # A request line ended without "HTTP/x.y": an HTTP/0.9 request,
            # whose client sends no header section to wait for.
            self._fail(RemoteProtocolError("request line without an HTTP version (HTTP/0.9)"))
            return
        # The callbacks count header and trailer fields exactly, but httptools
        # buffers a field until it ends.  Reads in which nothing completed
        # (no field, no body bytes, no message) add up here, so a field that
        # never ends is cut at the limit, plus at most the read it began in.
        if reader.progress:
            self._dribble = 0
        else:
            self._dribble += len(data)
            if self._dribble > self._limits.max_header_size:
                self._fail(
                    RemoteProtocolError(
                        "request header or trailer section larger than "
                        f"{self._limits.max_header_size} bytes",
                        431,
                    )
                )
        if not reader.keep_alive and reader.last_complete:
            self._ignore_rest = True

    def _fail(self, error: RemoteProtocolError) -> None:
        self._ignore_rest = True
        if _has_end(self._reader.events):
            self._error = error  # complete requests first; next_event raises it after them
            return
        raise error

    def receive_eof(self) -> None:
        """The peer half-closed.  A request cut in its middle is an error."""
        self._ignore_rest = True
        if not self._reader.last_complete:
            raise RemoteProtocolError("connection closed in the middle of a request")

    def next_event(self) -> Event | _Sentinel:
        """The next event of the current cycle, ``NEED_DATA`` or ``PAUSED``.

        Raises the RemoteProtocolError that ``receive_data`` deferred, once
        the complete requests before it were handed out.
        """
        if self.their_done:
            return PAUSED
        events = self._reader.events
        if not events:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return NEED_DATA
        if self._error is not None and type(events[0]) is RequestReceived and not _has_end(events):
            error, self._error = self._error, None
            raise error  # the request the bad bytes cut short is never handed out
        event = events.popleft()
        if type(event) is BodyEnd:
            self.their_done = True
        elif type(event) is RequestReceived:
            self.method = event.method
            self.request_version = event.http_version
            self.keep_alive = event.keep_alive
            self.continue_pending = event.expect_continue
            self.trailers_ok = event.te_trailers
        return event

    @property
    def pending_requests(self) -> int:
        """Events parsed ahead and waiting (pipelining back-pressure)."""
        return len(self._reader.events)

    @property
    def waiting_for_head(self) -> bool:
        """True while a request head has started to arrive but is not complete."""
        return self._reader.in_head

    @property
    def idle(self) -> bool:
        """True between requests with nothing parsed ahead and nothing half-read."""
        reader = self._reader
        return (
            self.our_state is IDLE
            and not self.their_done
            and not reader.events
            and reader.last_complete
        )

    # sending ---------------------------------------------------------------

    def send(
        self,
        event: ResponseHead | InformationalResponse | BodyChunk | BodyEnd,
        defaults: DefaultHeaders = NO_DEFAULT_HEADERS,
    ) -> bytes:
        """Bytes for ``event``.  Raises LocalProtocolError if it is not allowed now."""
        etype = type(event)
        rule = OUR_TRANSITIONS.get(etype)
        if rule is None or rule[0] is not self.our_state:
            raise LocalProtocolError(f"cannot send {etype.__name__} in state {self.our_state.name}")
        if etype is BodyChunk:
            return self._chunk_writer(self._body, event.data)  # type: ignore[union-attr]
        if etype is BodyEnd:
            data = event.data  # type: ignore[union-attr]
            out = self._chunk_writer(self._body, data) if data else b""
            trailers = event.trailers  # type: ignore[union-attr]
            if trailers and self.trailers_ok and self._chunk_writer is BodyWriter.chunked:
                lines = [b"%b: %b\r\n" % pair for pair in trailers]
                for name, _ in trailers:
                    if name not in KNOWN_NAMES:
                        lower_name(trailers, name)
                check_values(trailers, lines)
                out += b"0\r\n" + b"".join(lines) + b"\r\n"
            else:
                # Trailers the client did not ask for (no "TE: trailers") are dropped.
                out += self._end_writer(self._body)
        elif etype is ResponseHead:
            out = self._head(event, defaults)  # type: ignore[arg-type]
        else:
            out = self._interim(event)  # type: ignore[arg-type]
        self.our_state = rule[1]
        return out

    def file_framing(self, size: int) -> tuple[bytes, bytes] | None:
        """(before, after): the framing of ``size`` body bytes written past ``send``.

        For a file body the caller sends itself (sendfile). None when this response
        cannot take them that way (no body, or more than its Content-Length):
        the caller then sends them through ``send``, which says what is wrong.
        """
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"cannot send body bytes in state {self.our_state.name}")
        writer = self._chunk_writer
        if writer is BodyWriter.content_length:
            if size > self._body.remaining:
                return None
            self._body.remaining -= size
            return b"", b""
        if writer is BodyWriter.chunked:
            return (b"%x\r\n" % size, b"\r\n") if size else (b"", b"")
        if writer is BodyWriter.plain:
            return b"", b""
        return None

    def send_continue(self) -> bytes:
        """``100 Continue`` if the request expects it and nothing was sent yet."""
        if self.continue_pending and self.our_state is IDLE:
            self.continue_pending = False
            return _CONTINUE
        self.continue_pending = False
        return b""

    def retract_response(self) -> None:
        """Forget a response head that was serialised but never written.

        The driver holds the head until the first body message; if the app
        fails before that, it can still answer 500 instead of cutting the
        connection.
        """
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"no response head to retract in state {self.our_state.name}")
        self.our_state = IDLE
        self.response_status = 0

    def send_failed(self) -> None:
        """Mark the connection broken (our side failed mid-response): it must close."""
        self.our_state = ERROR
        self.keep_alive = False
        self._ignore_rest = True

    def _interim(self, event: InformationalResponse) -> bytes:
        if not 100 <= event.status < 200 or event.status == 101:
            raise LocalProtocolError(f"interim response status {event.status} is not 1xx")
        if self.request_version == "1.0":
            return b""  # HTTP/1.0 clients do not understand 1xx (RFC 9110 §15.2)
        lines = [b"%b: %b\r\n" % (name, value) for name, value in event.headers]
        for name, _ in event.headers:
            if name not in KNOWN_NAMES:
                lower_name(event.headers, name)
        check_values(event.headers, lines)
        return status_line(event.status) + b"".join(lines) + b"\r\n"

    def _head(self, event: ResponseHead, defaults: DefaultHeaders) -> bytes:
        status = event.status
        if not 200 <= status <= 999:
            raise LocalProtocolError(f"response status {status} is not a final status (200..999)")
        self.continue_pending = False
        self.response_status = status
        # The whole head in one join: status line, the app's fields, ours, blank line.
        parts = [status_line(status)]
        declared = -1
        length_line = b""
        keep_alive = self.keep_alive
        special = defaults.special
        overridden: set[bytes] | None = None
        known = KNOWN_NAMES
        headers = event.headers
        for name, value in headers:
            lname = known.get(name)
            if lname is None:
                lname = lower_name(headers, name)
            code = special.get(lname)
            if code is not None:
                if code == CONTENT_LENGTH:
                    if status == 204:
                        continue  # RFC 9110 §8.6: never in a 204
                    if not value.isdigit():
                        raise LocalProtocolError(f"Content-Length {value!r} is not a number")
                    declared = length_value(value)
                    if value[:1] != b"0" or len(value) == 1:  # written as given, once, below
                        length_line = b"content-length: " + value + b"\r\n"
                    else:  # leading zeros: normalised
                        length_line = b"content-length: %d\r\n" % declared
                    continue
                if code in (CONNECTION, TRANSFER_ENCODING):
                    check_value(headers, value)
                    if code == CONNECTION and b"close" in value.lower():
                        keep_alive = False
                    continue  # we write our own framing and Connection fields
                if overridden is None:
                    overridden = set()
                overridden.add(lname)
            check_value(headers, value)
            parts.append(name)
            parts.append(b": ")
            parts.append(value)
            parts.append(b"\r\n")
        if status in _NO_BODY_STATUS or self.method == "HEAD":
            writers = _NO_BODY
            parts.append(length_line)
        elif declared >= 0:
            writers = _CONTENT_LENGTH
            parts.append(length_line)
        elif self.request_version == "1.1":
            writers = _CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            writers = _CLOSE_DELIMITED
            keep_alive = False
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        elif self.request_version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        self.keep_alive = keep_alive
        self._body.remaining = declared
        self._chunk_writer, self._end_writer = writers
        parts.append(
            defaults.encoded if overridden is None else defaults.encode_without(overridden)
        )
        parts.append(b"\r\n")
        return b"".join(parts)

    # cycle -----------------------------------------------------------------

    def start_next_cycle(self) -> None:
        """Reset for the next request on a keep-alive connection."""
        if self.our_state is not DONE or not self.their_done or not self.keep_alive:
            raise LocalProtocolError("start_next_cycle() before the cycle ended")
        self.our_state = IDLE
        self.their_done = False
        self.continue_pending = False
        self.response_status = 0


def _has_end(events: "deque[Event]") -> bool:
    return any(type(event) is BodyEnd for event in events)


def _llhttp_reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["NEED_DATA", "PAUSED", "SEND_BODY", "H1Connection"]
