"""File bodies (pathsend, zerocopysend) go out with os.sendfile on plain HTTP/1.1.

The TRACE line ``sendfile: N of N bytes`` says the kernel copied them; over HTTP/2 (and
TLS, and for small files) the file is read instead, with the same bytes on the wire.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bascule.logs import TRACE
from tests.conftest import LiveServer, recv_until_closed

Live = Callable[..., LiveServer]

SIZE = 3 * 1024 * 1024 + 17


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def traced(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(TRACE, logger="bascule.error"):
        yield caplog


def sendfile_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("sendfile")]


def file_app(path: Path) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        route = scope["path"]
        if route == "/length":
            headers = [(b"content-length", b"%d" % SIZE)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.pathsend", "path": str(path)})
        elif route == "/chunked":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": str(path)})
        elif route == "/slice":
            with path.open("rb") as f:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                message = {"type": "http.response.zerocopysend", "file": f}
                await send({**message, "offset": 1000, "count": 100_000, "more_body": True})
                await send({"type": "http.response.body", "body": b"|end"})

    return app


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_content_length_file_is_sent_by_the_kernel_and_keep_alive_goes_on(
    live: Live, data_file: Path, traced: pytest.LogCaptureFixture, loop: str
) -> None:
    server = live(file_app(data_file), loop=loop)
    with httpx.Client(timeout=10) as client:
        first = client.get(server.url + "/length")
        second = client.get(server.url + "/chunked")
    assert first.headers["content-length"] == str(SIZE)
    assert first.content == second.content == data_file.read_bytes()
    assert second.headers["transfer-encoding"] == "chunked"
    assert sendfile_lines(traced) == [f"sendfile: {SIZE} of {SIZE} bytes for {t}" for t in (
        '"GET /length"', '"GET /chunked"')]  # fmt: skip


def test_zerocopysend_slice_then_more_body(
    live: Live, data_file: Path, traced: pytest.LogCaptureFixture
) -> None:
    server = live(file_app(data_file))
    response = httpx.get(server.url + "/slice", timeout=10)
    assert response.content == data_file.read_bytes()[1000:101_000] + b"|end"
    assert sendfile_lines(traced) == ['sendfile: 100000 of 100000 bytes for "GET /slice"']


def test_head_and_http2_read_the_file_instead(
    live: Live, data_file: Path, traced: pytest.LogCaptureFixture
) -> None:
    server = live(file_app(data_file))
    head = httpx.head(server.url + "/length", timeout=10)
    assert head.headers["content-length"] == str(SIZE)
    assert head.content == b""
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        h2 = client.get(server.url + "/length")
    assert h2.http_version == "HTTP/2"
    assert h2.content == data_file.read_bytes()
    assert sendfile_lines(traced) == []


def test_client_that_stops_reading_is_cut_after_the_write_timeout(
    live: Live, data_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = live(file_app(data_file), timeout_write=0.5)
    with caplog.at_level(logging.WARNING, logger="bascule.error"):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        with sock:
            sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                "sendfile for" in r.getMessage() for r in caplog.records
            ):
                time.sleep(0.05)
            received = recv_until_closed(sock, limit=SIZE + 4096)
    warnings = [r.getMessage() for r in caplog.records if "sendfile for" in r.getMessage()]
    assert warnings == ['sendfile for "GET /length": client read nothing for 0.5s: closing']
    assert len(received) < SIZE  # cut, not completed


def test_clients_that_stop_reading_hold_no_thread(live: Live, data_file: Path) -> None:
    """Waiting for a slow client is on the event loop: more stalled clients than the
    default executor has threads do not delay another client's file."""
    server = live(file_app(data_file), timeout_write=30)
    stalled = []
    try:
        for _ in range((os.cpu_count() or 1) + 8):  # the default executor: cpu_count + 4
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(sock)
        time.sleep(0.3)  # they fill their buffers and stall
        started = time.monotonic()
        response = httpx.get(server.url + "/length", timeout=10)
        assert response.content == data_file.read_bytes()
        assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()
