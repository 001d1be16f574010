"""Graceful shutdown of the real ``bascule`` process under load and with faulty apps.

* SIGTERM while 64 requests are in flight (48 HTTP/1.1 connections and 16 streams on one
  HTTP/2 connection, each request sleeping 1 s in the app): every one of them gets its
  whole response, no connection made after the signal is served, the exit status is 0.
* A hung request is cancelled at ``--timeout-graceful-shutdown`` while the others finish.
* Tasks an app leaks do not delay the exit.
* A request that ignores cancellation: a second SIGTERM must still end the process.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

from tests.e2e.process import BasculeProcess, start_bascule
from tests.faults.support import read_all, send_request
from tests.support.h2client import H2Client, Response

APPS = Path(__file__).resolve().parent / "apps"
BODY_SIZE = 100_000
H1_REQUESTS = 48
H2_STREAMS = 16
STARTED = re.compile(r"faults: started (\d+)")


def bascule(
    tmp_path: Path, *options: str, stop_timeout: float = 10
) -> AbstractContextManager[BasculeProcess]:
    """The real process serving FaultApp; stopped by its PID on the way out."""
    args = ["faults_app:app", "--app-dir", str(APPS), "--port", "0", "--no-access-log", *options]
    return start_bascule(args, tmp_path, stop_timeout=stop_timeout)


def wait_started(server: BasculeProcess, count: int, timeout: float = 10) -> None:
    """Wait until the app printed ``faults: started COUNT``."""
    server.wait_for_line(rf"faults: started {count}$", timeout)


def h1_slow(port: int) -> bytes:
    """GET /slow on a fresh connection; everything until the server closes or answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        send_request(
            sock, "GET", f"/slow?seconds=1&size={BODY_SIZE}", headers=b"connection: close\r\n"
        )
        return read_all(sock)


def connection_after_signal_is_not_served(port: int) -> str:
    """Connect and ask; "refused", or "reset"/"closed" when the connection got nowhere."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        try:
            send_request(sock, "GET", "/ok")
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        assert data == b"", f"a connection made after SIGTERM was served: {data[:80]!r}"
        return "closed"


def h2_slow(h2: H2Client, streams: list[int]) -> list[Response]:
    """Read (on this thread only) until every stream ended or was reset."""
    return [h2.response(stream, timeout=10) for stream in streams]


def test_sigterm_with_64_requests_in_flight(tmp_path: Path) -> None:
    with bascule(tmp_path, "--timeout-graceful-shutdown", "10") as server:
        port = server.port
        h2 = H2Client(socket.create_connection(("127.0.0.1", port), timeout=10))
        try:
            with ThreadPoolExecutor(H1_REQUESTS + 1) as pool:
                h1: list[Future[bytes]] = [pool.submit(h1_slow, port) for _ in range(H1_REQUESTS)]
                path = f"/slow?seconds=1&size={BODY_SIZE}"
                streams = [h2.request("GET", path) for _ in range(H2_STREAMS)]
                # The HTTP/2 client reads on its own thread from now on.
                h2_future = pool.submit(h2_slow, h2, streams)
                wait_started(server, H1_REQUESTS + H2_STREAMS)
                server.signal(signal.SIGTERM)
                signalled = time.monotonic()
                server.wait_for_line("shutting down gracefully", timeout=5)
                time.sleep(0.1)  # the listeners close on the loop iteration after the log line
                refused = [connection_after_signal_is_not_served(port) for _ in range(3)]
                h2_responses = h2_future.result(timeout=15)
                h1_responses = [f.result(timeout=15) for f in h1]
            status = server.wait(10)
            exited = time.monotonic() - signalled
        finally:
            h2.close()
        assert status == 0, server.stderr
        assert set(refused) <= {"refused", "reset", "closed"}
        for raw in h1_responses:
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
            assert len(body) == BODY_SIZE
        for response in h2_responses:
            assert response.status == 200
            assert response.ended
            assert len(response.body) == BODY_SIZE
        assert h2.goaways  # told to go...
        assert h2.goaways[0].error_code == 0  # ...gracefully
        assert exited < 5, exited
        assert "graceful shutdown timed out" not in server.stderr
        assert "Traceback" not in server.stderr


def test_hung_request_is_cancelled_at_the_graceful_timeout(tmp_path: Path) -> None:
    with bascule(tmp_path, "--timeout-graceful-shutdown", "1.5") as server:
        port = server.port
        with ThreadPoolExecutor(9) as pool:
            hung = pool.submit(_get_all, port, "/hang")
            server.wait_for_line("faults: /hang started")
            slow = [pool.submit(_get_all, port, "/slow?seconds=0.5&size=1000") for _ in range(8)]
            wait_started(server, 8)
            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            status = server.wait(10)
            exited = time.monotonic() - signalled
            assert hung.result(5) == b""  # cut without a half response
            for future in slow:
                head, _, body = future.result(5).partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 ")
                assert len(body) == 1000
        assert status == 0
        assert 1.4 <= exited < 5, exited
        assert "faults: /hang cancelled" in server.stderr
        assert "cancelling 1 request(s)" in server.stderr


def test_leaked_tasks_do_not_delay_the_exit(tmp_path: Path) -> None:
    with bascule(tmp_path, "--timeout-graceful-shutdown", "10") as server:
        for i in range(1, 51):
            raw = _get_all(server.port, "/leak")
            assert raw.endswith(b"leaked %d" % i), raw
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = server.wait(5)
        assert status == 0
        assert time.monotonic() - signalled < 2
        assert "Traceback" not in server.stderr


def test_second_sigterm_ends_a_process_whose_request_ignores_cancellation(
    tmp_path: Path,
) -> None:
    with bascule(tmp_path, "--timeout-graceful-shutdown", "0.5", stop_timeout=1) as server:
        threading.Thread(target=_get_all, args=(server.port, "/hang-stubborn"), daemon=True).start()
        server.wait_for_line("faults: /hang-stubborn started")
        server.signal(signal.SIGTERM)
        server.wait_for_line("graceful shutdown timed out", timeout=5)
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        server.wait(3)  # TimeoutExpired when the process hangs
        assert time.monotonic() - signalled < 3


def _get_all(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        send_request(sock, "GET", path, headers=b"connection: close\r\n")
        return read_all(sock)


def test_an_app_calling_sys_exit_does_not_stop_the_server(tmp_path: Path) -> None:
    with bascule(tmp_path) as server:
        slow = ThreadPoolExecutor(1)
        in_flight = slow.submit(_get_all, server.port, "/slow?seconds=1&size=1000")
        wait_started(server, 1)
        raw = _get_all(server.port, "/sys-exit")
        assert raw.startswith(b"HTTP/1.1 500 "), raw
        head, _, body = in_flight.result(5).partition(b"\r\n\r\n")
        slow.shutdown()
        assert head.startswith(b"HTTP/1.1 200 ")
        assert len(body) == 1000
        assert _get_all(server.port, "/ok").endswith(b"\r\n\r\nok")
        assert server.running()
