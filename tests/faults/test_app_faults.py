"""Apps that raise, hang, leak tasks or send garbage: the server keeps serving everyone else.

Each test runs the server in a thread of the test process (the ``live`` fixture) with
``FaultApp`` (tests/faults/apps/faults_app.py), so it can count the server's request
tasks, connections, loop tasks and file descriptors before and after the faults.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import LiveServer, recv_response
from tests.faults.apps.faults_app import GARBAGE, FaultApp
from tests.faults.support import (
    Baseline,
    assert_nothing_leaked,
    read_all,
    send_request,
    wait_until,
    warmed_up,
)
from tests.support.h2client import H2Client
from tests.support.ws_client import TEXT, RawWs, read_head, upgrade_request

Live = Callable[..., LiveServer]


@pytest.fixture
def app() -> FaultApp:
    return FaultApp()


@pytest.fixture
def server(live: Live, app: FaultApp) -> LiveServer:
    return warmed_up(live(app, timeout_graceful_shutdown=1.0))


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        yield caplog


def get(server: LiveServer, path: str) -> bytes:
    """One request on a fresh connection; the raw response (or what came before the close)."""
    with server.connect() as sock:
        send_request(sock, "GET", path)
        return recv_response(sock)


def assert_serving(server: LiveServer) -> None:
    response = get(server, "/ok")
    assert response.startswith(b"HTTP/1.1 200 "), response
    assert response.endswith(b"\r\n\r\nok"), response


def is_cut(raw: bytes) -> bool:
    """True if ``raw`` is not a whole response: nothing, or a body shorter than its framing."""
    if not raw:
        return True
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if match is not None:
        return len(body) < int(match.group(1))
    if b"transfer-encoding: chunked" in head.lower():
        return not body.endswith(b"0\r\n\r\n")
    return False


def test_exception_before_the_response_is_a_500(
    server: LiveServer, errors: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        with server.connect() as sock:
            send_request(sock, "GET", "/raise")
            response = read_all(sock)  # the server closes after its 500
        assert response.startswith(b"HTTP/1.1 500 "), response
        assert b"\r\nconnection: close\r\n" in response.lower()
        assert response.endswith(b"\r\n\r\nInternal Server Error\n")
        assert b"RuntimeError" not in response  # no traceback to the client
    logged = [r for r in errors.records if "exception in ASGI app" in r.getMessage()]
    assert len(logged) == 3
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in logged)
    assert '"GET /raise"' in logged[0].getMessage()
    assert_serving(server)


def test_exception_mid_response_cuts_that_connection_only(
    server: LiveServer, errors: pytest.LogCaptureFixture
) -> None:
    with server.connect() as sock:
        send_request(sock, "GET", "/raise-mid")
        raw = read_all(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"first part, then a crash" in body
    assert not body.endswith(b"0\r\n\r\n")  # never terminated: the client knows it is cut
    assert any("exception in ASGI app" in r.getMessage() for r in errors.records)
    assert_serving(server)


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_from_the_app(
    server: LiveServer, app: FaultApp, errors: pytest.LogCaptureFixture, kind: str
) -> None:
    baseline = Baseline.of(server)
    _, expected = GARBAGE[kind]
    with server.connect() as sock:
        send_request(sock, "GET", f"/garbage?kind={kind}")
        if expected == "500":
            response = recv_response(sock)
            assert response.startswith(b"HTTP/1.1 500 "), response
            assert response.endswith(b"Internal Server Error\n"), response
        else:
            response = read_all(sock)  # the server must close: the framing is broken
            assert is_cut(response), response
            assert b"abcdef" not in response  # never more than the declared length
    assert b"x-injected" not in response.lower()
    messages = [r.getMessage() for r in errors.records]
    assert any(f"/garbage?kind={kind}" in m for m in messages), messages
    assert_serving(server)
    assert_nothing_leaked(server, baseline)


def test_hung_requests_do_not_stall_others_and_are_cancelled_on_shutdown(
    server: LiveServer, app: FaultApp, caplog: pytest.LogCaptureFixture
) -> None:
    hung = [server.connect() for _ in range(20)]
    for sock in hung:
        send_request(sock, "GET", "/hang")
    app.wait_for("/hang", "started", count=20)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(50):
            start = time.monotonic()
            response = client.get("/ok")
            assert response.status_code == 200
            assert time.monotonic() - start < 1.0
    state = server.server.state
    assert state is not None
    assert len(state.tasks) == 20
    with caplog.at_level(logging.WARNING, logger="bascule.error"):
        start = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - start
    assert server.exit_status == 0
    assert 0.9 <= elapsed < 3.0, elapsed  # --timeout-graceful-shutdown 1, then cancelled
    assert app.seen("/hang").count("cancelled") == 20
    assert not state.tasks
    assert not state.connections
    assert any("cancelling 20 request(s)" in r.getMessage() for r in caplog.records)
    for sock in hung:
        sock.settimeout(2)
        assert read_all(sock) == b""  # closed without a half response
        sock.close()


def test_leaked_app_tasks_do_not_disturb_serving(server: LiveServer, app: FaultApp) -> None:
    baseline = Baseline.of(server)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for i in range(1, 201):
            response = client.get("/leak")
            assert response.status_code == 200
            assert response.text == f"leaked {i}"
    state = server.server.state
    assert state is not None
    # The server tracks its own request tasks only; the app's stay the app's.
    wait_until(lambda: not state.tasks and not state.connections, what="requests done")
    assert len(app.leaked) == 200
    assert not any(t.done() for t in app.leaked)
    assert_serving(server)
    assert server.loop is not None
    for task in app.leaked:  # tidy up before the loop closes
        server.loop.call_soon_threadsafe(task.cancel)
    wait_until(lambda: all(t.done() for t in app.leaked), what="leaked tasks cancelled")
    assert_nothing_leaked(server, baseline)


def test_concurrent_faults_of_every_kind(server: LiveServer, app: FaultApp) -> None:
    """Crashes, garbage and hangs interleaved with good requests on 8 threads."""
    baseline = Baseline.of(server)
    paths = ["/ok", "/raise", "/raise-mid", "/garbage?kind=none", "/garbage?kind=start-twice"]
    paths += ["/garbage?kind=content-length-short", "/ok", "/ok"]
    cut = {"/raise-mid", "/garbage?kind=content-length-short"}

    def one(i: int) -> tuple[str, bytes]:
        path = paths[i % len(paths)]
        with server.connect() as sock:
            send_request(sock, "GET", path)
            return path, read_all(sock) if path in cut else recv_response(sock)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(160)))
    for path, response in results:
        if path == "/ok":
            assert response.endswith(b"\r\n\r\nok"), response
        elif path in ("/raise", "/garbage?kind=none", "/garbage?kind=start-twice"):
            assert response.startswith(b"HTTP/1.1 500 "), (path, response)
        else:
            assert is_cut(response), (path, response)
    assert_nothing_leaked(server, baseline)


def test_http2_fault_on_one_stream_leaves_the_others_alone(
    server: LiveServer, clients: list[H2Client]
) -> None:
    client = H2Client(server.connect())
    clients.append(client)
    ids = {
        "raise": client.request("GET", "/raise"),
        "garbage": client.request("GET", "/garbage?kind=not-a-dict"),
        "raise-mid": client.request("GET", "/raise-mid"),
        "half": client.request("GET", "/garbage?kind=returns-mid-body"),
        "ok1": client.request("GET", "/ok"),
        "ok2": client.request("GET", "/ok"),
    }
    responses = {name: client.response(stream) for name, stream in ids.items()}
    assert responses["raise"].status == 500
    assert responses["garbage"].status == 500
    assert responses["raise-mid"].reset is not None  # cut: the stream is reset, not ended
    assert responses["half"].reset is not None
    assert responses["ok1"].status == responses["ok2"].status == 200
    assert bytes(responses["ok1"].body) == b"ok"
    later = client.response(client.request("GET", "/ok"))  # the connection lives on
    assert later.status == 200
    assert not client.closed


def test_websocket_app_failures(server: LiveServer) -> None:
    with server.connect() as sock:
        sock.sendall(upgrade_request("/ws-raise-before-accept"))
        head, _ = read_head(sock)
        assert head.startswith(b"HTTP/1.1 500 "), head
    with server.connect() as sock:
        ws = RawWs.open(sock, "/ws-raise-after-accept")
        assert ws.expect_close()[0] == 1011
    with server.connect() as sock:
        ws = RawWs.open(sock, "/echo")
        ws.send_frame(TEXT, b"still here")
        assert ws.recv_message().payload == b"still here"
    assert_serving(server)


def test_200_hung_requests_do_not_slow_the_next_client(server: LiveServer, app: FaultApp) -> None:
    """HTTP/1.1 does not cancel an app whose client left (it should watch ``receive()``):
    those tasks stay until shutdown, and the server answers others meanwhile."""
    hung: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = server.connect()
            hung.append(sock)
            send_request(sock, "GET", "/hang")
        app.wait_for("/hang", "started", count=200)
        start = time.monotonic()
        assert_serving(server)
        assert time.monotonic() - start < 0.5
    finally:
        for sock in hung:
            sock.close()
    state = server.server.state
    assert state is not None
    wait_until(lambda: not state.connections, what="connections closed")
    assert len(state.tasks) == 200
    assert app.seen("/hang").count("cancelled") == 0


@pytest.mark.parametrize("kind", ["content-length-short", "content-length-long"])
def test_http2_body_not_matching_its_content_length_resets_that_stream_only(
    server: LiveServer, clients: list[H2Client], errors: pytest.LogCaptureFixture, kind: str
) -> None:
    client = H2Client(server.connect())
    clients.append(client)
    broken = client.request("GET", f"/garbage?kind={kind}")
    ok = client.request("GET", "/ok")
    assert client.response(broken).reset is not None  # h2 raises InvalidBodyLengthError here
    assert client.response(ok).status == 200
    assert any(f"/garbage?kind={kind}" in r.getMessage() for r in errors.records)
