"""Minimal ASGI 3 WebSocket echo application used by ``bench/ws_run.py``.

Every server under test serves exactly this app, so the benchmark measures
server overhead rather than application work:

- ``websocket``: accept, then echo every message back unchanged (text as
  text, bytes as bytes) until the client disconnects;
- ``http``: ``GET /`` answers ``200 ok`` (the readiness probe), anything else
  ``404``;
- ``lifespan``: startup and shutdown are acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OK_BODY = b"ok"
NOT_FOUND_BODY = b"not found"


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode("ascii")),
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


async def _http(scope: Scope, send: Send) -> None:
    """``GET /`` -> 200 ok (readiness probe); anything else -> 404."""
    if scope["method"] in ("GET", "HEAD") and scope["path"] == "/":
        status, body = 200, OK_BODY
    else:
        status, body = 404, NOT_FOUND_BODY
    await send({"type": "http.response.start", "status": status, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})


async def _websocket(receive: Receive, send: Send) -> None:
    """Accept, then echo every message until the client goes away."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            # Servers may send both keys with one of them None (hypercorn does).
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif kind == "websocket.disconnect":
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The echo app: WebSocket echo, ``GET /`` readiness, lifespan."""
    scope_type = scope["type"]
    if scope_type == "websocket":
        await _websocket(receive, send)
    elif scope_type == "http":
        await _http(scope, send)
    elif scope_type == "lifespan":
        await _lifespan(receive, send)
    else:
        raise NotImplementedError(f"unsupported scope type: {scope_type!r}")
