"""HTTP/2 driver: one connection, many streams, each an ordinary ASGI RequestCycle.

``H2Driver`` takes over a transport from ``HttpDriver`` once the connection is
known to be HTTP/2 (ALPN ``h2``, or the prior-knowledge preface).  Each stream
gets an ``H2Stream``, which offers a ``RequestCycle`` the same surface an
HTTP/1.1 connection does, so the app cannot tell the protocols apart except
by ``http_version``.  Nothing here parses or frames: that is
``bascule.proto.http2``.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, cast

from bascule.aio.app import RequestCycle
from bascule.aio.batch import WriteBatch
from bascule.asgi.http import Push
from bascule.asgi.scope import ConnInfo, http_scope, websocket_scope
from bascule.logs import TRACE, error_log, log_rejected
from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import (
    BodyChunk,
    BodyEnd,
    InformationalResponse,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.headers import NO_DEFAULT_HEADERS, DefaultHeaders, length_value
from bascule.proto.http2.connection import (
    ConnectionEnded,
    H2Connection,
    StreamRejected,
    StreamReset,
    response_fields,
)
from bascule.proto.ws.handshake import HandshakeError, accept_fields, validate_h2

if TYPE_CHECKING:
    from bascule.aio.state import ServerState
    from bascule.aio.websocket import WebSocketSession

_CANCEL: Final = 0x8  # RST_STREAM CANCEL
#: A stream whose app has this much unread body is waiting on the app, not the client.
_BODY_STALL_FLOOR: Final = 1

#: Queued WebSocket bytes on a stream (waiting for window) before the session's send() waits.
_WS_PENDING_LIMIT: Final = 64 * 1024

#: What every HTTP/2 stream's scope advertises.
H2_EXTENSIONS: Final[dict[str, dict[str, Any]]] = {
    "http.response.trailers": {},
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}
_INTERNAL_ERROR: Final = 0x2


class H2Stream:
    """One stream, seen by a RequestCycle as its connection (``driver``) and protocol (``conn``)."""

    __slots__ = (
        "_drain",
        "blocked_since",
        "continue_pending",
        "cycle",
        "driver",
        "ended",
        "held_head",
        "keep_alive",
        "last_data",
        "loop",
        "remaining",
        "server",
        "stream_id",
        "task",
    )

    def __init__(self, driver: H2Driver, stream_id: int) -> None:
        self.driver = driver
        self.loop = driver.loop
        self.server = driver.server
        self.stream_id = stream_id
        self.cycle: RequestCycle | None = None
        self.task: asyncio.Task[None] | None = None
        self.held_head: ResponseHead | None = None
        self.continue_pending = False
        self.keep_alive = True
        self.ended = False
        self._drain: asyncio.Future[None] | None = None
        self.blocked_since = self.last_data = driver.server.now
        #: Body bytes still due by the response's Content-Length (None: not declared).
        self.remaining: int | None = None

    # the "conn" side -------------------------------------------------------------

    @property
    def conn(self) -> H2Stream:
        return self

    def send(self, event: Any, defaults: DefaultHeaders = NO_DEFAULT_HEADERS) -> bytes:
        """Hand ``event`` to HTTP/2 and return the frames to write now."""
        h2c = self.driver.h2
        etype = type(event)
        if etype is ResponseHead:
            if self.held_head is not None:
                raise LocalProtocolError("response head sent twice")
            # Held until the first body message: HPACK state is ordered, so the
            # head is encoded only when it can be written at once.
            start = cast(ResponseHead, event)  # typed: its fields are read natively
            headers = response_fields(start.headers)  # checked now, like HTTP/1.1's head
            count = len(headers)
            for pair in defaults.pairs:  # ours, unless the app set the same name
                name = pair[0]
                index = 0
                while index < count and headers[index][0] != name:
                    index += 1
                if index == count:
                    headers.append(pair)
            # Checked before the head is held: a bad Content-Length leaves no head behind,
            # and the 500 that follows is the stream's first.
            remaining = self._declared_length(start.status, headers)
            self.held_head = ResponseHead(self.stream_id, start.status, headers)
            self.remaining = remaining
            return b""
        if etype is InformationalResponse:
            informational = cast(InformationalResponse, event)
            h2c.send_head(self.stream_id, informational.status, informational.headers)
            return h2c.data_to_send()
        head = self.held_head
        if self.remaining is not None:
            self._count(event, etype)
        if etype is BodyChunk:
            data = cast(BodyChunk, event).data
            if head is not None:
                h2c.send_head(self.stream_id, head.status, head.headers, checked=True)
                self.held_head = None
            if data:
                h2c.send_body(self.stream_id, data)
            return h2c.data_to_send()
        if etype is BodyEnd:
            end = cast(BodyEnd, event)
            trailers = end.trailers
            data = end.data
            if head is not None:
                h2c.send_head(
                    self.stream_id,
                    head.status,
                    head.headers,
                    end=not trailers and not data,
                    checked=True,
                )
                self.held_head = None
            if data:
                h2c.send_body(self.stream_id, data, end=not trailers)
            if trailers:
                h2c.send_trailers(self.stream_id, trailers)
            elif head is None and not data:
                h2c.send_body(self.stream_id, b"", end=True)
            self.ended = True
            return h2c.data_to_send()
        raise LocalProtocolError(f"cannot send {etype.__name__} on an HTTP/2 stream")

    def _declared_length(self, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
        """The Content-Length the body must match (RFC 9113 §8.1.1), or None."""
        head_request = self.cycle is not None and self.cycle.scope["method"] == "HEAD"
        if status in (204, 304) or head_request:
            return None
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    raise LocalProtocolError(f"invalid Content-Length {value[:40]!r}")
                return length_value(value)
        return None

    def _count(self, event: Any, etype: type) -> None:
        """Check the body against the declared Content-Length before anything is sent."""
        assert self.remaining is not None
        if etype is BodyChunk or etype is BodyEnd:
            self.remaining -= len(event.data)
            if self.remaining < 0:
                raise LocalProtocolError(
                    f"response body longer than its Content-Length (by {-self.remaining} bytes)"
                )
            if etype is BodyEnd and self.remaining:
                missing = self.remaining
                raise LocalProtocolError(
                    f"response body shorter than its Content-Length ({missing} bytes missing)"
                )

    def send_continue(self) -> bytes:
        return b""  # HTTP/2 clients do not wait for 100 Continue here

    @property
    def holds_head(self) -> bool:
        """A response head is held (not encoded, not written): a 500 can still replace it."""
        return self.held_head is not None

    def retract_response(self) -> None:
        self.held_head = None

    def send_failed(self) -> None:
        self.held_head = None
        self.driver.h2.reset(self.stream_id, _INTERNAL_ERROR)

    # the "driver" side ---------------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        return self.driver.transport

    @property
    def write_paused(self) -> bool:
        return self.driver.write_paused or self.driver.h2.pending(self.stream_id) > 0

    def write(self, data: bytes) -> None:
        self.driver.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.driver.write(part)

    def sendfile_socket(self) -> int | None:
        """HTTP/2 frames every body byte: no sendfile."""
        return None

    def file_framing(self, size: int) -> tuple[bytes, bytes] | None:
        return None

    async def drain(self) -> None:
        self.blocked_since = self.server.now
        while self.write_paused and not self.driver.transport.is_closing():
            if self.cycle is not None and self.cycle.disconnected:
                return
            waiter = self._drain = self.loop.create_future()
            try:
                await waiter
            finally:
                self._drain = None

    def wake(self) -> None:
        waiter = self._drain
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_for_body(self) -> None:
        """Nothing to do: the stream's receive window bounds the unread body."""

    def body_consumed(self, size: int) -> None:
        self.driver.h2.consumed(self.stream_id, size)
        self.driver.flush()

    def response_complete(self, cycle: RequestCycle) -> None:
        self.driver.log_access(cycle)

    def cycle_finished(self, cycle: RequestCycle) -> None:
        self.driver.stream_finished(self)

    def abort(self) -> None:
        self.held_head = None
        self.driver.h2.reset(self.stream_id, _INTERNAL_ERROR)
        self.driver.flush()

    def push(self, push: Push) -> None:
        """Promise ``push.path`` and serve it on a new stream (if the client allows push)."""
        self.driver.push(self, push)


class H2WebSocket:
    """Carries one RFC 8441 WebSocket on an HTTP/2 stream.

    A ``WebSocketSession`` sees it as both its driver and its transport:
    before the app accepts, ``write`` sends connection bytes (the HTTP
    answer the session built with ``conn``); after, the WebSocket frames go
    out as DATA on the stream, within its flow-control window, and
    ``pause_reading`` holds back the window credit for what the app has not
    read.
    """

    def __init__(self, driver: H2Driver, stream: H2Stream) -> None:
        self.h2driver = driver
        self.stream = stream
        self.stream_id = stream.stream_id
        self.server: ServerState = driver.server
        self.loop: asyncio.AbstractEventLoop = driver.loop
        self.trace: bool = driver.trace
        self.client_label: str = driver.client_label
        self.conn = stream  # HTTP answers before accept (403, 500, denial) go through it
        self.upgrading: object = None
        self.session: WebSocketSession | None = None
        self.accepted = False
        self.closing = False
        self.reading_paused = False
        self.held_credit = 0

    # the "driver" side --------------------------------------------------------------

    @property
    def transport(self) -> H2WebSocket:
        return self

    def accept_websocket(
        self,
        session: WebSocketSession,
        subprotocol: str | None,
        extension_header: str | None,
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[int, bytes]:
        fields = accept_fields(subprotocol, extension_header, headers)
        h2c = self.h2driver.h2
        h2c.send_head(self.stream_id, 200, response_fields(fields), checked=True)
        self.accepted = True
        self.h2driver.flush()
        return 200, b""

    def replace_with(self, session: WebSocketSession) -> None:
        """Nothing to hand over: the connection stays the HTTP/2 driver's."""

    # the "transport" side -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        driver = self.h2driver
        if not self.accepted:
            driver.write(data)  # connection bytes of an HTTP answer
            return
        if self.closing or not data:
            return
        driver.h2.send_body(self.stream_id, data)
        driver.flush()
        session = self.session
        if session is not None and driver.h2.pending(self.stream_id) > _WS_PENDING_LIMIT:
            session.pause_writing()

    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closing or self.h2driver.transport.is_closing()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.accepted:
            self.h2driver.h2.send_body(self.stream_id, b"", end=True)
            self.h2driver.flush()
        self.h2driver.ws_finished(self)

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            self.h2driver.h2.reset(self.stream_id, _CANCEL)
            self.h2driver.flush()
            self.h2driver.ws_finished(self)

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self.held_credit:
            self.release_credit()
            self.h2driver.flush()

    def release_credit(self) -> None:
        """Give back the window held while reading was paused (once the stream ends too:
        for a stream that is gone it still credits the connection)."""
        if self.held_credit:
            self.h2driver.h2.consumed(self.stream_id, self.held_credit)
            self.held_credit = 0

    def set_protocol(self, protocol: object) -> None:
        """Data is routed by stream id; nothing to switch."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.h2driver.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        """Bytes queued on this stream for flow-control window (and in the socket's buffer)."""
        return self.h2driver.h2.pending(self.stream_id) + int(
            self.h2driver.transport.get_write_buffer_size()
        )

    # from the connection ------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        session = self.session
        if session is None or session.conn is None:
            self.h2driver.h2.consumed(self.stream_id, len(data))  # not accepted: drop
            return
        session.data_received(data)
        if self.reading_paused:
            self.held_credit += len(data)
        else:
            self.h2driver.h2.consumed(self.stream_id, len(data))

    def window_opened(self) -> None:
        session = self.session
        if (
            session is not None
            and session.write_paused
            and not self.h2driver.h2.pending(self.stream_id)
        ):
            session.resume_writing()


class H2Driver:
    """One HTTP/2 connection."""

    def __init__(
        self,
        server: ServerState,
        transport: asyncio.Transport,
        info: ConnInfo,
        extensions: dict[str, Any],
        client_label: str,
        trace: bool,
    ) -> None:
        self.server = server
        self.loop = server.loop
        self.transport = transport
        self.info = info
        self.extensions = extensions
        self.client_label = client_label
        self.trace = trace
        self.h2 = H2Connection(server.h2_limits)
        self.streams: dict[int, H2Stream] = {}
        #: RFC 8441 WebSockets, by stream id.
        self.websockets: dict[int, H2WebSocket] = {}
        self.write_paused = False
        self.idle_since = server.now
        self.write_paused_since = server.now
        self.closing = False
        self._out = WriteBatch(self.loop, transport)
        self._extensions: dict[str, Any] | None = None
        self._extensions_push = False

    def start(self, data: bytes) -> None:
        """Take over the transport and process the bytes already received."""
        self.h2.initiate()
        self.server.connections.add(self)
        self.transport.set_protocol(cast(asyncio.BaseProtocol, self))
        if data:
            self.data_received(data)
        else:
            self.flush()

    def start_upgraded(
        self, settings: bytes, request: RequestReceived, data: bytes, inside_app: bool = False
    ) -> None:
        """Take over after ``Upgrade: h2c``: ``request`` becomes stream 1, already complete."""
        try:
            self.h2.initiate_upgrade(settings)
        except Exception:  # h2 raises several types for a bad settings header
            error_log.warning("bad HTTP2-Settings from %s: closing", self.client_label)
            self.transport.close()
            return
        self.server.connections.add(self)
        self.transport.set_protocol(cast(asyncio.BaseProtocol, self))
        stream = self._start_stream(request)
        if stream is not None and stream.cycle is not None:
            stream.cycle.feed_end()
            self._run_app(stream, inside_app)
        if data:
            self.data_received(data)
        else:
            self.flush()

    # asyncio.Protocol -------------------------------------------------------------------
    # (Not a subclass of it: mypyc compiles a class without a Python base to a native
    # one, whose attributes are C fields.)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Never called: the H2Driver takes over a transport that is already connected."""

    def eof_received(self) -> bool | None:
        return None  # the transport closes

    def data_received(self, data: bytes) -> None:
        # Apps start once the events at hand are read, as on HTTP/1.1 (transport.py,
        # ``_dispatch``): a task factory may run an app's first step at once.
        ready: list[H2Stream] | None = None
        for event in self.h2.receive_data(data):
            if self.trace:
                error_log.log(TRACE, "%s: %r", self.client_label, event)
            etype = type(event)
            if etype is BodyChunk and event.stream_id in self.websockets:  # type: ignore[union-attr]
                self.websockets[event.stream_id].feed(event.data)  # type: ignore[union-attr]
            elif etype is BodyChunk:
                stream = self.streams.get(event.stream_id)  # type: ignore[union-attr]
                if stream is not None and stream.cycle is not None:
                    stream.last_data = self.server.now
                    stream.cycle.feed_body(event.data)  # type: ignore[union-attr]
                else:  # nobody will read it: give the window back
                    self.h2.consumed(event.stream_id, len(event.data))  # type: ignore[union-attr]
            elif etype is RequestReceived:
                stream = self._start_stream(event)  # type: ignore[arg-type]
                if stream is not None:
                    if ready is None:
                        ready = [stream]
                    else:
                        ready.append(stream)
            elif etype is BodyEnd and event.stream_id in self.websockets:  # type: ignore[union-attr]
                ws_session = self.websockets[event.stream_id].session  # type: ignore[union-attr]
                if ws_session is not None:
                    ws_session.eof_received()  # the client ended its side of the stream
            elif etype is BodyEnd:
                stream = self.streams.get(event.stream_id)  # type: ignore[union-attr]
                if stream is not None and stream.cycle is not None:
                    stream.cycle.feed_end()
            elif etype is StreamReset:
                self._reset(event.stream_id)  # type: ignore[union-attr]
            elif etype is ConnectionEnded:
                self._ended(event)  # type: ignore[arg-type]
            elif etype is StreamRejected:
                error_log.warning(
                    "bad request from %s (HTTP/2 stream %d): %s (%d)",
                    self.client_label,
                    event.stream_id,  # type: ignore[union-attr]
                    event.reason,  # type: ignore[union-attr]
                    event.status,  # type: ignore[union-attr]
                )
                log_rejected(self.client_label, event.status, 0)  # type: ignore[union-attr]
                if self.server.metrics is not None:
                    self.server.metrics.observe_request("2", event.status, 0.0, 0, 0)  # type: ignore[union-attr]
        if ready is not None:
            for stream in ready:
                if self.streams.get(stream.stream_id) is stream:  # not reset meanwhile
                    self._run_app(stream)
        self.flush()
        for stream in list(self.streams.values()):
            if stream._drain is not None and not stream.write_paused:
                stream.wake()
        for carrier in list(self.websockets.values()):
            carrier.window_opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for stream in list(self.streams.values()):
            if stream.cycle is not None:
                stream.cycle.on_disconnect()
            stream.wake()
        for carrier in list(self.websockets.values()):
            carrier.closing = True
            if carrier.session is not None:
                carrier.session.connection_lost(exc)

    def pause_writing(self) -> None:
        # The client does not read what we write: stop reading it too, so its
        # PINGs and SETTINGS cannot pile acknowledgements into our buffer.
        self.write_paused = True
        self.write_paused_since = self.server.now
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()
        for stream in list(self.streams.values()):
            stream.wake()

    # streams ----------------------------------------------------------------------------------

    def _start_stream(self, request: RequestReceived) -> H2Stream | None:
        """Open the stream of ``request``; the stream whose app ``_run_app`` must start, if any."""
        server = self.server
        stream = H2Stream(self, request.stream_id)
        self.streams[request.stream_id] = stream
        if request.upgrade:
            self._start_websocket(request, stream)
            return None
        scope = http_scope(request, self.info, server.lifespan_state, self.stream_extensions())
        stream.cycle = RequestCycle(stream, scope, perf_counter())
        return stream

    def _run_app(self, stream: H2Stream, inside_app: bool = False) -> None:
        """Start the app of ``stream``, or answer 503 past ``--limit-concurrency``.

        Checked here, as each app starts, so that the streams of one read count those
        started before them (and not those that have already finished).
        """
        cycle = cast(RequestCycle, stream.cycle)
        server = self.server
        if server.over_concurrency(self.client_label, count_connections=False):
            cycle.respond_plain(503, b"Service Unavailable\n")
            self._give_back_window(stream)  # the body that came with it is never read
            del self.streams[stream.stream_id]
            return
        # None when the app finished in its first step (stream_finished has run).
        stream.task = cycle.task = server.start_task(
            cycle.run(server.app), "bascule-http2", inside_app
        )

    def _start_websocket(self, request: RequestReceived, stream: H2Stream) -> None:
        """RFC 8441: a WebSocket on this stream, served by the same session as HTTP/1.1's."""
        server = self.server
        try:
            if not server.ws_enabled:
                raise HandshakeError("WebSocket is disabled (--no-ws)", 501)
            handshake = validate_h2(request)
        except HandshakeError as exc:
            error_log.warning("bad WebSocket request from %s: %s", self.client_label, exc)
            headers = [*exc.headers, (b"content-length", b"0")]
            self.h2.send_head(request.stream_id, exc.status_hint, headers, end=True)
            del self.streams[request.stream_id]
            return
        tls = {"tls": self.extensions["tls"]} if "tls" in self.extensions else None
        scope = websocket_scope(
            request, self.info, server.lifespan_state, handshake.subprotocols, tls
        )
        carrier = H2WebSocket(self, stream)
        from bascule.aio.websocket import WebSocketSession  # noqa: PLC0415 (see transport.py)

        session = WebSocketSession(carrier, handshake, scope)
        carrier.session = session
        self.websockets[request.stream_id] = carrier
        del self.streams[request.stream_id]
        server.start_task(session.run(server.app), "bascule-websocket")

    def ws_finished(self, carrier: H2WebSocket) -> None:
        if carrier.held_credit:
            carrier.release_credit()
            self.flush()
        if self.websockets.get(carrier.stream_id) is carrier:
            del self.websockets[carrier.stream_id]
        if not self.streams and not self.websockets:
            self.idle_since = self.server.now
            if self.closing:
                self._close()

    def push(self, parent: H2Stream, push: Push) -> None:
        cycle = parent.cycle
        if cycle is None or self.closing:
            return
        scope = cycle.scope
        authority = next((v for n, v in scope["headers"] if n == b"host"), b"")
        promised = self.h2.push(
            parent.stream_id,
            push.path.encode("utf-8"),
            authority,
            self.info.scheme.encode("ascii"),
            push.headers,
        )
        if promised is None:
            return  # the client disabled push: nothing to do
        path, _, query = push.path.encode("utf-8").partition(b"?")
        request = RequestReceived(
            promised, "GET", path, query, [(b"host", authority), *push.headers], "2", True, False
        )
        stream = self._start_stream(request)
        if stream is not None and stream.cycle is not None:
            stream.cycle.feed_end()  # a pushed request has no body
            self._run_app(stream, True)  # from the parent's send(), in its task
        self.flush()

    def _cancel(self, stream: H2Stream) -> None:
        self.h2.reset(stream.stream_id, _CANCEL)
        self._reset(stream.stream_id)

    def _reset(self, stream_id: int) -> None:
        carrier = self.websockets.pop(stream_id, None)
        if carrier is not None:
            carrier.closing = True
            carrier.release_credit()
            if carrier.session is not None:
                carrier.session.connection_lost(None)
            return
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        self._give_back_window(stream)
        if stream.cycle is not None:
            stream.cycle.on_disconnect()
        stream.wake()
        task = stream.task
        if task is not None and not task.done():
            task.cancel()  # the client is gone; do not leak the app's work
            self.server.tasks.discard(task)  # a task cancelled before it ran has no finally

    def _ended(self, event: ConnectionEnded) -> None:
        if event.error_code:
            error_log.warning("HTTP/2 connection %s ended: %s", self.client_label, event.reason)
        self.closing = True  # a graceful GOAWAY: the open streams finish first
        if event.error_code or not self.streams:
            self.flush()
            self._close()

    def _give_back_window(self, stream: H2Stream) -> None:
        """Body bytes the app never read still hold connection window: give it back."""
        cycle = stream.cycle
        if cycle is not None and cycle.body_size:
            self.h2.consumed(stream.stream_id, cycle.body_size)
            cycle.body = []
            cycle.body_size = 0

    def stream_finished(self, stream: H2Stream) -> None:
        self._give_back_window(stream)
        self.h2.finish(stream.stream_id)
        self.flush()
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        # The stream and its cycle point at each other (and the task at both): left
        # so, every request would be cyclic garbage that only the collector frees.
        stream.cycle = None
        stream.task = None
        if not self.streams:
            self.idle_since = self.server.now
            if self.closing:
                self.flush()
                self._close()

    def stream_extensions(self) -> dict[str, Any]:
        """The ASGI extensions HTTP/2 streams support (push only if the client allows it).

        Built once per value of the client's SETTINGS_ENABLE_PUSH; ``http_scope``
        copies the outer dict into every scope, so apps cannot change it.
        """
        push = self.h2.push_allowed
        cached = self._extensions
        if cached is None or push != self._extensions_push:
            cached = dict(self.extensions)
            cached.update(H2_EXTENSIONS)
            if push:
                cached["http.response.push"] = {}
            self._extensions = cached
            self._extensions_push = push
        return cached

    # output -------------------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.write(data)

    def write(self, data: bytes) -> None:
        """Queue frames; they go out in one write per loop turn (or at once past 64 KiB)."""
        self._out.write(data)

    def _write_now(self) -> None:
        self._out.flush()

    def _close(self) -> None:
        """Write what is queued, then close (the transport flushes its own buffer)."""
        self._write_now()
        self.transport.close()

    def log_access(self, cycle: RequestCycle) -> None:
        if self.info.proxies is None:
            cycle.log_access(self.client_label)
        else:  # the client a trusted proxy named (X-Forwarded-For / Forwarded)
            client = cycle.scope["client"]
            cycle.log_access(f"{client[0]}:{client[1]}" if client else "-")

    # what the server asks of every connection ------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.streams or self.websockets)

    def check_timeouts(self, now: float) -> None:
        timeouts = self.server.timeouts
        if self.write_paused and now - self.write_paused_since > timeouts.write:
            error_log.warning(
                "HTTP/2 client %s read nothing for %.3gs: closing",
                self.client_label,
                timeouts.write,
            )
            for stream_id in list(self.streams):
                self._reset(stream_id)
            self.transport.abort()  # close() would wait for the buffer nobody reads
            return
        for stream in list(self.streams.values()):
            cycle = stream.cycle
            if cycle is None:
                continue
            if stream._drain is not None and now - stream.blocked_since > timeouts.write:
                # The client keeps this stream's window (or the socket) shut.
                error_log.warning(
                    "HTTP/2 stream %d of %s blocked for %.3gs: reset",
                    stream.stream_id,
                    self.client_label,
                    timeouts.write,
                )
                self._cancel(stream)
            elif (
                not cycle.body_done
                and cycle.body_size < _BODY_STALL_FLOOR
                and now - stream.last_data > timeouts.request_body
            ):
                error_log.warning(
                    "HTTP/2 stream %d of %s: request body stalled for %.3gs: reset",
                    stream.stream_id,
                    self.client_label,
                    timeouts.request_body,
                )
                self._cancel(stream)
        if self.streams:
            self.flush()
        if not self.streams and now - self.idle_since > timeouts.keep_alive:
            self.h2.goaway()
            self.flush()
            self._close()

    def shutdown(self) -> None:
        """GOAWAY with the last stream id; open streams may finish; WebSockets get 1001."""
        self.closing = True
        self.h2.goaway()
        for carrier in list(self.websockets.values()):
            if carrier.session is not None:
                carrier.session.shutdown()
        self.flush()
        if not self.streams and not self.websockets:
            self._close()

    def abort(self) -> None:
        self.transport.abort()
