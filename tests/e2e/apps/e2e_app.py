"""A general-purpose ASGI 3 test app with lifespan support.

Routes (after ``root_path``):

- ``GET /scope``: JSON of ``root_path``, ``path``, ``raw_path`` and the
  request's ``state``; with ``?mutate=KEY`` it then adds KEY to its state.
- ``GET /sleep?seconds=N``: prints ``e2e: sleeping`` to stderr, sleeps, answers.
- ``POST /body``: reads the whole body, answers its length as JSON.
- anything else: ``ok``.

Lifespan startup puts ``x`` in the shared state; shutdown writes the file
named by ``$BASCULE_E2E_SHUTDOWN_MARKER`` when it is set.
"""

import asyncio
import gc
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qs

from bascule.asgi_types import ASGI3App, Receive, Scope, Send

MARKER_ENV = "BASCULE_E2E_SHUTDOWN_MARKER"
STATE_VALUE = "set at startup"
SLEEP_BODY = b"slept\n" * 1000


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The test app."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    root_path: str = scope["root_path"]
    route = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    query = parse_qs(scope["query_string"].decode("latin-1"))
    if route == "/scope":
        state: dict[str, Any] = scope["state"]
        snapshot = {key: str(value) for key, value in state.items()}
        for key in query.get("mutate", []):
            state[key] = "added by a request"
        await _respond(
            send,
            200,
            json.dumps(
                {
                    "root_path": root_path,
                    "path": path,
                    "raw_path": scope["raw_path"].decode("latin-1"),
                    "state": snapshot,
                }
            ).encode(),
            b"application/json",
        )
    elif route == "/sleep":
        seconds = float(query.get("seconds", ["1"])[0])
        print(f"e2e: sleeping {seconds}s", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        await _respond(send, 200, SLEEP_BODY)
    elif route == "/gc-frozen":  # objects the server moved to the permanent generation
        await _respond(send, 200, b"%d" % gc.get_freeze_count())
    elif route == "/body":
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await _respond(send, 200, json.dumps({"length": size}).encode(), b"application/json")
    else:
        await _respond(send, 200, b"ok\n")


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["x"] = STATE_VALUE
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get(MARKER_ENV)
            if marker:
                with open(marker, "w", encoding="utf-8") as f:
                    f.write("lifespan shutdown ran\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> ASGI3App:
    """An app factory (``--factory e2e_app:create_app``)."""

    async def made_by_factory(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _respond(send, 200, b"made by factory\n")
            return
        await app(scope, receive, send)

    return made_by_factory


def failing_factory() -> ASGI3App:
    """A factory that cannot build the app."""
    raise RuntimeError("no settings for the factory")


#: Not an application at all.
not_callable = {"not": "an app"}
