"""Serve a WSGI (PEP 3333) application as an ASGI 3 app.

``WSGIAdapter(app)`` is an ASGI app: the server sees nothing special, so the
WSGI app runs over HTTP/1.1 and HTTP/2 alike.  Each request runs on a thread
of a bounded ``ThreadPoolExecutor``; requests beyond its size wait in the
executor's queue.  The worker thread talks to the event loop only when it
must:

- ``wsgi.input`` asks the loop for the next body chunk when the app reads
  past what it holds (never more than one chunk ahead), so an upload is
  streamed with the server's backpressure, not buffered;
- each body chunk the app produces is handed to the loop and the thread waits
  until ``send()`` returned, so a slow client stalls the thread, not memory;
- a body given as a list or tuple, or whose last chunk completes the declared
  ``Content-Length``, goes out with the response head in one message when the
  thread finishes: no extra hop for the common small response.

Application errors are logged on ``bascule.error``: before the response
started the client gets a 500, after it the connection is cut.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from bascule.errors import ClientDisconnected
from bascule.logs import error_log, request_target

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Response fields a WSGI app must not send (PEP 3333, "Other HTTP Features";
#: RFC 9110 §7.6.1): the server owns the connection and the framing.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_STATUS = re.compile(r"([2-9][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?\Z")

#: Caches of validated, repeated values (bounded so random input cannot grow them).
_CACHE_MAX = 512
_status_codes: dict[str, int] = {}
_header_names: dict[str, bytes] = {}
_environ_keys: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}

_500_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 500,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"22"),
    ],
}
_500_BODY = b"Internal Server Error\n"


def default_max_workers() -> int:
    """The thread pool size when none is given: ``min(32, CPUs + 4)``, as the stdlib's."""
    return min(32, (os.cpu_count() or 1) + 4)


class WSGIResponseError(ValueError):
    """The app called ``start_response``/``write`` wrongly or gave a bad status or header."""


class _Aborted(Exception):
    """The response cannot continue: the client left or the request was cancelled."""


class ErrorStream:
    """``wsgi.errors``: each write goes to the ``bascule.error`` logger as one record."""

    __slots__ = ()

    def write(self, text: str) -> int:
        stripped = text.rstrip("\n")
        if stripped:
            error_log.error("%s", stripped)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Records are written at once; nothing to flush."""


class WSGIInput:
    """``wsgi.input``: the request body, fetched from ``receive()`` only as the app reads.

    At most the bytes of one received chunk beyond what the app asked for are
    held; ``read()`` without a size reads the rest of the body, as asked.
    """

    __slots__ = ("_buf", "_call", "_more")

    def __init__(self, call: _Call) -> None:
        self._call = call
        self._buf = bytearray()
        self._more = True

    def _fill(self) -> bool:
        """Fetch one more chunk into the buffer; False at the end of the body."""
        while self._more:
            message = self._call.hop(self._call.receive())
            if message["type"] != "http.request":
                self._more = False
                self._call.client_gone = True
                raise ClientDisconnected("client disconnected while the app read the body")
            self._more = bool(message.get("more_body", False))
            body = message.get("body", b"")
            if body:
                self._buf += body
                return True
        return False

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            while self._fill():
                pass
        else:
            while len(buf) < size and self._fill():
                pass
            if len(buf) > size:
                data = bytes(buf[:size])
                del buf[:size]
                return data
        data = bytes(buf)
        buf.clear()
        return data

    def readline(self, limit: int | None = -1) -> bytes:
        buf = self._buf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if limit is not None and 0 <= limit <= len(buf):
                end = limit
                break
            start = len(buf)
            if not self._fill():
                end = len(buf)
                break
        if limit is not None and 0 <= limit < end:
            end = limit
        data = bytes(buf[:end])
        del buf[:end]
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _status_code(status: object) -> int:
    code = _status_codes.get(status) if type(status) is str else None
    if code is not None:
        return code
    if not isinstance(status, str):
        raise WSGIResponseError(f"status must be a str like '200 OK', got {status!r}")
    if _STATUS.match(status) is None:
        raise WSGIResponseError(
            f"invalid status {status!r}: expected a code in 200..999, a space and a reason "
            "phrase, e.g. '200 OK'"
        )
    code = int(status[:3])
    if len(_status_codes) < _CACHE_MAX:
        _status_codes[status] = code
    return code


def _header_name(name: object) -> bytes:
    encoded = _header_names.get(name) if type(name) is str else None
    if encoded is not None:
        return encoded
    if not isinstance(name, str):
        raise WSGIResponseError(f"header name must be a str, got {name!r}")
    if _TOKEN.match(name) is None:
        raise WSGIResponseError(f"invalid header name {name!r}")
    lower = name.lower()
    if lower in HOP_BY_HOP:
        raise WSGIResponseError(
            f"hop-by-hop header {name!r} is not allowed from a WSGI app (PEP 3333); "
            "the server manages the connection and the framing"
        )
    encoded = lower.encode("ascii")
    if len(_header_names) < _CACHE_MAX:
        _header_names[name] = encoded
    return encoded


def response_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """PEP 3333 response headers → ASGI headers; WSGIResponseError naming a bad one."""
    if not isinstance(headers, list | tuple):
        raise WSGIResponseError(
            f"response_headers must be a list of (name, value) tuples, got {type(headers).__name__}"
        )
    out: list[tuple[bytes, bytes]] = []
    for item in headers:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise WSGIResponseError(
                f"each header must be a (name, value) tuple, got {item!r}"
            ) from None
        encoded = _header_name(name)
        if type(value) is not str:
            raise WSGIResponseError(f"value of header {name!r} must be a str, got {value!r}")
        if _BAD_VALUE.search(value) is not None:
            raise WSGIResponseError(
                f"value of header {name!r} has a character not allowed in a header: {value!r}"
            )
        out.append((encoded, value.encode("latin-1")))
    return out


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    raise WSGIResponseError(f"the app's body must yield bytes, got {type(chunk).__name__}")


def _environ_key(name: bytes) -> str:
    """``user-agent`` → ``HTTP_USER_AGENT``; "" for names with ``_`` (dropped, see docs)."""
    key = _environ_keys.get(name)
    if key is not None:
        return key
    text = name.decode("latin-1")
    key = "" if "_" in text else "HTTP_" + text.upper().replace("-", "_")
    if len(_environ_keys) < _CACHE_MAX:
        _environ_keys[name] = key
    return key


class _Call:
    """One request: runs on a worker thread, hops to the loop for I/O."""

    __slots__ = (
        "adapter",
        "cancelled",
        "client_gone",
        "headers",
        "headers_sent",
        "left",
        "loop",
        "pending",
        "receive",
        "scope",
        "send",
        "status",
    )

    def __init__(
        self,
        adapter: WSGIAdapter,
        scope: dict[str, Any],
        receive: Callable[[], Coroutine[Any, Any, Any]],
        send: Callable[[Any], Coroutine[Any, Any, None]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.adapter = adapter
        self.scope = scope
        self.receive = receive
        self.send = send
        self.loop = loop
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_sent = False
        #: Body bytes still due by the app's Content-Length (None: not declared).
        self.left: int | None = None
        self.client_gone = False
        self.cancelled = False
        self.pending: concurrent.futures.Future[Any] | None = None

    # thread ↔ loop ---------------------------------------------------------------

    def hop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and wait for its result (from the worker thread)."""
        if self.cancelled:
            coro.close()
            raise _Aborted("request cancelled")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise _Aborted("event loop closed") from None
        self.pending = future
        if self.cancelled:  # cancel() ran between the check above and now
            future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise _Aborted("request cancelled") from None
        finally:
            self.pending = None

    def cancel(self) -> None:
        """The ASGI task was cancelled (loop side): stop at the thread's next hop."""
        self.cancelled = True
        future = self.pending
        if future is not None:
            future.cancel()

    async def _send_chunk(self, start: dict[str, Any] | None, data: bytes) -> None:
        if start is not None:
            await self.send(start)
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    def emit(self, data: bytes) -> None:
        """Send one body chunk now (and the head first), waiting until it was written."""
        start = None
        if not self.headers_sent:
            self.headers_sent = True
            start = {"type": "http.response.start", "status": self.status, "headers": self.headers}
        try:
            self.hop(self._send_chunk(start, data))
        except ClientDisconnected:
            self.client_gone = True
            raise _Aborted("client disconnected") from None

    # the WSGI callables ----------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status:
            raise WSGIResponseError("start_response() called a second time without exc_info")
        code = _status_code(status)
        asgi_headers = response_headers(headers)
        left = None
        for name, value in asgi_headers:
            if name == b"content-length":
                left = int(value) if value.isdigit() else None
        self.status = code
        self.headers = asgi_headers
        self.left = left
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: send ``data`` before returning."""
        if not self.status:
            raise WSGIResponseError("write() called before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        if data:
            if self.left is not None:
                self.left -= len(data)
            self.emit(data)

    # the request ---------------------------------------------------------------

    def run(self) -> tuple[dict[str, Any] | None, bytes] | None:
        """Call the app (worker thread).  What the loop still sends: (head, last body), or None."""
        environ = self.adapter.environ(self.scope, WSGIInput(self))
        result: Any = None
        try:
            result = self.adapter.app(environ, self.start_response)
            if type(result) is list or type(result) is tuple:
                try:
                    body = b"".join(result)
                except TypeError:
                    body = b"".join(_as_bytes(c) for c in result)
                return self.finish(body)
            return self.finish(self.stream(result))
        except _Aborted:
            return None
        except BaseException as exc:
            return self.failed(exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    error_log.error(
                        "exception in close() of the WSGI app's response for %s",
                        self.target(),
                        exc_info=exc,
                    )

    def stream(self, result: Iterable[bytes]) -> bytes:
        """Send the chunks as the app yields them; return the last one when held back.

        A chunk that completes the declared Content-Length is held: it goes
        with the end of the response once the iterable is exhausted.
        """
        held = b""
        for item in result:
            chunk = item if type(item) is bytes else _as_bytes(item)
            if not chunk:
                continue
            if not self.status:
                raise WSGIResponseError("the app yielded a body before calling start_response()")
            if held:
                self.emit(held)
                held = b""
            left = self.left
            if left is not None:
                self.left = left = left - len(chunk)
                if left == 0:
                    held = chunk
                    continue
            self.emit(chunk)
        return held

    def finish(self, body: bytes) -> tuple[dict[str, Any] | None, bytes]:
        if self.headers_sent:
            return None, body
        if not self.status:
            raise WSGIResponseError("the app returned without calling start_response()")
        self.headers_sent = True
        headers = self.headers
        if self.left is None and self.status not in (204, 304) and self.scope["method"] != "HEAD":
            # The whole body is known: frame it with a length, not chunks.
            headers.append((b"content-length", b"%d" % len(body)))
        return {"type": "http.response.start", "status": self.status, "headers": headers}, body

    def failed(self, exc: BaseException) -> tuple[dict[str, Any] | None, bytes] | None:
        """Log the app's failure; a 500 if nothing was sent yet, else None (cut)."""
        if self.client_gone or self.cancelled:
            error_log.info(
                "WSGI app for %s stopped: client disconnected (%s: %s)",
                self.target(),
                type(exc).__name__,
                exc,
            )
            return None
        after = " after the response started (connection closed)" if self.headers_sent else ""
        if isinstance(exc, WSGIResponseError):
            error_log.error(
                "invalid response from WSGI app for %s%s: %s", self.target(), after, exc
            )
        else:
            error_log.error("exception in WSGI app for %s%s", self.target(), after, exc_info=exc)
        if self.headers_sent:
            return None
        self.headers_sent = True
        return {**_500_START, "headers": list(_500_START["headers"])}, _500_BODY

    def target(self) -> str:
        return f'"{self.scope["method"]} {request_target(self.scope)}"'


class WSGIAdapter:
    """An ASGI 3 app that runs the WSGI app ``app`` on a bounded thread pool.

    ``max_workers``: threads (default :func:`default_max_workers`);
    ``multiprocess``: the value of ``wsgi.multiprocess`` (True when the server
    runs several worker processes).
    """

    def __init__(
        self, app: WSGIApp, max_workers: int | None = None, multiprocess: bool = False
    ) -> None:
        self.app = app
        self.max_workers = max_workers or default_max_workers()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="bascule-wsgi"
        )
        self._base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.errors": ErrorStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": "",
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            loop = asyncio.get_running_loop()
            call = _Call(self, scope, receive, send, loop)
            try:
                outcome = await loop.run_in_executor(self.executor, call.run)
            except asyncio.CancelledError:
                call.cancel()
                raise
            if outcome is not None:
                start, body = outcome
                if start is not None:
                    await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # A WSGI app cannot speak WebSocket: refuse the handshake (403).
            await send({"type": "websocket.close", "code": 1000})
        else:
            raise ValueError(f"WSGI adapter: unsupported scope type {kind!r}")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        """WSGI has no lifespan: accept startup; at shutdown stop the thread pool."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Stop the thread pool (idle threads exit; running requests finish)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def environ(self, scope: dict[str, Any], stream: WSGIInput) -> dict[str, Any]:
        """The PEP 3333 environ of one request (built on the worker thread)."""
        environ = self._base.copy()
        for name, value in scope["headers"]:
            key = _environ_keys.get(name) or _environ_key(name)
            if not key:
                continue
            text = value.decode("latin-1")
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + text
            else:
                environ[key] = text
        root_path: str = scope.get("root_path", "")
        raw_path: bytes | None = scope.get("raw_path")
        if raw_path is None:
            path_bytes = scope["path"].encode("utf-8")
        else:
            path_bytes = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
        if root_path:
            root_bytes = root_path.encode("utf-8")
            if path_bytes.startswith(root_bytes):
                path_bytes = path_bytes[len(root_bytes) :]
            environ["SCRIPT_NAME"] = root_bytes.decode("latin-1")
        environ["PATH_INFO"] = path_bytes.decode("latin-1")
        environ["REQUEST_METHOD"] = scope["method"]
        environ["QUERY_STRING"] = scope["query_string"].decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + scope["http_version"]
        scheme = environ["wsgi.url_scheme"] = scope.get("scheme", "http")
        server = scope.get("server")
        if server is not None and server[1] is not None:
            environ["SERVER_NAME"] = server[0]
            environ["SERVER_PORT"] = str(server[1])
        else:
            default_port = "443" if scheme == "https" else "80"
            host = environ.get("HTTP_HOST", "localhost")
            name, sep, port = host.rpartition(":")
            if sep and port.isdigit():
                environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
            else:
                environ["SERVER_NAME"], environ["SERVER_PORT"] = host, default_port
        client = scope.get("client")
        if client is not None:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        environ["wsgi.input"] = stream
        return environ
