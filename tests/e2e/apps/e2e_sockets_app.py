"""A test app that says which process, loop and listener answered (sockets and gunicorn tests).

- ``GET /sleep?seconds=N``: prints ``e2e-sockets: sleeping`` to stderr, sleeps, answers
  ``SLEEP_BODY``.
- anything else: JSON with ``pid``, ``loop`` (the event loop's module), ``scheme``,
  ``server``, ``client``, ``started_by`` (the pid whose lifespan startup ran, from the
  lifespan state) and ``listen_fds`` (``$LISTEN_FDS`` as the app sees it).

Lifespan startup and shutdown print ``e2e-sockets: startup pid=N`` /
``e2e-sockets: shutdown pid=N`` to stderr.
"""

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs

from bascule.asgi_types import Receive, Scope, Send

SLEEP_BODY = b"slept\n" * 1000


def _say(text: str) -> None:
    # One write per line: workers share stderr, and print() writes the text and
    # its newline separately, so two workers' lines could interleave.
    os.write(sys.stderr.fileno(), f"e2e-sockets: {text}\n".encode())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The test app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_by"] = os.getpid()
                _say(f"startup pid={os.getpid()}")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _say(f"shutdown pid={os.getpid()}")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/sleep":
        seconds = float(parse_qs(scope["query_string"].decode())["seconds"][0])
        _say(f"sleeping {seconds}s pid={os.getpid()}")
        await asyncio.sleep(seconds)
        body = SLEEP_BODY
    else:
        server = scope.get("server")
        body = json.dumps(
            {
                "pid": os.getpid(),
                "loop": type(asyncio.get_running_loop()).__module__,
                "scheme": scope["scheme"],
                "server": list(server) if server else None,
                "client": list(scope["client"]) if scope.get("client") else None,
                "started_by": scope.get("state", {}).get("started_by"),
                "listen_fds": os.environ.get("LISTEN_FDS"),
            }
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
