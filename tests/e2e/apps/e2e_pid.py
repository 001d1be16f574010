"""An app that answers with the PID of the worker process serving it.

- ``GET /``: the process id, as text.
- ``GET /sleep?seconds=N``: prints ``e2e_pid: sleeping`` to stderr, sleeps N
  seconds, then answers the process id.

Lifespan is supported (startup and shutdown complete at once).
"""

import asyncio
import os
import sys
from urllib.parse import parse_qs

from bascule.asgi_types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The test app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/sleep":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        print("e2e_pid: sleeping", file=sys.stderr, flush=True)
        await asyncio.sleep(float(query.get("seconds", ["1"])[0]))
    body = str(os.getpid()).encode("ascii")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
