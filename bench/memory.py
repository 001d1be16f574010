"""Memory of a server holding idle keep-alive connections (the ``memory`` scenario).

The method: after the readiness probe, one warm-up connection sends ``WARMUP_REQUESTS``
requests (so lazy imports and caches are paid for); the resident set of the server's
whole process group (``VmRSS`` summed over ``/proc/*/status`` of its members, since
granian and hypercorn run a worker beside their main process) is read; then ``count``
connections are opened in batches, each sends one ``GET /`` and reads its response
whole, and stays open and idle. After ``SETTLE_S`` the resident set is read again. The
per-connection cost is the difference divided by the number of connections still open
at that moment (checked with a non-blocking ``MSG_PEEK`` on each socket).

Every loop is bounded: by the connection count and by ``deadline_s`` for the whole
opening phase, which must stay under the servers' keep-alive timeout (5 s for uvicorn,
bascule and hypercorn by default).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, world!"
WARMUP_REQUESTS = 200
#: Connections opened before their responses are read: below daphne's listen
#: backlog of 50, so that no server's backlog overflows mid-batch.
BATCH = 40
SETTLE_S = 0.5
MAX_RESPONSE = 65536


class MemoryRunFailed(Exception):
    """The measurement could not be taken."""


@dataclass(frozen=True)
class MemoryResult:
    """RSS before and with the idle connections, in KiB."""

    base_kib: int
    loaded_kib: int
    opened: int
    open_at_read: int
    seconds_to_open: float

    @property
    def per_connection_kib(self) -> float:
        return (self.loaded_kib - self.base_kib) / max(1, self.open_at_read)


def _pgrp(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 5 (pgrp) comes after the command name, which is in parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[2]) if len(fields) > 2 else None


def _vmrss_kib(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def group_rss_kib(pgid: int) -> int | None:
    """Sum of VmRSS (KiB) over the live processes of process group ``pgid``."""
    total, found = 0, False
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or _pgrp(pid) != pgid:
            continue
        rss = _vmrss_kib(pid)
        if rss is not None:
            total += rss
            found = True
    return total if found else None


def _read_response(sock: socket.socket, deadline: float) -> None:
    """Read one ``200 Hello, world!`` response (it ends with the body) or raise."""
    data = b""
    while not data.endswith(BODY):
        if time.monotonic() > deadline or len(data) > MAX_RESPONSE:
            raise MemoryRunFailed(f"no complete response in time (got {data[:80]!r})")
        chunk = sock.recv(4096)
        if not chunk:
            raise MemoryRunFailed(f"connection closed before the response end ({data[:80]!r})")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise MemoryRunFailed(f"unexpected response {data[:80]!r}")


def _is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)  # a timeout would make recv wait for data first
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing to read and not closed: idle and open
    except OSError:
        return False
    return bool(data)  # b"" is the peer's FIN


def _warm_up(port: int, deadline: float) -> None:
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        for _ in range(WARMUP_REQUESTS):
            sock.sendall(REQUEST)
            _read_response(sock, deadline)


def measure(port: int, pgid: int, count: int, deadline_s: float = 4.0) -> MemoryResult:
    """Open ``count`` idle keep-alive connections and return the RSS before and with them."""
    _warm_up(port, time.monotonic() + 10.0)
    time.sleep(SETTLE_S)
    base = group_rss_kib(pgid)
    if base is None:
        raise MemoryRunFailed(f"no process in group {pgid} to read VmRSS from")
    socks: list[socket.socket] = []
    start = time.monotonic()
    deadline = start + deadline_s
    try:
        while len(socks) < count:
            batch: list[socket.socket] = []
            for _ in range(min(BATCH, count - len(socks))):
                sock = socket.create_connection((HOST, port), timeout=deadline_s)
                socks.append(sock)
                batch.append(sock)
                sock.sendall(REQUEST)
            for sock in batch:
                _read_response(sock, deadline)
            if time.monotonic() > deadline:
                raise MemoryRunFailed(
                    f"opening {count} connections took over {deadline_s:.0f} s "
                    f"({len(socks)} opened)"
                )
        opened_in = time.monotonic() - start
        time.sleep(SETTLE_S)
        loaded = group_rss_kib(pgid)
        open_now = sum(1 for sock in socks if _is_open(sock))
    except OSError as exc:
        raise MemoryRunFailed(f"after {len(socks)} connections: {exc!r}") from exc
    finally:
        for sock in socks:
            sock.close()
    if loaded is None:
        raise MemoryRunFailed("the server's processes vanished while connections were open")
    return MemoryResult(base, loaded, len(socks), open_now, opened_in)
