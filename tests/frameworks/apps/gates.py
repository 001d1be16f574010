"""Named one-shot gates that let a test prove a response streams.

A streaming endpoint sends a first chunk, then waits on the gate named by the
request; a second request opens that gate.  A server that buffered the whole
response would hold the first chunk back, so the client would never see it
before opening the gate and the endpoint would time out instead.

Gates are ``threading.Event`` objects so sync (WSGI thread pool) and async
code can share them; async code polls, which keeps it loop-agnostic.
"""

from __future__ import annotations

import asyncio
import threading
import time

#: How long a streaming endpoint waits for its gate before giving up.
GATE_TIMEOUT = 5.0
_POLL = 0.005

_gates: dict[str, threading.Event] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    """The gate called ``name`` (created closed on first use)."""
    with _lock:
        return _gates.setdefault(name, threading.Event())


def release(name: str) -> None:
    """Open the gate called ``name``."""
    gate(name).set()


def wait_sync(name: str, timeout: float = GATE_TIMEOUT) -> bool:
    """Block until the gate opens; False on timeout."""
    return gate(name).wait(timeout)


async def wait_async(name: str, timeout: float = GATE_TIMEOUT) -> bool:
    """Wait (polling, bounded) until the gate opens; False on timeout."""
    event = gate(name)
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


def after_gate(opened: bool) -> str:
    """The line a streaming endpoint sends once its wait is over."""
    return "released\n" if opened else "timed out\n"
