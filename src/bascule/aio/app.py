"""One ASGI ``http`` cycle on a connection: the app's ``receive`` and ``send``.

``RequestCycle`` holds the request body the driver has parsed, hands it to
``receive()``, validates what the app passes to ``send()`` with
``bascule.asgi.http.HttpCycle``, serialises it with the connection and writes
it.  ``run()`` is the app task: it turns a crash into a 500 (or a closed
connection once the response started) and logs it.
"""

from __future__ import annotations

import asyncio
import os
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

from bascule.aio.sendfile import send_file
from bascule.asgi.http import CycleState, FileBody, HttpCycle
from bascule.errors import AppMessageError, ClientDisconnected
from bascule.logs import TRACE, access_log, error_log, log_request, request_target
from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, InformationalResponse, ResponseHead
from bascule.proto.headers import DefaultHeaders

if TYPE_CHECKING:
    from bascule.aio.h2 import H2Stream
    from bascule.aio.transport import HttpDriver
    from bascule.asgi_types import ASGI3App, Message
    from bascule.proto.http1.connection import H1Connection


#: What a RequestCycle runs on: its connection (HttpDriver), or one HTTP/2 stream, and
#: the protocol side that serialises its events (H1Connection, or the stream again).
#: Unions rather than Protocols: mypyc calls each member's methods and reads its
#: attributes natively, where a Protocol is an opaque object reached by name.
CycleHost: TypeAlias = "HttpDriver | H2Stream"
CycleConn: TypeAlias = "H1Connection | H2Stream"


#: Unread request body above which the driver stops reading the socket.
BODY_HIGH_WATER: Final = 64 * 1024

_EMPTY_BODY: Final[dict[str, Any]] = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT: Final[dict[str, Any]] = {"type": "http.disconnect"}
_500_BODY: Final = b"Internal Server Error\n"
#: Body bytes above which the held head is not copied in front of them: both go to
#: one ``writelines`` (one ``writev`` on uvloop) instead.
_COPY_LIMIT: Final = 16 * 1024
#: Bytes read per step when a file is the body (pathsend / zerocopysend).
_FILE_CHUNK: Final = 256 * 1024


PLAIN_TEXT: Final[list[tuple[bytes, bytes]]] = [(b"content-type", b"text/plain; charset=utf-8")]


def whole_response(
    conn: CycleConn,
    status: int,
    body: bytes,
    defaults: DefaultHeaders,
    headers: list[tuple[bytes, bytes]] = PLAIN_TEXT,
) -> bytes:
    """The bytes of a complete response with a Content-Length, through ``conn``."""
    head = ResponseHead(1, status, [*headers, (b"content-length", b"%d" % len(body))])
    return conn.send(head, defaults) + conn.send(BodyEnd(1, None, body))


class RequestCycle:
    """State of one request/response on a connection."""

    __slots__ = (
        "body",
        "body_done",
        "body_size",
        "body_taken",
        "disconnected",
        "driver",
        "http",
        "pending_head",
        "received",
        "response_done",
        "scope",
        "sent_bytes",
        "start_time",
        "task",
        "waiter",
    )

    def __init__(self, driver: CycleHost, scope: dict[str, Any], start_time: float) -> None:
        self.driver = driver
        self.scope = scope
        self.http = HttpCycle()
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_done = False
        #: True once receive() handed out the last body message.
        self.body_taken = False
        self.disconnected = False
        self.response_done = False
        self.pending_head = b""
        self.sent_bytes = 0
        #: Request body bytes received (for the metrics).
        self.received = 0
        self.start_time = start_time
        self.waiter: asyncio.Future[None] | None = None
        #: The app task running this cycle (set by the driver that creates it).
        self.task: asyncio.Task[None] | None = None

    # driver → cycle ----------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self.body.append(data)
        self.body_size += len(data)
        self.received += len(data)
        if self.body_size > BODY_HIGH_WATER:
            self.driver.pause_for_body()
        self._wake()

    def feed_end(self) -> None:
        self.body_done = True
        self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # the app's callables -------------------------------------------------------

    async def receive(self) -> Message:
        """Next ``http.request`` chunk; ``http.disconnect`` once there is nothing more."""
        if not self.body_taken:
            driver = self.driver
            if driver.conn.continue_pending and not self.body and not self.body_done:
                driver.write(driver.conn.send_continue())
            while not self.body and not self.body_done and not self.disconnected:
                await self._wait()
            if self.body or self.body_done:
                if self.body_done and not self.body and self.body_size == 0:
                    self.body_taken = True
                    return _EMPTY_BODY.copy()
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                self.body = []
                self.body_size = 0
                driver.body_consumed(len(body))
                more = not self.body_done
                self.body_taken = not more
                return {"type": "http.request", "body": body, "more_body": more}
        # The whole body was delivered: the next event is the disconnect, once
        # the response is done or the client goes away.
        while not self.disconnected and not self.response_done:
            await self._wait()
        return _DISCONNECT.copy()

    async def _wait(self) -> None:
        waiter = self.driver.loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            if self.waiter is waiter:
                self.waiter = None

    async def send(self, message: Message) -> None:
        """Validate ``message``, serialise it, write it; wait while the transport is full."""
        # A closing transport drops writes without pausing: the app must hear of
        # it here, or a tight send() loop never yields to let the loss be seen.
        if self.disconnected or self.driver.transport.is_closing():
            raise ClientDisconnected("client disconnected")
        events = self.http.on_message(message)
        driver = self.driver
        conn = driver.conn
        out = self.pending_head
        for event in events:
            if isinstance(event, (BodyChunk, BodyEnd)):
                out = self._queue(out, conn.send(event))
                self.sent_bytes += len(event.data)
            elif isinstance(event, ResponseHead):
                # Hold the head: the spec says not to send it before a body
                # message, and head + body then go out in one write.
                try:
                    self.pending_head = conn.send(event, driver.server.default_headers)
                except LocalProtocolError:
                    self.http.state = CycleState.START  # nothing written: a 500 is still possible
                    raise
                return
            elif isinstance(event, FileBody):
                out = await self._send_file(event, out)
            elif isinstance(event, InformationalResponse):
                driver.write(conn.send(event))
            else:
                driver.push(event)
        self.pending_head = b""
        if out:
            driver.write(out)
        if self.http.state is CycleState.DONE:
            self.response_done = True
            self._wake()
            driver.response_complete(self)
            if driver.write_paused:
                # The end of the response is still queued (HTTP/2 window, or a
                # full socket): the app's last send() returns once it left.
                await driver.drain()
        elif driver.write_paused:
            await driver.drain()
            if self.disconnected or driver.transport.is_closing():
                raise ClientDisconnected("client disconnected")

    def _queue(self, out: bytes, data: bytes) -> bytes:
        """``out`` + ``data`` to write later; a large ``data`` leaves now, behind ``out``.

        Joining would copy the whole body once more: both go to one ``writelines``
        (one ``writev`` on uvloop) instead.
        """
        if len(data) > _COPY_LIMIT and out:
            self.driver.writelines([out, data])
            return b""
        return out + data

    async def _send_file(self, event: FileBody, out: bytes) -> bytes:
        """Send a file's bytes as body (pathsend / zerocopysend); return what is left to write."""
        driver = self.driver
        conn = driver.conn
        loop = driver.loop
        if event.path is not None:
            if not os.path.isfile(event.path):  # a FIFO or device would block or never end
                raise AppMessageError(f"http.response.pathsend: {event.path!r} is not a file")
            try:
                f = await loop.run_in_executor(None, open, event.path, "rb")
            except OSError as exc:
                raise AppMessageError(
                    f"http.response.pathsend: cannot open {event.path!r}: {exc.strerror}"
                ) from None
            fd, pos, remaining = f.fileno(), 0, None
        else:
            f = None
            fd = event.file.fileno()
            pos = event.offset if event.offset is not None else os.lseek(fd, 0, os.SEEK_CUR)
            remaining = event.count
        try:
            sent = await self._sendfile(fd, pos, remaining, out)
            if sent is not None:
                out = b""
                pos += sent
                remaining = 0
            while remaining is None or remaining > 0:
                size = _FILE_CHUNK if remaining is None else min(_FILE_CHUNK, remaining)
                data = await loop.run_in_executor(None, os.pread, fd, size, pos)
                if not data:
                    break
                pos += len(data)
                if remaining is not None:
                    remaining -= len(data)
                self.sent_bytes += len(data)
                out += conn.send(BodyChunk(1, data))
                self.pending_head = b""
                driver.write(out)
                out = b""
                if driver.write_paused:
                    await driver.drain()
                if self.disconnected or driver.transport.is_closing():
                    raise ClientDisconnected("client disconnected")
            if event.file is not None and event.offset is None:
                os.lseek(fd, pos, os.SEEK_SET)  # as if the app had read it
        finally:
            if f is not None:
                f.close()
        return out

    async def _sendfile(self, fd: int, pos: int, count: int | None, out: bytes) -> int | None:
        """Send the file with ``os.sendfile`` (plain HTTP/1.1), ``out`` first; bytes sent.

        None when this connection or response cannot (TLS, HTTP/2, no body, bytes
        still queued, a small file): the caller reads the file instead.
        """
        size = max(0, os.fstat(fd).st_size - pos)
        if count is not None:
            size = min(size, count)
        if size < _COPY_LIMIT:
            return None
        driver = self.driver
        sock_fd = driver.sendfile_socket()
        if sock_fd is None:
            return None
        try:
            framing = driver.conn.file_framing(size)
            if framing is None:
                return None
            before, after = framing
            timeout = driver.server.timeouts.write
            self.pending_head = b""
            try:
                sent = await send_file(
                    driver.loop, sock_fd, out + before, fd, pos, size, after, timeout
                )
            except TimeoutError as exc:
                error_log.warning("sendfile for %s: %s: closing", self._target(), exc)
                driver.abort()
                raise ClientDisconnected(str(exc)) from None
            except OSError as exc:
                driver.abort()
                raise ClientDisconnected(f"client disconnected ({exc.strerror})") from None
        finally:
            os.close(sock_fd)
        self.sent_bytes += sent
        if error_log.isEnabledFor(TRACE):
            error_log.log(TRACE, "sendfile: %d of %d bytes for %s", sent, size, self._target())
        if sent < size:
            raise LocalProtocolError(f"the file ended {size - sent} bytes before its size")
        return sent

    # the app task ------------------------------------------------------------

    async def run(self, app: ASGI3App) -> None:
        """Run the app for this request and clean up whatever it leaves."""
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            if not self.disconnected:  # pragma: no cover - raised by the app itself
                error_log.warning("app raised ClientDisconnected on a live connection")
        except AppMessageError as exc:
            self._fail(f"invalid ASGI message from the app for {self._target()}: {exc}", None)
        except LocalProtocolError as exc:
            # Framing the app broke (a Content-Length it did not keep): the
            # client sees the connection cut, never a half response as whole.
            self._fail(
                f"invalid response from the app for {self._target()}: {exc}", None, retract=False
            )
        except asyncio.CancelledError:
            self._abort()
            raise
        except BaseException as exc:
            self._fail(f"exception in ASGI app for {self._target()}", exc)
            # sys.exit() in one request is that request's failure, not the server's.
            if not isinstance(exc, Exception | SystemExit):
                raise
        else:
            if not self.response_done and not self.disconnected:
                if self.http.state is CycleState.START:
                    self._fail(
                        f"app returned without sending a response for {self._target()}", None
                    )
                else:
                    self._fail(
                        f"app returned before its response was complete for {self._target()}", None
                    )
        finally:
            # The task leaves the registry here rather than through a done
            # callback: one less callback per request.
            if self.task is not None:
                self.driver.server.tasks.discard(self.task)
            self.driver.cycle_finished(self)

    def log_access(self, client: str) -> None:
        """The access-log line and the metrics of this response (each only if on)."""
        metrics = self.driver.server.metrics
        if metrics is not None:
            metrics.observe_request(
                self.scope["http_version"],
                self.http.status,
                perf_counter() - self.start_time,
                self.sent_bytes,
                self.received,
            )
        # ``disabled`` (--no-access-log) is read first: an attribute, where isEnabledFor
        # is a call into Python on every response. Read untyped: logging stores whatever
        # a config gives it (dictConfig's disable_existing_loggers=0 sets an int).
        if not cast(Any, access_log).disabled and access_log.isEnabledFor(20):
            log_request(
                client,
                self.scope["method"],
                self.scope,
                self.http.status,
                self.sent_bytes,
                (perf_counter() - self.start_time) * 1000.0,
            )

    def _target(self) -> str:
        return f'"{self.scope["method"]} {request_target(self.scope)}"'

    def _fail(self, message: str, exc: BaseException | None, retract: bool = True) -> None:
        if self.disconnected:
            return
        if exc is None:
            error_log.error(message)
        else:
            error_log.error(message, exc_info=exc)
        if self.response_done:
            return  # the response went out whole; the connection may serve others now
        conn = self.driver.conn
        held = self.pending_head or getattr(conn, "holds_head", False)
        if retract and self.http.state is not CycleState.START and held and not self.sent_bytes:
            # The head was held, nothing is on the wire yet: a 500 is still possible.
            self.driver.conn.retract_response()
            self.pending_head = b""
            self.http.state = CycleState.START
        if self.http.state is CycleState.START:
            self._send_500()
        else:
            self._abort()

    def _send_500(self) -> None:
        self.driver.conn.keep_alive = False
        self.respond_plain(500, _500_BODY)

    def respond_plain(self, status: int, body: bytes) -> None:
        """Answer with a whole ``text/plain`` response the server writes itself (500, 503)."""
        driver = self.driver
        self.http.state = CycleState.DONE
        self.http.status = status
        self.pending_head = b""
        driver.write(whole_response(driver.conn, status, body, driver.server.default_headers))
        self.sent_bytes = len(body)
        self.response_done = True
        driver.response_complete(self)

    def _abort(self) -> None:
        """The response cannot be completed: close so the client sees it cut."""
        self.response_done = True
        self.driver.conn.send_failed()
        self.driver.abort()
