"""Hostile clients and careless apps: memory, time and framing stay bounded (review findings)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bascule.aio.transport import HttpDriver
from bascule.config import Config
from bascule.errors import ConfigError
from tests.conftest import LiveServer, recv_response, recv_until_closed
from tests.e2e.process import start_bascule

Live = Callable[..., LiveServer]
Scope = dict[str, Any]


async def ok(scope: Scope, receive: Any, send: Any) -> None:
    body = b"ok"
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": body})


def drivers(server: LiveServer) -> list[HttpDriver]:
    state = server.server.state
    assert state is not None
    return [d for d in state.connections if isinstance(d, HttpDriver)]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_unread_pipelined_responses_do_not_pile_up(live: Live) -> None:
    started = 0
    big = b"x" * (1 << 20)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal started
        started += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": big})

    server = live(app)
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
        sent = 0
        deadline = time.monotonic() + 2
        while sent < 600 and time.monotonic() < deadline:
            try:
                sock.send(request)
                sent += 1
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(0.5)
        # Each response is 1 MiB and nobody reads: only a few may be produced.
        assert started <= 8, started


def test_endless_trailer_field_is_cut(live: Live) -> None:
    server = live(ok, max_request_header_size=4096)
    with server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: "
        )
        for _ in range(64):  # 1 MiB of a field that never ends, 16 KiB at a time
            try:
                sock.sendall(b"a" * 16384)
            except OSError:
                break
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")


def test_stalled_request_body_times_out(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    server = live(ok, timeout_request_body=0.4)
    with caplog.at_level(logging.WARNING, logger="bascule.error"), server.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        data = recv_until_closed(sock)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.3 < elapsed < 3
    assert any("stalled" in r.getMessage() for r in caplog.records)


def test_body_backpressure_is_not_a_stall(live: Live) -> None:
    """Reading paused by us (the app is slow) must not count against the client."""
    release = asyncio.Event()

    async def slow(scope: Scope, receive: Any, send: Any) -> None:
        for _ in range(100):
            if release.is_set():
                break
            await asyncio.sleep(0.01)
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        body = str(total).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = live(slow, timeout_request_body=0.3)
    result: dict[str, Any] = {}

    def upload() -> None:
        result["r"] = httpx.post(server.url, content=b"z" * (4 << 20), timeout=20)

    import threading

    thread = threading.Thread(target=upload)
    thread.start()
    # While the app does not read, the server stops reading: its buffer stays small.
    assert wait_until(lambda: any(d._body_paused for d in drivers(server)))
    buffered = [d.cycle.body_size for d in drivers(server) if d.cycle is not None]
    assert buffered
    assert max(buffered) < 1 << 20
    time.sleep(0.6)  # longer than timeout_request_body: paused by us, not stalled
    release.set()
    thread.join(20)
    assert result["r"].text == str(4 << 20)


def test_client_that_never_reads_is_dropped(live: Live) -> None:
    outcome: dict[str, Any] = {}
    chunk = b"x" * 65536

    async def flood(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100000):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError as exc:
            outcome["error"] = exc

    server = live(flood, timeout_write=0.5)
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: "error" in outcome, timeout=6)
    assert isinstance(outcome["error"], OSError)


def test_pipelined_requests_parsed_ahead_are_bounded(live: Live) -> None:
    release = asyncio.Event()

    async def blocking(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/block":
            for _ in range(500):
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        await ok(scope, receive, send)

    server = live(blocking)
    padding = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    many = b"GET /x HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n"
    with server.connect() as sock:
        sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.setblocking(False)
        for _ in range(2000):  # 2 MB of pipelined requests
            try:
                sock.send(many)
            except BlockingIOError:
                break
        time.sleep(0.3)
        pending = [d.conn.pending_requests for d in drivers(server)]
        assert pending
        assert max(pending) < 600  # parsed ahead: one read's worth, not all of them
        assert any(d._pipeline_paused for d in drivers(server))
        release.set()


def test_upgrade_request_with_body_is_served_as_http(live: Live) -> None:
    async def echo(scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = live(echo)
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 11\r\n\r\n"
            b"hello=world"
        )
        assert recv_response(sock).endswith(b"hello=world")
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert recv_response(sock).endswith(b"ok")  # the connection stayed HTTP/1.1


def test_http10_chunked_request_closes_connection(live: Live) -> None:
    server = live(ok)
    with server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1 200") == 1
    assert b"connection: close" in data


def test_scope_dicts_are_not_shared(live: Live) -> None:
    seen: list[tuple[Any, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((dict(scope["asgi"]), dict(scope["extensions"])))
        scope["asgi"]["version"] = "9.9"
        scope["extensions"]["leak"] = True
        await ok(scope, receive, send)

    server = live(app)
    with httpx.Client(base_url=server.url) as client:
        client.get("/")
        client.get("/")
    assert seen[1][0] == {"version": "3.0", "spec_version": "2.4"}
    assert "leak" not in seen[1][1]
    assert "http.response.early_hint" in seen[1][1]


def test_invalid_body_after_held_start_gets_500(live: Live) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": "ok"})

    server = live(app)
    r = httpx.get(server.url)
    assert r.status_code == 500


def test_send_after_disconnect_following_complete_response_is_oserror(live: Live) -> None:
    outcome: dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"connection", b"close")]}
        )
        await send({"type": "http.response.body", "body": b"done"})
        await asyncio.sleep(0.2)  # the connection closes meanwhile
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except Exception as exc:
            outcome["error"] = exc

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_until_closed(sock)
    assert wait_until(lambda: "error" in outcome)
    assert isinstance(outcome["error"], OSError)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET http://user:pw@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    ],
)
def test_lenient_forms_are_refused(live: Live, request_bytes: bytes, status: int) -> None:
    server = live(ok)
    with server.connect() as sock:
        sock.sendall(request_bytes)
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 %d " % status)


def test_fragment_is_not_part_of_the_path(live: Live) -> None:
    paths: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await ok(scope, receive, send)

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"GET /a?b=1#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        recv_until_closed(sock)
    assert paths == ["/a"]


def test_rejected_request_gets_an_access_log_line(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    server = live(ok)
    with caplog.at_level(logging.INFO, logger="bascule.access"), server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        recv_until_closed(sock)
    lines = [r.getMessage() for r in caplog.records if r.name == "bascule.access"]
    assert any(line.endswith('- "-" 400 12 -') for line in lines), lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": "8000"}, "--port: expected int"),
        ({"timeout_keep_alive": float("nan")}, "--timeout-keep-alive: must be a finite number"),
        ({"timeout_graceful_shutdown": float("inf")}, "--timeout-graceful-shutdown"),
        ({"header": ["X:a\x01b"]}, "--header"),
        ({"lifespan": "maybe"}, "--lifespan: expected one of auto, on, off"),
    ],
)
def test_config_rejects_bad_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**options).validate()


LIFESPAN_STUCK_SHUTDOWN = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        print("shutdown hanging", flush=True)
        await asyncio.sleep(3600)
"""


def test_second_signal_forces_exit_during_stuck_lifespan_shutdown(tmp_path: Path) -> None:
    (tmp_path / "stuckapp.py").write_text(LIFESPAN_STUCK_SHUTDOWN)
    args = ["stuckapp:app", "--app-dir", str(tmp_path), "--port", "0"]
    with start_bascule(args, tmp_path) as server:
        server.signal(signal.SIGINT)
        server.wait_for_line("shutting down gracefully")
        time.sleep(0.5)
        server.signal(signal.SIGINT)
        start = time.monotonic()
        server.wait(5)
        assert time.monotonic() - start < 5
        assert "lifespan shutdown interrupted" in server.stderr
