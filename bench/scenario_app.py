"""The ASGI app of the HTTP/1.1 body scenarios of ``python -m bench``.

Every server under test serves exactly this app, so differences are the servers':

- ``GET /``: ``200 Hello, world!`` (the readiness probe; same bytes as ``bench/app.py``);
- ``GET /json``: a small object serialised with ``json.dumps`` on every request
  (``JSON_BODY``, 57 bytes), ``application/json``;
- ``GET /64k``: a 64 KiB ``application/octet-stream`` body, one ``http.response.body``;
- ``POST /echo``: reads the whole request body and sends it back, with its length;
- anything else: ``404``. Lifespan is acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
JSON_OBJECT = {"message": "Hello, world!", "id": 1, "tags": ["asgi", "json"]}
JSON_BODY = json.dumps(JSON_OBJECT, separators=(",", ":")).encode("utf-8")
BIG_BODY = bytes(range(256)) * 256  # 64 KiB
NOT_FOUND = b"not found"


def _headers(content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", b"%d" % length)]


HELLO_HEADERS = _headers(b"text/plain", len(HELLO))
BIG_HEADERS = _headers(b"application/octet-stream", len(BIG_BODY))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _echo(receive: Receive, send: Send) -> None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # http.disconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await _respond(send, 200, _headers(b"application/octet-stream", len(body)), body)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Route on (method, path) as described in the module docstring."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind != "http":
        raise NotImplementedError(f"unsupported scope type: {kind!r}")
    path, method = scope["path"], scope["method"]
    if path == "/" and method == "GET":
        await _respond(send, 200, HELLO_HEADERS, HELLO)
    elif path == "/json" and method == "GET":
        body = json.dumps(JSON_OBJECT, separators=(",", ":")).encode("utf-8")
        await _respond(send, 200, _headers(b"application/json", len(body)), body)
    elif path == "/64k" and method == "GET":
        await _respond(send, 200, BIG_HEADERS, BIG_BODY)
    elif path == "/echo" and method == "POST":
        await _echo(receive, send)
    else:
        await _respond(send, 404, _headers(b"text/plain", len(NOT_FOUND)), NOT_FOUND)
