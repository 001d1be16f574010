"""Shared fixtures: a real bascule server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bascule.aio.server import Server
from bascule.config import Config
from bascule.main import loop_factory


class LiveServer:
    """A bascule Server running on its own event loop thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        options.setdefault("port", 0)
        options.setdefault("lifespan", "off")
        # The server shares the test process: do not freeze the suite's objects.
        options.setdefault("gc_freeze", False)
        self.config = Config(app=app, **options).validate()
        self.server = Server(self.config, app)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.exit_status: int | None = None
        self.error: BaseException | None = None

    def _main(self) -> None:
        loop = loop_factory(self.config.loop)()
        self.loop = loop
        asyncio.set_event_loop(loop)

        async def run() -> int:
            waiter = loop.create_task(self.server.serve(install_signals=False))
            while not self.server.addresses and not waiter.done():
                await asyncio.sleep(0.005)
            self._ready.set()
            return await waiter

        try:
            self.exit_status = loop.run_until_complete(run())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("server did not start within 10 s")
        if self.error is not None:
            raise self.error
        return self

    @property
    def port(self) -> int:
        return int(self.server.addresses[0].rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self, timeout: float = 15) -> None:
        loop = self.loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.server.should_exit.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("server thread did not stop")


@pytest.fixture
def live() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live(app, **options)`` starts a server; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(app: Any, **options: Any) -> LiveServer:
        server = LiveServer(app, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def recv_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Read until the peer closes (bounded in size; the socket has a timeout)."""
    chunks = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def recv_response(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length or chunked body (bounded)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
    elif b"transfer-encoding: chunked" in lower:
        while not rest.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                break
            rest += data
    return head + b"\r\n\r\n" + rest


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Raw HTTP/2 clients (tests.support.h2client.H2Client) a test made; closed afterwards."""
    made: list[Any] = []
    yield made
    for client in made:
        client.close()
