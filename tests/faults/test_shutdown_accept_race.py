"""A connection accepted in the same loop turn as the shutdown begins is still served.

Its transport is still being set up when shutdown starts (no driver registered yet);
cancelling that set-up would reset a client whose request is already in the socket.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from tests.conftest import LiveServer, recv_until_closed

Live = Callable[..., LiveServer]


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def test_connection_accepted_as_shutdown_begins_is_served(live: Live) -> None:
    server = live(hello)
    bascule = server.server
    acceptor = bascule.acceptor
    assert acceptor is not None
    assert server.loop is not None
    listener = acceptor.listeners[0]
    blocked = threading.Event()
    proceed = threading.Event()

    def accept_then_stop() -> None:
        # In the loop thread: hold the loop while the client connects and sends,
        # then accept it and begin the shutdown in the same turn.
        blocked.set()
        proceed.wait(5)
        acceptor._accept(listener)
        bascule.should_exit.set()

    server.loop.call_soon_threadsafe(accept_then_stop)
    assert blocked.wait(5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        proceed.set()
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert b"connection: close\r\n" in data
    assert data.endswith(b"6\r\nserved\r\n0\r\n\r\n")
