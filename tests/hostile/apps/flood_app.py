"""App for the connection-flood tests (tests/hostile/test_floods.py).

* ``/``: ``ok``.
* ``/sleep``: ``slept`` after 0.3 s, so that requests of a flood overlap.
* ``/hold``: the response head and ``held`` at once, the end of the body 0.5 s later
  (a client sees the request is in flight).
"""

from __future__ import annotations

import asyncio
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"held", "more_body": True})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"ok"
    if scope["path"] == "/sleep":
        await asyncio.sleep(0.3)
        body = b"slept"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
