"""One WebSocket: the ASGI app's receive/send, the handshake, then the frames.

``WebSocketSession`` starts on the HTTP/1.1 connection that carried the
upgrade request.  Until the app accepts, HTTP answers (403, 500, a denial
response) go out through that connection's ``H1Connection``.  On
``websocket.accept`` it writes the 101 response, takes the transport over
(``transport.set_protocol(self)``) and from then on feeds bytes to a
``WsConnection``.  Decisions about frames live in ``bascule.proto.ws``; the
app message rules in ``bascule.asgi.websocket``.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from bascule.aio.app import whole_response
from bascule.aio.batch import WriteBatch
from bascule.asgi.websocket import (
    Accept,
    Close,
    ResponseBody,
    ResponseStart,
    SendData,
    WsCycle,
    WsState,
)
from bascule.errors import AppMessageError, ClientDisconnected
from bascule.logs import TRACE, access_log, error_log, log_request
from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, ResponseHead
from bascule.proto.ws.connection import WsClosed, WsConnection, WsEvent, WsMessage, WsPong
from bascule.proto.ws.deflate import negotiate
from bascule.proto.ws.handshake import Handshake

if TYPE_CHECKING:
    from bascule.aio.h2 import H2WebSocket
    from bascule.aio.transport import HttpDriver
    from bascule.asgi_types import ASGI3App, Message

_CONNECT: Final[dict[str, Any]] = {"type": "websocket.connect"}

#: Received bytes held back (while the app reads earlier messages) before the
#: socket stops being read.
_HOLD_LIMIT: Final = 64 * 1024


class WebSocketSession:
    """The app side and (after accept) the transport side of one WebSocket."""

    def __init__(
        self, driver: HttpDriver | H2WebSocket, handshake: Handshake, scope: dict[str, Any]
    ) -> None:
        self.driver = driver
        self.server = driver.server
        self.loop = driver.loop
        self.transport = driver.transport
        self.handshake = handshake
        self.scope = scope
        self.cycle = WsCycle()
        self.conn: WsConnection | None = None
        self.inbox: deque[dict[str, Any]] = deque()
        self.connect_delivered = False
        self.disconnected = False
        self.close_code = 1006
        self.close_reason = ""
        self.status = 0
        self.sent_bytes = 0
        self.start_time = perf_counter()
        self.write_paused = False
        self.reading_paused = True  # the driver paused reading while the app decides
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_deadline: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self.trace = driver.trace
        self._max_queue = self.server.ws_limits.max_queue
        self._out = WriteBatch(self.loop, self.transport)

    # the app's callables ---------------------------------------------------------

    async def receive(self) -> Message:
        if not self.connect_delivered:
            self.connect_delivered = True
            return _CONNECT.copy()
        conn = self.conn
        if conn is not None and conn.buffered and len(self.inbox) < self._max_queue:
            # Bytes held back (queue full, or behind messages the app had not
            # read yet): take what now fits.
            self._handle(conn.resume(len(self.inbox), self._max_queue - len(self.inbox)))
            self._flush()
        while not self.inbox and not self.disconnected:
            if self.reading_paused and conn is not None:
                self._maybe_resume_reading()
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        inbox = self.inbox
        if inbox:
            message = inbox.popleft()
            if self.reading_paused:
                self._maybe_resume_reading()
            return message
        return {
            "type": "websocket.disconnect",
            "code": self.close_code,
            "reason": self.close_reason,
        }

    async def send(self, message: Message) -> None:
        state = self.cycle.state
        if self.disconnected and state is not WsState.CONNECTING:
            raise ClientDisconnected("WebSocket client disconnected")
        action = self.cycle.on_message(message)
        atype = type(action)
        if atype is SendData:
            conn = self.conn
            assert conn is not None
            if not conn.open:
                raise ClientDisconnected("WebSocket is closing")
            conn.send_message(action.data)  # type: ignore[union-attr]
            self._flush()
            if self.write_paused:
                await self._wait_drain()
        elif atype is Accept:
            self._accept(action)  # type: ignore[arg-type]
        elif atype is Close:
            if state is WsState.CONNECTING:
                self._http_response(403, [], b"")
            else:
                self._close(action.code, action.reason)  # type: ignore[union-attr]
        elif atype is ResponseStart:
            self._response_start(action)  # type: ignore[arg-type]
        else:
            self._response_body(action)  # type: ignore[arg-type]

    # the app task ------------------------------------------------------------------

    async def run(self, app: ASGI3App) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except AppMessageError as exc:
            self._app_failed(f"invalid ASGI message from the app for {self._target()}: {exc}", None)
        except LocalProtocolError as exc:
            self._app_failed(f"invalid response from the app for {self._target()}: {exc}", None)
        except asyncio.CancelledError:
            self._abort()
            raise
        except BaseException as exc:
            self._app_failed(f"exception in ASGI app for {self._target()}", exc)
            if not isinstance(exc, Exception):
                raise
        else:
            state = self.cycle.state
            if state is WsState.CONNECTING:
                # The app did not accept: RFC 6455 says 403 (ASGI: "close before accept").
                self._http_response(403, [], b"")
            elif state is WsState.ACCEPTED and not self.disconnected:
                self._close(1000, "")
            elif state is WsState.RESPONSE:
                error_log.error(
                    "app returned before its denial response was complete for %s", self._target()
                )
                self._abort()
        finally:
            task = asyncio.current_task()  # once per WebSocket, not per message
            if task is not None:
                self.server.tasks.discard(task)
            if self.driver.upgrading is self:
                self.driver.upgrading = None

    def _target(self) -> str:
        return f'"WebSocket {self.scope["raw_path"].decode("latin-1")}"'

    def _app_failed(self, message: str, exc: BaseException | None) -> None:
        error_log.error(message, exc_info=exc)
        state = self.cycle.state
        if state is WsState.CONNECTING:
            self.cycle.state = WsState.RESPONSE_DONE
            self._http_response(
                500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error\n"
            )
        elif state is WsState.ACCEPTED or (state is WsState.CLOSED and not self.disconnected):
            self._close(1011, "")
        elif state is WsState.RESPONSE:
            self._abort()

    # HTTP answers before the upgrade -----------------------------------------------

    def _http_response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self.disconnected or self.transport.is_closing():
            return
        conn = self.driver.conn
        conn.keep_alive = False
        data = whole_response(conn, status, body, self.server.default_headers, headers)
        self.status = status
        self.sent_bytes = len(body)
        self.transport.write(data)
        self._log_access()
        self.transport.close()

    def _response_start(self, action: ResponseStart) -> None:
        conn = self.driver.conn
        conn.keep_alive = False
        self.status = action.status
        self.transport.write(
            conn.send(ResponseHead(1, action.status, action.headers), self.server.default_headers)
        )

    def _response_body(self, action: ResponseBody) -> None:
        conn = self.driver.conn
        data = conn.send(BodyChunk(1, action.body)) if action.body else b""
        self.sent_bytes += len(action.body)
        if not action.more:
            data += conn.send(BodyEnd(1))
        if data and not self.transport.is_closing():
            self.transport.write(data)
        if not action.more:
            self._log_access()
            self.transport.close()

    def _log_access(self) -> None:
        if access_log.isEnabledFor(20):
            log_request(
                self.driver.client_label,
                "CONNECT" if self.scope["http_version"] == "2" else "GET",
                self.scope,
                self.status,
                self.sent_bytes,
                (perf_counter() - self.start_time) * 1000.0,
            )

    # the switch ----------------------------------------------------------------------

    def _accept(self, action: Accept) -> None:
        if self.disconnected or self.transport.is_closing():
            raise ClientDisconnected("WebSocket client disconnected before accept")
        if self.server.metrics is not None:
            self.server.metrics.websocket_opened()
        subprotocol = action.subprotocol
        limits = self.server.ws_limits
        extension_header, extensions = negotiate(
            self.handshake.extension_offers, limits.per_message_deflate
        )
        try:
            self.status, leftover = self.driver.accept_websocket(
                self, subprotocol, extension_header, action.headers
            )
        except LocalProtocolError:
            self.cycle.state = WsState.CONNECTING  # nothing written: the client still gets a 500
            raise
        self._log_access()
        self.conn = WsConnection(limits, extensions)
        if leftover:
            self.data_received(bytes(leftover))
        self._resume_reading()
        self._schedule_ping()

    # asyncio.Protocol (after the switch) ----------------------------------------------
    # (Not a subclass of it: mypyc compiles a class without a Python base to a native
    # one, whose attributes are C fields.)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Never called: the session takes over a transport that is already connected."""

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:  # pragma: no cover - set_protocol happens after conn exists
            return
        inbox = self.inbox
        self._handle(conn.receive_data(data, len(inbox), self._max_queue - len(inbox)))
        if self.trace:
            error_log.log(TRACE, "%s: WebSocket read %d bytes", self.driver.client_label, len(data))
        self._flush()
        if (
            len(self.inbox) >= self.server.ws_limits.max_queue
            or conn.buffered >= _HOLD_LIMIT
            or self.write_paused  # pongs/closes we owe pile up: stop reading (flood)
        ):
            self._pause_reading()

    def _handle(self, events: list[WsEvent]) -> None:
        inbox = self.inbox
        for event in events:
            etype = type(event)
            if etype is WsMessage:
                payload = event.data  # type: ignore[union-attr]
                if type(payload) is str:
                    inbox.append({"type": "websocket.receive", "text": payload})
                else:
                    inbox.append({"type": "websocket.receive", "bytes": payload})
            elif etype is WsClosed:
                self._peer_closed(event)  # type: ignore[arg-type]
            elif etype is WsPong:
                self._got_pong()
        if inbox:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self._handle(self.conn.receive_eof())
            self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if not self.disconnected:
            self.disconnected = True
            if self.conn is not None and self.conn.close_sent is None and self.close_code == 1006:
                self.close_code = 1006
        self._cancel_timers()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)
        if self.reading_paused:
            self._maybe_resume_reading()

    def _maybe_resume_reading(self) -> None:
        """Read again once the queue, the held-back bytes and the write buffer allow it."""
        conn = self.conn
        if (
            conn is not None
            and not self.write_paused
            and len(self.inbox) < self.server.ws_limits.max_queue
            and conn.buffered < _HOLD_LIMIT
        ):
            self._resume_reading()

    # helpers ------------------------------------------------------------------------------

    def _peer_closed(self, event: WsClosed) -> None:
        self.close_code = event.code
        self.close_reason = event.reason
        if not event.by_peer:
            error_log.info(
                "WebSocket %s closed by the server: %d %s",
                self.driver.client_label,
                event.code,
                event.reason,
            )
        self.disconnected = True
        self._arm_close_deadline()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        """Queue what the frame layer produced; write it once per loop turn.

        Echo-style apps send many small messages per read; one write per turn
        instead of one per message saves a system call each.  Large amounts go
        out at once, and everything is written before the connection closes.
        """
        conn = self.conn
        if conn is None:
            return
        chunks = conn.data_to_send()
        if not chunks:
            return
        out = self._out
        for chunk in chunks:
            if not chunk:
                out.flush()
                self.transport.close()  # the closing handshake is complete (or failed)
                return
            out.write(chunk)

    def _write_now(self) -> None:
        self._out.flush()

    async def _wait_drain(self) -> None:
        if not self.write_paused or self.transport.is_closing():
            return
        drain = self._drain
        if drain is None:
            drain = self._drain = self.loop.create_future()
        await drain
        if self.disconnected:
            raise ClientDisconnected("WebSocket client disconnected")

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()

    def _close(self, code: int, reason: str) -> None:
        conn = self.conn
        if conn is None or not conn.open:
            return
        conn.send_close(code, reason)
        self._flush()
        self._arm_close_deadline()

    def _abort(self) -> None:
        self.disconnected = True
        self.transport.close()

    def _arm_close_deadline(self) -> None:
        if self._close_deadline is None and not self.transport.is_closing():
            self._close_deadline = self.loop.call_later(
                self.server.timeouts.ws_close_timeout, self.transport.abort
            )

    def _schedule_ping(self) -> None:
        interval = self.server.timeouts.ws_ping_interval
        if interval > 0:
            self._ping_handle = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        conn = self.conn
        if conn is None or not conn.open:
            return
        conn.send_ping(os.urandom(4))
        self._flush()
        self._pong_deadline = self.loop.call_later(
            self.server.timeouts.ws_ping_timeout, self._ping_timed_out
        )

    def _got_pong(self) -> None:
        if self._pong_deadline is not None:
            self._pong_deadline.cancel()
            self._pong_deadline = None
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong_deadline = None
        conn = self.conn
        if conn is None or not conn.open:
            return
        error_log.info(
            "WebSocket %s: no pong within %.3gs, closing",
            self.driver.client_label,
            self.server.timeouts.ws_ping_timeout,
        )
        conn.fail(1011, "keepalive ping timeout")
        self.close_code = 1011
        self.close_reason = "keepalive ping timeout"
        self.disconnected = True
        self._flush()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for handle in (self._ping_handle, self._pong_deadline, self._close_deadline):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_deadline = self._close_deadline = None

    # what the server asks of every connection ----------------------------------------

    @property
    def busy(self) -> bool:
        return not self.disconnected

    def check_timeouts(self, now: float) -> None:
        """Liveness is checked by pings; nothing to do on the tick."""

    def shutdown(self) -> None:
        """Server shutdown: close 1001, wait for the client's close within the graceful timeout."""
        self._close(1001, "server shutting down")

    def abort(self) -> None:
        self.transport.abort()
