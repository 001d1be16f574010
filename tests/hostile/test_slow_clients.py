"""Slow and idle clients against the real ``bascule`` process: time and memory stay bounded.

* slowloris: hundreds of connections dribbling a request head one byte a second are cut
  at ``--timeout-request-header`` while a normal client is answered at once;
* idle keep-alive connections and slowloris connections are all closed by their timeouts;
* a client reading a 100 MiB response slowly: the app's ``send()`` waits, RSS stays flat;
* a large upload the app never reads: the server buffers a bounded amount, then stops
  reading, and the client's ``send()`` blocks.

The server runs as a subprocess (``tests/e2e/process.py``) so its RSS is its own and the
test's sockets do not share its GIL.  Many-connection loops use non-blocking sockets and
``selectors``; every loop is bounded in time.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.process import BasculeProcess, start_bascule
from tests.hostile.support import statuses

APPS = Path(__file__).resolve().parent / "apps"
KEEP_ALIVE = 1.0
HEADER_TIMEOUT = 2.0
STREAM_SIZE = 100 * 1024 * 1024
MIB = 1024 * 1024
#: "A few MiB above baseline" (the issue); generous enough for allocator noise.
RSS_BOUND = 12 * MIB


def connection_budget(wanted: int, per_connection: int = 2) -> int:
    """``wanted``, or fewer if the descriptor limit would not allow it (both ends count)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(10, min(wanted, (soft - 200) // per_connection))


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BasculeProcess]:
    args = [
        "hostile_app:app",
        "--app-dir",
        str(APPS),
        "--port",
        "0",
        "--lifespan",
        "off",
        "--no-access-log",
        "--timeout-keep-alive",
        str(KEEP_ALIVE),
        "--timeout-request-header",
        str(HEADER_TIMEOUT),
    ]
    with start_bascule(args, tmp_path_factory.mktemp("slow")) as proc:
        yield proc


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
    """One request on a fresh connection: (status, body, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET %b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, time.monotonic() - start


@dataclass
class Conn:
    """One hostile connection in a selector loop."""

    sock: socket.socket
    opened: float
    kind: str
    received: bytes = b""
    sent: int = 0
    answered_at: float | None = None
    closed_at: float | None = None
    extra: list[bytes] = field(default_factory=list)


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 4096


def open_conns(port: int, count: int, kind: str, sel: selectors.BaseSelector) -> list[Conn]:
    conns = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        conn = Conn(sock, time.monotonic(), kind)
        sel.register(sock, selectors.EVENT_READ, conn)
        conns.append(conn)
    return conns


def drip(conns: list[Conn]) -> None:
    """Send the next byte of the never-ending head on every open slowloris connection."""
    for conn in conns:
        if conn.closed_at is None and conn.kind == "slow":
            with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                conn.sent += conn.sock.send(SLOW_HEAD[conn.sent : conn.sent + 1])


def pump(sel: selectors.BaseSelector, wait: float) -> None:
    """Read what arrived on any connection; note answers and closes."""
    for key, _ in sel.select(wait):
        conn: Conn = key.data
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            data = b""
        now = time.monotonic()
        if data:
            conn.received += data
            if conn.answered_at is None and statuses(conn.received):
                conn.answered_at = now
            continue
        conn.closed_at = now
        sel.unregister(conn.sock)
        conn.sock.close()


def close_all(conns: list[Conn], sel: selectors.BaseSelector) -> None:
    for conn in conns:
        if conn.closed_at is None:
            sel.unregister(conn.sock)
            conn.sock.close()
    sel.close()


def test_slowloris_is_cut_while_others_are_served(server: BasculeProcess) -> None:
    count = connection_budget(500)
    sel = selectors.DefaultSelector()
    conns = open_conns(server.port, count, "slow", sel)
    latencies: list[float] = []
    try:
        start = time.monotonic()
        next_drip = start
        next_probe = start
        while any(c.closed_at is None for c in conns) and time.monotonic() < start + 8:
            now = time.monotonic()
            if now >= next_drip:
                drip(conns)  # one header byte per second
                next_drip += 1.0
            if now >= next_probe:
                status, body, seconds = get(server.port, "/")
                assert (status, body) == (200, b"ok")
                latencies.append(seconds)
                next_probe = time.monotonic() + 0.1
            pump(sel, 0.05)
    finally:
        close_all(conns, sel)
    open_left = [c for c in conns if c.closed_at is None]
    assert not open_left, f"{len(open_left)} of {count} slowloris connections still open"
    for conn in conns:
        assert conn.closed_at is not None
        lifetime = conn.closed_at - conn.opened
        # Cut at the header timeout (the server's tick fires up to a quarter late).
        assert HEADER_TIMEOUT - 0.3 < lifetime < HEADER_TIMEOUT + 2.5, lifetime
        assert statuses(conn.received) in ([], [408]), conn.received[:200]
    assert len(latencies) >= 10
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
    server.wait_for_line(r"request head from .* not received within", timeout=2)


def test_idle_and_slow_connections_are_all_closed(server: BasculeProcess) -> None:
    count = connection_budget(500, per_connection=4)
    sel = selectors.DefaultSelector()
    idle = open_conns(server.port, count, "idle", sel)
    slow = open_conns(server.port, count, "slow", sel)
    conns = idle + slow
    try:
        for conn in idle:  # one request each, then nothing: idle keep-alive connections
            conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        next_drip = start
        while any(c.closed_at is None for c in conns) and time.monotonic() < start + 8:
            if time.monotonic() >= next_drip:
                drip(conns)
                next_drip += 1.0
            pump(sel, 0.05)
    finally:
        close_all(conns, sel)
    assert all(c.closed_at is not None for c in conns), "connections left open"
    for conn in idle:
        assert statuses(conn.received) == [200], conn.received[:200]
        assert conn.answered_at is not None
        assert conn.closed_at is not None
        idle_for = conn.closed_at - conn.answered_at
        assert KEEP_ALIVE - 0.3 < idle_for < KEEP_ALIVE + 2.0, idle_for
    for conn in slow:
        assert conn.closed_at is not None
        lifetime = conn.closed_at - conn.opened
        assert HEADER_TIMEOUT - 0.3 < lifetime < HEADER_TIMEOUT + 2.5, lifetime


def test_slow_reader_of_a_big_stream(server: BasculeProcess) -> None:
    for _ in range(5):
        assert get(server.port, "/")[0] == 200
    baseline = rss(server.pid)
    peak = baseline
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read nothing: the app's send() must stop well short of 100 MiB.
        time.sleep(1.0)
        first = int(get(server.port, "/progress")[1])
        time.sleep(0.5)
        second = int(get(server.port, "/progress")[1])
        peak = max(peak, rss(server.pid))
        assert first == second, "send() kept going while the client read nothing"
        assert 0 < second < 16 * MIB, second
        # Read slowly: the app advances with the reader.
        received = 0
        for _ in range(40):
            received += len(sock.recv(65536))
            time.sleep(0.005)
        assert int(get(server.port, "/progress")[1]) > second
        # Then read the rest, watching the server's memory all along.
        deadline = time.monotonic() + 8
        next_sample = received
        while received < STREAM_SIZE and time.monotonic() < deadline:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if received >= next_sample:
                peak = max(peak, rss(server.pid))
                next_sample += 5 * MIB
    assert received >= STREAM_SIZE  # head + the whole body arrived
    assert peak - baseline < RSS_BOUND, (baseline, peak)


def test_large_upload_the_app_never_reads(server: BasculeProcess) -> None:
    for _ in range(5):
        assert get(server.port, "/")[0] == 200
    baseline = rss(server.pid)
    chunk = b"u" * MIB
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 30)
        )
        sock.setblocking(False)
        sent = 0
        stalled_since = time.monotonic()
        deadline = time.monotonic() + 8
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_WRITE)
        # Send until the server has stopped reading: send() makes no progress for 1 s.
        while time.monotonic() - stalled_since < 1.0 and time.monotonic() < deadline:
            if sel.select(0.1):
                try:
                    n = sock.send(chunk)
                except BlockingIOError:
                    n = 0
                if n:
                    sent += n
                    stalled_since = time.monotonic()
            assert sent < 256 * MIB, "the server keeps reading a body nobody reads"
        sel.close()
        grown = rss(server.pid) - baseline
        # Back-pressure: the client is blocked long before 1 GiB; what it could send sits
        # in kernel socket buffers, not in the server's memory.
        assert time.monotonic() - stalled_since >= 1.0, "the upload never blocked"
        assert sent < 64 * MIB, sent
        assert grown < RSS_BOUND, grown
        # The app answers without reading; the unread body ends the connection.
        assert get(server.port, "/release")[0] == 200
        sock.setblocking(True)
        data = b""
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
    assert statuses(data) == [200], data[:200]
    assert data.endswith(b"ignored")
