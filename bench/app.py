"""Minimal ASGI 3 hello-world application used by ``bench/run.py``.

Every server under test (bascule, uvicorn, hypercorn) serves exactly this
app, so the benchmark measures server overhead rather than application work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode("ascii")),
]


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown; return once shutdown is done."""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with ``200 Hello, world!``."""
    scope_type = scope["type"]
    if scope_type == "lifespan":
        await _lifespan(receive, send)
    elif scope_type == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    else:
        raise NotImplementedError(f"unsupported scope type: {scope_type!r}")
