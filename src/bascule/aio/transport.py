"""HttpDriver: an ``asyncio.Protocol`` that moves bytes between a socket and H1Connection.

It decides nothing about HTTP: the connection parses and serialises, the
``RequestCycle`` runs the app.  The driver feeds bytes in, dispatches events,
writes what comes back, applies back-pressure both ways, and answers protocol
errors with the status the protocol suggests.

With ``--proxy-protocol`` a connection first belongs to a
``ProxyHeaderReader`` that reads the PROXY header (proto/proxy_protocol.py);
the driver takes over once it is whole, with the client and server addresses
the header names.  On a TLS listener the header precedes the TLS handshake:
the listener is then opened without TLS, the reader reads exactly the header's
bytes, and the driver runs the handshake itself with ``loop.start_tls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, cast

from bascule.aio.app import RequestCycle
from bascule.aio.h2 import H2Driver
from bascule.asgi.forwarded import TrustedProxies
from bascule.asgi.http import Push
from bascule.asgi.scope import ConnInfo, http_scope, websocket_scope
from bascule.config import Config
from bascule.errors import ConfigError
from bascule.logs import TRACE, error_log, log_rejected
from bascule.proto.errors import RemoteProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived
from bascule.proto.http1.connection import H1Connection
from bascule.proto.http1.reader import upgrade_token
from bascule.proto.negotiate import from_alpn, sniff
from bascule.proto.proxy_protocol import (
    V1_MIN_LENGTH,
    HeaderReader,
    NeedData,
    ProxyHeader,
    ProxyProtocolError,
)
from bascule.proto.ws.handshake import HandshakeError, is_websocket_upgrade, response_101
from bascule.proto.ws.handshake import validate as validate_handshake

if TYPE_CHECKING:
    from bascule.aio.state import ServerState
    from bascule.aio.websocket import WebSocketSession

#: What every HTTP/1.1 request's scope advertises.
H1_EXTENSIONS: Final[dict[str, Any]] = {
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}
_TRAILERS: Final[dict[str, Any]] = {"http.response.trailers": {}}
#: ``os.sendfile`` exists (not on Windows): file bodies may skip Python.
_HAS_SENDFILE: Final = hasattr(os, "sendfile")

_ERROR_BODIES: Final = {
    400: b"Bad Request\n",
    408: b"Request Timeout\n",
    413: b"Content Too Large\n",
    414: b"URI Too Long\n",
    426: b"Upgrade Required\n",
    501: b"Not Implemented\n",
    431: b"Request Header Fields Too Large\n",
    503: b"Service Unavailable\n",
    505: b"HTTP Version Not Supported\n",
}


def _is_tcp(sockname: Any) -> bool:
    """True for an IP listener's address (unix sockets have a path, or nothing)."""
    return isinstance(sockname, tuple) and sockname[1] is not None


def _peer(transport: asyncio.BaseTransport, key: str) -> Any:
    value = transport.get_extra_info(key)
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    if isinstance(value, str) and value:
        return (value, None)  # unix socket path
    return None


def _label(client: tuple[str, int] | None, default: str = "-") -> str:
    return f"{client[0]}:{client[1]}" if client else default


class ProxySettings:
    """``--proxy-headers``, ``--forwarded-allow-ips`` and ``--proxy-protocol``, read once.

    ``ServerState.proxy`` holds one (``proxy_settings(config)``), or None when
    both options are off: connections then pay a single attribute check.
    """

    __slots__ = ("headers", "protocol", "trusted")

    def __init__(self, headers: bool, protocol: bool, trusted: TrustedProxies) -> None:
        self.headers = headers
        self.protocol = protocol
        self.trusted = trusted


def proxy_settings(config: Config) -> ProxySettings | None:
    """The server's proxy handling from its options; None when it has none."""
    if not config.proxy_headers and not config.proxy_protocol:
        return None
    try:
        trusted = TrustedProxies(config.allowed_proxies())
    except ValueError as exc:
        raise ConfigError(f"--forwarded-allow-ips: {exc}") from None
    return ProxySettings(config.proxy_headers, config.proxy_protocol, trusted)


#: Bytes read at once while looking for a PROXY header on a cleartext
#: connection (the bytes after it go to the HTTP parser).
_PROXY_READ_SIZE: Final = 4096


class ProxyHeaderReader(asyncio.BufferedProtocol):
    """The protocol of a connection until its PROXY header is whole.

    ``exact``: read no byte past the header (TLS follows it and must reach
    the TLS layer untouched), by asking the parser how many bytes are
    certainly part of the header and offering a buffer of that size.
    """

    __slots__ = ("_buffer", "_want", "driver", "exact", "reader")

    def __init__(self, driver: HttpDriver, exact: bool) -> None:
        self.driver = driver
        self.exact = exact
        self.reader = HeaderReader()
        self._buffer = bytearray(_PROXY_READ_SIZE)
        self._want = V1_MIN_LENGTH if exact else _PROXY_READ_SIZE

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)[: self._want]

    def buffer_updated(self, nbytes: int) -> None:
        driver = self.driver
        driver.last_read = driver.server.now
        try:
            result = self.reader.feed(self._buffer[:nbytes])
        except ProxyProtocolError as exc:
            driver.proxy_failed(str(exc))
            return
        if isinstance(result, NeedData):
            if self.exact:
                self._want = min(result.at_least, _PROXY_READ_SIZE)
            return
        header, leftover = result
        driver.proxy_received(header, leftover)

    def eof_received(self) -> bool | None:
        if self.reader.buffered:
            self.driver.proxy_failed("connection closed in the middle of the PROXY header")
        else:
            self.driver.proxy_failed("connection closed before any PROXY header", quiet=True)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.driver.connection_lost(exc)


class _TlsHandoff(asyncio.Protocol):
    """Holds what the TLS layer delivers between its handshake and the driver's taking over."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return True  # the driver decides once it runs

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)


class HttpDriver:
    """One client connection."""

    __slots__ = (
        "_body_paused",
        "_deferred_error",
        "_dispatching",
        "_drain_waiter",
        "_inside_app",
        "_pipeline_paused",
        "_ready",
        "_redispatch",
        "_sniffed",
        "_sniffing",
        "_tls_task",
        "awaiting_proxy",
        "client_label",
        "conn",
        "cycle",
        "extensions",
        "extensions_trailers",
        "head_started",
        "idle_since",
        "info",
        "last_read",
        "loop",
        "proxy",
        "server",
        "trace",
        "transport",
        "upgrading",
        "write_paused",
        "write_paused_since",
    )

    def __init__(self, server: ServerState, scheme: str = "http") -> None:
        self.server = server
        self.loop = server.loop
        self.conn = H1Connection(server.limits, server.accept_upgrades)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.cycle: RequestCycle | None = None
        #: ASGI extensions of this connection's scopes (``tls`` on TLS connections);
        #: trailers only for requests that said ``TE: trailers``.
        self.extensions: dict[str, Any] = H1_EXTENSIONS
        self.extensions_trailers: dict[str, Any] = {**H1_EXTENSIONS, **_TRAILERS}
        #: The WebSocket session deciding on this connection's upgrade request.
        self.upgrading: WebSocketSession | None = None
        self.info: ConnInfo = ConnInfo(None, None, scheme, server.root_path)
        self.client_label = "-"
        self.write_paused = False
        self.trace = False
        self._sniffing = False
        self._sniffed = b""
        self._drain_waiter: asyncio.Future[None] | None = None
        self._body_paused = False
        self._pipeline_paused = False
        self._deferred_error: RemoteProtocolError | None = None
        #: The request whose app starts once ``_dispatch`` has read the events at hand.
        self._ready: RequestCycle | None = None
        self._dispatching = False
        self._redispatch = False
        #: True while ``_dispatch`` runs inside an app's task (from its last send()).
        self._inside_app = False
        self.last_read = server.now
        self.write_paused_since = server.now
        self.idle_since = server.now
        #: server.now when the current request head started to arrive, or None.
        self.head_started: float | None = None
        #: The server's proxy handling, None when --proxy-headers and --proxy-protocol are off.
        self.proxy: ProxySettings | None = None
        #: True until the PROXY header (and the TLS handshake behind it) is done.
        self.awaiting_proxy = False
        self._tls_task: asyncio.Task[None] | None = None

    # asyncio.Protocol ---------------------------------------------------------
    # (Not a subclass of it: mypyc compiles a class without a Python base to a native
    # one, whose attributes are C fields. uvloop and asyncio only call these methods.)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        proxy = self.server.proxy
        if proxy is not None:
            self.proxy = proxy
            if proxy.protocol:
                self._await_proxy_header(transport)
                return
        self._begin(_peer(transport, "peername"), _peer(transport, "sockname"), None)

    def _begin(self, client: Any, server: Any, header: ProxyHeader | None) -> None:
        """Serve the connection from ``client`` to ``server``: the socket's, or a PROXY header's."""
        transport = self.transport
        if client is not None and client[1] is None:
            client = None  # unix socket peers have no address
        state = self.server
        ssl_object = transport.get_extra_info("ssl_object")
        scheme = "http" if ssl_object is None else "https"
        info = self.info = ConnInfo(client, server, scheme, state.root_path)
        self.client_label = _label(client, "unix")
        extensions = H1_EXTENSIONS
        proxy = self.proxy
        if proxy is not None:
            if header is not None:
                info.proxy_protocol = header.as_extension()
                extensions = {**extensions, "proxy_protocol": info.proxy_protocol}
            unix = server is not None and server[1] is None
            if proxy.headers and proxy.trusted.trusts_peer(client[0] if client else None, unix):
                info.proxies = proxy.trusted
        self.trace = error_log.isEnabledFor(TRACE)
        if self.trace:
            error_log.log(TRACE, "%s: connection made", self.client_label)
        self._sniffing = state.http2
        if ssl_object is not None and state.tls is not None:
            extensions = {**extensions, "tls": state.tls.extension(ssl_object)}
            self._sniffing = False
        if extensions is not H1_EXTENSIONS:
            self.extensions = extensions
            self.extensions_trailers = {**extensions, **_TRAILERS}
        if (
            ssl_object is not None
            and state.http2
            and from_alpn(ssl_object.selected_alpn_protocol()) == "h2"
        ):
            self._switch_to_h2(b"")
            return
        self.server.connections.add(self)

    # PROXY protocol ------------------------------------------------------------

    def _await_proxy_header(self, transport: asyncio.BaseTransport) -> None:
        """Hand the transport to a PROXY header reader; the driver waits for it."""
        state = self.server
        self.awaiting_proxy = True
        self.head_started = state.now
        self.client_label = _label(_peer(transport, "peername"), "unix")
        tls_after = state.ssl_context is not None and _is_tcp(_peer(transport, "sockname"))
        transport.set_protocol(ProxyHeaderReader(self, exact=tls_after))
        state.connections.add(self)

    def proxy_failed(self, reason: str, quiet: bool = False) -> None:
        """No valid PROXY header: log why and close, never serving the connection."""
        if quiet:
            error_log.debug("PROXY protocol: %s from %s: closing", reason, self.client_label)
        else:
            error_log.warning("PROXY protocol: %s from %s: closing", reason, self.client_label)
        self.awaiting_proxy = False
        self.transport.close()

    def proxy_received(self, header: ProxyHeader, leftover: bytes) -> None:
        """The PROXY header is whole: serve the connection as coming from its source."""
        transport = self.transport
        if header.uses_real_endpoints:
            client, server = _peer(transport, "peername"), _peer(transport, "sockname")
        else:
            client, server = header.source, header.destination
        if self.trace or error_log.isEnabledFor(TRACE):
            error_log.log(TRACE, "%s: PROXY header %r", self.client_label, header)
        context = self.server.ssl_context
        if context is not None and _is_tcp(_peer(transport, "sockname")):
            transport.pause_reading()  # the ClientHello is for start_tls, not the reader
            self._tls_task = self.loop.create_task(self._start_tls(context, client, server, header))
            return
        self.awaiting_proxy = False
        self.head_started = None
        transport.set_protocol(cast(asyncio.BaseProtocol, self))
        self._begin(client, server, header)
        if leftover and not transport.is_closing():
            self.data_received(leftover)

    async def _start_tls(
        self, context: ssl.SSLContext, client: Any, server: Any, header: ProxyHeader
    ) -> None:
        """TLS handshake behind a PROXY header (the listener itself is cleartext)."""
        raw = self.transport
        handoff = _TlsHandoff()
        try:
            transport = await self.loop.start_tls(
                raw,
                handoff,
                context,
                server_side=True,
                ssl_handshake_timeout=self.server.timeouts.request_header,
            )
        except (OSError, ssl.SSLError, TimeoutError, RuntimeError) as exc:
            reason = exc or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"not complete within {self.server.timeouts.request_header:.3g}s"
            error_log.warning(
                "TLS handshake with %s (PROXY header from %s) failed: %s",
                _label(client, "unix"),
                self.client_label,
                reason,
            )
            self.awaiting_proxy = False
            raw.abort()
            self.connection_lost(None)
            return
        except asyncio.CancelledError:
            raw.abort()
            self.connection_lost(None)
            raise
        finally:
            self._tls_task = None
        if transport is None:  # closed during the handshake
            self.connection_lost(None)
            return
        self.awaiting_proxy = False
        self.head_started = None
        self.transport = transport
        transport.set_protocol(cast(asyncio.BaseProtocol, self))
        self._begin(client, server, header)
        driver: Any = self
        for data in handoff.data:
            if transport.is_closing():
                break
            # An ALPN h2 connection was handed to an H2Driver by _begin.
            driver = transport.get_protocol()
            driver.data_received(data)
        if handoff.eof and driver.eof_received() is not True:
            transport.close()
        if handoff.lost is not None:
            transport.get_protocol().connection_lost(handoff.lost[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.upgrading is not None:
            self.upgrading.connection_lost(exc)
        if self.trace:
            error_log.log(TRACE, "%s: connection lost (%s)", self.client_label, exc or "closed")
        cycle = self.cycle
        if cycle is not None:
            cycle.on_disconnect()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        # The client closed its side.  Most clients only do that when they are
        # gone, so treat it as a disconnect (the app's receive() then returns
        # http.disconnect) rather than keep a half-open socket around.
        with contextlib.suppress(RemoteProtocolError):
            self.conn.receive_eof()
        return None

    def pause_writing(self) -> None:
        # The client is not reading what we write: stop reading its requests
        # too, so pipelined requests cannot make us buffer responses.
        self.write_paused = True
        self.write_paused_since = self.server.now
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        self._update_reading()
        if self.cycle is None and self.upgrading is None and not self.transport.is_closing():
            self._dispatch()  # a pipelined request waited for the buffer to drain

    def data_received(self, data: bytes) -> None:
        self.last_read = self.server.now
        if self._sniffing:
            # First bytes of a cleartext connection: HTTP/2 with prior knowledge?
            data = self._sniffed + data
            kind = sniff(data)
            if kind == "more":
                self._sniffed = data
                return
            self._sniffing = False
            self._sniffed = b""
            if kind == "h2":
                self._switch_to_h2(data)
                return
        conn = self.conn
        try:
            conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if conn.waiting_for_head:
            if self.head_started is None:
                self.head_started = self.server.now
        else:
            self.head_started = None
        self._dispatch()

    # events ------------------------------------------------------------------

    def _dispatch(self, inside_app: bool = False) -> None:
        """Hand the parsed events out; start the app of a request once they are read.

        The app starts after the loop, not inside it: a task factory may run the app's
        first step at once (Python 3.12's ``eager_task_factory``), and the response it
        completes there must find the request's own events (its end, above all) read.
        A response completed inside that step asks for the next pipelined request; it
        is handed out by this loop, not by a nested call per request. ``inside_app``:
        called from an app's task (``response_complete``), not a protocol callback.
        """
        if self._dispatching:
            self._redispatch = True
            return
        self._dispatching = True
        self._inside_app = inside_app
        try:
            while True:
                if not self._read_events():
                    return
                if self._ready is not None:
                    self._start_ready()
                if not self._redispatch:
                    break
                self._redispatch = False
        finally:
            self._dispatching = False
            self._redispatch = False
        conn = self.conn
        if conn.pending_requests > self.server.limits.max_pipelined and not self._pipeline_paused:
            self._pipeline_paused = True
            self._update_reading()

    def _read_events(self) -> bool:
        """Feed the events at hand to the cycle; False after a protocol error."""
        conn = self.conn
        try:
            while True:
                event = conn.next_event()
                if self.trace:
                    error_log.log(TRACE, "%s: %r", self.client_label, event)
                etype = type(event)
                if etype is BodyChunk:
                    if self.cycle is not None:  # None: an upgrade request's body
                        self.cycle.feed_body(event.data)  # type: ignore[union-attr]
                elif etype is RequestReceived:
                    self._start_request(event)  # type: ignore[arg-type]
                elif etype is BodyEnd:
                    if self.cycle is not None:
                        self.cycle.feed_end()
                else:
                    return True
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            if self._ready is not None:  # its app runs, and finds the connection gone
                self._start_ready()
            return False

    def _start_ready(self) -> None:
        cycle = cast(RequestCycle, self._ready)
        self._ready = None
        server = self.server
        cycle.task = server.start_task(cycle.run(server.app), "bascule-http", self._inside_app)

    def _start_request(self, request: RequestReceived) -> None:
        server = self.server
        if server.shutting_down:
            self.conn.keep_alive = False
        if request.upgrade:
            accepted = server.accept_upgrades
            if server.tls is not None:
                accepted = accepted - {b"h2c"}  # h2c is cleartext only (RFC 7540 §3.2)
            token = upgrade_token(request.headers, accepted)
            if token == b"websocket" and is_websocket_upgrade(request):
                self._start_websocket(request)
                return
            if token == b"h2c":
                self._upgrade_to_h2(request)
                return
        scope = http_scope(
            request,
            self.info,
            server.lifespan_state,
            self.extensions_trailers if request.te_trailers else self.extensions,
        )
        cycle = RequestCycle(self, scope, perf_counter())
        self.cycle = cycle
        if server.over_concurrency(self.client_label):
            self._simple_response(cycle, 503, close=False)
            return
        self._ready = cycle  # _dispatch starts its app

    def _start_websocket(self, request: RequestReceived) -> None:
        server = self.server
        try:
            handshake = validate_handshake(request)
        except HandshakeError as exc:
            error_log.warning("bad WebSocket handshake from %s: %s", self.client_label, exc)
            self._close_with_status(exc.status_hint, exc.headers)
            return
        if server.over_concurrency(self.client_label):
            self._close_with_status(503)
            return
        tls = {"tls": self.extensions["tls"]} if "tls" in self.extensions else None
        scope = websocket_scope(
            request, self.info, server.lifespan_state, handshake.subprotocols, tls
        )
        if self.info.proxies is not None:  # the session logs the client its proxy named
            self.client_label = _label(scope["client"])
        # Imported by the first valid upgrade request: the WebSocket layer and the
        # websockets package cost a server that never serves one about 3 MiB
        # (docs/performance.md, "Memory").
        from bascule.aio.websocket import WebSocketSession  # noqa: PLC0415

        session = WebSocketSession(self, handshake, scope)
        self.upgrading = session
        self.transport.pause_reading()  # until the app accepts; then the session reads
        server.start_task(session.run(server.app), "bascule-websocket", self._inside_app)

    def _upgrade_to_h2(self, request: RequestReceived) -> None:
        """``Upgrade: h2c`` (RFC 7540 §3.2): 101, then the request is answered on stream 1."""
        settings = next((v for n, v in request.headers if n == b"http2-settings"), b"")
        self.server.connections.discard(self)
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
        )
        driver = H2Driver(
            self.server, self.transport, self.info, self.extensions, self.client_label, self.trace
        )
        leftover = bytes(self.conn.upgrade_data or b"")
        hop = (b"connection", b"upgrade", b"http2-settings")
        request.headers = [(n, v) for n, v in request.headers if n not in hop]
        request.http_version = "2"
        request.stream_id = 1
        request.upgrade = False
        driver.start_upgraded(settings, request, leftover, self._inside_app)

    def _switch_to_h2(self, data: bytes) -> None:
        """Hand the transport to an HTTP/2 driver."""
        self.server.connections.discard(self)
        driver = H2Driver(
            self.server, self.transport, self.info, self.extensions, self.client_label, self.trace
        )
        driver.start(data)

    def accept_websocket(
        self,
        session: WebSocketSession,
        subprotocol: str | None,
        extension_header: str | None,
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[int, bytes]:
        """Write the 101 and hand the transport to ``session``; (status, bytes already read)."""
        head = response_101(
            session.handshake,
            subprotocol,
            extension_header,
            headers,
            self.server.default_headers.encoded,
        )
        self.transport.write(head)
        leftover = bytes(self.conn.upgrade_data or b"")
        self.replace_with(session)
        self.transport.set_protocol(cast(asyncio.BaseProtocol, session))
        return 101, leftover

    def replace_with(self, session: WebSocketSession) -> None:
        """The session takes this connection over (after the 101)."""
        self.upgrading = None
        self.server.connections.discard(self)
        self.server.connections.add(session)

    @property
    def busy(self) -> bool:
        """True while a request is in flight (shutdown waits for it)."""
        return self.cycle is not None or self.upgrading is not None

    def _simple_response(self, cycle: RequestCycle, status: int, close: bool) -> None:
        if close:
            self.conn.keep_alive = False
        cycle.respond_plain(status, _ERROR_BODIES[status])

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_done and self.conn.their_done:
            # Bad bytes after a complete request whose response is under way:
            # finish that response, then answer the error (response_complete).
            self._deferred_error = exc
            self.transport.pause_reading()
            return
        self._reject(exc)

    def _reject(self, exc: RemoteProtocolError) -> None:
        """Answer a malformed request with the suggested status, then close."""
        status = exc.status_hint if exc.status_hint in _ERROR_BODIES else 400
        error_log.warning("bad request from %s: %s (%d)", self.client_label, exc, status)
        cycle = self.cycle
        if cycle is not None and (cycle.pending_head or cycle.http.status or cycle.sent_bytes):
            self.abort()  # a response is under way: cannot answer, just cut
            return
        self._close_with_status(status)

    def _close_with_status(
        self, status: int, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = _ERROR_BODIES[status]
        extra = b"".join(b"%b: %b\r\n" % pair for pair in headers or ())
        self.conn.send_failed()
        if self.cycle is not None:
            self.cycle.on_disconnect()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%b%b\r\n%b"
            % (status, body.strip(), len(body), extra, self.server.default_headers.encoded, body)
        )
        log_rejected(self.client_label, status, len(body))
        if self.server.metrics is not None:
            self.server.metrics.observe_request("1.1", status, 0.0, len(body), 0)
        self.transport.close()

    # writing -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def sendfile_socket(self) -> int | None:
        """A duplicate of this connection's socket descriptor for ``os.sendfile``.

        None on TLS (the bytes must be encrypted in Python), while the transport
        still holds bytes to write (they must go first), or once it is closing.
        The caller closes the duplicate.
        """
        transport = self.transport
        if (
            not _HAS_SENDFILE
            or transport.is_closing()
            or transport.get_extra_info("ssl_object") is not None
            or transport.get_write_buffer_size()
        ):
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None
        return os.dup(sock.fileno())

    def writelines(self, parts: list[bytes]) -> None:
        """Write ``parts`` in order without joining them (uvloop: one ``writev``)."""
        if not self.transport.is_closing():
            self.transport.writelines(parts)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark."""
        if not self.write_paused or self.transport.is_closing():
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = self.loop.create_future()
        await waiter

    def abort(self) -> None:
        self.transport.close()

    # back-pressure on reading -------------------------------------------------

    def pause_for_body(self) -> None:
        if not self._body_paused:
            self._body_paused = True
            self._update_reading()

    def push(self, push: Push) -> None:
        """Server push does not exist on HTTP/1.1 (the extension is not advertised here)."""

    def body_consumed(self, size: int) -> None:
        """The app took ``size`` bytes of request body: read again if we had paused."""
        self.resume_for_body()

    def resume_for_body(self) -> None:
        if self._body_paused:
            self._body_paused = False
            self._update_reading()

    def _update_reading(self) -> None:
        if self.transport.is_closing():
            return
        if self._body_paused or self._pipeline_paused or self.write_paused:
            self.transport.pause_reading()
        else:
            self.last_read = self.server.now  # the client gets a full window again
            self.transport.resume_reading()

    # end of a cycle --------------------------------------------------------------

    def response_complete(self, cycle: RequestCycle) -> None:
        """The last byte of the response was written."""
        if self.info.proxies is None:
            cycle.log_access(self.client_label)
        else:
            cycle.log_access(_label(cycle.scope["client"]))
        conn = self.conn
        if self._deferred_error is not None:
            self.cycle = None
            self._reject(self._deferred_error)
            return
        if not conn.keep_alive or not conn.their_done or self.server.shutting_down:
            # Close-delimited body, "Connection: close", an unread request
            # body, or shutdown: this connection ends here.
            self.transport.close()
            return
        conn.start_next_cycle()
        # The app may go on (background work after the response); the
        # connection moves on to the next request without waiting for it.
        self.cycle = None
        self.idle_since = self.server.now
        if self._body_paused:
            self._body_paused = False
            self._update_reading()
        if self.write_paused:
            return  # resume_writing() starts the next pipelined request
        self._dispatch(True)  # called from the app's task: its send(), or run()'s 500
        if self._pipeline_paused and conn.pending_requests <= self.server.limits.max_pipelined:
            self._pipeline_paused = False
            self._update_reading()

    def cycle_finished(self, cycle: RequestCycle) -> None:
        """The app task for ``cycle`` ended; run() has completed or aborted its response."""
        if self.cycle is cycle:
            self.cycle = None

    # timeouts and shutdown (called by the server's tick) --------------------------

    def check_timeouts(self, now: float) -> None:
        timeouts = self.server.timeouts
        if self.awaiting_proxy:
            head_started = self.head_started
            if head_started is not None and now - head_started > timeouts.request_header:
                error_log.warning(
                    "PROXY protocol: no complete header (and TLS handshake) from %s within "
                    "%.3gs: closing",
                    self.client_label,
                    timeouts.request_header,
                )
                self.awaiting_proxy = False
                self.transport.abort()
            return
        if self.write_paused and now - self.write_paused_since > timeouts.write:
            error_log.warning(
                "client %s read nothing for %.3gs: closing", self.client_label, timeouts.write
            )
            self.transport.abort()  # close() would wait for the buffer the client does not read
            return
        cycle = self.cycle
        if cycle is not None:
            if (
                not self.conn.their_done
                and not self._body_paused
                and not self._pipeline_paused
                and not self.write_paused
                and now - self.last_read > timeouts.request_body
            ):
                error_log.warning(
                    "request body from %s stalled for %.3gs: closing",
                    self.client_label,
                    timeouts.request_body,
                )
                cycle.on_disconnect()
                if cycle.http.status == 0 and not cycle.pending_head and not cycle.response_done:
                    cycle.response_done = True
                    self._close_with_status(408)
                else:
                    self.abort()
            return
        if self.upgrading is not None:
            return
        head_started = self.head_started
        if head_started is not None:
            if now - head_started > timeouts.request_header:
                error_log.warning(
                    "request head from %s not received within %.3gs: 408, closing",
                    self.client_label,
                    timeouts.request_header,
                )
                self._close_with_status(408)
        elif self.conn.idle and now - self.idle_since > timeouts.keep_alive:
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close if idle, else close after the current response."""
        self.conn.keep_alive = False
        if not self.busy:
            self.transport.close()  # idle, or a request head not complete yet: not in flight
