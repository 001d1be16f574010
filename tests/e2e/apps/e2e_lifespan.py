"""Apps whose lifespan support is broken or missing."""

import asyncio
import sys

from bascule.asgi_types import Receive, Scope, Send

FAILURE_MESSAGE = "db down"


async def _ok(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok\n"})


async def startup_fails(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports ``lifespan.startup.failed`` with the message ``db down``."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": FAILURE_MESSAGE})
        return
    await _ok(send)


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Raises on the lifespan scope, as apps that do not know about lifespan do."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    await _ok(send)


async def startup_hangs(scope: Scope, receive: Receive, send: Send) -> None:
    """Never finishes lifespan startup (a dependency that never answers)."""
    if scope["type"] == "lifespan":
        await receive()
        print("e2e: startup hanging", file=sys.stderr, flush=True)
        await asyncio.sleep(3600)
        return
    await _ok(send)
