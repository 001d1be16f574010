"""An ASGI app that misbehaves on purpose, and records what it saw.

Routes (HTTP):

- ``/ok``: ``200 ok``.
- ``/slow?seconds=S&size=N``: prints ``faults: started K`` (K requests started so far) to
  stderr, sleeps S seconds (default 1), answers N bytes (default 64 KiB) with a
  Content-Length.
- ``/raise``: raises before any response; ``/raise-mid``: raises after the head and a
  first body chunk went out; ``/sys-exit``: calls ``sys.exit(3)``.
- ``/hang``: never answers; records ``cancelled`` when its task is cancelled.
- ``/hang-stubborn``: never answers and swallows the first cancellations, then keeps
  sleeping (bounded: it gives up after ``STUBBORN_SECONDS``).
- ``/leak``: starts a task that sleeps forever, keeps no handle on it in the request, answers.
- ``/garbage?kind=K``: sends the messages ``GARBAGE[K]`` (invalid ASGI, or a broken body).
- ``/upload``: reads the body; records ``disconnect`` if ``http.disconnect`` comes first.
- ``/stream``: streams 64 KiB chunks (bounded); records how the stream ended.
- ``/wait-disconnect``: reads the whole body, then waits for ``http.disconnect``.

WebSocket: ``/ws-raise-before-accept``, ``/ws-raise-after-accept``, anything else echoes.

Each outcome is recorded as ``(path, outcome)`` (``FaultApp.outcomes``) and, when the app
runs in a bascule subprocess, printed to stderr as ``faults: PATH OUTCOME``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from bascule.asgi_types import Message, Receive, Scope, Send
from bascule.errors import ClientDisconnected

CHUNK = b"x" * 65536
#: /stream sends at most this many chunks (640 MiB): a bound, never reached in the tests.
STREAM_CHUNKS = 10_000
#: /hang-stubborn stops ignoring cancellation after this long.
STUBBORN_SECONDS = 30.0


def _start(status: int = 200, length: int | None = None) -> Message:
    headers = [(b"content-type", b"text/plain")]
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


#: Garbage an app can send.  Each ends with what the client should see: "500" (nothing
#: valid was sent, so the server answers for the app) or "cut" (the head went out, so
#: the server can only cut the connection).
GARBAGE: dict[str, tuple[list[Any], str]] = {
    "not-a-dict": (["http.response.start"], "500"),
    "none": ([None], "500"),
    "no-type": ([{"status": 200}], "500"),
    "unknown-type": ([{"type": "http.response.bogus"}], "500"),
    "status-str": ([{"type": "http.response.start", "status": "200"}], "500"),
    "status-out-of-range": ([{"type": "http.response.start", "status": 42}], "500"),
    "header-str": (
        [{"type": "http.response.start", "status": 200, "headers": [("a", "b")]}],
        "500",
    ),
    "header-not-pair": (
        [{"type": "http.response.start", "status": 200, "headers": [b"ab"]}],
        "500",
    ),
    "header-crlf-injection": (
        [
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-a", b"1\r\nx-injected: yes")],
            },
            _body(b"ok"),
        ],
        "500",
    ),
    "header-name-space": (
        [{"type": "http.response.start", "status": 200, "headers": [(b"x a", b"1")]}, _body(b"")],
        "500",
    ),
    "body-before-start": ([_body(b"hello")], "500"),
    "start-twice": ([_start(), _start()], "500"),
    "body-str": ([_start(), {"type": "http.response.body", "body": "text"}], "500"),
    "more-body-int": (
        [_start(), {"type": "http.response.body", "body": b"", "more_body": 1}],
        "500",
    ),
    "returns-without-response": ([], "500"),
    "returns-after-start": ([_start()], "500"),
    "content-length-short": ([_start(length=10), _body(b"abc")], "cut"),
    "content-length-long": ([_start(length=2), _body(b"abcdef")], "cut"),
    "returns-mid-body": ([_start(), _body(b"partial", more=True)], "cut"),
}


class FaultApp:
    """The app; one instance serves every request of a server."""

    def __init__(self, echo_to_stderr: bool = False) -> None:
        self.echo_to_stderr = echo_to_stderr
        self._lock = threading.Lock()
        self.outcomes: list[tuple[str, str]] = []
        self.started = 0
        #: Tasks /leak started (kept so a test can cancel them; the request does not).
        self.leaked: list[asyncio.Task[None]] = []
        self.routes: dict[str, Callable[[Scope, Receive, Send], Any]] = {
            "/ok": self._ok,
            "/slow": self._slow,
            "/raise": self._raise,
            "/raise-mid": self._raise_mid,
            "/sys-exit": self._sys_exit,
            "/hang": self._hang,
            "/hang-stubborn": self._hang_stubborn,
            "/leak": self._leak,
            "/garbage": self._garbage,
            "/upload": self._upload,
            "/stream": self._stream,
            "/wait-disconnect": self._wait_disconnect,
        }

    # recording ----------------------------------------------------------------------

    def record(self, path: str, outcome: str) -> None:
        with self._lock:
            self.outcomes.append((path, outcome))
        if self.echo_to_stderr:
            print(f"faults: {path} {outcome}", file=sys.stderr, flush=True)

    def seen(self, path: str) -> list[str]:
        with self._lock:
            return [outcome for p, outcome in self.outcomes if p == path]

    def count(self, path: str, outcome: str | frozenset[str]) -> int:
        """How many times ``path`` recorded ``outcome`` (or any of a set of outcomes)."""
        wanted = frozenset([outcome]) if isinstance(outcome, str) else outcome
        return sum(o in wanted for o in self.seen(path))

    def wait_for(
        self, path: str, outcome: str | frozenset[str], count: int = 1, timeout: float = 5.0
    ) -> None:
        """Wait (bounded) until ``path`` recorded ``outcome`` ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.count(path, outcome) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{path} did not record {outcome!r} {count} time(s) within {timeout}s; "
                    f"it saw {self.seen(path)}"
                )
            time.sleep(0.01)

    # the app --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            handler = self.routes.get(scope["path"], self._ok)
            await handler(scope, receive, send)

    async def _ok(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(_start(length=2))
        await send(_body(b"ok"))

    async def _slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        seconds = float(query.get("seconds", ["1"])[0])
        size = int(query.get("size", ["65536"])[0])
        with self._lock:
            self.started += 1
            started = self.started
        if self.echo_to_stderr:
            print(f"faults: started {started}", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        body = (CHUNK * (size // len(CHUNK) + 1))[:size]
        await send(_start(length=size))
        await send(_body(body))

    async def _raise(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the app failed before its response")

    async def _raise_mid(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(_start())
        await send(_body(b"first part, then a crash", more=True))
        raise RuntimeError("the app failed in the middle of its response")

    async def _sys_exit(self, scope: Scope, receive: Receive, send: Send) -> None:
        sys.exit(3)  # what a careless app (or a library it calls) may do

    async def _hang(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.record(scope["path"], "started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.record(scope["path"], "cancelled")
            raise

    async def _hang_stubborn(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.record(scope["path"], "started")
        give_up = time.monotonic() + STUBBORN_SECONDS
        while time.monotonic() < give_up:
            try:
                await asyncio.sleep(give_up - time.monotonic())
            except asyncio.CancelledError:
                self.record(scope["path"], "ignored a cancellation")

    async def _leak(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        with self._lock:
            self.leaked.append(task)
            count = len(self.leaked)
        body = b"leaked %d" % count
        await send(_start(length=len(body)))
        await send(_body(body))

    async def _garbage(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = parse_qs(scope["query_string"].decode("latin-1"))["kind"][0]
        messages, _ = GARBAGE[kind]
        for message in messages:
            await send(message)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.record(path, "disconnect")
                    return
                if not size:
                    self.record(path, "receiving")
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            self.record(path, "cancelled")
            raise
        body = b"%d" % size
        await send(_start(length=len(body)))
        await send(_body(body))
        self.record(path, "answered")

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        try:
            await send(_start())
            for _ in range(STREAM_CHUNKS):
                await send(_body(CHUNK, more=True))
            await send(_body(b""))
        except ClientDisconnected:
            self.record(path, "ClientDisconnected")
            raise
        except asyncio.CancelledError:
            self.record(path, "cancelled")
            raise
        self.record(path, "completed")

    async def _wait_disconnect(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            self.record(path, "waiting")
            message = await receive()
        except asyncio.CancelledError:
            self.record(path, "cancelled")
            raise
        self.record(path, message["type"])

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if scope["path"] == "/ws-raise-before-accept":
            raise RuntimeError("the app failed before accepting")
        await send({"type": "websocket.accept"})
        if scope["path"] == "/ws-raise-after-accept":
            raise RuntimeError("the app failed after accepting")
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


#: What ``bascule faults_app:app --app-dir tests/faults/apps`` serves.
app = FaultApp(echo_to_stderr=True)
