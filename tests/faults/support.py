"""Helpers of the fault tests: resets, leak accounting on an in-thread server, raw requests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.conftest import LiveServer


def reset_close(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER on, timeout 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def fin_close(sock: socket.socket) -> None:
    """Half-close (FIN), then close: the polite way to leave."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


CLOSERS: dict[str, Callable[[socket.socket], None]] = {"rst": reset_close, "fin": fin_close}


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` every 10 ms until it holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or predicate}")
        time.sleep(0.01)


def fd_count() -> int:
    """Open file descriptors of this process (the in-thread server's included)."""
    return len(os.listdir("/proc/self/fd"))


def loop_task_count(live: LiveServer) -> int:
    """asyncio tasks alive on the server's loop (not counting the one asking)."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    assert live.loop is not None
    return asyncio.run_coroutine_threadsafe(count(), live.loop).result(5)


@dataclass(frozen=True)
class Baseline:
    """What an idle server holds: compared with the same after a test's faults."""

    loop_tasks: int
    fds: int

    @classmethod
    def of(cls, live: LiveServer) -> Baseline:
        return cls(loop_task_count(live), fd_count())


def assert_nothing_leaked(live: LiveServer, baseline: Baseline, timeout: float = 5.0) -> None:
    """No request task, no connection, no extra loop task or descriptor is left."""
    state = live.server.state
    assert state is not None

    def settled() -> bool:
        return (
            not state.tasks
            and not state.connections
            and loop_task_count(live) <= baseline.loop_tasks
            and fd_count() <= baseline.fds
        )

    try:
        wait_until(settled, timeout)
    except AssertionError:
        raise AssertionError(
            f"leak: {len(state.tasks)} request task(s), {len(state.connections)} connection(s), "
            f"{loop_task_count(live)} loop tasks (baseline {baseline.loop_tasks}), "
            f"{fd_count()} fds (baseline {baseline.fds})"
        ) from None


def warmed_up(live: LiveServer) -> LiveServer:
    """``live`` after one good and one failing request: whatever is opened lazily on the
    first request or the first error log (one descriptor, on /dev/null) is in the baseline."""
    for path in ("/ok", "/raise"):
        with live.connect() as sock:
            send_request(sock, "GET", path, headers=b"connection: close\r\n")
            read_all(sock)
    return live


def send_request(
    sock: socket.socket, method: str, path: str, body: bytes = b"", headers: bytes = b""
) -> None:
    """Write one HTTP/1.1 request (``headers``: extra lines, each ending in CRLF)."""
    length = b"content-length: %d\r\n" % len(body) if body or method == "POST" else b""
    sock.sendall(
        b"%s %s HTTP/1.1\r\nhost: 127.0.0.1\r\n%s%s\r\n%s"
        % (method.encode(), path.encode(), length, headers, body)
    )


def read_all(sock: socket.socket, limit: int = 1 << 22) -> bytes:
    """Everything until the server closes (bounded by size and the socket's timeout)."""
    out = bytearray()
    while len(out) < limit:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        out += data
    return bytes(out)
