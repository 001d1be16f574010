"""Pieces shared by the hostile-client tests: a recording app and raw-socket helpers."""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


@dataclass
class Seen:
    """One request as the application saw it."""

    method: str
    path: str
    host: bytes | None
    #: The client's (host, port): which connection the request came on.
    client: tuple[str, int] | None = None
    body: bytes = b""
    complete: bool = False
    extra: list[bytes] = field(default_factory=list)


class Recorder:
    """ASGI app: records every request (at scope time, then its body); answers its path.

    Recording at scope time means a smuggled request is seen even if its body never ends.
    Thread-safe: the server runs on another thread than the test.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        client = scope.get("client")
        record = Seen(scope["method"], scope["path"], host, tuple(client) if client else None)
        with self._lock:
            self._seen.append(record)
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # disconnected: the request was cut
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record.body = body
        record.complete = True
        answer = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def statuses(data: bytes) -> list[int]:
    """Status codes of the HTTP/1.x responses in ``data``, in order.

    Responses are split by their Content-Length (every response here has one); what
    cannot be parsed ends the list.
    """
    found: list[int] = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        m = _STATUS_LINE.match(head)
        if not sep or m is None:
            break
        found.append(int(m.group(1)))
        length = _CONTENT_LENGTH.search(head)
        rest = rest[int(length.group(1)) :] if length else b""
    return found


def exchange(sock: socket.socket, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw`` (reading whatever comes back meanwhile), then read until the peer closes.

    The server may answer and close before it has read everything (a 431 in the middle
    of a megabyte); sending then stops.  Fails if the peer neither closes nor resets
    within ``timeout``: a hang is a failure, never a silent pass.
    """
    sock.setblocking(False)
    received = bytearray()
    view = memoryview(raw)
    deadline = time.monotonic() + timeout
    closed = False
    while view and not closed:
        if time.monotonic() > deadline:
            raise AssertionError("could not send the request within the timeout")
        readable, writable, _ = select.select([sock], [sock], [], 0.5)
        if readable:
            closed = _read_some(sock, received)
        if writable and not closed:
            try:
                sent = sock.send(view[:65536])
            except BlockingIOError:
                continue
            except OSError:
                break  # the server gave up on us: read what it said
            view = view[sent:]
    while not closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"the server neither answered nor closed within {timeout}s: {bytes(received)!r}"
            )
        readable, _, _ = select.select([sock], [], [], remaining)
        if readable:
            closed = _read_some(sock, received)
    return bytes(received)


def _read_some(sock: socket.socket, into: bytearray) -> bool:
    """Read what is there; True once the peer closed (or reset) the connection."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    if not data:
        return True
    into += data
    return False


def wait_until(predicate: Any, timeout: float) -> bool:
    """Poll ``predicate`` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
