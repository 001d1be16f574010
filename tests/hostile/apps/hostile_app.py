"""App for the hostile-client tests that run the real ``bascule`` process.

* ``/``: a small answer.
* ``/stream``: 100 MiB in 64 KiB chunks; ``/progress`` says how many bytes ``send()``
  has accepted so far (so a test sees whether ``send()`` waits for a slow reader).
* ``/ignore-body``: never reads the request body; answers once ``/release`` was called
  (or after 20 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

CHUNK = b"x" * 65536
STREAM_SIZE = 100 * 1024 * 1024

_state: dict[str, Any] = {"sent": 0, "release": None}


async def _answer(send: Any, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _release_event() -> asyncio.Event:
    if _state["release"] is None:
        _state["release"] = asyncio.Event()
    event: asyncio.Event = _state["release"]
    return event


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/stream":
        _state["sent"] = 0
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % STREAM_SIZE)],
            }
        )
        for _ in range(STREAM_SIZE // len(CHUNK)):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            _state["sent"] += len(CHUNK)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/progress":
        await _answer(send, str(_state["sent"]).encode())
        return
    if path == "/ignore-body":
        event = _release_event()
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 20)
        await _answer(send, b"ignored")
        return
    if path == "/release":
        _release_event().set()
    while (await receive()).get("more_body"):
        pass
    await _answer(send, b"ok")
