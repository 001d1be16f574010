"""End-to-end tests of the server process: lifespan, signals and graceful shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .process import APPS_DIR, BasculeProcess, run_bascule, start_bascule

HTTP_TIMEOUT = 10.0
APP = ["--app-dir", str(APPS_DIR)]
PORT0 = ["--port", "0"]
STATE_VALUE = "set at startup"  # e2e_app.STATE_VALUE
SLEEP_BODY = b"slept\n" * 1000  # e2e_app.SLEEP_BODY
SLEEPING = r"e2e: sleeping"  # printed by e2e_app when a /sleep request reaches it


class Fetch(threading.Thread):
    """A GET on its own thread; keeps the response or the exception."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT) -> None:
        super().__init__(name=f"fetch {url}", daemon=True)
        self.url = url
        self.timeout = timeout
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=self.timeout) as client:
                self.response = client.get(self.url)
        except Exception as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def result(self, timeout: float = HTTP_TIMEOUT + 5) -> httpx.Response:
        """Join (bounded) and return the response; re-raise the client's error."""
        self.join(timeout)
        assert not self.is_alive(), f"request to {self.url} still running after {timeout}s"
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response

    def failure(self, timeout: float = HTTP_TIMEOUT + 5) -> Exception:
        """Join (bounded) and return the client's exception (fails if it got a response)."""
        self.join(timeout)
        assert not self.is_alive(), f"request to {self.url} still running after {timeout}s"
        assert self.error is not None, f"expected a failure, got {self.response!r}"
        return self.error


def start_stuck_request(server: BasculeProcess, seconds: float) -> Fetch:
    """A /sleep request that has reached the app (bounded wait)."""
    fetch = Fetch(f"{server.url}/sleep?seconds={seconds}", timeout=max(HTTP_TIMEOUT, seconds + 5))
    fetch.start()
    server.wait_for_line(SLEEPING)
    return fetch


def connection_refused(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:port.

    A reset during the connect counts as refused: the probe reached the listen queue
    just as the listening socket closed (seen once in CI), which is the same answer.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


# lifespan ---------------------------------------------------------------------------------


def test_lifespan_startup_failed_exits_nonzero_with_message(tmp_path: Path) -> None:
    result = run_bascule(["e2e_lifespan:startup_fails", *APP, *PORT0], tmp_path)
    assert result.returncode != 0
    assert "db down" in result.stderr
    assert "listening on" not in result.stderr
    assert "Traceback" not in result.stderr


def test_lifespan_auto_with_app_that_raises_serves_and_logs_info(tmp_path: Path) -> None:
    args = ["e2e_lifespan:no_lifespan", *APP, *PORT0, "--lifespan", "auto"]
    with start_bascule(args, tmp_path) as server:
        response = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200
        assert response.text == "ok\n"
        line = server.wait_for_line("lifespan not supported")
        assert " INFO " in line
        assert "RuntimeError" in line
        assert "Traceback" not in server.stderr
        assert server.stop() == 0


def test_lifespan_on_with_app_that_raises_exits_nonzero(tmp_path: Path) -> None:
    args = ["e2e_lifespan:no_lifespan", *APP, *PORT0, "--lifespan", "on"]
    result = run_bascule(args, tmp_path)
    assert result.returncode != 0
    assert "unsupported scope type" in result.stderr
    assert "listening on" not in result.stderr


def test_lifespan_off_does_not_call_app_with_lifespan(tmp_path: Path) -> None:
    args = ["e2e_lifespan:startup_fails", *APP, *PORT0, "--lifespan", "off"]
    with start_bascule(args, tmp_path) as server:
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).text == "ok\n"
        assert "db down" not in server.stderr
        assert server.stop() == 0


def test_lifespan_state_is_copied_into_each_request(tmp_path: Path) -> None:
    with start_bascule(["e2e_app:app", *APP, *PORT0], tmp_path) as server:
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            first = client.get(server.url + "/scope", params={"mutate": "leaked"})
            assert first.status_code == 200
            assert first.json()["state"] == {"x": STATE_VALUE}
            # same connection
            second = client.get(server.url + "/scope", params={"mutate": "leaked_again"})
            assert second.json()["state"] == {"x": STATE_VALUE}
        # new connection
        third = httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT)
        assert third.json()["state"] == {"x": STATE_VALUE}


# shutdown -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["", "--no-gc-freeze"])
def test_objects_of_startup_are_frozen_for_the_collector(tmp_path: Path, flag: str) -> None:
    """--gc-freeze (the default): what exists once the server started (the app, its imports,
    the server) is moved to the permanent generation, so collections stop rescanning it."""
    args = ["e2e_app:app", *APP, *PORT0, *([flag] if flag else [])]
    with start_bascule(args, tmp_path) as server:
        frozen = int(httpx.get(f"{server.url}/gc-frozen", timeout=HTTP_TIMEOUT).text)
    if flag:
        # What the interpreter froze itself before running anything (0 on 3.11 and 3.13;
        # 3.12.1 starts with a few hundred immortal tuples in the permanent generation).
        at_start = subprocess.run(
            [sys.executable, "-I", "-S", "-c", "import gc; print(gc.get_freeze_count())"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert frozen == int(at_start.stdout)
    else:
        assert frozen > 10_000  # the interpreter, asyncio, bascule and the app


def test_sigterm_runs_lifespan_shutdown_and_exits_0(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown-marker"
    env = {"BASCULE_E2E_SHUTDOWN_MARKER": str(marker)}
    with start_bascule(["e2e_app:app", *APP, *PORT0], tmp_path, env=env) as server:
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).status_code == 200
        assert not marker.exists()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert marker.read_text(encoding="utf-8") == "lifespan shutdown ran\n"
        assert "received SIGTERM" in server.stderr
        assert "bascule stopped" in server.stderr


def test_sigint_also_stops_gracefully(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown-marker"
    env = {"BASCULE_E2E_SHUTDOWN_MARKER": str(marker)}
    with start_bascule(["e2e_app:app", *APP, *PORT0], tmp_path, env=env) as server:
        server.signal(signal.SIGINT)
        assert server.wait(10) == 0
        assert marker.exists()
        assert "received SIGINT" in server.stderr
        assert "KeyboardInterrupt" not in server.stderr


def test_sigterm_lets_in_flight_request_finish(tmp_path: Path) -> None:
    with start_bascule(["e2e_app:app", *APP, *PORT0], tmp_path) as server:
        fetch = start_stuck_request(server, 1)
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        response = fetch.result()
        assert response.status_code == 200
        assert response.content == SLEEP_BODY
        assert response.headers["connection"] == "close"
        assert server.wait(10) == 0
        exited = time.monotonic()
        assert fetch.finished_at is not None
        assert fetch.finished_at - signalled > 0.5  # it was not cut short
        assert exited - signalled < 6
        assert "graceful shutdown timed out" not in server.stderr


def test_graceful_shutdown_timeout_cancels_stuck_request(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--timeout-graceful-shutdown", "1"]
    with start_bascule(args, tmp_path) as server:
        fetch = start_stuck_request(server, 60)
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = server.wait(10)
        elapsed = time.monotonic() - signalled
        assert status == 0
        assert 0.9 <= elapsed <= 5, elapsed
        error = fetch.failure()
        assert isinstance(error, httpx.TransportError)
        assert not isinstance(error, httpx.TimeoutException), error
        assert "graceful shutdown timed out" in server.stderr


def test_second_sigint_forces_exit(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--timeout-graceful-shutdown", "30"]
    with start_bascule(args, tmp_path) as server:
        fetch = start_stuck_request(server, 60)
        server.signal(signal.SIGINT)
        server.wait_for_line("shutting down gracefully")
        assert server.running()
        server.signal(signal.SIGINT)
        signalled = time.monotonic()
        server.wait(10)
        elapsed = time.monotonic() - signalled
        assert elapsed < 5, elapsed
        assert "forcing exit" in server.stderr
        error = fetch.failure()
        assert isinstance(error, httpx.TransportError)
        assert not isinstance(error, httpx.TimeoutException), error


def test_second_sigterm_during_stuck_startup_forces_exit(tmp_path: Path) -> None:
    """Lifespan startup that never completes: the second signal must still end the process."""
    args = ["e2e_lifespan:startup_hangs", *APP, *PORT0]
    with start_bascule(args, tmp_path, ready=False, stop_timeout=2) as server:
        server.wait_for_line("e2e: startup hanging")
        server.signal(signal.SIGTERM)
        server.wait_for_line("shutting down gracefully")
        server.signal(signal.SIGTERM)
        server.wait_for_line("forcing exit")
        try:
            server.wait(5)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
        assert exited, "still running 5s after a second SIGTERM during lifespan startup"
        assert "listening on" not in server.stderr


def test_listening_socket_closed_after_sigterm(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--timeout-graceful-shutdown", "10"]
    with start_bascule(args, tmp_path) as server:
        port = server.port
        assert not connection_refused(port)
        fetch = start_stuck_request(server, 2)
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.5
        refused = connection_refused(port)
        while not refused and time.monotonic() < deadline:
            time.sleep(0.02)
            refused = connection_refused(port)
        assert refused, "the port still accepts connections during graceful shutdown"
        assert server.running(), "the server should still be finishing the request"
        response = fetch.result()
        assert response.status_code == 200
        assert response.content == SLEEP_BODY
        assert server.wait(10) == 0


def test_idle_keep_alive_connection_does_not_delay_shutdown(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--timeout-keep-alive", "60"]
    with start_bascule(args, tmp_path) as server, httpx.Client(timeout=HTTP_TIMEOUT) as client:
        response = client.get(server.url + "/")
        assert response.status_code == 200
        assert response.headers.get("connection") != "close"
        # the connection now idles in the client's pool
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert server.wait(10) == 0
        assert time.monotonic() - signalled < 3
        with pytest.raises(httpx.ConnectError):
            client.get(server.url + "/")


def test_shutdown_with_connections_mid_head(tmp_path: Path) -> None:
    """A client that sent half a request head does not keep the server alive forever."""
    args = ["e2e_app:app", *APP, *PORT0, "--timeout-graceful-shutdown", "2"]
    with (
        start_bascule(args, tmp_path) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)  # not a readiness wait: give the server time to read the partial head
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert server.wait(10) == 0
        assert time.monotonic() - signalled < 5
        assert sock.recv(65536) == b""  # closed without a response
