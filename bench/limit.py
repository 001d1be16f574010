"""The machine's limit: a bare asyncio protocol that answers canned responses.

It parses nothing. Every ``\\r\\n\\r\\n`` in the byte stream counts as one request (so it is
only right for requests without a body, such as wrk's GETs) and is answered with the same
``200 Hello, world!`` bytes as ``bench/app.py`` (plus a ``date`` header refreshed once a
second, as every real server sends one), all responses of one read in one
``transport.write``. No ASGI, no scope, no task, no timeout: whatever a real server does
costs time on top of this, so it marks the ceiling that one Python process on one core
reaches with this event loop and this kernel.

Usage::

    python bench/limit.py [--host 127.0.0.1] [--port 8000] [--loop auto|uvloop|asyncio]

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import signal
import sys
from collections.abc import Sequence
from typing import cast

BODY = b"Hello, world!"
TERMINATOR = b"\r\n\r\n"


def _head(date: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\ndate: %s\r\n\r\n"
        % (len(BODY), date)
    )


class Canned:
    """The current canned response; the date part is refreshed once a second."""

    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response = b""
        self.refresh()

    def refresh(self) -> None:
        self.response = _head(email.utils.formatdate(usegmt=True).encode("ascii")) + BODY


class CannedProtocol(asyncio.Protocol):
    """Count request heads by their blank line; write that many responses."""

    __slots__ = ("canned", "tail", "transport")

    def __init__(self, canned: Canned) -> None:
        self.canned = canned
        self.tail = b""  # up to 3 bytes of a terminator split across reads
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        count = data.count(TERMINATOR)
        self.tail = data[-3:] if not data.endswith(TERMINATOR) else b""
        if count and self.transport is not None:
            self.transport.write(self.canned.response * count)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    canned = Canned()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def tick() -> None:
        canned.refresh()
        loop.call_later(1.0, tick)

    loop.call_later(1.0, tick)
    server = await loop.create_server(
        lambda: CannedProtocol(canned), host, port, backlog=2048, reuse_address=True
    )
    async with server:
        await stop.wait()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Canned-response HTTP/1.1 server (no parsing).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loop != "asyncio":
        try:
            import uvloop  # noqa: PLC0415 (optional)
        except ImportError:
            if args.loop == "uvloop":
                print("error: uvloop is not installed", file=sys.stderr)
                return 2
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
