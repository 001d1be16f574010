"""The issue's "hot path only" sketch: the cheapest ASGI server that still runs an ASGI app.

Issue 7 measured a throwaway sketch of only the hot path (httptools + uvloop + one Task per
request, no timeouts, no flow control, no error handling) at 2.1x uvicorn, and asks that
bascule's features cost less than a fifth of its speed. This is that sketch, kept in bench/
so the comparison can be re-run: it builds a scope, runs the app in a Task, and answers
with one ``transport.write`` per response. It is not a server anyone should use: it has no
limits, no timeouts, no back-pressure, no request bodies beyond one chunk, and trusts the
app to follow the spec.

Usage::

    python bench/sketch.py bench.app:app [--host 127.0.0.1] [--port 8000]

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any, cast

import httptools
import uvloop

STATUS = {200: b"OK", 404: b"Not Found", 500: b"Internal Server Error"}


class Clock:
    """The ``date`` header, refreshed once a second."""

    __slots__ = ("header",)

    def __init__(self) -> None:
        self.header = b""
        self.refresh()

    def refresh(self) -> None:
        self.header = b"date: " + email.utils.formatdate(usegmt=True).encode("ascii") + b"\r\n"


class SketchProtocol(asyncio.Protocol):
    """One connection: httptools callbacks build the scope; each request runs in a Task."""

    def __init__(self, app: Any, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.clock = clock
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": self.parser.get_method().decode("ascii"),
            "scheme": "http",
            "path": parsed.path.decode("ascii"),
            "raw_path": parsed.path,
            "query_string": parsed.query or b"",
            "root_path": "",
            "headers": self.headers,
            "client": None,
            "server": None,
        }
        self.loop.create_task(self.run(scope, self.body, self.parser.should_keep_alive()))

    async def run(self, scope: dict[str, Any], body: bytes, keep_alive: bool) -> None:
        transport = self.transport
        head: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                head.append(b"HTTP/1.1 %d %s\r\n" % (status, STATUS.get(status, b"")))
                for name, value in message.get("headers", ()):
                    head.append(b"%s: %s\r\n" % (name, value))
                head.append(self.clock.header)
                head.append(b"\r\n")
            elif message["type"] == "http.response.body":
                head.append(message.get("body", b""))
                if not message.get("more_body", False) and transport is not None:
                    transport.write(b"".join(head))
                    head.clear()

        await self.app(scope, receive, send)
        if not keep_alive and transport is not None:
            transport.close()


async def serve(app: Any, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    clock = Clock()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def tick() -> None:
        clock.refresh()
        loop.call_later(1.0, tick)

    loop.call_later(1.0, tick)
    server = await loop.create_server(
        lambda: SketchProtocol(app, clock, loop), host, port, backlog=2048, reuse_address=True
    )
    async with server:
        await stop.wait()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The issue's hot-path-only ASGI sketch.")
    parser.add_argument("app", help="module:attribute of an ASGI 3 app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    module, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
