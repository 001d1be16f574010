"""wsgi.input streams with backpressure; responses stream; write(); close(); exc_info."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from bascule.wsgi import WSGIAdapter
from tests.conftest import LiveServer, recv_response, recv_until_closed

Live = Callable[..., LiveServer]
StartResponse = Callable[..., Any]

MIB = 1024 * 1024


def test_large_upload_is_streamed_not_buffered(live: Live) -> None:
    """64 MiB go through wsgi.input while the process never holds more than a few MiB."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = largest = 0
        while chunk := stream.read(256 * 1024):
            digest.update(chunk)
            total += len(chunk)
            largest = max(largest, len(chunk))
        seen.update(total=total, largest=largest)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [digest.hexdigest().encode()]

    server = live(WSGIAdapter(app))
    block = bytes(range(256)) * 256  # 64 KiB
    size = 64 * MIB
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)
    tracemalloc.start()
    try:
        with server.connect() as sock:
            sock.settimeout(20)
            sock.sendall(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // len(block)):
                sock.sendall(block)
            response = recv_response(sock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(expected.hexdigest().encode())
    assert seen["total"] == size
    assert seen["largest"] == 256 * 1024
    # Buffering the body would need 64 MiB; streaming needs a few chunks.
    assert peak < 8 * MIB, f"peak traced memory {peak / MIB:.1f} MiB"


def reader_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Exercise every wsgi.input method, chosen by the path."""
    stream = environ["wsgi.input"]
    how = environ["PATH_INFO"]
    result: Any
    if how == "/readline":
        result = [stream.readline(), stream.readline(4), stream.readline(), stream.read(3)]
        result.append(stream.read())
    elif how == "/readlines":
        result = stream.readlines()
    elif how == "/iterate":
        result = list(stream)
    else:
        result = [stream.read(0), stream.read(5), stream.read(), stream.read(), stream.read(10)]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([part.decode() for part in result]).encode()]


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_input_methods_over_chunked_upload(live: Live) -> None:
    server = live(WSGIAdapter(reader_app))
    body = b"first line\nsecond line\nthird\nrest without newline"
    with httpx.Client(base_url=server.url, timeout=5) as client:
        # Generator content: chunked, no Content-Length, split at odd places.
        def post(path: str) -> Any:
            return client.post(path, content=_pieces(body, 7)).json()

        assert post("/readline") == [
            "first line\n",
            "seco",
            "nd line\n",
            "thi",
            "rd\nrest without newline",
        ]
        assert post("/readlines") == [
            "first line\n",
            "second line\n",
            "third\n",
            "rest without newline",
        ]
        assert post("/iterate") == post("/readlines")
        assert post("/read") == ["", "first", body[5:].decode(), "", ""]
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as h2:
        assert h2.post("/read", content=_pieces(body, 5)).json()[2] == body[5:].decode()


def test_slow_client_stalls_the_thread_not_memory(live: Live) -> None:
    """With nobody reading, the app's generator stops being pulled once buffers are full."""
    produced: list[int] = []
    closed = threading.Event()
    chunk = b"x" * MIB
    count = 48

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(count):
                produced.append(i)
                yield chunk

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body()

    server = live(WSGIAdapter(app))
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.6)
        stalled_at = len(produced)
        assert stalled_at < count // 2, f"{stalled_at} MiB produced with no reader"
        assert not closed.is_set()
        sock.settimeout(10)
        received = 0
        while not closed.is_set() or received < count * MIB:
            data = sock.recv(MIB)
            if not data:
                break
            received += len(data)
            if received >= count * MIB:
                break
    assert len(produced) == count
    assert received >= count * MIB  # head + chunked framing on top
    assert closed.wait(5)


def test_close_called_on_client_disconnect(live: Live) -> None:
    produced: list[int] = []
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for i in range(2000):
                produced.append(i)
                yield b"tick %d\n" % i
                time.sleep(0.005)
        finally:
            closed.set()  # a generator's close() runs this

    server = live(WSGIAdapter(app))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"tick 0" in sock.recv(65536)
    assert closed.wait(5), "close() was not called after the client left"
    assert len(produced) < 2000


def test_write_sends_before_returning(live: Live) -> None:
    """Data given to write() reaches the client while the app still runs."""
    client_saw_first = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first;")
        ok = client_saw_first.wait(5)
        write(b"second;")
        return [b"waited" if ok else b"timed-out"]

    server = live(WSGIAdapter(app))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"first;" not in buf:
            data = sock.recv(65536)
            assert data
            buf += data
        client_saw_first.set()
        while not buf.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data
            buf += data
    assert b"second;" in buf
    assert b"waited" in buf


def test_content_length_passthrough_with_streamed_chunks(live: Live) -> None:
    parts = [b"a" * 1000, b"b" * 2000, b"c" * 3000]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "6000")])
        yield from parts
        yield b""

    server = live(WSGIAdapter(app))
    for kwargs in ({}, {"http1": False, "http2": True}):
        with httpx.Client(timeout=5, **kwargs) as client:  # type: ignore[arg-type]
            response = client.get(server.url)
        assert response.headers["content-length"] == "6000"
        assert "transfer-encoding" not in response.headers
        assert response.content == b"".join(parts)


def test_generator_without_length_is_chunked(live: Live) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(50):
            yield b"%d," % i

    server = live(WSGIAdapter(app))
    response = httpx.get(server.url, timeout=5)
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "".join(f"{i}," for i in range(50))


def test_exc_info_before_headers_replaces_the_response(live: Live) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Error", "1")], sys.exc_info())
        return [b"sorry"]

    server = live(WSGIAdapter(app))
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 503
    assert response.headers["x-error"] == "1"
    assert "x-first" not in response.headers
    assert response.text == "sorry"


def test_exc_info_after_headers_reraises_and_cuts(live: Live, caplog: Any) -> None:
    reraised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise KeyError("boom after headers")
        except KeyError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except KeyError as exc:
                reraised.append(exc)
                raise
        return [b"never"]

    server = live(WSGIAdapter(app))
    with caplog.at_level("INFO", logger="bascule.error"), server.connect() as sock:
        sock.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")  # the chunked body was never terminated
    assert reraised
    assert str(reraised[0]) == "'boom after headers'"
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith('exception in WSGI app for "GET /cut" after the response started')
        for m in messages
    ), messages


def test_http2_streaming_and_disconnect(live: Live) -> None:
    """The same streaming app over HTTP/2: chunks arrive as produced."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(20):
            yield b"%d\n" % i

    server = live(WSGIAdapter(app))
    with (
        httpx.Client(http1=False, http2=True, timeout=5) as client,
        client.stream("GET", server.url) as response,
    ):
        assert response.http_version == "HTTP/2"
        lines = list(response.iter_lines())
    assert lines == [str(i) for i in range(20)]


def test_expect_100_continue_answered_when_the_app_reads(live: Live) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"got " + body]

    server = live(WSGIAdapter(app))
    with server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"data")
        response = recv_response(sock)
    assert response.endswith(b"\r\n\r\ngot data")
