"""Clients that vanish in the middle of a request or response body leave nothing behind.

HTTP/1.1: the client closes (RST, or a FIN) while the app reads the request body, while it
streams the response, or while it waits for ``http.disconnect``; the app must see
``http.disconnect`` from ``receive()`` or ``ClientDisconnected`` (an ``OSError``, ASGI HTTP
spec 2.4) from ``send()``.  HTTP/2: the client resets one stream (RST_STREAM) or the whole
TCP connection.  bascule cancels the app task of a stream the client reset (its work is
wasted, and a rapid-reset flood must not pile up tasks), so there the app may also see
``CancelledError``.

After each burst the server must hold no request task, no connection, no extra loop task
and no extra file descriptor (counted in the test process, where the server thread runs).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import LiveServer
from tests.faults.apps.faults_app import FaultApp
from tests.faults.support import (
    CLOSERS,
    Baseline,
    assert_nothing_leaked,
    reset_close,
    send_request,
    warmed_up,
)
from tests.support.h2client import H2Client

Live = Callable[..., LiveServer]
ROUNDS = 20
#: Outcomes that tell the app its client is gone.
GONE = frozenset({"disconnect", "http.disconnect", "ClientDisconnected", "cancelled"})


@pytest.fixture
def app() -> FaultApp:
    return FaultApp()


@pytest.fixture
def server(live: Live, app: FaultApp) -> LiveServer:
    return warmed_up(live(app, timeout_graceful_shutdown=1.0))


@pytest.mark.parametrize("close", sorted(CLOSERS))
def test_h1_client_gone_during_request_body(server: LiveServer, app: FaultApp, close: str) -> None:
    baseline = Baseline.of(server)
    for i in range(1, ROUNDS + 1):
        sock = server.connect()
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n" + b"a" * 100_000
        )
        app.wait_for("/upload", "receiving", count=i)
        CLOSERS[close](sock)
        app.wait_for("/upload", "disconnect", count=i)
    assert "answered" not in app.seen("/upload")
    assert_nothing_leaked(server, baseline)


@pytest.mark.parametrize("close", sorted(CLOSERS))
def test_h1_client_gone_during_response_body(live: Live, app: FaultApp, close: str) -> None:
    server = warmed_up(live(app, timeout_graceful_shutdown=1.0, loop="asyncio"))
    baseline = Baseline.of(server)
    for i in range(1, ROUNDS + 1):
        sock = server.connect()
        send_request(sock, "GET", "/stream")
        got = 0
        while got < 256 * 1024:
            data = sock.recv(65536)
            assert data, "the server closed a stream it should still be sending"
            got += len(data)
        CLOSERS[close](sock)
        app.wait_for("/stream", frozenset({"ClientDisconnected", "completed"}), count=i)
    assert set(app.seen("/stream")) == {"ClientDisconnected"}
    assert_nothing_leaked(server, baseline)


@pytest.mark.parametrize("close", sorted(CLOSERS))
def test_h1_client_gone_while_the_app_waits_for_disconnect(
    server: LiveServer, app: FaultApp, close: str
) -> None:
    baseline = Baseline.of(server)
    for i in range(1, ROUNDS + 1):
        sock = server.connect()
        send_request(sock, "POST", "/wait-disconnect", b"whole body")
        app.wait_for("/wait-disconnect", "waiting", count=i)
        CLOSERS[close](sock)
        app.wait_for("/wait-disconnect", "http.disconnect", count=i)
    assert_nothing_leaked(server, baseline)


def test_h2_rst_stream_during_request_body(
    server: LiveServer, app: FaultApp, clients: list[H2Client]
) -> None:
    baseline = Baseline.of(server)
    client = H2Client(server.connect())
    clients.append(client)
    for i in range(1, ROUNDS + 1):
        stream = client.request(
            "POST", "/upload", [(b"content-length", b"1000000")], b"a" * 30_000, end=False
        )
        app.wait_for("/upload", "receiving", count=i)
        client.reset(stream)
        app.wait_for("/upload", GONE, count=i)
    assert "answered" not in app.seen("/upload")
    # The connection itself is fine: the window of the unread bodies was given back.
    upload = client.request("POST", "/upload", body=b"b" * 200_000)
    response = client.response(upload)
    assert response.status == 200
    assert bytes(response.body) == b"200000"
    client.close()
    assert_nothing_leaked(server, baseline)


def test_h2_rst_stream_during_response_body(
    server: LiveServer, app: FaultApp, clients: list[H2Client]
) -> None:
    baseline = Baseline.of(server)
    client = H2Client(server.connect())
    clients.append(client)
    for i in range(1, ROUNDS + 1):
        stream = client.request("GET", "/stream")
        response = client.responses[stream]
        client.wait_for(lambda: len(response.body) >= 128 * 1024)  # noqa: B023
        client.reset(stream)
        app.wait_for("/stream", GONE, count=i)
    assert set(app.seen("/stream")) <= GONE
    ok = client.response(client.request("GET", "/ok"))
    assert ok.status == 200
    assert not client.closed
    client.close()
    assert_nothing_leaked(server, baseline)


def test_h2_connection_reset_with_two_streams_in_flight(
    server: LiveServer, app: FaultApp, clients: list[H2Client]
) -> None:
    baseline = Baseline.of(server)
    for round_ in range(1, 6):
        client = H2Client(server.connect())
        clients.append(client)
        client.request(
            "POST", "/upload", [(b"content-length", b"1000000")], b"a" * 30_000, end=False
        )
        client.request("POST", "/wait-disconnect", body=b"whole")
        # A streaming response is covered by test_h1_client_gone_during_response_body.
        app.wait_for("/upload", "receiving", count=round_)
        app.wait_for("/wait-disconnect", "waiting", count=round_)
        reset_close(client.sock)
        clients.remove(client)
        for path in ("/upload", "/wait-disconnect"):
            app.wait_for(path, GONE, count=round_)
    assert_nothing_leaked(server, baseline)
