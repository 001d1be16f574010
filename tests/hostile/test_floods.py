"""Connection floods and descriptor exhaustion against the real ``bascule`` process.

* Past ``--limit-max-connections`` accepting pauses: the flood waits in the listen
  backlog, the connections already open are still served, and the flood is served
  as connections close.
* Past ``--limit-concurrency`` requests are answered 503 at once.
* Out of file descriptors (a low ``RLIMIT_NOFILE`` set on the running server with
  ``prlimit``), accepting pauses with one log line per interval, and resumes once
  descriptors come free: a fresh client is answered. The recovery is logged also when
  nobody is waiting in the backlog by then.

Each test counts the server's descriptors (``/proc/PID/fd``) before and after: the
count returns to its baseline.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import re
import resource
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.process import BasculeProcess, http_port, start_bascule
from tests.hostile.support import statuses

APPS = Path(__file__).resolve().parent / "apps"
FLOOD = 500
CAP = 20
#: Options every server here runs with: idle connections stay open unless the test closes them.
BASE_ARGS = [
    "flood_app:app",
    "--app-dir",
    str(APPS),
    "--port",
    "0",
    "--lifespan",
    "off",
    "--no-access-log",
    "--timeout-keep-alive",
    "30",
    "--timeout-request-header",
    "30",
]
GET = b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n"
GET_CLOSE = b"GET %b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

#: The path of an access-log line of the requests the fairness test names.
ACCESS_PATH = re.compile(r"GET /(\w+)")

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def wait_fd_count(pid: int, wanted: int, timeout: float = 5.0) -> int:
    """Wait (bounded) until ``pid`` has at most ``wanted`` descriptors; the last count."""
    deadline = time.monotonic() + timeout
    count = fd_count(pid)
    while count > wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        count = fd_count(pid)
    return count


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def get(port: int, path: bytes = b"/", timeout: float = 5.0) -> int:
    """One request on a fresh connection; its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(GET_CLOSE % path)
        data = read_until_closed(sock, time.monotonic() + timeout)
    found = statuses(data)
    assert found, data
    return found[0]


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_response(sock: socket.socket, timeout: float) -> int:
    """One keep-alive response (a 2-byte body at most here); its status."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if statuses(data):
            return statuses(data)[0]
    raise AssertionError(f"no whole response within {timeout}s: {data!r}")


def readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets with something to read (data or EOF) within ``timeout``."""
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in sel.select(timeout)]  # type: ignore[misc]


def read_head(sock: socket.socket, timeout: float) -> int:
    """Read a response head (and whatever came with it); its status."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 "), data
    return int(data.split(b" ", 2)[1])


def collect_until_closed(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """Read every socket until its peer closes it (bounded); what each received."""
    received = [b""] * len(socks)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for index, sock in enumerate(socks):
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, index)
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                try:
                    chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[key.data] += chunk
                else:
                    sel.unregister(key.fileobj)
    return received


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
    socks.clear()


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Client sockets of a test: closed at its end whatever happens."""
    opened: list[socket.socket] = []
    yield opened
    close_all(opened)


def baseline(server: BasculeProcess) -> int:
    """The server's descriptor count when idle, after one request warmed it up."""
    assert get(server.port) == 200
    time.sleep(0.1)
    return fd_count(server.pid)


def leave_one_descriptor(pid: int) -> Callable[[], None]:
    """Set ``pid``'s soft RLIMIT_NOFILE just above its lowest free descriptor number, so
    that it can open one more descriptor; the function returned gives it 8.

    Linux fails accept() for want of a descriptor before it looks at the backlog, so the
    accept() after the one that took the spare descriptor fails even with nobody waiting.
    Measured on a server that has served a request: libuv opens a reserve descriptor of
    its own on its first connection.
    """
    used = {int(entry.name) for entry in Path(f"/proc/{pid}/fd").iterdir()}
    spare = min(set(range(len(used) + 1)) - used)
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (spare + 1, hard))

    def restore() -> None:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (spare + 8, hard))

    return restore


def take_the_last_descriptor(
    server: BasculeProcess, port: int, sockets: list[socket.socket]
) -> tuple[socket.socket, Callable[[], None]]:
    """Leave ``server`` one descriptor, which a client on ``port`` then takes: the client
    (served, kept open) and the function that gives the server descriptors again."""
    restore = leave_one_descriptor(server.pid)
    client = connect(port)
    sockets.append(client)
    client.sendall(GET % b"/")
    assert read_response(client, 5.0) == 200
    line = server.wait_for_line("cannot accept connections", timeout=10)
    assert "Too many open files" in line
    return client, restore


def test_flood_past_max_connections_waits_then_is_served(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    args = [*BASE_ARGS, "--limit-max-connections", str(CAP)]
    with start_bascule(args, tmp_path) as server:
        port, pid = server.port, server.pid
        base = baseline(server)
        # CAP keep-alive connections, each served once: the server is at its cap.
        kept = [connect(port) for _ in range(CAP)]
        sockets.extend(kept)
        for sock in kept:
            sock.sendall(GET % b"/")
        assert [read_response(sock, 5) for sock in kept] == [200] * CAP
        # The flood connects (the kernel completes the handshakes) and asks.
        flood = [connect(port) for _ in range(FLOOD)]
        sockets.extend(flood)
        for sock in flood:
            sock.sendall(GET_CLOSE % b"/")
        server.wait_for_line("accepting paused", timeout=10)
        # Not accepted: no answer, and no descriptor spent on the flood.
        assert readable(flood, 0.5) == []
        assert fd_count(pid) <= base + CAP
        # The connections already open are still served, promptly.
        start = time.monotonic()
        for sock in kept:
            sock.sendall(GET % b"/")
        assert [read_response(sock, 2) for sock in kept] == [200] * CAP
        assert time.monotonic() - start < 2.0
        # Half the kept connections close: the flood is accepted and served in turn.
        for sock in kept[: CAP // 2]:
            sock.close()
        received = collect_until_closed(flood, timeout=8)
        answered = [statuses(data)[:1] for data in received]
        assert answered == [[200]] * FLOOD
        close_all(sockets)
        # Every descriptor the flood used came back.
        assert wait_fd_count(pid, base) == base
        assert get(port) == 200
        pauses = [line for line in server.lines if "accepting paused" in line]
        assert 1 <= len(pauses) <= 3, pauses
        assert "Traceback" not in server.stderr


def test_flood_past_limit_concurrency_gets_503(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    limit = 10
    args = [*BASE_ARGS, "--limit-concurrency", str(limit)]
    with start_bascule(args, tmp_path) as server:
        port, pid = server.port, server.pid
        base = baseline(server)
        # A few requests within the limit, in flight (their heads arrived) for 0.5 s...
        held = [connect(port) for _ in range(limit // 2)]
        sockets.extend(held)
        for sock in held:
            sock.sendall(GET_CLOSE % b"/hold")
        assert [read_head(sock, 5) for sock in held] == [200] * len(held)
        # ...then a flood of connections, each asking for a 0.3 s request.
        flood = [connect(port) for _ in range(FLOOD)]
        sockets.extend(flood)
        start = time.monotonic()
        for sock in flood:
            sock.sendall(GET_CLOSE % b"/sleep")
        received = collect_until_closed(flood, timeout=8)
        elapsed = time.monotonic() - start
        answered = [statuses(data)[:1] for data in received]
        unavailable = answered.count([503])
        # Every request of the flood is answered, nearly all with 503 at once (not
        # queued behind the requests in flight), and those finish undisturbed.
        assert answered.count([200]) + unavailable == FLOOD, [
            a for a in answered if a not in ([200], [503])
        ][:5]
        assert unavailable >= FLOOD - 2 * limit
        assert elapsed < 5
        for data in collect_until_closed(held, timeout=3):
            assert data.endswith(b"0\r\n\r\n"), data  # the last chunk: a whole response
        close_all(sockets)
        # Responsive afterwards, and no descriptor leaked.
        assert get(port, b"/sleep") == 200
        assert wait_fd_count(pid, base) == base
        assert "concurrency limit 10 reached: 503" in server.stderr
        # a flood of 503s is not a flood of log lines (at most one per 5 s)
        assert server.stderr.count("concurrency limit 10 reached") <= 3, server.stderr
        assert "Traceback" not in server.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_descriptor_exhaustion_pauses_and_resumes_accepting(
    tmp_path: Path, sockets: list[socket.socket], loop: str
) -> None:
    pytest.importorskip(loop)
    limit = 64
    idle = 100
    with start_bascule([*BASE_ARGS, "--loop", loop], tmp_path) as server:
        port, pid = server.port, server.pid
        base = baseline(server)
        assert base < limit - 10, f"the server already holds {base} descriptors"
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        # More idle connections than descriptors: the server accepts until it has none.
        sockets.extend(connect(port) for _ in range(idle))
        first = server.wait_for_line("cannot accept connections", timeout=10)
        logged = time.monotonic()
        assert "Too many open files" in first
        # Accepting stays paused and retries (each close and each tick) for a while:
        # at most one line per interval (5 s), never a traceback per failed accept().
        time.sleep(2.5)
        assert server.running()
        failures = [line for line in server.lines if "cannot accept" in line]
        assert 1 <= len(failures) <= 1 + (time.monotonic() - logged) // 5, failures
        assert "Traceback" not in server.stderr
        assert fd_count(pid) <= limit
        # A fresh client waits in the backlog; once the idle connections go, it is
        # answered, and the server says accepting works again.
        fresh = connect(port)
        sockets.append(fresh)
        fresh.sendall(GET_CLOSE % b"/")
        assert readable([fresh], 0.3) == []
        for sock in sockets[:idle]:
            sock.close()
        data = read_until_closed(fresh, time.monotonic() + 5)
        assert statuses(data) == [200], data
        server.wait_for_line("accepting connections on .* again", timeout=10)
        close_all(sockets)
        assert get(port) == 200
        assert wait_fd_count(pid, base) == base
        assert "Traceback" not in server.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_recovery_from_descriptor_exhaustion_is_seen_with_an_empty_backlog(
    tmp_path: Path, sockets: list[socket.socket], loop: str
) -> None:
    pytest.importorskip(loop)
    with start_bascule([*BASE_ARGS, "--loop", loop], tmp_path) as server:
        port, pid = server.port, server.pid
        base = baseline(server)
        # One descriptor to spare: the first client takes it, and the accept() the server
        # tries next fails for want of a descriptor, though no other client is waiting.
        first, restore = take_the_last_descriptor(server, port, sockets)
        # The client leaves, its descriptor comes free, and the backlog is empty: the
        # server must find out that accepting works by itself, not from the next client.
        first.close()
        server.wait_for_line("accepting connections on .* again", timeout=10)
        restore()
        assert get(port) == 200
        assert wait_fd_count(pid, base) == base
        assert "Traceback" not in server.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_recovery_counts_once_every_listener_accepts(
    tmp_path: Path, sockets: list[socket.socket], loop: str
) -> None:
    pytest.importorskip(loop)
    args = [arg for arg in BASE_ARGS if arg not in ("--port", "0")]
    args += ["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0", "--loop", loop]
    with start_bascule(args, tmp_path, listeners=2) as server:
        pid = server.pid
        quiet, busy = (http_port(address) for address in server.http_addresses)
        base = baseline(server)
        # The second listener's client takes the spare descriptor; accepting fails.
        first, restore = take_the_last_descriptor(server, busy, sockets)
        waiting = connect(busy)
        sockets.append(waiting)
        waiting.sendall(GET % b"/")
        # The first client leaves: its descriptor goes to the client waiting on the same
        # listener, and accepting fails again. The other listener, with nobody waiting,
        # accepts nothing: that is no recovery.
        first.close()
        assert read_response(waiting, 5.0) == 200
        time.sleep(0.3)
        assert not [line for line in server.lines if " again after " in line], server.stderr
        # Once the second client leaves too, every listener can accept: one line says so,
        # and names the listener that failed.
        waiting.close()
        line = server.wait_for_line("accepting connections on .* again", timeout=10)
        assert f":{busy} again after " in line, line
        restore()
        assert get(quiet) == 200
        assert get(busy) == 200
        assert wait_fd_count(pid, base) == base
        assert "Traceback" not in server.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_descriptors_that_come_free_go_to_every_listener_in_turn(
    tmp_path: Path, sockets: list[socket.socket], loop: str
) -> None:
    pytest.importorskip(loop)
    args = [arg for arg in BASE_ARGS if arg not in ("--port", "0", "--no-access-log")]
    args += ["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0", "--loop", loop]
    with start_bascule(args, tmp_path, listeners=2) as server:
        quiet, busy = (http_port(address) for address in server.http_addresses)
        baseline(server)
        first, restore = take_the_last_descriptor(server, busy, sockets)
        # Five clients wait on one listener, one on the other. Each is answered and closed
        # in turn (Connection: close), which frees the one descriptor for the next.
        flood = [connect(busy) for _ in range(5)]
        for number, sock in enumerate(flood):
            sock.sendall(GET_CLOSE % b"/busy%d" % number)
        other = connect(quiet)
        other.sendall(GET_CLOSE % b"/quiet")
        sockets.extend([*flood, other])
        first.close()
        for sock in [*flood, other]:
            assert statuses(read_until_closed(sock, time.monotonic() + 10)) == [200]
        # The access log lists them in the order they were served: the busy listener's
        # clients did not all go before the other's, who was served first or second.
        # (Its lines may reach us after the responses: wait for them, bounded.)
        deadline = time.monotonic() + 5
        while True:
            served = [m.group(1) for line in server.lines if (m := ACCESS_PATH.search(line))]
            if len(served) >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sorted(served) == ["busy0", "busy1", "busy2", "busy3", "busy4", "quiet"]
        assert served.index("quiet") <= 1, served
        restore()
        assert "Traceback" not in server.stderr


def test_a_failure_run_ends_when_the_connection_limit_stops_accepting(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with start_bascule([*BASE_ARGS, "--limit-max-connections", "2"], tmp_path) as server:
        port = server.port
        baseline(server)
        first, restore = take_the_last_descriptor(server, port, sockets)
        waiting = connect(port)
        beyond = connect(port)  # over the limit once "waiting" is in
        sockets.extend([waiting, beyond])
        waiting.sendall(GET % b"/")
        beyond.sendall(GET % b"/")
        # Descriptors come back; the next retry (the tick) accepts "waiting" and stops at
        # the connection limit. accept() worked: the failures are over, and the log says so.
        restore()
        server.wait_for_line("accepting connections on .* again", timeout=10)
        assert read_response(waiting, 5.0) == 200
        assert readable([beyond], 0.3) == []
        first.close()
        assert read_response(beyond, 5.0) == 200
        assert "Traceback" not in server.stderr
